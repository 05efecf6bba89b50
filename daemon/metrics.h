/* SPDX-License-Identifier: MIT */
#pragma once

/* Metrics for Prometheus: the schema version, pending migrations, the last job's outcome and
 * duration, the dependents' downtime, failures and waits for the database's other holders. Kept
 * on the loop thread, rendered in Prometheus' text format, written atomically to a text file for
 * node_exporter's textfile collector and/or served over HTTP on a loopback address. */

#include <event2/event.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

typedef struct metrics metrics;

/* How one job ended, as the metrics count it. */
typedef struct metrics_job {
        const char *kind;       /* "up", "down", "restore", ... (engine_job_kind_name) */
        const char *error_code; /* NULL: it succeeded */
        int64_t duration_ms;
        int64_t downtime_ms;    /* from stopping the dependents to their start; 0: none stopped */
        bool waited_for_holders; /* other processes kept the database open after the stop */
        int64_t holder_wait_ms;
} metrics_job;

/* NULL in *ret when neither textfile nor listen is set (every function takes a NULL metrics).
 * listen is "127.0.0.1:PORT", "[::1]:PORT" or "localhost:PORT": any other host is refused, as
 * the endpoint answers anyone who can connect. Logs why it failed. */
int metrics_new(struct event_base *base, const char *database, const char *textfile, const char *listen,
                metrics **ret);
metrics *metrics_free(metrics *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(metrics *, metrics_free);

/* A new status snapshot (borrowed): its version, pending and problems. Rewrites the text file. */
void metrics_set_snapshot(metrics *m, json_t *snapshot);

/* A job ended. Rewrites the text file. */
void metrics_job_finished(metrics *m, const metrics_job *j);

/* The exposition, NUL-terminated (malloc'ed), or NULL when out of memory. */
char *metrics_render(metrics *m);

/* metrics-http.c: serves GET /metrics on listen; the port it bound in *ret_port (listen's port
 * 0 picks a free one). */
typedef struct metrics_http metrics_http;
int metrics_http_new(struct event_base *base, const char *listen, metrics *m, metrics_http **ret,
                     unsigned *ret_port);
metrics_http *metrics_http_free(metrics_http *h);

/* What listen must look like, for the messages. */
#define METRICS_LISTEN_EXPECTED \
        "127.0.0.1:PORT, [::1]:PORT or localhost:PORT (the endpoint answers anyone who connects: loopback only)"

/* Whether listen names a loopback host and a port; host and port split out (host: without
 * brackets, at most size bytes). */
bool metrics_listen_parse(const char *listen, char *host, size_t size, unsigned *ret_port);
