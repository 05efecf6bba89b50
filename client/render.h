/* SPDX-License-Identifier: MIT */
#pragma once

/* Human rendering of the daemon's replies: progress events on stderr, results on stdout, errors
 * on stderr. Every function is tolerant of missing or mistyped fields. */

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct progress {
        bool tty;          /* stderr is a terminal: an "applying" line is finished in place */
        bool open_line;    /* such a line is on screen without its newline */
        int64_t open_index;
        size_t n_events;   /* lines received before the final one */
} progress;

/* conn_event_fn for human mode; userdata is a progress. */
int render_event(json_t *event, void *userdata);
/* Terminates a line left open by render_event. */
void progress_end(progress *p);

void render_error(json_t *error);
/* A human status lists this many applied migrations, the newest; --all lists every one. */
#define STATUS_APPLIED_SHOWN 10u
/* The last few applied migrations; render_status_all: every one. */
int render_status(json_t *result);
int render_status_all(json_t *result);
/* render-hosts.c: the hosts of a shared database (status's "hosts"); nothing without them. */
int render_hosts(json_t *hosts);

/* render-seeds.c: a result's "seeds"; a seed job's or a reset's result (false: neither); their
 * "seed" progress events. */
void render_seeds(json_t *result);
bool render_seed_job(json_t *result);
void render_seed_event(json_t *ev);
int render_job(json_t *result); /* up and down, also with dry_run */
int render_plan(json_t *result, bool dry_run);
/* render-classify.c: a plan's class per statement with its rules, and its lint findings. */
void render_classification(json_t *result);
int render_findings(json_t *findings);
int render_history(json_t *result);
int render_verify(json_t *result);
int render_diff(json_t *result);
int render_backups(json_t *result);
int render_wait(json_t *result);
int render_marked(json_t *result);   /* mark and baseline */
int render_repaired(json_t *result);
int render_cancel(json_t *result);
