/* SPDX-License-Identifier: MIT */
#pragma once

/* "<database>-migrated.state": which units a job stopped, written durably before the first one
 * is touched and removed after they run again, so that a daemon killed in between starts them
 * at its next start. */

#include <stddef.h>
#include <stdint.h>

char *statefile_path(const char *database);

/* Writes atomically: temporary file, fsync, rename, fsync of the directory. */
int statefile_write(const char *database, uint64_t job_id, char *const *units, size_t n);

/* Returns 0 with the units (possibly none), -ENOENT when there is no state file, or -errno. */
int statefile_read(const char *database, char ***ret_units, size_t *ret_n);

int statefile_remove(const char *database);

void strv_free_n(char **v, size_t n);
