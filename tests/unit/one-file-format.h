/* SPDX-License-Identifier: MIT */
#pragma once

/* A migration format defined by the tests, not in the table: one file per migration,
 * "<digits>_<name>.sql", with a "-- split: down" line starting its down section. It plugs into
 * the shared driver (migdir_load_with) the way a goose- or dbmate-like format will, so that the
 * reading of one-file formats (migdir_read_split) is tested and fuzzed before such a format is
 * in the table. Included by tests/unit/test-migdir-format.c and tests/fuzz/fuzz-migdir.c. */

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "migdir-internal.h"

/* Up is everything before the marker; the down section, everything after it. */
static int split_marker(const char *sql, size_t size, size_t *ret_up_off, size_t *ret_up_len, size_t *ret_down_off,
                        size_t *ret_down_len, const char **ret_reason) {
        const char *m = memmem(sql, size, "-- split: down\n", 15);

        if (m && memmem(m + 15, size - (size_t) (m + 15 - sql), "-- split: down\n", 15)) {
                *ret_reason = "two down sections";
                return -EINVAL;
        }
        *ret_up_off = 0;
        *ret_up_len = m ? (size_t) (m - sql) : size;
        *ret_down_off = m ? (size_t) (m + 15 - sql) : 0;
        *ret_down_len = m ? size - *ret_down_off : SIZE_MAX;
        return 0;
}

static int one_file_load(int fd, const migration_set *previous, migration_set *s, migdir_errors *errors);

static const migration_format one_file_format = {
        .name = "one-file",
        .layout = "N_name.sql",
        .version_word = "version",
        .directive_prefix = "-- migrated: ",
        .directives = "no-transaction",
        .load_items = one_file_load,
        .split = split_marker,
        .parse_directives = migration_parse_directives,
        .compare = migdir_compare_integer,
};

/* Every "<digits>_<name>.sql" of the directory, read and split. */
static int one_file_load(int fd, const migration_set *previous, migration_set *s, migdir_errors *errors) {
        DIR *d = migdir_opendir(fd);
        struct dirent *de;
        bool bad = false;
        int r = 0;

        if (!d)
                return -errno;
        while ((de = readdir(d))) {
                const char *p = de->d_name;
                size_t len = strlen(p), digits = strspn(p, "0123456789");
                migration *m;

                if (digits == 0 || digits > 18 || p[digits] != '_' || len < digits + 6 || !streq(p + len - 4, ".sql"))
                        continue;
                m = migdir_set_add(s);
                if (!m) {
                        r = -ENOMEM;
                        break;
                }
                m->version = strtoll(p, NULL, 10);
                m->version_key = strndup(p, digits);
                m->name = strndup(p + digits + 1, len - digits - 5);
                r = !m->version_key || !m->name ? -ENOMEM
                                                : migdir_read_split(fd, p, &one_file_format, previous, m, errors);
                if (r != 0)
                        migdir_set_drop_last(s);
                if (r < 0)
                        break;
                bad = bad || r > 0;
                r = 0;
        }
        closedir(d);
        return r < 0 ? r : bad;
}
