/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include "jobs.h"
#include "log.h"
#include "macro.h"
#include "server.h"

/* A final reply that cannot be encoded (e.g. no memory for it) still ends its request. */
static char *final_line(char *line) {
        return line ?: strdup(PROTOCOL_FALLBACK_ERROR);
}

void server_reply_result(server *s, uint64_t conn_id, json_t *id, json_t *result) {
        if (conn_id == 0) {
                json_decref(result);
                return;
        }
        (void) control_send(s->control, conn_id, final_line(protocol_encode_result(id, result)), true);
}

void server_reply_error(server *s, uint64_t conn_id, json_t *id, protocol_error_code code, const char *message,
                        json_t *extra) {
        if (conn_id == 0) {
                json_decref(extra);
                return;
        }
        (void) control_send(s->control, conn_id, final_line(protocol_encode_error(id, code, message, extra)), true);
}

void server_reply_event(server *s, uint64_t conn_id, json_t *id, const char *event, json_t *fields) {
        if (conn_id == 0) {
                json_decref(fields);
                return;
        }
        (void) control_send(s->control, conn_id, protocol_encode_event(id, event, fields), false);
}

struct waiter {
        server *server;
        uint64_t conn_id;
        json_t *id;
        bool strict; /* only a current schema opens it, never a failed migration */
        struct event *timer;
        waiter *prev, *next;
};

static void waiter_free(waiter *w) {
        server *s = w->server;

        if (w->prev)
                w->prev->next = w->next;
        else
                s->waiters = w->next;
        if (w->next)
                w->next->prev = w->prev;
        if (w->timer)
                event_free(w->timer);
        json_decref(w->id);
        free(w);
}

bool server_schema_current(server *s) {
        return s->snapshot && json_array_size(json_object_get(s->snapshot, "pending")) == 0 &&
               json_array_size(json_object_get(s->snapshot, "problems")) == 0;
}

static json_t *gate_result(server *s, bool current, const char *reason) {
        json_t *r = json_pack("{s:O,s:b}", "current_version",
                              json_object_get(s->snapshot, "current_version") ?: json_null(), "schema_current", current);

        if (r && reason)
                json_object_set_new(r, "reason", json_string(reason));
        return r;
}

static void check_waiters(server *s) {
        for (waiter *w = s->waiters, *next; w; w = next) {
                const char *reason;
                bool current;
                next = w->next;
                if (!gate_opens(&s->gate, s->snapshot, w->strict, &current, &reason))
                        continue;
                server_reply_result(s, w->conn_id, w->id, gate_result(s, current, reason));
                waiter_free(w);
        }
}

void server_gate_changed(server *s) {
        check_waiters(s);
}

static void on_waiter_timeout(evutil_socket_t fd, short what, void *userdata) {
        waiter *w = userdata;
        json_t *pending = json_object_get(w->server->snapshot, "pending");

        server_reply_error(w->server, w->conn_id, w->id, PROTOCOL_ERROR_TIMEOUT,
                           json_array_size(pending) > 0
                                   ? "timed out: the schema is still not current (migrations are pending)"
                                   : "timed out: the schema is still not current (see migratectl status)",
                           json_pack("{s:O}", "pending", pending ?: json_null()));
        waiter_free(w);
}

void server_add_waiter(server *s, uint64_t conn_id, json_t *id, unsigned timeout_ms, bool strict) {
        struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };
        const char *reason;
        waiter *w;
        bool current;

        if (gate_opens(&s->gate, s->snapshot, strict, &current, &reason)) {
                server_reply_result(s, conn_id, id, gate_result(s, current, reason));
                return;
        }
        w = calloc(1, sizeof(*w));
        if (!w || !(w->timer = evtimer_new(s->base, on_waiter_timeout, w))) {
                free(w);
                server_reply_error(s, conn_id, id, PROTOCOL_ERROR_INTERNAL, "out of memory", NULL);
                return;
        }
        w->server = s;
        w->conn_id = conn_id;
        w->id = json_incref(id);
        w->strict = strict;
        w->next = s->waiters;
        if (s->waiters)
                s->waiters->prev = w;
        s->waiters = w;
        evtimer_add(w->timer, &tv);
}

void server_set_snapshot(server *s, json_t *snapshot) {
        if (!snapshot)
                return;
        json_decref(s->snapshot);
        s->snapshot = snapshot;
        check_waiters(s);
}

void server_notify_status(server *s, const char *fmt, ...) {
        char text[256];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(text, sizeof(text), fmt, ap);
        va_end(ap);
        (void) sd_notifyf(0, "STATUS=%s", text);
}

void server_notify_idle(server *s) {
        json_t *cur = s->snapshot ? json_object_get(s->snapshot, "current_version") : NULL;

        server_notify_status(s, "Idle at version %" JSON_INTEGER_FORMAT, json_is_integer(cur) ? json_integer_value(cur) : 0);
}

json_t *server_status(server *s) {
        /* shallow copy: the snapshot's members are shared, never modified after publication */
        json_t *o = s->snapshot ? json_copy(s->snapshot) : json_object();

        if (o) {
                jobs_describe(s->jobs, o);
                json_object_set_new(o, "gate", gate_describe(&s->gate, s->snapshot));
        }
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
        while (s->waiters) {
                server_reply_error(s, s->waiters->conn_id, s->waiters->id, PROTOCOL_ERROR_SHUTTING_DOWN,
                                   "migrated is shutting down", NULL);
                waiter_free(s->waiters);
        }
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
