/* SPDX-License-Identifier: MIT */
#include <stdint.h>

#include "macro.h"
#include "protocol-methods.h"

#define VERSION_MAX ((json_int_t) INT64_MAX)

static const param_spec plan_params[] = {
        { "direction", PARAM_STRING, 0, 4 },
        { "to", PARAM_INT, 0, VERSION_MAX },
        { "steps", PARAM_INT, 1, 1000000 },
};
static const param_spec up_params[] = {
        { "to", PARAM_INT, 0, VERSION_MAX },
        { "dry_run", PARAM_BOOL, 0, 0 },
        { "per_migration", PARAM_BOOL, 0, 0 },
        { "rehearse", PARAM_BOOL, 0, 0 },
        { "allow_out_of_order", PARAM_BOOL, 0, 0 },
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

#define METHOD(n, p) { n, p, ELEMENTSOF(p) }

const protocol_method protocol_methods[] = {
        { "hello", NULL, 0 },
        { "status", NULL, 0 },
        METHOD("plan", plan_params),
        METHOD("history", history_params),
        { "verify", NULL, 0 },
        METHOD("wait", wait_params),
        { "lock_check", NULL, 0 },
        METHOD("up", up_params),
        METHOD("down", down_params),
        METHOD("cancel", cancel_params),
        { "backups", NULL, 0 },
        { "backup", NULL, 0 },
        METHOD("restore", restore_params),
        METHOD("mark", mark_params),
        METHOD("baseline", baseline_params),
};
const size_t protocol_n_methods = ELEMENTSOF(protocol_methods);

const protocol_method *protocol_method_find(const char *name) {
        for (size_t i = 0; i < protocol_n_methods; i++)
                if (streq(protocol_methods[i].name, name))
                        return &protocol_methods[i];
        return NULL;
}
