/* SPDX-License-Identifier: MIT */
#pragma once

/* One request to the daemon (or the one-shot child), start to end, as every verb makes it (call.c):
 * connect, send, show progress, print the final line with render (NULL: the caller prints). On
 * success *ret_result (if given) gets a reference to the result. Returns an exit code. */

#include <jansson.h>

#include "protocol-methods.h"

#include <stdint.h>

int call_daemon(protocol_method_id method, json_t *params, int (*render)(json_t *), json_t **ret_result);
/* The same, retrying the connection until connect_deadline_ms (CLOCK_MONOTONIC, now_ms()'s clock;
 * 0: one attempt): a gate at boot may run before the daemon or its socket exists. */
int call_daemon_until(protocol_method_id method, json_t *params, int (*render)(json_t *), json_t **ret_result,
                      int64_t connect_deadline_ms);
int64_t now_ms(void);
