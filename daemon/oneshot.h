/* SPDX-License-Identifier: MIT */
#pragma once

/* The one-shot mode's lock (migrated --one-shot, started by migratectl --database): the daemon's
 * own flock on the database file, so one writer per database holds across both modes. Another
 * one-shot holding it is waited for (replicas starting at once apply once, the others then find
 * the schema current), and so is a holder not visible in our pid namespace (another container's);
 * a daemon holding it is named with its socket and refused. */

#include <stdbool.h>

#include "dblock.h"
#include "settings.h"

enum {
        ONESHOT_REFUSED = 1, /* a daemon holds the lock; logged */
};

/* Takes the database's lock as dblock_acquire() does, waiting while another one-shot holds it and
 * while the client on client_fd is still there. Returns 0, ONESHOT_REFUSED, or -errno (-ECONNRESET:
 * the client went away while waiting). */
int oneshot_acquire(const config *cfg, const dblock_create *create, int client_fd, int *ret_fd,
                    db_file_identity *ret_identity, bool *ret_created);
