/* SPDX-License-Identifier: MIT */
#pragma once

/* Who has the database open: a scan of /proc/<pid>/fd for the database, its -wal and its -shm,
 * matched by device and inode (not by path, which symlinks and bind mounts would fool). Used by
 * the daemon's jobs (wait until the units' processes let go) and by lockinfo.c (lock-check). */

#include <stdbool.h>
#include <sys/types.h>

#include <jansson.h>

/* The database's files; HOLDS_X is 1u << HOLDER_FILE_X. */
enum {
        HOLDER_FILE_DB,
        HOLDER_FILE_WAL,
        HOLDER_FILE_SHM,
        _HOLDER_FILE_MAX,
};

enum {
        HOLDS_DB = 1u << HOLDER_FILE_DB,
        HOLDS_WAL = 1u << HOLDER_FILE_WAL,
        HOLDS_SHM = 1u << HOLDER_FILE_SHM,
};

typedef struct holder {
        pid_t pid;
        uid_t uid;
        char *user;    /* the name of uid, or NULL */
        char *comm;
        char *cmdline; /* arguments joined by spaces */
        char *unit;    /* "pm2:NAME" for a pm2 process, else the systemd unit from its cgroup, or NULL */
        bool user_unit; /* unit belongs to a user manager (systemctl --user) */
        unsigned files; /* HOLDS_* */
        unsigned writable_files; /* HOLDS_* opened for writing */
        bool writable;  /* opened for writing */
        /* Per HOLDER_FILE_*: the "lock:" lines of that file's fdinfo (the locks this process or its
         * open file description holds there, as /proc/locks prints them), '\n'-separated; or NULL. */
        char *fd_locks[_HOLDER_FILE_MAX];
} holder;

/* Every process but ourselves with the database files open. */
int lockcheck_find_holders(const char *database, holder **ret, size_t *ret_n);
void holders_free(holder *h, size_t n);

/* "pid 123 (node, free-sleep.service: db, -wal)", joined with "; ". */
char *holders_describe(const holder *h, size_t n);
json_t *holders_to_json(const holder *h, size_t n);

/* The unit a process belongs to, from its cgroup (user units first); NULL when none. */
char *lockcheck_unit_of_pid(pid_t pid);
/* "pm2:NAME" when pm2 runs the process (from its environment), else NULL. */
char *lockcheck_pm2_name_of_pid(pid_t pid);
/* "container:ID" when the process runs in a docker or podman container, else NULL. */
char *lockcheck_container_of_pid(pid_t pid);
/* The same, telling whether it is a user manager's unit. */
char *lockcheck_unit_of_pid_full(pid_t pid, bool *ret_user_unit);

/* Fills uid, user, comm, cmdline and unit of any process (files stay 0), for lock owners that are
 * not holders. Returns 0, or -ESRCH when the process is gone. Free with holder_done(). */
int lockcheck_process_info(pid_t pid, holder *ret);
void holder_done(holder *h);
