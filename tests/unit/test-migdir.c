/* SPDX-License-Identifier: MIT */
/* Unit tests for common/migdir.c: real temporary directories with real files, loaded with
 * migdir_load, covering the valid layouts, every malformed case (each must be reported naming its
 * file), directives, ignored entries and the reuse of an earlier scan. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "migdir.h"
#include "tmpdir.h"

/* Contents and their SHA-256, computed with: printf '<contents>' | sha256sum */
#define SQL_DEVICES "CREATE TABLE devices (id INTEGER PRIMARY KEY, serial TEXT NOT NULL);\n"
#define SHA_DEVICES "fd4b452fccba76cc1ea2be410031083e6e5f1ffcc5e1ade68d64ed272d7f4fe2"
/* same size as SQL_DEVICES (TEXT -> BLOB) */
#define SQL_DEVICES_BLOB "CREATE TABLE devices (id INTEGER PRIMARY KEY, serial BLOB NOT NULL);\n"
#define SHA_DEVICES_BLOB "62980e557c7086629c7c7c80daadea53787db96f0216ed6e2f4b5252df924f94"
#define SQL_DEVICES_MODEL "CREATE TABLE devices (id INTEGER PRIMARY KEY, serial TEXT NOT NULL, model TEXT);\n"
#define SHA_DEVICES_MODEL "2070d12db955fb10b243c7a72e3cd0384f737b3ba337f90146eb7232e35e6bbf"
#define SQL_VITALS "CREATE TABLE vitals (id INTEGER PRIMARY KEY, hr REAL);\n"
#define SHA_VITALS "a7facdc2e5998da91eae7a454323884a6290612de194900b104afd8c33cda219"
#define SQL_INDEX "CREATE INDEX idx_vitals_hr ON vitals (hr);\n"
#define SHA_INDEX "987ed55b6232f9b7ed12568fec2cfc9de2de2d05981f338f572d7d414a0d8406"
#define SQL_INDEX_DOWN "DROP INDEX idx_vitals_hr;\n"
#define SQL_VACUUM "-- migrated: no-transaction\nVACUUM;\n"
#define SHA_VACUUM "2052ea0d080940d18346555b5901c96815f53c5766a9fb5334604df05cf4ac85"

/* A migration_set pointer that migdir_load must leave alone when it fails. */
static migration_set sentinel_set;
#define SENTINEL (&sentinel_set)

/* ---- temporary directories ---- */

/* Sets a file's mtime (atime follows) to sec.nsec. */
static void set_mtime(const char *dir, const char *name, struct timespec t) {
        char *p = path_of(dir, name);
        struct timespec times[2] = { t, t };

        assert_int_equal(utimensat(AT_FDCWD, p, times, 0), 0);
        free(p);
}

static struct timespec get_mtime(const char *dir, const char *name) {
        char *p = path_of(dir, name);
        struct stat st;

        assert_int_equal(stat(p, &st), 0);
        free(p);
        return st.st_mtim;
}

/* ---- assertions on errors ---- */

static bool is_file_char(char c) {
        return isalnum((unsigned char) c) || c == '_' || c == '.' || c == '-';
}

/* True when msg mentions file as a whole file name (not as part of a longer one). */
static bool names_file(const char *msg, const char *file) {
        size_t n = strlen(file);

        for (const char *p = msg; (p = strstr(p, file)); p++)
                if ((p == msg || !is_file_char(p[-1])) && !is_file_char(p[n]))
                        return true;
        return false;
}

static size_t count_naming(const migdir_errors *e, const char *file) {
        size_t c = 0;

        for (size_t i = 0; i < e->n; i++)
                if (names_file(e->messages[i], file))
                        c++;
        return c;
}

static void dump_errors(const migdir_errors *e) {
        for (size_t i = 0; i < e->n; i++)
                print_message("  error: %s\n", e->messages[i]);
}

/* Loads dir expecting MIGDIR_INVALID with exactly n_errors problems, one naming each of files. */
static void assert_invalid(const char *dir, size_t n_errors, const char *const *files, size_t n_files) {
        migration_set *s = SENTINEL;
        migdir_errors e = {};
        int r;

        r = migdir_load(dir, NULL, &s, &e);
        if (r != MIGDIR_INVALID || e.n != n_errors) {
                size_t got = e.n;

                dump_errors(&e);
                migdir_errors_clear(&e);
                if (s != SENTINEL)
                        migration_set_free(s);
                fail_msg("migdir_load returned %d with %zu error(s), expected MIGDIR_INVALID with %zu", r, got,
                         n_errors);
        }
        assert_ptr_equal(s, SENTINEL);
        for (size_t i = 0; i < n_files; i++) {
                if (count_naming(&e, files[i]) == 0) {
                        dump_errors(&e);
                        migdir_errors_clear(&e);
                        fail_msg("no error names %s", files[i]);
                }
        }
        /* the valid migration next to the bad file is never blamed */
        assert_int_equal(count_naming(&e, "0001_devices.up.sql"), 0);
        migdir_errors_clear(&e);
        assert_int_equal(e.n, 0);
        assert_null(e.messages);

        /* without an error list the verdict is the same */
        r = migdir_load(dir, NULL, &s, NULL);
        assert_int_equal(r, MIGDIR_INVALID);
        assert_ptr_equal(s, SENTINEL);
}

/* One good migration plus the given bad files; each must be reported, naming it. */
static void check_bad_file(const char *dir, const char *file, const char *contents) {
        put(dir, "0001_devices.up.sql", SQL_DEVICES);
        put(dir, file, contents);
        assert_invalid(dir, 1, &file, 1);
}

static migration_set *load_ok(const char *dir, const migration_set *previous) {
        migration_set *s = NULL;
        migdir_errors e = {};
        int r;

        r = migdir_load(dir, previous, &s, &e);
        if (r != 0)
                dump_errors(&e);
        assert_int_equal(r, 0);
        assert_int_equal(e.n, 0);
        assert_non_null(s);
        migdir_errors_clear(&e);
        return s;
}

/* ---- valid sets ---- */

static void test_valid_set(void **state) {
        const char *dir = *state;
        migration_set *s;
        const migration *m;

        put(dir, "0001_devices.up.sql", SQL_DEVICES);
        put(dir, "2_vitals.up.sql", SQL_VITALS);
        put(dir, "10_vitals_index.up.sql", SQL_INDEX);
        put(dir, "10_vitals_index.down.sql", SQL_INDEX_DOWN);
        put(dir, "20240301120000_vacuum.up.sql", SQL_VACUUM);

        s = load_ok(dir, NULL);
        assert_string_equal(s->dir, dir);
        assert_int_equal(s->n, 4);

        /* numeric order: 1 < 2 < 10 < 20240301120000, although "10_" sorts before "2_" */
        assert_int_equal(s->items[0].version, 1);
        assert_int_equal(s->items[1].version, 2);
        assert_int_equal(s->items[2].version, 10);
        assert_int_equal(s->items[3].version, INT64_C(20240301120000));

        m = &s->items[0];
        assert_string_equal(m->name, "devices");
        assert_string_equal(m->up.file, "0001_devices.up.sql");
        assert_string_equal(m->up.sql, SQL_DEVICES);
        assert_int_equal(m->up.size, strlen(SQL_DEVICES));
        assert_int_equal(m->up.flags, 0);
        assert_null(m->down.file);
        assert_null(m->down.sql);
        assert_string_equal(m->checksum, SHA_DEVICES);

        m = &s->items[1];
        assert_string_equal(m->name, "vitals");
        assert_string_equal(m->up.file, "2_vitals.up.sql");
        assert_string_equal(m->checksum, SHA_VITALS);
        assert_null(m->down.file);

        m = &s->items[2];
        assert_string_equal(m->name, "vitals_index");
        assert_string_equal(m->up.file, "10_vitals_index.up.sql");
        assert_string_equal(m->down.file, "10_vitals_index.down.sql");
        assert_string_equal(m->down.sql, SQL_INDEX_DOWN);
        assert_int_equal(m->down.size, strlen(SQL_INDEX_DOWN));
        /* the checksum is the up file's, never the down file's */
        assert_string_equal(m->checksum, SHA_INDEX);

        m = &s->items[3];
        assert_string_equal(m->name, "vacuum");
        assert_string_equal(m->checksum, SHA_VACUUM);
        assert_int_equal(m->up.flags, MIGRATION_NO_TRANSACTION);

        assert_int_equal(migration_set_latest(s), INT64_C(20240301120000));
        assert_int_equal(migration_set_version_width(s), 14);
        assert_ptr_equal(migration_set_find(s, 1), &s->items[0]);
        assert_ptr_equal(migration_set_find(s, 2), &s->items[1]);
        assert_ptr_equal(migration_set_find(s, 10), &s->items[2]);
        assert_ptr_equal(migration_set_find(s, INT64_C(20240301120000)), &s->items[3]);
        assert_null(migration_set_find(s, 0));
        assert_null(migration_set_find(s, 3));
        assert_null(migration_set_find(s, 11));
        assert_null(migration_set_find(s, INT64_MAX));
        migration_set_free(s);
}

static void test_empty_dir(void **state) {
        const char *dir = *state;
        migration_set *s = load_ok(dir, NULL);

        assert_int_equal(s->n, 0);
        assert_int_equal(migration_set_latest(s), 0);
        assert_int_equal(migration_set_version_width(s), 4);
        assert_null(migration_set_find(s, 1));
        migration_set_free(s);
}

static void test_largest_version(void **state) {
        const char *dir = *state;
        migration_set *s;

        /* INT64_MAX itself is a valid version */
        put(dir, "9223372036854775807_last.up.sql", SQL_DEVICES);
        s = load_ok(dir, NULL);
        assert_int_equal(s->n, 1);
        assert_int_equal(s->items[0].version, INT64_MAX);
        assert_int_equal(migration_set_latest(s), INT64_MAX);
        assert_int_equal(migration_set_version_width(s), 19);
        migration_set_free(s);
}

static void test_ignored_entries(void **state) {
        const char *dir = *state;
        char *sub;
        migration_set *s;

        put(dir, "0001_devices.up.sql", SQL_DEVICES);
        put(dir, "README.md", "# migrations\n");
        put(dir, "notes.txt", "not a migration\n");
        put(dir, "0002_backup.up.sql.orig", SQL_VITALS);
        put(dir, "0003_editor.up.sql~", SQL_VITALS);
        put(dir, ".0004_hidden.up.sql", SQL_VITALS);
        put(dir, ".#0005_lock.up.sql", SQL_VITALS);
        put(dir, ".hidden.sql", "garbage");
        sub = path_of(dir, "0006_subdir.up.sql");
        assert_int_equal(mkdir(sub, 0755), 0);
        free(sub);
        sub = path_of(dir, "archive");
        assert_int_equal(mkdir(sub, 0755), 0);
        free(sub);

        s = load_ok(dir, NULL);
        assert_int_equal(s->n, 1);
        assert_int_equal(s->items[0].version, 1);
        assert_string_equal(s->items[0].up.file, "0001_devices.up.sql");
        migration_set_free(s);
}

static void test_missing_directory(void **state) {
        const char *dir = *state;
        migration_set *s = SENTINEL;
        migdir_errors e = {};
        char *p = path_of(dir, "does-not-exist");

        assert_int_equal(migdir_load(p, NULL, &s, &e), -ENOENT);
        assert_ptr_equal(s, SENTINEL);
        assert_int_equal(e.n, 0);
        free(p);

        /* a regular file is not a directory */
        put(dir, "file", "x");
        p = path_of(dir, "file");
        assert_int_equal(migdir_load(p, NULL, &s, &e), -ENOTDIR);
        assert_ptr_equal(s, SENTINEL);
        free(p);
}

static void test_version_width(void **state) {
        const char *dir = *state;
        migration_set *s;

        put(dir, "1_a.up.sql", SQL_DEVICES);
        put(dir, "2_b.up.sql", SQL_VITALS);
        s = load_ok(dir, NULL);
        assert_int_equal(migration_set_version_width(s), 4); /* at least 4 */
        migration_set_free(s);

        /* padding in use is kept: 00003 is five wide although 3 needs one digit */
        put(dir, "00003_c.up.sql", SQL_INDEX);
        s = load_ok(dir, NULL);
        assert_int_equal(migration_set_version_width(s), 5);
        migration_set_free(s);

        put(dir, "123456_d.up.sql", SQL_INDEX);
        s = load_ok(dir, NULL);
        assert_int_equal(migration_set_version_width(s), 6);
        assert_int_equal(migration_set_latest(s), 123456);
        migration_set_free(s);

        assert_int_equal(migration_set_version_width(NULL), 4);
        assert_int_equal(migration_set_latest(NULL), 0);
        assert_null(migration_set_find(NULL, 1));
}

/* ---- file names ---- */

static void test_parse_filename(void **state) {
        int64_t v = -1;
        char *name = NULL;
        bool up = false;
        const char *reason = NULL;

        assert_int_equal(migration_parse_filename("0042_add_vitals.down.sql", &v, &name, &up, &reason), 0);
        assert_int_equal(v, 42);
        assert_string_equal(name, "add_vitals");
        assert_false(up);
        free(name);

        assert_int_equal(migration_parse_filename("7_x9.up.sql", &v, &name, &up, &reason), 0);
        assert_int_equal(v, 7);
        assert_string_equal(name, "x9");
        assert_true(up);
        free(name);

        static const char *const bad[] = {
                "0001_Devices.up.sql", "0001-devices.up.sql", "0001_dev-ices.up.sql", "0001.up.sql",
                "0001_.up.sql", "devices.up.sql", "_devices.up.sql", "0000_zero.up.sql", "0_zero.down.sql",
                "9223372036854775808_big.up.sql", "0001_devices.sql", "0001_devices.UP.sql",
                "0001_devices.up.sq", "0001_dev ices.up.sql", "0001_devices.up.sql.sql", ".up.sql", "1_.down.sql",
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                v = -1;
                name = NULL;
                reason = NULL;
                if (migration_parse_filename(bad[i], &v, &name, &up, &reason) != -EINVAL)
                        fail_msg("%s was accepted", bad[i]);
                assert_non_null(reason);
                assert_int_equal(v, -1); /* outputs untouched on failure */
                assert_null(name);
        }

        assert_true(migration_name_is_valid("add_vitals_2"));
        assert_false(migration_name_is_valid(""));
        assert_false(migration_name_is_valid("Add"));
        assert_false(migration_name_is_valid("a-b"));
        assert_false(migration_name_is_valid("a.b"));
}

/* ---- malformed directories: each problem is MIGDIR_INVALID and names its file ---- */

static void test_duplicate_version(void **state) {
        const char *dir = *state;
        const char *files[] = { "0002_vitals.up.sql", "2_other.up.sql" };
        migdir_errors e = {};
        migration_set *s = SENTINEL;

        put(dir, "0001_devices.up.sql", SQL_DEVICES);
        put(dir, files[0], SQL_VITALS);
        put(dir, files[1], SQL_INDEX);
        /* one problem, and its message names both files that claim version 2 */
        assert_invalid(dir, 1, files, 2);
        assert_int_equal(migdir_load(dir, NULL, &s, &e), MIGDIR_INVALID);
        assert_int_equal(e.n, 1);
        assert_true(names_file(e.messages[0], files[0]));
        assert_true(names_file(e.messages[0], files[1]));
        migdir_errors_clear(&e);
}

static void test_duplicate_version_first(void **state) {
        const char *dir = *state;
        const char *files[] = { "0001_a.up.sql", "1_b.up.sql" };

        put(dir, files[0], SQL_DEVICES);
        put(dir, files[1], SQL_VITALS);
        put(dir, "0002_vitals.up.sql", SQL_VITALS);
        assert_invalid(dir, 1, files, 2);
}

static void test_bad_name_uppercase(void **state) {
        check_bad_file(*state, "0002_AddVitals.up.sql", SQL_VITALS);
}

static void test_bad_name_dash(void **state) {
        check_bad_file(*state, "0002-add_vitals.up.sql", SQL_VITALS);
}

static void test_bad_name_dash_in_name(void **state) {
        check_bad_file(*state, "0002_add-vitals.up.sql", SQL_VITALS);
}

static void test_bad_name_missing_name(void **state) {
        check_bad_file(*state, "0002.up.sql", SQL_VITALS);
}

static void test_bad_name_empty_name(void **state) {
        check_bad_file(*state, "0002_.down.sql", SQL_VITALS);
}

static void test_bad_name_missing_version(void **state) {
        check_bad_file(*state, "add_vitals.up.sql", SQL_VITALS);
}

static void test_bad_name_missing_version_underscore(void **state) {
        check_bad_file(*state, "_add_vitals.up.sql", SQL_VITALS);
}

static void test_bad_name_version_zero(void **state) {
        check_bad_file(*state, "0000_empty.up.sql", SQL_VITALS);
}

static void test_bad_name_version_too_large(void **state) {
        /* INT64_MAX + 1 */
        check_bad_file(*state, "9223372036854775808_big.up.sql", SQL_VITALS);
}

static void test_bad_name_version_far_too_large(void **state) {
        check_bad_file(*state, "99999999999999999999999999_big.up.sql", SQL_VITALS);
}

static void test_bad_name_no_direction(void **state) {
        check_bad_file(*state, "0002_add_vitals.sql", SQL_VITALS);
}

static void test_bad_name_wrong_direction(void **state) {
        check_bad_file(*state, "0002_add_vitals.forward.sql", SQL_VITALS);
}

static void test_bad_name_too_long(void **state) {
        char file[256];

        /* 201 name characters, one more than MIGRATION_NAME_MAX */
        strcpy(file, "0002_");
        memset(file + 5, 'a', MIGRATION_NAME_MAX + 1);
        strcpy(file + 5 + MIGRATION_NAME_MAX + 1, ".up.sql");
        check_bad_file(*state, file, SQL_VITALS);
}

static void test_name_max_length(void **state) {
        const char *dir = *state;
        char file[256];
        migration_set *s;

        strcpy(file, "0002_");
        memset(file + 5, 'a', MIGRATION_NAME_MAX);
        strcpy(file + 5 + MIGRATION_NAME_MAX, ".up.sql");
        put(dir, file, SQL_VITALS);
        s = load_ok(dir, NULL);
        assert_int_equal(s->n, 1);
        assert_int_equal(strlen(s->items[0].name), MIGRATION_NAME_MAX);
        migration_set_free(s);
}

static void test_down_without_up(void **state) {
        check_bad_file(*state, "0002_vitals.down.sql", "DROP TABLE vitals;\n");
}

static void test_down_name_differs(void **state) {
        const char *dir = *state;
        const char *bad = "0002_vital.down.sql";

        put(dir, "0002_vitals.up.sql", SQL_VITALS);
        check_bad_file(dir, bad, "DROP TABLE vitals;\n");
}

static void test_unreadable_chmod(void **state) {
        const char *dir = *state;
        const char *bad = "0002_vitals.up.sql";
        char *p;

        if (geteuid() == 0)
                skip(); /* root reads mode 000 files; see test_unreadable_dangling_symlink */
        put(dir, "0001_devices.up.sql", SQL_DEVICES);
        put(dir, bad, SQL_VITALS);
        p = path_of(dir, bad);
        assert_int_equal(chmod(p, 0), 0);
        free(p);
        assert_invalid(dir, 1, &bad, 1);
}

static void test_unreadable_dangling_symlink(void **state) {
        const char *dir = *state;
        const char *bad = "0002_vitals.up.sql";
        char *p = path_of(dir, bad);

        /* fails to open for root too */
        put(dir, "0001_devices.up.sql", SQL_DEVICES);
        assert_int_equal(symlink("/nonexistent/test-migdir/0002_vitals.up.sql", p), 0);
        free(p);
        assert_invalid(dir, 1, &bad, 1);
}

static void test_unreadable_down_file(void **state) {
        const char *dir = *state;
        const char *bad = "0002_vitals.down.sql";
        char *p = path_of(dir, bad);

        put(dir, "0002_vitals.up.sql", SQL_VITALS);
        put(dir, "0001_devices.up.sql", SQL_DEVICES);
        assert_int_equal(symlink("/nonexistent/test-migdir/x.sql", p), 0);
        free(p);
        assert_invalid(dir, 1, &bad, 1);
}

static void test_too_large(void **state) {
        const char *dir = *state;
        const char *bad = "0002_huge.up.sql";
        char *p = path_of(dir, bad);

        /* a sparse file one byte over the limit: refused without reading it */
        put(dir, "0001_devices.up.sql", SQL_DEVICES);
        put(dir, bad, "");
        assert_int_equal(truncate(p, (off_t) MIGRATION_FILE_MAX + 1), 0);
        free(p);
        assert_invalid(dir, 1, &bad, 1);
}

static volatile sig_atomic_t alarm_fired;

static void on_alarm(int sig) {
        alarm_fired = 1;
}

static void test_not_regular_fifo(void **state) {
        const char *dir = *state;
        const char *bad = "0002_pipe.up.sql";
        struct sigaction sa = { .sa_handler = on_alarm }, old;
        char *p = path_of(dir, bad);
        migdir_errors e = {};
        migration_set *s = SENTINEL;
        int r;

        /* A FIFO named like a migration must be refused as "not a regular file", without
         * blocking: nobody will ever open its other end. The alarm (no SA_RESTART) interrupts a
         * blocked open() so that the test fails instead of hanging. */
        put(dir, "0001_devices.up.sql", SQL_DEVICES);
        assert_int_equal(mkfifo(p, 0644), 0);
        free(p);
        alarm_fired = 0;
        assert_int_equal(sigaction(SIGALRM, &sa, &old), 0);
        alarm(2);
        r = migdir_load(dir, NULL, &s, &e);
        alarm(0);
        sigaction(SIGALRM, &old, NULL);
        if (alarm_fired)
                fail_msg("migdir_load blocked opening the FIFO %s", bad);
        assert_int_equal(r, MIGDIR_INVALID);
        assert_ptr_equal(s, SENTINEL);
        assert_int_equal(e.n, 1);
        assert_true(names_file(e.messages[0], bad));
        migdir_errors_clear(&e);
}

static void test_nul_byte(void **state) {
        const char *dir = *state;
        const char *bad = "0002_vitals.up.sql";
        static const char data[] = "CREATE TABLE vitals (id INTEGER);\n\0DROP TABLE devices;\n";

        put(dir, "0001_devices.up.sql", SQL_DEVICES);
        write_bytes(dir, bad, data, sizeof(data) - 1);
        assert_invalid(dir, 1, &bad, 1);
}

static void test_nul_byte_in_down(void **state) {
        const char *dir = *state;
        const char *bad = "0002_vitals.down.sql";
        static const char data[] = "DROP TABLE vitals;\0";

        put(dir, "0001_devices.up.sql", SQL_DEVICES);
        put(dir, "0002_vitals.up.sql", SQL_VITALS);
        write_bytes(dir, bad, data, sizeof(data) - 1);
        assert_invalid(dir, 1, &bad, 1);
}

static void test_unknown_directive(void **state) {
        const char *dir = *state;
        const char *bad = "0002_vacuum.up.sql";
        migdir_errors e = {};
        migration_set *s = SENTINEL;

        check_bad_file(dir, bad, "-- migrated: no-transactions\nVACUUM;\n");
        /* the message quotes the directive it did not understand */
        assert_int_equal(migdir_load(dir, NULL, &s, &e), MIGDIR_INVALID);
        assert_int_equal(e.n, 1);
        assert_non_null(strstr(e.messages[0], "no-transactions"));
        migdir_errors_clear(&e);
}

static void test_several_problems(void **state) {
        const char *dir = *state;
        static const char nul[] = "SELECT 1;\0";
        const char *files[] = {
                "0002_Vitals.up.sql",       /* bad name */
                "0003_index.up.sql",        /* NUL byte */
                "0004_gone.down.sql",       /* down without up */
                "0005_vacuum.up.sql",       /* unknown directive */
                "0006_x.sql",               /* neither up nor down */
                "7_dup.up.sql",             /* duplicate of 0007_first */
        };

        put(dir, "0001_devices.up.sql", SQL_DEVICES);
        put(dir, files[0], SQL_VITALS);
        write_bytes(dir, files[1], nul, sizeof(nul) - 1);
        put(dir, files[2], "DROP TABLE gone;\n");
        put(dir, files[3], "-- migrated: transaction-per-statement\nSELECT 1;\n");
        put(dir, files[4], "SELECT 1;\n");
        put(dir, "0007_first.up.sql", "SELECT 1;\n");
        put(dir, files[5], "SELECT 2;\n");
        put(dir, "0008_fine.up.sql", "SELECT 3;\n");
        assert_invalid(dir, 6, files, 6);
}

/* ---- directives ---- */

static unsigned flags_of(const char *dir, const char *file, const char *contents) {
        migration_set *s;
        unsigned flags;

        put(dir, file, contents);
        s = load_ok(dir, NULL);
        assert_int_equal(s->n, 1);
        flags = s->items[0].up.flags;
        migration_set_free(s);
        return flags;
}

static void test_directives(void **state) {
        const char *dir = *state;
        const char *f = "0001_vacuum.up.sql";

        assert_int_equal(flags_of(dir, f, "-- migrated: no-transaction\nVACUUM;\n"), MIGRATION_NO_TRANSACTION);
        assert_int_equal(flags_of(dir, f, "--migrated:no-transaction\nVACUUM;\n"), MIGRATION_NO_TRANSACTION);
        assert_int_equal(flags_of(dir, f, "--   migrated:   no-transaction   \nVACUUM;\n"), MIGRATION_NO_TRANSACTION);
        assert_int_equal(flags_of(dir, f, "--\tmigrated:\tno-transaction\r\nVACUUM;\r\n"), MIGRATION_NO_TRANSACTION);
        /* after other comment lines and blank lines */
        assert_int_equal(flags_of(dir, f,
                                  "-- Reclaims the space freed by 0006.\n"
                                  "--\n"
                                  "\n"
                                  "   \n"
                                  "-- VACUUM cannot run inside a transaction.\n"
                                  "  -- migrated: no-transaction\n"
                                  "\n"
                                  "VACUUM;\n"),
                         MIGRATION_NO_TRANSACTION);
        /* only directive, no statement, no final newline */
        assert_int_equal(flags_of(dir, f, "-- migrated: no-transaction"), MIGRATION_NO_TRANSACTION);
        /* plain comments are not directives */
        assert_int_equal(flags_of(dir, f, "-- no-transaction\n-- migrated no-transaction\nVACUUM;\n"), 0);
        /* not after the first statement */
        assert_int_equal(flags_of(dir, f, "VACUUM;\n-- migrated: no-transaction\n"), 0);
        assert_int_equal(flags_of(dir, f, "-- Vacuum.\nSELECT 1;\n\n-- migrated: no-transaction\nVACUUM;\n"), 0);
        /* an unknown directive after the first statement is just a comment */
        assert_int_equal(flags_of(dir, f, "SELECT 1;\n-- migrated: bogus\n"), 0);
        assert_int_equal(flags_of(dir, f, ""), 0);
}

static void test_directive_in_down_file(void **state) {
        const char *dir = *state;
        migration_set *s;

        put(dir, "0001_devices.up.sql", SQL_DEVICES);
        put(dir, "0001_devices.down.sql", "-- migrated: no-transaction\nDROP TABLE devices;\n");
        s = load_ok(dir, NULL);
        assert_int_equal(s->items[0].up.flags, 0);
        assert_int_equal(s->items[0].down.flags, MIGRATION_NO_TRANSACTION);
        migration_set_free(s);
}

static void test_parse_directives_direct(void **state) {
        unsigned flags = 99;
        char *bad = NULL;
        static const char ok[] = "-- migrated: no-transaction\nVACUUM;\n";
        static const char unknown[] = "-- header\n--  migrated:  no-transactions  \nVACUUM;\n";

        assert_int_equal(migration_parse_directives(ok, strlen(ok), &flags, &bad), 0);
        assert_int_equal(flags, MIGRATION_NO_TRANSACTION);
        assert_null(bad);

        flags = 99;
        assert_int_equal(migration_parse_directives(unknown, strlen(unknown), &flags, &bad), -EINVAL);
        assert_int_equal(flags, 99); /* untouched on failure */
        assert_non_null(bad);
        assert_string_equal(bad, "no-transactions");
        free(bad);

        /* size bounds the scan: the directive beyond size is not seen */
        assert_int_equal(migration_parse_directives(ok, 5, &flags, NULL), 0);
        assert_int_equal(flags, 0);
}

/* The online/breaking override and the lint's accept comment: one class per file, accepted rules
 * named exactly, only in the leading comments. */
static void test_directives_online_and_accept(void **state) {
        unsigned flags = 0;
        char *bad = NULL;
        static const char online[] = "-- migrated: online\n-- migrated: accept drop-table\nUPDATE t SET a = 1;\n";
        static const char both[] = "-- migrated: online\n-- migrated: breaking\nSELECT 1;\n";
        static const char late[] = "SELECT 1;\n-- migrated: accept drop-table\n";

        assert_int_equal(migration_parse_directives(online, strlen(online), &flags, &bad), 0);
        assert_int_equal(flags, MIGRATION_ONLINE);
        assert_true(migration_accepts_rule(online, strlen(online), "drop-table"));
        assert_false(migration_accepts_rule(online, strlen(online), "drop"));
        assert_false(migration_accepts_rule(online, strlen(online), "drop-table-x"));
        assert_false(migration_accepts_rule(late, strlen(late), "drop-table"));

        assert_int_equal(migration_parse_directives(both, strlen(both), &flags, &bad), -EINVAL);
        assert_string_equal(bad, "breaking");
        free(bad);
}

/* ---- reuse of a previous scan ---- */

/* test-migdir is linked with -Wl,--wrap=sha256_hex: every hash migdir computes goes through here
 * to the real function, so the tests can tell a reused file from one read and hashed again. */
int __real_sha256_hex(const void *data, size_t size, char ret_hex[SHA256_HEX_SIZE]);
int __wrap_sha256_hex(const void *data, size_t size, char ret_hex[SHA256_HEX_SIZE]);
static unsigned hash_calls;

int __wrap_sha256_hex(const void *data, size_t size, char ret_hex[SHA256_HEX_SIZE]) {
        hash_calls++;
        return __real_sha256_hex(data, size, ret_hex);
}

static void test_previous_reuse(void **state) {
        const char *dir = *state;
        migration_set *s1, *s2, *s3, *s4, *s5, *fresh;
        struct timespec t;

        put(dir, "0001_devices.up.sql", SQL_DEVICES);
        put(dir, "0002_vitals.up.sql", SQL_VITALS);
        put(dir, "0002_vitals.down.sql", "DROP TABLE vitals;\n");

        hash_calls = 0;
        s1 = load_ok(dir, NULL);
        assert_int_equal(hash_calls, 2); /* the up files */

        /* nothing changed: nothing is hashed again */
        s2 = load_ok(dir, s1);
        assert_int_equal(hash_calls, 2);
        /* s2 owns its data: free s1 first (ASan would flag any borrowed pointer) */
        migration_set_free(s1);
        assert_int_equal(s2->n, 2);
        assert_string_equal(s2->dir, dir);
        assert_string_equal(s2->items[0].name, "devices");
        assert_string_equal(s2->items[0].up.file, "0001_devices.up.sql");
        assert_string_equal(s2->items[0].up.sql, SQL_DEVICES);
        assert_int_equal(s2->items[0].up.size, strlen(SQL_DEVICES));
        assert_string_equal(s2->items[0].checksum, SHA_DEVICES);
        assert_string_equal(s2->items[1].checksum, SHA_VITALS);
        assert_string_equal(s2->items[1].down.file, "0002_vitals.down.sql");
        assert_string_equal(s2->items[1].down.sql, "DROP TABLE vitals;\n");

        /* Same size, new content and a new mtime: read and hashed again. */
        t = get_mtime(dir, "0001_devices.up.sql");
        put(dir, "0001_devices.up.sql", SQL_DEVICES_BLOB);
        t.tv_sec += 5;
        set_mtime(dir, "0001_devices.up.sql", t);
        s3 = load_ok(dir, s2);
        assert_int_equal(hash_calls, 3);
        assert_string_equal(s3->items[0].checksum, SHA_DEVICES_BLOB);
        assert_string_equal(s3->items[0].up.sql, SQL_DEVICES_BLOB);
        assert_int_equal(s3->items[0].up.mtime_ns, (int64_t) t.tv_sec * 1000000000 + t.tv_nsec);
        assert_string_equal(s3->items[1].checksum, SHA_VITALS); /* untouched, reused */

        /* the new identity is what the next scan compares against */
        s4 = load_ok(dir, s3);
        assert_int_equal(hash_calls, 3);
        assert_string_equal(s4->items[0].checksum, SHA_DEVICES_BLOB);

        /* Content and size change, and the down file changes too. */
        put(dir, "0001_devices.up.sql", SQL_DEVICES_MODEL);
        put(dir, "0002_vitals.down.sql", "DROP TABLE IF EXISTS vitals;\n");
        t.tv_sec += 5;
        set_mtime(dir, "0001_devices.up.sql", t);
        set_mtime(dir, "0002_vitals.down.sql", t);
        s5 = load_ok(dir, s4);
        assert_int_equal(hash_calls, 4);
        assert_string_equal(s5->items[0].checksum, SHA_DEVICES_MODEL);
        assert_string_equal(s5->items[0].up.sql, SQL_DEVICES_MODEL);
        assert_int_equal(s5->items[0].up.size, strlen(SQL_DEVICES_MODEL));
        assert_string_equal(s5->items[1].down.sql, "DROP TABLE IF EXISTS vitals;\n");
        assert_string_equal(s5->items[1].checksum, SHA_VITALS);

        /* without previous, everything is hashed */
        fresh = load_ok(dir, NULL);
        assert_int_equal(hash_calls, 6);
        assert_string_equal(fresh->items[0].checksum, SHA_DEVICES_MODEL);

        migration_set_free(fresh);
        migration_set_free(s2);
        migration_set_free(s3);
        migration_set_free(s4);
        migration_set_free(s5);
}

/* A previous set whose files were renamed or removed is not consulted for other files. */
static void test_previous_other_file(void **state) {
        const char *dir = *state;
        migration_set *s1, *s2;
        char *a, *b;

        put(dir, "0001_devices.up.sql", SQL_DEVICES);
        s1 = load_ok(dir, NULL);

        /* same version, new name: rename keeps inode, size and mtime, yet the name differs */
        a = path_of(dir, "0001_devices.up.sql");
        b = path_of(dir, "0001_pods.up.sql");
        assert_int_equal(rename(a, b), 0);
        s2 = load_ok(dir, s1);
        assert_int_equal(s2->n, 1);
        assert_string_equal(s2->items[0].name, "pods");
        assert_string_equal(s2->items[0].up.file, "0001_pods.up.sql");
        assert_string_equal(s2->items[0].checksum, SHA_DEVICES);
        migration_set_free(s2);

        /* a migration that vanished is gone from the new set */
        assert_int_equal(unlink(b), 0);
        s2 = load_ok(dir, s1);
        assert_int_equal(s2->n, 0);
        migration_set_free(s2);
        migration_set_free(s1);
        free(a);
        free(b);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, dir_setup, dir_teardown)

int main(void) {
        const struct CMUnitTest tests[] = {
                T(test_valid_set),
                T(test_empty_dir),
                T(test_largest_version),
                T(test_ignored_entries),
                T(test_missing_directory),
                T(test_version_width),
                cmocka_unit_test(test_parse_filename),
                T(test_duplicate_version),
                T(test_duplicate_version_first),
                T(test_bad_name_uppercase),
                T(test_bad_name_dash),
                T(test_bad_name_dash_in_name),
                T(test_bad_name_missing_name),
                T(test_bad_name_empty_name),
                T(test_bad_name_missing_version),
                T(test_bad_name_missing_version_underscore),
                T(test_bad_name_version_zero),
                T(test_bad_name_version_too_large),
                T(test_bad_name_version_far_too_large),
                T(test_bad_name_no_direction),
                T(test_bad_name_wrong_direction),
                T(test_bad_name_too_long),
                T(test_name_max_length),
                T(test_down_without_up),
                T(test_down_name_differs),
                T(test_unreadable_chmod),
                T(test_unreadable_dangling_symlink),
                T(test_unreadable_down_file),
                T(test_too_large),
                T(test_not_regular_fifo),
                T(test_nul_byte),
                T(test_nul_byte_in_down),
                T(test_unknown_directive),
                T(test_several_problems),
                T(test_directives),
                T(test_directive_in_down_file),
                cmocka_unit_test(test_parse_directives_direct),
                cmocka_unit_test(test_directives_online_and_accept),
                T(test_previous_reuse),
                T(test_previous_other_file),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
