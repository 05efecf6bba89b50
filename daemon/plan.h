/* SPDX-License-Identifier: MIT */
#pragma once

/* The planner: given the migrations directory and what the database says is applied, which
 * scripts to run, in which order, and in which transactions. Pure: no I/O, so every refusal
 * (edited or missing applied migration, unknown target, irreversible step) happens before
 * anything changes. */

#include <stdbool.h>
#include <stdint.h>

#include "migdir.h"
#include "protocol.h"

typedef struct applied_migration {
        int64_t version;
        char *name;
        char checksum[SHA256_HEX_SIZE];
        char *applied_at; /* ISO 8601 UTC */
        int64_t duration_ms;
} applied_migration;

typedef struct applied_set {
        applied_migration *items; /* ascending by version */
        size_t n;
        /* Prisma: migrations whose last run failed and was not resolved (mark applied/rolled-back) */
        char **failed;
        size_t n_failed;
        char *failed_hint; /* the format's own tool's way out of a failed state, for the refusal */
        /* The history records only the newest version (golang-migrate): every migration of the
         * set up to it is applied, filled in by applied_set_fill_through(). */
        bool through;
        /* Flyway: a baseline row's version; every version up to it counts as applied */
        int64_t baseline;
        /* Flyway: the latest application of each repeatable migration (name: its description) */
        applied_migration *repeatables;
        size_t n_repeatables;
} applied_set;

void applied_set_clear(applied_set *a);
int64_t applied_set_current(const applied_set *a); /* newest applied version, 0 when none */
const applied_migration *applied_set_find(const applied_set *a, int64_t version);
/* For a history that records only its newest version (a->through): every migration of set up to
 * it becomes an applied item, with the file's name and checksum. Returns 0 or -ENOMEM. */
int applied_set_fill_through(applied_set *a, const migration_set *set);
/* Whether m is applied: its version is, or, for a repeatable, its current script (checksum). */
bool applied_set_has(const applied_set *a, const migration *m);

typedef enum plan_direction {
        PLAN_UP,
        PLAN_DOWN,
} plan_direction;

#define PLAN_NO_TARGET INT64_C(-1)

typedef struct plan_request {
        plan_direction direction;
        int64_t to;    /* PLAN_NO_TARGET: up = latest, down = use steps */
        int64_t steps; /* down only; 0 = not given (1 unless to is given) */
        bool allow_out_of_order; /* up: also apply pending migrations older than the current version */
        bool classify_postgres; /* plan: classify in PostgreSQL's dialect whatever the backend (lint) */
} plan_request;

typedef struct plan_step {
        const migration *migration;     /* borrowed from the migration_set */
        const migration_script *script; /* up or down */
        bool transaction;               /* false: -- migrated: no-transaction */
} plan_step;

typedef struct plan {
        plan_direction direction;
        int64_t from_version;
        int64_t to_version;
        plan_step *steps;
        size_t n;
        bool atomic; /* every step may run inside one transaction */
} plan;

/* Why a plan was refused: code plus a message for people and the details for scripts. */
typedef struct plan_error {
        protocol_error_code code;
        char *message;
        int64_t version;   /* the migration concerned, 0 if none */
        char *file;        /* its file, if any */
        char expected[SHA256_HEX_SIZE]; /* checksum_mismatch: recorded */
        char actual[SHA256_HEX_SIZE];   /* checksum_mismatch: on disk */
} plan_error;

void plan_error_clear(plan_error *e);

enum {
        PLAN_REFUSED = 1, /* *ret_error says why */
};

/* Returns 0 with *ret set (possibly with n == 0: nothing to do), PLAN_REFUSED with *ret_error
 * filled, or -ENOMEM. */
int plan_build(const migration_set *set, const applied_set *applied, const plan_request *req, plan **ret,
               plan_error *ret_error);

plan *plan_free(plan *p);
void plan_freep(plan **p);

/* The problems every read-only view reports: applied migrations whose file changed or vanished.
 * Returns how many were found; the first one is described in *ret_error when given. */
size_t plan_check_applied(const migration_set *set, const applied_set *applied, plan_error *ret_error);
