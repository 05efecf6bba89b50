/* SPDX-License-Identifier: MIT */
/* Flyway's layout (common/migdir-flyway.c): file names, the order of dotted versions, undo files as
 * downs, and Flyway's CRC-32 checksum. The expected checksums come from an independent reference:
 * Python's zlib.crc32 fed the lines without their breaks, as Flyway's ChecksumCalculator feeds
 * java.util.zip.CRC32, read as a signed 32-bit int:
 *
 *   c = 0
 *   for line in text.removeprefix(BOM).replace(CRLF, LF).replace(CR, LF).split(LF):
 *       c = zlib.crc32(line, c)
 *   c - 2**32 if c >= 2**31 else c
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "migdir-format.h"
#include "tmpdir.h"

#define SQL_T "CREATE TABLE t (id INTEGER PRIMARY KEY);\nINSERT INTO t VALUES (1);\n"
#define CRC_T (-1838919807)

static void test_checksum(void **state) {
        const char *crlf = "CREATE TABLE t (id INTEGER PRIMARY KEY);\r\nINSERT INTO t VALUES (1);\r\n";
        const char *bom = "\xef\xbb\xbf" SQL_T;
        const char *utf8 = "-- caf\xc3\xa9\nSELECT 1;\n";
        const char *cr = "CREATE TABLE t (id INTEGER PRIMARY KEY);\rINSERT INTO t VALUES (1);\r";

        assert_int_equal(migration_flyway_checksum(SQL_T, strlen(SQL_T)), CRC_T);
        /* line endings and a BOM do not count: Flyway reads lines */
        assert_int_equal(migration_flyway_checksum(crlf, strlen(crlf)), CRC_T);
        assert_int_equal(migration_flyway_checksum(bom, strlen(bom)), CRC_T);
        assert_int_equal(migration_flyway_checksum(cr, strlen(cr)), CRC_T);
        assert_int_equal(migration_flyway_checksum("", 0), 0);
        assert_int_equal(migration_flyway_checksum("x", 1), -1931733373);
        assert_int_equal(migration_flyway_checksum(utf8, strlen(utf8)), 139021238);
        assert_int_equal(migration_flyway_checksum("ab\n\ncd", 6), -310194927);
        /* a BOM elsewhere than at the start is content */
        assert_int_not_equal(migration_flyway_checksum("x\xef\xbb\xbf", 4), -1931733373);
}

static int64_t version_of(const char *text) {
        int64_t v = -1;
        const char *reason = NULL;

        assert_int_equal(migration_flyway_version(text, strlen(text), &v, NULL, &reason), 0);
        return v;
}

static void test_version_order(void **state) {
        const char *ascending[] = { "0.1", "1", "1.0.1", "1.1", "1.2", "1.2.9", "1.2.10", "1.10", "2", "10",
                                    "20260306120000" };
        char *key = NULL;

        for (size_t i = 1; i < ELEMENTSOF(ascending); i++)
                assert_true(version_of(ascending[i - 1]) < version_of(ascending[i]));
        /* trailing zero parts and leading zeros do not count, '_' is '.' */
        assert_int_equal(version_of("1"), version_of("1.0"));
        assert_int_equal(version_of("1"), version_of("1.0.0"));
        assert_int_equal(version_of("1.2"), version_of("1_2"));
        assert_int_equal(version_of("001.02"), version_of("1.2"));
        assert_int_equal(version_of("1.0.10"), version_of("1_0_10"));
        /* the key is Flyway's display text */
        assert_int_equal(migration_flyway_version("1_2_10", 6, NULL, &key, NULL), 0);
        assert_string_equal(key, "1.2.10");
        free(key);
}

static void test_version_refusals(void **state) {
        const char *bad[] = { "", "a", "1.", ".1", "1..2", "1-2", "1.2.3.4", "1.100", "1.1.1000", "0", "0.0",
                              "92233720368547", "99999999999999999999" };
        const char *reason;

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                reason = NULL;
                assert_int_equal(migration_flyway_version(bad[i], strlen(bad[i]), NULL, NULL, &reason), -EINVAL);
                assert_non_null(reason);
        }
        /* a fourth part that is zero is a trailing zero, not a fourth part */
        assert_int_equal(version_of("1.2.3.0"), version_of("1.2.3"));
}

static migration_set *load(const char *dir, int expect, migdir_errors *e) {
        migration_set *s = NULL;

        assert_int_equal(migdir_load_format(dir, MIGDIR_FLYWAY, NULL, &s, e), expect);
        return s;
}

static void test_directory(void **state) {
        const char *dir = *state;
        _cleanup_(migration_set_freep) migration_set *s = NULL;
        migdir_errors e = {};

        put(dir, "V1__create_t.sql", SQL_T);
        put(dir, "V1.2.10__later.sql", "SELECT 3;\n");
        put(dir, "V1_2_9__earlier_one.sql", "SELECT 2;\n");
        put(dir, "U1.2.10__later.sql", "SELECT -3;\n");
        put(dir, "flyway.conf", "flyway.url=jdbc:sqlite:x\n");
        put(dir, "R__z_last.sql", "SELECT 'z';\n");
        put(dir, "R__a_first.sql", SQL_T);
        put(dir, "README.md", "not a migration\n");
        s = load(dir, 0, &e);
        assert_int_equal(e.n, 0);
        assert_int_equal(s->n, 5);
        /* repeatables after every versioned one, by description, none of them "the latest" */
        assert_string_equal(s->items[3].up.file, "R__a_first.sql");
        assert_string_equal(s->items[3].name, "a first");
        assert_true(s->items[3].up.flags & MIGRATION_REPEATABLE);
        assert_null(s->items[3].version_key);
        assert_string_equal(s->items[3].checksum, "-1838919807");
        assert_string_equal(s->items[4].up.file, "R__z_last.sql");
        assert_int_equal(migration_set_latest(s), s->items[2].version);
        assert_string_equal(s->items[0].version_key, "1");
        assert_string_equal(s->items[1].version_key, "1.2.9");
        assert_string_equal(s->items[1].name, "earlier one");
        assert_string_equal(s->items[2].version_key, "1.2.10");
        assert_null(s->items[0].down.file);
        assert_string_equal(s->items[2].down.file, "U1.2.10__later.sql");
        assert_string_equal(s->items[2].down.sql, "SELECT -3;\n");
        /* the recorded checksum is Flyway's, as its INT column reads */
        assert_string_equal(s->items[0].checksum, "-1838919807");
        assert_ptr_equal(migration_set_find(s, version_of("1.2.9")), &s->items[1]);
}

static void test_directory_problems(void **state) {
        const char *dir = *state;
        _cleanup_(migration_set_freep) migration_set *s = NULL;
        migdir_errors e = {};
        bool dup = false, orphan = false, repeatable = false, sep = false, rver = false;

        put(dir, "V1__a.sql", "SELECT 1;\n");
        put(dir, "V1.0__same_version.sql", "SELECT 1;\n");
        put(dir, "U2__no_such_version.sql", "SELECT 2;\n");
        put(dir, "R__my_views.sql", "SELECT 3;\n");
        put(dir, "R__my views.sql", "SELECT 3;\n");
        put(dir, "R2__versioned_repeatable.sql", "SELECT 3;\n");
        put(dir, "V3_no_separator.sql", "SELECT 4;\n");
        s = load(dir, MIGDIR_INVALID, &e);
        assert_null(s);
        for (size_t i = 0; i < e.n; i++) {
                dup = dup || strstr(e.messages[i], "duplicate version");
                orphan = orphan || strstr(e.messages[i], "U2__no_such_version.sql: an undo of version 2");
                repeatable = repeatable || strstr(e.messages[i], "a second repeatable migration \"my views\"");
                sep = sep || strstr(e.messages[i], "V3_no_separator.sql: the name needs '__'");
                rver = rver || strstr(e.messages[i], "R2__versioned_repeatable.sql: a repeatable migration has no version");
        }
        assert_true(dup && orphan && repeatable && sep && rver);
        assert_int_equal(e.n, 5);
        migdir_errors_clear(&e);
}

static void test_detect_and_new(void **state) {
        const char *dir = *state;
        _cleanup_(migration_set_freep) migration_set *s = NULL;
        migration_new n = {};
        const char *reason = NULL;

        put(dir, "V001__init.sql", "SELECT 1;\n");
        put(dir, "V001.5__more.sql", "SELECT 1;\n");
        put(dir, "R__views.sql", "SELECT 1;\n");
        assert_int_equal(migdir_detect_format_reason(dir, &reason), MIGDIR_FLYWAY);
        assert_non_null(strstr(reason, "V<version>__"));
        s = load(dir, 0, NULL);
        assert_int_equal(migration_format_flyway.new_files(s, "add_users", &n), 0);
        assert_int_equal(n.n, 1);
        assert_string_equal(n.files[0].path, "V002__add_users.sql");
        assert_int_equal(n.version, version_of("2"));
        migration_new_clear(&n);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_checksum),
                cmocka_unit_test(test_version_order),
                cmocka_unit_test(test_version_refusals),
                cmocka_unit_test_setup_teardown(test_directory, dir_setup, dir_teardown),
                cmocka_unit_test_setup_teardown(test_directory_problems, dir_setup, dir_teardown),
                cmocka_unit_test_setup_teardown(test_detect_and_new, dir_setup, dir_teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
