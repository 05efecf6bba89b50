/* SPDX-License-Identifier: MIT */
/* PostgreSQL's side of classify.h: each script parsed by PostgreSQL's own parser (libpg_query),
 * each statement classified from its parse tree's node kind and, for ALTER TABLE, its commands.
 * Built only with libpg_query (meson: HAVE_PG_QUERY); without it every step is "unknown". */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "classify.h"
#include "config.h" /* HAVE_PG_QUERY */
#include "macro.h"

#if HAVE_PG_QUERY
#include <pg_query.h>

static const char *str(json_t *o, const char *key) {
        return json_string_value(json_object_get(o, key)) ?: "";
}

static int pg_verdict(json_t *stmt, const char *class, const char *rule, const char *reason) {
        return json_object_set_new(stmt, "class", json_string(class)) < 0 ||
                               json_object_set_new(stmt, "rule", json_string(rule)) < 0 ||
                               json_object_set_new(stmt, "reason", json_string(reason)) < 0
                       ? -ENOMEM
                       : 0;
}

static int pg_finding(json_t *findings, const char *rule, const char *severity, const char *file, const char *object,
                      const char *message) {
        return json_array_append_new(findings, json_pack("{s:s,s:s,s:s,s:s,s:s}", "rule", rule, "severity", severity,
                                                         "file", file, "object", object, "message", message)) < 0
                       ? -ENOMEM
                       : 0;
}

/* A default PostgreSQL can store once in the catalog (a constant, maybe cast): the ADD COLUMN
 * rewrites nothing and takes its ACCESS EXCLUSIVE lock only briefly. */
static bool constant_expr(json_t *e) {
        json_t *cast = json_object_get(e, "TypeCast");

        if (cast)
                e = json_object_get(cast, "arg");
        return json_object_get(e, "A_Const") != NULL;
}

/* One ADD COLUMN: online when nullable or NOT NULL with a constant default. */
static int classify_add_column(json_t *def, const char *table, bool new_table, const char *file, json_t *stmt,
                               json_t *findings) {
        json_t *c, *col = json_object_get(def, "ColumnDef");
        bool notnull = json_is_true(json_object_get(col, "is_not_null")), has_default = false, constant = true;
        char msg[512];
        size_t i;

        json_array_foreach(json_object_get(col, "constraints"), i, c) {
                json_t *k = json_object_get(c, "Constraint");
                if (streq(str(k, "contype"), "CONSTR_NOTNULL"))
                        notnull = true;
                else if (streq(str(k, "contype"), "CONSTR_DEFAULT")) {
                        has_default = true;
                        constant = constant_expr(json_object_get(k, "raw_expr"));
                } else if (!streq(str(k, "contype"), "CONSTR_NULL")) {
                        snprintf(msg, sizeof(msg), "ADD COLUMN %s.%s with a constraint checks every row", table,
                                 str(col, "colname"));
                        return pg_verdict(stmt, CLASS_BREAKING, "constraint", msg);
                }
        }
        if (has_default && !constant) {
                snprintf(msg, sizeof(msg), "ADD COLUMN %s.%s with a volatile default rewrites the table", table,
                         str(col, "colname"));
                return pg_verdict(stmt, CLASS_BREAKING, "add-column-rewrite", msg);
        }
        if (notnull && !has_default && new_table) {
                snprintf(msg, sizeof(msg), "ADD COLUMN %s.%s: the table is created in this file, it has no rows",
                         table, str(col, "colname"));
                return pg_verdict(stmt, CLASS_ONLINE, "add-column", msg);
        }
        if (notnull && !has_default) {
                snprintf(msg, sizeof(msg), "ADD COLUMN %s.%s is NOT NULL without a default: it fails on a table with "
                         "rows, or breaks the services' inserts", table, str(col, "colname"));
                if (pg_finding(findings, "not-null-without-default", "error", file, table, msg) < 0)
                        return -ENOMEM;
                return pg_verdict(stmt, CLASS_BREAKING, "add-column-not-null", msg);
        }
        snprintf(msg, sizeof(msg), "ADD COLUMN %s.%s %s", table, str(col, "colname"),
                 has_default ? "has a constant default" : "is nullable");
        return pg_verdict(stmt, CLASS_ONLINE, "add-column", msg);
}

/* ALTER TABLE: every command must be online for the statement to be. */
static int classify_alter(json_t *node, json_t *created, const char *file, json_t *stmt, json_t *findings) {
        const char *table = str(json_object_get(node, "relation"), "relname");
        json_t *cmd;
        char msg[512];
        size_t i;
        int r = pg_verdict(stmt, CLASS_ONLINE, "alter", "ALTER TABLE without commands");

        json_array_foreach(json_object_get(node, "cmds"), i, cmd) {
                json_t *c = json_object_get(cmd, "AlterTableCmd");
                const char *sub = str(c, "subtype");
                if (streq(sub, "AT_AddColumn"))
                        r = classify_add_column(json_object_get(c, "def"), table, json_object_get(created, table),
                                                file, stmt, findings);
                else if (streq(sub, "AT_DropColumn")) {
                        snprintf(msg, sizeof(msg), "DROP COLUMN %s.%s loses its data", table, str(c, "name"));
                        r = pg_finding(findings, "drop-column", "error", file, table, msg) ?:
                            pg_verdict(stmt, CLASS_BREAKING, "drop-column", msg);
                } else if (streq(sub, "AT_AlterColumnType")) {
                        snprintf(msg, sizeof(msg), "the type of %s.%s changes", table, str(c, "name"));
                        r = pg_verdict(stmt, CLASS_BREAKING, "alter-column-type", msg);
                } else {
                        snprintf(msg, sizeof(msg), "ALTER TABLE %s: %s changes a constraint or the table", table, sub);
                        r = pg_verdict(stmt, CLASS_BREAKING, "alter", msg);
                }
                if (r < 0 || streq(str(stmt, "class"), CLASS_BREAKING))
                        return r;
        }
        return r;
}

/* One statement of the parse tree, from its node's kind; created: the tables this file created
 * so far (an index on one, or a NOT NULL column added to one, locks no rows anyone uses). */
static int classify_node(json_t *stmt_node, json_t *created, const char *file, json_t *stmt, json_t *findings) {
        const char *kind = NULL;
        json_t *node = NULL;
        char msg[512];

        json_object_foreach(stmt_node, kind, node)
                break;
        if (!kind)
                return pg_verdict(stmt, CLASS_ONLINE, "read", "an empty statement");
        if (streq(kind, "CreateStmt"))
                json_object_set_new(created, str(json_object_get(node, "relation"), "relname"), json_true());
        if (streq(kind, "CreateStmt") || streq(kind, "ViewStmt") || streq(kind, "CreateTrigStmt") ||
            streq(kind, "CreateSeqStmt") || streq(kind, "CreateFunctionStmt") || streq(kind, "CreateEnumStmt") ||
            streq(kind, "CompositeTypeStmt") || streq(kind, "CreateSchemaStmt") || streq(kind, "CreateTableAsStmt")) {
                snprintf(msg, sizeof(msg), "%s adds a new object", kind);
                return pg_verdict(stmt, CLASS_ONLINE, "create", msg);
        }
        if (streq(kind, "IndexStmt")) {
                const char *table = str(json_object_get(node, "relation"), "relname");
                if (!json_is_true(json_object_get(node, "concurrent")) && !json_object_get(created, table)) {
                        snprintf(msg, sizeof(msg), "CREATE INDEX %s on %s without CONCURRENTLY blocks writes to the "
                                 "table while it builds", str(node, "idxname"), table);
                        if (pg_finding(findings, "index-not-concurrent", "warning", file, table, msg) < 0)
                                return -ENOMEM;
                }
                snprintf(msg, sizeof(msg), "CREATE INDEX on %s adds a new object", table);
                return pg_verdict(stmt, CLASS_ONLINE, "create", msg);
        }
        if (streq(kind, "InsertStmt"))
                return pg_verdict(stmt, CLASS_ONLINE, "insert", "INSERT adds rows");
        if (streq(kind, "SelectStmt") || streq(kind, "TransactionStmt") || streq(kind, "VariableSetStmt") ||
            streq(kind, "CommentStmt"))
                return pg_verdict(stmt, CLASS_ONLINE, "read", "the statement changes no schema the services use");
        if (streq(kind, "AlterTableStmt"))
                return classify_alter(node, created, file, stmt, findings);
        if (streq(kind, "DropStmt")) {
                if (streq(str(node, "removeType"), "OBJECT_TABLE") &&
                    pg_finding(findings, "drop-table", "error", file, "", "DROP TABLE loses its data") < 0)
                        return -ENOMEM;
                snprintf(msg, sizeof(msg), "DROP of %s", str(node, "removeType"));
                return pg_verdict(stmt, CLASS_BREAKING, "drop", msg);
        }
        if (streq(kind, "RenameStmt"))
                return pg_verdict(stmt, CLASS_BREAKING,
                                  streq(str(node, "renameType"), "OBJECT_COLUMN") ? "rename-column" : "rename-table",
                                  "a rename breaks the services that use the old name");
        if (streq(kind, "UpdateStmt"))
                return pg_verdict(stmt, CLASS_BREAKING, "update",
                                  "UPDATE rewrites rows under the running services (a bounded backfill may be "
                                  "marked \"-- migrated: online\")");
        if (streq(kind, "DeleteStmt"))
                return pg_verdict(stmt, CLASS_BREAKING, "delete", "DELETE removes rows the services may use");
        snprintf(msg, sizeof(msg), "%s is not known to be online", kind);
        return pg_verdict(stmt, CLASS_BREAKING, "unknown", msg);
}

static int classify_pg_step(const classify_script *sc, json_t *step) {
        json_t *stmts = json_array(), *findings = json_array(), *tree, *s;
        _cleanup_(json_decrefp) json_t *created = json_object();
        PgQueryParseResult pr;
        size_t i;
        int r = 0;

        json_object_set_new(step, "file", json_string(sc->file));
        json_object_set_new(step, "statements", stmts);
        json_object_set_new(step, "findings", findings);
        if (!stmts || !findings || !created)
                return -ENOMEM;
        pr = pg_query_parse(sc->sql);
        if (pr.error) {
                json_t *stmt = json_pack("{s:s}", "sql", sc->sql);
                r = stmt ? pg_verdict(stmt, CLASS_BREAKING, "parse-failed", pr.error->message) : -ENOMEM;
                json_array_append_new(stmts, stmt);
                pg_query_free_parse_result(pr);
                goto summary;
        }
        tree = json_loads(pr.parse_tree, 0, NULL);
        pg_query_free_parse_result(pr);
        if (!tree)
                return -ENOMEM;
        json_array_foreach(json_object_get(tree, "stmts"), i, s) {
                size_t loc = (size_t) json_integer_value(json_object_get(s, "stmt_location"));
                size_t len = json_object_get(s, "stmt_len") ? (size_t) json_integer_value(json_object_get(s, "stmt_len"))
                                                            : strlen(sc->sql + loc);
                json_t *stmt = json_pack("{s:s%}", "sql", sc->sql + loc, len);
                if (!stmt) {
                        r = -ENOMEM;
                        break;
                }
                json_array_append_new(stmts, stmt);
                r = classify_node(json_object_get(s, "stmt"), created, sc->file, stmt, findings);
                if (r < 0)
                        break;
        }
        json_decref(tree);
        if (r < 0)
                return r;
summary:
        classify_step_finish(step, sc->override);
        return r;
}

int classify_pg(const classify_script *scripts, size_t n, json_t **ret) {
        json_t *o = json_pack("{s:[]}", "steps");
        bool breaking = false;

        if (!o)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                json_t *step = json_object();
                int r;
                if (!step || json_array_append_new(json_object_get(o, "steps"), step) < 0) {
                        json_decref(o);
                        return -ENOMEM;
                }
                r = classify_pg_step(&scripts[i], step);
                if (r < 0) {
                        json_decref(o);
                        return r;
                }
                breaking |= streq(str(step, "class"), CLASS_BREAKING);
        }
        json_object_set_new(o, "class", json_string(breaking ? CLASS_BREAKING : CLASS_ONLINE));
        *ret = o;
        return 0;
}

#else

int classify_pg(const classify_script *scripts, size_t n, json_t **ret) {
        *ret = classify_unknown(scripts, n, "migrated was built without libpg_query: PostgreSQL plans are not classified");
        return *ret ? 0 : -ENOMEM;
}

#endif
