/* SPDX-License-Identifier: MIT */
/* The backend contract: one list of cases run against every registered backend (db.c's
 * backends[]), through db.h only, on a real database the fixture of that backend provides.
 * A backend without a fixture here fails the test: a new backend brings its fixture. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "db.h"
#include "macro.h"

/* ---- fixtures: a fresh, empty database of each backend ---- */

typedef struct fixture {
        const char *backend;
        /* Returns a target for a new empty database, and a directory for files beside it. */
        char *(*make_target)(char **ret_dir);
        void (*remove)(const char *target, const char *dir);
        /* Why the backend cannot run here (its cases are skipped); NULL: it can. */
        const char *(*unavailable)(void);
        bool no_prisma; /* Prisma's bookkeeping is not written for this backend yet */
} fixture;

static char *sqlite_target(char **ret_dir) {
        char *dir = strdup("/tmp/test-db-contract-XXXXXX"), *t;

        assert_non_null(dir);
        assert_non_null(mkdtemp(dir));
        assert_true(asprintf(&t, "%s/db.sqlite", dir) >= 0);
        *ret_dir = dir;
        return t;
}

static void sqlite_remove(const char *target, const char *dir) {
        char *cmd;

        assert_true(asprintf(&cmd, "rm -rf '%s'", dir) >= 0);
        assert_int_equal(system(cmd), 0);
        free(cmd);
}

/* PostgreSQL: a server the caller names (tests/postgres runs this test against its own cluster)
 * by a connection string to a database from which a fresh one per case is created. */
static const char *pg_unavailable(void) {
        return getenv("MIGRATED_TEST_PG") ? NULL : "MIGRATED_TEST_PG (a connection string) is not set";
}

static void pg_admin(const char *sql) {
        PGconn *c = PQconnectdb(getenv("MIGRATED_TEST_PG"));
        PGresult *res;

        assert_int_equal(PQstatus(c), CONNECTION_OK);
        res = PQexec(c, sql);
        if (PQresultStatus(res) != PGRES_COMMAND_OK)
                fail_msg("%s: %s", sql, PQerrorMessage(c));
        PQclear(res);
        PQfinish(c);
}

static char *pg_target(char **ret_dir) {
        static unsigned n;
        char *dir = strdup("/tmp/test-db-contract-XXXXXX"), *t, *sql;

        assert_non_null(dir);
        assert_non_null(mkdtemp(dir));
        assert_true(asprintf(&sql, "CREATE DATABASE contract_%d_%u", (int) getpid(), ++n) >= 0);
        pg_admin(sql);
        free(sql);
        assert_true(asprintf(&t, "%s dbname=contract_%d_%u", getenv("MIGRATED_TEST_PG"), (int) getpid(), n) >= 0);
        *ret_dir = dir;
        return t;
}

static void pg_remove(const char *target, const char *dir) {
        char *sql;

        assert_true(asprintf(&sql, "DROP DATABASE %s WITH (FORCE)", strrchr(target, '=') + 1) >= 0);
        pg_admin(sql);
        free(sql);
        sqlite_remove(NULL, dir);
}

static const fixture fixtures[] = {
        { "sqlite", sqlite_target, sqlite_remove },
        { "postgresql", pg_target, pg_remove, pg_unavailable, .no_prisma = true },
};

typedef struct state {
        const db_backend *backend;
        const fixture *fx;
        char *target, *dir;
        db *d;
} state;

static db *open_db(state *s, migdir_format format) {
        db_options o = { .backend = s->backend->name, .target = s->target, .busy_timeout_ms = 1000, .format = format };
        db_failure f = {};
        db *d = NULL;

        assert_int_equal(db_open(&o, &d, &f), 0);
        assert_non_null(d);
        assert_ptr_equal(db_get_backend(d), s->backend);
        return d;
}

static int setup(void **st, const db_backend *b, migdir_format format) {
        state *s = calloc(1, sizeof(*s));

        assert_non_null(s);
        s->backend = b;
        for (size_t i = 0; i < ELEMENTSOF(fixtures); i++)
                if (streq(fixtures[i].backend, b->name))
                        s->fx = &fixtures[i];
        if (!s->fx)
                fail_msg("backend %s has no fixture in test-db-contract.c", b->name);
        s->target = s->fx->make_target(&s->dir);
        s->d = open_db(s, format);
        *st = s;
        return 0;
}

static int teardown(void **st) {
        state *s = *st;


        db_close(s->d);
        s->fx->remove(s->target, s->dir);
        free(s->target);
        free(s->dir);
        free(s);
        return 0;
}

static const db_backend *current;

/* 1 when the backend's fixture leaves out the Prisma case (the last one). */
static size_t no_prisma(const db_backend *b) {
        for (size_t i = 0; i < ELEMENTSOF(fixtures); i++)
                if (streq(fixtures[i].backend, b->name))
                        return fixtures[i].no_prisma;
        return 0;
}

static int setup_native(void **st) {
        return setup(st, current, MIGDIR_NATIVE);
}

static int setup_prisma(void **st) {
        return setup(st, current, MIGDIR_PRISMA);
}

static void exec_ok(db *d, const char *sql, bool in_transaction) {
        db_failure f = {};

        if (db_exec_script(d, sql, strlen(sql), in_transaction, &f) != 0)
                fail_msg("%s: %s", sql, f.message ?: "?");
}

static int count_row(const db_value *c, size_t n, void *userdata) {
        *(int64_t *) userdata = c[0].i;
        return 0;
}

static int64_t count(db *d, const char *sql) {
        db_failure f = {};
        int64_t v = -1;

        assert_int_equal(db_query(d, sql, NULL, 0, count_row, &v, NULL, &f, "count"), 0);
        return v;
}

/* key: Prisma's folder name, which starts with the version as its names do */
static migration make_migration(int64_t version, const char *name, const char *key) {
        migration m = { .version = version, .name = (char *) name, .key = (char *) key, .up.file = (char *) name };

        snprintf(m.checksum, sizeof(m.checksum), "%064d", (int) version);
        return m;
}

/* ---- the cases ---- */

/* A fresh database has no tables of the user's; a committed script stays, a rolled back one not. */
static void test_transactions(void **st) {
        state *s = *st;
        db_failure f = {};
        bool tables = true;

        assert_int_equal(db_has_user_tables(s->d, &tables), 0);
        assert_false(tables);
        assert_int_equal(db_begin(s->d, &f), 0);
        exec_ok(s->d, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);\nINSERT INTO t (id, v) VALUES (1, 'a');\n",
                true);
        assert_int_equal(db_commit(s->d, &f), 0);
        assert_int_equal(db_begin(s->d, &f), 0);
        exec_ok(s->d, "INSERT INTO t (id, v) VALUES (2, 'b');", true);
        db_rollback(s->d);
        assert_int_equal(count(s->d, "SELECT count(*) FROM t"), 1);
        assert_int_equal(db_has_user_tables(s->d, &tables), 0);
        assert_true(tables);
        assert_int_equal(db_check_identity(s->d, &f), 0);
}

/* A transaction whose commit is not waited for on disk commits and rolls back like any other,
 * and leaves the connection's durability as it was: the next commit (the plan's) is synced. */
static void test_unsynced_commit(void **st) {
        state *s = *st;
        static const char pg_async[] = "SELECT (current_setting('synchronous_commit') = 'off')::int";
        bool sqlite = streq(current->name, "sqlite"), pg = streq(current->name, "postgresql");
        db_failure f = {};
        int64_t level = sqlite ? count(s->d, "PRAGMA synchronous") : 0;

        exec_ok(s->d, "CREATE TABLE u (id INTEGER PRIMARY KEY);", false);
        assert_int_equal(db_begin_unsynced(s->d, &f), 0);
        if (pg) /* for this transaction only */
                assert_int_equal(count(s->d, pg_async), 1);
        exec_ok(s->d, "INSERT INTO u (id) VALUES (1);", true);
        assert_int_equal(db_commit(s->d, &f), 0);
        if (sqlite)
                assert_int_equal(count(s->d, "PRAGMA synchronous"), level);
        if (pg)
                assert_int_equal(count(s->d, pg_async), 0);
        assert_int_equal(db_begin_unsynced(s->d, &f), 0);
        exec_ok(s->d, "INSERT INTO u (id) VALUES (2);", true);
        db_rollback(s->d);
        if (sqlite)
                assert_int_equal(count(s->d, "PRAGMA synchronous"), level);
        assert_int_equal(count(s->d, "SELECT count(*) FROM u"), 1);
}

/* A failing statement names its line; transaction control inside a migration is refused. */
static void test_script_failures(void **st) {
        static const char bad[] = "CREATE TABLE a (id INTEGER);\n\nSELECT * FROM missing;\n";
        static const char ctl[] = "CREATE TABLE b (id INTEGER);\nCOMMIT;\n";
        state *s = *st;
        db_failure f = {};

        assert_int_equal(db_begin(s->d, &f), 0);
        assert_int_equal(db_exec_script(s->d, bad, strlen(bad), true, &f), DB_FAILED);
        assert_int_equal(f.code, PROTOCOL_ERROR_MIGRATION_FAILED);
        assert_int_equal(f.line, 3);
        db_failure_clear(&f);
        /* a failed statement may have ended what the transaction can do (PostgreSQL): anew */
        db_rollback(s->d);
        assert_int_equal(db_begin(s->d, &f), 0);
        assert_int_equal(db_exec_script(s->d, ctl, strlen(ctl), true, &f), DB_FAILED);
        assert_int_equal(f.code, PROTOCOL_ERROR_MIGRATION_FAILED);
        assert_int_equal(f.line, 2);
        db_failure_clear(&f);
        db_rollback(s->d);
        assert_int_equal(db_has_user_tables(s->d, &(bool) { true }), 0);
}

typedef struct rows {
        int64_t i[4];
        char *s[4];
        bool null[4];
        size_t n;
} rows;

static int collect(const db_value *c, size_t n, void *userdata) {
        rows *r = userdata;

        assert_int_equal(n, 3);
        r->i[r->n] = c[0].i;
        r->s[r->n] = c[1].type == DB_VALUE_TEXT ? strdup(c[1].s) : NULL;
        r->null[r->n] = c[2].type == DB_VALUE_NULL;
        r->n++;
        return r->n == 2 ? 42 : 0; /* a non-zero return stops the query and comes back */
}

/* The query API: ?N parameters of each type, rows in order, changed rows, early stop. */
static void test_query_api(void **st) {
        state *s = *st;
        db_failure f = {};
        int64_t changes = 0;
        bool exists = true;
        rows r = {};

        assert_int_equal(db_table_exists(s->d, "q", &exists, &f), 0);
        assert_false(exists);
        exec_ok(s->d, "CREATE TABLE q (i INTEGER, s TEXT, n TEXT);", false);
        assert_int_equal(db_table_exists(s->d, "q", &exists, &f), 0);
        assert_true(exists);
        for (int64_t i = 1; i <= 3; i++)
                assert_int_equal(db_query(s->d, "INSERT INTO q (i, s, n) VALUES (?1, ?2, ?3)",
                                          (db_value[]) { DB_INT(i * 10), DB_TEXT("x"), DB_TEXT(NULL) }, 3, NULL, NULL,
                                          &changes, &f, "insert"),
                                 0);
        assert_int_equal(changes, 1);
        assert_int_equal(db_query(s->d, "UPDATE q SET s = ?1 WHERE i >= ?2", (db_value[]) { DB_TEXT("y"), DB_INT(20) },
                                  2, NULL, NULL, &changes, &f, "update"),
                         0);
        assert_int_equal(changes, 2);
        assert_int_equal(db_query(s->d, "SELECT i, s, n FROM q ORDER BY i", NULL, 0, collect, &r, NULL, &f, "select"),
                         42);
        assert_int_equal(r.n, 2);
        assert_int_equal(r.i[0], 10);
        assert_string_equal(r.s[0], "x");
        assert_true(r.null[0]);
        assert_int_equal(r.i[1], 20);
        assert_string_equal(r.s[1], "y");
        for (size_t i = 0; i < r.n; i++)
                free(r.s[i]);
        assert_int_equal(db_query(s->d, "SELECT nonsense FROM nowhere", NULL, 0, NULL, NULL, NULL, &f, "broken"),
                         DB_FAILED);
        assert_int_equal(f.code, PROTOCOL_ERROR_DATABASE);
        assert_non_null(strstr(f.message, "broken"));
        db_failure_clear(&f);
}

/* Applied migrations and attempts, in whichever format the fixture opened. */
static void test_bookkeeping(void **st) {
        state *s = *st;
        migration m1 = make_migration(1, "one", "0001_one"), m2 = make_migration(2, "two", "0002_two");
        db_attempt a = { .job_id = 5, .direction = "up", .from_version = 0, .to_version = 2, .versions = "[1,2]",
                         .requested_by = "uid 0" };
        db_failure f = {};
        applied_set applied = {};
        json_t *hist = NULL;
        uint64_t max = 0;
        unsigned n = 9;
        int64_t id = 0;

        assert_int_equal(db_load_applied(s->d, &applied, &f), 0);
        assert_int_equal(applied.n, 0);
        assert_int_equal(db_recover_interrupted(s->d, &n, &f), 0);
        assert_int_equal(n, 0);
        assert_int_equal(db_attempt_begin(s->d, &a, &id, &f), 0);
        assert_true(id > 0);
        assert_int_equal(db_begin(s->d, &f), 0);
        assert_int_equal(db_record_applied(s->d, &m1, 3, &f), 0);
        assert_int_equal(db_record_applied(s->d, &m2, 4, &f), 0);
        assert_int_equal(db_attempt_finish(s->d, id, "succeeded", NULL, NULL, 0, &f), 0);
        assert_int_equal(db_commit(s->d, &f), 0);
        assert_int_equal(db_load_applied(s->d, &applied, &f), 0);
        assert_int_equal(applied.n, 2);
        assert_int_equal(applied_set_current(&applied), 2);
        assert_string_equal(applied.items[0].checksum, m1.checksum);
        applied_set_clear(&applied);

        assert_int_equal(db_begin(s->d, &f), 0);
        assert_int_equal(db_remove_applied(s->d, &m2, &f), 0);
        assert_int_equal(db_mark_applied(s->d, &m1, &f), DB_FAILED); /* already applied */
        assert_int_equal(f.code, PROTOCOL_ERROR_STATE_CONFLICT);
        db_failure_clear(&f);
        db_event ev = { .job_id = 6, .direction = "mark", .from_version = 2, .to_version = 1, .detail = "test" };
        assert_int_equal(db_record_event(s->d, &ev, &f), 0);
        assert_int_equal(db_commit(s->d, &f), 0);
        assert_int_equal(db_load_applied(s->d, &applied, &f), 0);
        assert_int_equal(applied_set_current(&applied), 1);
        applied_set_clear(&applied);

        /* an attempt left running is found interrupted */
        a.job_id = 7;
        assert_int_equal(db_attempt_begin(s->d, &a, &id, &f), 0);
        assert_int_equal(db_recover_interrupted(s->d, &n, &f), 0);
        assert_int_equal(n, 1);
        assert_int_equal(db_max_job_id(s->d, &max, &f), 0);
        assert_int_equal(max, 7);
        assert_int_equal(db_history(s->d, 2, &hist, &f), 0);
        assert_int_equal(json_array_size(hist), 2);
        assert_string_equal(json_string_value(json_object_get(json_array_get(hist, 0), "status")), "interrupted");
        assert_string_equal(json_string_value(json_object_get(json_array_get(hist, 1), "direction")), "mark");
        json_decref(hist);
        assert_int_equal(db_has_user_tables(s->d, &(bool) { true }), 0);
}

/* Optional operations: each either works or says it cannot. */
static void test_optional_operations(void **st) {
        state *s = *st;
        db_failure f = {};
        json_t *info = json_object();
        uint64_t size = 0;
        char *clone = NULL, *problem = NULL;
        int64_t version = -1;
        int r, dirfd;

        migration m3 = make_migration(3, "three", "0003_three");

        exec_ok(s->d, "CREATE TABLE t (id INTEGER PRIMARY KEY);", false);
        assert_int_equal(db_begin(s->d, &f), 0);
        assert_int_equal(db_mark_applied(s->d, &m3, &f), 0);
        assert_int_equal(db_commit(s->d, &f), 0);
        r = db_info(s->d, info);
        assert_true(r == 0 || r == -EOPNOTSUPP);
        json_decref(info);
        r = db_check_integrity(s->d, true, &f);
        assert_true(r == 0 || r == -EOPNOTSUPP);
        r = db_size(s->d, &size);
        assert_true(r == -EOPNOTSUPP || (r == 0 && size > 0));
        r = db_disk_size(s->backend, s->target, &size);
        assert_true(r == -EOPNOTSUPP || (r == 0 && size > 0));

        dirfd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_true(dirfd >= 0);
        r = db_clone(s->d, dirfd, s->dir, ".contract-clone", &clone, &f);
        assert_true(r == 0 || r == -EOPNOTSUPP);
        if (r == 0) {
                db_options o = { .backend = s->backend->name, .target = clone, .busy_timeout_ms = 1000 };
                db *c = NULL;
                bool exists = false;

                assert_int_equal(db_open(&o, &c, &f), 0);
                assert_int_equal(db_table_exists(c, "t", &exists, &f), 0);
                assert_true(exists);
                db_close(c);
                r = db_inspect_backup(s->backend, clone, true, &version, &problem);
                assert_true(r == -EOPNOTSUPP || (r == 0 && version == 3)); /* read by the format's history */
                db_clone_remove(s->backend, clone);
                assert_int_equal(access(clone, F_OK), -1);
                free(clone);
        }
        close(dirfd);
}

/* ---- one run of every case per registered backend ---- */

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_transactions, setup_native, teardown),
                cmocka_unit_test_setup_teardown(test_unsynced_commit, setup_native, teardown),
                cmocka_unit_test_setup_teardown(test_script_failures, setup_native, teardown),
                cmocka_unit_test_setup_teardown(test_query_api, setup_native, teardown),
                cmocka_unit_test_setup_teardown(test_bookkeeping, setup_native, teardown),
                cmocka_unit_test_setup_teardown(test_optional_operations, setup_native, teardown),
                cmocka_unit_test_setup_teardown(test_bookkeeping, setup_prisma, teardown), /* last: see no_prisma */
        };
        const db_backend *const *backends;
        size_t n;
        int failed = 0;

        backends = db_backends(&n);
        assert_true(n > 0);
        assert_ptr_equal(db_backend_find(NULL), db_backend_find(DB_BACKEND_DEFAULT));
        assert_null(db_backend_find("no-such-backend"));
        for (size_t i = 0; i < n; i++) {
                const char *why = NULL;

                current = backends[i];
                for (size_t k = 0; k < ELEMENTSOF(fixtures); k++)
                        if (streq(fixtures[k].backend, current->name) && fixtures[k].unavailable)
                                why = fixtures[k].unavailable();
                if (why) {
                        printf("SKIP: backend %s: %s\n", current->name, why);
                        continue;
                }
                failed += _cmocka_run_group_tests(current->name, tests, ELEMENTSOF(tests) - no_prisma(current), NULL,
                                                  NULL);
        }
        return failed;
}
