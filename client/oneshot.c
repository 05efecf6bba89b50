/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "exit-codes.h"
#include "macro.h"
#include "oneshot.h"
#include "protocol.h"

#define ONESHOT_CHILD_FD 3 /* migrated's ONE_SHOT_FD */

const char *arg_oneshot_database = NULL;
const char *arg_oneshot_migrations = NULL;
const char *arg_oneshot_state_dir = NULL;
const char *arg_oneshot_config = NULL;

/* A PostgreSQL connection string or URL rather than a file: the backend the daemon picks for
 * --connection. */
static bool is_conninfo(const char *s) {
        return strneq(s, "postgres://", 11) || strneq(s, "postgresql://", 13) ||
               (s[0] != '/' && s[0] != '.' && strchr(s, '=') && (strstr(s, "dbname=") || strstr(s, "host=")));
}

/* Whether path names an executable file; if so it is copied to buf. */
static bool try_binary(const char *dir, const char *name, char *buf, size_t size) {
        if (snprintf(buf, size, "%s%s%s", dir, dir[0] ? "/" : "", name) >= (int) size)
                return false;
        return access(buf, X_OK) == 0;
}

/* $MIGRATED_BIN; else migrated beside migratectl (a build tree: ../daemon), in ../sbin of it,
 * in the configured sbindir; else the name alone, for execvp's PATH search. */
static const char *find_migrated(char *buf, size_t size) {
        const char *e = getenv("MIGRATED_BIN");
        char self[PATH_MAX];
        ssize_t n;

        if (e && *e)
                return e;
        n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        if (n > 0) {
                char *slash;
                self[n] = '\0';
                slash = strrchr(self, '/');
                if (slash) {
                        *slash = '\0';
                        if (try_binary(self, "migrated", buf, size) || try_binary(self, "../daemon/migrated", buf, size) ||
                            try_binary(self, "../sbin/migrated", buf, size))
                                return buf;
                }
        }
        if (try_binary(SBINDIR, "migrated", buf, size))
                return buf;
        return "migrated";
}

/* In the child: fd 3 is our end, the environment says nothing of our own service manager (no
 * sd_notify, no sockets passed), then migrated --one-shot. Never returns. */
_noreturn_ static void exec_child(int fd, const char *binary) {
        const char *argv[14];
        size_t n = 0;

        if (fd == ONESHOT_CHILD_FD) {
                int flags = fcntl(fd, F_GETFD);
                if (flags < 0 || fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC) < 0)
                        _exit(127);
        } else if (dup2(fd, ONESHOT_CHILD_FD) < 0)
                _exit(127);
        (void) unsetenv("NOTIFY_SOCKET");
        (void) unsetenv("LISTEN_FDS");
        (void) unsetenv("LISTEN_PID");
        (void) unsetenv("LISTEN_FDNAMES");
        (void) unsetenv("WATCHDOG_USEC");
        (void) unsetenv("WATCHDOG_PID");
        argv[n++] = "migrated";
        argv[n++] = "--one-shot";
        if (arg_oneshot_config) {
                argv[n++] = "--config";
                argv[n++] = arg_oneshot_config;
        }
        if (arg_oneshot_database) {
                argv[n++] = is_conninfo(arg_oneshot_database) ? "--connection" : "--database";
                argv[n++] = arg_oneshot_database;
        }
        if (arg_oneshot_migrations) {
                argv[n++] = "--migrations";
                argv[n++] = arg_oneshot_migrations;
        }
        if (arg_oneshot_state_dir) {
                argv[n++] = "--state-dir";
                argv[n++] = arg_oneshot_state_dir;
        }
        argv[n] = NULL;
        execvp(binary, (char **) argv);
        fprintf(stderr, "migratectl: error: cannot run %s: %s (set MIGRATED_BIN to migrated's path)\n", binary,
                strerror(errno));
        _exit(127);
}

int oneshot_start(oneshot *o, conn **ret) {
        char buf[PATH_MAX];
        const char *binary = find_migrated(buf, sizeof(buf));
        int sv[2], r;
        pid_t pid;

        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
                return negative_errno();
        fflush(stdout);
        fflush(stderr);
        pid = fork();
        if (pid < 0) {
                r = negative_errno();
                close(sv[0]);
                close(sv[1]);
                return r;
        }
        if (pid == 0) {
                close(sv[0]);
                exec_child(sv[1], binary);
        }
        close(sv[1]);
        o->pid = pid;
        r = conn_from_fd(sv[0], ret);
        if (r < 0)
                close(sv[0]);
        return r;
}

int oneshot_wait(oneshot *o) {
        int status;
        pid_t p;

        if (o->pid <= 0)
                return -1;
        do
                p = waitpid(o->pid, &status, 0);
        while (p < 0 && errno == EINTR);
        o->pid = 0;
        if (p < 0 || !WIFEXITED(status))
                return -1;
        return WEXITSTATUS(status);
}

void oneshot_done(oneshot *o) {
        (void) oneshot_wait(o);
}

int oneshot_exit_code(int status) {
        if (status == PROTOCOL_ONE_SHOT_EXIT_LOCKED)
                return EXIT_BUSY;
        if (status == 2)
                return EXIT_USAGE; /* migrated's exit status for a bad setting */
        return EXIT_FAILED;
}
