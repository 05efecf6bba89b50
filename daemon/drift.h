/* SPDX-License-Identifier: MIT */
#pragma once

/* Drift: the live schema against the schema the applied migrations produce, replayed on a
 * scratch in-memory SQLite database, compared structurally (tables, columns, indexes, triggers,
 * views, foreign keys, CHECK constraints), never as a text diff of sqlite_master. The bodies of
 * triggers and views, partial-index WHERE clauses, CHECK expressions and defaults are compared
 * as normalized SQL text (comments dropped, white space collapsed, lower case outside quotes).
 * Implemented in db-sqlite-drift.c, part of the db layer (the only code that calls sqlite3). */

#include <jansson.h>
#include <stddef.h>

enum {
        DRIFT_REPLAY_FAILED = 1, /* a script failed on the scratch database: *ret_error says which */
        DRIFT_LIVE_FAILED = 2,   /* the live database could not be read: *ret_error says why */
};

typedef struct drift_script {
        const char *file; /* for messages */
        const char *sql;
} drift_script;

/* Replays scripts in order on a scratch database and compares it with the live SQLite database
 * at live_path, leaving out skip_tables (NULL-terminated) and their indexes and triggers.
 * Returns 0 with *ret_differences ([{kind: added|removed|changed, object, detail}], sorted by
 * object; "added" is in the live database only), a positive DRIFT_* with *ret_error, or -errno. */
int drift_sqlite(const char *live_path, const drift_script *scripts, size_t n, const char *const *skip_tables,
                 json_t **ret_differences, char **ret_error);
