/* SPDX-License-Identifier: MIT */
#pragma once

/* The one-shot mode: with --database, migratectl needs no daemon. It starts `migrated --one-shot`
 * as its child with one end of a socketpair as fd 3 and speaks the same protocol over the other
 * end: the same engine, checks, backups, history and lock. The child exits when we close. */

#include <stdbool.h>
#include <sys/types.h>

#include "conn.h"

/* --database PATH|CONNINFO, --migrations DIR, --config FILE before the verb. */
extern const char *arg_oneshot_database;
extern const char *arg_oneshot_migrations;
extern const char *arg_oneshot_config;
/* --state-dir for the child (lint's scratch directory); NULL: migrated's default. */
extern const char *arg_oneshot_state_dir;

typedef struct oneshot {
        pid_t pid; /* 0: none started */
} oneshot;

static inline bool oneshot_requested(void) {
        return arg_oneshot_database || arg_oneshot_config;
}

/* Starts the child and connects to it. Prints why it could not. Returns 0 or -errno. */
int oneshot_start(oneshot *o, conn **ret);

/* The connection is closed: waits for the child to exit. Returns its exit status, or -1 when it
 * was killed or could not be waited for. */
int oneshot_wait(oneshot *o);

/* For _cleanup_: waits for a child still running (after the connection closed). */
void oneshot_done(oneshot *o);

/* The exit code for a child that closed before its reply (it printed why on stderr): busy when a
 * daemon holds the database, a usage error for a bad setting, else failed. */
int oneshot_exit_code(int status);
