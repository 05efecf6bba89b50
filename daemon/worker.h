/* SPDX-License-Identifier: MIT */
#pragma once

/* A worker thread fed with tasks in order, so SQL never blocks the event loop. A task's "done"
 * callback and anything posted with worker_post() run later on the loop thread. */

#include <event2/event.h>

typedef struct worker worker;

typedef void (*worker_fn)(void *userdata);

int worker_new(struct event_base *base, const char *name, worker **ret);

/* Stops accepting tasks, lets the queued ones finish and joins the thread. */
worker *worker_free(worker *w);

/* Runs fn(userdata) on the worker thread, then done(userdata) on the loop thread. */
int worker_submit(worker *w, worker_fn fn, worker_fn done, void *userdata);

/* From the worker thread: runs fn(userdata) on the loop thread soon, in posting order. */
int worker_post(worker *w, worker_fn fn, void *userdata);
