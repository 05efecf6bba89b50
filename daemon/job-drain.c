/* SPDX-License-Identifier: MIT */
/* A migration on a shared server (PostgreSQL): the writer lock and a fresh plan come before any
 * dependent is touched, so that a job waiting for another daemon's lock keeps its dependents
 * running, and a plan another host applied meanwhile touches none. A plan that needs downtime
 * then drains every live host (hosts-drain.c) while this host stops its own dependents; the plan
 * runs once both are done, and every exit goes through job_phase_apply(), which releases the lock. */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "hosts.h"
#include "job.h"
#include "log.h"
#include "macro.h"
#include "settings.h"

/* Whether a plan that needs downtime (not online: classify.h, decided in job_prepare) stops
 * every live host's dependents, or, with [postgresql] drain = self, this host's only. */
static bool drains_other_hosts(const config *cfg) {
        return !(cfg->drain && streq(cfg->drain, "self"));
}

void job_downtime_part_done(job *jb) {
        server *s = jb->owner->server;

        if (--jb->downtime_pending > 0)
                return;
        if (jb->r == 0 && (jb->cancel_requested || s->shutting_down))
                job_fail(jb, jb->cancel_requested ? PROTOCOL_ERROR_CANCELLED : PROTOCOL_ERROR_INTERRUPTED, NULL,
                         jb->cancel_requested ? "cancelled before the migration started; nothing changed"
                                              : "interrupted before the migration started; nothing changed");
        job_phase_apply(jb);
}

static void on_hosts_drained(void *userdata, int r, const char *message) {
        job *jb = userdata;

        /* a cancel (or shutdown) is told as such by job_downtime_part_done() */
        if (r < 0 && r != -ECANCELED && jb->r == 0)
                job_fail(jb, PROTOCOL_ERROR_UNITS_FAILED, json_pack("{s:{s:s}}", "database", "status", "unchanged"),
                         message ?: "the other hosts could not be drained; nothing was applied");
        job_downtime_part_done(jb);
}

/* The plan still changes the database with the lock held: stop what it needs stopped. */
static void job_phase_downtime(job *jb) {
        server *s = jb->owner->server;
        bool own = s->cfg->n_units > 0 && s->deps;
        int r;

        jb->phase = PHASE_STOPPING; /* this host's dependents, and the other hosts' */
        jb->downtime = true;
        jb->downtime_pending = 1; /* this function's own share: nothing joins before it returns */
        if (drains_other_hosts(s->cfg) && s->hosts) {
                jb->downtime_pending++;
                jb->step = "draining the other hosts";
                r = hosts_drain_begin(s->hosts, jb->id, s->cfg->drain_timeout_s, on_hosts_drained, jb);
                if (r < 0) {
                        log_error_errno(r, "Cannot drain the other hosts: %m");
                        on_hosts_drained(jb, r, "cannot ask the other hosts to stop their dependents; nothing was "
                                                "applied");
                }
        }
        if (own) {
                jb->downtime_pending++;
                job_phase_stop_units(jb);
        }
        job_downtime_part_done(jb);
}

/* Worker: the writer lock, then the plan again under it. */
static void job_lock(void *userdata) {
        job *jb = userdata;
        server *s = jb->owner->server;

        jb->r = engine_lock_writer(s->job_engine, job_on_progress, jb, &jb->err);
        if (jb->r != 0)
                return;
        jb->lock_early = true;
        jb->r = engine_preview(s->job_engine, &jb->spec, &jb->changes, &jb->err);
}

static void job_locked(void *userdata) {
        job *jb = userdata;

        /* a failure still goes through the SQL phase, which skips the SQL and releases the lock;
         * an online plan runs with every host's dependents up, under lock_timeout */
        if (jb->r == 0 && jb->changes && !jb->online)
                job_phase_downtime(jb);
        else
                job_phase_apply(jb);
}

bool job_locks_first(const job *jb) {
        return jb->spec.kind == ENGINE_JOB_MIGRATE && engine_has_writer_lock(jb->owner->server->job_engine);
}

void job_phase_lock(job *jb) {
        server *s = jb->owner->server;

        jb->step = "waiting for the database's write lock";
        if (worker_submit(s->job_worker, job_lock, job_locked, jb) < 0) {
                job_fail(jb, PROTOCOL_ERROR_SHUTTING_DOWN, NULL, "migrated is shutting down");
                job_finish(jb);
        }
}
