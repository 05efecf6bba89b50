/* SPDX-License-Identifier: MIT */
#pragma once

/* Drift: the live schema against the schema the applied migrations produce, replayed on a
 * scratch database (SQLite: in memory; PostgreSQL: a temporary database on the same server),
 * compared structurally (tables, columns, indexes, triggers,
 * views, foreign keys, CHECK constraints), never as a text diff of sqlite_master. The bodies of
 * triggers and views, partial-index WHERE clauses, CHECK expressions and defaults are compared
 * as normalized SQL text (comments dropped, white space collapsed, lower case outside quotes).
 * Each backend reads its catalog into the same shape (db-sqlite-drift.c, db-postgres-drift.c,
 * part of the db layer); drift-compare.c compares two such schemas whatever their backend. */

#include <jansson.h>
#include <stdbool.h>
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

/* Adds object ("column t.c") with its attributes (the reference is taken; NULL: ENOMEM) to a
 * schema; owner: the table it belongs to, so that an object whose table is only on one side is
 * reported with that table rather than on its own. */
int drift_put(json_t *schema, const char *object, const char *owner, json_t *attrs);

/* The differences from want (the replayed schema) to live, as drift_sqlite() returns them. */
int drift_compare(json_t *live, json_t *want, json_t **ret);

/* Whether table is one of skip (NULL-terminated; case-insensitive, as SQL names are). */
bool drift_skipped(const char *const *skip, const char *table);
