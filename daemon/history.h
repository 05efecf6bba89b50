/* SPDX-License-Identifier: MIT */
#pragma once

/* The bookkeeping, apart from the connection: which migrations are applied (one implementation
 * per migration format: history-native.c, history-prisma.c) and migrated's own attempt history
 * with its schema version (history-attempts.c). All of it is written over db.h's query API, so
 * that each format's table serves every backend. db.c dispatches to it; nothing else calls it. */

#include "db.h"
#include "macro.h"

struct history_format {
        migdir_format format;
        const char *table; /* its applied-set table */
        int (*claims)(db *d, bool *ret, db_failure *f); /* whether the database's table is this format's, by its columns; NULL: its name suffices */
        /* Creates the table when absent; the caller holds a write transaction. */
        int (*ensure)(db *d, db_failure *f);
        int (*load_applied)(db *d, applied_set *ret, db_failure *f);
        int (*record_applied)(db *d, const migration *m, int64_t duration_ms, db_failure *f);
        int (*remove_applied)(db *d, const migration *m, db_failure *f);
        /* Bookkeeping without running the script (the table exists, a write transaction is open);
         * NULL: history_mark_applied_once() and history_mark_rolled_back_once(), for a format
         * without a failed state. */
        int (*mark_applied)(db *d, const migration *m, db_failure *f);
        int (*mark_rolled_back)(db *d, const migration *m, db_failure *f);
        /* migrated_attempts and migrated_meta live in the application database itself (native
         * only, as they always have); false, the default: in the daemon's state directory, so that
         * a foreign tool's view of the database holds no table of ours. */
        bool own_tables_in_database;
        /* Records m's current checksum for its applied row (repair); NULL: the format has none to repair. */
        int (*repair_checksum)(db *d, const migration *m, db_failure *f);
};

extern const history_format history_native;
extern const history_format history_prisma;
extern const history_format history_goose;
extern const history_format history_golang_migrate;
extern const history_format history_flyway;
extern const history_format history_dbmate;

/* The history of format; NULL when none is registered. */
const history_format *history_find(migdir_format format);

/* The version a database of any format is at: from the first format whose table it has; 0 when
 * it has none (a database that never saw a migration). */
int history_version_of(db *d, int64_t *ret, db_failure *f);

/* The first format that claims the database's history table by its columns (one with a claims
 * member), or *ret = NULL. */
int history_claimed(db *d, const history_format **ret, db_failure *f);

/* Every table the bookkeeping of any format may own, NULL-terminated: not the user's. */
extern const char *const history_tables[];
/* migrated's own tables, which are no format's (NULL-terminated). */
extern const char *const history_own_tables[];

/* The applied set read by sql, one row_fn call per row (userdata: the applied_set being
 * filled); empty when table does not exist yet. */
int history_load(db *d, const char *table, const char *sql, db_row_fn row, applied_set *ret, db_failure *f,
                 const char *what);

/* Whether version is applied by h's rule. */
int history_is_applied(db *d, const history_format *h, int64_t version, bool *ret, db_failure *f);
/* mark applied for a format without a failed state: a record as if it ran, refused when the
 * migration is already applied. */
int history_mark_applied_once(db *d, const history_format *h, const migration *m, db_failure *f);
/* mark rolled-back for a format without a failed state: forgets an applied migration reverted
 * by hand (h's remove), refused when it is not applied. */
int history_mark_rolled_back_once(db *d, const history_format *h, const migration *m, db_failure *f);

/* Whether table has column (both plain identifiers), by a query that names it: run inside a
 * savepoint rolled back, so that its failure never ends the caller's transaction on a backend
 * that aborts on any error. */
int history_has_column(db *d, const char *table, const char *column, bool *ret, db_failure *f);

/* Appends a zeroed item to a's applied migrations and returns it, or NULL. */
applied_migration *history_add_applied(applied_set *a);

/* Sorts a's applied migrations by version, for a table read in another order. */
void history_sort_applied(applied_set *a);

/* Adds name to the failed migrations of a, once. */
int history_add_failed(applied_set *a, const char *name);

/* An expected refusal of a bookkeeping request (state_conflict), described by fmt. */
int history_refuse(db_failure *f, const char *fmt, ...) _printf_(2, 3);

/* ---- history-attempts.c: migrated_attempts and migrated_meta ---- */

/* The database that holds migrated's own tables for d: d->own when they live apart, else d. */
static inline db *history_own(db *d) {
        return d->own ?: d;
}

/* The layout of migrated's own tables that this build writes; older ones are upgraded in place. */
#define HISTORY_SCHEMA_VERSION 2

/* The column definitions of migrated_attempts, "( … )", for CREATE TABLE. */
extern const char history_attempts_columns[];
#define HISTORY_ATTEMPT_COLUMNS                                                                                     \
        "id, job_id, direction, status, from_version, to_version, versions, error, error_file, error_line, "     \
        "started_at, finished_at, requested_by, detail"

/* The format's table, then (when they live in d) the attempts and meta tables at the current
 * layout (upgrading an older one); the caller holds a write transaction on d. */
int history_ensure(db *d, db_failure *f);
/* The layout version recorded in the database: 0 when it has no tables of ours, 1 for the
 * unversioned layout that came before migrated_meta. */
int history_schema_version(db *d, int64_t *ret, db_failure *f);
/* Upgrades an existing older layout, in its own transaction; nothing when there is none. */
int history_upgrade(db *d, db_failure *f);

int history_attempt_begin(db *d, const db_attempt *a, int64_t *ret_id, db_failure *f);
int history_attempt_finish(db *d, int64_t id, const char *status, const char *error, const char *error_file,
                           unsigned error_line, db_failure *f);
int history_attempts(db *d, unsigned limit, json_t **ret, db_failure *f);
/* Who applied version, as the last succeeded attempt that went up to it says: its requested_by
 * and finished_at (*ret NULL when no attempt says so). */
int history_applied_by(db *d, int64_t version, json_t **ret, db_failure *f);
/* Moves migrated_attempts and migrated_meta that an earlier migrated left in d to history_own(d)
 * (when that is another database), then marks attempts left running as interrupted. */
int history_recover_interrupted(db *d, unsigned *ret_count, db_failure *f);
int history_record_event(db *d, const db_event *ev, db_failure *f);
/* Moves the attempts and meta tables an earlier migrated left in app into own (see
 * history_recover_interrupted); nothing when app has none. */
int history_move_own(db *app, db *own, db_failure *f);
int history_max_job_id(db *d, uint64_t *ret, db_failure *f);
