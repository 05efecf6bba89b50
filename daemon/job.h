/* SPDX-License-Identifier: MIT */
#pragma once

/* One job, shared by jobs.c (queue, preparation, SQL, replies) and job-units.c (stopping and
 * starting the dependent units around it). */

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "engine.h"
#include "jobs.h"
#include "server.h"

typedef struct subscriber {
        uint64_t conn_id;
        json_t *request_id;
} subscriber;

typedef enum job_phase {
        PHASE_QUEUED,
        PHASE_PREPARING,
        PHASE_STOPPING,
        PHASE_APPLYING,
        PHASE_STARTING,
} job_phase;

typedef struct job {
        jobs *owner;
        uint64_t id;
        engine_job spec;
        char *requested_by;
        char *backup_name; /* restore: owned copy of spec.backup */
        char *target;      /* mark/baseline: owned copy of spec.target */
        subscriber *subs;
        size_t n_subs;
        job_phase phase;
        bool cancel_requested;
        json_t *progress; /* the last "migration" event, for status */
        const char *step; /* before the first migration: what the job does now (static) */
        char started_at[32];

        bool changes;          /* from preparation: the live database will change */
        char **stopped;        /* units this job stopped and must start again */
        size_t n_stopped;
        bool statefile_written;
        json_t *plan_versions; /* up: the versions this job's plan applies, for the gate */
        bool touched;          /* units were stopped or the SQL ran: a failure opens the gate */
        bool gate_updated;
        json_t *units_report;  /* {"stopped": [...], "started": [...]} */
        int64_t t_stop_begin, t_stop_end, t_apply_end, t_start_end, t_checks_ms, t_sql_ms;
        int64_t t_begin;       /* when it left the queue, for its duration */
        bool holders_waited;   /* other processes kept the database open after the stop */
        /* a shared server (job-drain.c): the writer lock was taken before the dependents were
         * touched; the downtime's parts (own stop, other hosts' drain) still to end */
        bool lock_early;
        bool downtime;
        unsigned downtime_pending;
        bool online;           /* the plan runs with the dependents running (classify.h) */
        json_t *online_report; /* engine_online_check()'s report, or NULL when not asked */

        /* outcome; worker fields are read on the loop thread after the worker finished */
        int r;
        json_t *result;
        engine_error err;
        json_t *snapshot;
        struct job *next;
} job;

struct jobs {
        server *server;
        unsigned max_queue;
        uint64_t next_id;
        uint64_t reserved; /* ids up to this one are recorded as reserved (jobids.h) */
        job *running;
        job *head, *tail;
        size_t queued;
};

int64_t job_mono_ms(void);
void job_broadcast_event(job *jb, const char *event, json_t *fields);

/* The end of every job: reply to each subscriber, report, and let the next job run. */
void job_finish(job *jb);
void job_fail(job *jb, protocol_error_code code, json_t *extra, const char *message);

/* Decides the wait gate from the job's outcome (once), before the units start again. */
void job_gate_update(job *jb);

/* Engine progress callback (worker thread): hands the event to the loop. */
void job_on_progress(void *userdata, const char *event, json_t *fields);

/* job-drain.c: on a shared server, a migration takes the writer lock and plans again before any
 * dependent is touched (job_locks_first), then stops its own and drains the other hosts; each
 * part of that downtime ends with job_downtime_part_done(). */
bool job_locks_first(const job *jb);
void job_phase_lock(job *jb);
void job_downtime_part_done(job *jb);

/* Runs the SQL on the job worker (skipped when the job failed already; the lock is released). */
void job_phase_apply(job *jb);

/* job-units.c: records which units run, durably, then stops them; and starts them again, which
 * every path reaches once units were stopped. */
void job_phase_stop_units(job *jb);
void job_phase_start_units(job *jb);
