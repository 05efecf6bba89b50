/* SPDX-License-Identifier: MIT */
/* Prisma Migrate's layout: <migrations>/<timestamp>_<name>/migration.sql, optionally down.sql
 * beside it (Prisma's documented way to keep down migrations), and migration_lock.toml naming the
 * provider. */

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "migdir-internal.h"

/* provider = "sqlite" in migration_lock.toml; anything else is not a database we can migrate. */
static int check_provider(int dir_fd, migdir_errors *errors) {
        char buf[4096], *p;
        ssize_t n;
        int fd, r = 0;

        fd = openat(dir_fd, "migration_lock.toml", O_RDONLY | O_CLOEXEC | O_NONBLOCK);
        if (fd < 0)
                return errno == ENOENT ? 0 : migdir_error_add(errors, "migration_lock.toml: cannot read: %s", strerror(errno)) ?: 1;
        n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        buf[n > 0 ? n : 0] = '\0';
        for (p = strtok(buf, "\n"); p; p = strtok(NULL, "\n")) {
                char value[64] = "";
                while (isspace((unsigned char) *p))
                        p++;
                if (sscanf(p, "provider = \"%63[^\"]\"", value) != 1)
                        continue;
                if (!streq(value, "sqlite"))
                        r = migdir_error_add(errors, "migration_lock.toml: the provider is \"%s\", but migrated manages a "
                                             "SQLite database here (provider = \"sqlite\")", value) ?: 1;
                return r;
        }
        return 0;
}

/* The three scripts Prisma compares checksums against: as is, CRLF made LF, LF made CRLF. */
static int digest_variants(migration *m) {
        const char *sql = m->up.sql;
        size_t n = m->up.size, lf = 0, k = 0;
        char *v;
        int r;

        r = sha256_raw(sql, n, m->digests[0]);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++)
                if (sql[i] == '\n')
                        lf++;
        v = malloc(n + lf + 1);
        if (!v)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                if (!(sql[i] == '\r' && i + 1 < n && sql[i + 1] == '\n'))
                        v[k++] = sql[i];
        r = sha256_raw(v, k, m->digests[1]);
        k = 0;
        for (size_t i = 0; r >= 0 && i < n; i++) {
                if (sql[i] == '\n')
                        v[k++] = '\r';
                v[k++] = sql[i];
        }
        if (r >= 0)
                r = sha256_raw(v, k, m->digests[2]);
        free(v);
        return r;
}

/* One migration folder: "<digits>_<name>" holding migration.sql. Returns 1 for a problem that
 * was recorded in errors. */
static int load_folder(int dir_fd, const char *folder, const migration_set *previous, migration *m,
                       migdir_errors *errors) {
        _cleanup_free_ char *up = NULL, *down = NULL;
        const char *p = folder;
        int64_t version = 0;
        struct stat st;
        int r;

        for (; isdigit((unsigned char) *p); p++) {
                if (version > (INT64_MAX - (*p - '0')) / 10)
                        return migdir_error_add(errors, "%s: the timestamp is too large", folder) ?: 1;
                version = version * 10 + (*p - '0');
        }
        if (p == folder || *p != '_' || !p[1] || version == 0)
                return migdir_error_add(errors, "%s: not a Prisma migration folder (expected <timestamp>_<name>)",
                                        folder) ?: 1;
        for (const char *q = p + 1; *q; q++)
                if (!(isalnum((unsigned char) *q) || *q == '_' || *q == '-'))
                        return migdir_error_add(errors, "%s: the name may contain only letters, digits, '_' and '-'",
                                                folder) ?: 1;
        if (asprintf(&up, "%s/migration.sql", folder) < 0 || asprintf(&down, "%s/down.sql", folder) < 0)
                return -ENOMEM;
        if (fstatat(dir_fd, up, &st, 0) < 0)
                return migdir_error_add(errors, "%s: no migration.sql in this migration folder", folder) ?: 1;
        m->version = version;
        m->prisma = true;
        if (!(m->name = strdup(p + 1)) || !(m->key = strdup(folder)))
                return -ENOMEM;
        r = migdir_read_script(dir_fd, up, previous, version, true, &m->up, m->checksum, errors);
        if (r != 0)
                return r;
        if (fstatat(dir_fd, down, &st, 0) == 0) {
                char unused[SHA256_HEX_SIZE];
                r = migdir_read_script(dir_fd, down, previous, version, false, &m->down, unused, errors);
                if (r != 0)
                        return r;
        }
        return digest_variants(m);
}

static int by_version(const void *a, const void *b) {
        const migration *x = a, *y = b;

        return x->version < y->version ? -1 : x->version > y->version;
}

int migdir_load_prisma(const char *dir, const migration_set *previous, migration_set **ret, migdir_errors *ret_errors) {
        _cleanup_(migration_set_freep) migration_set *s = NULL;
        struct dirent *de;
        bool bad = false;
        DIR *d;
        int r;

        d = opendir(dir);
        if (!d)
                return -errno;
        s = calloc(1, sizeof(*s));
        if (!s || !(s->dir = strdup(dir))) {
                closedir(d);
                return -ENOMEM;
        }
        r = check_provider(dirfd(d), ret_errors);
        if (r < 0)
                goto out;
        bad = r > 0;
        while ((de = readdir(d))) {
                struct stat st;
                migration *m;

                if (de->d_name[0] == '.' || fstatat(dirfd(d), de->d_name, &st, 0) < 0 || !S_ISDIR(st.st_mode))
                        continue; /* migration_lock.toml, READMEs: not migrations */
                m = realloc(s->items, (s->n + 1) * sizeof(*m));
                if (!m) {
                        r = -ENOMEM;
                        goto out;
                }
                s->items = m;
                memset(&s->items[s->n], 0, sizeof(migration));
                r = load_folder(dirfd(d), de->d_name, previous, &s->items[s->n], ret_errors);
                if (r < 0) {
                        migdir_migration_done(&s->items[s->n]);
                        goto out;
                }
                if (r > 0) {
                        migdir_migration_done(&s->items[s->n]);
                        bad = true;
                        continue;
                }
                s->n++;
        }
        if (s->n > 1)
                qsort(s->items, s->n, sizeof(migration), by_version);
        for (size_t i = 1; i < s->n; i++)
                if (s->items[i].version == s->items[i - 1].version) {
                        r = migdir_error_add(ret_errors, "%s: duplicate timestamp %" PRId64 ", also used by %s",
                                             s->items[i].key, s->items[i].version, s->items[i - 1].key);
                        if (r < 0)
                                goto out;
                        bad = true;
                }
        r = bad ? MIGDIR_INVALID : 0;
        if (r == 0)
                *ret = TAKE_PTR(s);
out:
        closedir(d);
        return r;
}
