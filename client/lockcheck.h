/* SPDX-License-Identifier: MIT */
#pragma once

/* `migratectl lock-check`: the human rendering of a lock report (common/lockinfo.h), whether the
 * daemon made it (method "lock_check") or migratectl itself (--database, no daemon needed). */

#include <jansson.h>
#include <stdbool.h>

/* Prints the report on stdout, grouped: files, processes, locks, probe, daemon and units when
 * the daemon added them, verdict and action. Returns 0 or -errno (a render function for
 * call_daemon). */
int render_lockcheck(json_t *report);

/* EXIT_OK when a migration could run now (report's migration_possible), else EXIT_BUSY. */
int lockcheck_exit_code(json_t *report);

/* lock-check without the daemon: inspects database, prints the report (a JSON document with
 * json) and returns the exit code; a missing or unreadable database is EXIT_FAILED with a
 * message (with json, {"error":{"code","message"}} on stdout). */
int lockcheck_local(const char *database, bool json);
