/* SPDX-License-Identifier: MIT */
/* Unit tests for the table of migration formats (common/migdir-format.h): the rows, detection
 * with its reason, loading each format through the shared driver (sorting, duplicates, the
 * format's own checksum rule), splitting one file into up and down sections with a format
 * plugged in by the test itself, and the names `migratectl new` gives. Real temporary
 * directories with real files. */

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
#include "one-file-format.h"
#include "tmpdir.h"

#define SQL_DEVICES "CREATE TABLE devices (id INTEGER PRIMARY KEY, serial TEXT NOT NULL);\n"
#define SHA_DEVICES "fd4b452fccba76cc1ea2be410031083e6e5f1ffcc5e1ade68d64ed272d7f4fe2"
/* the same statement with CRLF line endings: printf '...;\r\n' | sha256sum */
#define SQL_DEVICES_CRLF "CREATE TABLE devices (id INTEGER PRIMARY KEY, serial TEXT NOT NULL);\r\n"

static void sub(const char *dir, const char *name) {
        char *p;

        assert_true(asprintf(&p, "%s/%s", dir, name) > 0);
        assert_int_equal(mkdir(p, 0755), 0);
        free(p);
}

static void dump_errors(const migdir_errors *e) {
        for (size_t i = 0; i < e->n; i++)
                print_message("  error: %s\n", e->messages[i]);
}

static migration_set *load_ok(const char *dir, migdir_format f) {
        migration_set *s = NULL;
        migdir_errors e = {};
        int r;

        r = migdir_load_format(dir, f, NULL, &s, &e);
        if (r != 0)
                dump_errors(&e);
        assert_int_equal(r, 0);
        assert_int_equal(e.n, 0);
        assert_non_null(s);
        assert_int_equal(s->format, f);
        return s;
}

/* ---- the table ---- */

static void test_rows(void **state) {
        assert_int_equal(migration_format_count(), _MIGDIR_FORMAT_MAX);
        for (size_t i = 0; i < migration_format_count(); i++) {
                const migration_format *f = migration_format_at(i);
                migdir_format id;

                assert_non_null(f);
                assert_ptr_equal(migration_format_get((migdir_format) i), f);
                /* what the driver and the daemon call unconditionally */
                assert_non_null(f->name);
                assert_non_null(f->layout);
                assert_non_null(f->version_word);
                assert_non_null(f->directive_prefix);
                assert_non_null(f->directives);
                assert_non_null(f->load_items);
                assert_non_null(f->parse_directives);
                assert_non_null(f->compare);
                assert_true(!f->prepare || f->free_data);
                /* the name round-trips, and no two rows share it */
                assert_ptr_equal(migration_format_from_name(f->name), f);
                assert_int_equal(migdir_format_from_string(f->name, &id), 0);
                assert_int_equal(id, (migdir_format) i);
                assert_string_equal(migdir_format_to_string(id), f->name);
                assert_non_null(strstr(migdir_format_choices(), f->name));
        }
        assert_null(migration_format_at(migration_format_count()));
        assert_null(migration_format_from_name("auto"));
        assert_null(migration_format_from_name("liquibase"));
        assert_null(migration_format_from_name(""));
}

static void test_choices(void **state) {
        /* the one place the "format" setting's values are spelled */
        assert_string_equal(migdir_format_choices(), "auto, native, prisma, goose, golang-migrate or flyway");
        assert_ptr_equal(migdir_format_choices(), migdir_format_choices());
}

static void test_capabilities(void **state) {
        /* hello announces the formats beyond our own */
        assert_null(migration_format_native.capability);
        assert_string_equal(migration_format_prisma.capability, "prisma");
        /* an existing database with Prisma's layout but no history needs a baseline */
        assert_false(migration_format_native.baseline_untracked_tables);
        assert_true(migration_format_prisma.baseline_untracked_tables);
}

/* ---- detection ---- */

static void test_detect_native(void **state) {
        const char *dir = *state, *reason = NULL;

        put(dir, "0001_devices.up.sql", SQL_DEVICES);
        assert_int_equal(migdir_detect_format_reason(dir, &reason), MIGDIR_NATIVE);
        assert_non_null(reason);
        assert_int_equal(migdir_detect_format(dir), MIGDIR_NATIVE);
}

static void test_detect_prisma(void **state) {
        const char *dir = *state, *reason = NULL;

        put(dir, "migration_lock.toml", "provider = \"sqlite\"\n");
        assert_int_equal(migdir_detect_format_reason(dir, &reason), MIGDIR_PRISMA);
        assert_non_null(reason);
        assert_non_null(strstr(reason, "migration_lock.toml"));
        assert_int_equal(migdir_detect_format(dir), MIGDIR_PRISMA);
}

static void test_detect_missing_dir(void **state) {
        const char *reason = NULL;

        assert_int_equal(migdir_detect_format_reason("/nonexistent/test-migdir-format", &reason), MIGDIR_NATIVE);
        assert_non_null(reason);
}

/* ---- loading through the table ---- */

static void test_load_native_keys(void **state) {
        const char *dir = *state;
        migration_set *s;

        put(dir, "0010_b.up.sql", SQL_DEVICES);
        put(dir, "0002_a.up.sql", SQL_DEVICES);
        put(dir, "0002_a.down.sql", "DROP TABLE devices;\n");
        s = load_ok(dir, MIGDIR_NATIVE);
        assert_int_equal(s->n, 2);
        assert_int_equal(s->items[0].version, 2);
        assert_string_equal(s->items[0].version_key, "0002");
        assert_string_equal(s->items[1].version_key, "0010");
        assert_ptr_equal(s->items[0].format, &migration_format_native);
        assert_null(s->items[0].format_data);
        assert_null(s->items[0].key);
        assert_string_equal(migration_record_name(&s->items[0]), "a");
        assert_string_equal(s->items[0].checksum, SHA_DEVICES);
        assert_true(migration_checksum_matches(&s->items[0], SHA_DEVICES));
        assert_false(migration_checksum_matches(&s->items[0], NULL));
        assert_non_null(s->items[0].down.file);
        assert_null(s->items[1].down.file);
        migration_set_free(s);
}

static void test_load_prisma(void **state) {
        const char *dir = *state;
        migration_set *s;

        put(dir, "migration_lock.toml", "provider = \"sqlite\"\n");
        sub(dir, "20260102000000_second");
        put(dir, "20260102000000_second/migration.sql", SQL_DEVICES_CRLF);
        sub(dir, "20260101000000_first-one");
        put(dir, "20260101000000_first-one/migration.sql", SQL_DEVICES);
        put(dir, "20260101000000_first-one/down.sql", "DROP TABLE devices;\n");
        s = load_ok(dir, MIGDIR_PRISMA);
        assert_int_equal(s->n, 2);
        assert_int_equal(s->items[0].version, INT64_C(20260101000000));
        assert_string_equal(s->items[0].version_key, "20260101000000");
        assert_string_equal(s->items[0].name, "first-one");
        assert_string_equal(migration_record_name(&s->items[0]), "20260101000000_first-one");
        assert_ptr_equal(s->items[0].format, &migration_format_prisma);
        assert_non_null(s->items[0].format_data);
        assert_non_null(s->items[0].down.file);
        /* Prisma's rule: the CRLF file matches the LF file's checksum, and the other way round */
        assert_true(migration_checksum_matches(&s->items[1], SHA_DEVICES));
        assert_true(migration_checksum_matches(&s->items[0], s->items[1].checksum));
        assert_false(migration_checksum_matches(&s->items[0], "0000"));
        migration_set_free(s);
}

/* Folder names Prisma takes: a dash after the timestamp, any name; ordered as Prisma orders them
 * (localeCompare on the names: punctuation before digits, so 1_init before 10_users). */
static void test_prisma_names_and_order(void **state) {
        static const char *const folders[] = { "20260306120000-call-caller-transcript", "2_posts",
                                               "20260101000000_a b.c", "10_users", "1_init" };
        static const char *const order[] = { "1_init", "10_users", "2_posts", "20260101000000_a b.c",
                                             "20260306120000-call-caller-transcript" };
        const char *dir = *state;
        migration_set *s;
        char *p;

        put(dir, "migration_lock.toml", "provider = \"sqlite\"\n");
        for (size_t i = 0; i < ELEMENTSOF(folders); i++) {
                sub(dir, folders[i]);
                assert_true(asprintf(&p, "%s/migration.sql", folders[i]) > 0);
                put(dir, p, SQL_DEVICES);
                free(p);
        }
        s = load_ok(dir, MIGDIR_PRISMA);
        assert_int_equal(s->n, ELEMENTSOF(order));
        for (size_t i = 0; i < ELEMENTSOF(order); i++)
                assert_string_equal(migration_record_name(&s->items[i]), order[i]);
        assert_int_equal(s->items[4].version, INT64_C(20260306120000));
        assert_string_equal(s->items[4].name, "call-caller-transcript");
        assert_ptr_equal(migration_set_find(s, 2), &s->items[2]);
        migration_set_free(s);
}

/* A bad folder is one item: loading by items keeps the others and says which version it is. */
static void test_prisma_bad_folder_is_one_item(void **state) {
        const char *dir = *state;
        migration_set *s = NULL;
        migdir_errors e = {};

        sub(dir, "20260101000000_good");
        put(dir, "20260101000000_good/migration.sql", SQL_DEVICES);
        sub(dir, "20260102000000_no_script");
        assert_int_equal(migdir_load_format(dir, MIGDIR_PRISMA, NULL, &s, &e), MIGDIR_INVALID);
        assert_null(s);
        migdir_errors_clear(&e);
        assert_int_equal(migdir_load_format_items(dir, MIGDIR_PRISMA, NULL, &s, &e), 0);
        assert_non_null(s);
        assert_int_equal(s->n, 1);
        assert_int_equal(e.n, 1);
        assert_non_null(strstr(e.messages[0], "20260102000000_no_script"));
        assert_int_equal(migdir_error_version(&e, 0), INT64_C(20260102000000));
        migration_set_free(s);
        migdir_errors_clear(&e);
        /* a problem of the directory as a whole still invalidates it */
        put(dir, "migration_lock.toml", "provider = \"postgresql\"\n");
        assert_int_equal(migdir_load_format_items(dir, MIGDIR_PRISMA, NULL, &s, &e), MIGDIR_INVALID);
        assert_int_equal(migdir_error_version(&e, 0), -1);
        migdir_errors_clear(&e);
}

static void test_prisma_duplicate(void **state) {
        const char *dir = *state;
        migration_set *s = NULL;
        migdir_errors e = {};

        sub(dir, "20260101000000_a");
        put(dir, "20260101000000_a/migration.sql", SQL_DEVICES);
        sub(dir, "20260101000000_b");
        put(dir, "20260101000000_b/migration.sql", SQL_DEVICES);
        assert_int_equal(migdir_load_format(dir, MIGDIR_PRISMA, NULL, &s, &e), MIGDIR_INVALID);
        assert_null(s);
        assert_int_equal(e.n, 1);
        /* the driver orders the pair by name: the message is the same on every run */
        assert_string_equal(e.messages[0], "20260101000000_b: duplicate timestamp 20260101000000, also used by "
                                           "20260101000000_a");
        migdir_errors_clear(&e);
}

static void test_prisma_provider(void **state) {
        const char *dir = *state;
        migration_set *s = NULL;
        migdir_errors e = {};

        put(dir, "migration_lock.toml", "provider = \"postgresql\"\n");
        sub(dir, "20260101000000_a");
        put(dir, "20260101000000_a/migration.sql", SQL_DEVICES);
        assert_int_equal(migdir_load_format(dir, MIGDIR_PRISMA, NULL, &s, &e), MIGDIR_INVALID);
        assert_int_equal(e.n, 1);
        assert_non_null(strstr(e.messages[0], "postgresql"));
        migdir_errors_clear(&e);
}

/* ---- a format plugged in by the test (one-file-format.h): one file, up and down sections ---- */

static void test_split(void **state) {
        const char *dir = *state;
        migration_set *s = NULL;
        migdir_errors e = {};

        put(dir, "1_a.sql", "-- migrated: no-transaction\nVACUUM;\n-- split: down\nSELECT 1;\n");
        put(dir, "2_b.sql", SQL_DEVICES);
        assert_int_equal(migdir_load_with(dir, &one_file_format, NULL, &s, &e), 0);
        assert_int_equal(s->n, 2);
        /* sorted by the format's order, not the loader's */
        assert_int_equal(s->items[0].version, 1);
        assert_string_equal(s->items[0].up.sql, "-- migrated: no-transaction\nVACUUM;\n");
        assert_string_equal(s->items[0].down.sql, "SELECT 1;\n");
        assert_string_equal(s->items[0].up.file, "1_a.sql");
        assert_string_equal(s->items[0].down.file, "1_a.sql");
        /* the whole file's directives hold for both sections */
        assert_true(s->items[0].up.flags & MIGRATION_NO_TRANSACTION);
        assert_true(s->items[0].down.flags & MIGRATION_NO_TRANSACTION);
        /* no down section: irreversible; the checksum is the whole file's */
        assert_null(s->items[1].down.file);
        assert_string_equal(s->items[1].up.sql, SQL_DEVICES);
        assert_string_equal(s->items[1].checksum, SHA_DEVICES);
        migration_set_free(s);
}

static void test_split_refused(void **state) {
        const char *dir = *state;
        migration_set *s = NULL;
        migdir_errors e = {};

        put(dir, "1_a.sql", "SELECT 1;\n-- split: down\nSELECT 2;\n-- split: down\n");
        put(dir, "2_b.sql", "-- migrated: bogus\nSELECT 1;\n");
        assert_int_equal(migdir_load_with(dir, &one_file_format, NULL, &s, &e), MIGDIR_INVALID);
        assert_null(s);
        assert_int_equal(e.n, 2);
        /* in the directory's order */
        if (strncmp(e.messages[0], "1_a", 3) == 0) {
                char *t = e.messages[0];
                e.messages[0] = e.messages[1];
                e.messages[1] = t;
        }
        assert_string_equal(e.messages[0], "2_b.sql: unknown directive '-- migrated: bogus' (known: no-transaction)");
        assert_string_equal(e.messages[1], "1_a.sql: two down sections");
        migdir_errors_clear(&e);
}

/* ---- naming: migratectl new ---- */

static void test_new_native(void **state) {
        const char *dir = *state;
        migration_new n = {};
        migration_set *s;

        put(dir, "00007_a.up.sql", SQL_DEVICES);
        s = load_ok(dir, MIGDIR_NATIVE);
        assert_int_equal(migration_format_native.new_files(s, "add_users", &n), 0);
        assert_int_equal(n.version, 8);
        assert_null(n.dir);
        assert_int_equal(n.n, 2);
        /* the directory's padding is kept */
        assert_string_equal(n.files[0].path, "00008_add_users.up.sql");
        assert_string_equal(n.files[1].path, "00008_add_users.down.sql");
        assert_non_null(strstr(n.files[0].content, "00008_add_users: up"));
        /* a header is a comment, never a directive */
        assert_null(strstr(n.files[0].content, "-- migrated:"));
        assert_null(strstr(n.files[1].content, "-- migrated:"));
        migration_new_clear(&n);
        assert_null(n.files[0].path);
        migration_set_free(s);
}

static void test_new_native_empty(void **state) {
        const char *dir = *state;
        migration_new n = {};
        migration_set *s = load_ok(dir, MIGDIR_NATIVE);

        assert_int_equal(migration_format_native.new_files(s, "init", &n), 0);
        assert_int_equal(n.version, 1);
        assert_string_equal(n.files[0].path, "0001_init.up.sql");
        migration_new_clear(&n);
        migration_set_free(s);
}

static void test_new_native_timestamps(void **state) {
        const char *dir = *state;
        migration_new n = {};
        migration_set *s;

        /* a directory numbered by timestamps goes on with the current time (after 2000) */
        put(dir, "20000101000000_a.up.sql", SQL_DEVICES);
        s = load_ok(dir, MIGDIR_NATIVE);
        assert_int_equal(migration_format_native.new_files(s, "b", &n), 0);
        assert_true(n.version > INT64_C(20000101000000));
        assert_int_equal(strcspn(n.files[0].path, "_"), 14);
        migration_new_clear(&n);
        migration_set_free(s);
}

static void test_new_native_overflow(void **state) {
        const char *dir = *state;
        migration_new n = {};
        migration_set *s;

        put(dir, "9223372036854775807_last.up.sql", SQL_DEVICES);
        s = load_ok(dir, MIGDIR_NATIVE);
        assert_int_equal(migration_format_native.new_files(s, "b", &n), -EOVERFLOW);
        migration_new_clear(&n);
        migration_set_free(s);
}

static void test_new_prisma(void **state) {
        /* Prisma's files are written by `prisma migrate dev`; new writes ours (as it always has) */
        assert_null(migration_format_prisma.new_files);
        assert_non_null(migration_format_native.new_files);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, dir_setup, dir_teardown)

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_rows),
                cmocka_unit_test(test_choices),
                cmocka_unit_test(test_capabilities),
                T(test_detect_native),
                T(test_detect_prisma),
                cmocka_unit_test(test_detect_missing_dir),
                T(test_load_native_keys),
                T(test_load_prisma),
                T(test_prisma_names_and_order),
                T(test_prisma_bad_folder_is_one_item),
                T(test_prisma_duplicate),
                T(test_prisma_provider),
                T(test_split),
                T(test_split_refused),
                T(test_new_native),
                T(test_new_native_empty),
                T(test_new_native_timestamps),
                T(test_new_native_overflow),
                cmocka_unit_test(test_new_prisma),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
