/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "jobs.h"
#include "log.h"
#include "macro.h"
#include "server.h"

typedef struct subscriber {
        uint64_t conn_id;
        json_t *request_id;
} subscriber;

typedef struct job {
        jobs *owner;
        uint64_t id;
        engine_job spec;
        char *requested_by;
        subscriber *subs;
        size_t n_subs;
        json_t *progress; /* the last "migration" event, for status */
        /* filled on the worker thread, read on the loop thread after it finished */
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
        job *running;
        job *head, *tail;
        size_t queued;
};

/* A progress event travelling from the worker thread to the loop. */
typedef struct progress_msg {
        job *job;
        char *event;
        json_t *fields;
} progress_msg;

static void job_free(job *jb) {
        for (size_t i = 0; i < jb->n_subs; i++)
                json_decref(jb->subs[i].request_id);
        free(jb->subs);
        free(jb->requested_by);
        json_decref(jb->progress);
        json_decref(jb->result);
        json_decref(jb->snapshot);
        engine_error_clear(&jb->err);
        free(jb);
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

static void broadcast_event(job *jb, const char *event, json_t *fields) {
        server *s = jb->owner->server;

        json_object_set_new(fields, "job_id", json_integer((json_int_t) jb->id));
        for (size_t i = 0; i < jb->n_subs; i++)
                server_reply_event(s, jb->subs[i].conn_id, jb->subs[i].request_id, event, json_copy(fields));
        json_decref(fields);
}

static void deliver_progress(void *userdata) {
        progress_msg *m = userdata;

        if (streq(m->event, "migration")) {
                json_decref(m->job->progress);
                m->job->progress = json_incref(m->fields);
        }
        broadcast_event(m->job, m->event, m->fields);
        free(m->event);
        free(m);
}

/* Engine callback, on the worker thread: hand the event over to the loop. */
static void on_progress(void *userdata, const char *event, json_t *fields) {
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

static void job_run(void *userdata) {
        job *jb = userdata;
        server *s = jb->owner->server;
        engine_error ignored = {};

        log_info("Job %" PRIu64 " started: %s, requested by %s", jb->id,
                 jb->spec.request.direction == PLAN_UP ? "up" : "down", jb->requested_by);
        jb->r = engine_run(s->job_engine, &jb->spec, on_progress, jb, &jb->result, &jb->err);
        /* A fresh snapshot while we are on the thread that owns the writer's view. */
        if (engine_status(s->job_engine, &jb->snapshot, &ignored) != 0)
                jb->snapshot = NULL;
        engine_error_clear(&ignored);
}

static void jobs_start_next(jobs *j);

static void job_done(void *userdata) {
        job *jb = userdata;
        jobs *j = jb->owner;
        server *s = j->server;

        if (jb->r == 0)
                log_info("Job %" PRIu64 " finished: %s", jb->id,
                         json_string_value(json_object_get(jb->result, "status")) ?: "done");
        else
                log_error("Job %" PRIu64 " failed: %s", jb->id, jb->err.message ?: strerror(-jb->r));
        if (jb->snapshot)
                server_set_snapshot(s, TAKE_PTR(jb->snapshot));
        for (size_t i = 0; i < jb->n_subs; i++) {
                if (jb->r == 0)
                        server_reply_result(s, jb->subs[i].conn_id, jb->subs[i].request_id, json_incref(jb->result));
                else if (jb->r > 0)
                        server_reply_error(s, jb->subs[i].conn_id, jb->subs[i].request_id, jb->err.code,
                                           jb->err.message, json_incref(jb->err.extra));
                else
                        server_reply_error(s, jb->subs[i].conn_id, jb->subs[i].request_id, PROTOCOL_ERROR_INTERNAL,
                                           strerror(-jb->r), NULL);
        }
        j->running = NULL;
        job_free(jb);
        server_job_finished(s);
        jobs_start_next(j);
}

static void jobs_start_next(jobs *j) {
        job *jb;
        size_t pos = 1;

        if (j->running || !j->head || j->server->shutting_down)
                return;
        jb = j->head;
        j->head = jb->next;
        if (!j->head)
                j->tail = NULL;
        j->queued--;
        jb->next = NULL;
        j->running = jb;
        /* tell the ones still waiting that they moved up */
        for (job *w = j->head; w; w = w->next, pos++)
                for (size_t i = 0; i < w->n_subs; i++)
                        server_reply_event(j->server, w->subs[i].conn_id, w->subs[i].request_id, "queued",
                                           json_pack("{s:I,s:I}", "job_id", (json_int_t) w->id, "position",
                                                     (json_int_t) pos));
        if (worker_submit(j->server->job_worker, job_run, job_done, jb) < 0) {
                jb->r = -ESHUTDOWN;
                job_done(jb);
        }
}

static bool same_request(const job *jb, const engine_job *spec) {
        return jb->spec.request.direction == PLAN_UP && spec->request.direction == PLAN_UP &&
               jb->spec.request.to == spec->request.to && jb->spec.per_migration == spec->per_migration;
}

void jobs_submit(jobs *j, const engine_job *spec, uint64_t conn_id, json_t *request_id) {
        server *s = j->server;
        size_t pos = j->running ? 1 : 0;
        job *jb;

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
        jb->id = ++j->next_id;
        jb->spec = *spec;
        jb->spec.id = jb->id;
        jb->spec.requested_by = jb->requested_by;
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

void jobs_describe(jobs *j, json_t *status) {
        json_t *desc = json_null();

        if (j->running) {
                desc = json_pack("{s:I,s:s,s:s}", "id", (json_int_t) j->running->id, "kind",
                                j->running->spec.request.direction == PLAN_UP ? "up" : "down", "requested_by",
                                j->running->requested_by);
                if (j->running->progress) {
                        static const char *const keys[] = { "index", "total", "version", "name", "phase" };
                        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                                json_t *v = json_object_get(j->running->progress, keys[i]);
                                if (v)
                                        json_object_set(desc, keys[i], v);
                        }
                }
        }
        json_object_set_new(status, "state", json_string(j->running ? "running" : "idle"));
        json_object_set_new(status, "job", desc);
        json_object_set_new(status, "queue_length", json_integer((json_int_t) j->queued));
}

void jobs_shutdown(jobs *j) {
        server *s = j->server;

        for (job *jb = j->head, *next; jb; jb = next) {
                next = jb->next;
                for (size_t i = 0; i < jb->n_subs; i++)
                        server_reply_error(s, jb->subs[i].conn_id, jb->subs[i].request_id,
                                           PROTOCOL_ERROR_SHUTTING_DOWN,
                                           "migrated is shutting down; the job was not started", NULL);
                job_free(jb);
        }
        j->head = j->tail = NULL;
        j->queued = 0;
        if (j->running)
                engine_interrupt(s->job_engine);
}
