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

/* The provider migration_lock.toml must name: the backend's. */
static const char *expected_provider = "sqlite";

void migdir_set_prisma_provider(const char *provider) {
        expected_provider = provider;
}

/* provider = "sqlite" in migration_lock.toml ("postgresql" on that backend); anything else is not
 * a database we migrate here. */
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
                if (!streq(value, expected_provider))
                        r = migdir_error_add(errors, "migration_lock.toml: the provider is \"%s\", but migrated manages a "
                                             "%s database here (provider = \"%s\")", value,
                                             streq(expected_provider, "postgresql") ? "PostgreSQL" : "SQLite",
                                             expected_provider) ?: 1;
                return r;
        }
        return 0;
}

/* Prisma's own state of a migration: the digests of the up script's line-ending variants. */
typedef struct prisma_data {
        unsigned char digests[3][32];
} prisma_data;

/* The three scripts Prisma compares checksums against: as is, CRLF made LF, LF made CRLF. */
static int prisma_prepare(migration *m) {
        const char *sql = m->up.sql;
        size_t n = m->up.size, lf = 0, k = 0;
        prisma_data *d;
        char *v;
        int r;

        d = calloc(1, sizeof(*d));
        if (!d)
                return -ENOMEM;
        m->format_data = d;
        r = sha256_raw(sql, n, d->digests[0]);
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
        r = sha256_raw(v, k, d->digests[1]);
        k = 0;
        for (size_t i = 0; r >= 0 && i < n; i++) {
                if (sql[i] == '\n')
                        v[k++] = '\r';
                v[k++] = sql[i];
        }
        if (r >= 0)
                r = sha256_raw(v, k, d->digests[2]);
        free(v);
        return r;
}

/* Any of the line-ending variants, in the old unpadded form too. */
static bool prisma_checksum_also_matches(const migration *m, const char *recorded) {
        const prisma_data *d = m->format_data;
        char hex[SHA256_HEX_SIZE];

        for (int i = 0; d && i < 3; i++) {
                /* old Prisma versions wrote the hex without zero padding */
                if (strlen(recorded) == 64)
                        sha256_format(d->digests[i], hex);
                else
                        sha256_format_unpadded(d->digests[i], hex);
                if (streq(hex, recorded))
                        return true;
        }
        return false;
}

/* The leading number of a folder's name: its version, 0 when there is none or it is too large. */
static int64_t folder_version(const char *folder) {
        int64_t v = 0;

        for (const char *p = folder; isdigit((unsigned char) *p); p++) {
                if (v > (INT64_MAX - (*p - '0')) / 10)
                        return 0;
                v = v * 10 + (*p - '0');
        }
        return v;
}

/* One migration folder: "<digits>_<name>" (or "<digits>-<name>") holding migration.sql. Prisma
 * itself takes any folder name (its CLI writes a 14-digit UTC timestamp, '_' and the name); migrated
 * needs the leading number as the migration's version. Returns 1 for a problem that was recorded
 * in errors. */
static int load_folder(int dir_fd, const char *folder, const migration_set *previous, migration *m,
                       migdir_errors *errors) {
        _cleanup_free_ char *up = NULL, *down = NULL;
        const char *p = folder;
        int64_t version = folder_version(folder);
        struct stat st;
        int r;

        while (isdigit((unsigned char) *p))
                p++;
        if (p != folder && version == 0 && strspn(folder, "0") != (size_t) (p - folder))
                return migdir_error_add(errors, "%s: the timestamp is too large", folder) ?: 1;
        if (p == folder || (*p != '_' && *p != '-') || !p[1] || version == 0)
                return migdir_error_add(errors, "%s: not a Prisma migration folder migrated can order (expected "
                                        "<timestamp>_<name>)", folder) ?: 1;
        for (const char *q = p + 1; *q; q++)
                if ((unsigned char) *q < 0x20 || *q == 0x7f)
                        return migdir_error_add(errors, "%s: the name contains a control character", folder) ?: 1;
        if (asprintf(&up, "%s/migration.sql", folder) < 0 || asprintf(&down, "%s/down.sql", folder) < 0)
                return -ENOMEM;
        if (fstatat(dir_fd, up, &st, 0) < 0)
                return migdir_error_add(errors, "%s: no migration.sql in this migration folder", folder) ?: 1;
        m->version = version;
        if (!(m->name = strdup(p + 1)) || !(m->key = strdup(folder)) ||
            !(m->version_key = strndup(folder, (size_t) (p - folder))))
                return -ENOMEM;
        r = migdir_read_script(dir_fd, up, &migration_format_prisma, previous, version, true, &m->up, m->checksum,
                               errors);
        if (r != 0)
                return r;
        if (fstatat(dir_fd, down, &st, 0) == 0) {
                char unused[SHA256_HEX_SIZE];
                r = migdir_read_script(dir_fd, down, &migration_format_prisma, previous, version, false, &m->down,
                                       unused, errors);
                if (r != 0)
                        return r;
        }
        return 0;
}

/* Every subdirectory is a migration folder; files beside them (migration_lock.toml, READMEs) are
 * not migrations. */
static bool is_folder(int dir_fd, const char *name) {
        struct stat st;

        return name[0] != '.' && fstatat(dir_fd, name, &st, 0) == 0 && S_ISDIR(st.st_mode);
}

/* A bad folder is one item: the others stay usable (its leading number, if any, says which plans
 * would need it). */
static int prisma_load_items(int dir_fd, const migration_set *previous, migration_set *s, migdir_errors *errors) {
        return migdir_load_entries(dir_fd, previous, s, errors, is_folder, load_folder, folder_version);
}

/* The weight of a character in the order of JavaScript's localeCompare (ICU's root collation)
 * for ASCII: spaces and punctuation, then digits, then letters whatever their case. */
static int collation_class(unsigned char c) {
        if (isdigit(c))
                return 1;
        if (isalpha(c))
                return 2;
        return c < 0x80 ? 0 : 3;
}

/* Prisma applies its folders in the order of localeCompare on their names; migrated identifies a
 * migration by its timestamp, so two folders with the same one are the same version (a
 * duplicate). Punctuation sorts before digits there, so "1_init" comes before "10_users" (a byte
 * comparison says otherwise). */
static int prisma_compare(const migration *a, const migration *b) {
        const unsigned char *x = (const unsigned char *) (a->key ?: ""), *y = (const unsigned char *) (b->key ?: "");

        if (a->version == b->version)
                return 0;
        for (; *x && *y; x++, y++) {
                int cx = collation_class(*x), cy = collation_class(*y), lx = tolower(*x), ly = tolower(*y);
                if (cx != cy)
                        return cx < cy ? -1 : 1;
                if (lx != ly)
                        return lx < ly ? -1 : 1;
        }
        if (*x || *y)
                return *x ? 1 : -1;
        return strcmp(a->key ?: "", b->key ?: "");
}

/* migration_lock.toml marks Prisma Migrate's directory. */
static bool prisma_detect(int dir_fd, const char **ret_reason) {
        if (faccessat(dir_fd, "migration_lock.toml", F_OK, 0) < 0)
                return false;
        if (ret_reason)
                *ret_reason = "migration_lock.toml is present";
        return true;
}

const migration_format migration_format_prisma = {
        .name = "prisma",
        .capability = "prisma",
        .layout = "<timestamp>_<name>/migration.sql, with an optional down.sql",
        .version_word = "timestamp",
        .directive_prefix = "-- migrated: ",
        .directives = "no-transaction",
        .baseline_untracked_tables = true,
        .detect = prisma_detect,
        .check_dir = check_provider,
        .load_items = prisma_load_items,
        .parse_directives = migration_parse_directives,
        .compare = prisma_compare,
        .prepare = prisma_prepare,
        .free_data = free,
        .checksum_also_matches = prisma_checksum_also_matches,
};
