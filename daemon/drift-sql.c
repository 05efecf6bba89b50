/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "drift-sql.h"

static bool is_punct(char c) {
        return c == '(' || c == ')' || c == ',' || c == ';' || c == '=' || c == '<' || c == '>';
}

static bool is_ident(char c) {
        return isalnum((unsigned char) c) || c == '_' || c == '$';
}

/* Why: two schemas written with different spacing, comments or keyword case are the same
 * schema; the quoted parts (strings, identifiers) keep their bytes. */
char *drift_sql_normalize(const char *sql) {
        size_t len = strlen(sql), o = 0;
        char *out = malloc(len + 1);
        bool space = false;

        if (!out)
                return NULL;
        for (const char *p = sql; *p;) {
                if (p[0] == '-' && p[1] == '-') {
                        while (*p && *p != '\n')
                                p++;
                        space = true;
                        continue;
                }
                if (p[0] == '/' && p[1] == '*') {
                        const char *e = strstr(p + 2, "*/");
                        p = e ? e + 2 : p + strlen(p);
                        space = true;
                        continue;
                }
                if (isspace((unsigned char) *p)) {
                        space = true;
                        p++;
                        continue;
                }
                if (space && o > 0 && !is_punct(out[o - 1]) && !is_punct(*p))
                        out[o++] = ' ';
                space = false;
                if (*p == '\'' || *p == '"' || *p == '`' || *p == '[') {
                        char close = *p == '[' ? ']' : *p;

                        out[o++] = *p++;
                        while (*p) {
                                out[o++] = *p;
                                if (*p++ == close) {
                                        if (*p == close && close != ']')
                                                out[o++] = *p++;
                                        else
                                                break;
                                }
                        }
                        continue;
                }
                out[o++] = (char) tolower((unsigned char) *p++);
        }
        while (o > 0 && (out[o - 1] == ';' || out[o - 1] == ' '))
                o--;
        out[o] = '\0';
        return out;
}

/* The end of the quoted part starting at p (p points at the quote), past its closing quote. */
static const char *skip_quoted(const char *p) {
        char close = *p == '[' ? ']' : *p;

        for (p++; *p; p++)
                if (*p == close) {
                        if (p[1] == close && close != ']')
                                p++;
                        else
                                return p + 1;
                }
        return p;
}

static bool is_quote(char c) {
        return c == '\'' || c == '"' || c == '`' || c == '[';
}

/* Whether the keyword kw starts at p, as a whole word. */
static bool keyword_at(const char *start, const char *p, const char *kw) {
        size_t n = strlen(kw);

        return strncmp(p, kw, n) == 0 && (p == start || !is_ident(p[-1])) && !is_ident(p[n]);
}

char *drift_sql_check(const char *norm, size_t n) {
        for (const char *p = norm; *p;) {
                if (is_quote(*p)) {
                        p = skip_quoted(p);
                        continue;
                }
                if (keyword_at(norm, p, "check")) {
                        const char *q = p + 5, *s;
                        int depth = 0;

                        if (*q == ' ')
                                q++;
                        if (*q != '(') {
                                p = q;
                                continue;
                        }
                        s = q;
                        for (; *q; q++) {
                                if (is_quote(*q)) {
                                        q = skip_quoted(q) - 1;
                                        continue;
                                }
                                if (*q == '(')
                                        depth++;
                                else if (*q == ')' && --depth == 0)
                                        break;
                        }
                        if (n-- == 0)
                                return *q ? strndup(s + 1, (size_t) (q - s - 1)) : NULL;
                        p = *q ? q + 1 : q;
                        continue;
                }
                p++;
        }
        return NULL;
}

char *drift_sql_where(const char *norm) {
        const char *found = NULL;
        int depth = 0;

        for (const char *p = norm; *p;) {
                if (is_quote(*p)) {
                        p = skip_quoted(p);
                        continue;
                }
                if (*p == '(')
                        depth++;
                else if (*p == ')')
                        depth--;
                else if (depth == 0 && keyword_at(norm, p, "where"))
                        found = p + 5;
                p++;
        }
        if (!found)
                return NULL;
        while (*found == ' ')
                found++;
        return strdup(found);
}
