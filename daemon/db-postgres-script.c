/* SPDX-License-Identifier: MIT */
/* Migration scripts on PostgreSQL, statement by statement: each failure names its line, and a
 * no-transaction script (CREATE INDEX CONCURRENTLY) runs each statement on its own, as the
 * server requires (a multi-statement query string is an implicit transaction). */

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db-postgres-internal.h"

/* Skips a quoted string, identifier or comment starting at p; returns p when none starts there. */
static const char *skip_token(const char *p, const char *end) {
        if (*p == '\'' || *p == '"' || ((*p == 'E' || *p == 'e') && end - p > 1 && p[1] == '\'' )) {
                bool backslash = *p == 'E' || *p == 'e';
                char q = backslash ? '\'' : *p;

                for (p += backslash ? 2 : 1; p < end; p++) {
                        if (backslash && *p == '\\' && p + 1 < end)
                                p++;
                        else if (*p == q) {
                                if (p + 1 < end && p[1] == q)
                                        p++;
                                else
                                        return p + 1;
                        }
                }
                return end;
        }
        if (end - p >= 2 && p[0] == '-' && p[1] == '-') {
                while (p < end && *p != '\n')
                        p++;
                return p;
        }
        if (end - p >= 2 && p[0] == '/' && p[1] == '*') {
                int depth = 0;

                for (; p < end; p++) {
                        if (end - p >= 2 && p[0] == '/' && p[1] == '*')
                                depth++, p++;
                        else if (end - p >= 2 && p[0] == '*' && p[1] == '/') {
                                p++;
                                if (--depth == 0)
                                        return p + 1;
                        }
                }
                return end;
        }
        if (*p == '$') { /* $tag$ … $tag$ */
                const char *t = p + 1;

                while (t < end && (isalnum((unsigned char) *t) || *t == '_'))
                        t++;
                if (t < end && *t == '$' && !(t > p + 1 && isdigit((unsigned char) p[1]))) {
                        size_t n = (size_t) (t - p + 1);

                        for (const char *c = t + 1; c + n <= end; c++)
                                if (memcmp(c, p, n) == 0)
                                        return c + n;
                        return end;
                }
        }
        return p;
}

static bool keyword_is(const char *p, const char *end, const char *kw);

static bool word_start(const char *start, const char *p) {
        return p == start || !(isalnum((unsigned char) p[-1]) || p[-1] == '_' || p[-1] == '$');
}

/* A SQL-standard routine body (CREATE FUNCTION … BEGIN ATOMIC … END) holds semicolons of its
 * own: as psql does, BEGIN and CASE open a level and END closes one, in such statements only. */
const char *pg_statement_end(const char *p, const char *end) {
        const char *start = p;
        bool routine = false;
        int depth = 0;

        while (p < end) {
                const char *q = skip_token(p, end);

                if (q != p) {
                        p = q;
                        continue;
                }
                if (*p == ';' && depth == 0)
                        return p + 1;
                if (isalpha((unsigned char) *p) && word_start(start, p)) {
                        if (keyword_is(p, end, "FUNCTION") || keyword_is(p, end, "PROCEDURE"))
                                routine = true;
                        else if (routine && (keyword_is(p, end, "BEGIN") || keyword_is(p, end, "CASE")))
                                depth++;
                        else if (routine && depth > 0 && keyword_is(p, end, "END"))
                                depth--;
                        while (p < end && (isalnum((unsigned char) *p) || *p == '_'))
                                p++;
                        continue;
                }
                p++;
        }
        return end;
}

const char *pg_skip_blank(const char *p, const char *end) {
        while (p < end) {
                if (isspace((unsigned char) *p))
                        p++;
                else if ((p[0] == '-' || p[0] == '/') && skip_token(p, end) != p)
                        p = skip_token(p, end);
                else
                        break;
        }
        return p;
}

static bool keyword_is(const char *p, const char *end, const char *kw) {
        size_t n = strlen(kw);

        return (size_t) (end - p) >= n && strncasecmp(p, kw, n) == 0 &&
               ((size_t) (end - p) == n || !(isalnum((unsigned char) p[n]) || p[n] == '_'));
}

/* Statements that would end or nest our transaction. */
static bool is_transaction_control(const char *p, const char *end) {
        if (keyword_is(p, end, "BEGIN") || keyword_is(p, end, "COMMIT") || keyword_is(p, end, "END") ||
            keyword_is(p, end, "START") || keyword_is(p, end, "ABORT"))
                return true;
        if (keyword_is(p, end, "ROLLBACK"))
                return !keyword_is(pg_skip_blank(p + 8, end), end, "TO");
        return false;
}

static unsigned line_of(const char *sql, const char *at) {
        unsigned line = 1;

        for (const char *p = sql; p < at; p++)
                line += *p == '\n';
        return line;
}

/* The byte the server's 1-based character position points at (it counts characters). */
static const char *at_position(const char *stmt, const char *end, long pos) {
        const char *p = stmt;

        for (long i = 1; i < pos && p < end; i++) {
                p++;
                while (p < end && ((unsigned char) *p & 0xc0) == 0x80)
                        p++;
        }
        return p;
}

static int script_fail(db_failure *f, unsigned line, const char *fmt, ...) _printf_(3, 4);
static int script_fail(db_failure *f, unsigned line, const char *fmt, ...) {
        va_list ap;

        db_failure_clear(f);
        f->code = PROTOCOL_ERROR_MIGRATION_FAILED;
        f->line = line;
        va_start(ap, fmt);
        if (vasprintf(&f->message, fmt, ap) < 0)
                f->message = NULL;
        va_end(ap);
        return f->message ? DB_FAILED : -ENOMEM;
}

/* A statement's failure: lock and cancel failures and a lost connection keep their own code (a
 * network cut is not the script's fault), anything else is the migration's fault and names the
 * line (the server's position within the statement, else the statement's first line). */
static int statement_failed(db_pg *p, PGresult *res, const char *sql, const char *stmt, const char *end,
                            db_failure *f) {
        const char *pos = PQresultErrorField(res, PG_DIAG_STATEMENT_POSITION);
        unsigned line = line_of(sql, pos ? at_position(stmt, end, atol(pos)) : stmt);
        int r = pg_fail(p, res, f, "statement failed");

        if (r == DB_FAILED && f->code == PROTOCOL_ERROR_DATABASE && !f->retry && PQstatus(p->conn) != CONNECTION_BAD) {
                const char *m = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
                const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
                return script_fail(f, line, "%s%s%s%s", m ?: "failed", state ? " (SQLSTATE " : "", state ?: "",
                                   state ? ")" : "");
        }
        if (r == DB_FAILED)
                f->line = line;
        return r;
}

int pg_exec_script(db *d, const char *sql, size_t size, bool in_transaction, db_failure *f) {
        db_pg *p = to_pg(d);
        const char *s = sql, *end = sql + size;

        while (s < end) {
                _cleanup_free_ char *text = NULL;
                _cleanup_pgresult_ PGresult *res = NULL;
                const char *start = pg_skip_blank(s, end), *stop;

                if (start >= end)
                        break;
                stop = pg_statement_end(start, end);
                if (in_transaction && is_transaction_control(start, stop))
                        return script_fail(f, line_of(sql, start),
                                           "transaction control statements are not allowed in a migration: "
                                           "migrated runs it in its own transaction (use '-- migrated: "
                                           "no-transaction' to run it outside one)");
                if (p->cancel && atomic_load(p->cancel)) {
                        db_failure_clear(f);
                        f->code = PROTOCOL_ERROR_INTERRUPTED;
                        f->message = strdup("interrupted: the open transaction was rolled back");
                        return f->message ? DB_FAILED : -ENOMEM;
                }
                text = strndup(start, (size_t) (stop - start));
                if (!text)
                        return -ENOMEM;
                res = PQexec(p->conn, text);
                if (!pg_result_ok(res))
                        return statement_failed(p, res, sql, start, stop, f);
                if (in_transaction && PQtransactionStatus(p->conn) != PQTRANS_INTRANS)
                        return script_fail(f, line_of(sql, start), "this statement ended migrated's transaction");
                s = stop;
        }
        return pg_restore_search_path(p, f);
}
