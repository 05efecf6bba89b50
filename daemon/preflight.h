/* SPDX-License-Identifier: MIT */
#pragma once

/* Checks made before a job stops any unit: a job that cannot succeed (no space for its backup, a
 * full database filesystem, a directory it cannot write) is refused while everything still runs. */

#include "engine.h"
#include "settings.h"

/* Returns 0, ENGINE_FAILED with *err set (backup_space, disk_full, not_writable), or -errno. */
int preflight_check(const config *cfg, const db_backend *backend, const engine_job *job, engine_error *err);
