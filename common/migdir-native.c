/* SPDX-License-Identifier: MIT */
/* migrated's own layout: NNNN_name.up.sql with an optional NNNN_name.down.sql, directives in
 * "-- migrated: ..." lines of the leading comments, the SHA-256 of the up file as its checksum. */

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "migdir-internal.h"

/* Versions from here up are taken for YYYYMMDDHHMMSS timestamps (14 digits). */
#define TIMESTAMP_VERSION_MIN INT64_C(10000000000000)

typedef struct dir_entry {
        int64_t version;
        char *name;
        char *file;
        bool up;
} dir_entry;

static void dir_entries_free(dir_entry *e, size_t n) {
        for (size_t i = 0; i < n; i++) {
                free(e[i].name);
                free(e[i].file);
        }
        free(e);
}

bool migration_name_is_valid(const char *name) {
        size_t n = 0;

        for (const char *p = name; *p; p++, n++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
                        return false;
        return n > 0 && n <= MIGRATION_NAME_MAX;
}

int migration_parse_filename(const char *file, int64_t *ret_version, char **ret_name, bool *ret_up,
                             const char **ret_reason) {
        const char *p = file, *us, *suffix;
        int64_t version = 0;
        size_t digits = 0, len = strlen(file), name_len;
        bool up;
        char *name;

#define FAIL(reason)                               \
        do {                                       \
                if (ret_reason)                    \
                        *ret_reason = (reason);    \
                return -EINVAL;                    \
        } while (0)

        if (len > 8 && streq(file + len - 7, ".up.sql")) {
                up = true;
                suffix = file + len - 7;
        } else if (len > 10 && streq(file + len - 9, ".down.sql")) {
                up = false;
                suffix = file + len - 9;
        } else
                FAIL("the name must end in .up.sql or .down.sql");

        for (; *p >= '0' && *p <= '9'; p++, digits++) {
                if (version > (INT64_MAX - (*p - '0')) / 10)
                        FAIL("the version number is too large");
                version = version * 10 + (*p - '0');
        }
        if (digits == 0)
                FAIL("the name must start with a version number");
        if (version == 0)
                FAIL("version 0 is reserved for the empty schema");
        if (*p != '_')
                FAIL("the version must be followed by '_' and a name");
        us = p + 1;
        if (us >= suffix)
                FAIL("the name after the version is empty");
        name_len = (size_t) (suffix - us);
        if (name_len > MIGRATION_NAME_MAX)
                FAIL("the name is longer than 200 characters");
        for (const char *q = us; q < suffix; q++)
                if (!((*q >= 'a' && *q <= 'z') || (*q >= '0' && *q <= '9') || *q == '_'))
                        FAIL("the name may contain only a-z, 0-9 and '_'");
#undef FAIL
        name = strndup(us, name_len);
        if (!name)
                return -ENOMEM;
        *ret_version = version;
        *ret_name = name;
        *ret_up = up;
        return 0;
}

int migration_parse_directives(const char *sql, size_t size, unsigned *ret_flags, char **ret_bad) {
        const char *p = sql, *end = sql + size;
        unsigned flags = 0;

        while (p < end) {
                const char *eol = memchr(p, '\n', (size_t) (end - p)), *q = p, *v, *ve;
                if (!eol)
                        eol = end;
                while (q < eol && isspace((unsigned char) *q))
                        q++;
                if (q == eol) { /* blank line */
                        p = eol + 1;
                        continue;
                }
                if (eol - q < 2 || q[0] != '-' || q[1] != '-')
                        break; /* first statement: directives only in the leading comments */
                q += 2;
                while (q < eol && (*q == ' ' || *q == '\t'))
                        q++;
                if ((size_t) (eol - q) >= 9 && strneq(q, "migrated:", 9)) {
                        v = q + 9;
                        while (v < eol && isspace((unsigned char) *v))
                                v++;
                        ve = eol;
                        while (ve > v && isspace((unsigned char) ve[-1]))
                                ve--;
                        if ((size_t) (ve - v) == 14 && strneq(v, "no-transaction", 14))
                                flags |= MIGRATION_NO_TRANSACTION;
                        else if ((size_t) (ve - v) == 6 && strneq(v, "online", 6) && !(flags & MIGRATION_BREAKING))
                                flags |= MIGRATION_ONLINE;
                        else if ((size_t) (ve - v) == 8 && strneq(v, "breaking", 8) && !(flags & MIGRATION_ONLINE))
                                flags |= MIGRATION_BREAKING;
                        else if ((size_t) (ve - v) > 7 && strneq(v, "accept ", 7))
                                ; /* a lint rule accepted for this file: migration_accepts_rule() */
                        else {
                                if (ret_bad)
                                        *ret_bad = strndup(v, (size_t) (ve - v));
                                return -EINVAL;
                        }
                }
                p = eol + 1;
        }
        *ret_flags = flags;
        return 0;
}

bool migration_accepts_rule(const char *sql, size_t size, const char *rule) {
        const char *p = sql, *end = sql + size;
        size_t rl = strlen(rule);

        while (p < end) {
                const char *eol = memchr(p, '\n', (size_t) (end - p)), *q = p, *ve;
                if (!eol)
                        eol = end;
                while (q < eol && isspace((unsigned char) *q))
                        q++;
                if (q != eol && (eol - q < 2 || q[0] != '-' || q[1] != '-'))
                        break; /* directives only in the leading comments */
                q += q != eol ? 2 : 0;
                while (q < eol && (*q == ' ' || *q == '\t'))
                        q++;
                ve = eol;
                while (ve > q && isspace((unsigned char) ve[-1]))
                        ve--;
                if ((size_t) (ve - q) == 17 + rl && strneq(q, "migrated: accept ", 17) &&
                    strneq(q + 17, rule, rl))
                        return true;
                p = eol + 1;
        }
        return false;
}

static int entry_cmp(const void *a, const void *b) {
        const dir_entry *x = a, *y = b;

        if (x->version != y->version)
                return x->version < y->version ? -1 : 1;
        if (x->up != y->up)
                return x->up ? -1 : 1;
        return strcmp(x->file, y->file);
}

static int scan_entries(DIR *d, dir_entry **ret, size_t *ret_n, migdir_errors *errors, bool *bad) {
        dir_entry *entries = NULL;
        size_t n = 0;
        struct dirent *de;
        int r;

        while ((errno = 0, de = readdir(d))) {
                const char *reason = NULL;
                size_t len = strlen(de->d_name);
                dir_entry e = {};
                struct stat st;

                if (de->d_name[0] == '.' || len < 4 || !streq(de->d_name + len - 4, ".sql"))
                        continue; /* hidden files, READMEs, lock files: not ours */
                if (fstatat(dirfd(d), de->d_name, &st, 0) == 0 && S_ISDIR(st.st_mode))
                        continue;
                r = migration_parse_filename(de->d_name, &e.version, &e.name, &e.up, &reason);
                if (r == -ENOMEM)
                        goto fail;
                if (r < 0) {
                        *bad = true;
                        r = migdir_error_add(errors, "%s: not a migration file name (expected NNNN_name.up.sql or "
                                       "NNNN_name.down.sql): %s", de->d_name, reason);
                        if (r < 0)
                                goto fail;
                        continue;
                }
                dir_entry *m = realloc(entries, (n + 1) * sizeof(*entries));
                if (!m) {
                        free(e.name);
                        r = -ENOMEM;
                        goto fail;
                }
                entries = m;
                e.file = strdup(de->d_name);
                entries[n++] = e;
                if (!e.file) {
                        r = -ENOMEM;
                        goto fail;
                }
        }
        if (errno != 0) {
                r = -errno;
                goto fail;
        }
        if (n > 0)
                qsort(entries, n, sizeof(*entries), entry_cmp);
        *ret = entries;
        *ret_n = n;
        return 0;
fail:
        dir_entries_free(entries, n);
        return r;
}

/* Checks one version's group of files [i, j) and fills *m when it forms a valid migration. */
static int build_migration(int dir_fd, const dir_entry *e, size_t i, size_t j, const migration_set *previous,
                           migration *m, migdir_errors *errors) {
        size_t ups = 0, downs = 0, up_i = i, down_i = i;
        int r, bad = 0;

        for (size_t k = i; k < j; k++) {
                if (e[k].up) {
                        if (ups++ == 0)
                                up_i = k;
                } else if (downs++ == 0)
                        down_i = k;
        }
        if (ups > 1)
                for (size_t k = up_i + 1; k < j; k++)
                        if (e[k].up) {
                                r = migdir_error_add(errors, "%s: duplicate version %" PRId64 ", also used by %s", e[k].file,
                                               e[k].version, e[up_i].file);
                                if (r < 0)
                                        return r;
                                bad = 1;
                        }
        if (ups == 0) {
                for (size_t k = i; k < j; k++) {
                        /* name the up file as the user would write it: same prefix, same padding */
                        size_t stem = strlen(e[k].file) - strlen(".down.sql");
                        r = migdir_error_add(errors, "%s: down migration without its up file (expected %.*s.up.sql)",
                                       e[k].file, (int) stem, e[k].file);
                        if (r < 0)
                                return r;
                }
                return 1;
        }
        if (downs > 1 || (downs == 1 && !streq(e[down_i].name, e[up_i].name))) {
                for (size_t k = i; k < j; k++)
                        if (!e[k].up && (downs > 1 || !streq(e[k].name, e[up_i].name))) {
                                r = migdir_error_add(errors, "%s: down migration does not match its up file %s (the names "
                                               "must be equal)", e[k].file, e[up_i].file);
                                if (r < 0)
                                        return r;
                        }
                bad = 1;
        }
        if (bad)
                return 1;

        m->version = e[up_i].version;
        m->name = strdup(e[up_i].name);
        m->version_key = strndup(e[up_i].file, strcspn(e[up_i].file, "_"));
        if (!m->name || !m->version_key)
                return -ENOMEM;
        r = migdir_read_script(dir_fd, e[up_i].file, &migration_format_native, previous, m->version, true, &m->up,
                               m->checksum, errors);
        if (r != 0)
                return r;
        if (downs == 1) {
                char unused[SHA256_HEX_SIZE];
                r = migdir_read_script(dir_fd, e[down_i].file, &migration_format_native, previous, m->version, false,
                                       &m->down, unused, errors);
                if (r != 0)
                        return r;
        }
        return 0;
}

/* Groups the files by version: one up file, at most one down file of the same name. */
static int native_load_items(int dir_fd, const migration_set *previous, migration_set *s, migdir_errors *errors) {
        dir_entry *entries = NULL;
        size_t n = 0;
        bool bad = false;
        int r;
        DIR *d;

        d = migdir_opendir(dir_fd);
        if (!d)
                return -errno;
        r = scan_entries(d, &entries, &n, errors, &bad);
        if (r < 0)
                goto out;
        for (size_t i = 0, j; i < n; i = j) {
                migration *m;

                for (j = i + 1; j < n && entries[j].version == entries[i].version; j++)
                        ;
                m = migdir_set_add(s);
                if (!m) {
                        r = -ENOMEM;
                        goto out;
                }
                r = build_migration(dir_fd, entries, i, j, previous, m, errors);
                if (r != 0)
                        migdir_set_drop_last(s);
                if (r < 0)
                        goto out;
                if (r > 0)
                        bad = true;
        }
        r = bad;
out:
        dir_entries_free(entries, n);
        closedir(d);
        return r;
}

int migdir_compare_integer(const migration *a, const migration *b) {
        return a->version < b->version ? -1 : a->version > b->version;
}

int migration_set_version_width(const migration_set *s) {
        int width = 4;

        for (size_t i = 0; s && i < s->n; i++) {
                int w = snprintf(NULL, 0, "%" PRId64, s->items[i].version);
                /* files keep their own zero padding; the name tells the width in use */
                const char *u = strchr(s->items[i].up.file, '_');
                if (u && u - s->items[i].up.file > w)
                        w = (int) (u - s->items[i].up.file);
                if (w > width)
                        width = w;
        }
        return width;
}

static int64_t utc_timestamp_version(time_t now) {
        struct tm tm;

        if (!gmtime_r(&now, &tm))
                return 0;
        return (int64_t) (tm.tm_year + 1900) * INT64_C(10000000000) + (int64_t) (tm.tm_mon + 1) * 100000000 +
               (int64_t) tm.tm_mday * 1000000 + tm.tm_hour * 10000 + tm.tm_min * 100 + tm.tm_sec;
}

int64_t migdir_timestamp_version_now(void) {
        return utc_timestamp_version(time(NULL));
}

/* A directory numbered by timestamps stays numbered by timestamps; a sequence goes on by one.
 * Either way the new version sorts after every existing one. */
int migdir_next_version(const migration_set *s, int64_t *ret) {
        int64_t latest = migration_set_latest(s), ts;

        if (latest == INT64_MAX)
                return -EOVERFLOW;
        if (latest >= TIMESTAMP_VERSION_MIN) {
                ts = utc_timestamp_version(time(NULL));
                if (ts > latest) {
                        *ret = ts;
                        return 0;
                }
        }
        *ret = latest + 1;
        return 0;
}

/* NNNN_name.up.sql and .down.sql with comment headers. No line may start with "migrated:",
 * which would be read as a directive. */
static int native_new_files(const migration_set *s, const char *name, migration_new *ret) {
        _cleanup_free_ char *base = NULL;
        char when[MIGDIR_NOW_TEXT_MAX];
        int64_t version;
        int r;

        r = migdir_next_version(s, &version);
        if (r < 0)
                return r;
        migdir_now_text(when);
        if (migdir_asprintf(&base, "%0*" PRId64 "_%s", migration_set_version_width(s), version, name) < 0)
                return -ENOMEM;
        r = migdir_new_add(ret, version, migdir_strdupf("%s.up.sql", base),
                           migdir_strdupf("-- %s: up (created %s by migratectl new)\n"
                                          "-- Applied by `migratectl up`, in one transaction with the rest of the plan.\n"
                                          "-- Once applied, do not edit this file (its checksum is recorded): "
                                          "add a new migration.\n"
                                          "\n",
                                          base, when));
        if (r < 0)
                return r;
        return migdir_new_add(ret, version, migdir_strdupf("%s.down.sql", base),
                              migdir_strdupf("-- %s: down\n"
                                             "-- Undoes %s.up.sql for `migratectl down`. Delete this file if the change\n"
                                             "-- cannot be undone: the migration is then irreversible.\n"
                                             "\n",
                                             base, base));
}

const migration_format migration_format_native = {
        .name = "native",
        .layout = "NNNN_name.up.sql and NNNN_name.down.sql",
        .version_word = "version",
        .directive_prefix = "-- migrated: ",
        .directives = "no-transaction",
        .load_items = native_load_items,
        .parse_directives = migration_parse_directives,
        .compare = migdir_compare_integer,
        .new_files = native_new_files,
};
