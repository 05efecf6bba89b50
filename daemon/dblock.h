/* SPDX-License-Identifier: MIT */
#pragma once

/* One writer per database, keyed by the database file's identity: an flock(2) on the database
 * file itself, held for the daemon's whole life. A symlink or a hard link to the same file, or
 * another spelling of its path, finds the same lock; there is no lock file to delete. On a local
 * Linux file system flock locks and SQLite's POSIX (fcntl) locks are independent (README,
 * "One daemon per database", for the network file system caveat). */

#include <stdbool.h>
#include <sys/types.h>

#include "db.h"

enum {
        DBLOCK_HELD = 1, /* another process holds it; *ret_holder names it (0 if unknown) */
};

/* How to create the database when it does not exist yet. */
typedef struct dblock_create {
        uid_t owner; /* (uid_t) -1: ours */
        gid_t group; /* (gid_t) -1: ours */
        mode_t mode; /* applied exactly, whatever the umask */
} dblock_create;

/* Opens the database file (creating it empty with create's owner, group and mode when it does not
 * exist; never through a symlink then), takes the lock and returns the descriptor, which must stay
 * open (closing it early would also drop SQLite's POSIX locks of this process on the file), and the
 * file's identity. *ret_created tells whether the file was made here. */
int dblock_acquire(const char *database, const dblock_create *create, int *ret_fd, db_file_identity *ret_identity,
                   bool *ret_created, pid_t *ret_holder);

/* The process holding an flock write lock on the file (dev, ino), from /proc/locks; 0 if unknown. */
pid_t dblock_find_holder(dev_t dev, ino_t ino);
