/* SPDX-License-Identifier: MIT */
#pragma once

/* One request to the daemon (or the one-shot child), start to end, as migratectl.c makes it:
 * connect, send, show progress, print the final line with render (NULL: the caller prints). On
 * success *ret_result (if given) gets a reference to the result. Returns an exit code. */

#include <jansson.h>

#include "protocol-methods.h"

int call_daemon(protocol_method_id method, json_t *params, int (*render)(json_t *), json_t **ret_result);
