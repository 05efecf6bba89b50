/* SPDX-License-Identifier: MIT */
#pragma once

/* The wait gate's memory (DESIGN.md §9): the version the operator chose to hold the schema at
 * (after down or restore; only an explicit up ends it), and the migrations of the last failed
 * plan, which the units may run without (they were rolled back). Both live in the state directory
 * as "gate.json" and survive restarts. */

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#define GATE_FILE_NAME "gate.json"

typedef struct gate {
        int dirfd;            /* the state directory, borrowed */
        const char *database; /* borrowed */
        json_t *hold;         /* {"version", "by", "job_id", "since"} or NULL */
        json_t *failed_plan;  /* {"job_id", "versions": [...], "since"} or NULL */
        bool suspended;       /* a job that moves the schema runs: neither opens anything until it ends */
} gate;

/* Reads gate.json; a malformed file (or one for another database) is ignored with *ret_warning
 * set. Returns 0 or -errno for an unreadable directory. */
int gate_load(gate *g, int dirfd, const char *database, char **ret_warning);
void gate_done(gate *g);

/* Each change is written to disk before it returns. */
int gate_hold(gate *g, json_t *version, const char *by, uint64_t job_id);
int gate_release(gate *g);
int gate_fail_plan(gate *g, uint64_t job_id, json_t *versions);
int gate_clear_failed_plan(gate *g);

/* Whether a waiter may pass with the schema as snapshot describes it; *ret_reason (static, may be
 * NULL) says why when it passes without the schema being current. */
bool gate_opens(const gate *g, json_t *snapshot, bool strict, bool *ret_current, const char **ret_reason);

/* For status: {"target", "latest", "pending", "hold", "failed_plan"}. */
json_t *gate_describe(const gate *g, json_t *snapshot);
