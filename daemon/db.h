/* SPDX-License-Identifier: MIT */
#pragma once

/* The database interface. Every SQL-dialect and locking detail lives behind it, so that a
 * PostgreSQL backend can follow the SQLite one: the engine only says "begin", "run this script",
 * "record this", "commit". One db handle belongs to one thread; only db_interrupt() may be called
 * from another. */

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "migdir.h"
#include "plan.h"
#include "protocol.h"

typedef struct db db;
typedef struct drift_script drift_script;

/* An expected failure, described for the user. Functions return DB_FAILED with it filled. */
typedef struct db_failure {
        protocol_error_code code; /* MIGRATION_FAILED, BUSY, INTERRUPTED, FOREIGN_KEY_VIOLATION, DATABASE */
        char *message;
        unsigned line; /* exec_script: 1-based line of the failure in the script, 0 if unknown */
        bool retry; /* a lock timeout or deadlock: nothing is wrong with the SQL, the plan may run again */
        /* a server's connection was lost: the transaction is gone; db_check_identity() opens it
         * again between transactions (seeds retry after that) */
        bool connection_lost;
} db_failure;

enum {
        DB_FAILED = 1,
};

void db_failure_clear(db_failure *f);

/* A file's identity: device and inode, not the spelling of its path. */
typedef struct db_file_identity {
        bool known;
        dev_t dev;
        ino_t ino;
} db_file_identity;

typedef struct db_options {
        const char *backend; /* a registered backend's name; NULL: DB_BACKEND_DEFAULT */
        const char *target;  /* what the backend opens: a file path, a connection string */
        unsigned busy_timeout_ms;
        bool read_only;
        migdir_format format; /* which bookkeeping: migrated_schema or Prisma's _prisma_migrations */
        /* When set, long statements poll it and stop (rolled back) once it turns true. */
        atomic_bool *cancel;
        /* The file the daemon locked: the connection must have opened this one. */
        db_file_identity identity;
        /* A file holding the password (servers); NULL: none, or the target says. */
        const char *password_file;
        /* A SQLite file (the state directory's history.sqlite) for migrated's own tables when the
         * format keeps them out of the application database (db_format_keeps_own_tables() false),
         * and the identity it must have; NULL: they stay in the application database. */
        const char *own_target;
        db_file_identity own_identity;
} db_options;

/* The small parameterised query API every backend provides, over which the history layer
 * (history.h) writes each format's bookkeeping once for every backend. Parameters are written
 * ?1 … ?N in the SQL; a backend whose dialect spells them otherwise translates. */
typedef enum db_value_type {
        DB_VALUE_NULL,
        DB_VALUE_INT,
        DB_VALUE_TEXT,
} db_value_type;

typedef struct db_value {
        db_value_type type;
        int64_t i;
        const char *s; /* DB_VALUE_TEXT; valid during the row callback only */
} db_value;

#define DB_NULL ((db_value) { .type = DB_VALUE_NULL })
#define DB_INT(v) ((db_value) { .type = DB_VALUE_INT, .i = (v) })
#define DB_TEXT(v) db_value_text(v)

/* Text, or NULL when s is NULL. */
static inline db_value db_value_text(const char *s) {
        return (db_value) { .type = s ? DB_VALUE_TEXT : DB_VALUE_NULL, .s = s };
}

/* Called while the writer lock is held by someone else, with who holds it (a JSON object). */
typedef void (*db_wait_fn)(void *userdata, json_t *holder);

/* Called for each row of a query; a non-zero return stops the query and is returned. */
typedef int (*db_row_fn)(const db_value *cols, size_t n, void *userdata);

typedef struct db_attempt {
        uint64_t job_id;
        const char *direction; /* "up" / "down" */
        int64_t from_version;
        int64_t to_version;
        const char *versions; /* JSON array text of the planned versions */
        const char *requested_by;
} db_attempt;

/* A job that is not a migration (restore, mark, baseline), recorded as one succeeded attempt. */
typedef struct db_event {
        uint64_t job_id;
        const char *direction;
        int64_t from_version;
        int64_t to_version;
        const char *detail;
        const char *requested_by;
} db_event;

/* A backend: one file (or a few) and one row in db.c's registry. Every operation above the
 * "optional" line is required; an optional one left NULL means "this backend cannot", and its
 * wrapper answers -EOPNOTSUPP (or false) so that the caller can say so or skip it. */
/* What one connection can tell of the database's committed content: equal tokens, taken on the
 * same connection, mean that nothing was committed in between, by this connection or any other
 * (same files, sizes, mtimes, SQLite's data_version and the connection's own change count). */
#define DB_CHANGE_TOKEN_WORDS 10
typedef struct db_change_token {
        bool known;
        uint64_t main[DB_CHANGE_TOKEN_WORDS];
        uint64_t own[DB_CHANGE_TOKEN_WORDS]; /* of db.own, when migrated's tables live apart */
        uint64_t others; /* commits by other connections (SQLite's data_version) */
} db_change_token;

typedef struct db_backend {
        const char *name;
        /* The suffix of its backup files ("<db>-<time>-v<version>-job<id>.sqlite"). */
        const char *backup_suffix;

        /* ---- the connection ---- */
        int (*open)(const db_options *o, db **ret, db_failure *f);
        void (*close)(db *d);
        void (*interrupt)(db *d);
        int (*begin)(db *d, db_failure *f);
        int (*commit)(db *d, db_failure *f);
        void (*rollback)(db *d);
        int (*exec_script)(db *d, const char *sql, size_t size, bool in_transaction, db_failure *f);
        int (*check_foreign_keys)(db *d, db_failure *f);
        /* Whether the target still names the database the connection has open; DB_FAILED
         * (database_replaced) otherwise. */
        int (*check_identity)(db *d, db_failure *f);

        /* ---- the query API of the history layer ---- */
        /* Runs one statement with params, calling row (when given) for each result row; the
         * number of rows it changed goes to *ret_changes when given. what prefixes a failure. */
        int (*query)(db *d, const char *sql, const db_value *params, size_t n_params, db_row_fn row, void *userdata,
                     int64_t *ret_changes, db_failure *f, const char *what);
        int (*table_exists)(db *d, const char *name, bool *ret, db_failure *f);
        /* Whether the database has tables of its own: none but the backend's and those named. */
        int (*has_user_tables)(db *d, const char *const *bookkeeping, bool *ret);

        /* ---- backups ---- */
        /* An online, consistent copy of the whole database into the empty file at path, which the
         * caller created exclusively and holds open as fd, and makes durable (fsync) itself. */
        int (*backup_to)(db *d, const char *path, int fd, db_failure *f);
        /* Replaces the database's content with the backup at path, in one transaction, keeping the
         * live history (every attempt survives a restore) and recording ev in the same transaction.
         * ev NULL: migrated's own tables live in another database (db.own), so none is carried
         * and any the backup holds (from an earlier migrated) is dropped from the restored copy.
         * scratch is an empty file the caller created exclusively (a working copy of the backup). */
        int (*restore_from)(db *d, const char *path, const char *scratch, const db_event *ev, db_failure *f);
        /* Whether the open regular file fd (of size st_size) is a complete backup: a file cut
         * short by a crash (or empty) is never offered as a backup. */
        bool (*backup_complete)(int fd, uint64_t size);

        /* ---- optional: NULL means this backend cannot ---- */
        /* Adds backend-specific facts to the status object (SQLite: journal_mode). */
        int (*info)(db *d, json_t *status);
        /* A quick (full: thorough) integrity check; DB_FAILED names the problem. */
        int (*check_integrity)(db *d, bool full, db_failure *f);
        /* The database's logical size in bytes. */
        int (*size)(db *d, uint64_t *ret_bytes);
        /* Reads what a backup file holds: whether it is a readable database of ours, its version
         * (-1: it cannot tell, and the version its name records stands). */
        int (*inspect_backup)(const char *path, bool full_check, int64_t *ret_version, char **ret_problem);
        /* A private, consistent clone of the database to rehearse on, created exclusively in the
         * directory dirfd (path dir) under a name starting with stem; *ret_target opens it. */
        int (*clone)(db *d, int dirfd, const char *dir, const char *stem, char **ret_target, db_failure *f);
        /* Removes a clone made by clone() and whatever the backend kept beside it. */
        void (*clone_remove)(const char *target);
        /* What a backup of target will need on disk, without a connection (preflight). */
        int (*disk_size)(const char *target, uint64_t *ret_bytes);
        /* The processes other than ours that have the database open: how many, described for
         * people ("pid 123 (node, app.service: db, -wal)") and as a JSON array. */
        int (*find_holders)(const char *target, size_t *ret_n, char **ret_description, json_t **ret_holders);
        /* Why the database is busy: a lock-check report, with an "action" sentence. */
        int (*lock_report)(const char *target, json_t **ret_report);
        /* The writer lock of a shared server, held from lock() to unlock() across the job's
         * transactions; waiting calls wait with the holder. NULL: the backend's own locking. */
        int (*lock)(db *d, db_wait_fn wait, void *userdata, db_failure *f);
        void (*unlock)(db *d);
        /* lock_report through the open connection (a server's credentials are the connection's);
         * NULL: lock_report from the target. */
        int (*lock_report_live)(db *d, json_t **ret_report);
        /* lock() without waiting: *ret_got tells whether it is held now. */
        int (*try_lock)(db *d, bool *ret_got, db_failure *f);
        /* Drops every schema object but migrated's own history tables (migrated_attempts,
         * migrated_meta, migrated_hosts), inside the caller's write transaction: migratectl reset. */
        int (*reset)(db *d, db_failure *f);
        /* Drift (drift.h): replays scripts on a scratch database and compares its schema with the
         * live one's (target: what the connection opened), leaving out the tables in skip. */
        int (*drift)(db *d, const char *target, const drift_script *scripts, size_t n, const char *const *skip,
                     json_t **ret_differences, char **ret_error);
        /* The schema as SQL, stable in order and formatting (it is kept in git and diffed),
         * leaving out the tables in skip; history (NULL: none): a table whose rows follow as
         * INSERT statements. */
        int (*schema_dump)(db *d, const char *const *skip, const char *history, FILE *out, db_failure *f);
        /* optional: a token of the committed content (see db_change_token) */
        int (*change_token)(db *d, uint64_t ret[static DB_CHANGE_TOKEN_WORDS], uint64_t *ret_others);
        /* optional: begin() for a transaction whose commit survives a crash of the process but
         * reaches the disk only with the next synced commit on the same database (SQLite in WAL
         * mode: synchronous=NORMAL for that one commit; PostgreSQL: synchronous_commit off for
         * that transaction); NULL or not applicable: begin(). */
        int (*begin_unsynced)(db *d, db_failure *f);
} db_backend;

typedef struct history_format history_format;

struct db {
        const db_backend *backend;
        const history_format *history; /* the bookkeeping of o->format, set by db_open() */
        db *own; /* migrated_attempts and migrated_meta, when apart (db_options.own_target); NULL: here */
};

/* Whether the format keeps migrated_attempts and migrated_meta in the application database
 * (native) rather than in the state directory's history.sqlite (every other format). */
bool db_format_keeps_own_tables(migdir_format format);

#define DB_BACKEND_DEFAULT "sqlite"

/* The registered backend of that name (NULL: the default); NULL when there is none. */
const db_backend *db_backend_find(const char *name);
/* The registered backends, for the contract test and the documentation. */
const db_backend *const *db_backends(size_t *ret_n);

/* Opens o->target with the backend named o->backend (NULL: the default). */
int db_open(const db_options *o, db **ret, db_failure *f);
void db_close(db *d);
void db_closep(db **d);
const db_backend *db_get_backend(db *d);
/* Whether d speaks PostgreSQL's dialect: the history modules' hook where a tool's DDL or values
 * differ there (booleans, timestamps). */
bool db_dialect_postgres(db *d);

void db_interrupt(db *d);
int db_begin(db *d, db_failure *f);
int db_commit(db *d, db_failure *f);
/* A transaction whose commit is not waited for on disk: only for a record that the job's own
 * synced commit on the same database follows (see db_backend.begin_unsynced). */
int db_begin_unsynced(db *d, db_failure *f);
void db_rollback(db *d);
int db_exec_script(db *d, const char *sql, size_t size, bool in_transaction, db_failure *f);
int db_check_foreign_keys(db *d, db_failure *f);
int db_check_identity(db *d, db_failure *f);

int db_query(db *d, const char *sql, const db_value *params, size_t n_params, db_row_fn row, void *userdata,
             int64_t *ret_changes, db_failure *f, const char *what);
int db_table_exists(db *d, const char *name, bool *ret, db_failure *f);

/* Bookkeeping (history.h implements it per format over the query API). */
int db_load_applied(db *d, applied_set *ret, db_failure *f);
int db_record_applied(db *d, const migration *m, int64_t duration_ms, db_failure *f);
int db_remove_applied(db *d, const migration *m, db_failure *f);
int db_attempt_begin(db *d, const db_attempt *a, int64_t *ret_id, db_failure *f);
int db_attempt_finish(db *d, int64_t id, const char *status, const char *error, const char *error_file,
                      unsigned error_line, db_failure *f);
int db_history(db *d, unsigned limit, json_t **ret, db_failure *f);
/* Upgrades migrated's own tables in place, then marks attempts left running as interrupted. */
int db_recover_interrupted(db *d, unsigned *ret_count, db_failure *f);
/* The highest job id in the history (0 when none), so that job ids are never reused. */
int db_max_job_id(db *d, uint64_t *ret, db_failure *f);
/* Records a job that is not a migration (restore, mark, baseline) as one succeeded attempt. */
int db_record_event(db *d, const db_event *ev, db_failure *f);
/* Whether migrated's own tables live apart from the database (db.own): a job's record then
 * cannot share the database's transaction and is written once that has committed. */
bool db_history_apart(db *d);
/* Bookkeeping without running anything (Prisma's migrate resolve, baselines). */
int db_mark_applied(db *d, const migration *m, db_failure *f);
int db_mark_rolled_back(db *d, const migration *m, db_failure *f);
/* The history table of the connection's format ("migrated_schema", "schema_migrations"). */
const char *db_history_table(db *d);
/* When the database has the history table of a format that claims it by its columns
 * (golang-migrate's schema_migrations with its dirty column), switches the connection's
 * bookkeeping to that format and sets *ret to it; otherwise leaves *ret alone. */
int db_adopt_claimed_format(db *d, migdir_format *ret, db_failure *f);
/* Records the file's current checksum for an applied migration (repair). */
int db_repair_checksum(db *d, const migration *m, db_failure *f);
/* Whether the database has tables of its own (not the backend's, not bookkeeping). */
int db_has_user_tables(db *d, bool *ret);

int db_backup_to(db *d, const char *path, int fd, db_failure *f);
int db_restore_from(db *d, const char *path, const char *scratch, const db_event *ev, db_failure *f);

/* Optional operations: -EOPNOTSUPP when the backend cannot. */
int db_info(db *d, json_t *status);
/* ret->known false when the backend cannot tell (then nothing may be assumed unchanged). */
void db_change_token_get(db *d, db_change_token *ret);
bool db_change_token_equal(const db_change_token *a, const db_change_token *b);
/* The same, for the database alone (not migrated's own tables kept apart). */
bool db_change_token_same_database(const db_change_token *a, const db_change_token *b);
int db_check_integrity(db *d, bool full, db_failure *f);
int db_size(db *d, uint64_t *ret_bytes);
int db_inspect_backup(const db_backend *b, const char *path, bool full_check, int64_t *ret_version,
                      char **ret_problem);
int db_clone(db *d, int dirfd, const char *dir, const char *stem, char **ret_target, db_failure *f);
void db_clone_remove(const db_backend *b, const char *target);
int db_disk_size(const db_backend *b, const char *target, uint64_t *ret_bytes);
int db_find_holders(const db_backend *b, const char *target, size_t *ret_n, char **ret_description,
                    json_t **ret_holders);
int db_lock_report(const db_backend *b, const char *target, json_t **ret_report);
/* The lock report, through d's connection when its backend can, else from the target. */
int db_lock_report_live(db *d, const char *target, json_t **ret_report);
/* The writer lock for a job (nothing for a backend without one). */
int db_lock(db *d, db_wait_fn wait, void *userdata, db_failure *f);
void db_unlock(db *d);
/* The writer lock if it is free now (*ret_got); a backend without one: always got. */
int db_try_lock(db *d, bool *ret_got, db_failure *f);

/* Runs change in a write transaction of d, with record (migrated's bookkeeping of it) in the same
 * transaction, or, when migrated's tables live apart (d->own), once it has committed: never a
 * record of a change that was rolled back. */
int db_change_and_record(db *d, int (*change)(db *d, void *userdata, db_failure *f),
                         int (*record)(db *d, void *userdata, db_failure *f), void *userdata, db_failure *f);

/* Drops every schema object but migrated's history in one transaction that records ev (reset),
 * and forgets the applied seeds where they are recorded apart. */
int db_reset(db *d, const db_event *ev, db_failure *f);
/* Drift and the schema dump (see db_backend); -EOPNOTSUPP when the backend cannot. */
int db_drift(db *d, const char *target, const drift_script *scripts, size_t n, const char *const *skip,
             json_t **ret_differences, char **ret_error);
int db_schema_dump(db *d, const char *const *skip, const char *history, char **ret_sql, db_failure *f);

/* Current time as ISO 8601 UTC with milliseconds, for the history tables. */
void db_timestamp(char buf[32]);
