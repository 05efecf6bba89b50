/* SPDX-License-Identifier: MIT */
/* Flyway's layout of SQL migrations: V<version>__<description>.sql, with U<version>__<description>.sql
 * as the undo (the down) of V<version>. Versions are Flyway's dotted versions ("1.2.10", with '_'
 * read as '.'), compared part by part as numbers, trailing zero parts ignored (1.0 is 1). The
 * checksum is Flyway's: CRC-32 over the lines without their line breaks and without a leading BOM,
 * stored as a signed 32-bit integer. */

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

/* The packing of a version into the integer the protocol and the planner carry (see
 * migration_flyway_version): major * 10^5 + minor * 10^3 + patch. */
#define FLYWAY_MINOR_LIMIT 100
#define FLYWAY_PATCH_LIMIT 1000
#define FLYWAY_MAJOR_SCALE ((int64_t) FLYWAY_MINOR_LIMIT * FLYWAY_PATCH_LIMIT)
#define FLYWAY_MAJOR_MAX ((INT64_MAX - FLYWAY_MAJOR_SCALE + 1) / FLYWAY_MAJOR_SCALE)
/* Repeatables get the numbers above every packed version, in the order of their descriptions
 * (Flyway applies them in that order, after the versioned ones). */
#define FLYWAY_REPEATABLE_BASE ((FLYWAY_MAJOR_MAX + 1) * FLYWAY_MAJOR_SCALE)
/* Majors from here up are YYYYMMDDHHMMSS timestamps (14 digits) for `new`. */
#define FLYWAY_TIMESTAMP_MIN INT64_C(10000000000000)

#define FAIL(reason)                            \
        do {                                    \
                if (ret_reason)                 \
                        *ret_reason = (reason); \
                return -EINVAL;                 \
        } while (0)

/* Flyway splits a version at every '.' (or '_') into numbers and drops trailing zero parts; we
 * pack up to three parts in an int64 that orders as Flyway orders them, so that the planner and
 * the protocol, which carry versions as integers, keep Flyway's order. */
int migration_flyway_version(const char *text, size_t len, int64_t *ret, char **ret_key, const char **ret_reason) {
        int64_t parts[3] = {};
        size_t n = 0, i = 0;
        char *key;

        if (len == 0)
                FAIL("the version is empty");
        while (i < len) {
                int64_t v = 0;
                size_t start = i;

                for (; i < len && isdigit((unsigned char) text[i]); i++) {
                        if (v > (INT64_MAX - (text[i] - '0')) / 10)
                                FAIL("a part of the version is too large");
                        v = v * 10 + (text[i] - '0');
                }
                if (i == start || (i < len && text[i] != '.' && text[i] != '_') || (i < len && i + 1 == len))
                        FAIL("the version may contain only digits separated by '.' or '_' (1, 1.2, 2_1)");
                i++; /* the separator */
                if (v == 0 && n >= 1) {
                        /* a zero part counts only when a non-zero part follows: keep it pending */
                        bool later = false;
                        for (size_t j = i; j < len; j++)
                                if (text[j] >= '1' && text[j] <= '9')
                                        later = true;
                        if (!later)
                                break;
                }
                if (n == 3)
                        FAIL("migrated orders Flyway versions of at most three parts (major.minor.patch)");
                parts[n++] = v;
        }
        if (parts[0] > FLYWAY_MAJOR_MAX || parts[1] >= FLYWAY_MINOR_LIMIT || parts[2] >= FLYWAY_PATCH_LIMIT)
                FAIL("migrated orders Flyway versions up to 92233720368546.99.999");
        if (parts[0] == 0 && parts[1] == 0 && parts[2] == 0)
                FAIL("version 0 is the empty schema");
        if (ret)
                *ret = parts[0] * FLYWAY_MAJOR_SCALE + parts[1] * FLYWAY_PATCH_LIMIT + parts[2];
        if (ret_key) {
                key = strndup(text, len);
                if (!key)
                        return -ENOMEM;
                for (char *p = key; *p; p++)
                        if (*p == '_')
                                *p = '.'; /* Flyway's display text, as its history records it */
                *ret_key = key;
        }
        return 0;
}

/* Bitwise CRC-32 (IEEE 802.3, reflected), as java.util.zip.CRC32 computes it. */
static uint32_t crc32_update(uint32_t crc, const char *p, size_t n) {
        crc = ~crc;
        for (size_t i = 0; i < n; i++) {
                crc ^= (unsigned char) p[i];
                for (int k = 0; k < 8; k++)
                        crc = (crc >> 1) ^ (0xEDB88320u & -(crc & 1u));
        }
        return ~crc;
}

/* Flyway's ChecksumCalculator reads the script line by line (a line ends at "\n", "\r" or
 * "\r\n"), drops a leading UTF-8 BOM and feeds each line's bytes without its break: that is the
 * CRC-32 of the text with every CR and LF removed. */
int32_t migration_flyway_checksum(const char *sql, size_t size) {
        uint32_t crc = 0;
        size_t i = 0;

        if (size >= 3 && memcmp(sql, "\xef\xbb\xbf", 3) == 0)
                i = 3;
        while (i < size) {
                size_t j = i;
                while (j < size && sql[j] != '\r' && sql[j] != '\n')
                        j++;
                crc = crc32_update(crc, sql + i, j - i);
                i = j + 1;
        }
        return (int32_t) crc;
}

/* The checksum a migration is recorded with: Flyway's, in decimal as its INT column reads. */
static int flyway_prepare(migration *m) {
        snprintf(m->checksum, sizeof(m->checksum), "%" PRId32, migration_flyway_checksum(m->up.sql, m->up.size));
        return 0;
}

/* "V1_2__add_users.sql": its prefix letter, version and description (underscores as spaces). */
static int parse_name(const char *file, char *ret_prefix, int64_t *ret_version, char **ret_key, char **ret_desc,
                      const char **ret_reason) {
        size_t len = strlen(file);
        const char *sep;
        char *desc;
        int r;

        if (len < 5 || !streq(file + len - 4, ".sql") || !strchr("VUR", file[0]))
                FAIL("not a Flyway SQL migration (V<version>__<description>.sql)");
        sep = strstr(file + 1, "__");
        if (!sep || sep >= file + len - 4)
                FAIL("the name needs '__' between the version and the description");
        if (sep + 2 == file + len - 4)
                FAIL("the description after '__' is empty");
        if (file[0] == 'R') {
                if (sep != file + 1)
                        FAIL("a repeatable migration has no version: R__<description>.sql");
                *ret_version = 0; /* given once every repeatable is known */
                *ret_key = NULL;
        } else {
                r = migration_flyway_version(file + 1, (size_t) (sep - file - 1), ret_version, ret_key, ret_reason);
                if (r < 0)
                        return r;
        }
        desc = strndup(sep + 2, (size_t) (file + len - 4 - sep - 2));
        if (!desc) {
                free(*ret_key);
                *ret_key = NULL;
                return -ENOMEM;
        }
        for (char *p = desc; *p; p++)
                if (*p == '_')
                        *p = ' ';
        *ret_prefix = file[0];
        *ret_desc = desc;
        return 0;
}

static bool is_candidate(int dir_fd, const char *name) {
        struct stat st;
        size_t len = strlen(name);

        return name[0] && strchr("VUR", name[0]) && len > 4 && streq(name + len - 4, ".sql") &&
               fstatat(dir_fd, name, &st, 0) == 0 && S_ISREG(st.st_mode);
}

/* One pass over the directory for one prefix: 'V' adds migrations, 'U' attaches their downs. */
static int load_pass(int dir_fd, char want, const migration_set *previous, migration_set *s, migdir_errors *errors) {
        struct dirent *de;
        bool bad = false;
        int r = 0;
        DIR *d;

        d = migdir_opendir(dir_fd);
        if (!d)
                return -errno;
        while ((de = readdir(d))) {
                _cleanup_free_ char *key = NULL, *desc = NULL;
                const char *reason = NULL;
                int64_t version;
                migration *m = NULL;
                char prefix;

                if (!is_candidate(dir_fd, de->d_name))
                        continue; /* flyway.conf, READMEs, Java migrations: not ours */
                r = parse_name(de->d_name, &prefix, &version, &key, &desc, &reason);
                if (r == -ENOMEM)
                        break;
                if (r < 0) {
                        /* every malformed name is reported once, by the V pass */
                        r = want == 'V' ? migdir_error_add(errors, "%s: %s", de->d_name, reason) : 0;
                        if (r < 0)
                                break;
                        bad = bad || want == 'V';
                        continue;
                }
                if (prefix != want)
                        continue;
                if (want == 'R')
                        version = FLYWAY_REPEATABLE_BASE; /* for now: numbered by repeatables_number() */
                if (want == 'U') {
                        for (size_t i = 0; i < s->n && !m; i++)
                                if (s->items[i].version == version)
                                        m = &s->items[i];
                        if (!m || m->down.file) {
                                r = migdir_error_add(errors,
                                                     m ? "%s: a second undo of version %s" :
                                                         "%s: an undo of version %s, which has no V migration",
                                                     de->d_name, key);
                                if (r < 0)
                                        break;
                                bad = true;
                                continue;
                        }
                        char unused[SHA256_HEX_SIZE];
                        r = migdir_read_script(dir_fd, de->d_name, &migration_format_flyway, previous, version, false,
                                               &m->down, unused, errors);
                } else {
                        m = migdir_set_add(s);
                        if (!m) {
                                r = -ENOMEM;
                                break;
                        }
                        m->version = version;
                        m->version_key = TAKE_PTR(key);
                        m->name = TAKE_PTR(desc);
                        r = migdir_read_script(dir_fd, de->d_name, &migration_format_flyway, previous, version, true,
                                               &m->up, m->checksum, errors);
                        if (r == 0 && want == 'R')
                                m->up.flags |= MIGRATION_REPEATABLE;
                        if (r != 0)
                                migdir_set_drop_last(s);
                }
                if (r < 0)
                        break;
                if (r > 0)
                        bad = true;
                r = 0;
        }
        closedir(d);
        return r < 0 ? r : bad;
}

static int by_description(const void *x, const void *y) {
        const migration *const *a = x, *const *b = y;

        return strcmp((*a)->name, (*b)->name);
}

/* Numbers the repeatables in the order of their descriptions, after every versioned migration;
 * two with one description are an error, as in Flyway. Returns 0, 1 (recorded) or -ENOMEM. */
static int repeatables_number(migration_set *s, migdir_errors *errors) {
        _cleanup_free_ migration **list = NULL;
        size_t n = 0;
        int bad = 0;

        list = calloc(s->n + 1, sizeof(migration *));
        if (!list)
                return -ENOMEM;
        for (size_t i = 0; i < s->n; i++)
                if (s->items[i].up.flags & MIGRATION_REPEATABLE)
                        list[n++] = &s->items[i];
        qsort(list, n, sizeof(migration *), by_description);
        for (size_t i = 0; i < n; i++) {
                if (i > 0 && streq(list[i]->name, list[i - 1]->name)) {
                        if (migdir_error_add(errors, "%s: a second repeatable migration \"%s\", also %s", list[i]->up.file,
                                             list[i]->name, list[i - 1]->up.file) < 0)
                                return -ENOMEM;
                        bad = 1;
                }
                list[i]->version = FLYWAY_REPEATABLE_BASE + (int64_t) i;
        }
        return bad;
}

static int flyway_load_items(int dir_fd, const migration_set *previous, migration_set *s, migdir_errors *errors) {
        int r, bad;

        bad = load_pass(dir_fd, 'V', previous, s, errors);
        if (bad >= 0 && (r = load_pass(dir_fd, 'R', previous, s, errors)) != 0)
                bad = r < 0 ? r : 1;
        if (bad >= 0 && (r = repeatables_number(s, errors)) != 0)
                bad = r < 0 ? r : 1;
        if (bad < 0)
                return bad;
        r = load_pass(dir_fd, 'U', previous, s, errors);
        return r < 0 ? r : (bad || r);
}

/* A V<version>__<description>.sql file marks Flyway's directory. */
static bool flyway_detect(int dir_fd, const char **ret_reason) {
        struct dirent *de;
        bool found = false;
        DIR *d;

        d = migdir_opendir(dir_fd); /* reopens "." for reading: dir_fd may be O_PATH */
        if (!d)
                return false;
        while (!found && (de = readdir(d))) {
                const char *sep = strstr(de->d_name, "__");
                size_t len = strlen(de->d_name);

                found = de->d_name[0] == 'V' && isdigit((unsigned char) de->d_name[1]) && sep && len > 4 &&
                        streq(de->d_name + len - 4, ".sql");
        }
        closedir(d);
        if (found && ret_reason)
                *ret_reason = "V<version>__<description>.sql files are present";
        return found;
}

/* The major of the newest version goes on by one (by the clock where majors are timestamps),
 * keeping the zero padding of the newest file. */
static int flyway_new_files(const migration_set *s, const char *name, migration_new *ret) {
        const migration *last = migration_set_latest(s) ? migration_set_find(s, migration_set_latest(s)) : NULL;
        int64_t major = last ? last->version / FLYWAY_MAJOR_SCALE : 0, next = major + 1,
                now = migdir_timestamp_version_now();
        int width = 1;
        char when[MIGDIR_NOW_TEXT_MAX];

        if (last)
                width = (int) strspn(last->up.file + 1, "0123456789");
        migdir_now_text(when);
        if (major >= FLYWAY_TIMESTAMP_MIN && now > major)
                next = now;
        if (next > FLYWAY_MAJOR_MAX)
                return -EOVERFLOW;
        return migdir_new_add(ret, next * FLYWAY_MAJOR_SCALE,
                              migdir_strdupf("V%0*" PRId64 "__%s.sql", width, next, name),
                              migdir_strdupf("-- V%0*" PRId64 "__%s.sql (created %s by migratectl new)\n"
                                             "-- Flyway's layout: an undo, if any, is U%0*" PRId64 "__%s.sql.\n"
                                             "-- Once applied, do not edit this file (its checksum is recorded): "
                                             "add a new migration.\n"
                                             "\n",
                                             width, next, name, when, width, next, name));
}

/* "1.2.10" from its packing; trailing zero parts left out ("2", "1.1"). A repeatable is "R<n>",
 * the n-th by description. */
static void flyway_key_of(int64_t version, char *buf, size_t size) {
        if (version >= FLYWAY_REPEATABLE_BASE) {
                snprintf(buf, size, "R%" PRId64, version - FLYWAY_REPEATABLE_BASE + 1);
                return;
        }
        int64_t major = version / FLYWAY_MAJOR_SCALE, minor = version / FLYWAY_PATCH_LIMIT % FLYWAY_MINOR_LIMIT,
                patch = version % FLYWAY_PATCH_LIMIT;

        if (patch != 0)
                snprintf(buf, size, "%" PRId64 ".%" PRId64 ".%" PRId64, major, minor, patch);
        else if (minor != 0)
                snprintf(buf, size, "%" PRId64 ".%" PRId64, major, minor);
        else
                snprintf(buf, size, "%" PRId64, major);
}

static int flyway_version_of_key(const char *key, int64_t *ret) {
        return migration_flyway_version(key, strlen(key), ret, NULL, NULL);
}

const migration_format migration_format_flyway = {
        .name = "flyway",
        .capability = "flyway",
        .layout = "V<version>__<description>.sql, with an optional U<version>__<description>.sql undo",
        .version_word = "version",
        .directive_prefix = "-- migrated: ",
        .directives = "no-transaction",
        .baseline_untracked_tables = true,
        .detect = flyway_detect,
        .load_items = flyway_load_items,
        .parse_directives = migration_parse_directives,
        .compare = migdir_compare_integer,
        .prepare = flyway_prepare,
        .free_data = free, /* no state of its own: the checksum is in m->checksum */
        .new_files = flyway_new_files,
        .key_of = flyway_key_of,
        .version_of_key = flyway_version_of_key,
};
