/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <inttypes.h>
#include <langinfo.h>
#include <locale.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "output.h"

struct table {
        size_t n_columns;
        char **cells;
        size_t n_cells, allocated;
};

static bool utf8 = false;
static color_mode colors = COLOR_AUTO;

table *table_new(size_t n_columns) {
        table *t;

        if (n_columns == 0)
                return NULL;
        t = calloc(1, sizeof(*t));
        if (!t)
                return NULL;
        t->n_columns = n_columns;
        return t;
}

table *table_free(table *t) {
        if (!t)
                return NULL;
        for (size_t i = 0; i < t->n_cells; i++)
                free(t->cells[i]);
        free(t->cells);
        free(t);
        return NULL;
}

int table_add(table *t, const char *cell) {
        char *c;

        if (t->n_cells == t->allocated) {
                size_t n = t->allocated ? t->allocated * 2 : 16;
                char **m = realloc(t->cells, n * sizeof(*m));
                if (!m)
                        return -ENOMEM;
                t->cells = m;
                t->allocated = n;
        }
        c = strdup(cell ?: "-");
        if (!c)
                return -ENOMEM;
        t->cells[t->n_cells++] = c;
        return 0;
}

int table_addf(table *t, const char *fmt, ...) {
        _cleanup_free_ char *s = NULL;
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = vasprintf(&s, fmt, ap);
        va_end(ap);
        if (r < 0) {
                s = NULL;
                return -ENOMEM;
        }
        return table_add(t, s);
}

size_t table_rows(const table *t) {
        return t->n_cells / t->n_columns - (t->n_cells >= t->n_columns ? 1 : 0);
}

/* Display width of a UTF-8 string: code points, which is right for the ASCII and the few
 * one-column glyphs that migratectl prints. */
static size_t text_width(const char *s) {
        size_t w = 0;

        for (; *s; s++)
                if (((unsigned char) *s & 0xC0) != 0x80)
                        w++;
        return w;
}

/* Pads every column but the last to its widest cell, two spaces apart, no trailing blanks. */
void table_print(const table *t, FILE *f, const char *indent) {
        size_t n = t->n_columns, *width = calloc(n, sizeof(size_t));

        if (!width)
                return;
        for (size_t i = 0; i < t->n_cells; i++) {
                size_t w = text_width(t->cells[i]);
                if (w > width[i % n])
                        width[i % n] = w;
        }
        for (size_t i = 0; i < t->n_cells; i++) {
                size_t col = i % n;
                bool last = true;

                /* the last non-empty cell of a row ends the line, without padding */
                for (size_t j = i + 1; j < t->n_cells && j % n != 0; j++)
                        if (t->cells[j][0] != '\0')
                                last = false;

                if (col == 0)
                        fputs(indent ?: "", f);
                fputs(t->cells[i], f);
                if (last) {
                        fputc('\n', f);
                        i += n - 1 - col; /* skip the empty rest of the row */
                        continue;
                }
                for (size_t w = text_width(t->cells[i]); w < width[col] + 2; w++)
                        fputc(' ', f);
        }
        free(width);
}

int output_json(json_t *doc) {
        if (json_dumpf(doc, stdout, JSON_INDENT(2)) < 0 || fputc('\n', stdout) == EOF || fflush(stdout) != 0)
                return -EIO;
        return 0;
}

void output_setup(void) {
        const char *cs;

        if (!setlocale(LC_CTYPE, ""))
                return;
        cs = nl_langinfo(CODESET);
        utf8 = cs && (strcasecmp(cs, "UTF-8") == 0 || strcasecmp(cs, "utf8") == 0);
}

const char *glyph_arrow(void) {
        return utf8 ? "\xe2\x86\x92" : "->";
}

const char *glyph_ellipsis(void) {
        return utf8 ? "\xe2\x80\xa6" : "...";
}

const char *json_get_str(json_t *o, const char *key) {
        return json_string_value(json_object_get(o, key));
}

bool json_get_int(json_t *o, const char *key, int64_t *ret) {
        json_t *v = json_object_get(o, key);

        if (!json_is_integer(v))
                return false;
        *ret = (int64_t) json_integer_value(v);
        return true;
}

bool json_get_bool(json_t *o, const char *key, bool def) {
        json_t *v = json_object_get(o, key);

        return json_is_boolean(v) ? json_is_true(v) : def;
}

json_t *json_get_array(json_t *o, const char *key) {
        json_t *v = json_object_get(o, key);

        return json_is_array(v) ? v : NULL;
}

size_t json_get_array_size(json_t *o, const char *key) {
        return json_array_size(json_get_array(o, key));
}

const char *fmt_version(json_t *o, const char *key, char buf[static 24]) {
        int64_t v;

        if (json_get_str(o, key))
                return json_get_str(o, key); /* protocol version 2: the format's key, as is */
        if (!json_get_int(o, key, &v))
                return "none";
        snprintf(buf, 24, "%" PRId64, v);
        return buf;
}

char *fmt_field(json_t *o, const char *key) {
        json_t *v = json_object_get(o, key);
        char *s = NULL;

        if (!v) /* json_typeof() does not take NULL */
                return strdup("-");
        switch (json_typeof(v)) {
        case JSON_STRING:
                return strdup(json_string_value(v));
        case JSON_INTEGER:
                if (asprintf(&s, "%" JSON_INTEGER_FORMAT, json_integer_value(v)) < 0)
                        return NULL;
                return s;
        case JSON_REAL:
                if (asprintf(&s, "%g", json_real_value(v)) < 0)
                        return NULL;
                return s;
        case JSON_TRUE:
                return strdup("yes");
        case JSON_FALSE:
                return strdup("no");
        case JSON_OBJECT:
        case JSON_ARRAY:
                return json_dumps(v, JSON_COMPACT);
        default:
                return strdup("-");
        }
}

const char *fmt_count(int64_t n, const char *noun, char buf[static 64]) {
        snprintf(buf, 64, "%" PRId64 " %s%s", n, noun, n == 1 ? "" : "s");
        return buf;
}

/* "12.0 KiB", "4096 bytes". Returns buf. */
const char *fmt_size(int64_t bytes, char buf[static 32]) {
        static const char *const units[] = { "KiB", "MiB", "GiB", "TiB" };
        double v = (double) bytes;
        size_t u = 0;

        if (bytes < 1024) {
                snprintf(buf, 32, "%" PRId64 " bytes", bytes);
                return buf;
        }
        for (v /= 1024; v >= 1024 && u + 1 < ELEMENTSOF(units); u++)
                v /= 1024;
        snprintf(buf, 32, "%.1f %s", v, units[u]);
        return buf;
}

void output_set_color(color_mode mode) {
        colors = mode;
}

/* https://no-color.org: a set, non-empty NO_COLOR turns automatic colour off; so does a dumb
 * terminal. --color=always wins over both. */
static bool color_wanted(FILE *f) {
        const char *no_color = getenv("NO_COLOR"), *term = getenv("TERM");

        if (colors != COLOR_AUTO)
                return colors == COLOR_ALWAYS;
        if (no_color && *no_color)
                return false;
        if (term && streq(term, "dumb"))
                return false;
        return isatty(fileno(f));
}

const char *color_on(FILE *f, color c) {
        static const char *const sequences[_COLOR_MAX] = {
                [COLOR_RED] = "\033[1;31m",
                [COLOR_GREEN] = "\033[32m",
                [COLOR_YELLOW] = "\033[33m",
                [COLOR_BOLD] = "\033[1m",
        };

        return color_wanted(f) && c >= 0 && c < _COLOR_MAX ? sequences[c] : "";
}

const char *color_off(FILE *f) {
        return color_wanted(f) ? "\033[0m" : "";
}
