/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <errno.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "macro.h"
#include "sql-wrapper.h"

const char *sql_skip_blank(const char *p, const char *end) {
        while (p < end) {
                if (isspace((unsigned char) *p))
                        p++;
                else if (end - p >= 2 && p[0] == '-' && p[1] == '-') {
                        while (p < end && *p != '\n')
                                p++;
                } else if (end - p >= 2 && p[0] == '/' && p[1] == '*') {
                        const char *c = p + 2;
                        while (c + 1 < end && !(c[0] == '*' && c[1] == '/'))
                                c++;
                        p = c + 1 < end ? c + 2 : end;
                } else
                        break;
        }
        return p;
}

bool sql_keyword_is(const char *p, const char *end, const char *kw) {
        size_t n = strlen(kw);

        return (size_t) (end - p) >= n && strncasecmp(p, kw, n) == 0 &&
               ((size_t) (end - p) == n || !(isalnum((unsigned char) p[n]) || p[n] == '_'));
}

/* Consumes kw at *p (and the blanks after it) when it is there. */
static bool take(const char **p, const char *end, const char *kw) {
        if (!sql_keyword_is(*p, end, kw))
                return false;
        *p = sql_skip_blank(*p + strlen(kw), end);
        return true;
}

/* Whether [p, end) is exactly "words;" for the transaction statement that first is one of. */
static bool is_statement(const char *p, const char *end, bool begin) {
        p = sql_skip_blank(p, end);
        if (begin) {
                if (!take(&p, end, "BEGIN"))
                        return false;
                (void) (take(&p, end, "DEFERRED") || take(&p, end, "IMMEDIATE") || take(&p, end, "EXCLUSIVE"));
        } else if (!take(&p, end, "COMMIT") && !take(&p, end, "END"))
                return false;
        (void) take(&p, end, "TRANSACTION");
        return p < end && *p == ';' && sql_skip_blank(p + 1, end) == end;
}

/* The end of the quoted text or comment starting at p (one of ' " ` [ -- / *), or NULL when p
 * starts none. Only used to skip ';' that cannot end a statement; sqlite3_complete() decides. */
static const char *skip_quoted(const char *p, const char *end) {
        const char *q;
        char close;

        switch (*p) {
        case '\'':
        case '"':
        case '`':
        case '[':
                close = *p == '[' ? ']' : *p;
                q = memchr(p + 1, close, (size_t) (end - p - 1));
                return q ? q + 1 : end; /* a doubled quote is two quoted runs: the same */
        case '-':
                if (end - p < 2 || p[1] != '-')
                        return NULL;
                q = memchr(p, '\n', (size_t) (end - p));
                return q ? q + 1 : end;
        case '/':
                if (end - p < 2 || p[1] != '*')
                        return NULL;
                for (q = p + 2; q + 1 < end; q++)
                        if (q[0] == '*' && q[1] == '/')
                                return q + 2;
                return end;
        default:
                return NULL;
        }
}

/* Walks the statements: each ends at the first ';' after which the text since the statement's
 * start is complete in SQLite's sense (sqlite3_complete). A ';' inside a string or a comment is
 * skipped before asking, so that the walk stays linear for data files full of ';' in strings.
 * Only the first and the last statement are kept. */
int sql_find_wrapper(const char *sql, size_t size, size_t *ret_body_start, size_t *ret_body_end) {
        _cleanup_free_ char *copy = NULL;
        size_t first_end = 0, last_start = 0, start = 0, n = 0;
        const char *end = sql + size, *p = sql;

        /* most files do not start with BEGIN: no copy, no walk */
        p = sql_skip_blank(sql, end);
        if (!sql_keyword_is(p, end, "BEGIN"))
                return 0;
        copy = memdup_nul(sql, size);
        if (!copy)
                return -ENOMEM;
        while (p < end) {
                const char *q = skip_quoted(p, end);
                size_t i = (size_t) (p - sql);
                char saved;
                bool complete;

                if (q) {
                        p = q;
                        continue;
                }
                p++;
                if (sql[i] != ';')
                        continue;
                saved = copy[i + 1];
                copy[i + 1] = '\0';
                complete = sqlite3_complete(copy + start);
                copy[i + 1] = saved;
                if (!complete)
                        continue;
                if (n++ == 0)
                        first_end = i + 1;
                last_start = start;
                start = i + 1;
        }
        if (n < 2 || sql_skip_blank(sql + start, end) != end)
                return 0; /* one statement, or text after the last ';' */
        if (!is_statement(sql, sql + first_end, true) || !is_statement(sql + last_start, sql + start, false))
                return 0;
        *ret_body_start = first_end;
        *ret_body_end = last_start;
        return 1;
}
