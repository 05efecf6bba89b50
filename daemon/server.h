/* SPDX-License-Identifier: MIT */
#pragma once

/* What the loop thread owns: the socket layer, the two workers with their engines, the job
 * queue and the last status snapshot. */

#include <event2/event.h>
#include <jansson.h>
#include <stdbool.h>

#include "control.h"
#include "macro.h"
#include "engine.h"
#include "gate.h"
#include "metrics.h"
#include "settings.h"
#include "status-texts.h"
#include "worker.h"

/* --one-shot: the connected socket migratectl passes (the first fd after stdio, as systemd's). */
#define ONE_SHOT_FD 3

typedef struct jobs jobs;
typedef struct deps deps;
typedef struct waiter waiter;

typedef struct server {
        struct event_base *base;
        const config *cfg;
        control *control;
        worker *job_worker; /* runs up/down jobs, one at a time */
        engine *job_engine;
        worker *reader; /* answers status/plan/history/verify while a job runs */
        engine *read_engine;
        jobs *jobs;
        json_t *snapshot; /* the last status document, answered from while a job runs */
        status_texts status_texts; /* what was encoded of it */
        deps *deps;       /* NULL when no dependents are configured */
        waiter *waiters;  /* "wait" requests until the schema is current */
        int state_fd;     /* the state directory (statedir.h) */
        gate gate;        /* the hold and the failed plan that open "wait" besides a current schema */
        bool socket_created; /* ours to remove at exit (not passed by systemd) */
        bool shutting_down;
        bool serving;        /* start-up is over: signals act at once */
        bool stop_requested; /* SIGTERM/SIGINT during start-up */
        bool rescan_running; /* a refresh (SIGHUP, another host's commit) is on the reader */
        bool rescan_pending; /* another came meanwhile: one more refresh after it */
        const char *rescan_why; /* its log line (static), or NULL */
        struct event *exit_check;
        struct event *watchdog;
        metrics *metrics; /* NULL: no metrics configured */
        struct hosts *hosts; /* a shared server's hosts (hosts.h); NULL: SQLite */
} server;

/* Builds what serving needs before anyone is served: the event loop, the state directory, both
 * engines (clearing what a killed predecessor left), the bus to the units' manager. Logs why it
 * failed. */
int server_new(const config *cfg, const db_file_identity *identity, server **ret);
/* The job queue, the workers and the socket: from here on requests are accepted. */
int server_listen(server *s);
server *server_free(server *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(server *, server_free);

/* Replies on a connection: id is the request's id (borrowed). Lost connections are ignored. */
void server_reply_result(server *s, uint64_t conn_id, json_t *id, json_t *result);
/* The format whose version keys protocol version 2 speaks; NULL before the engines open. */
const migration_format *server_wire_format(server *s);
void server_reply_error(server *s, uint64_t conn_id, json_t *id, protocol_error_code code, const char *message,
                        json_t *extra);
void server_reply_event(server *s, uint64_t conn_id, json_t *id, const char *event, json_t *fields);

/* Replaces the status snapshot (takes ownership) and answers the waiters it satisfies. */
void server_set_snapshot(server *s, json_t *snapshot);
/* Re-reads the status on the reader and publishes it (server_set_snapshot), logging why (a
 * static string, or NULL) when it starts. */
void server_refresh(server *s, const char *why);

/* Whether the snapshot says the schema is current: nothing pending, no problem. */
bool server_schema_current(server *s);

/* Answers a "wait" request once the schema is current, or with "timeout" after timeout_ms. */
void server_add_waiter(server *s, uint64_t conn_id, json_t *id, unsigned timeout_ms, bool strict);

/* The gate's state changed (a job began or ended, a hold was set): answer the waiters it opens. */
void server_gate_changed(server *s);

/* sd_notify STATUS= lines for systemctl status; idle shows the version. */
void server_notify_status(server *s, const char *fmt, ...) _printf_(2, 3);
void server_notify_idle(server *s);

/* Answers a status request: the snapshot, plus the live state (state, job, queue, gate) and
 * more's members (hosts, drift; more is stolen, may be NULL). applied_last > 0: only the newest
 * so many applied migrations ("applied_count" keeps the total). */
void server_reply_status(server *s, uint64_t conn_id, json_t *id, unsigned applied_last, json_t *more);

/* Begins a clean shutdown: stop accepting, fail queued jobs, interrupt the running one. */
void server_shutdown(server *s);

/* Called when the running job ends, so that shutdown can complete. */
void server_job_finished(server *s);
