/* SPDX-License-Identifier: MIT */
#pragma once

/* Output building blocks of migratectl: aligned text tables, the --json document, glyphs that
 * degrade to ASCII outside UTF-8 locales, and tolerant accessors for reply fields (a reply of an
 * unexpected shape renders as "-", never crashes). */

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "macro.h"

typedef struct table table;

/* A table whose first n_columns cells are the header row. */
table *table_new(size_t n_columns);
table *table_free(table *t);
DEFINE_TRIVIAL_CLEANUP_FUNC(table *, table_free);
/* Appends one cell (copied; NULL renders as "-"); rows fill left to right. Returns 0 or -ENOMEM. */
int table_add(table *t, const char *cell);
int table_addf(table *t, const char *fmt, ...) _printf_(2, 3);
size_t table_rows(const table *t); /* without the header */
/* Prints with columns aligned on display width, each line prefixed by indent. */
void table_print(const table *t, FILE *f, const char *indent);

/* The one JSON document of --json, on stdout. Returns 0 or -EIO. */
int output_json(json_t *doc);

/* Called once at start: decides the glyphs from the locale. */
void output_setup(void);
const char *glyph_arrow(void);    /* "→" or "->" */
const char *glyph_ellipsis(void); /* "…" or "..." */

/* Field accessors; NULL/false when the key is missing or of another type. */
const char *json_get_str(json_t *o, const char *key);
bool json_get_int(json_t *o, const char *key, int64_t *ret);
bool json_get_bool(json_t *o, const char *key, bool def);
json_t *json_get_array(json_t *o, const char *key);
size_t json_get_array_size(json_t *o, const char *key);

/* A schema version for display: the number, or "none" for null/missing. Returns buf. */
const char *fmt_version(json_t *o, const char *key, char buf[static 24]);
/* Any scalar field as text ("-" when missing or null; compact JSON for arrays/objects).
 * Returns a malloc'd string or NULL on OOM. */
char *fmt_field(json_t *o, const char *key);
/* "1 migration" / "3 migrations". Returns buf. */
const char *fmt_count(int64_t n, const char *noun, char buf[static 64]);
/* A size in bytes for people: "12.0 KiB", "4096 bytes" (--json keeps the raw number). Returns buf. */
const char *fmt_size(int64_t bytes, char buf[static 32]);

/* Colour: --color=auto (a terminal, and $NO_COLOR unset or empty), always or never. */
typedef enum color_mode {
        COLOR_AUTO,
        COLOR_ALWAYS,
        COLOR_NEVER,
} color_mode;

typedef enum color {
        COLOR_RED,    /* errors, problems */
        COLOR_GREEN,  /* what was done */
        COLOR_YELLOW, /* what is pending */
        COLOR_BOLD,
        _COLOR_MAX,
} color;

void output_set_color(color_mode mode);
/* The escape sequence that starts c on f, or "" when f gets no colour. */
const char *color_on(FILE *f, color c);
/* The one that ends it, or "". */
const char *color_off(FILE *f);
