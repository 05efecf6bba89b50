/* SPDX-License-Identifier: MIT */
#pragma once

/* "units.json" in the state directory: which units a job stopped, written durably before the first
 * one is touched and removed after they run again, so that a daemon killed in between starts them
 * at its next start. The old "<database>-migrated.state" beside the database is never read. */

#include <stddef.h>
#include <stdint.h>

#define STATEFILE_NAME "units.json"

/* The file older versions kept beside the database, where others can write (never trusted). */
char *statefile_legacy_path(const char *database);

/* Writes atomically through statedir_write(). */
int statefile_write(int dirfd, const char *database, uint64_t job_id, char *const *units, size_t n);

/* Returns 0 with the units (possibly none) and the job that stopped them, -ENOENT when there is no
 * state file, -EBADMSG when it is malformed or names another database, or -errno. */
int statefile_read(int dirfd, const char *database, uint64_t *ret_job_id, char ***ret_units, size_t *ret_n);

int statefile_remove(int dirfd);

void strv_free_n(char **v, size_t n);
