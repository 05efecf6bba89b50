/* SPDX-License-Identifier: MIT */
/* A job is a small state machine driven by the loop:
 *
 *   queued → preparing (worker: plan) → stopping units (sd-bus) → applying (worker: holder check,
 *   SQL) → starting units (sd-bus) → done
 *
 * A job with nothing to apply, or refused by the planner, never touches the units. Once units are
 * stopped, every path (failure, cancel, shutdown) goes through "starting units" again. */

#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "job.h"
#include "jobids.h"
#include "hosts.h"
#include "jobs.h"
#include "journal.h"
#include "db.h"
#include "log.h"
#include "macro.h"
#include "preflight.h"
#include "server.h"
#include "statefile.h"
#include "units.h"
#include "unrecorded.h"


/* A progress event travelling from the worker thread to the loop. */
typedef struct progress_msg {
        job *job;
        char *event;
        json_t *fields;
} progress_msg;

int64_t job_mono_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void job_free(job *jb) {
        for (size_t i = 0; i < jb->n_subs; i++)
                json_decref(jb->subs[i].request_id);
        free(jb->subs);
        free(jb->requested_by);
        free(jb->backup_name);
        free(jb->target);
        strv_free_n(jb->stopped, jb->n_stopped);
        json_decref(jb->units_report);
        json_decref(jb->plan_versions);
        json_decref(jb->online_report);
        json_decref(jb->progress);
        json_decref(jb->result);
        json_decref(jb->snapshot);
        engine_error_clear(&jb->err);
        free(jb);
}

/* Continues after the highest id the history knows and after the last block reserved in the
 * state directory, whichever is later: nothing handed out before a crash is handed out again. */
void jobs_set_last_id(jobs *j, uint64_t last) {
        uint64_t reserved = 0;
        int r;

        r = jobids_load(j->server->state_fd, &reserved);
        if (r < 0)
                log_warning_errno(r, "Failed to read the reserved job ids, continuing after the history's: %m");
        if (reserved > last)
                last = reserved;
        if (last > j->next_id)
                j->next_id = last;
        j->reserved = j->next_id;
}

/* Reserves the next block of ids durably before the first of them is handed out. */
static int jobs_next_id(jobs *j, uint64_t *ret) {
        int r;

        if (j->next_id >= j->reserved) {
                r = jobids_reserve(j->server->state_fd, j->next_id + JOBIDS_BLOCK);
                if (r < 0)
                        return r;
                j->reserved = j->next_id + JOBIDS_BLOCK;
        }
        *ret = ++j->next_id;
        return 0;
}

int jobs_new(server *s, unsigned max_queue, jobs **ret) {
        jobs *j = calloc(1, sizeof(*j));

        if (!j)
                return -ENOMEM;
        j->server = s;
        j->max_queue = max_queue;
        *ret = j;
        return 0;
}

jobs *jobs_free(jobs *j) {
        if (!j)
                return NULL;
        for (job *jb = j->head, *next; jb; jb = next) {
                next = jb->next;
                job_free(jb);
        }
        free(j);
        return NULL;
}

static int add_subscriber(job *jb, uint64_t conn_id, json_t *request_id) {
        subscriber *s;

        if (conn_id == 0)
                return 0;
        s = realloc(jb->subs, (jb->n_subs + 1) * sizeof(*s));
        if (!s)
                return -ENOMEM;
        jb->subs = s;
        jb->subs[jb->n_subs++] = (subscriber) { conn_id, json_incref(request_id) };
        return 0;
}

void job_broadcast_event(job *jb, const char *event, json_t *fields) {
        server *s = jb->owner->server;

        if (!fields)
                return;
        json_object_set_new(fields, "job_id", json_integer((json_int_t) jb->id));
        for (size_t i = 0; i < jb->n_subs; i++)
                server_reply_event(s, jb->subs[i].conn_id, jb->subs[i].request_id, event, json_copy(fields));
        json_decref(fields);
}

static const char *direction(const job *jb) {
        return engine_job_kind_name(&jb->spec);
}

static void deliver_progress(void *userdata) {
        progress_msg *m = userdata;
        job *jb = m->job;

        if (streq(m->event, "started")) {
                jb->step = "checking the database";
                hosts_set_state(jb->owner->server->hosts, direction(jb), NULL);
        } else if (streq(m->event, "lock")) {
                json_t *holder = json_object_get(m->fields, "holder");
                jb->step = "waiting for the database's write lock";
                if (holder) {
                        char waiting[256];
                        snprintf(waiting, sizeof(waiting), "the writer lock, held by %s (pid %" JSON_INTEGER_FORMAT ")",
                                 json_string_value(json_object_get(holder, "application_name")) ?: "?",
                                 json_integer_value(json_object_get(holder, "pid")));
                        hosts_set_state(jb->owner->server->hosts, direction(jb), waiting);
                }
        }
        else if (streq(m->event, "backup"))
                jb->step = streq(json_string_value(json_object_get(m->fields, "phase")) ?: "", "done")
                                   ? "waiting for the database's write lock"
                                   : "backing up";
        if (streq(m->event, "migration")) {
                const char *phase = json_string_value(json_object_get(m->fields, "phase"));
                json_t *v = json_object_get(m->fields, "version"), *nm = json_object_get(m->fields, "name");
                json_decref(jb->progress);
                jb->progress = json_incref(m->fields);
                if (phase && (streq(phase, "applying") || streq(phase, "reverting")))
                        server_notify_status(jb->owner->server, "%s %" JSON_INTEGER_FORMAT "/%" JSON_INTEGER_FORMAT
                                             " %s", phase, json_integer_value(json_object_get(m->fields, "index")),
                                             json_integer_value(json_object_get(m->fields, "total")),
                                             json_string_value(nm) ?: "");
                else if (phase) {
                        char version[32], id[24];
                        snprintf(version, sizeof(version), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
                        snprintf(id, sizeof(id), "%" PRIu64, jb->id);
                        journal_event(LOG_INFO, MESSAGE_ID_MIGRATION_APPLIED,
                                      streq(phase, "applied") ? "Migration applied" : "Migration reverted", "JOB_ID", id,
                                      "MIGRATION_VERSION", version, "MIGRATION_NAME", json_string_value(nm),
                                      "MIGRATION_PHASE", phase, NULL);
                }
        }
        job_broadcast_event(jb, m->event, m->fields);
        free(m->event);
        free(m);
}

/* Engine callback, on the worker thread: hand the event over to the loop. */
void job_on_progress(void *userdata, const char *event, json_t *fields) {
        job *jb = userdata;
        progress_msg *m = calloc(1, sizeof(*m));

        if (!m || !fields || !(m->event = strdup(event))) {
                free(m);
                json_decref(fields);
                return;
        }
        m->job = jb;
        m->fields = fields;
        if (worker_post(jb->owner->server->job_worker, deliver_progress, m) < 0) {
                json_decref(fields);
                free(m->event);
                free(m);
        }
}

static void jobs_start_next(jobs *j);

static json_t *timings_json(const job *jb) {
        int64_t stopping = jb->t_stop_begin ? jb->t_stop_end - jb->t_stop_begin : 0;
        int64_t starting = jb->t_start_end && jb->t_apply_end ? jb->t_start_end - jb->t_apply_end : 0;

        return json_pack("{s:I,s:I,s:I,s:I}", "stopping_ms", (json_int_t) stopping, "checks_ms",
                         (json_int_t) jb->t_checks_ms, "sql_ms", (json_int_t) jb->t_sql_ms, "starting_ms",
                         (json_int_t) starting);
}

static bool job_moves_schema(const job *jb) {
        return jb->spec.kind == ENGINE_JOB_MIGRATE || jb->spec.kind == ENGINE_JOB_RESTORE ||
               jb->spec.kind == ENGINE_JOB_RESET;
}

/* The end of every job: reply to each subscriber, report, and let the next job run. */
static void trim_memory(void *userdata) {
        (void) malloc_trim(0);
}

void job_finish(job *jb) {
        jobs *j = jb->owner;
        server *s = j->server;
        char id[24];

        snprintf(id, sizeof(id), "%" PRIu64, jb->id);
        hosts_drain_end(s->hosts, jb->r == 0);
        if (!hosts_drained(s->hosts)) /* else it waits for another host's job still */
                hosts_set_state(s->hosts, "idle", NULL);
        if (job_moves_schema(jb) && !jb->gate_updated) {
                jb->gate_updated = true;
                s->gate.suspended = false;
                server_gate_changed(s);
        }
        if (jb->units_report) {
                json_t *target = jb->r == 0 ? jb->result : (jb->err.extra ?: (jb->err.extra = json_object()));
                if (target) {
                        json_object_set(target, "units", jb->units_report);
                        json_object_set_new(target, "timings", timings_json(jb));
                        if (jb->t_stop_begin && jb->t_start_end)
                                json_object_set_new(target, "downtime_ms",
                                                    json_integer(jb->t_start_end - jb->t_stop_begin));
                }
        }
        if (jb->r == 0)
                journal_event(LOG_INFO, MESSAGE_ID_JOB_FINISHED, "Job finished", "JOB_ID", id, "JOB_KIND",
                              direction(jb), "JOB_STATUS", json_string_value(json_object_get(jb->result, "status")),
                              "REQUESTED_BY", jb->requested_by, NULL);
        else
                journal_event(LOG_ERR, MESSAGE_ID_JOB_FAILED, jb->err.message ?: "Job failed", "JOB_ID", id, "JOB_KIND",
                              direction(jb), "ERROR_CODE", protocol_error_code_to_string(jb->err.code),
                              "REQUESTED_BY", jb->requested_by, NULL);
        metrics_job_finished(s->metrics, &(metrics_job) {
                .kind = direction(jb),
                .error_code = jb->r == 0 ? NULL : protocol_error_code_to_string(jb->err.code),
                .duration_ms = jb->t_begin ? job_mono_ms() - jb->t_begin : 0,
                .downtime_ms = jb->t_stop_begin && jb->t_start_end ? jb->t_start_end - jb->t_stop_begin : 0,
                .waited_for_holders = jb->holders_waited,
                .holder_wait_ms = jb->holders_waited ? jb->t_checks_ms : 0 });
        if (jb->snapshot)
                server_set_snapshot(s, TAKE_PTR(jb->snapshot));
        for (size_t i = 0; i < jb->n_subs; i++) {
                if (jb->r == 0)
                        server_reply_result(s, jb->subs[i].conn_id, jb->subs[i].request_id, json_incref(jb->result));
                else
                        server_reply_error(s, jb->subs[i].conn_id, jb->subs[i].request_id, jb->err.code,
                                           jb->err.message ?: strerror(jb->r < 0 ? -jb->r : EIO),
                                           json_incref(jb->err.extra));
        }
        j->running = NULL;
        job_free(jb);
        server_notify_idle(s);
        server_job_finished(s);
        jobs_start_next(j);
        /* idle again: what the job allocated goes back to the system, off the loop (the replies
         * are still to be written) and once, instead of at each free */
        if (!j->running)
                (void) worker_submit(s->job_worker, trim_memory, NULL, NULL);
}

static void gate_warn(int r) {
        if (r < 0)
                log_warning_errno(r, "Failed to record the wait gate's state in the state directory: %m");
}

/* The job's outcome decides the gate, before the units start again: a down or a restore holds the
 * schema where it left it (an up --to moves such a hold); only a plain up releases it; a failure
 * after the units were stopped lets them run without exactly the migrations of its plan. */
void job_gate_update(job *jb) {
        server *s = jb->owner->server;
        json_t *cur = json_object_get(s->snapshot, "current_version");

        if (jb->gate_updated || !job_moves_schema(jb))
                return;
        jb->gate_updated = true;
        s->gate.suspended = false;
        if (jb->r == 0) {
                bool plain_up = (jb->spec.kind == ENGINE_JOB_MIGRATE && jb->spec.request.direction == PLAN_UP &&
                                 jb->spec.request.to == PLAN_NO_TARGET) ||
                                jb->spec.kind == ENGINE_JOB_RESET; /* every migration, again */
                gate_warn(gate_clear_failed_plan(&s->gate));
                bool down = jb->spec.kind == ENGINE_JOB_RESTORE || jb->spec.request.direction == PLAN_DOWN;
                if (plain_up)
                        gate_warn(gate_release(&s->gate));
                else if (json_is_integer(cur) && (down || s->gate.hold)) /* up --to moves a hold, makes none */
                        gate_warn(gate_hold(&s->gate, cur,
                                            jb->spec.kind == ENGINE_JOB_RESTORE           ? "restore"
                                            : jb->spec.request.direction == PLAN_DOWN ? "down"
                                                                                          : "up --to",
                                            jb->id));
        } else if (jb->touched && jb->plan_versions && json_array_size(jb->plan_versions) > 0)
                gate_warn(gate_fail_plan(&s->gate, jb->id, jb->plan_versions));
        server_gate_changed(s);
}

void job_fail(job *jb, protocol_error_code code, json_t *extra, const char *message) {
        engine_error_clear(&jb->err);
        jb->r = ENGINE_FAILED;
        jb->err.code = code;
        jb->err.message = strdup(message);
        jb->err.extra = extra;
}

/* Worker: wait until nothing but us has the database open, then run the SQL. */
static void job_apply(void *userdata) {
        job *jb = userdata;
        server *s = jb->owner->server;
        engine_error ignored = {};
        int64_t t0 = job_mono_ms(), deadline = t0 + (int64_t) s->cfg->holder_timeout_s * 1000;
        struct timespec pause = { 0, 100 * 1000 * 1000 };
        const db_backend *backend = engine_backend(s->job_engine);

        /* a job that failed already (its lock taken first, on a shared server) only gives it back */
        if (jb->r != 0)
                goto release;
        /* Holders only matter when we stopped the services: without units, other writers are
         * expected and handled by busy_timeout. */
        while (jb->statefile_written && engine_stop_requested(s->job_engine) == ENGINE_STOP_NONE) {
                _cleanup_free_ char *who = NULL;
                json_t *holders = NULL;
                size_t n = 0;
                if (db_find_holders(backend, config_target(s->cfg), &n, &who, &holders) < 0 || n == 0)
                        break;
                jb->holders_waited = true;
                if (job_mono_ms() >= deadline) {
                        _cleanup_free_ char *msg = NULL;
                        if (asprintf(&msg, "the database is still open after the units stopped: %s; stop %s, or "
                                     "add its unit to the dependent units", who ?: "?",
                                     n == 1 ? "that process" : "those processes") < 0)
                                msg = NULL;
                        job_fail(jb, PROTOCOL_ERROR_DATABASE_IN_USE, json_pack("{s:o}", "holders", holders),
                                 msg ?: "the database is still in use");
                        journal_event(LOG_WARNING, MESSAGE_ID_HOLDERS_FOUND, msg ?: "Database still in use", "DATABASE",
                                      s->cfg->database, NULL);
                        jb->t_checks_ms = job_mono_ms() - t0;
                        goto release;
                }
                json_decref(holders);
                nanosleep(&pause, NULL);
        }
        jb->t_checks_ms = job_mono_ms() - t0;
        t0 = job_mono_ms();
        if (engine_stop_requested(s->job_engine) == ENGINE_STOP_CANCEL)
                job_fail(jb, PROTOCOL_ERROR_CANCELLED, NULL, "cancelled before the migration started; nothing changed");
        else if (engine_stop_requested(s->job_engine) == ENGINE_STOP_SHUTDOWN)
                job_fail(jb, PROTOCOL_ERROR_INTERRUPTED, NULL,
                         "interrupted before the migration started (migrated is stopping); nothing changed");
        else
                jb->r = engine_execute(s->job_engine, &jb->spec, job_on_progress, jb, &jb->result, &jb->err);
        jb->t_sql_ms = job_mono_ms() - t0;
        if (jb->result && jb->online_report) {
                json_object_set(jb->result, "online", jb->online_report);
                json_object_set_new(jb->result, "dependents_kept_running", json_boolean(jb->online));
        }
        /* a cancel that ended a wait outside the SQL (the busy database) is a cancel, not a shutdown */
        if (jb->r > 0 && jb->err.code == PROTOCOL_ERROR_INTERRUPTED &&
            engine_stop_requested(s->job_engine) == ENGINE_STOP_CANCEL) {
                char *msg = strdup("cancelled while it waited for the database (locked by another writer); "
                                   "nothing changed");
                jb->err.code = PROTOCOL_ERROR_CANCELLED;
                if (msg) {
                        free(jb->err.message);
                        jb->err.message = msg;
                }
        }
        /* A job that could not get the database says who holds it, in its backend's terms. */
        if (jb->r > 0 && jb->err.code == PROTOCOL_ERROR_BUSY) {
                json_t *report = NULL;
                if (engine_lock_report(s->job_engine, config_target(s->cfg), &report) == 0) {
                        const char *action = json_string_value(json_object_get(report, "action"));
                        char *msg;
                        if (action && asprintf(&msg, "%s. %s", jb->err.message, action) >= 0) {
                                free(jb->err.message);
                                jb->err.message = msg;
                        }
                        if (!jb->err.extra)
                                jb->err.extra = json_object();
                        json_object_set_new(jb->err.extra, "lock_check", report);
                }
        }
release:
        if (jb->lock_early) { /* the plan did not run (cancelled first): the lock goes anyway */
                engine_unlock_writer(s->job_engine);
                jb->lock_early = false;
        }
        /* A fresh snapshot from the thread that owns the writer's view: it opens wait gates. */
        if (engine_status(s->job_engine, &jb->snapshot, &ignored) != 0)
                jb->snapshot = NULL;
        engine_error_clear(&ignored);
}

/* A migration stopped (cancel, shutdown) before the engine could record its attempt, because the
 * database stayed locked: history still shows it, from the state directory. */
static void record_unrecorded(job *jb) {
        server *s = jb->owner->server;
        bool cancelled = jb->err.code == PROTOCOL_ERROR_CANCELLED;
        char now[32];
        json_t *a;
        int r;

        if (jb->r <= 0 || jb->spec.kind != ENGINE_JOB_MIGRATE || !jb->started_at[0] ||
            (!cancelled && jb->err.code != PROTOCOL_ERROR_INTERRUPTED) ||
            json_object_get(jb->err.extra, "reached_version"))
                return;
        db_timestamp(now);
        a = json_pack("{s:n,s:I,s:s,s:s,s:O,s:n,s:O,s:s,s:n,s:n,s:s,s:s,s:s,s:s,s:b}", "id", "job_id",
                      (json_int_t) jb->id, "direction", jb->spec.request.direction == PLAN_UP ? "up" : "down",
                      "status", cancelled ? "cancelled" : "interrupted", "from_version",
                      json_object_get(s->snapshot, "current_version") ?: json_null(), "to_version", "versions",
                      jb->plan_versions ?: json_array(), "error", jb->err.message ?: "", "error_file",
                      "error_line", "started_at", jb->started_at, "finished_at", now, "requested_by",
                      jb->requested_by, "detail",
                      "kept in the state directory: the database was locked by another writer", "recorded", 0);
        r = a ? unrecorded_add(s->state_fd, s->cfg->database, a) : -ENOMEM;
        if (r < 0)
                log_warning_errno(r, "Failed to keep the attempt of job %" PRIu64 " in the state directory: %m",
                                  jb->id);
        json_decref(a);
}

/* Loop: the schema is committed (or rolled back). Open the wait gates before starting units, so
 * that a unit gated on "migratectl wait" can start. */
static void job_applied(void *userdata) {
        job *jb = userdata;

        jb->t_apply_end = job_mono_ms();
        /* committed or rolled back: every drained host starts its dependents again */
        hosts_drain_end(jb->owner->server->hosts, jb->r == 0);
        record_unrecorded(jb);
        if (jb->snapshot)
                server_set_snapshot(jb->owner->server, TAKE_PTR(jb->snapshot));
        /* the units are about to run again on whatever schema this job left */
        jb->touched = true;
        job_gate_update(jb);
        if (jb->n_stopped > 0 || jb->statefile_written)
                job_phase_start_units(jb);
        else
                job_finish(jb);
}

void job_phase_apply(job *jb) {
        server *s = jb->owner->server;

        jb->phase = PHASE_APPLYING;
        db_timestamp(jb->started_at);
        if (worker_submit(s->job_worker, job_apply, job_applied, jb) < 0) {
                job_fail(jb, PROTOCOL_ERROR_SHUTTING_DOWN, NULL, "migrated is shutting down");
                job_applied(jb);
        }
}

/* Worker: whether a migration may run with its dependents running: online = auto, dependents
 * configured, an online plan whose transaction fits online_lock_ms on a copy. Over the bound it
 * stops them like a breaking plan, or, with online_refuse_slow, is refused. */
static void job_decide_online(job *jb) {
        server *s = jb->owner->server;
        const char *decision;
        int r;

        /* on a shared server the other hosts' dependents count too (job-drain.c) */
        if (jb->spec.kind != ENGINE_JOB_MIGRATE || ((s->cfg->n_units == 0 || !s->deps) && !s->hosts) ||
            s->cfg->online_never)
                return;
        r = engine_online_check(s->job_engine, &jb->spec, s->cfg->online_lock_ms, &jb->online_report, &jb->err);
        if (r != 0) {
                jb->r = r;
                return;
        }
        decision = json_string_value(json_object_get(jb->online_report, "decision")) ?: "stop";
        if (streq(decision, "online"))
                jb->online = true;
        else if (streq(decision, "over_bound") && s->cfg->online_refuse_slow) {
                const char *why = json_string_value(json_object_get(jb->online_report, "reason"));
                _cleanup_free_ char *msg = NULL;
                if (asprintf(&msg, "refused (online_refuse_slow): %s; nothing changed", why ?: "over the bound") < 0)
                        msg = NULL;
                job_fail(jb, PROTOCOL_ERROR_ONLINE_TOO_SLOW, json_pack("{s:O}", "online", jb->online_report),
                         msg ?: "refused: the online plan is over online_lock_ms");
        }
        if (!jb->err.message)
                journal_event(LOG_INFO, MESSAGE_ID_JOB_STARTED,
                              jb->online ? "Online plan: the dependents keep running"
                                         : "The plan stops the dependents",
                              "ONLINE_DECISION", decision, "ONLINE_REASON",
                              json_string_value(json_object_get(jb->online_report, "reason")) ?: "", NULL);
}

/* Worker: would the job change anything, can it succeed (space, permissions), and which
 * migrations does its plan hold (for the gate, should it fail)? */
static void job_prepare(void *userdata) {
        job *jb = userdata;
        server *s = jb->owner->server;
        json_t *preview = NULL;
        engine_error ignored = {};

        jb->r = engine_preview(s->job_engine, &jb->spec, &jb->changes, &jb->err);
        if (jb->r != 0 || !jb->changes)
                return;
        jb->r = preflight_check(s->cfg, engine_backend(s->job_engine), &jb->spec, &jb->err);
        if (jb->r != 0)
                return;
        if (jb->spec.kind == ENGINE_JOB_MIGRATE && jb->spec.request.direction == PLAN_UP &&
            engine_plan_steps(s->job_engine, &jb->spec.request, &preview, &ignored) == 0) {
                json_t *st;
                size_t i;
                jb->plan_versions = json_array();
                json_array_foreach(json_object_get(preview, "steps"), i, st)
                        json_array_append(jb->plan_versions, json_object_get(st, "version"));
                json_decref(preview);
        }
        engine_error_clear(&ignored);
        job_decide_online(jb);
}

static void job_prepared(void *userdata) {
        job *jb = userdata;
        server *s = jb->owner->server;

        if (jb->r != 0) {
                job_finish(jb);
                return;
        }
        if (jb->cancel_requested) {
                job_fail(jb, PROTOCOL_ERROR_CANCELLED, NULL, "cancelled before it started; nothing changed");
                job_finish(jb);
                return;
        }
        if (jb->changes && job_locks_first(jb))
                job_phase_lock(jb); /* then the downtime, unless the plan is online (job-drain.c) */
        else if (jb->changes && s->cfg->n_units > 0 && s->deps && !jb->online)
                job_phase_stop_units(jb);
        else
                job_phase_apply(jb);
}

static void jobs_start_next(jobs *j) {
        server *s = j->server;
        char id[24];
        job *jb;
        size_t pos = 1;

        if (j->running || !j->head || s->shutting_down)
                return;
        jb = j->head;
        j->head = jb->next;
        if (!j->head)
                j->tail = NULL;
        j->queued--;
        jb->next = NULL;
        j->running = jb;
        jb->phase = PHASE_PREPARING;
        jb->t_begin = job_mono_ms();
        hosts_set_state(s->hosts, direction(jb), NULL);
        engine_reset_stop(s->job_engine);
        if (job_moves_schema(jb))
                s->gate.suspended = true; /* this job decides anew */
        snprintf(id, sizeof(id), "%" PRIu64, jb->id);
        journal_event(LOG_INFO, MESSAGE_ID_JOB_STARTED, "Job started", "JOB_ID", id, "JOB_KIND", direction(jb),
                      "REQUESTED_BY", jb->requested_by, NULL);
        /* tell the ones still waiting that they moved up */
        for (job *w = j->head; w; w = w->next, pos++)
                for (size_t i = 0; i < w->n_subs; i++)
                        server_reply_event(s, w->subs[i].conn_id, w->subs[i].request_id, "queued",
                                           json_pack("{s:I,s:I}", "job_id", (json_int_t) w->id, "position",
                                                     (json_int_t) pos));
        if (worker_submit(s->job_worker, job_prepare, job_prepared, jb) < 0) {
                job_fail(jb, PROTOCOL_ERROR_SHUTTING_DOWN, NULL, "migrated is shutting down");
                job_finish(jb);
        }
}

static bool same_request(const job *jb, const engine_job *spec) {
        return jb->spec.kind == ENGINE_JOB_MIGRATE && spec->kind == ENGINE_JOB_MIGRATE &&
               jb->spec.request.direction == PLAN_UP && spec->request.direction == PLAN_UP &&
               jb->spec.request.to == spec->request.to && jb->spec.per_migration == spec->per_migration &&
               jb->spec.seed == spec->seed;
}

void jobs_submit(jobs *j, const engine_job *spec, uint64_t conn_id, json_t *request_id) {
        server *s = j->server;
        size_t pos = j->running ? 1 : 0;
        job *jb;
        int r;

        if (s->shutting_down) {
                server_reply_error(s, conn_id, request_id, PROTOCOL_ERROR_SHUTTING_DOWN, "migrated is shutting down",
                                   NULL);
                return;
        }
        for (job *w = j->head; w; w = w->next) {
                pos++;
                if (!same_request(w, spec))
                        continue;
                if (add_subscriber(w, conn_id, request_id) < 0) {
                        server_reply_error(s, conn_id, request_id, PROTOCOL_ERROR_INTERNAL, "out of memory", NULL);
                        return;
                }
                server_reply_event(s, conn_id, request_id, "queued",
                                   json_pack("{s:I,s:I,s:b}", "job_id", (json_int_t) w->id, "position",
                                             (json_int_t) pos, "coalesced", 1));
                return;
        }
        if (j->queued >= j->max_queue) {
                server_reply_error(s, conn_id, request_id, PROTOCOL_ERROR_QUEUE_FULL,
                                   "too many jobs are waiting; try again when the queue drains", NULL);
                return;
        }
        jb = calloc(1, sizeof(*jb));
        if (!jb || !(jb->requested_by = strdup(spec->requested_by ?: "migrated")) ||
            add_subscriber(jb, conn_id, request_id) < 0) {
                if (jb)
                        job_free(jb);
                server_reply_error(s, conn_id, request_id, PROTOCOL_ERROR_INTERNAL, "out of memory", NULL);
                return;
        }
        jb->owner = j;
        r = jobs_next_id(j, &jb->id);
        if (r < 0) {
                log_error_errno(r, "Failed to reserve job ids in the state directory: %m");
                server_reply_error(s, conn_id, request_id, PROTOCOL_ERROR_INTERNAL,
                                   "cannot record the next job id in the state directory; nothing was changed", NULL);
                job_free(jb);
                return;
        }
        jb->spec = *spec;
        jb->spec.id = jb->id;
        jb->spec.requested_by = jb->requested_by;
        if (spec->backup && !(jb->backup_name = strdup(spec->backup))) {
                server_reply_error(s, conn_id, request_id, PROTOCOL_ERROR_INTERNAL, "out of memory", NULL);
                job_free(jb);
                return;
        }
        jb->spec.backup = jb->backup_name;
        if (spec->target && !(jb->target = strdup(spec->target))) {
                server_reply_error(s, conn_id, request_id, PROTOCOL_ERROR_INTERNAL, "out of memory", NULL);
                job_free(jb);
                return;
        }
        jb->spec.target = jb->target;
        if (j->tail)
                j->tail->next = jb;
        else
                j->head = jb;
        j->tail = jb;
        j->queued++;
        server_reply_event(s, conn_id, request_id, "queued",
                           json_pack("{s:I,s:I}", "job_id", (json_int_t) jb->id, "position",
                                     (json_int_t) (pos + 1)));
        jobs_start_next(j);
}

bool jobs_busy(jobs *j) {
        return j->running != NULL;
}

bool jobs_idle(jobs *j) {
        return !j->running && !j->head;
}

static const char *phase_name(job_phase p) {
        switch (p) {
        case PHASE_QUEUED: return "queued";
        case PHASE_PREPARING: return "preparing";
        case PHASE_STOPPING: return "stopping_units";
        case PHASE_APPLYING: return "applying";
        default: return "starting_units";
        }
}

void jobs_describe(jobs *j, json_t *status) {
        json_t *desc = json_null(), *queue = json_array();

        if (j->running) {
                desc = json_pack("{s:I,s:s,s:s,s:s}", "id", (json_int_t) j->running->id, "kind", direction(j->running),
                                 "phase", phase_name(j->running->phase), "requested_by", j->running->requested_by);
                if (j->running->step && j->running->phase == PHASE_APPLYING)
                        json_object_set_new(desc, "step", json_string(j->running->step));
                if (j->running->progress) {
                        static const char *const keys[] = { "index", "total", "version", "name" };
                        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                                json_t *v = json_object_get(j->running->progress, keys[i]);
                                if (v)
                                        json_object_set(desc, keys[i], v);
                        }
                }
        }
        for (job *w = j->head; w; w = w->next)
                json_array_append_new(queue, json_pack("{s:I,s:s,s:s}", "id", (json_int_t) w->id, "kind", direction(w),
                                                       "requested_by", w->requested_by));
        json_object_set_new(status, "state", json_string(j->running ? "running" : "idle"));
        json_object_set_new(status, "job", desc);
        json_object_set_new(status, "queue_length", json_integer((json_int_t) j->queued));
        json_object_set_new(status, "queue", queue);
}

static void reply_all(jobs *j, job *jb, protocol_error_code code, const char *message) {
        for (size_t i = 0; i < jb->n_subs; i++)
                server_reply_error(j->server, jb->subs[i].conn_id, jb->subs[i].request_id, code, message, NULL);
}

/* The running job: SQL is interrupted, a stop in progress completes and is undone. */
static void stop_running(jobs *j, engine_stop_reason why) {
        job *jb = j->running;

        if (why == ENGINE_STOP_CANCEL)
                jb->cancel_requested = true;
        engine_interrupt(j->server->job_engine, why);
        /* a drain of the other hosts is waited for on the loop: it ends now */
        if (jb->downtime)
                hosts_drain_cancel(j->server->hosts);
}

int jobs_cancel(jobs *j, uint64_t job_id, json_t **ret_result) {
        if (job_id == 0 && j->running)
                job_id = j->running->id;
        if (j->running && j->running->id == job_id) {
                stop_running(j, ENGINE_STOP_CANCEL);
                *ret_result = json_pack("{s:I,s:s,s:s}", "job_id", (json_int_t) job_id, "state", "cancelling", "phase",
                                        phase_name(j->running->phase));
                return 0;
        }
        for (job **p = &j->head, *prev = NULL; *p; prev = *p, p = &(*p)->next) {
                job *jb = *p;
                if (jb->id != job_id)
                        continue;
                *p = jb->next;
                if (j->tail == jb)
                        j->tail = prev;
                j->queued--;
                reply_all(j, jb, PROTOCOL_ERROR_CANCELLED, "cancelled while queued; nothing changed");
                job_free(jb);
                *ret_result = json_pack("{s:I,s:s}", "job_id", (json_int_t) job_id, "state", "removed");
                return 0;
        }
        return -ENOENT;
}

void jobs_shutdown(jobs *j) {
        for (job *jb = j->head, *next; jb; jb = next) {
                next = jb->next;
                reply_all(j, jb, PROTOCOL_ERROR_SHUTTING_DOWN, "migrated is shutting down; the job was not started");
                job_free(jb);
        }
        j->head = j->tail = NULL;
        j->queued = 0;
        if (j->running)
                stop_running(j, ENGINE_STOP_SHUTDOWN);
}
