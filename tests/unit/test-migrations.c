/* SPDX-License-Identifier: MIT */
/* Checks the example migrations of migrations/ (the quickstart's and the integration tests'
 * schema) the way migrated runs them: each in a transaction with foreign keys off and a clean
 * PRAGMA foreign_key_check before commit; every down file returns sqlite_master to exactly what
 * it was before its up file; the data migrations carry and convert existing rows.
 * argv[1] is the migrations directory. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ftw.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "migdir.h"

#define N_MIGRATIONS 8
#define IRREVERSIBLE_VERSION 6

static const char *migrations_dir;
static migration_set *set;
static char tmpdir[] = "/tmp/test-migrations-XXXXXX";
static unsigned db_counter;

static int remove_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        return remove(path);
}

static int group_setup(void **state) {
        migdir_errors e = {};

        if (migdir_load(migrations_dir, NULL, &set, &e) != 0) {
                for (size_t i = 0; i < e.n; i++)
                        fprintf(stderr, "%s\n", e.messages[i]);
                migdir_errors_clear(&e);
                return -1;
        }
        return mkdtemp(tmpdir) ? 0 : -1;
}

static int group_teardown(void **state) {
        migration_set_free(set);
        nftw(tmpdir, remove_cb, 16, FTW_DEPTH | FTW_PHYS);
        return 0;
}

static void exec_ok(sqlite3 *db, const char *sql, const char *what) {
        char *err = NULL;

        if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
                fail_msg("%s: %s", what, err ?: sqlite3_errmsg(db));
}

/* A new WAL database in the temporary directory. */
static sqlite3 *db_new(void) {
        char path[128];
        sqlite3 *db = NULL;

        snprintf(path, sizeof(path), "%s/db%u.sqlite", tmpdir, db_counter++);
        assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
        exec_ok(db, "PRAGMA journal_mode=WAL", "journal_mode");
        return db;
}

/* Runs one script as migrated does: foreign keys off, one transaction, foreign_key_check clean. */
static void run_script(sqlite3 *db, const migration_script *script) {
        sqlite3_stmt *st = NULL;

        exec_ok(db, "PRAGMA foreign_keys=OFF", "foreign_keys");
        exec_ok(db, "BEGIN", "BEGIN");
        exec_ok(db, script->sql, script->file);
        assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA foreign_key_check", -1, &st, NULL), SQLITE_OK);
        if (sqlite3_step(st) == SQLITE_ROW)
                fail_msg("%s: foreign_key_check: table %s row %lld refers to %s", script->file,
                         (const char *) sqlite3_column_text(st, 0), (long long) sqlite3_column_int64(st, 1),
                         (const char *) sqlite3_column_text(st, 2));
        sqlite3_finalize(st);
        exec_ok(db, "COMMIT", "COMMIT");
}

static const migration *get(int64_t version) {
        const migration *m = migration_set_find(set, version);

        assert_non_null(m);
        return m;
}

static void up_to(sqlite3 *db, int64_t from, int64_t to) {
        for (int64_t v = from + 1; v <= to; v++)
                run_script(db, &get(v)->up);
}

/* sqlite_master as text, in a stable order. */
static char *schema_of(sqlite3 *db) {
        sqlite3_stmt *st = NULL;
        char *out = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&out, &size);

        assert_non_null(f);
        assert_int_equal(sqlite3_prepare_v2(db, "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY name",
                                            -1, &st, NULL),
                         SQLITE_OK);
        while (sqlite3_step(st) == SQLITE_ROW)
                fprintf(f, "%s|%s|%s|%s\n", sqlite3_column_text(st, 0), sqlite3_column_text(st, 1),
                        sqlite3_column_text(st, 2), sqlite3_column_text(st, 3) ?: (const unsigned char *) "");
        sqlite3_finalize(st);
        fclose(f);
        return out;
}

static char *schema_at(int64_t version) {
        sqlite3 *db = db_new();
        char *s;

        up_to(db, 0, version);
        s = schema_of(db);
        sqlite3_close(db);
        return s;
}

static double query_double(sqlite3 *db, const char *sql) {
        sqlite3_stmt *st = NULL;
        double d;

        assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        d = sqlite3_column_double(st, 0);
        sqlite3_finalize(st);
        return d;
}

static long long query_int(sqlite3 *db, const char *sql) {
        return (long long) query_double(db, sql);
}

/* ---- the directory ---- */

/* Whether word occurs in sql outside "--" comment lines (case-insensitive). */
static bool code_contains(const char *sql, const char *word) {
        for (const char *line = sql; line && *line;) {
                const char *eol = strchr(line, '\n'), *p = line;
                size_t n = eol ? (size_t) (eol - line) : strlen(line);

                while (*p == ' ' || *p == '\t')
                        p++;
                if (strncmp(p, "--", 2) != 0) {
                        char *copy = strndup(line, n);
                        bool found;

                        assert_non_null(copy);
                        found = strcasestr(copy, word) != NULL;
                        free(copy);
                        if (found)
                                return true;
                }
                line = eol ? eol + 1 : NULL;
        }
        return false;
}


static void test_directory(void **state) {
        assert_int_equal(set->n, N_MIGRATIONS);
        for (size_t i = 0; i < set->n; i++) {
                const migration *m = &set->items[i];

                assert_int_equal(m->version, (int64_t) i + 1);
                /* 4-digit versions */
                assert_int_equal(strchr(m->up.file, '_') - m->up.file, 4);
                if (m->version == IRREVERSIBLE_VERSION) {
                        assert_null(m->down.file);
                        assert_non_null(strstr(m->up.sql, "IRREVERSIBLE"));
                } else
                        assert_non_null(m->down.file);
                /* each file says what it does, and leaves transactions and foreign keys to migrated */
                for (int d = 0; d < 2; d++) {
                        const migration_script *s = d ? &m->down : &m->up;
                        if (!s->file)
                                continue;
                        if (strncmp(s->sql, "-- ", 3) != 0)
                                fail_msg("%s does not start with a comment", s->file);
                        static const char *const forbidden[] = {
                                "PRAGMA", "COMMIT", "ROLLBACK", "BEGIN TRANSACTION", "BEGIN;", "END TRANSACTION",
                        };
                        for (size_t k = 0; k < sizeof(forbidden) / sizeof(forbidden[0]); k++)
                                if (code_contains(s->sql, forbidden[k]))
                                        fail_msg("%s has %s: transactions and foreign keys are migrated's job",
                                                 s->file, forbidden[k]);
                        assert_int_equal(s->flags, 0);
                }
        }
        /* the irreversible one is not the last, so the tail can be reverted */
        assert_true(IRREVERSIBLE_VERSION < N_MIGRATIONS);
        assert_int_equal(migration_set_latest(set), N_MIGRATIONS);
}

/* ---- up then down is the identity on the schema ---- */

static void test_each_down_undoes_its_up(void **state) {
        for (int64_t v = 1; v <= N_MIGRATIONS; v++) {
                const migration *m = get(v);
                char *before, *after;
                sqlite3 *db;

                if (!m->down.file)
                        continue;
                before = schema_at(v - 1);
                db = db_new();
                up_to(db, 0, v);
                run_script(db, &m->down);
                after = schema_of(db);
                sqlite3_close(db);
                if (strcmp(before, after) != 0)
                        fail_msg("%s does not undo %s:\n--- before:\n%s\n--- after down:\n%s", m->down.file,
                                 m->up.file, before, after);
                free(before);
                free(after);
        }
}

static void test_down_to_zero_below_irreversible(void **state) {
        sqlite3 *db = db_new();
        char *s;

        up_to(db, 0, IRREVERSIBLE_VERSION - 1);
        for (int64_t v = IRREVERSIBLE_VERSION - 1; v >= 1; v--)
                run_script(db, &get(v)->down);
        s = schema_of(db);
        assert_string_equal(s, "");
        free(s);
        sqlite3_close(db);
}

/* ---- the data carried through ---- */

static void test_data(void **state) {
        sqlite3 *db = db_new();
        char *at6, *s;

        up_to(db, 0, 3);
        exec_ok(db,
                "INSERT INTO devices (id, serial, model, firmware_version, registered_at) VALUES"
                "  (1, 'POD4-00A1B2', 'pod4', '1.9.3', '2024-01-05T10:00:00Z');"
                "INSERT INTO sleep_sessions (id, device_id, side, started_at, ended_at, target_temp_f) VALUES"
                "  (1, 1, 'left', '2024-03-01T22:41:10Z', '2024-03-02T06:58:40Z', 68.0),"
                "  (2, 1, 'right', '2024-03-01T23:05:00Z', NULL, 81.3);"
                "INSERT INTO vitals (session_id, sampled_at, heart_rate_bpm, hrv_ms, breathing_rate) VALUES"
                "  (1, '2024-03-01T23:00:00Z', 58, 62, 14.2), (1, '2024-03-01T23:00:10Z', 57, 64, 14.0),"
                "  (1, '2024-03-01T23:00:20Z', 56, 66, 13.8), (1, '2024-03-01T23:01:00Z', 55, 70, 13.5);"
                "INSERT INTO water_readings (id, device_id, measured_at, level_pct, water_temp_f, leak_detected) VALUES"
                "  (1, 1, '2024-03-01T22:00:00Z', 84.0, 68.2, 0),"
                "  (2, 1, '2024-03-01T23:00:00Z', 83.5, 80.6, 1);",
                "insert at version 3");
        /* the trigger raised one alert for the wet reading */
        assert_int_equal(query_int(db, "SELECT count(*) FROM leak_alerts WHERE reading_id = 2"), 1);

        up_to(db, 3, N_MIGRATIONS);
        /* 0005: °F -> °C */
        assert_true(query_double(db, "SELECT target_temp_c FROM sleep_sessions WHERE id = 1") == 20.0);
        assert_true(query_double(db, "SELECT water_temp_c FROM water_readings WHERE id = 2") == 27.0);
        /* 0006: three samples of 23:00 averaged into one row, 23:01 alone */
        assert_int_equal(query_int(db, "SELECT count(*) FROM vitals"), 2);
        assert_int_equal(query_int(db, "SELECT samples FROM vitals WHERE sampled_at = '2024-03-01T23:00:00Z'"), 3);
        assert_true(query_double(db, "SELECT heart_rate_bpm FROM vitals WHERE sampled_at = '2024-03-01T23:00:00Z'") ==
                    57.0);
        /* 0007: rows, ids and alerts carried through the rebuild; the checks hold */
        assert_int_equal(query_int(db, "SELECT count(*) FROM water_readings"), 2);
        assert_int_equal(query_int(db, "SELECT count(*) FROM leak_alerts"), 1);
        assert_int_equal(sqlite3_exec(db, "INSERT INTO water_readings (device_id, level_pct) VALUES (1, 300)", NULL,
                                      NULL, NULL),
                         SQLITE_CONSTRAINT);
        /* and the trigger still fires, once */
        exec_ok(db, "INSERT INTO water_readings (device_id, measured_at, level_pct, water_temp_c, leak_detected) "
                    "VALUES (1, '2024-03-02T01:00:00Z', 82.0, 20.1, 1)",
                "wet reading");
        assert_int_equal(query_int(db, "SELECT count(*) FROM leak_alerts"), 2);
        assert_int_equal(query_int(db, "SELECT open_alerts FROM tank_status WHERE device_id = 1"), 2);
        /* 0008: 22:41:10 -> 06:58:40 is 8 h 17 min 30 s; a running session stays NULL */
        assert_int_equal(query_int(db, "SELECT duration_s FROM sleep_sessions WHERE id = 1"), 29850);
        assert_int_equal(query_int(db, "SELECT duration_s IS NULL FROM sleep_sessions WHERE id = 2"), 1);

        /* the reversible tail: down 8 and 7 give the schema of a database brought up to 6, with the rows */
        run_script(db, &get(8)->down);
        run_script(db, &get(7)->down);
        at6 = schema_at(IRREVERSIBLE_VERSION);
        s = schema_of(db);
        assert_string_equal(s, at6);
        assert_int_equal(query_int(db, "SELECT count(*) FROM water_readings"), 3);
        assert_int_equal(query_int(db, "SELECT count(*) FROM leak_alerts"), 2);
        free(s);
        free(at6);
        sqlite3_close(db);
}

static void test_celsius_roundtrip(void **state) {
        sqlite3 *db = db_new();

        /* readings in 0.1 °F come back exactly after 0005 up and down */
        up_to(db, 0, 4);
        exec_ok(db,
                "INSERT INTO devices VALUES (1, 's', 'pod4', '1.0', '2024-01-01T00:00:00Z');"
                "INSERT INTO sleep_sessions (device_id, side, started_at, target_temp_f) VALUES"
                "  (1, 'left', 'x', 55.0), (1, 'left', 'x', 68.3), (1, 'left', 'x', 110.0), (1, 'left', 'x', -3.7),"
                "  (1, 'left', 'x', NULL);"
                "INSERT INTO water_readings (device_id, water_temp_f) VALUES (1, 59.9), (1, 101.1), (1, 32.0), (1, 68.3),"
                "  (1, 75.5);"
                "CREATE TABLE before AS SELECT target_temp_f AS t FROM sleep_sessions"
                "  UNION ALL SELECT water_temp_f FROM water_readings;",
                "insert at version 4");
        run_script(db, &get(5)->up);
        run_script(db, &get(5)->down);
        exec_ok(db,
                "CREATE TABLE after AS SELECT target_temp_f AS t FROM sleep_sessions"
                "  UNION ALL SELECT water_temp_f FROM water_readings;",
                "after");
        assert_int_equal(query_int(db, "SELECT count(*) FROM before"), 10);
        assert_int_equal(query_int(db, "SELECT count(*) FROM before AS b JOIN after AS a ON a.rowid = b.rowid "
                                       "WHERE a.t IS NOT b.t"),
                         0);
        sqlite3_close(db);
}

int main(int argc, char *argv[]) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_directory),
                cmocka_unit_test(test_each_down_undoes_its_up),
                cmocka_unit_test(test_down_to_zero_below_irreversible),
                cmocka_unit_test(test_data),
                cmocka_unit_test(test_celsius_roundtrip),
        };

        if (argc != 2) {
                fprintf(stderr, "usage: %s MIGRATIONS_DIR\n", argv[0]);
                return 2;
        }
        migrations_dir = argv[1];
        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
