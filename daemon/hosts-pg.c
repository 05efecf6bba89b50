/* SPDX-License-Identifier: MIT */
/* Many hosts on one PostgreSQL database, with PostgreSQL's own means: each daemon keeps a
 * connection of its own for as long as it runs, which holds the host's liveness lock (a session
 * advisory lock: the server drops it with the session, however the daemon or its network dies),
 * keeps the host's row in migrated_hosts up to date (its dependents' state, what it waits for),
 * and LISTENs for the commits of every host's jobs, so that this host's wait gates open at
 * once. The event loop drives that connection without ever blocking on it, except at start. */

#include <errno.h>
#include <event2/event.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db-postgres.h"
#include "deps.h"
#include "hosts-internal.h"
#include "log.h"
#include "macro.h"
#include "server.h"
#include "units.h"

static const char hosts_table_sql[] =
        "CREATE TABLE IF NOT EXISTS migrated_hosts (\n"
        "        host TEXT PRIMARY KEY,\n"
        "        pid INTEGER NOT NULL,\n"
        "        started_at TIMESTAMPTZ NOT NULL,\n"
        "        state TEXT NOT NULL,\n"
        "        waiting_for TEXT,\n"
        "        dependents JSONB NOT NULL,\n"
        "        updated_at TIMESTAMPTZ NOT NULL\n"
        ")";

/* One queued query; the row's update (sql NULL) reads its values when it is sent. */
struct hosts_query {
        const char *sql;
        int n;
        char *values[3];
        hosts_query_fn done;
        void *userdata;
        hosts_query *next;
};

/* A blocking query for registration (at start, or on the reader after a reconnection); with
 * ret_first_true, whether its one row's first column is true. */
static bool sync_ok(PGconn *conn, const char *sql, int n, const char *const *values, bool *ret_first_true) {
        PGresult *res = PQexecParams(conn, sql, n, NULL, values, NULL, NULL, 0);
        ExecStatusType st = PQresultStatus(res);
        bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;

        if (!ok)
                log_error("migrated_hosts: %s", PQresultErrorMessage(res));
        if (ok && ret_first_true)
                *ret_first_true = PQntuples(res) == 1 && PQgetvalue(res, 0, 0)[0] == 't';
        PQclear(res);
        return ok;
}

/* The dependents and their state as JSON text: systemd units asked now, other kinds as last seen
 * (a pm2 jlist would hold the loop). */
static char *dependents_json(hosts *h) {
        const config *cfg = h->server->cfg;
        json_t *arr = json_array();
        unit_state *st = NULL;
        size_t n = 0;
        char *s;

        if (h->server->deps && deps_query_known(h->server->deps, &st, &n) >= 0) {
                for (size_t i = 0; i < n; i++)
                        json_array_append_new(arr, json_pack("{s:s,s:s}", "name", st[i].name, "active_state",
                                                             st[i].active_state));
                unit_states_free(st, n);
        } else
                for (size_t i = 0; i < cfg->n_units; i++)
                        json_array_append_new(arr, json_pack("{s:s,s:s}", "name", cfg->units[i], "active_state",
                                                             "unknown"));
        s = json_dumps(arr, JSON_COMPACT);
        json_decref(arr);
        return s;
}

static const char upsert_sql[] =
        "INSERT INTO migrated_hosts (host, pid, started_at, state, waiting_for, dependents, updated_at) "
        "VALUES ($1, $2, now(), $3, $4, $5::jsonb, now()) ON CONFLICT (host) DO UPDATE SET "
        "pid = EXCLUDED.pid, started_at = CASE WHEN migrated_hosts.pid = EXCLUDED.pid THEN "
        "migrated_hosts.started_at ELSE EXCLUDED.started_at END, state = EXCLUDED.state, "
        "waiting_for = EXCLUDED.waiting_for, dependents = EXCLUDED.dependents, updated_at = now()";

static void on_readable(evutil_socket_t fd, short what, void *userdata);
static void connection_lost(hosts *h);

static void query_free(hosts_query *q) {
        for (size_t i = 0; i < ELEMENTSOF(q->values); i++)
                free(q->values[i]);
        free(q);
}

/* Sends the queue's head when nothing is in flight; on_readable reads its answer. */
static void send_next(hosts *h) {
        _cleanup_free_ char *dependents = NULL;
        hosts_query *q = h->head;
        char pid[16];
        int ok;

        if (h->busy || h->lost || !q)
                return;
        if (!q->sql) {
                h->update_queued = false;
                dependents = dependents_json(h);
                snprintf(pid, sizeof(pid), "%d", (int) getpid());
                const char *values[] = { hosts_name(), pid, h->state ?: "idle", h->waiting_for, dependents ?: "[]" };
                ok = PQsendQueryParams(h->conn, upsert_sql, 5, NULL, values, NULL, NULL, 0);
        } else
                ok = PQsendQueryParams(h->conn, q->sql, q->n, NULL, (const char *const *) q->values, NULL, NULL, 0);
        if (!ok) {
                log_warning("Cannot send a query on this host's connection: %s", PQerrorMessage(h->conn));
                h->head = q->next;
                if (!h->head)
                        h->tail = NULL;
                if (q->done)
                        q->done(h, NULL, q->userdata);
                query_free(q);
                send_next(h); /* the rest of the queue still goes */
                return;
        }
        h->busy = true;
        (void) PQflush(h->conn);
}

static int enqueue(hosts *h, hosts_query *q) {
        if (h->tail)
                h->tail->next = q;
        else
                h->head = q;
        h->tail = q;
        send_next(h);
        return 0;
}

int hosts_query_send(hosts *h, const char *sql, int n, const char *const *values, hosts_query_fn done,
                     void *userdata) {
        hosts_query *q;

        if (n < 0 || n > (int) ELEMENTSOF(q->values))
                return -EINVAL;
        q = calloc(1, sizeof(*q));
        if (!q)
                return -ENOMEM;
        q->sql = sql;
        q->n = n;
        q->done = done;
        q->userdata = userdata;
        for (int i = 0; i < n; i++)
                if (values[i] && !(q->values[i] = strdup(values[i]))) {
                        query_free(q);
                        return -ENOMEM;
                }
        return enqueue(h, q);
}

void hosts_drain_notify(hosts *h, const char *payload) {
        const char *values[] = { payload };

        if (hosts_query_send(h, "SELECT pg_notify('" HOSTS_DRAIN_CHANNEL "', $1)", 1, values, NULL, NULL) < 0)
                log_warning("Cannot tell the other hosts \"%s\": out of memory", payload);
}

static void send_update(hosts *h) {
        hosts_query *q;

        if (h->no_table || h->update_queued)
                return;
        q = calloc(1, sizeof(*q));
        if (!q)
                return;
        h->update_queued = true;
        (void) enqueue(h, q);
}

void hosts_set_state(hosts *h, const char *state, const char *waiting_for) {
        if (!h)
                return;
        free(h->state);
        free(h->waiting_for);
        h->state = state ? strdup(state) : NULL;
        h->waiting_for = waiting_for ? strdup(waiting_for) : NULL;
        send_update(h);
}

static void on_readable(evutil_socket_t fd, short what, void *userdata) {
        hosts *h = userdata;
        PGnotify *n;
        bool notified = false;

        if (!PQconsumeInput(h->conn)) {
                connection_lost(h);
                return;
        }
        while (h->busy && !PQisBusy(h->conn)) {
                PGresult *res = PQgetResult(h->conn);
                hosts_query *q = h->head;
                if (!res) {
                        h->busy = false;
                        h->head = q->next;
                        if (!h->head)
                                h->tail = NULL;
                        query_free(q);
                        send_next(h);
                        continue;
                }
                if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK)
                        log_warning("A query on this host's connection failed: %s", PQresultErrorMessage(res));
                if (q->done) {
                        q->done(h, res, q->userdata);
                        q->done = NULL; /* one answer per query */
                }
                PQclear(res);
        }
        while ((n = PQnotifies(h->conn))) {
                if (n->be_pid != PQbackendPID(h->conn)) {
                        if (strcmp(n->relname, HOSTS_CHANNEL) == 0)
                                notified = true;
                        else if (strcmp(n->relname, HOSTS_DRAIN_CHANNEL) == 0 && !h->server->shutting_down)
                                hosts_drain_on_notify(h, n->be_pid, n->extra);
                }
                PQfreemem(n);
        }
        /* another host committed: re-read the version, which opens the gates it satisfies */
        if (notified && !h->server->shutting_down)
                server_refresh(h->server, NULL);
}

/* Takes the host's liveness lock, creates migrated_hosts once however many daemons start
 * together, puts the host's row there and LISTENs: at start, and again after a reconnection (on
 * the reader then). Blocking; false when it failed (logged). */
static bool register_host(hosts *h, const char *dependents) {
        const char *name[] = { hosts_name() };
        bool got = false, ok;
        char pid[16];

        ok = sync_ok(h->conn, "SELECT pg_try_advisory_lock(" HOSTS_LOCK_CLASS ", hashtext($1))", 1, name, &got);
        if (ok && !got) {
                log_error("Another migrated runs as host %s on this database: one daemon per database per host "
                          "(set a distinct host_name for each host)", hosts_name());
                return false;
        }
        if (ok && h->no_table)
                return sync_ok(h->conn, "LISTEN " HOSTS_CHANNEL, 0, NULL, NULL) &&
                       sync_ok(h->conn, "LISTEN " HOSTS_DRAIN_CHANNEL, 0, NULL, NULL);
        snprintf(pid, sizeof(pid), "%d", (int) getpid());
        const char *values[] = { hosts_name(), pid, "idle", NULL, dependents ?: "[]" };
        return ok && sync_ok(h->conn, "BEGIN", 0, NULL, NULL) &&
               sync_ok(h->conn, "SELECT pg_advisory_xact_lock(" HOSTS_LOCK_CLASS ", 0)", 0, NULL, NULL) &&
               sync_ok(h->conn, hosts_table_sql, 0, NULL, NULL) && sync_ok(h->conn, upsert_sql, 5, values, NULL) &&
               sync_ok(h->conn, "COMMIT", 0, NULL, NULL) && sync_ok(h->conn, "LISTEN " HOSTS_CHANNEL, 0, NULL, NULL) &&
               sync_ok(h->conn, "LISTEN " HOSTS_DRAIN_CHANNEL, 0, NULL, NULL);
}

static bool watch(hosts *h) {
        if (h->readable)
                event_free(h->readable);
        h->readable = NULL;
        if (PQsetnonblocking(h->conn, 1) < 0)
                return false;
        h->readable = event_new(h->server->base, PQsocket(h->conn), EV_READ | EV_PERSIST, on_readable, h);
        return h->readable && event_add(h->readable, NULL) == 0;
}

/* On the reader: a new session for the lost one, registered again. */
static void reconnect_run(void *userdata) {
        hosts *h = userdata;

        PQreset(h->conn);
        h->reconnected = PQstatus(h->conn) == CONNECTION_OK && register_host(h, h->reconnect_dependents);
}

static void reconnect_done(void *userdata) {
        hosts *h = userdata;
        struct timeval tv = { h->retry_s, 0 };

        h->reconnecting = false;
        free(h->reconnect_dependents);
        h->reconnect_dependents = NULL;
        if (h->reconnected && watch(h)) {
                log_info("Reconnected: host %s is alive again in the database", hosts_name());
                h->lost = false;
                h->busy = false;
                h->retry_s = 1;
                send_update(h);
                send_next(h);
                /* a commit may have been missed meanwhile */
                if (!h->server->shutting_down)
                        server_refresh(h->server, NULL);
                return;
        }
        h->retry_s = h->retry_s >= 30 ? 30 : h->retry_s * 2;
        evtimer_add(h->retry, &tv);
}

static void on_retry(evutil_socket_t fd, short what, void *userdata) {
        hosts *h = userdata;

        if (h->server->shutting_down || h->reconnecting)
                return;
        h->reconnect_dependents = dependents_json(h);
        if (worker_submit(h->server->reader, reconnect_run, reconnect_done, h) == 0)
                h->reconnecting = true;
}

/* The queued queries will never be answered: each is told so, and the row's update is queued
 * again for the new session. */
static void fail_queue(hosts *h) {
        hosts_query *q;

        h->busy = false;
        while ((q = h->head)) {
                h->head = q->next;
                if (q->done)
                        q->done(h, NULL, q->userdata);
                query_free(q);
        }
        h->tail = NULL;
        h->update_queued = false;
        send_update(h);
}

/* The session is gone (the server ended it, or the network): this host looks dead to the others
 * until a new session holds its lock again, which is tried with a growing pause. */
static void connection_lost(hosts *h) {
        struct timeval tv = { 1, 0 };

        log_error("Lost the connection that keeps host %s alive in the database (%s); reconnecting", hosts_name(),
                  PQerrorMessage(h->conn));
        event_del(h->readable);
        h->lost = true;
        fail_queue(h);
        hosts_drain_on_lost(h);
        h->retry_s = 1;
        evtimer_add(h->retry, &tv);
}

int hosts_new(server *s, hosts **ret) {
        _cleanup_free_ char *dependents = NULL;
        db_options o = { .backend = "postgresql", .target = s->cfg->connection,
                         .password_file = s->cfg->password_file,
                         .format = engine_format(s->job_engine) };
        db_failure f = {};
        hosts *h;

        h = calloc(1, sizeof(*h));
        if (!h)
                return -ENOMEM;
        h->server = s;
        if (db_open(&o, &h->db, &f) != 0) {
                log_error("Cannot open the hosts' connection: %s", f.message ?: "out of memory");
                db_failure_clear(&f);
                free(h);
                return -EIO;
        }
        h->conn = db_postgres_conn(h->db);
        h->no_table = !db_format_keeps_own_tables(o.format);
        dependents = dependents_json(h);
        h->retry = evtimer_new(s->base, on_retry, h);
        if (!h->retry || !register_host(h, dependents) || !watch(h)) {
                hosts_free(h);
                return -EIO;
        }
        log_info("Registered as host %s%s", hosts_name(), h->no_table ? " (its liveness lock only: a foreign format's database holds no table of ours)" : " in migrated_hosts");
        *ret = h;
        return 0;
}

hosts *hosts_free(hosts *h) {
        if (!h)
                return NULL;
        if (h->readable)
                event_free(h->readable);
        if (h->retry)
                event_free(h->retry);
        free(h->reconnect_dependents);
        hosts_drain_free(h);
        for (hosts_query *q = h->head, *next; q; q = next) {
                next = q->next;
                query_free(q);
        }
        db_close(h->db);
        free(h->state);
        free(h->waiting_for);
        free(h);
        return NULL;
}

static int host_row(const db_value *c, size_t n, void *userdata) {
        json_t *arr = userdata, *dependents = json_loads(c[5].type == DB_VALUE_TEXT ? c[5].s : "[]", 0, NULL);
        json_t *row = json_pack("{s:s,s:I,s:s,s:s,s:s?,s:o,s:s,s:b}", "host", c[0].s, "pid", (json_int_t) c[1].i,
                                "started_at", c[2].s, "state", c[3].s, "waiting_for",
                                c[4].type == DB_VALUE_TEXT ? c[4].s : NULL, "dependents", dependents ?: json_array(),
                                "updated_at", c[6].s, "alive", c[7].i != 0);

        return row && json_array_append_new(arr, row) == 0 ? 0 : -ENOMEM;
}

int hosts_list(db *d, json_t **ret, db_failure *f) {
        json_t *arr = json_array();
        bool exists;
        int r;

        if (!arr)
                return -ENOMEM;
        r = db_table_exists(d, "migrated_hosts", &exists, f);
        if (r == 0 && exists)
                r = db_query(d,
                             "SELECT h.host, h.pid, h.started_at::text, h.state, h.waiting_for, h.dependents::text, "
                             "h.updated_at::text, (EXISTS (SELECT 1 FROM pg_catalog.pg_locks l WHERE "
                             "l.locktype = 'advisory' AND l.granted AND l.classid = " HOSTS_LOCK_CLASS " AND "
                             "l.objid = hashtext(h.host)::oid AND l.objsubid = 2 AND l.database = (SELECT oid FROM "
                             "pg_catalog.pg_database WHERE datname = current_database())))::int "
                             "FROM migrated_hosts h ORDER BY h.host",
                             NULL, 0, host_row, arr, NULL, f, "cannot read migrated_hosts");
        if (r != 0) {
                json_decref(arr);
                return r;
        }
        *ret = arr;
        return 0;
}

int hosts_notify_commit(db *d, int64_t version, db_failure *f) {
        char payload[32];

        snprintf(payload, sizeof(payload), "%lld", (long long) version);
        return db_query(d, "SELECT pg_notify('" HOSTS_CHANNEL "', ?1)", (db_value[]) { DB_TEXT(payload) }, 1, NULL,
                        NULL, NULL, f, "cannot notify the other hosts");
}
