/* SPDX-License-Identifier: MIT */
/* golang-migrate's layout: {version}_{title}.up.sql with an optional {version}_{title}.down.sql,
 * named as the tool's own parser accepts them (source/parse.go:
 * ^([0-9]+)_(.*)\.(down|up)\.(.*)$, the version an unsigned integer): version 0 and zero padding
 * are fine, the title may hold any character and may even be empty. The tool has no in-file
 * directives: each file is one multi-statement script; migrated's "-- migrated: no-transaction"
 * (a comment to the tool) stands in for its x-no-tx-wrap URL option. */

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "migdir-golang-migrate.h"
#include "migdir-internal.h"

typedef struct gm_entry {
        int64_t version;
        char *title;
        char *file;
        bool up;
} gm_entry;

static void gm_entries_free(gm_entry *e, size_t n) {
        for (size_t i = 0; i < n; i++) {
                free(e[i].title);
                free(e[i].file);
        }
        free(e);
}

int golang_migrate_parse_filename(const char *file, int64_t *ret_version, char **ret_title, bool *ret_up,
                                  const char **ret_reason) {
        size_t len = strlen(file), digits = 0;
        const char *p = file, *suffix;
        uint64_t version = 0;
        bool up;

        /* the tool's regex takes any extension; a SQL database's migrations are the .sql ones */
        if (len >= 7 && streq(file + len - 7, ".up.sql")) {
                up = true;
                suffix = file + len - 7;
        } else if (len >= 9 && streq(file + len - 9, ".down.sql")) {
                up = false;
                suffix = file + len - 9;
        } else {
                *ret_reason = "the name must end in .up.sql or .down.sql";
                return -EINVAL;
        }
        for (; p < suffix && *p >= '0' && *p <= '9'; p++, digits++) {
                if (version > (UINT64_MAX - (uint64_t) (*p - '0')) / 10) {
                        *ret_reason = "the version is larger than an unsigned 64-bit integer";
                        return -EINVAL;
                }
                version = version * 10 + (uint64_t) (*p - '0');
        }
        if (digits == 0 || p >= suffix || *p != '_') {
                *ret_reason = "the name must start with a version number and '_'";
                return -EINVAL;
        }
        if (version > (uint64_t) INT64_MAX) {
                /* the tool takes any uint64; the protocol carries signed 64-bit versions */
                *ret_reason = "the version is larger than 9223372036854775807, the largest migrated can carry";
                return -EINVAL;
        }
        *ret_title = strndup(p + 1, (size_t) (suffix - p - 1));
        if (!*ret_title)
                return -ENOMEM;
        *ret_version = (int64_t) version;
        *ret_up = up;
        return 0;
}

static int entry_cmp(const void *a, const void *b) {
        const gm_entry *x = a, *y = b;

        if (x->version != y->version)
                return x->version < y->version ? -1 : 1;
        if (x->up != y->up)
                return x->up ? -1 : 1;
        return strcmp(x->file, y->file);
}

/* Every .sql file of the directory, parsed and sorted; a .sql file the tool would not read is
 * an error naming it, rather than a migration silently left out. */
static int scan(int dir_fd, gm_entry **ret, size_t *ret_n, migdir_errors *errors, bool *bad) {
        gm_entry *entries = NULL;
        struct dirent *de;
        size_t n = 0;
        int r = 0;
        DIR *d;

        d = migdir_opendir(dir_fd);
        if (!d)
                return -errno;
        while ((errno = 0, de = readdir(d))) {
                size_t len = strlen(de->d_name);
                const char *reason = NULL;
                gm_entry e = {}, *m;
                struct stat st;

                if (de->d_name[0] == '.' || len < 4 || !streq(de->d_name + len - 4, ".sql"))
                        continue;
                if (fstatat(dir_fd, de->d_name, &st, 0) == 0 && S_ISDIR(st.st_mode))
                        continue;
                r = golang_migrate_parse_filename(de->d_name, &e.version, &e.title, &e.up, &reason);
                if (r == -ENOMEM)
                        break;
                if (r < 0) {
                        *bad = true;
                        r = migdir_error_add(errors, "%s: not a golang-migrate file name (expected "
                                             "{version}_{title}.up.sql or .down.sql): %s", de->d_name, reason);
                        if (r < 0)
                                break;
                        continue;
                }
                m = realloc(entries, (n + 1) * sizeof(*entries));
                e.file = strdup(de->d_name);
                if (!m || !e.file) {
                        free(e.title);
                        free(e.file);
                        if (m)
                                entries = m;
                        r = -ENOMEM;
                        break;
                }
                entries = m;
                entries[n++] = e;
        }
        if (r >= 0 && errno != 0)
                r = -errno;
        closedir(d);
        if (r < 0) {
                gm_entries_free(entries, n);
                return r;
        }
        if (n > 0)
                qsort(entries, n, sizeof(*entries), entry_cmp);
        *ret = entries;
        *ret_n = n;
        return 0;
}

/* One version's files [i, j): exactly one up, at most one down (the tool refuses a second file
 * of either direction as a duplicate; the titles of up and down need not match). */
static int build(int dir_fd, const gm_entry *e, size_t i, size_t j, const migration_set *previous, migration *m,
                 migdir_errors *errors) {
        size_t up = SIZE_MAX, down = SIZE_MAX;
        int r, bad = 0;

        for (size_t k = i; k < j; k++) {
                size_t *slot = e[k].up ? &up : &down;
                if (*slot != SIZE_MAX) {
                        r = migdir_error_add(errors, "%s: duplicate version %" PRId64 ", also used by %s", e[k].file,
                                             e[k].version, e[*slot].file);
                        if (r < 0)
                                return r;
                        bad = 1;
                        continue;
                }
                *slot = k;
        }
        if (up == SIZE_MAX)
                return migdir_error_add(errors, "%s: down migration without its up file (version %" PRId64 ")",
                                        e[i].file, e[i].version) ?: 1;
        if (bad)
                return 1;
        m->version = e[up].version;
        m->name = strdup(e[up].title);
        m->version_key = strndup(e[up].file, strcspn(e[up].file, "_"));
        if (!m->name || !m->version_key)
                return -ENOMEM;
        r = migdir_read_script(dir_fd, e[up].file, &migration_format_golang_migrate, previous, m->version, true,
                               &m->up, m->checksum, errors);
        if (r != 0 || down == SIZE_MAX)
                return r;
        char unused[SHA256_HEX_SIZE];
        return migdir_read_script(dir_fd, e[down].file, &migration_format_golang_migrate, previous, m->version, false,
                                  &m->down, unused, errors);
}

/* The version before each migration, in the directory's order, is kept with it: going down,
 * golang-migrate records the previous migration's version (or no row below the first). */
static int gm_load_items(int dir_fd, const migration_set *previous, migration_set *s, migdir_errors *errors) {
        gm_entry *entries = NULL;
        int64_t prev = GOLANG_MIGRATE_NIL_VERSION;
        bool bad = false;
        size_t n = 0;
        int r;

        r = scan(dir_fd, &entries, &n, errors, &bad);
        if (r < 0)
                return r;
        for (size_t i = 0, j; i < n; i = j) {
                int64_t *data;
                migration *m;

                for (j = i + 1; j < n && entries[j].version == entries[i].version; j++)
                        ;
                m = migdir_set_add(s);
                if (!m) {
                        r = -ENOMEM;
                        break;
                }
                r = build(dir_fd, entries, i, j, previous, m, errors);
                if (r == 0) {
                        data = malloc(sizeof(*data));
                        if (!data)
                                r = -ENOMEM;
                        else {
                                *data = prev;
                                m->format_data = data;
                                prev = m->version;
                        }
                }
                if (r != 0) {
                        free(m->format_data);
                        m->format_data = NULL;
                        migdir_set_drop_last(s);
                }
                if (r < 0)
                        break;
                if (r > 0)
                        bad = true;
                r = 0;
        }
        gm_entries_free(entries, n);
        return r < 0 ? r : bad;
}

int64_t golang_migrate_previous_version(const migration *m) {
        return m->format == &migration_format_golang_migrate && m->format_data ? *(const int64_t *) m->format_data
                                                                                : GOLANG_MIGRATE_NIL_VERSION;
}

/* A name only golang-migrate accepts: a set that uses one is not migrated's own. */
static bool gm_detect(int dir_fd, const char **ret_reason) {
        static char reason[MIGRATION_NAME_MAX + 160];
        struct dirent *de;
        bool found = false;
        DIR *d;

        d = migdir_opendir(dir_fd);
        if (!d)
                return false;
        while (!found && (de = readdir(d))) {
                _cleanup_free_ char *title = NULL, *name = NULL;
                const char *why = NULL, *native_why = NULL;
                int64_t version;
                bool up;

                if (golang_migrate_parse_filename(de->d_name, &version, &title, &up, &why) < 0)
                        continue;
                if (migration_parse_filename(de->d_name, &version, &name, &up, &native_why) == 0)
                        continue;
                snprintf(reason, sizeof(reason), "%.*s is a golang-migrate name outside migrated's own rules (%s)",
                         MIGRATION_NAME_MAX, de->d_name, native_why);
                found = true;
        }
        closedir(d);
        if (found && ret_reason)
                *ret_reason = reason;
        return found;
}

/* The names `migrate create -ext sql -seq -digits 6 NAME` writes (the directory's own width),
 * or its timestamp form (-format 20060102150405, UTC) in a directory numbered by timestamps. */
static int gm_new_files(const migration_set *s, const char *name, migration_new *ret) {
        _cleanup_free_ char *base = NULL;
        int64_t version;
        int width, r;

        r = migdir_next_version(s, &version);
        if (r < 0)
                return r;
        width = s && s->n > 0 ? migration_set_version_width(s) : 6;
        if (migdir_asprintf(&base, "%0*" PRId64 "_%s", width, version, name) < 0)
                return -ENOMEM;
        r = migdir_new_add(ret, version, migdir_strdupf("%s.up.sql", base),
                           migdir_strdupf("-- %s: up (golang-migrate layout)\n\n", base));
        if (r < 0)
                return r;
        return migdir_new_add(ret, version, migdir_strdupf("%s.down.sql", base),
                              migdir_strdupf("-- %s: down; delete this file if the change cannot be undone\n\n", base));
}

const migration_format migration_format_golang_migrate = {
        .name = "golang-migrate",
        .capability = "golang-migrate",
        .layout = "{version}_{title}.up.sql and {version}_{title}.down.sql (golang-migrate)",
        .version_word = "version",
        /* the tool has none; migrated's own, a comment to the tool, marks what its x-no-tx-wrap
         * URL option would run outside a transaction (VACUUM, transaction statements inside) */
        .directive_prefix = "-- migrated: ",
        .directives = "no-transaction",
        .detect = gm_detect,
        .load_items = gm_load_items,
        .parse_directives = migration_parse_directives,
        .compare = migdir_compare_integer,
        .free_data = free,
        .new_files = gm_new_files,
};
