/* SPDX-License-Identifier: MIT */
/* The schema dump of a SQLite database (migratectl schema): the CREATE statements SQLite keeps,
 * in a stable order (tables by name, each followed by its indexes and triggers, then the views
 * likewise), their white space normalised, so that two dumps of one schema are the same bytes
 * and a migration shows in git as exactly what it changed. */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "db-sqlite-internal.h"
#include "drift.h"

/* The stored text as written, but for white space outside quotes: no carriage returns, no
 * trailing blanks, no blank lines, no ';' at the end (the dump adds one). Quoted strings keep
 * every byte: they are values. */
static void write_statement(FILE *out, const char *sql) {
        size_t len = strlen(sql), o = 0;
        _cleanup_free_ char *buf = malloc(len + 1);
        char quote = 0;

        if (!buf) {
                fputs(sql, out); /* the stream reports the ENOMEM at fclose */
                return;
        }
        for (const char *p = sql; *p; p++) {
                if (quote) {
                        buf[o++] = *p;
                        if (*p == quote)
                                quote = 0;
                        continue;
                }
                if (*p == '\'' || *p == '"' || *p == '`' || *p == '[') {
                        quote = *p == '[' ? ']' : *p;
                        buf[o++] = *p;
                        continue;
                }
                if (*p == '\r')
                        continue;
                if (*p == '\n') {
                        while (o > 0 && (buf[o - 1] == ' ' || buf[o - 1] == '\t'))
                                o--;
                        if (o > 0 && buf[o - 1] != '\n')
                                buf[o++] = '\n';
                        continue;
                }
                if (o == 0 && (*p == ' ' || *p == '\t'))
                        continue;
                buf[o++] = *p;
        }
        while (o > 0 && (buf[o - 1] == ' ' || buf[o - 1] == '\t' || buf[o - 1] == '\n' || buf[o - 1] == ';'))
                o--;
        buf[o] = '\0';
        fprintf(out, "%s;\n", buf);
}

static void write_identifier(FILE *out, const char *name) {
        fputc('"', out);
        for (const char *c = name; *c; c++)
                fprintf(out, *c == '"' ? "\"\"" : "%c", *c);
        fputc('"', out);
}

static void write_value(FILE *out, sqlite3_stmt *st, int col) {
        switch (sqlite3_column_type(st, col)) {
        case SQLITE_NULL: fputs("NULL", out); break;
        case SQLITE_INTEGER: fprintf(out, "%lld", (long long) sqlite3_column_int64(st, col)); break;
        case SQLITE_FLOAT: fprintf(out, "%.17g", sqlite3_column_double(st, col)); break;
        case SQLITE_BLOB: {
                const unsigned char *b = sqlite3_column_blob(st, col);
                int n = sqlite3_column_bytes(st, col);

                fputs("X'", out);
                for (int i = 0; i < n; i++)
                        fprintf(out, "%02x", b[i]);
                fputc('\'', out);
                break;
        }
        default: {
                const char *t = (const char *) sqlite3_column_text(st, col);

                fputc('\'', out);
                for (const char *c = t ?: ""; *c; c++)
                        fprintf(out, *c == '\'' ? "''" : "%c", *c);
                fputc('\'', out);
        }
        }
}

/* The history table's rows as INSERT statements, one a line, in the order of their columns. */
static int write_history(db_sqlite *s, FILE *out, const char *table, db_failure *f) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        _cleanup_free_ char *sql = NULL;
        int rc;

        if (!sqlite_table_exists(s, table, &rc))
                return rc == SQLITE_OK ? 0 : sqlite_fail(s, rc, f, "cannot read the history table");
        if (asprintf(&sql, "SELECT * FROM \"%s\" ORDER BY 1", table) < 0)
                return -ENOMEM;
        rc = sqlite3_prepare_v2(s->conn, sql, -1, &st, NULL);
        if (rc != SQLITE_OK)
                return sqlite_fail(s, rc, f, "cannot read the history table");
        fputc('\n', out);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                int n = sqlite3_column_count(st);

                fputs("INSERT INTO ", out);
                write_identifier(out, table);
                fputs(" (", out);
                for (int i = 0; i < n; i++) {
                        fputs(i ? ", " : "", out);
                        write_identifier(out, sqlite3_column_name(st, i));
                }
                fputs(") VALUES (", out);
                for (int i = 0; i < n; i++) {
                        fputs(i ? ", " : "", out);
                        write_value(out, st, i);
                }
                fputs(");\n", out);
        }
        return rc == SQLITE_DONE ? 0 : sqlite_fail(s, rc, f, "cannot read the history table");
}

/* Every object with its table: tables first, by name, each followed by its indexes, then its
 * triggers; then the views likewise. What no CREATE of the user makes is left out, though
 * sqlite3's .schema prints some of it: SQLite's own objects (sqlite_sequence, automatic indexes)
 * and a virtual table's shadow tables (FTS5's docs_data …, made by CREATE VIRTUAL TABLE). */
static int write_objects(db_sqlite *s, FILE *out, const char *const *skip, db_failure *f) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        _cleanup_free_ char *group = NULL;
        int rc;

        rc = sqlite3_prepare_v2(
                s->conn,
                "SELECT o.sql, t.name FROM sqlite_master o JOIN sqlite_master t "
                "ON t.name = o.tbl_name COLLATE NOCASE AND t.type IN ('table', 'view') "
                "WHERE o.sql IS NOT NULL AND t.name NOT LIKE 'sqlite\\_%' ESCAPE '\\' "
                "AND t.name NOT IN (SELECT name FROM pragma_table_list WHERE schema = 'main' AND type = 'shadow') "
                "ORDER BY t.type = 'view', t.name, o.type <> t.type, o.type, o.name",
                -1, &st, NULL);
        if (rc != SQLITE_OK)
                return sqlite_fail(s, rc, f, "cannot read the schema");
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                const char *sql = (const char *) sqlite3_column_text(st, 0);
                const char *table = (const char *) sqlite3_column_text(st, 1);

                if (!sql || !table || drift_skipped(skip, table))
                        continue;
                /* a blank line between one table's group and the next */
                if (group && strcasecmp(group, table) != 0)
                        fputc('\n', out);
                if (!group || strcasecmp(group, table) != 0) {
                        free(group);
                        group = strdup(table);
                        if (!group)
                                return -ENOMEM;
                }
                write_statement(out, sql);
        }
        return rc == SQLITE_DONE ? 0 : sqlite_fail(s, rc, f, "cannot read the schema");
}

/* One snapshot for the whole dump. */
int sqlite_schema_dump(db *d, const char *const *skip, const char *history, FILE *out, db_failure *f) {
        db_sqlite *s = to_sqlite(d);
        int r;

        r = sqlite_exec_simple(s, "SAVEPOINT migrated_schema_dump", f, "cannot read the schema");
        if (r != 0)
                return r;
        r = write_objects(s, out, skip, f);
        if (r == 0 && history)
                r = write_history(s, out, history, f);
        (void) sqlite3_exec(s->conn, "RELEASE migrated_schema_dump", NULL, NULL, NULL);
        return r;
}
