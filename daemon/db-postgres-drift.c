/* SPDX-License-Identifier: MIT */
/* Drift on PostgreSQL: the applied migrations' up scripts replayed by the engine's own script
 * runner in a temporary database on the same server (dropped afterwards, whatever happened),
 * then both catalogs read from pg_catalog into drift-compare.c's shape and compared there. */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "db-postgres-internal.h"
#include "drift-sql.h"
#include "drift.h"

/* One catalog query; each row goes to fn with the table it belongs to in column 0 (skipped
 * tables' rows are left out). */
typedef int (*row_fn)(json_t *schema, const PGresult *res, int row);

static const char *val(const PGresult *res, int row, int col) {
        return PQgetisnull(res, row, col) ? NULL : PQgetvalue(res, row, col);
}

static const char *yes_no(const PGresult *res, int row, int col) {
        const char *v = val(res, row, col);

        return v && v[0] == 't' ? "yes" : "no";
}

/* Normalized SQL text, or fallback when NULL. */
static json_t *norm(const char *sql, const char *fallback) {
        _cleanup_free_ char *n = sql ? drift_sql_normalize(sql) : NULL;

        return json_string(n ?: fallback);
}

static int put_table(json_t *schema, const PGresult *res, int i) {
        char object[512];
        const char *kind = val(res, i, 1);

        snprintf(object, sizeof(object), "table %s", val(res, i, 0));
        return drift_put(schema, object, NULL,
                         streq(kind, "p") ? json_pack("{s:s}", "partitioned", "yes") : json_object());
}

static int put_column(json_t *schema, const PGresult *res, int i) {
        const char *identity = val(res, i, 5), *generated = val(res, i, 6);
        char object[512];

        snprintf(object, sizeof(object), "column %s.%s", val(res, i, 0), val(res, i, 1));
        return drift_put(schema, object, val(res, i, 0),
                         json_pack("{s:s,s:s,s:o,s:s,s:s}", "type", val(res, i, 2), "not_null", yes_no(res, i, 3),
                                   "default", norm(val(res, i, 4), "NULL"), "identity",
                                   streq(identity, "a")   ? "always"
                                   : streq(identity, "d") ? "by default"
                                                          : "no",
                                   "generated", streq(generated, "s") ? "stored" : "no"));
}

static int put_index(json_t *schema, const PGresult *res, int i) {
        char object[512];

        snprintf(object, sizeof(object), "index %s", val(res, i, 1));
        return drift_put(schema, object, val(res, i, 0),
                         json_pack("{s:s,s:s,s:s,s:o,s:s,s:o}", "table", val(res, i, 0), "columns", val(res, i, 2) ?: "",
                                   "unique", yes_no(res, i, 3), "where", norm(val(res, i, 4), "none"), "method",
                                   val(res, i, 5), "definition", norm(val(res, i, 6), "")));
}

static const char *fk_action(const char *c) {
        switch (c ? c[0] : 'a') {
        case 'r': return "RESTRICT";
        case 'c': return "CASCADE";
        case 'n': return "SET NULL";
        case 'd': return "SET DEFAULT";
        default: return "NO ACTION";
        }
}

/* pg_get_expr() wraps a CHECK expression in parentheses that CHECK (…) already gives: without
 * them, the key reads as SQLite's. */
static void strip_parens(char *e) {
        size_t n = strlen(e);
        int depth = 0;

        if (n < 2 || e[0] != '(' || e[n - 1] != ')')
                return;
        for (size_t i = 0; i < n - 1; i++)
                if (e[i] == '(')
                        depth++;
                else if (e[i] == ')' && --depth == 0)
                        return; /* "(a) and (b)": the first pair closes early */
        memmove(e, e + 1, n - 2);
        e[n - 2] = '\0';
}

/* Keyed as on SQLite: primary key and unique by their columns, checks by their expression,
 * foreign keys by both ends; the constraint's name is an attribute. */
static int put_constraint(json_t *schema, const PGresult *res, int i) {
        const char *table = val(res, i, 0), *name = val(res, i, 1), *type = val(res, i, 2), *cols = val(res, i, 3) ?: "";
        _cleanup_free_ char *object = NULL, *check = NULL;
        json_t *attrs;
        int r;

        switch (type[0]) {
        case 'p': r = asprintf(&object, "primary key %s(%s)", table, cols); break;
        case 'u': r = asprintf(&object, "unique %s(%s)", table, cols); break;
        case 'c':
                check = drift_sql_normalize(val(res, i, 9) ?: "");
                if (check)
                        strip_parens(check);
                r = check ? asprintf(&object, "check %s: %s", table, check) : -1;
                break;
        case 'f':
                r = asprintf(&object, "foreign key %s(%s) -> %s(%s)", table, cols, val(res, i, 4) ?: "?",
                             val(res, i, 5) ?: "");
                break;
        default: r = asprintf(&object, "constraint %s on %s", name, table);
        }
        if (r < 0)
                return -ENOMEM;
        attrs = json_pack("{s:s,s:s}", "name", name, "deferrable", yes_no(res, i, 10));
        if (attrs && type[0] == 'f' &&
            (json_object_set_new(attrs, "on_update", json_string(fk_action(val(res, i, 6)))) < 0 ||
             json_object_set_new(attrs, "on_delete", json_string(fk_action(val(res, i, 7)))) < 0 ||
             json_object_set_new(attrs, "match", json_string(streq(val(res, i, 8), "f") ? "FULL" : "SIMPLE")) < 0)) {
                json_decref(attrs);
                return -ENOMEM;
        }
        if (attrs && type[0] == 'x' && json_object_set_new(attrs, "definition", norm(val(res, i, 11), "")) < 0) {
                json_decref(attrs);
                return -ENOMEM;
        }
        return drift_put(schema, object, table, attrs);
}

/* A trigger's definition, and the body of the function it runs: changing either changes it. */
static int put_trigger(json_t *schema, const PGresult *res, int i) {
        char object[512];

        snprintf(object, sizeof(object), "trigger %s", val(res, i, 1));
        if (json_object_get(schema, object)) /* one name on two tables */
                snprintf(object, sizeof(object), "trigger %s on %s", val(res, i, 1), val(res, i, 0));
        return drift_put(schema, object, val(res, i, 0),
                         json_pack("{s:s,s:o,s:s,s:o}", "table", val(res, i, 0), "sql", norm(val(res, i, 2), ""),
                                   "function", val(res, i, 3), "function_body", norm(val(res, i, 4), "")));
}

static int put_view(json_t *schema, const PGresult *res, int i) {
        char object[512];

        snprintf(object, sizeof(object), "view %s", val(res, i, 0));
        return drift_put(schema, object, NULL,
                         streq(val(res, i, 1), "m")
                                 ? json_pack("{s:o,s:s}", "sql", norm(val(res, i, 2), ""), "materialized", "yes")
                                 : json_pack("{s:o}", "sql", norm(val(res, i, 2), "")));
}

#define IN_SCHEMA(rel) rel ".relnamespace = pg_catalog.to_regnamespace(pg_catalog.current_schema())"

static const struct {
        const char *sql;
        row_fn fn;
} queries[] = {
        { "SELECT c.relname, c.relkind::text FROM pg_catalog.pg_class c WHERE " IN_SCHEMA("c")
          " AND c.relkind IN ('r', 'p') ORDER BY 1",
          put_table },
        { "SELECT c.relname, a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnotnull, "
          "pg_catalog.pg_get_expr(d.adbin, d.adrelid), a.attidentity::text, a.attgenerated::text "
          "FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid "
          "LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
          "WHERE " IN_SCHEMA("c") " AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped "
          "ORDER BY 1, a.attnum",
          put_column },
        /* indexes of their own; those behind a constraint are that constraint */
        { "SELECT t.relname, i.relname, (SELECT string_agg(pg_catalog.pg_get_indexdef(x.indexrelid, k, true), ',' "
          "ORDER BY k) FROM generate_series(1, x.indnkeyatts) k), x.indisunique, "
          "pg_catalog.pg_get_expr(x.indpred, x.indrelid), am.amname, pg_catalog.pg_get_indexdef(x.indexrelid) "
          "FROM pg_catalog.pg_index x JOIN pg_catalog.pg_class i ON i.oid = x.indexrelid "
          "JOIN pg_catalog.pg_class t ON t.oid = x.indrelid JOIN pg_catalog.pg_am am ON am.oid = i.relam "
          "WHERE " IN_SCHEMA("t") " AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint con "
          "WHERE con.conindid = x.indexrelid AND con.conrelid = x.indrelid AND con.contype IN ('p', 'u', 'x')) "
          "ORDER BY 2",
          put_index },
        { "SELECT t.relname, con.conname, con.contype::text, "
          "(SELECT string_agg(a.attname, ',' ORDER BY k.o) FROM unnest(con.conkey) WITH ORDINALITY k(n, o) "
          "JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n), f.relname, "
          "(SELECT string_agg(a.attname, ',' ORDER BY k.o) FROM unnest(con.confkey) WITH ORDINALITY k(n, o) "
          "JOIN pg_catalog.pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n), "
          "con.confupdtype::text, con.confdeltype::text, con.confmatchtype::text, "
          "pg_catalog.pg_get_expr(con.conbin, con.conrelid), con.condeferrable, "
          "pg_catalog.pg_get_constraintdef(con.oid, true) "
          "FROM pg_catalog.pg_constraint con JOIN pg_catalog.pg_class t ON t.oid = con.conrelid "
          "LEFT JOIN pg_catalog.pg_class f ON f.oid = con.confrelid "
          "WHERE " IN_SCHEMA("t") " AND con.contype IN ('p', 'u', 'c', 'f', 'x') ORDER BY 1, 2",
          put_constraint },
        { "SELECT t.relname, tg.tgname, pg_catalog.pg_get_triggerdef(tg.oid, true), p.proname, p.prosrc "
          "FROM pg_catalog.pg_trigger tg JOIN pg_catalog.pg_class t ON t.oid = tg.tgrelid "
          "JOIN pg_catalog.pg_proc p ON p.oid = tg.tgfoid WHERE NOT tg.tgisinternal AND " IN_SCHEMA("t")
          " ORDER BY 2, 1",
          put_trigger },
        { "SELECT c.relname, c.relkind::text, pg_catalog.pg_get_viewdef(c.oid, true) FROM pg_catalog.pg_class c "
          "WHERE " IN_SCHEMA("c") " AND c.relkind IN ('v', 'm') ORDER BY 1",
          put_view },
};

static int fail(char **ret_error, int code, const char *what, const char *detail) {
        size_t n = strlen(detail);

        while (n > 0 && (detail[n - 1] == '\n' || detail[n - 1] == ' '))
                n--;
        return asprintf(ret_error, "cannot read the %s schema: %.*s", what, (int) n, detail) < 0 ? -ENOMEM : code;
}

/* The schema of the connection's current schema (the one migrations create their objects in),
 * from one snapshot, as drift_put() objects. */
static int read_schema(PGconn *conn, const char *const *skip, json_t **ret, char **ret_error, int code,
                       const char *what) {
        json_t *schema = json_object();
        bool began = PQtransactionStatus(conn) == PQTRANS_IDLE;
        int r = 0;

        if (!schema)
                return -ENOMEM;
        if (began)
                PQclear(PQexec(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"));
        for (size_t q = 0; r == 0 && q < ELEMENTSOF(queries); q++) {
                _cleanup_pgresult_ PGresult *res = PQexec(conn, queries[q].sql);

                if (!pg_result_ok(res)) {
                        r = fail(ret_error, code, what, PQerrorMessage(conn));
                        break;
                }
                for (int i = 0; r == 0 && i < PQntuples(res); i++)
                        if (!drift_skipped(skip, PQgetvalue(res, i, 0)))
                                r = queries[q].fn(schema, res, i);
        }
        if (began)
                PQclear(PQexec(conn, "ROLLBACK"));
        if (r != 0) {
                json_decref(schema);
                return r;
        }
        *ret = schema;
        return 0;
}

/* CREATE and DROP DATABASE on the live connection, which the reader opens read-only. */
static int exec_writable(db_pg *p, const char *sql, db_failure *f, const char *what) {
        int r;

        if (p->read_only)
                (void) pg_exec_simple(p, "SET default_transaction_read_only = off", NULL, NULL);
        r = pg_exec_simple(p, sql, f, what);
        if (p->read_only)
                (void) pg_exec_simple(p, "SET default_transaction_read_only = on", NULL, NULL);
        return r;
}

/* A fresh database from template0 (nothing an administrator added to template1), named
 * migrated_drift_<random>. */
static int create_scratch(db_pg *p, char name[static 64], char **ret_error) {
        _cleanup_free_ char *sql = NULL;
        db_failure f = {};
        uint8_t rnd[8];
        int r;

        if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd))
                return -errno;
        snprintf(name, 64, "migrated_drift_%02x%02x%02x%02x%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2], rnd[3],
                 rnd[4], rnd[5], rnd[6], rnd[7]);
        if (asprintf(&sql, "CREATE DATABASE %s TEMPLATE template0", name) < 0)
                return -ENOMEM;
        r = exec_writable(p, sql, &f, "cannot create a scratch database");
        if (r == DB_FAILED && strstr(f.message, "42501"))
                r = asprintf(ret_error,
                             "drift on PostgreSQL replays the migrations in a scratch database, which the role %s may "
                             "not create: it lacks the CREATEDB privilege (grant it with: ALTER ROLE %s CREATEDB)",
                             PQuser(p->conn), PQuser(p->conn)) < 0 ? -ENOMEM : DRIFT_LIVE_FAILED;
        else if (r == DB_FAILED)
                r = asprintf(ret_error, "%s", f.message) < 0 ? -ENOMEM : DRIFT_LIVE_FAILED;
        db_failure_clear(&f);
        return r;
}

static void drop_scratch(db_pg *p, const char *name) {
        _cleanup_free_ char *sql = NULL;

        if (asprintf(&sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", name) >= 0)
                (void) exec_writable(p, sql, NULL, NULL);
}

/* The scripts, in order, each statement by statement as the engine runs them, in the live
 * connection's current schema (created first when it is not public). */
static int replay(db_pg *p, db *scratch, const drift_script *scripts, size_t n, char **ret_error) {
        _cleanup_pgresult_ PGresult *res = PQexec(p->conn, "SELECT pg_catalog.current_schema()");
        db_failure f = {};
        int r = 0;

        if (pg_result_ok(res) && PQntuples(res) == 1 && !PQgetisnull(res, 0, 0) &&
            !streq(PQgetvalue(res, 0, 0), "public")) {
                _cleanup_free_ char *sql = NULL;
                char *ident = PQescapeIdentifier(to_pg(scratch)->conn, PQgetvalue(res, 0, 0),
                                                 strlen(PQgetvalue(res, 0, 0)));

                if (!ident || asprintf(&sql, "CREATE SCHEMA IF NOT EXISTS %s", ident) < 0)
                        r = -ENOMEM;
                PQfreemem(ident);
                if (r == 0)
                        (void) pg_exec_simple(to_pg(scratch), sql, NULL, NULL);
        }
        for (size_t i = 0; r == 0 && i < n; i++) {
                r = pg_exec_script(scratch, scripts[i].sql, strlen(scripts[i].sql), false, &f);
                if (r == DB_FAILED) {
                        r = f.line > 0 ? asprintf(ret_error, "replaying %s on a scratch database failed: line %u: %s",
                                                  scripts[i].file, f.line, f.message)
                                       : asprintf(ret_error, "replaying %s on a scratch database failed: %s",
                                                  scripts[i].file, f.message);
                        r = r < 0 ? -ENOMEM : DRIFT_REPLAY_FAILED;
                }
        }
        db_failure_clear(&f);
        return r;
}

int pg_drift(db *d, const char *target, const drift_script *scripts, size_t n, const char *const *skip,
             json_t **ret_differences, char **ret_error) {
        db_pg *p = to_pg(d);
        json_t *want = NULL, *have = NULL;
        db *scratch = NULL;
        db_failure f = {};
        char name[64];
        int r;

        r = create_scratch(p, name, ret_error);
        if (r != 0)
                return r;
        r = pg_open_other(d, name, &scratch, &f);
        if (r == DB_FAILED)
                r = asprintf(ret_error, "cannot connect to the scratch database %s: %s", name, f.message) < 0
                            ? -ENOMEM
                            : DRIFT_REPLAY_FAILED;
        db_failure_clear(&f);
        if (r == 0)
                r = replay(p, scratch, scripts, n, ret_error);
        if (r == 0)
                r = read_schema(to_pg(scratch)->conn, skip, &want, ret_error, DRIFT_REPLAY_FAILED, "replayed");
        db_close(scratch);
        drop_scratch(p, name);
        if (r == 0)
                r = read_schema(p->conn, skip, &have, ret_error, DRIFT_LIVE_FAILED, "database's");
        if (r == 0)
                r = drift_compare(have, want, ret_differences);
        json_decref(have);
        json_decref(want);
        return r;
}
