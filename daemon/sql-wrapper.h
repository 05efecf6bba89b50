/* SPDX-License-Identifier: MIT */
#pragma once

/* Scripts that carry their own transaction: BEGIN; … COMMIT; around the whole file, as many
 * golang-migrate, goose and hand-written migrations do. Statements are delimited by SQLite's own
 * tokenizer (sqlite3_complete), so a trigger's BEGIN … END, a string or a comment holding ';'
 * never counts as a statement boundary. */

#include <stdbool.h>
#include <stddef.h>

/* Skips white space and SQL comments from p, to where a statement really starts. */
const char *sql_skip_blank(const char *p, const char *end);
/* Whether the word at p is kw (case-insensitive, not followed by an identifier character). */
bool sql_keyword_is(const char *p, const char *end, const char *kw);

/* Whether the script's first statement is BEGIN [DEFERRED|IMMEDIATE|EXCLUSIVE] [TRANSACTION]
 * and its last is COMMIT or END [TRANSACTION]. Returns 1 with the statements between them at
 * [*ret_body_start, *ret_body_end) (offsets into sql), 0 when it is not so wrapped, -ENOMEM. */
int sql_find_wrapper(const char *sql, size_t size, size_t *ret_body_start, size_t *ret_body_end);
