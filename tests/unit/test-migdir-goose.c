/* SPDX-License-Identifier: MIT */
/* Unit tests for goose's layout (common/migdir-goose.c): the split of one file into its Up and
 * Down sections by goose's parser rules, its annotations (StatementBegin/End, NO TRANSACTION,
 * ENVSUB), the files goose refuses and why (named with their line), Go migrations refused by
 * name, detection, versions and the names `migratectl new` gives. Real temporary directories
 * with real files. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "macro.h"
#include "migdir-internal.h"
#include "tmpdir.h"

#define TRIGGER                                                                                                    \
        "-- +goose StatementBegin\n"                                                                               \
        "CREATE TRIGGER devices_touch AFTER UPDATE ON devices BEGIN\n"                                             \
        "        UPDATE devices SET serial = upper(serial) WHERE id = new.id;\n"                                   \
        "END;\n"                                                                                                   \
        "-- +goose StatementEnd\n"

static const char *const basic =
        "-- a comment before the annotations\n"
        "-- +goose Up\n"
        "CREATE TABLE devices (id INTEGER PRIMARY KEY, serial TEXT NOT NULL);\n"
        TRIGGER
        "\n"
        "-- +goose Down\n"
        "DROP TABLE devices;\n";

static int split(const char *sql, size_t *uo, size_t *ul, size_t *d_o, size_t *dl, const char **reason) {
        return migration_format_goose.split(sql, strlen(sql), uo, ul, d_o, dl, reason);
}

/* The reason a file is refused, or NULL when it splits. */
static const char *refusal(const char *sql) {
        size_t uo, ul, d_o, dl;
        const char *reason = NULL;

        if (split(sql, &uo, &ul, &d_o, &dl, &reason) == 0)
                return NULL;
        assert_non_null(reason);
        return reason;
}

static void assert_refused(const char *sql, const char *expected) {
        const char *reason = refusal(sql);

        if (!reason || !strstr(reason, expected))
                print_message("reason: %s\nexpected: %s\n", reason ?: "(none: it split)", expected);
        assert_non_null(reason);
        assert_non_null(strstr(reason, expected));
}

static void dump_errors(const migdir_errors *e) {
        for (size_t i = 0; i < e->n; i++)
                print_message("  error: %s\n", e->messages[i]);
}

static bool has_error(const migdir_errors *e, const char *a, const char *b) {
        for (size_t i = 0; i < e->n; i++)
                if (strstr(e->messages[i], a) && (!b || strstr(e->messages[i], b)))
                        return true;
        dump_errors(e);
        return false;
}

/* ---- the split ---- */

static void test_split_sections(void **state) {
        size_t uo, ul, d_o, dl;
        const char *reason = NULL;

        assert_int_equal(split(basic, &uo, &ul, &d_o, &dl, &reason), 0);
        /* the up section runs from the line after Up to the Down line; the block stays whole */
        assert_true(strncmp(basic + uo, "CREATE TABLE devices", 20) == 0);
        assert_true(strncmp(basic + uo + ul, "-- +goose Down\n", 15) == 0);
        assert_non_null(memmem(basic + uo, ul, "WHERE id = new.id;\nEND;\n", 24));
        assert_string_equal(basic + d_o, "DROP TABLE devices;\n");
        assert_int_equal(dl, strlen("DROP TABLE devices;\n"));
}

static void test_split_no_down(void **state) {
        const char *sql = "-- +goose Up\nCREATE TABLE t (x);\n";
        size_t uo, ul, d_o, dl;
        const char *reason = NULL;

        assert_int_equal(split(sql, &uo, &ul, &d_o, &dl, &reason), 0);
        assert_string_equal(sql + uo, "CREATE TABLE t (x);\n");
        assert_int_equal(ul, strlen(sql + uo));
        assert_int_equal(dl, SIZE_MAX); /* irreversible */

        /* an empty Down section is a down that runs nothing, as goose's is */
        sql = "-- +goose Up\nCREATE TABLE t (x);\n-- +goose Down\n";
        assert_int_equal(split(sql, &uo, &ul, &d_o, &dl, &reason), 0);
        assert_int_equal(dl, 0);
}

static void test_split_goose_spellings(void **state) {
        /* goose compares annotations without case and drops every "--" */
        assert_null(refusal("-- +goose up\nSELECT 1;\n--+goose DOWN\nSELECT 2;\n"));
        assert_null(refusal("-- +goose Up\r\nSELECT 1;\r\n-- +goose Down\r\nSELECT 2;\r\n"));
        /* a ';' before a trailing comment ends the statement; blank lines and comments between are free */
        assert_null(refusal("-- +goose Up\nSELECT 1; -- one\n\n-- note\nSELECT\n  2;\n"));
        assert_null(refusal("-- +goose NO TRANSACTION\n-- +goose Up\nPRAGMA user_version = 3;\n"));
        assert_null(refusal("-- +goose Up\n-- +goose ENVSUB OFF\nSELECT 1;\n"));
}

static void test_split_malformed(void **state) {
        assert_refused("-- only a comment\n\n", "no '-- +goose Up' annotation");
        assert_refused("", "no '-- +goose Up' annotation");
        assert_refused("-- +goose Down\nDROP TABLE t;\n-- +goose Up\nCREATE TABLE t (x);\n",
                       "line 1: '-- +goose Down' comes before '-- +goose Up'");
        assert_refused("-- +goose Up\nSELECT 1;\n-- +goose Up\n", "line 3: a second '-- +goose Up'");
        assert_refused("-- +goose Up\nSELECT 1;\n-- +goose Down\nSELECT 2;\n-- +goose Down\n",
                       "line 5: a second '-- +goose Down'");
        assert_refused("-- +goose Up\n-- +goose StatementBegin\nCREATE TRIGGER x AFTER INSERT ON t BEGIN\n"
                       "  SELECT 1;\nEND;\n",
                       "line 2: '-- +goose StatementBegin' has no StatementEnd");
        assert_refused("-- +goose Up\n-- +goose StatementBegin\nSELECT 1;\n-- +goose Down\nSELECT 2;\n",
                       "line 4: '-- +goose Down' inside the StatementBegin block of line 2");
        assert_refused("-- +goose Up\nSELECT 1;\n-- +goose StatementEnd\n", "line 3: '-- +goose StatementEnd' without");
        /* after an empty block goose drops the next line of SQL; an empty block at the end is harmless */
        assert_refused("-- +goose Up\n-- +goose StatementBegin\n-- +goose StatementEnd\n\n-- c\nSELECT 1;\n",
                       "line 6: goose would skip this line, as it follows the empty StatementBegin block of line 2");
        assert_null(refusal("-- +goose Up\nSELECT 1;\n-- +goose Down\n-- +goose StatementBegin\n-- +goose StatementEnd\n"));
        assert_null(refusal("-- +goose Up\n-- +goose StatementBegin\n-- +goose StatementEnd\n-- +goose Down\nSELECT 1;\n"));
        assert_refused("SELECT 0;\n-- +goose Up\nSELECT 1;\n", "line 1: SQL before the '-- +goose Up'");
        /* goose splits at a line ending in ';': a statement left open is refused where it starts */
        assert_refused("-- +goose Up\nCREATE TABLE t (x)\n\n-- +goose Down\nDROP TABLE t;\n",
                       "line 2: the statement is not finished");
        assert_refused("-- +goose Up\nSELECT 1;\nSELECT 2\n", "line 3: the statement is not finished");
        /* in the Down section it only breaks goose's down: up still runs there */
        assert_null(refusal("-- +goose Up\nSELECT 1;\n-- +goose Down\nDROP TABLE a\nDROP TABLE b\n"));
        assert_refused("-- +goose Up\nSELECT 1;--no space\n", "line 2: the statement is not finished");
}

static void test_split_annotations_refused(void **state) {
        assert_refused("-- +goose Up\nSELECT 1;\n-- +goose NO TRANSACTIONS\n", "line 3: unknown annotation");
        assert_refused("-- +goose Up\n-- +goose\nSELECT 1;\n", "line 2: an empty '-- +goose' annotation");
        assert_refused("  -- +goose Up\nSELECT 1;\n", "line 1: an annotation must start at the beginning");
        assert_refused("-- +goose Up +goose Down\n", "line 1: more than one '+goose'");
        assert_refused("-- +goose Up\n-- +goose ENVSUB ON\nSELECT '${X}';\n", "line 2: '-- +goose ENVSUB ON'");
}

static void test_directives(void **state) {
        unsigned flags = 1234;
        char *bad = NULL;
        const char *sql = "-- +goose Up\n-- +goose NO TRANSACTION\nPRAGMA foreign_keys = OFF;\n";

        assert_int_equal(migration_format_goose.parse_directives(sql, strlen(sql), &flags, &bad), 0);
        assert_int_equal(flags, MIGRATION_NO_TRANSACTION);
        assert_int_equal(migration_format_goose.parse_directives(basic, strlen(basic), &flags, &bad), 0);
        assert_int_equal(flags, 0);
        assert_null(bad);
}

/* ---- loading a directory ---- */

static void test_load(void **state) {
        _cleanup_(migration_set_freep) migration_set *s = NULL;
        const char *dir = *state;
        migdir_errors e = {};

        put(dir, "00001_devices.sql", basic);
        put(dir, "00002_pragma.sql", "-- +goose NO TRANSACTION\n-- +goose Up\nPRAGMA user_version = 2;\n");
        put(dir, "20260306120000_add_index.sql", "-- +goose Up\nCREATE INDEX i ON devices (serial);\n");
        put(dir, "README.md", "not a migration\n");
        put(dir, "main_test.go", "package migrations\n");
        put(dir, "helpers.go", "package migrations\n");
        assert_int_equal(migdir_load_format(dir, MIGDIR_GOOSE, NULL, &s, &e), 0);
        assert_int_equal(e.n, 0);
        assert_int_equal(s->n, 3);
        assert_int_equal(s->items[0].version, 1);
        assert_string_equal(s->items[0].version_key, "00001");
        assert_string_equal(s->items[0].name, "devices");
        assert_string_equal(s->items[0].up.file, "00001_devices.sql");
        assert_non_null(s->items[0].down.file);
        assert_string_equal(s->items[0].down.sql, "DROP TABLE devices;\n");
        /* failures name the file's lines: each section knows how many lines precede it */
        assert_int_equal(s->items[0].up.line_offset, 2);
        assert_int_equal(s->items[0].down.line_offset, 10);
        assert_int_equal(s->items[1].up.flags, MIGRATION_NO_TRANSACTION);
        assert_null(s->items[1].down.file);
        assert_int_equal(s->items[2].version, INT64_C(20260306120000));
        /* goose records no checksum: its rows match whatever the file holds now */
        assert_true(migration_checksum_matches(&s->items[0], ""));
        assert_false(migration_checksum_matches(&s->items[0], "0123"));
}

static void test_load_go_refused(void **state) {
        _cleanup_(migration_set_freep) migration_set *s = NULL;
        const char *dir = *state;
        migdir_errors e = {};

        put(dir, "00001_devices.sql", basic);
        put(dir, "00002_backfill.go", "package migrations\n");
        put(dir, "00004_rehash.go", "package migrations\n");
        put(dir, "00003_bad.sql", "-- +goose Up\n-- +goose Sideways\nSELECT 1;\n");
        put(dir, "00005_fine.sql", "-- +goose Up\nSELECT 1;\n");
        put(dir, "0_zero.sql", "-- +goose Up\nSELECT 1;\n");
        put(dir, "schema.sql", "SELECT 1;\n");
        assert_int_equal(migdir_load_format(dir, MIGDIR_GOOSE, NULL, &s, &e), MIGDIR_INVALID);
        assert_null(s);
        /* one message names every Go migration; every other problem is listed beside it */
        assert_true(has_error(&e, "00002_backfill.go, 00004_rehash.go: Go migrations cannot run here", NULL));
        assert_true(has_error(&e, "00003_bad.sql: line 2: unknown annotation", "Sideways"));
        assert_true(has_error(&e, "0_zero.sql: not a goose migration", "greater than zero"));
        assert_true(has_error(&e, "schema.sql: not a goose migration", "'_'"));
        assert_int_equal(e.n, 4);
        migdir_errors_clear(&e);
}

static void test_load_duplicate(void **state) {
        _cleanup_(migration_set_freep) migration_set *s = NULL;
        const char *dir = *state;
        migdir_errors e = {};

        put(dir, "1_a.sql", "-- +goose Up\nSELECT 1;\n");
        put(dir, "001_b.sql", "-- +goose Up\nSELECT 1;\n");
        assert_int_equal(migdir_load_format(dir, MIGDIR_GOOSE, NULL, &s, &e), MIGDIR_INVALID);
        assert_true(has_error(&e, "duplicate version 1", NULL));
        migdir_errors_clear(&e);
}

/* ---- detection ---- */

static void test_detect(void **state) {
        const char *dir = *state, *reason = NULL;

        /* a .sql file with the version prefix but no annotation is not goose's */
        put(dir, "0001_init.up.sql", "CREATE TABLE t (x);\n");
        assert_int_equal(migdir_detect_format(dir), MIGDIR_NATIVE);
        put(dir, "20260101000000_init.sql", "-- comment\n-- +goose Up\nCREATE TABLE u (x);\n");
        assert_int_equal(migdir_detect_format_reason(dir, &reason), MIGDIR_GOOSE);
        assert_non_null(strstr(reason, "-- +goose Up"));
}

static void test_detect_prisma_first(void **state) {
        const char *dir = *state;

        put(dir, "migration_lock.toml", "provider = \"sqlite\"\n");
        put(dir, "1_init.sql", "-- +goose Up\nSELECT 1;\n");
        assert_int_equal(migdir_detect_format(dir), MIGDIR_PRISMA);
}

/* ---- new ---- */

static void test_new_sequential(void **state) {
        _cleanup_(migration_set_freep) migration_set *s = NULL;
        _cleanup_(migration_new_clear) migration_new n = {};
        const char *dir = *state;
        migdir_errors e = {};

        put(dir, "00001_devices.sql", basic);
        put(dir, "00002_more.sql", "-- +goose Up\nSELECT 1;\n");
        assert_int_equal(migdir_load_format(dir, MIGDIR_GOOSE, NULL, &s, &e), 0);
        assert_int_equal(migration_format_goose.new_files(s, "add_users", &n), 0);
        assert_int_equal(n.n, 1);
        assert_int_equal(n.version, 3);
        assert_string_equal(n.files[0].path, "00003_add_users.sql");
        /* goose create's template: it loads as a goose migration with a down section */
        assert_non_null(strstr(n.files[0].content, "-- +goose Up\n"));
        assert_null(refusal(n.files[0].content));
        put(dir, n.files[0].path, n.files[0].content);
        migration_set_free(TAKE_PTR(s));
        assert_int_equal(migdir_load_format(dir, MIGDIR_GOOSE, NULL, &s, &e), 0);
        assert_int_equal(s->n, 3);
        assert_non_null(s->items[2].down.file);
}

static void test_new_timestamp(void **state) {
        _cleanup_(migration_set_freep) migration_set *s = NULL;
        _cleanup_(migration_new_clear) migration_new n = {}, m = {};
        const char *dir = *state;
        migdir_errors e = {};
        char expect[64];

        /* an empty directory gets goose create's default, a UTC timestamp */
        assert_int_equal(migdir_load_format(dir, MIGDIR_GOOSE, NULL, &s, &e), 0);
        assert_int_equal(migration_format_goose.new_files(s, "init", &n), 0);
        assert_true(n.version >= INT64_C(20260101000000));
        snprintf(expect, sizeof(expect), "%" PRId64 "_init.sql", n.version);
        assert_string_equal(n.files[0].path, expect);
        /* a directory numbered by timestamps stays so, and the new one sorts last */
        migration_set_free(TAKE_PTR(s));
        put(dir, "29990101000000_future.sql", "-- +goose Up\nSELECT 1;\n");
        assert_int_equal(migdir_load_format(dir, MIGDIR_GOOSE, NULL, &s, &e), 0);
        assert_int_equal(migration_format_goose.new_files(s, "next", &m), 0);
        assert_int_equal(m.version, INT64_C(29990101000001));
        assert_string_equal(m.files[0].path, "29990101000001_next.sql");
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, dir_setup, dir_teardown)

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_split_sections),
                cmocka_unit_test(test_split_no_down),
                cmocka_unit_test(test_split_goose_spellings),
                cmocka_unit_test(test_split_malformed),
                cmocka_unit_test(test_split_annotations_refused),
                cmocka_unit_test(test_directives),
                T(test_load),
                T(test_load_go_refused),
                T(test_load_duplicate),
                T(test_detect),
                T(test_detect_prisma_first),
                T(test_new_sequential),
                T(test_new_timestamp),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
