/* SPDX-License-Identifier: MIT */
#pragma once

/* Who has the database open: a scan of /proc/<pid>/fd for the database, its -wal and its -shm,
 * matched by device and inode (not by path, which symlinks and bind mounts would fool). */

#include <stdbool.h>
#include <sys/types.h>

#include <jansson.h>

enum {
        HOLDS_DB = 1u << 0,
        HOLDS_WAL = 1u << 1,
        HOLDS_SHM = 1u << 2,
};

typedef struct holder {
        pid_t pid;
        uid_t uid;
        char *comm;
        char *cmdline; /* arguments joined by spaces */
        char *unit;    /* the systemd unit from its cgroup, or NULL */
        unsigned files; /* HOLDS_* */
        bool writable;  /* opened for writing */
} holder;

/* Every process but ourselves with the database files open. */
int lockcheck_find_holders(const char *database, holder **ret, size_t *ret_n);
void holders_free(holder *h, size_t n);

/* "pid 123 (node, free-sleep.service: db, -wal)", joined with "; ". */
char *holders_describe(const holder *h, size_t n);
json_t *holders_to_json(const holder *h, size_t n);

/* The unit a process belongs to, from its cgroup (user units first); NULL when none. */
char *lockcheck_unit_of_pid(pid_t pid);
