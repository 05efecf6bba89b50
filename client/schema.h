/* SPDX-License-Identifier: MIT */
#pragma once

/* `migratectl schema`: the daemon's schema dump, printed or written to a file. */

#include <jansson.h>

/* Prints the result's "schema" text as it is. */
int render_schema(json_t *result);

/* Writes the result's "schema" text to path atomically (a temporary file beside it, made
 * durable, then renamed over it), so that a reader (git, a build) never sees half a dump; with
 * --json the result is printed too. Returns an exit code; errors are printed. */
int schema_write_file(const char *path, json_t *result);
