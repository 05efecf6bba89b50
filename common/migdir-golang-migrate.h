/* SPDX-License-Identifier: MIT */
#pragma once

/* golang-migrate's rules (migdir-golang-migrate.c), for its history (daemon/history-golang-migrate.c)
 * and its tests. */

#include <stdbool.h>
#include <stdint.h>

#include "migdir.h"

/* database.NilVersion: no migration applied. */
#define GOLANG_MIGRATE_NIL_VERSION INT64_C(-1)

/* Parses "{version}_{title}.up.sql" / ".down.sql" as the tool's regex does. Returns 0, -EINVAL
 * with a static *ret_reason, or -ENOMEM. */
int golang_migrate_parse_filename(const char *file, int64_t *ret_version, char **ret_title, bool *ret_up,
                                  const char **ret_reason);

/* The version of the migration before m in its directory, GOLANG_MIGRATE_NIL_VERSION for the
 * first (or for a migration of another format). */
int64_t golang_migrate_previous_version(const migration *m);
