/* SPDX-License-Identifier: MIT */
#pragma once

/* Many hosts on one shared database (PostgreSQL): each host runs its own migrated, and the
 * database is where they meet. This names the host this daemon runs for. */

/* Sets the host's name: the configured one, or the kernel's host name when NULL or empty. */
int hosts_set_name(const char *configured);
/* The host's name ("?" before hosts_set_name). */
const char *hosts_name(void);
/* The host named in a requested_by text ("uid=0 pid=1 comm=x host=NAME"), newly allocated, or
 * NULL when it names none. */
char *hosts_of_requester(const char *requested_by);

/* On PostgreSQL (hosts-pg.c): this host's liveness lock, its row in migrated_hosts and the
 * LISTEN for other hosts' commits, on a connection of its own driven by the loop. */
#include <jansson.h>

#include "db.h"

typedef struct hosts hosts;
struct server;
int hosts_new(struct server *s, hosts **ret);
hosts *hosts_free(hosts *h);
/* What this host does now ("idle", "running") and waits for (NULL: nothing), with its
 * dependents' state, to its row; sent without waiting. NULL h: nothing. */
void hosts_set_state(hosts *h, const char *state, const char *waiting_for);
/* Every host of the database, alive or not (its liveness lock held), from the reader's
 * connection: [{host, pid, started_at, state, waiting_for, dependents, updated_at, alive}]. */
int hosts_list(db *d, json_t **ret, db_failure *f);
/* In a job's transaction: every host's wait gates re-read the version at its commit. */
int hosts_notify_commit(db *d, int64_t version, db_failure *f);

/* A breaking plan drains every live host (hosts-drain.c): the job holding the writer lock asks
 * every other host alive now (its liveness lock held) to stop its own dependents, and done runs
 * once, on the loop: r 0 when every one acknowledged (or died meanwhile), else negative with
 * message naming the hosts that did not. NULL h (SQLite): done at once. */
typedef void (*hosts_drain_fn)(void *userdata, int r, const char *message);
int hosts_drain_begin(hosts *h, uint64_t job_id, unsigned timeout_s, hosts_drain_fn done, void *userdata);
/* The job is cancelled or the daemon stops: the drain's done runs now with -ECANCELED. */
void hosts_drain_cancel(hosts *h);
/* The job's end (success or not): every drained host starts its dependents again. Idempotent. */
void hosts_drain_end(hosts *h, bool ok);
/* A job of this host that stops its dependents while another host's drain still holds some of
 * them stopped (the drain's end not heard yet) takes them over: appended to *names (*n), to be
 * recorded and started again by the job, never by the drain's end. Returns how many. */
int hosts_drained_adopt(hosts *h, char ***names, size_t *n);
/* Whether another host's job has this host's dependents stopped now. */
bool hosts_drained(hosts *h);
/* The daemon stops while drained: it starts its dependents now (hosts_drained() turns false
 * once they are started), since it would not hear the drain's end. */
void hosts_drained_leave(hosts *h);
