/* SPDX-License-Identifier: MIT */
/* The dependent units around a job: stop them (after recording them in the state directory),
 * start them again on every path, and make a unit that did not come back the job's outcome. */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "job.h"
#include "journal.h"
#include "log.h"
#include "macro.h"
#include "statefile.h"
#include "deps.h"
#include "hosts.h"
#include "units.h"

static json_t *outcomes_json(const unit_outcome *o, size_t n) {
        json_t *arr = json_array();

        for (size_t i = 0; i < n; i++)
                json_array_append_new(arr, json_pack("{s:s,s:s,s:b,s:b,s:I}", "unit", o[i].name ?: "?", "outcome",
                                                     o[i].result ?: "?", "ok", o[i].ok, "killed", o[i].killed,
                                                     "duration_ms", (json_int_t) (o[i].usec / 1000)));
        return arr;
}

static void report_units(job *jb, const char *key, const char *action, unit_outcome *o, size_t n) {
        json_t *arr = outcomes_json(o, n);

        if (!jb->units_report)
                jb->units_report = json_pack("{s:[],s:[]}", "stopped", "started");
        json_object_set(jb->units_report, key, arr);
        for (size_t i = 0; i < json_array_size(arr); i++) {
                json_t *ev = json_deep_copy(json_array_get(arr, i));
                json_object_set_new(ev, "action", json_string(action));
                job_broadcast_event(jb, "unit", ev);
                journal_event(o[i].ok ? LOG_INFO : LOG_ERR,
                              !o[i].ok ? MESSAGE_ID_UNIT_FAILED
                              : o[i].killed ? MESSAGE_ID_UNIT_KILLED
                              : streq(action, "stopped") ? MESSAGE_ID_UNIT_STOPPED : MESSAGE_ID_UNIT_STARTED,
                              o[i].ok ? (streq(action, "stopped") ? "Unit stopped" : "Unit started")
                                      : (streq(action, "stopped") ? "Unit did not stop" : "Unit did not start"),
                              "UNIT", o[i].name, "UNIT_RESULT", o[i].result, "UNIT_KILLED",
                              o[i].killed ? "1" : "0", NULL);
        }
        json_decref(arr);
}

/* What the database job came to, for a units_failed error that replaces its result. */
static json_t *database_outcome(const job *jb) {
        json_t *o;

        if (jb->r == 0)
                return json_incref(jb->result ?: json_null());
        o = json_pack("{s:s,s:s}", "error", protocol_error_code_to_string(jb->err.code), "message",
                      jb->err.message ?: strerror(jb->r < 0 ? -jb->r : EIO));
        if (o && jb->err.extra)
                json_object_set(o, "details", jb->err.extra);
        return o;
}

/* A job whose units did not all come back is not a success, whatever the database did: its final
 * line is units_failed, naming each unit, its outcome and how to inspect it. */
static void job_units_failed(job *jb, json_t *failed, const char *names) {
        server *s = jb->owner->server;
        _cleanup_free_ char *msg = NULL, *db_text = NULL, *status_cmd = NULL, *log_cmd = NULL;
        const char *unit = json_string_value(json_object_get(json_array_get(failed, 0), "unit"));
        const char *status = json_string_value(json_object_get(jb->result, "status"));
        json_t *outcome = database_outcome(jb);
        int k;

        if (jb->r == 0)
                k = asprintf(&db_text, "the database job succeeded (%s)", status ?: "done");
        else
                k = asprintf(&db_text, "the database job failed: %s", jb->err.message ?: "?");
        if (k < 0 || deps_inspect_commands(s->cfg, unit ?: "UNIT", &status_cmd, &log_cmd) < 0 ||
            asprintf(&msg, "%s did not start again; %s; inspect with: %s", names, db_text, status_cmd) < 0)
                msg = NULL;
        job_fail(jb, PROTOCOL_ERROR_UNITS_FAILED,
                 json_pack("{s:O,s:o}", "units_failed", failed, "database", outcome ?: json_null()),
                 msg ?: "dependent units did not start again");
}

/* The units whose job did not end well (all of names when o is NULL: the manager could not be
 * asked), each with its outcome and the commands to inspect it; *ret_names lists them for a
 * message. */
static json_t *failed_units(job *jb, const char *verb, unit_outcome *o, size_t n, char **const names, size_t n_names,
                            char **ret_names) {
        json_t *failed = json_array();

        for (size_t i = 0; i < (o ? n : n_names); i++) {
                const char *name = o ? o[i].name : names[i], *result = o ? o[i].result : "not reached";
                _cleanup_free_ char *status_cmd = NULL, *journal_cmd = NULL;
                char *more;
                if (o && o[i].ok)
                        continue;
                log_error("Failed to %s %s: %s", verb, name, result);
                if (deps_inspect_commands(jb->owner->server->cfg, name, &status_cmd, &journal_cmd) < 0)
                        continue;
                json_array_append_new(failed, json_pack("{s:s,s:s,s:s,s:s}", "unit", name, "outcome", result, "status",
                                                        status_cmd, "journal", journal_cmd));
                if (asprintf(&more, "%s%s%s (%s)", *ret_names ?: "", *ret_names ? ", " : "", name, result) >= 0) {
                        free(*ret_names);
                        *ret_names = more;
                }
        }
        return failed;
}

static void on_started(void *userdata, unit_outcome *o, size_t n) {
        job *jb = userdata;
        server *s = jb->owner->server;
        _cleanup_free_ char *names = NULL;
        json_t *failed;
        int r;

        jb->t_start_end = job_mono_ms();
        report_units(jb, "started", "started", o, n);
        failed = failed_units(jb, "start again", o, n, jb->stopped, jb->n_stopped, &names);
        unit_outcomes_free(o, n);
        if (json_array_size(failed) > 0)
                job_units_failed(jb, failed, names ?: "a unit");
        json_decref(failed);
        r = statefile_remove(s->state_fd);
        if (r < 0)
                log_warning_errno(r, "Failed to remove the state file: %m");
        job_finish(jb);
}

/* Always reached once units were stopped: failure, cancel and shutdown included. */
void job_phase_start_units(job *jb) {
        server *s = jb->owner->server;
        int r;

        jb->phase = PHASE_STARTING;
        job_gate_update(jb);
        server_notify_status(s, "starting %zu unit%s", jb->n_stopped, jb->n_stopped == 1 ? "" : "s");
        json_t *names = json_array();
        for (size_t i = 0; i < jb->n_stopped; i++)
                json_array_append_new(names, json_string(jb->stopped[i]));
        job_broadcast_event(jb, "units", json_pack("{s:s,s:o}", "phase", "starting", "units", names));
        r = deps_start(s->deps, jb->stopped, jb->n_stopped, (uint64_t) s->cfg->start_timeout_s * 1000000,
                        on_started, jb);
        if (r < 0) {
                log_error_errno(r, "Failed to start the dependent units again: %m");
                on_started(jb, NULL, 0);
        }
}

/* On a shared server the stop is one part of the downtime (job-drain.c), which decides what
 * comes next: whether it was handed over there. */
static bool handed_over(job *jb) {
        if (!jb->downtime)
                return false;
        job_downtime_part_done(jb);
        return true;
}

static void on_stopped(void *userdata, unit_outcome *o, size_t n) {
        job *jb = userdata;
        _cleanup_free_ char *failed = NULL;

        json_t *details;

        jb->t_stop_end = job_mono_ms();
        report_units(jb, "stopped", "stopped", o, n);
        details = failed_units(jb, "stop", o, n, NULL, 0, &failed);
        unit_outcomes_free(o, n);
        if (failed) {
                _cleanup_free_ char *msg = NULL;
                if (asprintf(&msg, "could not stop %s; nothing was changed", failed) < 0)
                        msg = NULL;
                job_fail(jb, PROTOCOL_ERROR_UNITS_FAILED,
                         json_pack("{s:o,s:{s:s}}", "units_failed", details, "database", "status", "unchanged"),
                         msg ?: "could not stop the dependent units");
                if (!handed_over(jb))
                        job_phase_start_units(jb);
                return;
        }
        json_decref(details);
        if (handed_over(jb))
                return;
        if (jb->cancel_requested || jb->owner->server->shutting_down) {
                job_fail(jb, jb->cancel_requested ? PROTOCOL_ERROR_CANCELLED : PROTOCOL_ERROR_INTERRUPTED, NULL,
                         jb->cancel_requested ? "cancelled before the migration started; nothing changed"
                                              : "interrupted before the migration started; nothing changed");
                job_phase_start_units(jb);
                return;
        }
        job_phase_apply(jb);
}

/* Records which units run, durably, then stops them; nothing else is touched before. */
static void on_queried(void *userdata, int r, unit_state *st, size_t n) {
        job *jb = userdata;
        server *s = jb->owner->server;
        json_t *names;
        size_t n_own;

        if (r < 0) {
                job_fail(jb, PROTOCOL_ERROR_UNITS_FAILED, NULL,
                         "cannot ask the service manager about the dependent units; nothing was changed");
                if (!handed_over(jb))
                        job_finish(jb);
                return;
        }
        /* cancelled or interrupted while the dependents were asked: nothing touched yet */
        if (jb->cancel_requested || s->shutting_down) {
                unit_states_free(st, n);
                job_fail(jb, jb->cancel_requested ? PROTOCOL_ERROR_CANCELLED : PROTOCOL_ERROR_INTERRUPTED, NULL,
                         jb->cancel_requested ? "cancelled before the migration started; nothing changed"
                                              : "interrupted before the migration started; nothing changed");
                if (!handed_over(jb))
                        job_finish(jb);
                return;
        }
        r = deps_running_of(st, n, &jb->stopped, &jb->n_stopped);
        unit_states_free(st, n);
        n_own = jb->n_stopped;
        /* stopped by another host's drain whose end is not heard yet: this job starts them too */
        if (r >= 0)
                r = hosts_drained_adopt(s->hosts, &jb->stopped, &jb->n_stopped);
        if (r >= 0)
                r = statefile_write(s->state_fd, s->cfg->database, jb->id, jb->stopped, jb->n_stopped);
        if (r < 0) {
                log_error_errno(r, "Failed to write the state file: %m");
                job_fail(jb, PROTOCOL_ERROR_INTERNAL, NULL,
                         "cannot record which units will be stopped (in the state directory); nothing was "
                         "changed");
                if (!handed_over(jb))
                        job_finish(jb);
                return;
        }
        jb->statefile_written = true;
        jb->touched = true;
        names = json_array();
        for (size_t i = 0; i < jb->n_stopped; i++)
                json_array_append_new(names, json_string(jb->stopped[i]));
        job_broadcast_event(jb, "units", json_pack("{s:s,s:o}", "phase", "stopping", "units", names));
        server_notify_status(s, "stopping %zu unit%s", jb->n_stopped, jb->n_stopped == 1 ? "" : "s");
        jb->t_stop_begin = job_mono_ms();
        r = deps_stop(s->deps, jb->stopped, n_own, (uint64_t) s->cfg->stop_timeout_s * 1000000, on_stopped, jb);
        if (r < 0) {
                job_fail(jb, PROTOCOL_ERROR_UNITS_FAILED, NULL, "cannot stop the dependent units; nothing was changed");
                if (!handed_over(jb))
                        job_phase_start_units(jb);
        }
}

/* Asks which units run (a pm2 or exec: dependent's answer comes from a thread); on_queried goes on. */
void job_phase_stop_units(job *jb) {
        server *s = jb->owner->server;
        int r;

        jb->phase = PHASE_STOPPING;
        r = deps_query(s->deps, s->cfg->units, s->cfg->n_units, on_queried, jb);
        if (r < 0)
                on_queried(jb, r, NULL, 0);
}
