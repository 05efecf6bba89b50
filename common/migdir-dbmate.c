/* SPDX-License-Identifier: MIT */
/* dbmate's layout: one file per migration, "<digits><anything>.sql" (dbmate new writes
 * YYYYMMDDHHMMSS_name.sql), holding a "-- migrate:up" block and a "-- migrate:down" block, each
 * with optional options on its directive line ("transaction:false"). The version is the text of
 * the leading digits, recorded as is in schema_migrations. Parsed as dbmate's migration.go does. */

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

/* Go's \s: what dbmate's regular expressions take as whitespace. */
static bool go_space(char c) {
        return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r';
}

/* Whether "--\s*migrate:<word>" followed by whitespace or the end starts at p, which is the start
 * of a line (dbmate's (?m)^--\s*migrate:up(\s*$|\s+\S+)). */
static bool directive_at(const char *p, const char *end, const char *word) {
        size_t n = strlen(word);

        if (end - p < 2 || p[0] != '-' || p[1] != '-')
                return false;
        for (p += 2; p < end && go_space(*p); p++)
                ;
        if ((size_t) (end - p) < 8 + n || memcmp(p, "migrate:", 8) != 0 || memcmp(p + 8, word, n) != 0)
                return false;
        p += 8 + n;
        return p == end || go_space(*p);
}

/* Every line start of [sql, end) where the directive begins, at most max of them in ret; returns
 * how many there are in all. */
static size_t find_directives(const char *sql, const char *end, const char *word, size_t *ret, size_t max) {
        size_t k = 0;

        for (const char *p = sql; p < end;) {
                const char *nl;

                if (directive_at(p, end, word)) {
                        if (k < max)
                                ret[k] = (size_t) (p - sql);
                        k++;
                }
                nl = memchr(p, '\n', (size_t) (end - p));
                if (!nl)
                        break;
                p = nl + 1;
        }
        return k;
}

/* dbmate refuses statements before the first block: only blank and comment lines may precede it. */
static bool statements_precede(const char *sql, size_t len) {
        const char *p = sql, *end = sql + len;

        while (p < end) {
                const char *nl = memchr(p, '\n', (size_t) (end - p)), *e = nl ?: end, *q = p;

                while (q < e && go_space(*q))
                        q++;
                if (q < e && !(e - q >= 2 && q[0] == '-' && q[1] == '-'))
                        return true;
                p = nl ? nl + 1 : end;
        }
        return false;
}

/* The up block runs from its directive to the down directive, the down block from there to the
 * end, both directive lines included (dbmate runs exactly these texts). One up block per file:
 * dbmate's SQLite driver would record the version once per block and fail on the second. */
static int dbmate_split(const char *sql, size_t size, size_t *ret_up_off, size_t *ret_up_len, size_t *ret_down_off,
                        size_t *ret_down_len, const char **ret_reason) {
        size_t up = 0, down = 0, n;

        n = find_directives(sql, sql + size, "up", &up, 1);
        if (n == 0) {
                *ret_reason = "no '-- migrate:up' line: dbmate requires each migration to define an up block";
                return -EINVAL;
        }
        if (n > 1) {
                *ret_reason = "more than one '-- migrate:up' block; migrated takes one up and one down block per file";
                return -EINVAL;
        }
        if (statements_precede(sql, up)) {
                *ret_reason = "statements precede the '-- migrate:up' line, which dbmate refuses";
                return -EINVAL;
        }
        n = find_directives(sql + up, sql + size, "down", &down, 1);
        if (n == 0) {
                *ret_reason = "no '-- migrate:down' line after '-- migrate:up': dbmate requires a down block "
                              "(it may be empty)";
                return -EINVAL;
        }
        if (n > 1) {
                *ret_reason = "more than one '-- migrate:down' line";
                return -EINVAL;
        }
        *ret_up_off = up;
        *ret_up_len = down;
        *ret_down_off = up + down;
        *ret_down_len = size - up - down;
        return 0;
}

/* Whether the pair [w, end) split at colon is transaction:<value>. */
static bool option_is(const char *w, const char *colon, const char *end, const char *value) {
        size_t n = strlen(value);

        return colon - w == 11 && memcmp(w, "transaction", 11) == 0 && (size_t) (end - colon - 1) == n &&
               memcmp(colon + 1, value, n) == 0;
}

/* The options of the block directive on the first line of [sql, sql + size), as dbmate's
 * parseMigrationOptions reads them: whitespace-separated key:value pairs after the directive.
 * transaction:false is the no-transaction flag and transaction:true the default. dbmate ignores
 * any other pair silently; migrated refuses it (*ret_bad), as a misspelt option would otherwise
 * change how the block runs without a word. Words that are not key:value pairs are ignored, as
 * dbmate ignores them (free text after the directive). */
static int block_options(const char *sql, size_t size, unsigned *ret_flags, char **ret_bad) {
        const char *end = memchr(sql, '\n', size) ?: sql + size, *p = sql;
        unsigned flags = 0;

        if (!directive_at(p, end, "up") && !directive_at(p, end, "down")) {
                *ret_flags = 0;
                return 0;
        }
        p = memchr(p, ':', (size_t) (end - p)) + 1; /* "migrate:" */
        while (p < end && !go_space(*p))
                p++;
        while (p < end) {
                const char *w, *colon;

                while (p < end && go_space(*p))
                        p++;
                for (w = p; p < end && !go_space(*p); p++)
                        ;
                if (p == w)
                        break;
                colon = memchr(w, ':', (size_t) (p - w));
                if (!colon || memchr(colon + 1, ':', (size_t) (p - colon - 1)))
                        continue; /* not a pair: dbmate skips it */
                /* a key given twice: the last one counts (dbmate's options are a map) */
                if (option_is(w, colon, p, "false"))
                        flags |= MIGRATION_NO_TRANSACTION;
                else if (option_is(w, colon, p, "true"))
                        flags &= ~MIGRATION_NO_TRANSACTION;
                else {
                        *ret_bad = strndup(w, (size_t) (p - w));
                        return -EINVAL;
                }
        }
        *ret_flags = flags;
        return 0;
}

/* The whole file's directives are its up block's: the first directive line of the file. */
static int dbmate_parse_directives(const char *sql, size_t size, unsigned *ret_flags, char **ret_bad) {
        size_t up = 0;

        *ret_flags = 0;
        if (find_directives(sql, sql + size, "up", &up, 1) == 0)
                return 0; /* the split says what is wrong */
        return block_options(sql + up, size - up, ret_flags, ret_bad);
}

/* dbmate's migrationFileRegexp, ^(\d+).*\.sql$: whether file is a migration at all. */
static bool is_migration_file(const char *file) {
        size_t len = strlen(file), digits = 0;

        while (isdigit((unsigned char) file[digits]))
                digits++;
        return digits > 0 && len >= digits + 4 && streq(file + len - 4, ".sql") && !strchr(file, '\n');
}

/* The version is the leading digits, the name the rest without '_' and ".sql". Returns 0, 1
 * (recorded) or -ENOMEM. */
static int parse_file_name(const char *file, migration *m, migdir_errors *errors) {
        size_t len = strlen(file), digits = 0;
        int64_t version = 0;
        const char *name;

        while (isdigit((unsigned char) file[digits]))
                digits++;
        for (size_t i = 0; i < digits; i++) {
                if (version > (INT64_MAX - (file[i] - '0')) / 10)
                        return migdir_error_add(errors, "%s: the version has too many digits", file) ?: 1;
                version = version * 10 + (file[i] - '0');
        }
        if (version == 0)
                return migdir_error_add(errors, "%s: version 0 is the empty schema; number migrations from 1",
                                        file) ?: 1;
        name = file + digits;
        if (*name == '_')
                name++;
        m->version = version;
        m->version_key = strndup(file, digits);
        /* "1.sql" has no name of its own: it goes by its version */
        m->name = file + len - 4 > name ? strndup(name, (size_t) (file + len - 4 - name)) : strndup(file, digits);
        return m->version_key && m->name ? 0 : -ENOMEM;
}

/* One file: both blocks, each with its own options (migdir_read_split gives both the up block's).
 * Returns 0, 1 (recorded) or -errno. */
static int load_file(int dir_fd, const char *file, const migration_set *previous, migration *m,
                     migdir_errors *errors) {
        _cleanup_free_ char *bad = NULL;
        int r;

        r = parse_file_name(file, m, errors);
        if (r != 0)
                return r;
        r = migdir_read_split(dir_fd, file, &migration_format_dbmate, previous, m, errors);
        if (r != 0)
                return r;
        r = block_options(m->down.sql, m->down.size, &m->down.flags, &bad);
        if (r < 0)
                return migdir_error_add(errors, "%s: unknown option '%s' on the '-- migrate:down' line (known: "
                                        "transaction:false)", file, bad ?: "") ?: 1;
        return 0;
}

/* dbmate applies files in the order of their names; migrated in the order of the versions. Where
 * the two differ ("10_b.sql" sorts before "9_a.sql") the directory is refused rather than run in
 * an order dbmate would not use. */
static int check_name_order(const migration_set *s, migdir_errors *errors) {
        for (size_t i = 0; i < s->n; i++)
                for (size_t j = 0; j < s->n; j++) {
                        const migration *a = &s->items[i], *b = &s->items[j];

                        if (a->version < b->version && strcmp(a->up.file, b->up.file) > 0)
                                return migdir_error_add(errors,
                                                        "%s: dbmate orders files by name, which puts %s first though "
                                                        "its version is higher; give the versions the same number "
                                                        "of digits", a->up.file, b->up.file) ?: 1;
                }
        return 0;
}

/* Every file whose name matches dbmate's pattern; others (schema.sql, READMEs, folders) are not
 * migrations, as for dbmate. */
static bool is_migration_entry(int dir_fd, const char *name) {
        struct stat st;

        return is_migration_file(name) && !(fstatat(dir_fd, name, &st, 0) == 0 && S_ISDIR(st.st_mode));
}

static int dbmate_load_items(int dir_fd, const migration_set *previous, migration_set *s, migdir_errors *errors) {
        int r, q;

        r = migdir_load_entries(dir_fd, previous, s, errors, is_migration_entry, load_file, NULL);
        if (r < 0)
                return r;
        q = check_name_order(s, errors);
        return q < 0 ? q : r > 0 || q > 0;
}

/* A file named like a dbmate migration whose text has a '-- migrate:up' line. */
static bool dbmate_detect(int dir_fd, const char **ret_reason) {
        struct dirent *de;
        bool found = false;
        DIR *d;

        d = migdir_opendir(dir_fd);
        if (!d)
                return false;
        while (!found && (de = readdir(d))) {
                char buf[65536];
                size_t digits = 0, len = strlen(de->d_name);
                ssize_t n;
                int fd;

                while (isdigit((unsigned char) de->d_name[digits]))
                        digits++;
                if (digits == 0 || de->d_name[digits] != '_' || len < digits + 5 ||
                    !streq(de->d_name + len - 4, ".sql"))
                        continue;
                fd = openat(dir_fd, de->d_name, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
                if (fd < 0)
                        continue;
                n = read(fd, buf, sizeof(buf));
                close(fd);
                found = n > 0 && find_directives(buf, buf + n, "up", NULL, 0) > 0;
        }
        closedir(d);
        if (found && ret_reason)
                *ret_reason = "a <version>_<name>.sql file has a '-- migrate:up' line (dbmate)";
        return found;
}

/* dbmate records no checksum: the recorded empty one is every file's. */
static bool dbmate_checksum_also_matches(const migration *m, const char *recorded) {
        return recorded[0] == '\0';
}

/* dbmate new: YYYYMMDDHHMMSS_name.sql (UTC) with dbmate's template. A clock behind the newest
 * version takes the next number instead, so that the new file still comes last. */
static int dbmate_new_files(const migration_set *s, const char *name, migration_new *ret) {
        int64_t latest = migration_set_latest(s), version = migdir_timestamp_version_now();

        if (version <= latest) {
                if (latest == INT64_MAX)
                        return -EOVERFLOW;
                version = latest + 1;
        }
        return migdir_new_add(ret, version, migdir_strdupf("%" PRId64 "_%s.sql", version, name),
                              strdup("-- migrate:up\n\n\n-- migrate:down\n\n"));
}

const migration_format migration_format_dbmate = {
        .name = "dbmate",
        .capability = "dbmate",
        .layout = "<version>_<name>.sql with '-- migrate:up' and '-- migrate:down' blocks",
        .version_word = "version",
        .directive_prefix = "-- migrate:up ",
        .directives = "transaction:false",
        .detect = dbmate_detect,
        .load_items = dbmate_load_items,
        .split = dbmate_split,
        .parse_directives = dbmate_parse_directives,
        .compare = migdir_compare_integer,
        .checksum_also_matches = dbmate_checksum_also_matches,
        .new_files = dbmate_new_files,
};
