/* SPDX-License-Identifier: MIT */
#include <stdint.h>

#include "macro.h"
#include "protocol-methods.h"

#define VERSION_MAX ((json_int_t) INT64_MAX)

static const param_spec plan_params[] = {
        { "direction", PARAM_STRING, 0, 4 },
        { "to", PARAM_INT, 0, VERSION_MAX },
        { "steps", PARAM_INT, 1, 1000000 },
        { "dialect", PARAM_STRING, 0, 16 },
};
static const param_spec up_params[] = {
        { "to", PARAM_INT, 0, VERSION_MAX },
        { "dry_run", PARAM_BOOL, 0, 0 },
        { "per_migration", PARAM_BOOL, 0, 0 },
        { "rehearse", PARAM_BOOL, 0, 0 },
        { "allow_out_of_order", PARAM_BOOL, 0, 0 },
        { "seed", PARAM_BOOL, 0, 0 },
};
static const param_spec down_params[] = {
        { "to", PARAM_INT, 0, VERSION_MAX },
        { "steps", PARAM_INT, 1, 1000000 },
        { "dry_run", PARAM_BOOL, 0, 0 },
};
static const param_spec history_params[] = {
        { "limit", PARAM_INT, 1, 10000 },
};
static const param_spec wait_params[] = {
        { "timeout_ms", PARAM_INT, 0, 86400000 },
        { "strict", PARAM_BOOL, 0, 0 },
};
static const param_spec cancel_params[] = {
        { "job_id", PARAM_INT, 1, PROTOCOL_ID_INT_MAX },
};
static const param_spec restore_params[] = {
        { "backup", PARAM_STRING, 0, 255 },
};
static const param_spec mark_params[] = {
        { "migration", PARAM_STRING, 0, 255 },
        { "state", PARAM_STRING, 0, 16 },
};
static const param_spec baseline_params[] = {
        { "version", PARAM_INT, 1, VERSION_MAX },
};
static const param_spec status_params[] = {
        { "drift", PARAM_BOOL, 0, 0 },
        { "applied_last", PARAM_INT, 0, 1000000 },
};
static const param_spec repair_params[] = {
        { "migration", PARAM_STRING, 0, 255 },
};
static const param_spec schema_params[] = {
        { "with_history", PARAM_BOOL, 0, 0 },
};

#define PARAMS(p) p, ELEMENTSOF(p)

/* One row per method, in the order hello lists them. */
const protocol_method protocol_methods[] = {
        [METHOD_HELLO] = { "hello", NULL, 0, METHOD_READS, NULL },
        [METHOD_STATUS] = { "status", PARAMS(status_params), METHOD_READS, "status" },
        [METHOD_PLAN] = { "plan", PARAMS(plan_params), METHOD_READS, "plan" },
        [METHOD_HISTORY] = { "history", PARAMS(history_params), METHOD_READS, "history" },
        [METHOD_VERIFY] = { "verify", NULL, 0, METHOD_READS, "verify" },
        [METHOD_WAIT] = { "wait", PARAMS(wait_params), METHOD_READS, "wait" },
        [METHOD_LOCK_CHECK] = { "lock_check", NULL, 0, METHOD_READS, "lock-check" },
        [METHOD_UP] = { "up", PARAMS(up_params), METHOD_CHANGES, "up" },
        [METHOD_DOWN] = { "down", PARAMS(down_params), METHOD_CHANGES, "down" },
        [METHOD_CANCEL] = { "cancel", PARAMS(cancel_params), METHOD_CHANGES, "cancel" },
        [METHOD_BACKUPS] = { "backups", NULL, 0, METHOD_READS, "backups" },
        [METHOD_BACKUP] = { "backup", NULL, 0, METHOD_CHANGES, "backup" },
        [METHOD_RESTORE] = { "restore", PARAMS(restore_params), METHOD_CHANGES, "restore" },
        [METHOD_MARK] = { "mark", PARAMS(mark_params), METHOD_CHANGES, "mark" },
        [METHOD_BASELINE] = { "baseline", PARAMS(baseline_params), METHOD_CHANGES, "baseline" },
        [METHOD_REPAIR] = { "repair", PARAMS(repair_params), METHOD_CHANGES, "repair" },
        [METHOD_DIFF] = { "diff", NULL, 0, METHOD_READS, "diff" },
        [METHOD_SEED] = { "seed", NULL, 0, METHOD_CHANGES, "seed" },
        [METHOD_RESET] = { "reset", NULL, 0, METHOD_CHANGES, "reset" },
        [METHOD_SCHEMA] = { "schema", PARAMS(schema_params), METHOD_READS, "schema" },
};
_Static_assert(ELEMENTSOF(protocol_methods) == _METHOD_MAX, "one row per protocol_method_id");

protocol_method_id protocol_method_from_name(const char *name) {
        for (protocol_method_id i = 0; i < _METHOD_MAX; i++)
                if (protocol_methods[i].name && streq(protocol_methods[i].name, name))
                        return i;
        return _METHOD_INVALID;
}

/* The privilege column, read in this one place: a dry run changes nothing, so anyone who may read
 * may ask for one; dry_run: false is a change like any other. */
bool protocol_method_changes(protocol_method_id id, const json_t *params) {
        return protocol_methods[id].privilege == METHOD_CHANGES &&
               !json_is_true(json_object_get(params, "dry_run"));
}
