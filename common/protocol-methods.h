/* SPDX-License-Identifier: MIT */
#pragma once

/* The protocol's methods: one row per method, indexed by protocol_method_id, with the parameters
 * it accepts, whether it changes anything, and the migratectl verb that calls it. The daemon's
 * handlers (daemon/commands.c) and the client's verbs (client/migratectl.c) are tables indexed by
 * the same enum, so a method added here without its handler fails to build.
 *
 * To add a method: a METHOD_ value below (hello lists the methods in this order), its row in
 * protocol-methods.c, its handler in commands.c, its verb (if any) in migratectl.c, and its class
 * in tests/integration/test_authz.py's METHOD_TABLE. */

#include <stdbool.h>
#include <stddef.h>

#include "protocol.h"

typedef enum protocol_method_id {
        METHOD_HELLO,
        METHOD_STATUS,
        METHOD_PLAN,
        METHOD_HISTORY,
        METHOD_VERIFY,
        METHOD_WAIT,
        METHOD_LOCK_CHECK,
        METHOD_UP,
        METHOD_DOWN,
        METHOD_CANCEL,
        METHOD_BACKUPS,
        METHOD_BACKUP,
        METHOD_RESTORE,
        METHOD_MARK,
        METHOD_BASELINE,
        METHOD_REPAIR,
        METHOD_DIFF,
        METHOD_SEED,
        METHOD_RESET,
        METHOD_SCHEMA,
        _METHOD_MAX,
        _METHOD_INVALID = -1,
} protocol_method_id;

typedef enum method_privilege {
        METHOD_READS,   /* anyone who may connect */
        METHOD_CHANGES, /* changes the database or the jobs: root, the daemon's user, the admin group */
} method_privilege;

typedef struct protocol_method {
        const char *name;
        const param_spec *params;
        size_t n_params;
        method_privilege privilege;
        const char *verb; /* migratectl's verb; NULL: none */
} protocol_method;

extern const protocol_method protocol_methods[_METHOD_MAX];

/* _METHOD_INVALID for an unknown method. */
protocol_method_id protocol_method_from_name(const char *name);

/* Whether a request of this method with these params may change anything (a dry run does not). */
bool protocol_method_changes(protocol_method_id id, const json_t *params);
