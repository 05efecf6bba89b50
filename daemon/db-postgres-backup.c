/* SPDX-License-Identifier: MIT */
/* Backups of a PostgreSQL database: pg_dump's custom format, one consistent snapshot taken by the
 * server while the services keep running. */

#include <errno.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "db-postgres-internal.h"

extern char **environ;

int pg_run_tool(char *const argv[], int out_fd, const char *password, int *ret_status) {
        posix_spawn_file_actions_t fa;
        _cleanup_free_ char *pw = NULL;
        size_t n = 0;
        char **env;
        pid_t pid;
        int r;

        while (environ[n])
                n++;
        env = calloc(n + 2, sizeof(char *));
        if (!env)
                return -ENOMEM;
        n = 0;
        for (char **e = environ; *e; e++)
                if (strncmp(*e, "PGPASSWORD=", 11) != 0)
                        env[n++] = *e;
        if (password && asprintf(&pw, "PGPASSWORD=%s", password) < 0) {
                free(env);
                return -ENOMEM;
        }
        env[n] = pw;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, out_fd, STDOUT_FILENO);
        r = -posix_spawnp(&pid, argv[0], &fa, NULL, argv, env);
        posix_spawn_file_actions_destroy(&fa);
        free(env);
        if (pw)
                explicit_bzero(pw, strlen(pw));
        if (r < 0)
                return r;
        while (waitpid(pid, ret_status, 0) < 0)
                if (errno != EINTR)
                        return -errno;
        return 0;
}

int pg_backup_to(db *d, const char *path, int fd, db_failure *f) {
        db_pg *p = to_pg(d);
        _cleanup_free_ char *dbname = NULL, *wait = NULL;
        int status = 0, r;

        /* a session holding a table exclusively makes the dump fail after lock_timeout, not hang */
        if (asprintf(&dbname, "--dbname=%s", p->conninfo) < 0 ||
            asprintf(&wait, "--lock-wait-timeout=%ums", p->lock_timeout_ms ?: 1) < 0)
                return -ENOMEM;
        char *argv[] = { (char *) "pg_dump", (char *) "--format=custom", (char *) "--no-password", wait, dbname,
                         NULL };
        r = pg_run_tool(argv, fd, p->password, &status);
        if (r == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0 && fsync(fd) == 0)
                return 0;
        db_failure_clear(f);
        f->code = PROTOCOL_ERROR_BACKUP_FAILED;
        if (r < 0 ? asprintf(&f->message, "the backup to %s failed: cannot run pg_dump: %s", path, strerror(-r))
                  : asprintf(&f->message, "the backup to %s failed: pg_dump %s %d (its messages are in the journal)",
                             path, WIFEXITED(status) ? "exited with" : "was killed by signal",
                             WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status)) < 0)
                f->message = NULL;
        return f->message ? DB_FAILED : -ENOMEM;
}

/* A custom-format archive starts with "PGDMP"; pg_dump writes its table of contents again at the
 * end, so a file cut short is one with the header only. */
bool pg_backup_complete(int fd, uint64_t size) {
        char magic[5];

        return size > 64 && pread(fd, magic, sizeof(magic), 0) == (ssize_t) sizeof(magic) &&
               memcmp(magic, "PGDMP", 5) == 0;
}
