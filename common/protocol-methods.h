/* SPDX-License-Identifier: MIT */
#pragma once

/* The protocol's methods and the parameters each accepts: part of the protocol, so the daemon's
 * dispatcher, the documentation and the fuzzer all use this one table. Who may call a method is
 * the daemon's policy and lives there. */

#include <stddef.h>

#include "protocol.h"

typedef struct protocol_method {
        const char *name;
        const param_spec *params;
        size_t n_params;
} protocol_method;

extern const protocol_method protocol_methods[];
extern const size_t protocol_n_methods;

/* NULL for an unknown method. */
const protocol_method *protocol_method_find(const char *name);
