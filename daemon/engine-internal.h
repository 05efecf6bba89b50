/* SPDX-License-Identifier: MIT */
#pragma once

/* What engine.c and engine-backup.c share; nothing outside the engine includes this. */

#include <stdatomic.h>

#include "backups.h"
#include "dirwatch.h"
#include "engine.h"
#include "macro.h"
#include "migdir.h"

struct engine {
        char *database;
        char *migrations_dir;
        char *backup_dir;
        unsigned backup_keep;
        bool no_auto_backup;
        engine_integrity integrity;
        unsigned busy_timeout_ms;
        migdir_format format;
        char *format_reason; /* why this format: detected, or set in the configuration */
        db *db;
        migration_set *set;      /* the last good scan, reused to skip unchanged files */
        migdir_errors dir_errors; /* problems of the last scan */
        int dir_errno;            /* the directory itself could not be read */
        bool dir_items_only;      /* every problem is about one item: the others stay usable */
        dirwatch *watch;          /* whether the directory changed since that scan */
        uint64_t scans;           /* scans done: a cached view older than the last is stale */
        bool cache_status;        /* a read-only engine keeps its last status (engine-status.c) */
        json_t *status_cache;
        db_change_token status_token; /* the database when status_cache was built */
        db_change_token verified; /* the database as the last passing integrity check saw it */
        atomic_bool interrupted;
        _Atomic int stop_reason; /* engine_stop_reason */
        char *seeds_dir;
        unsigned seed_retries;
        unsigned seed_backoff_ms;
        bool allow_reset;
};

int engine_fail(engine_error *err, protocol_error_code code, json_t *extra, const char *fmt, ...) _printf_(4, 5);
int engine_fail_db(engine_error *err, db_failure *f, json_t *extra);

/* Whether the database path still names the file the engine has open (database_replaced). */
int engine_check_identity(engine *e, engine_error *err);

/* Rescans the directory and reads the applied set; then, for jobs, requires a valid directory and
 * builds the plan (refusals become err). */
int engine_load(engine *e, applied_set *applied, engine_error *err);
/* Rescans the directory when it changed since the last scan (e->scans counts the scans). */
int engine_scan(engine *e);
int engine_build_plan(engine *e, const plan_request *req, plan **ret, int64_t *ret_current, engine_error *err);

/* A migration job once the writer lock is held (engine-lock.c takes it: engine_run_plan). */
int engine_run_plan_locked(engine *e, const engine_job *job, bool take_backup, engine_progress_fn progress,
                           void *userdata, json_t **ret_result, engine_error *err);
/* Adds "applied_by" ({host, requested_by, at}) to a "current" result, when the history says. */
void engine_add_applied_by(engine *e, int64_t version, json_t *result);
/* In the transaction about to commit: on a shared server, every host is told at its commit. */
int engine_notify_commit(engine *e, int64_t version, db_failure *f);

/* Backup of the live database before a change; fills *ret_info ({file, path, size, ...}). */
int engine_take_backup(engine *e, uint64_t job_id, int64_t version, backup_kind kind, json_t **ret_info,
                       engine_error *err);

/* A private copy of the live database beside the backups (db_clone), for a rehearsal; the
 * caller removes it with db_clone_remove(). */
int engine_make_clone(engine *e, uint64_t job_id, char **ret_copy, engine_error *err);

/* Applies the retention rules to the backup directory (see engine-backup.c). */
void engine_prune_backups(engine *e);

/* Adds to an "irreversible" refusal the backup that undoes it and the restore command. */
void engine_explain_irreversible(engine *e, engine_error *err);

int engine_restore(engine *e, const engine_job *job, engine_progress_fn progress, void *userdata, json_t **ret_result,
                   engine_error *err);
int engine_rehearse(engine *e, const engine_job *job, json_t **ret_result, engine_error *err);
int engine_backup_now(engine *e, const engine_job *job, json_t **ret_result, engine_error *err);
int engine_check_restore(engine *e, const engine_job *job, engine_error *err);

/* engine-mark.c */
int engine_mark(engine *e, const engine_job *job, json_t **ret_result, engine_error *err);
int engine_baseline(engine *e, const engine_job *job, json_t **ret_result, engine_error *err);
int engine_repair(engine *e, const engine_job *job, json_t **ret_result, engine_error *err);
int engine_check_mark(engine *e, const engine_job *job, engine_error *err);

/* Requires the directory to be readable and valid now (jobs refuse otherwise). */
int engine_require_valid_directory(engine *e, engine_error *err);

/* engine_run's core, shared with rehearsal: take_backup false on a throwaway copy. */
int engine_run_plan(engine *e, const engine_job *job, bool take_backup, engine_progress_fn progress, void *userdata,
                    json_t **ret_result, engine_error *err);

/* engine-seed.c: the seed files not applied yet, each in its own transaction, retried on
 * transient failures; adds "seeds" ({applied, skipped, retries}) to result. */
int engine_seed(engine *e, const engine_job *job, engine_progress_fn progress, void *userdata, json_t *result,
                engine_error *err);
/* A seed job: the seeds alone, with the result {job_id, status: "seeded", seeds}. */
int engine_seed_job(engine *e, const engine_job *job, engine_progress_fn progress, void *userdata,
                    json_t **ret_result, engine_error *err);
/* up --seed: the seeds after a successful plan, into its *ret_result (dropped on failure). */
int engine_seed_after(engine *e, const engine_job *job, engine_progress_fn progress, void *userdata,
                      json_t **ret_result, engine_error *err);
/* The seeds directory a configuration without one uses: "seeds" beside the migrations directory. */
char *engine_default_seeds_dir(const char *migrations_dir);

/* engine-reset.c */
int engine_check_reset(engine *e, engine_error *err);
int engine_reset(engine *e, const engine_job *job, engine_progress_fn progress, void *userdata, json_t **ret_result,
                 engine_error *err);
/* The plan's classification ({class, steps: [...], findings, lint_errors}; classify.h), from the
 * live database's schema; a backend that cannot classify calls every step breaking. */
int engine_classify(engine *e, const plan *p, bool as_postgres, json_t **ret, engine_error *err);
/* The same, merged into a report_plan() object: each step gets class, rule, reason,
 * statements, findings; the plan gets class, findings, lint_errors. */
int engine_add_classification(engine *e, const plan *p, bool as_postgres, json_t *report, engine_error *err);
