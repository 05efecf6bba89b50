/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backups.h"
#include "engine-internal.h"
#include "log.h"
#include "macro.h"
#include "migdir-format.h"
#include "report.h"


void engine_error_clear(engine_error *e) {
        if (!e)
                return;
        free(e->message);
        json_decref(e->extra);
        memset(e, 0, sizeof(*e));
}

int engine_fail(engine_error *err, protocol_error_code code, json_t *extra, const char *fmt, ...) {
        va_list ap;

        engine_error_clear(err);
        err->code = code;
        err->extra = extra;
        va_start(ap, fmt);
        if (vasprintf(&err->message, fmt, ap) < 0)
                err->message = NULL;
        va_end(ap);
        return err->message ? ENGINE_FAILED : -ENOMEM;
}

int engine_fail_db(engine_error *err, db_failure *f, json_t *extra) {
        int r = engine_fail(err, f->code, extra, "%s", f->message ?: "database error");

        db_failure_clear(f);
        return r;
}

/* A directory that reads as native may belong to another tool whose history table the database
 * has (golang-migrate's NNNN_title.up.sql are native names too): the table decides. */
static int choose_format(engine *e, const engine_options *o, db_failure *f) {
        migdir_format claimed = e->format;
        int r;

        if (o->format_auto && e->format == MIGDIR_NATIVE) {
                r = db_adopt_claimed_format(e->db, &claimed, f);
                if (r != 0)
                        return r;
        }
        if (claimed != e->format) {
                e->format = claimed;
                r = asprintf(&e->format_reason, "the database has %s's history table %s",
                             migdir_format_to_string(claimed), db_history_table(e->db));
        } else if (o->format_auto)
                r = asprintf(&e->format_reason, "detected from the directory: %s", o->format_reason ?: "");
        else
                r = asprintf(&e->format_reason, "set in the configuration");
        if (r < 0) {
                e->format_reason = NULL;
                return -ENOMEM;
        }
        return 0;
}

int engine_new(const engine_options *o, engine **ret, engine_error *err) {
        _cleanup_free_ engine *e = NULL;
        db_failure f = {};
        int r;

        e = calloc(1, sizeof(*e));
        if (!e)
                return -ENOMEM;
        db_options dbo = { .backend = o->backend, .target = o->target ?: o->database,
                           .busy_timeout_ms = o->busy_timeout_ms, .read_only = o->read_only,
                           .cancel = &e->interrupted, .format = o->format, .identity = o->identity,
                           .password_file = o->password_file, .own_target = o->own_target,
                           .own_identity = o->own_identity };
        e->database = strdup(o->database);
        e->migrations_dir = strdup(o->migrations_dir);
        e->backup_dir = o->backup_dir ? strdup(o->backup_dir) : NULL;
        e->backup_keep = o->backup_keep;
        e->no_auto_backup = o->no_auto_backup;
        e->integrity = o->integrity;
        e->busy_timeout_ms = o->busy_timeout_ms;
        e->format = o->format;
        e->seeds_dir = o->seeds_dir ? strdup(o->seeds_dir) : engine_default_seeds_dir(o->migrations_dir);
        e->seed_retries = o->seed_retries;
        e->seed_backoff_ms = o->seed_backoff_ms ?: 200;
        e->allow_reset = o->allow_reset;
        e->cache_status = o->read_only;
        if (!e->seeds_dir || !e->database || !e->migrations_dir || (o->backup_dir && !e->backup_dir)) {
                free(e->database);
                free(e->migrations_dir);
                free(e->backup_dir);
                free(e->seeds_dir);
                return -ENOMEM;
        }
        r = dirwatch_new(e->migrations_dir, &e->watch);
        if (r == 0)
                r = db_open(&dbo, &e->db, &f);
        if (r == 0)
                r = choose_format(e, o, &f);
        if (r != 0) {
                db_close(e->db);
                dirwatch_free(e->watch);
                free(e->format_reason);
                free(e->database);
                free(e->migrations_dir);
                free(e->backup_dir);
                free(e->seeds_dir);
                return r < 0 ? r : engine_fail_db(err, &f, NULL);
        }
        *ret = TAKE_PTR(e);
        return 0;
}

engine *engine_free(engine *e) {
        if (!e)
                return NULL;
        db_close(e->db);
        migration_set_free(e->set);
        dirwatch_free(e->watch);
        json_decref(e->status_cache);
        migdir_errors_clear(&e->dir_errors);
        free(e->database);
        free(e->migrations_dir);
        free(e->backup_dir);
        free(e->seeds_dir);
        free(e->format_reason);
        free(e);
        return NULL;
}

void engine_interrupt(engine *e, engine_stop_reason why) {
        atomic_store(&e->stop_reason, (int) why);
        atomic_store(&e->interrupted, true);
        db_interrupt(e->db);
}

const db_backend *engine_backend(engine *e) {
        return db_get_backend(e->db);
}

engine_stop_reason engine_stop_requested(engine *e) {
        return atomic_load(&e->interrupted) ? (engine_stop_reason) atomic_load(&e->stop_reason) : ENGINE_STOP_NONE;
}

void engine_reset_stop(engine *e) {
        atomic_store(&e->stop_reason, (int) ENGINE_STOP_NONE);
        atomic_store(&e->interrupted, false);
}

/* Every job and every read starts here: a database renamed over under the daemon is refused,
 * never read or written through the stale handle. */
int engine_check_identity(engine *e, engine_error *err) {
        db_failure f = {};
        int r;

        r = db_check_identity(e->db, &f);
        if (r != 0)
                return r < 0 ? r : engine_fail_db(err, &f, NULL);
        return 0;
}

int engine_recover(engine *e, engine_error *err) {
        db_failure f = {};
        bool got = false;
        unsigned n = 0;
        int r;

        if (e->backup_dir) {
                r = backups_remove_temporaries(e->backup_dir, e->database);
                if (r > 0)
                        log_info("Removed %d incomplete backup file(s) left in %s by a previous migrated", r,
                                 e->backup_dir);
                else if (r < 0)
                        log_warning_errno(r, "Cannot clean up the backup directory %s: %m", e->backup_dir);
        }
        /* On a shared server an attempt "running" while another daemon holds the writer lock is
         * that daemon's, under way: only attempts nobody is running are marked interrupted. */
        r = db_try_lock(e->db, &got, &f);
        if (r == 0 && !got) {
                log_info("Another migrated holds the writer lock: its running attempts are left as they are");
                return 0;
        }
        if (r == 0)
                r = db_recover_interrupted(e->db, &n, &f);
        db_unlock(e->db);
        if (r != 0)
                return r < 0 ? r : engine_fail_db(err, &f, NULL);
        return (int) n;
}

uint64_t engine_last_job_id(engine *e) {
        uint64_t last = 0, b;
        db_failure f = {};

        if (db_max_job_id(e->db, &last, &f) != 0) {
                log_warning("Cannot read the last job id: %s", f.message ?: "?");
                db_failure_clear(&f);
        }
        b = e->backup_dir ? backups_max_job_id(db_get_backend(e->db), e->backup_dir, e->database) : 0;
        return b > last ? b : last;
}

int engine_load(engine *e, applied_set *applied, engine_error *err) {
        db_failure f = {};
        int r;

        r = engine_check_identity(e, err);
        if (r != 0)
                return r;
        r = engine_scan(e);
        if (r < 0)
                return r;
        r = db_load_applied(e->db, applied, &f);
        if (r != 0)
                return r < 0 ? r : engine_fail_db(err, &f, NULL);
        r = applied_set_fill_through(applied, e->set);
        if (r < 0)
                applied_set_clear(applied);
        return r;
}

/* Jobs need a directory that is readable and valid right now. */
int engine_require_valid_directory(engine *e, engine_error *err) {
        if (e->dir_errno != 0)
                return engine_fail(err, PROTOCOL_ERROR_DIRECTORY_INVALID, NULL,
                                   "cannot read the migrations directory %s: %s", e->migrations_dir,
                                   strerror(e->dir_errno));
        if (e->dir_errors.n > 0 && !e->dir_items_only)
                return engine_fail(err, PROTOCOL_ERROR_DIRECTORY_INVALID,
                                   json_pack("{s:o}", "errors", report_dir_errors(&e->dir_errors)),
                                   "the migrations directory %s has %zu problem%s; first: %s", e->migrations_dir,
                                   e->dir_errors.n, e->dir_errors.n == 1 ? "" : "s", e->dir_errors.messages[0]);
        if (!e->set)
                return engine_fail(err, PROTOCOL_ERROR_DIRECTORY_INVALID, NULL, "the migrations directory %s was not read",
                                   e->migrations_dir);
        return 0;
}

static int plan_refused(engine_error *err, plan_error *pe) {
        int r = engine_fail(err, pe->code, report_plan_error(pe), "%s", pe->message ?: "refused");

        plan_error_clear(pe);
        return r;
}

/* A database with tables but no history, in a format that says so (Prisma's), was not made by
 * these migrations (or its history was lost): applying them from the start would fail or, worse,
 * half work. */
static int check_baseline(engine *e, const applied_set *applied, engine_error *err) {
        bool tables = false;

        if (!migration_format_get(e->format)->baseline_untracked_tables || applied->n > 0 || applied->n_failed > 0 ||
            applied->baseline > 0 || applied->n_repeatables > 0)
                return 0;
        if (db_has_user_tables(e->db, &tables) < 0 || !tables)
                return 0;
        return engine_fail(err, PROTOCOL_ERROR_BASELINE_NEEDED, NULL,
                           "the database has tables but no migration history, so migrated cannot know which "
                           "migrations it already has; if its schema matches migration V, record that with "
                           "\"migratectl baseline V\" (nothing is run), then run up");
}

/* Whether the plan would need an item the directory could not load: an up needs every bad
 * item not applied up to its target (all of them without one, and one whose version is unknown
 * always); a down needs the applied ones above its target. */
static int check_bad_items(engine *e, const applied_set *applied, const plan_request *req, const plan *p,
                           engine_error *err) {
        for (size_t i = 0; e->dir_items_only && i < e->dir_errors.n; i++) {
                int64_t v = migdir_error_version(&e->dir_errors, i);
                bool is_applied = v > 0 && applied_set_find(applied, v);
                bool needed = req->direction == PLAN_UP
                                      ? !is_applied && (v == 0 || req->to == PLAN_NO_TARGET || v <= req->to)
                                      : is_applied && v > p->to_version;

                if (needed)
                        return engine_fail(err, PROTOCOL_ERROR_DIRECTORY_INVALID,
                                           json_pack("{s:o}", "errors", report_dir_errors(&e->dir_errors)),
                                           "this plan needs a migration that cannot be used: %s",
                                           e->dir_errors.messages[i]);
        }
        return 0;
}

int engine_build_plan(engine *e, const plan_request *req, plan **ret, int64_t *ret_current, engine_error *err) {
        applied_set applied = {};
        plan_error pe = {};
        int r;

        r = engine_load(e, &applied, err);
        if (r == 0)
                r = engine_require_valid_directory(e, err);
        if (r == 0 && req->direction == PLAN_UP)
                r = check_baseline(e, &applied, err);
        if (r == 0) {
                r = plan_build(e->set, &applied, req, ret, &pe);
                if (r == PLAN_REFUSED) {
                        r = plan_refused(err, &pe);
                        if (err->code == PROTOCOL_ERROR_IRREVERSIBLE)
                                engine_explain_irreversible(e, err);
                }
                if (r == 0) {
                        r = check_bad_items(e, &applied, req, *ret, err);
                        if (r != 0)
                                *ret = plan_free(*ret);
                }
        }
        if (ret_current)
                *ret_current = applied_set_current(&applied);
        applied_set_clear(&applied);
        return r;
}

int engine_plan_steps(engine *e, const plan_request *req, json_t **ret, engine_error *err) {
        _cleanup_(plan_freep) plan *p = NULL;
        int r;

        r = engine_build_plan(e, req, &p, NULL, err);
        if (r != 0)
                return r;
        *ret = report_plan(p);
        return *ret ? 0 : -ENOMEM;
}

int engine_plan(engine *e, const plan_request *req, json_t **ret, engine_error *err) {
        _cleanup_(plan_freep) plan *p = NULL;
        int r;

        r = engine_build_plan(e, req, &p, NULL, err);
        if (r != 0)
                return r;
        *ret = report_plan(p);
        if (!*ret)
                return -ENOMEM;
        r = engine_add_classification(e, p, req->classify_postgres, *ret, err);
        if (r != 0) {
                json_decref(*ret);
                *ret = NULL;
        }
        return r;
}

/* A dry run shows what the job would do, exactly: each step's SQL and the transactions they
 * run in, and the backup that would be taken first. */
int engine_dry_run(engine *e, const plan_request *req, json_t **ret, engine_error *err) {
        _cleanup_(plan_freep) plan *p = NULL;
        json_t *o, *steps, *groups;
        int r;

        r = engine_build_plan(e, req, &p, NULL, err);
        if (r != 0)
                return r;
        o = report_plan(p);
        if (!o)
                return -ENOMEM;
        r = engine_add_classification(e, p, false, o, err);
        if (r != 0) {
                json_decref(o);
                return r;
        }
        steps = json_object_get(o, "steps");
        groups = json_array();
        for (size_t i = 0; i < p->n; i++) {
                json_object_set_new(json_array_get(steps, i), "sql", json_stringn(p->steps[i].script->sql,
                                                                                  p->steps[i].script->size));
                if (i == 0 || !p->steps[i].transaction || !p->steps[i - 1].transaction)
                        json_array_append_new(groups, json_pack("{s:b,s:[]}", "transaction", p->steps[i].transaction,
                                                                "versions"));
                json_array_append_new(json_object_get(json_array_get(groups, json_array_size(groups) - 1), "versions"),
                                      json_integer(p->steps[i].migration->version));
        }
        json_object_set_new(o, "transactions", groups);
        json_object_set_new(o, "backup", p->n > 0 && e->backup_dir && !e->no_auto_backup
                                                 ? json_pack("{s:s,s:I}", "dir", e->backup_dir, "keep",
                                                             (json_int_t) e->backup_keep)
                                                 : json_null());
        json_object_set_new(o, "integrity_check",
                            json_string(e->integrity == ENGINE_INTEGRITY_FULL    ? "integrity_check"
                                        : e->integrity == ENGINE_INTEGRITY_QUICK ? "quick_check"
                                                                                 : "off"));
        *ret = o;
        return 0;
}

int engine_preview(engine *e, const engine_job *job, bool *ret_changes, engine_error *err) {
        _cleanup_(plan_freep) plan *p = NULL;
        int r;

        r = engine_check_identity(e, err);
        if (r != 0)
                return r;
        switch (job->kind) {
        case ENGINE_JOB_BACKUP:
        case ENGINE_JOB_REHEARSE:
                *ret_changes = false; /* online, or on a copy: the services keep running */
                return job->kind == ENGINE_JOB_REHEARSE ? engine_build_plan(e, &job->request, &p, NULL, err) : 0;
        case ENGINE_JOB_RESTORE:
                *ret_changes = true;
                return engine_check_restore(e, job, err);
        case ENGINE_JOB_MARK_APPLIED:
        case ENGINE_JOB_MARK_ROLLED_BACK:
        case ENGINE_JOB_BASELINE:
        case ENGINE_JOB_REPAIR:
                *ret_changes = false; /* bookkeeping only: the schema and the services are not touched */
                return engine_check_mark(e, job, err);
        case ENGINE_JOB_SEED:
                *ret_changes = false; /* seeds are data: the services keep running (README: Seeds) */
                return 0;
        case ENGINE_JOB_RESET:
                *ret_changes = true; /* the schema goes away: the services stop like for a restore */
                return engine_check_reset(e, err);
        default:
                r = engine_build_plan(e, &job->request, &p, NULL, err);
                if (r != 0)
                        return r;
                *ret_changes = p->n > 0;
                return 0;
        }
}

const char *engine_job_kind_name(const engine_job *j) {
        switch (j->kind) {
        case ENGINE_JOB_BACKUP: return "backup";
        case ENGINE_JOB_RESTORE: return "restore";
        case ENGINE_JOB_REHEARSE: return "rehearse";
        case ENGINE_JOB_MARK_APPLIED: return "mark-applied";
        case ENGINE_JOB_MARK_ROLLED_BACK: return "mark-rolled-back";
        case ENGINE_JOB_BASELINE: return "baseline";
        case ENGINE_JOB_REPAIR: return "repair";
        case ENGINE_JOB_SEED: return "seed";
        case ENGINE_JOB_RESET: return "reset";
        default: return j->request.direction == PLAN_UP ? "up" : "down";
        }
}

int engine_execute(engine *e, const engine_job *job, engine_progress_fn progress, void *userdata,
                   json_t **ret_result, engine_error *err) {
        int r = engine_check_identity(e, err);

        if (r != 0)
                return r;
        /* only a migration job proves what it committed (its check runs in its transaction) */
        if (job->kind != ENGINE_JOB_MIGRATE && job->kind != ENGINE_JOB_BACKUP && job->kind != ENGINE_JOB_REHEARSE)
                e->verified.known = false;
        switch (job->kind) {
        case ENGINE_JOB_BACKUP: return engine_backup_now(e, job, ret_result, err);
        case ENGINE_JOB_RESTORE: return engine_restore(e, job, progress, userdata, ret_result, err);
        case ENGINE_JOB_REHEARSE: return engine_rehearse(e, job, ret_result, err);
        case ENGINE_JOB_MARK_APPLIED:
        case ENGINE_JOB_MARK_ROLLED_BACK: return engine_mark(e, job, ret_result, err);
        case ENGINE_JOB_BASELINE: return engine_baseline(e, job, ret_result, err);
        case ENGINE_JOB_REPAIR: return engine_repair(e, job, ret_result, err);
        case ENGINE_JOB_SEED: return engine_seed_job(e, job, progress, userdata, ret_result, err);
        case ENGINE_JOB_RESET: return engine_reset(e, job, progress, userdata, ret_result, err);
        default:
                r = engine_run_plan(e, job, e->backup_dir && !e->no_auto_backup, progress, userdata, ret_result, err);
                return r == 0 && job->seed ? engine_seed_after(e, job, progress, userdata, ret_result, err) : r;
        }
}

int engine_history(engine *e, unsigned limit, json_t **ret, engine_error *err) {
        db_failure f = {};
        json_t *attempts = NULL;
        int r;

        r = engine_check_identity(e, err);
        if (r != 0)
                return r;
        r = db_history(e->db, limit, &attempts, &f);
        if (r != 0)
                return r < 0 ? r : engine_fail_db(err, &f, NULL);
        *ret = json_pack("{s:o}", "attempts", attempts);
        return *ret ? 0 : -ENOMEM;
}

int engine_verify(engine *e, json_t **ret, engine_error *err) {
        applied_set applied = {};
        json_t *problems;
        int r;

        r = engine_load(e, &applied, err);
        if (r != 0)
                return r;
        if (e->dir_errno != 0) {
                applied_set_clear(&applied);
                return engine_require_valid_directory(e, err);
        }
        problems = report_problems(e->set, &applied, &e->dir_errors);
        *ret = json_pack("{s:b,s:I,s:o}", "ok", json_array_size(problems) == 0, "checked", (json_int_t) applied.n,
                         "problems", problems);
        applied_set_clear(&applied);
        return *ret ? 0 : -ENOMEM;
}

static int64_t now_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* What one run of a plan has done so far, for progress and the final report. */
typedef struct run_state {
        engine *e;
        const engine_job *job;
        const plan *p;
        engine_progress_fn progress;
        void *userdata;
        int64_t attempt_id;
        int64_t reached;     /* committed version */
        json_t *done;        /* [{version, name, duration_ms}] committed */
        json_t *pending_done; /* done in the open transaction, not yet committed */
        const plan_step *failed_step;
        db_failure failure;
        const char *integrity_before; /* what check_before did: the check's name, "skipped", "off" */
} run_state;

static void emit(run_state *s, const char *event, json_t *fields) {
        if (s->progress)
                s->progress(s->userdata, event, fields);
        else
                json_decref(fields);
}

/* The end of the group starting at i: a transaction holds consecutive transactional steps (all
 * of them, unless per_migration); a no-transaction step is a group of its own. */
static size_t group_end(const plan *p, size_t i, bool per_migration) {
        size_t j = i + 1;

        if (!p->steps[i].transaction || per_migration)
                return j;
        while (j < p->n && p->steps[j].transaction)
                j++;
        return j;
}

static int apply_step(run_state *s, size_t k, bool in_transaction) {
        const plan_step *st = &s->p->steps[k];
        db *d = s->e->db;
        int64_t t0 = now_ms(), ms;
        int r;

        emit(s, "migration", json_pack("{s:s,s:I,s:I,s:I,s:s}", "phase",
                                       s->p->direction == PLAN_UP ? "applying" : "reverting", "index",
                                       (json_int_t) k + 1, "total", (json_int_t) s->p->n, "version",
                                       (json_int_t) st->migration->version, "name", st->migration->name));
        if (atomic_load(&s->e->interrupted)) {
                s->failed_step = st;
                s->failure.code = PROTOCOL_ERROR_INTERRUPTED;
                s->failure.message = strdup("interrupted before the migration started");
                return s->failure.message ? DB_FAILED : -ENOMEM;
        }
        r = db_exec_script(d, st->script->sql, st->script->size, in_transaction, &s->failure);
        if (r != 0) {
                if (s->failure.line > 0)
                        s->failure.line += st->script->line_offset; /* the file's line, not the section's */
                s->failed_step = st;
                return r;
        }
        ms = now_ms() - t0;
        r = s->p->direction == PLAN_UP ? db_record_applied(d, st->migration, ms, &s->failure)
                                       : db_remove_applied(d, st->migration, &s->failure);
        if (r != 0) {
                s->failed_step = st;
                return r;
        }
        json_array_append_new(s->pending_done, json_pack("{s:I,s:s,s:I}", "version",
                                                         (json_int_t) st->migration->version, "name",
                                                         st->migration->name, "duration_ms", (json_int_t) ms));
        emit(s, "migration", json_pack("{s:s,s:I,s:I,s:I,s:s,s:I}", "phase",
                                       s->p->direction == PLAN_UP ? "applied" : "reverted", "index",
                                       (json_int_t) k + 1, "total", (json_int_t) s->p->n, "version",
                                       (json_int_t) st->migration->version, "name", st->migration->name,
                                       "duration_ms", (json_int_t) ms));
        return 0;
}

/* The group's check passed inside its transaction: what it committed is the verified database,
 * provided no other connection committed in between (the next job's check then may be skipped). */
static void note_verified(engine *e, const db_change_token *before_commit) {
        db_change_token now;

        db_change_token_get(e->db, &now);
        if (now.known && before_commit->known && now.others == before_commit->others)
                e->verified = now;
        else
                e->verified.known = false;
}

/* Runs steps [i, j) and commits them. The last group also marks the attempt succeeded inside its
 * transaction, so that history and schema can never disagree. */
static int run_group(run_state *s, size_t i, size_t j) {
        db_change_token before_commit = {};
        db *d = s->e->db;
        bool txn = s->p->steps[i].transaction, last = j == s->p->n;
        int r;

        if (txn) {
                r = db_begin(d, &s->failure);
                if (r != 0)
                        return r;
        }
        for (size_t k = i; k < j; k++) {
                r = apply_step(s, k, txn);
                if (r != 0)
                        goto rollback;
        }
        if (!txn) { /* the script ran in autocommit; record it in a transaction of its own */
                r = db_begin(d, &s->failure);
                if (r != 0)
                        return r;
        }
        /* After the change, inside its transaction: a damaged result is rolled back, not committed. */
        if (s->e->integrity != ENGINE_INTEGRITY_OFF)
                r = db_check_integrity(d, s->e->integrity == ENGINE_INTEGRITY_FULL, &s->failure);
        else
                r = db_check_foreign_keys(d, &s->failure);
        if (r == 0 && last)
                r = db_attempt_finish(d, s->attempt_id, "succeeded", NULL, NULL, 0, &s->failure);
        /* renamed over while the group ran: roll back rather than commit into the replaced file */
        if (r == 0)
                r = db_check_identity(d, &s->failure);
        if (r == 0)
                r = engine_notify_commit(s->e, s->p->to_version, &s->failure);
        if (r == 0 && s->e->integrity != ENGINE_INTEGRITY_OFF)
                db_change_token_get(d, &before_commit);
        if (r == 0)
                r = db_commit(d, &s->failure);
        if (r != 0)
                goto rollback;
        if (s->e->integrity != ENGINE_INTEGRITY_OFF)
                note_verified(s->e, &before_commit);
        /* the newest versioned step: a repeatable (Flyway's) is no version to reach */
        for (size_t k = j; k > 0; k--)
                if (!(s->p->steps[k - 1].migration->up.flags & MIGRATION_REPEATABLE)) {
                        s->reached = s->p->steps[k - 1].migration->version;
                        break;
                }
        if (s->p->direction == PLAN_DOWN)
                s->reached = j < s->p->n ? s->p->steps[j].migration->version : s->p->to_version;
        json_array_extend(s->done, s->pending_done);
        json_array_clear(s->pending_done);
        emit(s, "committed", json_pack("{s:I}", "version", (json_int_t) s->reached));
        return 0;
rollback:
        db_rollback(d);
        json_array_clear(s->pending_done);
        return r;
}

static int run_failed(run_state *s, json_t **ret_result, engine_error *err) {
        const plan_step *st = s->failed_step;
        db *d = s->e->db;
        db_failure ignored = {};
        _cleanup_free_ char *message = NULL;
        const char *status = "failed";
        json_t *extra;

        if (s->failure.code == PROTOCOL_ERROR_INTERRUPTED) {
                bool cancel = atomic_load(&s->e->stop_reason) == ENGINE_STOP_CANCEL;
                status = cancel ? "cancelled" : "interrupted";
                if (cancel) {
                        s->failure.code = PROTOCOL_ERROR_CANCELLED;
                        free(s->failure.message);
                        s->failure.message = strdup("cancelled: the open transaction was rolled back");
                }
        }

        if (st && st->script->file && s->failure.line > 0) {
                if (asprintf(&message, "%s:%u: %s", st->script->file, s->failure.line, s->failure.message ?: "") < 0)
                        return -ENOMEM;
        } else if (st) {
                if (asprintf(&message, "%s: %s", st->script->file, s->failure.message ?: "") < 0)
                        return -ENOMEM;
        } else if (!(message = strdup(s->failure.message ?: "failed")))
                return -ENOMEM;
        if (db_attempt_finish(d, s->attempt_id, status, message, st ? st->script->file : NULL,
                                       s->failure.line, &ignored) != 0) {
                log_warning("Failed to record the outcome of attempt %" PRId64 ": %s", s->attempt_id,
                            ignored.message ?: "?");
                db_failure_clear(&ignored);
        }
        emit(s, "rolled_back", json_pack("{s:I}", "version", (json_int_t) s->reached));
        extra = json_pack("{s:I,s:I,s:O}", "job_id", (json_int_t) s->job->id, "reached_version",
                          (json_int_t) s->reached, s->p->direction == PLAN_UP ? "applied" : "reverted", s->done);
        if (st) {
                json_object_set_new(extra, "version", json_integer(st->migration->version));
                json_object_set_new(extra, "name", json_string(st->migration->name));
                json_object_set_new(extra, "file", json_string(st->script->file));
                if (s->failure.line > 0)
                        json_object_set_new(extra, "line", json_integer(s->failure.line));
                json_object_set_new(extra, "db_message", json_string(s->failure.message ?: ""));
        }
        *ret_result = NULL;
        return engine_fail(err, s->failure.code, extra, "%s%s", message,
                           s->reached != s->p->from_version
                                   ? " (the steps before it were committed: this plan was not atomic)"
                                   : "; the database is unchanged");
}

static json_t *versions_json(const plan *p) {
        json_t *v = json_array();

        for (size_t i = 0; i < p->n; i++)
                json_array_append_new(v, json_integer(p->steps[i].migration->version));
        return v;
}

/* Integrity before the job: a damaged database is refused before anything is touched. Skipped
 * when the database is provably the one the last passing check saw (db_change_token): the check
 * after the previous job, inside its transaction, or the check before it. */
static int check_before(engine *e, const engine_job *job, const char **ret_what, engine_error *err) {
        db_change_token now;
        db_failure f = {};
        int r;

        *ret_what = "off";
        if (e->integrity == ENGINE_INTEGRITY_OFF)
                return 0;
        db_change_token_get(e->db, &now);
        if (db_change_token_same_database(&now, &e->verified)) {
                log_info("Job %" PRIu64 ": integrity check before the job skipped: the database is unchanged since "
                         "the last check passed", job->id);
                *ret_what = "skipped";
                return 0;
        }
        e->verified.known = false;
        *ret_what = e->integrity == ENGINE_INTEGRITY_FULL ? "integrity_check" : "quick_check";
        r = db_check_integrity(e->db, e->integrity == ENGINE_INTEGRITY_FULL, &f);
        if (r == 0) {
                e->verified = now; /* taken before the check: a commit meanwhile makes it stale */
                return 0;
        }
        if (r < 0)
                return r;
        r = engine_fail(err, f.code, NULL, "the database fails its check before the job, so nothing was changed: %s",
                        f.message ?: "?");
        db_failure_clear(&f);
        return r;
}

/* How often a plan that met a lock timeout or a deadlock runs again before the job fails. */
#define ENGINE_LOCK_ATTEMPTS 5

/* A lock timeout or deadlock before anything was committed: the plan was wholly rolled back and
 * may run again after a pause (growing: 200 ms, 400 ms, …), unless the job is stopped. */
static bool retry_plan(run_state *s, unsigned attempt) {
        const plan_step *st = s->failed_step;
        long ms = 100L << (attempt < 5 ? attempt : 5);

        if (!s->failure.retry || s->reached != s->p->from_version || (st && !st->transaction) ||
            atomic_load(&s->e->interrupted))
                return false;
        if (attempt >= ENGINE_LOCK_ATTEMPTS) {
                char *m = NULL;
                if (asprintf(&m, "%s; gave up after %u attempts", s->failure.message ?: "", attempt) >= 0) {
                        free(s->failure.message);
                        s->failure.message = m;
                }
                return false;
        }
        emit(s, "lock", json_pack("{s:s,s:I,s:s}", "phase", "retrying", "attempt", (json_int_t) attempt, "reason",
                                  s->failure.message ?: ""));
        db_failure_clear(&s->failure);
        s->failed_step = NULL;
        json_array_clear(s->done);
        for (long slept = 0; slept < ms && !atomic_load(&s->e->interrupted); slept += 50)
                nanosleep(&(struct timespec) { 0, 50 * 1000000L }, NULL);
        return !atomic_load(&s->e->interrupted);
}

int engine_run_plan_locked(engine *e, const engine_job *job, bool take_backup, engine_progress_fn progress,
                           void *userdata, json_t **ret_result, engine_error *err) {
        _cleanup_(plan_freep) plan *p = NULL;
        _cleanup_free_ char *versions = NULL;
        run_state s = { .e = e, .job = job, .progress = progress, .userdata = userdata };
        const char *done_key = job->request.direction == PLAN_UP ? "applied" : "reverted";
        json_t *backup = NULL;
        int64_t t0 = now_ms();
        int r;

        r = engine_build_plan(e, &job->request, &p, NULL, err);
        if (r != 0)
                return r;
        if (p->n == 0) {
                *ret_result = json_pack("{s:I,s:s,s:I,s:I,s:[],s:I}", "job_id", (json_int_t) job->id, "status",
                                        "current", "from_version", (json_int_t) p->from_version, "to_version",
                                        (json_int_t) p->to_version, done_key, "duration_ms", (json_int_t) 0);
                if (*ret_result && job->request.direction == PLAN_UP)
                        engine_add_applied_by(e, p->to_version, *ret_result);
                return *ret_result ? 0 : -ENOMEM;
        }
        /* the job has started once it has a plan; its checks and backup are part of it */
        emit(&s, "started", json_pack("{s:s,s:I,s:I,s:I,s:b}", "kind",
                                      job->request.direction == PLAN_UP ? "up" : "down", "from_version",
                                      (json_int_t) p->from_version, "to_version", (json_int_t) p->to_version, "total",
                                      (json_int_t) p->n, "atomic", p->atomic && !job->per_migration));
        r = check_before(e, job, &s.integrity_before, err);
        if (r != 0)
                return r;

        /* The write lock is probed before the backup: a job that would fail "busy" costs no
         * backup and rotates none out. */
        if (take_backup) {
                emit(&s, "lock", json_pack("{s:s}", "phase", "waiting"));
                r = db_begin(e->db, &s.failure);
                db_rollback(e->db);
                if (r != 0)
                        return r < 0 ? r : engine_fail_db(err, &s.failure, NULL);
                emit(&s, "backup", json_pack("{s:s}", "phase", "starting"));
                r = engine_take_backup(e, job->id, p->from_version, BACKUP_AUTO, &backup, err);
                if (r != 0)
                        return r;
                emit(&s, "backup", json_pack("{s:s,s:O}", "phase", "done", "backup", backup));
                engine_prune_backups(e);
        }

        json_t *vj = versions_json(p);
        versions = json_dumps(vj, JSON_COMPACT);
        json_decref(vj);
        db_attempt a = { .job_id = job->id, .direction = job->request.direction == PLAN_UP ? "up" : "down",
                         .from_version = p->from_version, .to_version = p->to_version,
                         .versions = versions ?: "[]", .requested_by = job->requested_by };
        r = db_attempt_begin(e->db, &a, &s.attempt_id, &s.failure);
        if (r != 0) {
                json_decref(backup);
                return r < 0 ? r : engine_fail_db(err, &s.failure, NULL);
        }

        s.p = p;
        s.reached = p->from_version;
        s.done = json_array();
        s.pending_done = json_array();
        for (unsigned attempt = 1;; attempt++) {
                for (size_t i = 0, j; i < p->n; i = j) {
                        j = group_end(p, i, job->per_migration);
                        r = run_group(&s, i, j);
                        if (r != 0)
                                break;
                }
                if (r <= 0 || !retry_plan(&s, attempt))
                        break;
        }
        if (r > 0) {
                r = run_failed(&s, ret_result, err);
                if (err->extra && backup)
                        json_object_set(err->extra, "backup", backup);
        } else if (r == 0) {
                *ret_result = json_pack("{s:I,s:s,s:I,s:I,s:O,s:I}", "job_id", (json_int_t) job->id, "status",
                                        job->request.direction == PLAN_UP ? "applied" : "reverted", "from_version",
                                        (json_int_t) p->from_version, "to_version", (json_int_t) s.reached, done_key,
                                        s.done, "duration_ms", (json_int_t) (now_ms() - t0));
                json_object_set(*ret_result, "backup", backup ?: json_null());
                json_object_set_new(*ret_result, "integrity_before", json_string(s.integrity_before));
        }
        json_decref(backup);
        db_failure_clear(&s.failure);
        json_decref(s.done);
        json_decref(s.pending_done);
        return r;
}

migdir_format engine_format(const engine *e) {
        return e->format;
}
