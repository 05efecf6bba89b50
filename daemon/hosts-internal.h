/* SPDX-License-Identifier: MIT */
#pragma once

/* Shared by hosts-pg.c (the host's own connection: liveness, row, LISTEN) and hosts-drain.c (a
 * breaking plan drains every live host, through that connection's NOTIFYs). */

#include <event2/event.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "hosts.h"

/* The liveness locks' first key ("migr" + 1; the writer lock is "migr", 1); the second is
 * hashtext(host). */
#define HOSTS_LOCK_CLASS "1835624307"
#define HOSTS_CHANNEL "migrated_version"
#define HOSTS_DRAIN_CHANNEL "migrated_drain"

/* A query's answer on the loop (res NULL: the session was lost before it came). */
typedef void (*hosts_query_fn)(hosts *h, PGresult *res, void *userdata);

typedef struct hosts_query hosts_query;

typedef struct hosts_drainer hosts_drainer; /* this host's job drains the others */
typedef struct hosts_drained_state hosts_drained_state; /* another host's job drained this one */

struct hosts {
        struct server *server;
        db *db;
        PGconn *conn; /* db's */
        struct event *readable;
        bool busy;         /* a query is in flight: the queue's head */
        bool update_queued; /* the row's update waits in the queue (its values are read when sent) */
        hosts_query *head, *tail;
        char *state;
        char *waiting_for;
        /* a lost session is replaced on the reader, retried with a growing pause */
        struct event *retry;
        bool lost, reconnecting, reconnected;
        unsigned retry_s;
        char *reconnect_dependents;
        /* a foreign format's database holds only its tool's table: no row of ours there, so this
         * host is known by its liveness lock and takes its part in the gates, but status cannot
         * list it */
        bool no_table;
        hosts_drainer *drainer;
        hosts_drained_state *drained;
};

/* Queues a query on the host's connection (values copied); done may be NULL. */
int hosts_query_send(hosts *h, const char *sql, int n, const char *const *values, hosts_query_fn done,
                     void *userdata);
/* pg_notify on the drain channel, without waiting. */
void hosts_drain_notify(hosts *h, const char *payload);

/* hosts-drain.c: a NOTIFY on the drain channel from backend pid be_pid (never our own). */
void hosts_drain_on_notify(hosts *h, int be_pid, const char *payload);
/* The session was lost: a drained host starts its dependents (nobody can end the drain now). */
void hosts_drain_on_lost(hosts *h);
void hosts_drain_free(hosts *h);
