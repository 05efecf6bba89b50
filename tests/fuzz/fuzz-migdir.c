/* SPDX-License-Identifier: MIT */
/* libFuzzer target: the migrations directory parser (common/migdir.c and every format's file).
 *
 * Every input goes through migration_parse_filename() (as a C string) and
 * migration_parse_directives() (as an unterminated buffer of exactly its size).
 *
 * An input that starts with "DIR\n" also describes a directory: entries separated by "\0\n", each
 * a name line then the file's contents. A name may hold one '/' (a file in a subdirectory, as in
 * Prisma's <timestamp>_<name>/migration.sql layout). A name starting with "dir:", "fifo:" or "link:"
 * makes a directory, a FIFO or a dangling symlink of the rest of the name instead of a regular
 * file. The files are written into a private temporary directory (made once per process); the
 * directory is loaded in every format of the table, each twice (the second time reusing the first
 * set, as a rescan does), then in a one-file format defined here (up and down sections split
 * from one file), and emptied again. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "macro.h"
#include "migdir-internal.h"
#include "../unit/one-file-format.h" /* a one-file format plugged in by the tests */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define DIR_MAGIC "DIR\n"
#define MAX_ENTRIES 8
#define NAME_LEN_MAX 250

static char *dir_path;
static int dir_fd = -1;

static void fatal(const char *what) {
        fprintf(stderr, "fuzz-migdir: %s\n", what);
        abort();
}

static void remove_dir(void) {
        if (dir_fd >= 0)
                close(dir_fd);
        if (dir_path)
                rmdir(dir_path);
        free(dir_path);
}

static void setup_dir(void) {
        const char *tmp = getenv("TMPDIR");

        if (dir_path)
                return;
        if (asprintf(&dir_path, "%s/fuzz-migdir.XXXXXX", tmp && *tmp ? tmp : "/tmp") < 0 || !mkdtemp(dir_path))
                fatal("cannot create the temporary directory");
        dir_fd = open(dir_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dir_fd < 0)
                fatal("cannot open the temporary directory");
        atexit(remove_dir);
}

static void fuzz_parsers(const uint8_t *data, size_t size) {
        char *file = malloc(size + 1), *copy = malloc(size ? size : 1), *name = NULL, *bad = NULL;
        const char *reason = NULL;
        int64_t version;
        unsigned flags;
        bool up;
        int r;

        if (!file || !copy)
                fatal("out of memory");
        memcpy(file, data, size);
        file[size] = '\0';
        r = migration_parse_filename(file, &version, &name, &up, &reason);
        if (r == 0) {
                if (!name || version <= 0 || !migration_name_is_valid(name))
                        fatal("parse_filename accepted an invalid name");
        } else if (r != -EINVAL || !reason)
                fatal("parse_filename failed without a reason");
        free(name);

        memcpy(copy, data, size); /* exactly size bytes, so that reading past them is caught */
        r = migration_parse_directives(copy, size, &flags, &bad);
        if (r == 0 && (flags & ~(unsigned) MIGRATION_NO_TRANSACTION))
                fatal("parse_directives returned unknown flags");
        if (r < 0 && r != -EINVAL)
                fatal("parse_directives returned an unexpected error");
        free(bad);
        free(copy);
        free(file);
}

static void check_set(const migration_set *s) {
        const migration_format *f = migration_format_get(s->format);

        for (size_t i = 0; i < s->n; i++) {
                const migration *m = &s->items[i];
                if (m->format != migration_format_get(s->format))
                        fatal("a migration of another format in the set");
                if (i > 0 && m->format->compare(&s->items[i - 1], m) >= 0)
                        fatal("the set is not strictly ascending in its format's order");
                /* a repeatable (Flyway's R__) has no version, as Flyway records it */
                if ((m->up.flags & MIGRATION_REPEATABLE) ? m->version_key != NULL
                                                         : !m->version_key || !*m->version_key)
                        fatal("a versioned migration without its version as written, or a repeatable with one");
                if (!m->name || !m->up.file || !m->up.sql || m->up.sql[m->up.size] != '\0')
                        fatal("incomplete migration in the set");
                if (m->down.file && (!m->down.sql || m->down.sql[m->down.size] != '\0'))
                        fatal("incomplete down script in the set");
                if (migration_set_find(s, m->version) != m)
                        fatal("migration_set_find does not find a member");
                if (!migration_checksum_matches(m, m->checksum))
                        fatal("a migration does not match its own checksum");
                if (!migration_record_name(m))
                        fatal("a migration without a record name");
        }
        int64_t last_versioned = 0;
        for (size_t i = 0; i < s->n; i++)
                if (!(s->items[i].up.flags & MIGRATION_REPEATABLE)) {
                        if (i > 0 && (s->items[i - 1].up.flags & MIGRATION_REPEATABLE))
                                fatal("a versioned migration after a repeatable");
                        last_versioned = s->items[i].version;
                }
        if (migration_set_latest(s) != last_versioned)
                fatal("migration_set_latest is not the last versioned migration");
        if (migration_set_version_width(s) < 4)
                fatal("version width below 4");
        if (f->new_files) {
                migration_new n = {};
                if (f->new_files(s, "fuzz", &n) == 0 && (n.n == 0 || n.version <= migration_set_latest(s)))
                        fatal("migratectl new would name no file, or a version not after the set");
                migration_new_clear(&n);
        }
}

/* Both directions of a one-file migration come from its file, and together they are that file. */
static void load_one_file(void) {
        migration_set *s = NULL;
        migdir_errors errors = {};
        int r;

        r = migdir_load_with(dir_path, &one_file_format, NULL, &s, &errors);
        if (r == 0) {
                for (size_t i = 0; i < s->n; i++) {
                        const migration *m = &s->items[i];
                        if (!m->up.sql || m->up.sql[m->up.size] != '\0' || !streq(m->up.file, m->down.file ?: m->up.file))
                                fatal("a split migration's up section is incomplete");
                        if (m->down.file && (!m->down.sql || m->down.sql[m->down.size] != '\0'))
                                fatal("a split migration's down section is incomplete");
                        if (i > 0 && s->items[i - 1].version >= m->version)
                                fatal("the one-file set is not strictly ascending");
                }
        } else if (r != MIGDIR_INVALID || errors.n == 0)
                fatal("loading one-file migrations failed without naming a problem");
        migration_set_free(s);
        migdir_errors_clear(&errors);
}

static int load(migdir_format format, const migration_set *previous, migration_set **ret) {
        migdir_errors errors = {};
        int r;

        *ret = NULL;
        r = format == MIGDIR_NATIVE ? migdir_load(dir_path, previous, ret, &errors)
                                    : migdir_load_format(dir_path, format, previous, ret, &errors);
        if (r == 0) {
                if (!*ret || errors.n != 0)
                        fatal("migdir_load succeeded without a set, or with errors");
                check_set(*ret);
        } else if (r == MIGDIR_INVALID) {
                if (*ret || errors.n == 0)
                        fatal("migdir_load found problems without naming one");
                for (size_t i = 0; i < errors.n; i++)
                        if (!errors.messages[i])
                                fatal("NULL error message");
        } else
                fatal("migdir_load failed on a readable directory");
        migdir_errors_clear(&errors);
        return r;
}

/* Loads the directory, then again reusing the first set, as a rescan does: an unchanged
 * directory must give the same set. */
static void load_twice(migdir_format format) {
        migration_set *first = NULL, *second = NULL;

        if (load(format, NULL, &first) == 0) {
                if (load(format, first, &second) != 0 || second->n != first->n)
                        fatal("rescanning an unchanged directory gave another result");
                for (size_t i = 0; i < first->n; i++)
                        if (first->items[i].version != second->items[i].version ||
                            !streq(first->items[i].checksum, second->items[i].checksum) ||
                            first->items[i].up.flags != second->items[i].up.flags)
                                fatal("rescanning an unchanged directory changed a migration");
        }
        migration_set_free(second);
        migration_set_free(first);
}

/* Empties a directory we filled: files, FIFOs, symlinks and (one level of) subdirectories. */
static void empty_dir(int fd, int depth) {
        DIR *d = fdopendir(fcntl(fd, F_DUPFD_CLOEXEC, 3));
        struct dirent *de;

        if (!d)
                fatal("cannot read the temporary directory");
        rewinddir(d);
        while ((de = readdir(d))) {
                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                if (unlinkat(fd, de->d_name, 0) == 0 || errno != EISDIR)
                        continue;
                if (depth > 0) {
                        int sub = openat(fd, de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
                        if (sub >= 0) {
                                empty_dir(sub, depth - 1);
                                close(sub);
                        }
                }
                if (unlinkat(fd, de->d_name, AT_REMOVEDIR) < 0)
                        fatal("cannot empty the temporary directory");
        }
        closedir(d);
}

/* "a/b" keeps its first slash (a file in a subdirectory, as Prisma's layout has); other slashes
 * become '_'. Returns false for a path we cannot create ("", ".", ".." components). */
static bool sanitize_path(char *path, char **ret_slash) {
        char *slash = strchr(path, '/');

        for (char *c = slash ? slash + 1 : path; *c; c++)
                if (*c == '/')
                        *c = '_';
        *ret_slash = slash;
        if (slash)
                *slash = '\0';
        bool ok = *path && !streq(path, ".") && !streq(path, "..") &&
                  (!slash || (slash[1] && !streq(slash + 1, ".") && !streq(slash + 1, "..")));
        if (slash)
                *slash = '/';
        return ok;
}

static void fuzz_directory(const uint8_t *data, size_t size) {
        const uint8_t *p = data, *end = data + size;
        size_t n_entries = 0;

        setup_dir();
        while (p < end && n_entries < MAX_ENTRIES) {
                const uint8_t *sep = memmem(p, (size_t) (end - p), "\0\n", 2), *entry_end = sep ? sep : end;
                const uint8_t *nl = memchr(p, '\n', (size_t) (entry_end - p));
                const uint8_t *content = nl ? nl + 1 : entry_end;
                size_t name_len = (size_t) ((nl ? nl : entry_end) - p);
                char *name = strndup((const char *) p, name_len > NAME_LEN_MAX ? NAME_LEN_MAX : name_len), *slash;
                char *path;
                int kind = 0, fd;

                p = sep ? sep + 2 : end;
                n_entries++;
                if (!name)
                        fatal("out of memory");
                path = name;
                if (strncmp(name, "dir:", 4) == 0)
                        kind = 1, path += 4;
                else if (strncmp(name, "fifo:", 5) == 0)
                        kind = 2, path += 5;
                else if (strncmp(name, "link:", 5) == 0)
                        kind = 3, path += 5;
                if (!sanitize_path(path, &slash)) {
                        free(name);
                        continue;
                }
                if (slash) { /* the folder first */
                        *slash = '\0';
                        (void) mkdirat(dir_fd, path, 0700);
                        *slash = '/';
                }
                switch (kind) {
                case 1:
                        (void) mkdirat(dir_fd, path, 0700);
                        break;
                case 2:
                        (void) mkfifoat(dir_fd, path, 0600);
                        break;
                case 3:
                        (void) symlinkat("does-not-exist.up.sql", dir_fd, path);
                        break;
                default:
                        fd = openat(dir_fd, path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK,
                                    0600);
                        if (fd >= 0) {
                                size_t left = (size_t) (entry_end - content);
                                if (left > 0 && write(fd, content, left) != (ssize_t) left)
                                        fatal("short write to the temporary directory");
                                close(fd);
                        }
                }
                free(name);
        }

        /* the daemon's way: the format the directory announces; then each format explicitly */
        const char *reason = NULL;
        if (!migration_format_get(migdir_detect_format_reason(dir_path, &reason)) || !reason)
                fatal("migdir_detect_format returned an unknown format, or no reason");
        for (size_t i = 0; i < migration_format_count(); i++)
                load_twice((migdir_format) i);
        load_one_file();
        empty_dir(dir_fd, 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        fuzz_parsers(data, size);
        if (size >= strlen(DIR_MAGIC) && memcmp(data, DIR_MAGIC, strlen(DIR_MAGIC)) == 0)
                fuzz_directory(data + strlen(DIR_MAGIC), size - strlen(DIR_MAGIC));
        return 0;
}
