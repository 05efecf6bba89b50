/* SPDX-License-Identifier: MIT */
#pragma once

#include <sys/types.h>

/* The database's migration lock: an flock on "<database>-migrated.lock", held for the daemon's
 * whole life, so that two daemons can never migrate the same database. The file carries the
 * holder's pid so that a refused second daemon can name it. */

enum {
        LOCKFILE_HELD = 1, /* another process holds it; *ret_holder names it (0 if unknown) */
};

int lockfile_acquire(const char *database, int *ret_fd, pid_t *ret_holder);

/* "<database>-migrated.lock", malloc'd. */
char *lockfile_path(const char *database);
