/* SPDX-License-Identifier: MIT */
/* Unit tests for dbmate's layout (common/migdir-dbmate.c), each case one that dbmate's own parser
 * (pkg/dbmate/migration.go, db.go) decides: the directive lines, the blocks' texts, the options of
 * each block, which files are migrations, the version text, detection, and `migratectl new`.
 * Real temporary directories with real files. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "macro.h"
#include "migdir-internal.h"
#include "tmpdir.h"

static int load(const char *dir, migration_set **ret, migdir_errors *e) {
        return migdir_load_format(dir, MIGDIR_DBMATE, NULL, ret, e);
}

/* The set of dir, which must load without problems. */
static migration_set *load_ok(const char *dir) {
        migration_set *s = NULL;
        migdir_errors e = {};

        if (load(dir, &s, &e) != 0)
                for (size_t i = 0; i < e.n; i++)
                        print_message("  error: %s\n", e.messages[i]);
        assert_int_equal(e.n, 0);
        assert_non_null(s);
        return s;
}

/* The single problem of dir, which must contain want. */
static void load_refused(const char *dir, const char *want) {
        migration_set *s = NULL;
        migdir_errors e = {};

        assert_int_equal(load(dir, &s, &e), MIGDIR_INVALID);
        assert_null(s);
        assert_int_equal(e.n, 1);
        if (!strstr(e.messages[0], want))
                print_message("  error: %s\n  wanted: %s\n", e.messages[0], want);
        assert_non_null(strstr(e.messages[0], want));
        migdir_errors_clear(&e);
}

static void test_blocks(void **state) {
        const char *dir = *state;
        migration_set *s;
        const migration *m;
        char *p;

        put(dir, "20240105093000_create_users.sql",
            "-- a comment before the block\n\n-- migrate:up\ncreate table users (id integer);\n\n"
            "-- migrate:down\ndrop table users;\n");
        put(dir, "schema.sql", "create table whatever (x);\n");     /* no leading digits: not a migration */
        put(dir, "20240106000000_notes.sql.bak", "-- migrate:up\n"); /* not .sql */
        p = path_of(dir, "20240107000000_folder.sql"); /* a folder: not a migration */
        assert_int_equal(mkdir(p, 0755), 0);
        free(p);
        s = load_ok(dir);
        assert_int_equal(s->n, 1);
        m = &s->items[0];
        assert_int_equal(m->version, INT64_C(20240105093000));
        assert_string_equal(m->version_key, "20240105093000");
        assert_string_equal(m->name, "create_users");
        /* each block from its directive line, as dbmate runs it */
        assert_string_equal(m->up.sql, "-- migrate:up\ncreate table users (id integer);\n\n");
        assert_string_equal(m->down.sql, "-- migrate:down\ndrop table users;\n");
        /* the lines of the file before each block, for error lines */
        assert_int_equal(m->up.line_offset, 2);
        assert_int_equal(m->down.line_offset, 5);
        assert_int_equal(m->up.flags, 0);
        assert_int_equal(m->down.flags, 0);
        migration_set_free(s);
}

static void test_options_per_block(void **state) {
        const char *dir = *state;
        migration_set *s;

        put(dir, "1_a.sql", "-- migrate:up transaction:false\nVACUUM;\n-- migrate:down\nselect 1;\n");
        put(dir, "2_b.sql", "--migrate:up\nselect 1;\n--   migrate:down   transaction:false   free words\nVACUUM;\n");
        put(dir, "3_c.sql", "-- migrate:up transaction:false transaction:true\nselect 1;\n-- migrate:down\n");
        s = load_ok(dir);
        assert_int_equal(s->n, 3);
        assert_int_equal(s->items[0].up.flags, MIGRATION_NO_TRANSACTION);
        assert_int_equal(s->items[0].down.flags, 0);
        assert_int_equal(s->items[1].up.flags, 0);
        assert_int_equal(s->items[1].down.flags, MIGRATION_NO_TRANSACTION);
        assert_int_equal(s->items[2].up.flags, 0);
        migration_set_free(s);
}

static void test_unknown_option(void **state) {
        const char *dir = *state;

        put(dir, "1_a.sql", "-- migrate:up transaction:flase\nselect 1;\n-- migrate:down\n");
        load_refused(dir, "transaction:flase");
}

static void test_unknown_down_option(void **state) {
        const char *dir = *state;

        put(dir, "1_a.sql", "-- migrate:up\nselect 1;\n-- migrate:down nontransactional:yes\n");
        load_refused(dir, "nontransactional:yes");
}

static void test_missing_up(void **state) {
        const char *dir = *state;

        /* "-- migrate:upgrade" is not the directive; nor is one not at a line start */
        put(dir, "1_a.sql", "-- migrate:upgrade\n  -- migrate:up\nselect 1;\n-- migrate:down\n");
        load_refused(dir, "-- migrate:up");
}

static void test_missing_down(void **state) {
        const char *dir = *state;

        /* a down line before the up block is a comment to dbmate */
        put(dir, "1_a.sql", "-- migrate:down\n-- migrate:up\nselect 1;\n");
        load_refused(dir, "-- migrate:down");
}

static void test_statements_before_up(void **state) {
        const char *dir = *state;

        put(dir, "1_a.sql", "create table t (x);\n-- migrate:up\nselect 1;\n-- migrate:down\n");
        load_refused(dir, "precede");
}

static void test_two_blocks(void **state) {
        const char *dir = *state;

        put(dir, "1_a.sql", "-- migrate:up\nselect 1;\n-- migrate:down\n-- migrate:up\nselect 2;\n-- migrate:down\n");
        load_refused(dir, "more than one '-- migrate:up'");
}

static void test_two_downs(void **state) {
        const char *dir = *state;

        put(dir, "1_a.sql", "-- migrate:up\nselect 1;\n-- migrate:down\nselect 2;\n-- migrate:down\n");
        load_refused(dir, "more than one '-- migrate:down'");
}

static void test_same_version(void **state) {
        const char *dir = *state;

        /* dbmate would take both for one version; so would the numbers 01 and 1 */
        put(dir, "1_a.sql", "-- migrate:up\n-- migrate:down\n");
        put(dir, "01_b.sql", "-- migrate:up\n-- migrate:down\n");
        load_refused(dir, "duplicate version 1");
}

static void test_name_order(void **state) {
        const char *dir = *state;

        /* dbmate sorts file names: "10_b.sql" before "9_a.sql" */
        put(dir, "9_a.sql", "-- migrate:up\n-- migrate:down\n");
        put(dir, "10_b.sql", "-- migrate:up\n-- migrate:down\n");
        load_refused(dir, "orders files by name");
}

static void test_version_zero_and_too_long(void **state) {
        const char *dir = *state;
        char *p;

        put(dir, "0_init.sql", "-- migrate:up\n-- migrate:down\n");
        load_refused(dir, "version 0");
        p = path_of(dir, "0_init.sql");
        assert_int_equal(unlink(p), 0);
        free(p);
        put(dir, "99999999999999999999_big.sql", "-- migrate:up\n-- migrate:down\n");
        load_refused(dir, "too many digits");
}

static void test_detect(void **state) {
        const char *dir = *state, *reason = NULL;

        /* native files match {digits}_*.sql but have no up directive */
        put(dir, "0001_devices.up.sql", "create table devices (id integer);\n");
        assert_int_equal(migdir_detect_format(dir), MIGDIR_NATIVE);
        put(dir, "0002_users.sql", "-- migrate:up\ncreate table users (id integer);\n-- migrate:down\n");
        assert_int_equal(migdir_detect_format_reason(dir, &reason), MIGDIR_DBMATE);
        assert_non_null(strstr(reason, "migrate:up"));
}

static void test_new(void **state) {
        const char *dir = *state;
        migration_new n = {};
        migration_set *s;
        char stamp[32];

        put(dir, "1_a.sql", "-- migrate:up\n-- migrate:down\n");
        s = load_ok(dir);
        assert_int_equal(migration_format_dbmate.new_files(s, "add_users", &n), 0);
        assert_int_equal(n.n, 1);
        assert_null(n.dir);
        /* dbmate new: UTC YYYYMMDDHHMMSS, its template */
        assert_int_equal(strlen(n.files[0].path), 14 + strlen("_add_users.sql"));
        assert_string_equal(n.files[0].path + 14, "_add_users.sql");
        snprintf(stamp, sizeof(stamp), "%" PRId64, n.version);
        assert_memory_equal(n.files[0].path, stamp, 14);
        assert_string_equal(n.files[0].content, "-- migrate:up\n\n\n-- migrate:down\n\n");
        migration_new_clear(&n);
        migration_set_free(s);
}

static void test_checksum(void **state) {
        const char *dir = *state;
        migration_set *s;

        /* dbmate records none: an empty recorded checksum is no mismatch, another one is */
        put(dir, "1_a.sql", "-- migrate:up\n-- migrate:down\n");
        s = load_ok(dir);
        assert_true(migration_checksum_matches(&s->items[0], ""));
        assert_true(migration_checksum_matches(&s->items[0], s->items[0].checksum));
        assert_false(migration_checksum_matches(&s->items[0], "00"));
        migration_set_free(s);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, dir_setup, dir_teardown)

int main(void) {
        const struct CMUnitTest tests[] = {
                T(test_blocks),
                T(test_options_per_block),
                T(test_unknown_option),
                T(test_unknown_down_option),
                T(test_missing_up),
                T(test_missing_down),
                T(test_statements_before_up),
                T(test_two_blocks),
                T(test_two_downs),
                T(test_same_version),
                T(test_name_order),
                T(test_version_zero_and_too_long),
                T(test_detect),
                T(test_new),
                T(test_checksum),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
