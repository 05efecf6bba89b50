/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <sqlite3.h>

#include "classify.h"
#include "macro.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(sqlite3_stmt *, sqlite3_finalize);
#define _cleanup_stmt_ _cleanup_(sqlite3_finalizep)

static void sqlite3_close_p(sqlite3 **sq) {
        if (*sq)
                sqlite3_close_v2(*sq);
}

/* What the authorizer reported while one statement was prepared: the last object of each kind
 * of action (a statement has one main action; the rest are its reads). */
typedef struct actions {
        char *create, *drop, *alter, *update, *delete, *insert, *pragma, *pragma_value;
        const char *kind; /* of the created or dropped object */
        int other;        /* an action not known to be online (its code), 0 if none */
        bool transaction; /* BEGIN, COMMIT, ROLLBACK */
} actions;

static void actions_clear(actions *x) {
        free(x->create);
        free(x->drop);
        free(x->alter);
        free(x->update);
        free(x->delete);
        free(x->insert);
        free(x->pragma);
        free(x->pragma_value);
        memset(x, 0, sizeof(*x));
}

static bool internal_table(const char *t);

static void keep(char **slot, const char *v) {
        if (!v)
                return;
        free(*slot);
        *slot = strdup(v);
}

static int authorize(void *userdata, int code, const char *a, const char *b, const char *db, const char *trigger) {
        actions *x = userdata;

        (void) db;
        (void) trigger;
        switch (code) {
        case SQLITE_CREATE_TABLE: case SQLITE_CREATE_TEMP_TABLE: keep(&x->create, a); x->kind = "table"; break;
        case SQLITE_CREATE_INDEX: case SQLITE_CREATE_TEMP_INDEX: keep(&x->create, a); x->kind = "index"; break;
        case SQLITE_CREATE_VIEW: case SQLITE_CREATE_TEMP_VIEW: keep(&x->create, a); x->kind = "view"; break;
        case SQLITE_CREATE_TRIGGER: case SQLITE_CREATE_TEMP_TRIGGER: keep(&x->create, a); x->kind = "trigger"; break;
        case SQLITE_CREATE_VTABLE: keep(&x->create, a); x->kind = "virtual table"; break;
        case SQLITE_DROP_TABLE: case SQLITE_DROP_TEMP_TABLE: keep(&x->drop, a); x->kind = "table"; break;
        case SQLITE_DROP_VIEW: case SQLITE_DROP_TEMP_VIEW: keep(&x->drop, a); x->kind = "view"; break;
        case SQLITE_DROP_VTABLE: keep(&x->drop, a); x->kind = "virtual table"; break;
        case SQLITE_DROP_INDEX: case SQLITE_DROP_TEMP_INDEX:
                if (!x->drop) { /* a DROP TABLE drops its indexes too */
                        keep(&x->drop, a);
                        x->kind = "index";
                }
                break;
        case SQLITE_DROP_TRIGGER: case SQLITE_DROP_TEMP_TRIGGER:
                if (!x->drop) {
                        keep(&x->drop, a);
                        x->kind = "trigger";
                }
                break;
        case SQLITE_ALTER_TABLE: keep(&x->alter, b); break;
        case SQLITE_INSERT: if (!internal_table(a)) keep(&x->insert, a); break;
        case SQLITE_UPDATE: if (!internal_table(a)) keep(&x->update, a); break;
        case SQLITE_DELETE: if (!internal_table(a)) keep(&x->delete, a); break;
        case SQLITE_PRAGMA: keep(&x->pragma, a); keep(&x->pragma_value, b); break;
        case SQLITE_TRANSACTION: x->transaction = true; break;
        case SQLITE_READ: case SQLITE_SELECT: case SQLITE_FUNCTION:
        case SQLITE_SAVEPOINT: case SQLITE_RECURSIVE: case SQLITE_ANALYZE:
        case SQLITE_REINDEX: /* CREATE INDEX builds the new index */
                break;
        default: x->other = code; break;
        }
        return SQLITE_OK;
}

static bool internal_table(const char *t) {
        return !t || strncmp(t, "sqlite_", 7) == 0;
}

/* A table's columns, as PRAGMA table_xinfo reports them: [[name, type, notnull, dflt, pk]]. */
static json_t *columns_of(sqlite3 *sq, const char *table) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        json_t *cols = json_array();

        if (!cols || sqlite3_prepare_v2(sq, "SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_xinfo(?)",
                                        -1, &st, NULL) != SQLITE_OK ||
            sqlite3_bind_text(st, 1, table, -1, SQLITE_TRANSIENT) != SQLITE_OK)
                return cols;
        while (sqlite3_step(st) == SQLITE_ROW) {
                const char *dflt = (const char *) sqlite3_column_text(st, 3);
                json_array_append_new(cols, json_pack("[ssbs?i]", (const char *) sqlite3_column_text(st, 0) ?: "",
                                                      (const char *) sqlite3_column_text(st, 1) ?: "",
                                                      sqlite3_column_int(st, 2) != 0, dflt, sqlite3_column_int(st, 4)));
        }
        return cols;
}

/* Every table's name, as a JSON object used as a set. */
static json_t *tables_of(sqlite3 *sq) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        json_t *set = json_object();

        if (!set || sqlite3_prepare_v2(sq, "SELECT name FROM sqlite_schema WHERE type = 'table'", -1, &st, NULL) !=
                            SQLITE_OK)
                return set;
        while (sqlite3_step(st) == SQLITE_ROW)
                json_object_set_new(set, (const char *) sqlite3_column_text(st, 0), json_true());
        return set;
}

/* Whether any table has a foreign key to table with ON DELETE CASCADE. */
static bool cascades_to(sqlite3 *sq, const char *table) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        bool found = false;

        if (sqlite3_prepare_v2(sq,
                               "SELECT 1 FROM sqlite_schema AS s, pragma_foreign_key_list(s.name) AS f "
                               "WHERE s.type = 'table' AND f.\"table\" = ?1 COLLATE NOCASE AND f.on_delete = 'CASCADE'",
                               -1, &st, NULL) != SQLITE_OK ||
            sqlite3_bind_text(st, 1, table, -1, SQLITE_TRANSIENT) != SQLITE_OK)
                return false;
        found = sqlite3_step(st) == SQLITE_ROW;
        return found;
}

static int verdict(json_t *stmt, const char *class, const char *rule, const char *fmt, ...) _printf_(4, 5);
static int verdict(json_t *stmt, const char *class, const char *rule, const char *fmt, ...) {
        _cleanup_free_ char *reason = NULL;
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = vasprintf(&reason, fmt, ap);
        va_end(ap);
        if (r < 0)
                return -ENOMEM;
        if (json_object_set_new(stmt, "class", json_string(class)) < 0 ||
            json_object_set_new(stmt, "rule", json_string(rule)) < 0 ||
            json_object_set_new(stmt, "reason", json_string(reason)) < 0)
                return -ENOMEM;
        return 0;
}

static int finding(json_t *findings, const char *rule, const char *severity, const char *file, const char *object,
                   const char *fmt, ...) _printf_(6, 7);
static int finding(json_t *findings, const char *rule, const char *severity, const char *file, const char *object,
                   const char *fmt, ...) {
        _cleanup_free_ char *message = NULL;
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = vasprintf(&message, fmt, ap);
        va_end(ap);
        if (r < 0)
                return -ENOMEM;
        return json_array_append_new(findings, json_pack("{s:s,s:s,s:s,s:s,s:s}", "rule", rule, "severity", severity,
                                                         "file", file, "object", object, "message", message)) < 0
                       ? -ENOMEM
                       : 0;
}

/* The state one step's replay carries from statement to statement. */
typedef struct step_state {
        const char *file;
        json_t *dropped;  /* table -> its columns when it was dropped in this step */
        json_t *findings;
        bool foreign_keys; /* PRAGMA foreign_keys = ON was seen */
}
step_state;

/* Removes the drop-table finding of table: a rebuild dropped it after copying its rows. */
static void forget_drop(json_t *findings, const char *table) {
        for (size_t i = json_array_size(findings); i > 0; i--) {
                json_t *f = json_array_get(findings, i - 1);
                if (streq(json_string_value(json_object_get(f, "rule")) ?: "", "drop-table") &&
                    strcasecmp(json_string_value(json_object_get(f, "object")) ?: "", table) == 0)
                        json_array_remove(findings, i - 1);
        }
}

/* An ALTER TABLE: what changed in the catalog decides (nullable or constant-default ADD COLUMN
 * is online; a rename or a dropped column is not). */
static int classify_alter(sqlite3 *sq, sqlite3_stmt *st, const char *table, json_t *stmt, step_state *ss,
                          bool *ret_ran) {
        _cleanup_(json_decrefp) json_t *before = columns_of(sq, table), *tables_before = tables_of(sq);
        _cleanup_(json_decrefp) json_t *after = NULL, *tables_after = NULL;
        size_t nb, na;
        int rc;

        rc = sqlite3_step(st);
        *ret_ran = true;
        if (rc != SQLITE_DONE && rc != SQLITE_ROW)
                return verdict(stmt, CLASS_BREAKING, "replay-failed", "the statement failed on the replay: %s",
                               sqlite3_errmsg(sq));
        after = columns_of(sq, table);
        tables_after = tables_of(sq);
        nb = json_array_size(before);
        na = json_array_size(after);
        if (na == 0) {
                const char *name, *renamed = NULL;
                json_t *v;
                json_object_foreach(tables_after, name, v)
                        if (!json_object_get(tables_before, name))
                                renamed = name;
                if (renamed && json_object_get(ss->dropped, renamed)) {
                        json_t *old = json_object_get(ss->dropped, renamed);
                        _cleanup_(json_decrefp) json_t *now = columns_of(sq, renamed);
                        size_t i, k;
                        json_t *c, *d;
                        json_array_foreach(old, i, c) {
                                bool kept = false;
                                json_array_foreach(now, k, d)
                                        if (strcasecmp(json_string_value(json_array_get(c, 0)),
                                                       json_string_value(json_array_get(d, 0))) == 0)
                                                kept = true;
                                if (!kept && finding(ss->findings, "rebuild-drops-column", "error", ss->file, renamed,
                                                     "the rebuild of table %s drops its column %s (its data is lost)",
                                                     renamed, json_string_value(json_array_get(c, 0))) < 0)
                                        return -ENOMEM;
                        }
                        if (ss->foreign_keys && cascades_to(sq, renamed) &&
                            finding(ss->findings, "rebuild-cascade", "error", ss->file, renamed,
                                    "table %s is rebuilt with foreign keys on and another table references it with "
                                    "ON DELETE CASCADE: dropping the old table deletes the referencing rows",
                                    renamed) < 0)
                                return -ENOMEM;
                        forget_drop(ss->findings, renamed); /* its data moved: the rebuild's rules speak */
                        return verdict(stmt, CLASS_BREAKING, "table-rebuild",
                                       "table %s is rebuilt (dropped and replaced by %s)", renamed, table);
                }
                return verdict(stmt, CLASS_BREAKING, "rename-table", "table %s is renamed to %s", table,
                               renamed ?: "?");
        }
        if (na == nb + 1) {
                json_t *c = json_array_get(after, na - 1);
                const char *col = json_string_value(json_array_get(c, 0));
                bool notnull = json_is_true(json_array_get(c, 2));
                bool has_default = !json_is_null(json_array_get(c, 3));
                if (!notnull)
                        return verdict(stmt, CLASS_ONLINE, "add-column", "ADD COLUMN %s.%s is nullable", table, col);
                if (has_default)
                        return verdict(stmt, CLASS_ONLINE, "add-column", "ADD COLUMN %s.%s has the constant default %s",
                                       table, col, json_string_value(json_array_get(c, 3)));
                return verdict(stmt, CLASS_BREAKING, "add-column-not-null",
                               "ADD COLUMN %s.%s is NOT NULL without a default", table, col);
        }
        if (na + 1 == nb) {
                const char *gone = NULL;
                size_t i, k;
                json_t *c, *d;
                json_array_foreach(before, i, c) {
                        bool kept = false;
                        json_array_foreach(after, k, d)
                                if (streq(json_string_value(json_array_get(c, 0)), json_string_value(json_array_get(d, 0))))
                                        kept = true;
                        if (!kept)
                                gone = json_string_value(json_array_get(c, 0));
                }
                if (finding(ss->findings, "drop-column", "error", ss->file, table, "DROP COLUMN %s.%s loses its data", table,
                            gone ?: "?") < 0)
                        return -ENOMEM;
                return verdict(stmt, CLASS_BREAKING, "drop-column", "DROP COLUMN %s.%s", table, gone ?: "?");
        }
        if (na == nb && !json_equal(before, after))
                return verdict(stmt, CLASS_BREAKING, "rename-column", "a column of table %s is renamed", table);
        return verdict(stmt, CLASS_BREAKING, "alter", "ALTER TABLE %s changes the table", table);
}

/* One statement: prepared with the authorizer on, then run on the copy. */
static int classify_statement(sqlite3 *sq, sqlite3_stmt *st, actions *x, json_t *stmt, step_state *ss) {
        const char *create = x->create, *drop = x->drop, *alter = x->alter, *update = x->update;
        const char *delete = x->delete, *insert = x->insert, *pragma = x->pragma, *pragma_value = x->pragma_value;
        const char *kind = x->kind;
        bool ran = false;
        int r = 0, rc;

        if (alter)
                r = classify_alter(sq, st, alter, stmt, ss, &ran);
        else if (drop) {
                if (streq(kind, "table")) {
                        json_object_set_new(ss->dropped, drop, columns_of(sq, drop));
                        if (finding(ss->findings, "drop-table", "error", ss->file, drop,
                                    "DROP TABLE %s loses its data", drop) < 0)
                                return -ENOMEM;
                }
                r = verdict(stmt, CLASS_BREAKING, "drop", "DROP of %s %s", kind, drop);
        } else if (update)
                r = verdict(stmt, CLASS_BREAKING, "update",
                            "UPDATE of %s rewrites rows under the running services (a bounded backfill may be "
                            "marked \"-- migrated: online\")", update);
        else if (delete)
                r = verdict(stmt, CLASS_BREAKING, "delete", "DELETE from %s removes rows the services may use", delete);
        else if (pragma && pragma_value) {
                if (strcasecmp(pragma, "foreign_keys") == 0)
                        ss->foreign_keys = strcasecmp(pragma_value, "on") == 0 || strcmp(pragma_value, "1") == 0;
                r = verdict(stmt, CLASS_BREAKING, "pragma", "PRAGMA %s = %s changes how the database behaves", pragma,
                            pragma_value);
        } else if (x->other)
                r = verdict(stmt, CLASS_BREAKING, "unknown",
                            "the statement does something not known to be online (SQLite authorizer action %d)",
                            x->other);
        else if (create)
                r = verdict(stmt, CLASS_ONLINE, "create", "CREATE %s %s adds a new object", kind, create);
        else if (insert)
                r = verdict(stmt, CLASS_ONLINE, "insert", "INSERT into %s adds rows", insert);
        else
                r = verdict(stmt, CLASS_ONLINE, "read", "the statement changes nothing");
        if (r < 0 || ran)
                return r;
        rc = sqlite3_step(st);
        while (rc == SQLITE_ROW)
                rc = sqlite3_step(st);
        if (rc != SQLITE_DONE)
                return verdict(stmt, CLASS_BREAKING, "replay-failed", "the statement failed on the replay: %s",
                               sqlite3_errmsg(sq));
        return 0;
}

/* Copies the live database's schema (not its rows) into the empty database sq. */
static int copy_schema(sqlite3 *sq, const char *live_path, char **ret_error) {
        _cleanup_(sqlite3_close_p) sqlite3 *live = NULL;
        _cleanup_stmt_ sqlite3_stmt *st = NULL;

        if (sqlite3_open_v2(live_path, &live, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
            sqlite3_prepare_v2(live,
                               "SELECT sql FROM sqlite_schema WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite\\_%' "
                               "ESCAPE '\\' ORDER BY rowid",
                               -1, &st, NULL) != SQLITE_OK) {
                if (asprintf(ret_error, "cannot read the schema of %s: %s", live_path,
                             live ? sqlite3_errmsg(live) : "out of memory") < 0)
                        *ret_error = NULL;
                return CLASSIFY_LIVE_FAILED;
        }
        while (sqlite3_step(st) == SQLITE_ROW)
                /* a virtual table's shadow tables come with it: their own CREATE fails, harmlessly */
                (void) sqlite3_exec(sq, (const char *) sqlite3_column_text(st, 0), NULL, NULL, NULL);
        return 0;
}

static int classify_step(sqlite3 *sq, const classify_script *sc, json_t *step) {
        _cleanup_(json_decrefp) json_t *dropped = json_object();
        json_t *stmts = json_array(), *findings = json_array();
        step_state ss = { .file = sc->file, .dropped = dropped, .findings = findings };
        const char *p = sc->sql;
        int r = 0;

        json_object_set_new(step, "file", json_string(sc->file));
        json_object_set_new(step, "statements", stmts);
        json_object_set_new(step, "findings", findings);
        if (!stmts || !findings || !dropped)
                return -ENOMEM;
        while (r == 0 && p && *p) {
                _cleanup_stmt_ sqlite3_stmt *st = NULL;
                actions x = {};
                const char *tail = NULL;
                json_t *stmt;
                int rc;

                sqlite3_set_authorizer(sq, authorize, &x);
                rc = sqlite3_prepare_v2(sq, p, -1, &st, &tail);
                sqlite3_set_authorizer(sq, NULL, NULL);
                if (rc != SQLITE_OK) {
                        stmt = json_pack("{s:s%}", "sql", p, strcspn(p, ";"));
                        r = stmt ? verdict(stmt, CLASS_BREAKING, "replay-failed", "the statement failed on the replay: %s",
                                           sqlite3_errmsg(sq))
                                 : -ENOMEM;
                        json_array_append_new(stmts, stmt);
                        actions_clear(&x);
                        break; /* the rest cannot be parsed past this point */
                }
                p = tail;
                if (!st) { /* white space or a comment */
                        actions_clear(&x);
                        continue;
                }
                stmt = json_pack("{s:s}", "sql", sqlite3_sql(st));
                if (!stmt) {
                        actions_clear(&x);
                        return -ENOMEM;
                }
                r = classify_statement(sq, st, &x, stmt, &ss);
                actions_clear(&x);
                json_array_append_new(stmts, stmt);
        }
        if (r < 0)
                return r;
        classify_step_finish(step, sc->override);
        return 0;
}

int classify_sqlite(const char *live_path, const classify_script *scripts, size_t n, json_t **ret, char **ret_error) {
        _cleanup_(sqlite3_close_p) sqlite3 *sq = NULL;
        _cleanup_(json_decrefp) json_t *o = NULL;
        json_t *steps;
        bool breaking = false;
        int r;

        if (sqlite3_open_v2(":memory:", &sq, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK)
                return -ENOMEM;
        r = copy_schema(sq, live_path, ret_error);
        if (r != 0)
                return r;
        o = json_pack("{s:[]}", "steps");
        if (!o)
                return -ENOMEM;
        steps = json_object_get(o, "steps");
        for (size_t i = 0; i < n; i++) {
                json_t *step = json_object();
                if (!step || json_array_append_new(steps, step) < 0)
                        return -ENOMEM;
                r = classify_step(sq, &scripts[i], step);
                if (r < 0)
                        return r;
                if (streq(json_string_value(json_object_get(step, "class")), CLASS_BREAKING))
                        breaking = true;
        }
        json_object_set_new(o, "class", json_string(breaking ? CLASS_BREAKING : CLASS_ONLINE));
        *ret = TAKE_PTR(o);
        return 0;
}

static int64_t now_us(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* The timing's deadline: past it, the statement running is interrupted (the plan is over the
 * bound, and running the rest on the copy would only delay the job). */
typedef struct deadline {
        int64_t at_us;
        bool passed;
} deadline;

static int past_deadline(void *userdata) {
        deadline *d = userdata;

        if (now_us() < d->at_us)
                return 0;
        d->passed = true;
        return 1;
}

int classify_sqlite_time(const char *copy_path, const classify_script *scripts, size_t n, unsigned bound_ms,
                         json_t **ret, char **ret_error) {
        _cleanup_(sqlite3_close_p) sqlite3 *sq = NULL;
        _cleanup_free_ char *slow_sql = NULL;
        const char *slow_file = NULL;
        int64_t t0, slow_us = -1;
        bool failed = false;
        deadline dl = {};

        if (sqlite3_open_v2(copy_path, &sq, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK ||
            sqlite3_exec(sq, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
                if (asprintf(ret_error, "cannot open the copy %s: %s", copy_path,
                             sq ? sqlite3_errmsg(sq) : "out of memory") < 0)
                        *ret_error = NULL;
                return CLASSIFY_LIVE_FAILED;
        }
        t0 = now_us();
        dl.at_us = t0 + (int64_t) bound_ms * 1000;
        sqlite3_progress_handler(sq, 1000, past_deadline, &dl);
        for (size_t i = 0; i < n && !failed && !dl.passed; i++) {
                const char *p = scripts[i].sql;
                while (p && *p && !failed && !dl.passed) {
                        _cleanup_stmt_ sqlite3_stmt *st = NULL;
                        actions x = {};
                        const char *tail = NULL;
                        int64_t t = now_us();
                        int rc;

                        sqlite3_set_authorizer(sq, authorize, &x);
                        rc = sqlite3_prepare_v2(sq, p, -1, &st, &tail);
                        sqlite3_set_authorizer(sq, NULL, NULL);
                        p = tail;
                        if (rc != SQLITE_OK)
                                failed = true;
                        else if (st && !x.transaction) { /* a file's own BEGIN/COMMIT: the plan's transaction */
                                do
                                        rc = sqlite3_step(st);
                                while (rc == SQLITE_ROW);
                                failed = rc != SQLITE_DONE && !dl.passed;
                        }
                        actions_clear(&x);
                        if (rc != SQLITE_OK && dl.passed)
                                failed = false; /* interrupted at the deadline, not a failure */
                        if (st && now_us() - t > slow_us) {
                                slow_us = now_us() - t;
                                free(slow_sql);
                                slow_sql = strdup(sqlite3_sql(st));
                                slow_file = scripts[i].file;
                        }
                }
        }
        sqlite3_progress_handler(sq, 0, NULL, NULL);
        *ret = json_pack("{s:I,s:b,s:b,s:{s:s?,s:s?,s:I}}", "lock_ms", (json_int_t) ((now_us() - t0) / 1000),
                         "failed", failed, "over", dl.passed || now_us() - t0 > (int64_t) bound_ms * 1000, "slowest", "file", slow_file, "sql", slow_sql, "ms",
                         (json_int_t) (slow_us < 0 ? 0 : slow_us / 1000));
        (void) sqlite3_exec(sq, "ROLLBACK", NULL, NULL, NULL);
        return *ret ? 0 : -ENOMEM;
}
