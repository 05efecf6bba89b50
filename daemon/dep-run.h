/* SPDX-License-Identifier: MIT */
#pragma once

/* Runs one command for a dependent (pm2's CLI, an exec: script) from a dependent's own thread:
 * optionally as another user, with extra environment, its output captured, and its whole process
 * group killed when it outlives its deadline. */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct dep_cmd {
        char *const *argv;        /* argv[0] is resolved through PATH when it has no '/' */
        char *const *env;         /* extra "KEY=VALUE", NULL-terminated; may be NULL */
        const char *user;         /* run as this user (its groups, HOME, USER); NULL: as we are */
        uint64_t timeout_usec;
} dep_cmd;

#define DEP_RUN_TIMEOUT (-ETIME)

/* Returns the command's exit status (0..255, 128+signal when killed by one), DEP_RUN_TIMEOUT when
 * it was killed at its deadline, or -errno when it could not run. *ret_stdout (when not NULL)
 * receives what it printed, at most 8 MiB. */
int dep_run(const dep_cmd *c, char **ret_stdout);

/* Monotonic microseconds. */
uint64_t dep_now_usec(void);

/* Sleeps for at most usec, never past deadline; false when the deadline has passed. */
bool dep_pause_until(uint64_t deadline, uint64_t usec);
