/* SPDX-License-Identifier: MIT */
#pragma once

/* The migration engine: scans the directory, plans, applies and records, on top of db.h. An engine
 * belongs to one worker thread; engine_interrupt() is the only call allowed from another. */

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "db.h"
#include "plan.h"
#include "protocol.h"

typedef struct engine engine;

typedef struct engine_options {
        const char *database;
        const char *migrations_dir;
        unsigned busy_timeout_ms;
        bool read_only; /* the reader's engine: never writes */
} engine_options;

/* A failure to hand back to the client: code, message, and details for scripts. */
typedef struct engine_error {
        protocol_error_code code;
        char *message;
        json_t *extra;
} engine_error;

void engine_error_clear(engine_error *e);

enum {
        ENGINE_FAILED = 1, /* *err says why */
};

int engine_new(const engine_options *o, engine **ret, engine_error *err);
engine *engine_free(engine *e);

typedef enum engine_stop_reason {
        ENGINE_STOP_NONE,
        ENGINE_STOP_SHUTDOWN, /* recorded as "interrupted" */
        ENGINE_STOP_CANCEL,   /* recorded as "cancelled" */
} engine_stop_reason;

/* Safe from any thread: stops the running statement and makes the job roll back. */
void engine_interrupt(engine *e, engine_stop_reason why);

/* Whether and why the current job was asked to stop (for waits outside SQL, e.g. the holder
 * check). Safe from any thread. */
engine_stop_reason engine_stop_requested(engine *e);

/* Clears a stop request; called by the job's owner before a job starts. */
void engine_reset_stop(engine *e);

/* Marks attempts a dead predecessor left "running" as interrupted. Returns how many, or < 0. */
int engine_recover(engine *e, engine_error *err);

/* Read views, each from a fresh scan of the directory and a fresh read of the database. */
int engine_status(engine *e, json_t **ret, engine_error *err);
int engine_plan(engine *e, const plan_request *req, json_t **ret, engine_error *err);
int engine_history(engine *e, unsigned limit, json_t **ret, engine_error *err);
int engine_verify(engine *e, json_t **ret, engine_error *err);

typedef struct engine_job {
        uint64_t id;
        plan_request request;
        bool per_migration;
        const char *requested_by;
} engine_job;

/* Called on the engine's thread for each progress event; takes ownership of fields. */
typedef void (*engine_progress_fn)(void *userdata, const char *event, json_t *fields);

/* How many migrations the job would run now (0: nothing to do), or why it would be refused. */
int engine_preview(engine *e, const plan_request *req, size_t *ret_steps, engine_error *err);

/* Runs an up or down job to the end: plan, record the attempt, apply, commit or roll back. */
int engine_run(engine *e, const engine_job *job, engine_progress_fn progress, void *userdata, json_t **ret_result,
               engine_error *err);
