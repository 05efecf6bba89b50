/* SPDX-License-Identifier: MIT */
#pragma once

/* What the loop thread owns: the socket layer, the two workers with their engines, the job
 * queue and the last status snapshot. */

#include <event2/event.h>
#include <jansson.h>
#include <stdbool.h>

#include "control.h"
#include "engine.h"
#include "settings.h"
#include "worker.h"

typedef struct jobs jobs;

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
        bool shutting_down;
        struct event *exit_check;
} server;

/* Replies on a connection: id is the request's id (borrowed). Lost connections are ignored. */
void server_reply_result(server *s, uint64_t conn_id, json_t *id, json_t *result);
void server_reply_error(server *s, uint64_t conn_id, json_t *id, protocol_error_code code, const char *message,
                        json_t *extra);
void server_reply_event(server *s, uint64_t conn_id, json_t *id, const char *event, json_t *fields);

/* Replaces the status snapshot (takes ownership). */
void server_set_snapshot(server *s, json_t *snapshot);

/* The status document: snapshot plus live state. */
json_t *server_status(server *s);

/* Begins a clean shutdown: stop accepting, fail queued jobs, interrupt the running one. */
void server_shutdown(server *s);

/* Called when the running job ends, so that shutdown can complete. */
void server_job_finished(server *s);
