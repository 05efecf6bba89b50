/* SPDX-License-Identifier: MIT */
/* Unit tests for golang-migrate's row (common/migdir-golang-migrate.c): the names its parser
 * accepts and refuses, the order of versions (unsigned integers, 0 included), duplicates,
 * detection, the predecessor kept for going down, and the names `new` writes. Real temporary
 * directories with real files. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "migdir-golang-migrate.h"
#include "migdir-internal.h"
#include "tmpdir.h"

#define SQL "CREATE TABLE t (id INTEGER PRIMARY KEY);\n"

static int load(const char *dir, migration_set **ret, migdir_errors *e) {
        return migdir_load_format(dir, MIGDIR_GOLANG_MIGRATE, NULL, ret, e);
}

static bool has_error(const migdir_errors *e, const char *file, const char *words) {
        for (size_t i = 0; i < e->n; i++)
                if (strstr(e->messages[i], file) && strstr(e->messages[i], words))
                        return true;
        return false;
}

static void test_parse_names(void **state) {
        static const struct {
                const char *file;
                int64_t version;
                const char *title;
                bool up;
        } ok[] = {
                { "0_init.up.sql", 0, "init", true },
                { "0000_init.down.sql", 0, "init", false },
                { "1_add-Users.v2.up.sql", 1, "add-Users.v2", true },
                { "20240101120000_create table.up.sql", INT64_C(20240101120000), "create table", true },
                { "7_.up.sql", 7, "", true }, /* the regex's (.*) takes an empty title */
                { "3_a.up.b.up.sql", 3, "a.up.b", true },
                { "9223372036854775807_max.up.sql", INT64_MAX, "max", true },
        };
        static const char *const bad[] = {
                "x_a.up.sql", "1.up.sql", "1a_x.up.sql", "1_x.sql", "1_x.up.txt",
                "18446744073709551616_too_big.up.sql", /* over uint64 */
                "9223372036854775808_over_int64.up.sql",
        };

        for (size_t i = 0; i < ELEMENTSOF(ok); i++) {
                _cleanup_free_ char *title = NULL;
                const char *reason = NULL;
                int64_t v = -1;
                bool up = !ok[i].up;

                assert_int_equal(golang_migrate_parse_filename(ok[i].file, &v, &title, &up, &reason), 0);
                assert_int_equal(v, ok[i].version);
                assert_string_equal(title, ok[i].title);
                assert_int_equal(up, ok[i].up);
        }
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                char *title = NULL;
                const char *reason = NULL;
                int64_t v;
                bool up;

                assert_int_equal(golang_migrate_parse_filename(bad[i], &v, &title, &up, &reason), -EINVAL);
                assert_non_null(reason);
                assert_null(title);
        }
}

static void test_order_and_predecessors(void **state) {
        const char *dir = *state;
        migration_set *s = NULL;
        migdir_errors e = {};

        put(dir, "10_ten.up.sql", SQL);
        put(dir, "0000_zero.up.sql", SQL);
        put(dir, "0000_zero.down.sql", "DROP TABLE t;\n");
        put(dir, "9_Nine-v1.0.up.sql", SQL);
        put(dir, "9_other-title.down.sql", "SELECT 1;\n"); /* the tool pairs by version only */
        put(dir, "README.md", "not a migration\n");
        assert_int_equal(load(dir, &s, &e), 0);
        assert_int_equal(s->n, 3);
        assert_int_equal(s->items[0].version, 0);
        assert_int_equal(s->items[1].version, 9);
        assert_int_equal(s->items[2].version, 10); /* as numbers: 10 after 9 */
        assert_string_equal(s->items[0].version_key, "0000");
        assert_string_equal(s->items[1].name, "Nine-v1.0");
        assert_string_equal(s->items[1].down.file, "9_other-title.down.sql");
        assert_null(s->items[2].down.file);
        /* going down, each migration leaves the version of the one before it */
        assert_int_equal(golang_migrate_previous_version(&s->items[0]), GOLANG_MIGRATE_NIL_VERSION);
        assert_int_equal(golang_migrate_previous_version(&s->items[1]), 0);
        assert_int_equal(golang_migrate_previous_version(&s->items[2]), 9);
        assert_non_null(migration_set_find(s, 0));
        assert_int_equal(migration_set_latest(s), 10);
        migration_set_free(s);
}

static void test_directives(void **state) {
        const char *dir = *state;
        migration_set *s = NULL;
        migdir_errors e = {};

        /* the tool has none; migrated's own stands in for its x-no-tx-wrap */
        put(dir, "1_a.up.sql", "-- golang-migrate: a comment\n-- migrated: no-transaction\nVACUUM;\n");
        put(dir, "2_b.up.sql", SQL);
        assert_int_equal(load(dir, &s, &e), 0);
        assert_int_equal(s->items[0].up.flags, MIGRATION_NO_TRANSACTION);
        assert_int_equal(s->items[1].up.flags, 0);
        migration_set_free(s);
        put(dir, "3_c.up.sql", "-- migrated: whatever\n" SQL);
        assert_int_equal(load(dir, &s, &e), MIGDIR_INVALID);
        assert_true(has_error(&e, "3_c.up.sql", "unknown directive"));
        migdir_errors_clear(&e);
}

static void test_problems_all_listed(void **state) {
        const char *dir = *state;
        migration_set *s = NULL;
        migdir_errors e = {};

        put(dir, "1_a.up.sql", SQL);
        put(dir, "01_b.up.sql", SQL);  /* the same version, spelled otherwise */
        put(dir, "2_c.down.sql", SQL); /* no up */
        put(dir, "x_d.up.sql", SQL);
        put(dir, "3_e.up.sql", SQL);   /* fine: kept out of the way of the others */
        assert_int_equal(load(dir, &s, &e), MIGDIR_INVALID);
        assert_null(s);
        assert_true(has_error(&e, "1_a.up.sql", "duplicate version 1"));
        assert_true(has_error(&e, "2_c.down.sql", "without its up file"));
        assert_true(has_error(&e, "x_d.up.sql", "not a golang-migrate file name"));
        assert_int_equal(e.n, 3);
        migdir_errors_clear(&e);
}

static void test_detect(void **state) {
        const char *dir = *state;
        const char *reason = NULL;

        /* native names only: native (the database may still decide otherwise) */
        put(dir, "0001_init.up.sql", SQL);
        put(dir, "0002_more.up.sql", SQL);
        assert_int_equal(migdir_detect_format_reason(dir, &reason), MIGDIR_NATIVE);
        /* one name only golang-migrate accepts */
        put(dir, "0003_add-Index.up.sql", SQL);
        assert_int_equal(migdir_detect_format_reason(dir, &reason), MIGDIR_GOLANG_MIGRATE);
        assert_non_null(strstr(reason, "0003_add-Index.up.sql"));
}

static void test_detect_version_zero(void **state) {
        const char *dir = *state;
        const char *reason = NULL;

        put(dir, "0000_init.up.sql", SQL);
        assert_int_equal(migdir_detect_format_reason(dir, &reason), MIGDIR_GOLANG_MIGRATE);
        assert_non_null(strstr(reason, "version 0"));
}

static void test_new_files(void **state) {
        const char *dir = *state;
        migration_new n = {};
        migration_set *s = NULL;
        migdir_errors e = {};

        /* an empty directory: migrate create -seq -digits 6 */
        assert_int_equal(load(dir, &s, &e), 0);
        assert_int_equal(migration_format_golang_migrate.new_files(s, "init", &n), 0);
        assert_string_equal(n.files[0].path, "000001_init.up.sql");
        assert_string_equal(n.files[1].path, "000001_init.down.sql");
        migration_new_clear(&n);
        migration_set_free(s);

        /* the directory's own width; after version 0 comes 1 */
        put(dir, "0000_init.up.sql", SQL);
        assert_int_equal(load(dir, &s, &e), 0);
        assert_int_equal(migration_format_golang_migrate.new_files(s, "more", &n), 0);
        assert_int_equal(n.version, 1);
        assert_string_equal(n.files[0].path, "0001_more.up.sql");
        migration_new_clear(&n);
        migration_set_free(s);

        /* a directory numbered by timestamps stays so */
        put(dir, "20240101120000_ts.up.sql", SQL);
        assert_int_equal(load(dir, &s, &e), 0);
        assert_int_equal(migration_format_golang_migrate.new_files(s, "later", &n), 0);
        assert_true(n.version > INT64_C(20240101120000));
        assert_int_equal(strcspn(n.files[0].path, "_"), 14);
        migration_new_clear(&n);
        migration_set_free(s);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, dir_setup, dir_teardown)

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse_names),
                T(test_order_and_predecessors),
                T(test_directives),
                T(test_problems_all_listed),
                T(test_detect),
                T(test_detect_version_zero),
                T(test_new_files),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
