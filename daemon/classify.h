/* SPDX-License-Identifier: MIT */
#pragma once

/* Classification of a plan before it runs: each statement is "online" (additive: the running
 * services keep working while it runs) or "breaking" (they must be stopped), with the id of the
 * rule that decided and a reason, from what the database itself reports about the statement,
 * never from the SQL text. SQLite: the plan replayed on an in-memory copy of the live schema,
 * with the authorizer callback naming every action of a statement and a catalog diff (PRAGMA
 * table_xinfo) before and after each ALTER TABLE (db-sqlite-classify.c, part of the db layer).
 * A file's "-- migrated: online" / "-- migrated: breaking" directive overrides, and says so. */

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define CLASS_ONLINE "online"
#define CLASS_BREAKING "breaking"

enum {
        CLASSIFY_LIVE_FAILED = 1, /* the live database could not be read: *ret_error says why */
};

typedef struct classify_script {
        const char *file; /* for messages */
        const char *sql;  /* NUL-terminated */
        const char *override; /* CLASS_ONLINE / CLASS_BREAKING from a directive, or NULL */
} classify_script;

/* Replays scripts in order on an in-memory copy of the schema of the SQLite database at
 * live_path. Returns 0 with *ret: {class, steps: [{file, class, rule, reason, override?,
 * statements: [{sql, class, rule, reason}], findings: [...]}]}, CLASSIFY_LIVE_FAILED with
 * *ret_error, or -errno. */
int classify_sqlite(const char *live_path, const classify_script *scripts, size_t n, json_t **ret, char **ret_error);

/* Runs scripts in one transaction (rolled back) on a throwaway copy of the database, timing how
 * long the write lock is held, stopping once that passes bound_ms: *ret = {lock_ms, failed,
 * over, slowest: {file, sql, ms}} (over: stopped at the bound; slowest: so far). */
int classify_sqlite_time(const char *copy_path, const classify_script *scripts, size_t n, unsigned bound_ms,
                         json_t **ret, char **ret_error);

/* The same for PostgreSQL, from PostgreSQL's own parser (libpg_query) on the scripts alone: the
 * node kind of each statement, and ALTER TABLE's commands. Findings: drop-table, drop-column,
 * not-null-without-default (error), index-not-concurrent (warning). Without libpg_query every
 * step is "unknown". Returns 0 or -ENOMEM. */
int classify_pg(const classify_script *scripts, size_t n, json_t **ret);

/* A classification every statement of which is "breaking", rule "unknown" (a backend that
 * cannot classify): the plan keeps today's stop/start path. */
json_t *classify_unknown(const classify_script *scripts, size_t n, const char *reason);

/* Sets a step's class, rule and reason from its statements (the first breaking one decides,
 * else the first), then applies a directive's override, keeping what was detected. */
void classify_step_finish(json_t *step, const char *override);

/* Whether a plan so classified must stop its dependents: any step breaking, or no
 * classification at all. */
bool plan_needs_downtime(const json_t *classification);
