/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "exit-codes.h"
#include "macro.h"
#include "migdir-format.h"
#include "new.h"
#include "output.h"

const char *new_default_dir(void) {
        const char *e = getenv("MIGRATED_MIGRATIONS");

        return e && *e ? e : "./migrations";
}

/* Writes a new file; O_EXCL because an existing migration must never be overwritten. */
static int write_new_file(int dir_fd, const char *file, const char *content) {
        _cleanup_close_ int fd = -1;
        size_t size = strlen(content);

        fd = openat(dir_fd, file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, 0644);
        if (fd < 0)
                return negative_errno();
        while (size > 0) {
                ssize_t n = write(fd, content, size);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                content += n;
                size -= (size_t) n;
        }
        if (close(TAKE_FD(fd)) < 0)
                return negative_errno();
        return 0;
}

/* Suggests a valid name for a near miss such as "Add-Users" (add_users), or NULL. */
static char *suggest_name(const char *name) {
        char *s = strdup(name);

        if (!s)
                return NULL;
        for (char *p = s; *p; p++)
                *p = *p == '-' || *p == ' ' || *p == '.' ? '_' : (char) tolower((unsigned char) *p);
        if (!migration_name_is_valid(s))
                return mfree(s);
        return s;
}

/* Loads dir in its format and prints every problem when it cannot be used. Returns 0 or an exit code. */
static int load_dir(const char *dir, migdir_format format, migration_set **ret) {
        migdir_errors errors = {};
        int r;

        r = migdir_load_format(dir, format, NULL, ret, &errors);
        if (r < 0) {
                fprintf(stderr, "migratectl: error: cannot read migrations directory %s: %s\n", dir, strerror(-r));
                if (r == -ENOENT)
                        fprintf(stderr, "  create it, or pass --migrations DIR or set MIGRATED_MIGRATIONS\n");
                return EXIT_FAILED;
        }
        if (r > 0) {
                fprintf(stderr, "migratectl: error: the migrations directory %s has problems:\n", dir);
                for (size_t i = 0; i < errors.n; i++)
                        fprintf(stderr, "  %s\n", errors.messages[i]);
                migdir_errors_clear(&errors);
                return EXIT_FAILED;
        }
        migdir_errors_clear(&errors);
        return 0;
}

/* Creates every file or none; O_EXCL because an existing migration must never be overwritten. */
static int create_files(const char *dir, const migration_new *n, const char **ret_failed) {
        _cleanup_close_ int dir_fd = -1;
        int r = 0;
        size_t i;

        *ret_failed = n->dir ?: n->files[0].path;
        dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dir_fd < 0)
                return negative_errno();
        if (n->dir && mkdirat(dir_fd, n->dir, 0755) < 0)
                return negative_errno();
        for (i = 0; i < n->n; i++) {
                *ret_failed = n->files[i].path;
                r = write_new_file(dir_fd, n->files[i].path, n->files[i].content);
                if (r < 0)
                        break;
        }
        if (r < 0) {
                while (i-- > 0)
                        (void) unlinkat(dir_fd, n->files[i].path, 0);
                if (n->dir)
                        (void) unlinkat(dir_fd, n->dir, AT_REMOVEDIR);
        }
        return r;
}

static int print_created(const char *dir, const migration_new *n, bool json) {
        const char *sep = *dir && dir[strlen(dir) - 1] == '/' ? "" : "/";
        json_auto_t *doc = NULL;

        if (!json) {
                for (size_t i = 0; i < n->n; i++)
                        printf("%s%s%s\n", dir, sep, n->files[i].path);
                return EXIT_OK;
        }
        doc = json_pack("{s:I}", "version", (json_int_t) n->version);
        for (size_t i = 0; doc && i < n->n; i++) {
                _cleanup_free_ char *path = malloc(strlen(dir) + strlen(sep) + strlen(n->files[i].path) + 1);
                /* the keys scripts read: "up" and "down", in the order the format writes them */
                if (!path || json_object_set_new(doc, i == 0 ? "up" : "down",
                                                 json_string(strcat(strcat(strcpy(path, dir), sep), n->files[i].path))) < 0)
                        return EXIT_FAILED;
        }
        if (!doc || output_json(doc) < 0)
                return EXIT_FAILED;
        return EXIT_OK;
}

int new_migration(const char *dir, const char *name, bool json) {
        _cleanup_(migration_set_freep) migration_set *s = NULL;
        _cleanup_(migration_new_clear) migration_new n = {};
        migdir_format id = migdir_detect_format(dir);
        const migration_format *f = migration_format_get(id);
        const char *failed = NULL;
        int r;

        if (!migration_name_is_valid(name)) {
                _cleanup_free_ char *hint = suggest_name(name);

                fprintf(stderr, "migratectl: invalid migration name '%s': use 1 to %d characters of a-z, 0-9 and '_'",
                        name, MIGRATION_NAME_MAX);
                if (hint)
                        fprintf(stderr, " (did you mean '%s'?)", hint);
                fputc('\n', stderr);
                return EXIT_USAGE;
        }
        if (!f->new_files) {
                /* a format whose files its own tool writes: ours are written, as before the table */
                id = MIGDIR_NATIVE;
                f = migration_format_get(id);
        }
        r = load_dir(dir, id, &s);
        if (r != 0)
                return r;
        r = f->new_files(s, name, &n);
        if (r == -EOVERFLOW) {
                fprintf(stderr, "migratectl: error: no version is left after %" PRId64 "\n", migration_set_latest(s));
                return EXIT_FAILED;
        }
        if (r < 0)
                return r;
        r = create_files(dir, &n, &failed);
        if (r < 0) {
                fprintf(stderr, "migratectl: error: cannot create %s/%s: %s\n", dir, failed, strerror(-r));
                return EXIT_FAILED;
        }
        return print_created(dir, &n, json);
}
