/* SPDX-License-Identifier: MIT */
#include <stdlib.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include "jobs.h"
#include "log.h"
#include "macro.h"
#include "server.h"

void server_reply_result(server *s, uint64_t conn_id, json_t *id, json_t *result) {
        if (conn_id == 0) {
                json_decref(result);
                return;
        }
        (void) control_send(s->control, conn_id, protocol_encode_result(id, result), true);
}

void server_reply_error(server *s, uint64_t conn_id, json_t *id, protocol_error_code code, const char *message,
                        json_t *extra) {
        if (conn_id == 0) {
                json_decref(extra);
                return;
        }
        (void) control_send(s->control, conn_id, protocol_encode_error(id, code, message, extra), true);
}

void server_reply_event(server *s, uint64_t conn_id, json_t *id, const char *event, json_t *fields) {
        if (conn_id == 0) {
                json_decref(fields);
                return;
        }
        (void) control_send(s->control, conn_id, protocol_encode_event(id, event, fields), false);
}

void server_set_snapshot(server *s, json_t *snapshot) {
        if (!snapshot)
                return;
        json_decref(s->snapshot);
        s->snapshot = snapshot;
}

json_t *server_status(server *s) {
        /* shallow copy: the snapshot's members are shared, never modified after publication */
        json_t *o = s->snapshot ? json_copy(s->snapshot) : json_object();

        if (o)
                jobs_describe(s->jobs, o);
        return o;
}

/* Exit once every reply is written (or after two seconds, for clients that stopped reading). */
static void exit_check(evutil_socket_t fd, short what, void *userdata) {
        server *s = userdata;
        static struct timespec first;
        struct timespec now;
        struct timeval again = { 0, 20000 };

        clock_gettime(CLOCK_MONOTONIC, &now);
        if (first.tv_sec == 0)
                first = now;
        if (jobs_busy(s->jobs) || (control_pending_output(s->control) > 0 && now.tv_sec - first.tv_sec < 2)) {
                if (!jobs_busy(s->jobs))
                        evtimer_add(s->exit_check, &again);
                return;
        }
        event_base_loopexit(s->base, NULL);
}

void server_shutdown(server *s) {
        if (s->shutting_down)
                return;
        s->shutting_down = true;
        log_info("Shutting down%s", jobs_busy(s->jobs) ? ": interrupting the running job" : "");
        (void) sd_notify(0, "STOPPING=1\nSTATUS=Shutting down");
        control_stop_accepting(s->control);
        jobs_shutdown(s->jobs);
        if (!s->exit_check)
                s->exit_check = evtimer_new(s->base, exit_check, s);
        if (s->exit_check && !jobs_busy(s->jobs))
                event_active(s->exit_check, EV_TIMEOUT, 0);
}

void server_job_finished(server *s) {
        if (s->shutting_down && s->exit_check)
                event_active(s->exit_check, EV_TIMEOUT, 0);
}
