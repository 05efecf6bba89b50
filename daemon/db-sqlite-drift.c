/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sqlite3.h>

#include "db-sqlite-internal.h"
#include "drift-sql.h"
#include "drift.h"

static void sqlite3_close_p(sqlite3 **sq) {
        if (*sq)
                sqlite3_close_v2(*sq);
}

static const char *text(sqlite3_stmt *st, int col) {
        const unsigned char *t = sqlite3_column_text(st, col);

        return t ? (const char *) t : "NULL";
}

static int prepare(sqlite3 *sq, const char *sql, const char *arg, sqlite3_stmt **ret) {
        if (sqlite3_prepare_v2(sq, sql, -1, ret, NULL) != SQLITE_OK)
                return -EIO;
        if (arg && sqlite3_bind_text(*ret, 1, arg, -1, SQLITE_TRANSIENT) != SQLITE_OK)
                return -EIO;
        return 0;
}

/* Columns: declared type, default, nullability, primary key position, hidden (generated). */
static int add_columns(sqlite3 *sq, json_t *schema, const char *table) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        char object[512];
        int r;

        r = prepare(sq, "SELECT name, type, \"notnull\", dflt_value, pk, hidden FROM pragma_table_xinfo(?)", table,
                    &st);
        while (r == 0 && sqlite3_step(st) == SQLITE_ROW) {
                _cleanup_free_ char *dflt = sqlite3_column_text(st, 3) ? drift_sql_normalize(text(st, 3)) : NULL;

                snprintf(object, sizeof(object), "column %s.%s", table, text(st, 0));
                r = drift_put(schema, object, table,
                        json_pack("{s:s,s:s,s:s,s:I,s:I}", "type", text(st, 1), "not_null",
                                  sqlite3_column_int(st, 2) ? "yes" : "no", "default", dflt ?: "NULL", "primary_key",
                                  (json_int_t) sqlite3_column_int(st, 4), "hidden",
                                  (json_int_t) sqlite3_column_int(st, 5)));
        }
        return r;
}

/* The indexes SQLite makes for PRIMARY KEY and UNIQUE constraints have generated names: they are
 * keyed by their table and columns instead. Named indexes come from sqlite_master. */
static int add_constraint_indexes(sqlite3 *sq, json_t *schema, const char *table) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r;

        r = prepare(sq,
                    "SELECT il.origin, group_concat(ii.name, ',') FROM pragma_index_list(?1) AS il, "
                    "pragma_index_info(il.name) AS ii WHERE il.origin <> 'c' GROUP BY il.name ORDER BY 2",
                    table, &st);
        while (r == 0 && sqlite3_step(st) == SQLITE_ROW) {
                char object[512];

                snprintf(object, sizeof(object), "%s %s(%s)", streq(text(st, 0), "pk") ? "primary key" : "unique",
                         table, text(st, 1));
                r = drift_put(schema, object, table, json_object());
        }
        return r;
}

static int add_foreign_keys(sqlite3 *sq, json_t *schema, const char *table) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r;

        r = prepare(sq,
                    "SELECT group_concat(\"from\", ','), \"table\", group_concat(coalesce(\"to\", ''), ','), "
                    "on_update, on_delete, \"match\" FROM (SELECT * FROM pragma_foreign_key_list(?) ORDER BY id, seq) "
                    "GROUP BY id ORDER BY 1",
                    table, &st);
        while (r == 0 && sqlite3_step(st) == SQLITE_ROW) {
                char object[768];

                snprintf(object, sizeof(object), "foreign key %s(%s) -> %s(%s)", table, text(st, 0), text(st, 1),
                         text(st, 2));
                r = drift_put(schema, object, table,
                        json_pack("{s:s,s:s,s:s}", "on_update", text(st, 3), "on_delete", text(st, 4), "match",
                                  text(st, 5)));
        }
        return r;
}

static int add_checks(json_t *schema, const char *table, const char *norm) {
        for (size_t i = 0;; i++) {
                _cleanup_free_ char *expr = drift_sql_check(norm, i), *object = NULL;
                int r;

                if (!expr)
                        return 0;
                if (asprintf(&object, "check %s: %s", table, expr) < 0)
                        return -ENOMEM;
                r = drift_put(schema, object, table, json_object());
                if (r < 0)
                        return r;
        }
}

static int add_object(sqlite3 *sq, json_t *schema, const char *type, const char *name, const char *table,
                      const char *sql) {
        _cleanup_free_ char *norm = drift_sql_normalize(sql), *where = NULL, *cols = NULL;
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        char object[512];
        json_t *attrs;
        int r;

        if (!norm)
                return -ENOMEM;
        snprintf(object, sizeof(object), "%s %s", type, name);
        if (streq(type, "table")) {
                /* a WITHOUT ROWID table says so; a plain one has nothing more to say than its name */
                r = drift_put(schema, object, NULL,
                        strstr(norm, "without rowid") ? json_pack("{s:s}", "without_rowid", "yes") : json_object());
                if (r == 0)
                        r = add_columns(sq, schema, name);
                if (r == 0)
                        r = add_constraint_indexes(sq, schema, name);
                if (r == 0)
                        r = add_foreign_keys(sq, schema, name);
                return r < 0 ? r : add_checks(schema, name, norm);
        }
        /* a view is its own table (tbl_name is its name): it belongs to no other */
        if (streq(type, "view"))
                return drift_put(schema, object, NULL, json_pack("{s:s}", "sql", norm));
        if (!streq(type, "index"))
                return drift_put(schema, object, table, json_pack("{s:s,s:s}", "table", table, "sql", norm));
        r = prepare(sq,
                    "SELECT group_concat(coalesce(name, '<expression>') || CASE WHEN \"desc\" THEN ' desc' ELSE '' END "
                    "|| CASE WHEN coll <> 'BINARY' THEN ' collate ' || coll ELSE '' END, ',') "
                    "FROM (SELECT * FROM pragma_index_xinfo(?) WHERE key ORDER BY seqno)",
                    name, &st);
        if (r == 0 && sqlite3_step(st) == SQLITE_ROW)
                cols = strdup(text(st, 0));
        where = drift_sql_where(norm);
        attrs = json_pack("{s:s,s:s,s:s,s:s}", "table", table, "columns", cols ?: "?", "unique",
                          strncmp(norm, "create unique", 13) == 0 ? "yes" : "no", "where", where ?: "none");
        /* no PRAGMA spells out an indexed expression: its definition is compared as text */
        if (attrs && cols && strstr(cols, "<expression>") &&
            json_object_set_new(attrs, "definition", json_string(norm)) < 0) {
                json_decref(attrs);
                return -ENOMEM;
        }
        return drift_put(schema, object, table, attrs);
}

/* The schema of sq, as put() objects. */
static int read_schema(sqlite3 *sq, const char *const *skip, json_t **ret) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        json_t *schema = json_object();
        int r, s;

        if (!schema)
                return -ENOMEM;
        r = prepare(sq,
                    "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\' "
                    "AND sql IS NOT NULL ORDER BY name",
                    NULL, &st);
        while (r == 0 && (s = sqlite3_step(st)) == SQLITE_ROW) {
                if (drift_skipped(skip, text(st, 2)))
                        continue;
                r = add_object(sq, schema, text(st, 0), text(st, 1), text(st, 2), text(st, 3));
        }
        if (r == 0 && s != SQLITE_DONE)
                r = -EIO;
        if (r < 0) {
                json_decref(schema);
                return r;
        }
        *ret = schema;
        return 0;
}

static int fail(char **ret_error, int code, const char *what, sqlite3 *sq) {
        if (asprintf(ret_error, "%s: %s", what, sq ? sqlite3_errmsg(sq) : "out of memory") < 0)
                return -ENOMEM;
        return code;
}

/* The replay must touch no file: anyone who may read asks for it, so ATTACH (which creates a
 * database file) is refused on the scratch connection, but for a temporary or in-memory
 * database (VACUUM attaches one with an empty name). */
static int deny_attach(void *userdata, int action, const char *file, const char *b, const char *c, const char *d) {
        if (action != SQLITE_ATTACH || !file || streq(file, "") || streq(file, ":memory:"))
                return SQLITE_OK;
        return SQLITE_DENY;
}

/* The scratch database: an in-memory SQLite database with the scripts run in order, each as a
 * whole (a script's own BEGIN … COMMIT runs as written). */
static int replay(const drift_script *scripts, size_t n, sqlite3 **ret, char **ret_error) {
        _cleanup_(sqlite3_close_p) sqlite3 *sq = NULL;

        if (sqlite3_open_v2(":memory:", &sq, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK)
                return fail(ret_error, DRIFT_REPLAY_FAILED, "cannot open a scratch database", sq);
        sqlite3_set_authorizer(sq, deny_attach, NULL);
        for (size_t i = 0; i < n; i++) {
                char *msg = NULL;

                if (sqlite3_exec(sq, scripts[i].sql, NULL, NULL, &msg) != SQLITE_OK) {
                        int r = asprintf(ret_error, "replaying %s on a scratch database failed: %s", scripts[i].file,
                                         msg ?: "unknown error");

                        sqlite3_free(msg);
                        return r < 0 ? -ENOMEM : DRIFT_REPLAY_FAILED;
                }
        }
        *ret = TAKE_PTR(sq);
        return 0;
}

int drift_sqlite(const char *live_path, const drift_script *scripts, size_t n, const char *const *skip_tables,
                 json_t **ret_differences, char **ret_error) {
        _cleanup_(sqlite3_close_p) sqlite3 *scratch = NULL, *live = NULL;
        json_t *want = NULL, *have = NULL;
        int r;

        r = replay(scripts, n, &scratch, ret_error);
        if (r != 0)
                return r;
        r = read_schema(scratch, skip_tables, &want);
        if (r < 0)
                return fail(ret_error, DRIFT_REPLAY_FAILED, "cannot read the replayed schema", scratch);
        if (sqlite3_open_v2(live_path, &live, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
                json_decref(want);
                return fail(ret_error, DRIFT_LIVE_FAILED, "cannot open the database", live);
        }
        sqlite3_busy_timeout(live, 5000);
        /* one read transaction: the whole schema from one snapshot */
        r = sqlite3_exec(live, "BEGIN", NULL, NULL, NULL) == SQLITE_OK ? read_schema(live, skip_tables, &have) : -EIO;
        if (r < 0) {
                json_decref(want);
                return fail(ret_error, DRIFT_LIVE_FAILED, "cannot read the database's schema", live);
        }
        (void) sqlite3_exec(live, "ROLLBACK", NULL, NULL, NULL);
        r = drift_compare(have, want, ret_differences);
        json_decref(have);
        json_decref(want);
        return r;
}

/* The backend's drift: the live side is the file the connection opened. */
int sqlite_drift(db *d, const char *target, const drift_script *scripts, size_t n, const char *const *skip,
                 json_t **ret_differences, char **ret_error) {
        return drift_sqlite(to_sqlite(d)->path ?: target, scripts, n, skip, ret_differences, ret_error);
}
