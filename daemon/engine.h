/* SPDX-License-Identifier: MIT */
#pragma once

/* The migration engine: scans the directory, plans, applies and records, on top of db.h. An engine
 * belongs to one worker thread; engine_interrupt() is the only call allowed from another. */

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "db.h"
#include "plan.h"
#include "protocol.h"

typedef struct engine engine;

typedef enum engine_integrity {
        ENGINE_INTEGRITY_OFF,
        ENGINE_INTEGRITY_QUICK, /* PRAGMA quick_check */
        ENGINE_INTEGRITY_FULL,  /* PRAGMA integrity_check */
} engine_integrity;

typedef struct engine_options {
        const char *backend; /* a registered database backend; NULL: the default */
        const char *database; /* its target: a file path; a server's: its name, for the backups */
        const char *target;   /* a server's: the connection string; NULL: database */
        const char *password_file;
        const char *migrations_dir;
        unsigned busy_timeout_ms;
        bool read_only; /* the reader's engine: never writes */
        const char *backup_dir; /* NULL: no backups (rehearsal copies) */
        unsigned backup_keep;
        bool no_auto_backup; /* no backup before a change */
        engine_integrity integrity;
        migdir_format format; /* the migrations' layout and the matching bookkeeping */
        /* format was detected from the directory alone (format = auto): a database whose
         * history table another format claims decides instead */
        bool format_auto;
        const char *format_reason; /* why format, for status; NULL: set in the configuration */
        db_file_identity identity; /* the database file the daemon locked; unknown: whatever is there */
        /* The state directory's history.sqlite, for migrated's own tables when the format keeps
         * them out of the database (db_options.own_target); NULL: in the database. */
        const char *own_target;
        db_file_identity own_identity;
        /* seeds (engine-seed.c): NULL, "seeds" beside migrations_dir; how often a seed that met
         * a transient failure runs again, and the first pause (doubling) */
        const char *seeds_dir;
        unsigned seed_retries;
        unsigned seed_backoff_ms;
        bool allow_reset; /* [dev] allow_reset */
} engine_options;

/* A failure to hand back to the client: code, message, and details for scripts. */
typedef struct engine_error {
        protocol_error_code code;
        char *message;
        json_t *extra;
} engine_error;

void engine_error_clear(engine_error *e);

enum {
        ENGINE_FAILED = 1, /* *err says why */
};

int engine_new(const engine_options *o, engine **ret, engine_error *err);
/* The migrations' format the engine reads (and its bookkeeping): configured, detected from the
 * directory, or claimed by the database. */
migdir_format engine_format(const engine *e);
engine *engine_free(engine *e);

typedef enum engine_stop_reason {
        ENGINE_STOP_NONE,
        ENGINE_STOP_SHUTDOWN, /* recorded as "interrupted" */
        ENGINE_STOP_CANCEL,   /* recorded as "cancelled" */
} engine_stop_reason;

/* Safe from any thread: stops the running statement and makes the job roll back. */
void engine_interrupt(engine *e, engine_stop_reason why);

/* Whether and why the current job was asked to stop (for waits outside SQL, e.g. the holder
 * check). Safe from any thread. */
engine_stop_reason engine_stop_requested(engine *e);

/* The next request rescans the migrations directory and rereads every file (SIGHUP). */
void engine_rescan_directory(engine *e);

/* The backend the engine's database was opened with (set once: safe from any thread). */
const db_backend *engine_backend(engine *e);

/* Why the database is busy (lock-check), from the engine's thread. */
int engine_lock_report(engine *e, const char *target, json_t **ret_report);
/* On a shared server, adds "hosts" (hosts_list()) to a status document; nothing otherwise. */
int engine_add_hosts(engine *e, json_t *status);

/* Clears a stop request; called by the job's owner before a job starts. */
void engine_reset_stop(engine *e);

/* Marks attempts a dead predecessor left "running" as interrupted. Returns how many, or < 0. */
int engine_recover(engine *e, engine_error *err);

/* The highest job id recorded in the history or in a backup's name: new jobs continue after it,
 * so that a job id is never reused, also across restarts. */
uint64_t engine_last_job_id(engine *e);

/* Read views, each from a fresh scan of the directory and a fresh read of the database. */
int engine_status(engine *e, json_t **ret, engine_error *err);
int engine_plan(engine *e, const plan_request *req, json_t **ret, engine_error *err);
/* The plan's steps alone, without its classification (a job's own bookkeeping). */
int engine_plan_steps(engine *e, const plan_request *req, json_t **ret, engine_error *err);
int engine_history(engine *e, unsigned limit, json_t **ret, engine_error *err);
int engine_verify(engine *e, json_t **ret, engine_error *err);
/* Drift: the live schema against the applied migrations replayed on a scratch database
 * ({drift, replayed, differences}). */
int engine_diff(engine *e, json_t **ret, engine_error *err);
/* The current schema as SQL ({schema}), stable in order and formatting; with_history adds the
 * format's applied versions as INSERT statements. */
int engine_schema(engine *e, bool with_history, json_t **ret, engine_error *err);

typedef enum engine_job_kind {
        ENGINE_JOB_MIGRATE,  /* up or down, per request.direction */
        ENGINE_JOB_BACKUP,   /* an on-demand backup */
        ENGINE_JOB_RESTORE,  /* replace the database with a backup */
        ENGINE_JOB_REHEARSE, /* the plan applied to a throwaway copy */
        ENGINE_JOB_MARK_APPLIED,     /* record a migration as applied without running it */
        ENGINE_JOB_MARK_ROLLED_BACK, /* resolve a failed (Prisma) / forget an applied (ours) migration */
        ENGINE_JOB_BASELINE,         /* record everything up to a version as applied, on an empty history */
        ENGINE_JOB_REPAIR,           /* accept an applied migration's edited file: record its new checksum */
        ENGINE_JOB_SEED,             /* apply the seed files not applied yet (and the "always" ones) */
        ENGINE_JOB_RESET,            /* development: back up, drop everything, apply every migration, seed */
} engine_job_kind;

typedef struct engine_job {
        uint64_t id;
        engine_job_kind kind;
        plan_request request;
        bool per_migration;
        const char *requested_by;
        const char *backup; /* restore: the backup's file name; NULL: the newest */
        const char *target; /* mark, repair: the migration (version, name or file); baseline: the version */
        bool seed;          /* up --seed: the seeds after the migrations */
} engine_job;

const char *engine_job_kind_name(const engine_job *j);

/* The backups of this database, newest first: {"dir", "backups": [...]}. */
int engine_list_backups(engine *e, json_t **ret, engine_error *err);

/* Called on the engine's thread for each progress event; takes ownership of fields. */
typedef void (*engine_progress_fn)(void *userdata, const char *event, json_t *fields);
/* A shared server's writer lock, taken before a job's dependents are touched (it waits, telling
 * progress who holds it) and held until the job's plan ran or engine_unlock_writer(); whether the
 * backend has one at all. */
bool engine_has_writer_lock(engine *e);
int engine_lock_writer(engine *e, engine_progress_fn progress, void *userdata, engine_error *err);
void engine_unlock_writer(engine *e);

/* Whether the job would change the live database now (then the dependent units must be
 * stopped), or why it would be refused; checked before anything is touched. */
int engine_preview(engine *e, const engine_job *job, bool *ret_changes, engine_error *err);

/* Runs a job to the end. Migrations: plan, integrity check, backup, record the attempt, apply,
 * check, commit or roll back. */
int engine_execute(engine *e, const engine_job *job, engine_progress_fn progress, void *userdata,
                   json_t **ret_result, engine_error *err);

/* The plan with everything a dry run shows: SQL, transaction groups, the backup to take. */
int engine_dry_run(engine *e, const plan_request *req, json_t **ret, engine_error *err);

/* Whether a migration job may run with its dependents running (classify.h): its plan is online
 * and, rehearsed on a copy, holds the write lock at most bound_ms. *ret_report: {class, decision:
 * online | stop (breaking) | over_bound, reason, bound_ms, lock_ms, slowest: {file, sql, ms}}. */
int engine_online_check(engine *e, const engine_job *job, unsigned bound_ms, json_t **ret_report, engine_error *err);
