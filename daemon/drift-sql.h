/* SPDX-License-Identifier: MIT */
#pragma once

/* SQL text helpers for the drift comparison: normalization and the pieces of a CREATE statement
 * that no PRAGMA reports (CHECK expressions, a partial index's WHERE). */

#include <stddef.h>

/* A copy of sql without comments, white space collapsed (none around punctuation), lower case
 * outside quotes, no trailing ';'. NULL on ENOMEM. */
char *drift_sql_normalize(const char *sql);

/* In normalized SQL: the expression of the n-th (0-based) CHECK (…), as a new string; NULL when
 * there is none (or on ENOMEM). */
char *drift_sql_check(const char *norm, size_t n);

/* In a normalized CREATE INDEX: the WHERE expression at paren depth 0, as a new string; NULL
 * when there is none. */
char *drift_sql_where(const char *norm);
