/* SPDX-License-Identifier: MIT */
#pragma once

/* The job queue: requests that change the database wait here in FIFO order and run one at a time
 * on the job worker. Identical waiting "up" requests coalesce into one job with several
 * subscribers; each subscriber gets every progress event and the final reply. */

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "engine.h"

typedef struct server server;
typedef struct jobs jobs;

int jobs_new(server *s, unsigned max_queue, jobs **ret);

/* New jobs get ids after last (the last one recorded before this start). */
void jobs_set_last_id(jobs *j, uint64_t last);
jobs *jobs_free(jobs *j);

/* Queues a job for conn_id (0: nobody waits for it, e.g. --auto-up). request_id is borrowed. */
void jobs_submit(jobs *j, const engine_job *spec, uint64_t conn_id, json_t *request_id);

/* {state, job, queue_length} for status. */
void jobs_describe(jobs *j, json_t *status);

bool jobs_busy(jobs *j);

/* Nothing running and nothing queued. */
bool jobs_idle(jobs *j);

/* Removes a queued job or interrupts the running one (job_id 0: the running one). Returns 0 with
 * a result document, or -ENOENT when there is no such job. */
int jobs_cancel(jobs *j, uint64_t job_id, json_t **ret_result);

/* Fails every queued job with shutting_down and interrupts the running one. */
void jobs_shutdown(jobs *j);
