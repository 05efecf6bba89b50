/* SPDX-License-Identifier: MIT */
/* The writer lock on PostgreSQL: a session-level advisory lock on the connection that runs the
 * SQL, so that it is released by the server when that session ends, however the daemon dies.
 * It is polled with pg_try_advisory_lock and a growing pause, never waited for inside the
 * server: a blocked pg_advisory_lock would queue behind nothing we could name or cancel. */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db-postgres-internal.h"
#include "log.h"

/* The lock's two keys: "migr" and the layout of migrated's lock (advisory locks are per database
 * already). */
#define PG_LOCK_KEYS "1835624306, 1"
/* Prisma Migrate's own key (prisma-engines' postgres flavour: pg_advisory_lock(72707369)), held
 * with ours in Prisma's layout so that a stray "prisma migrate deploy" waits for a job instead of
 * racing it. A single bigint key shows in pg_locks as classid 0, objid the key, objsubid 1. */
#define PG_PRISMA_LOCK_KEY "72707369"

#define HOLDER_SQL                                                                                                  \
        "SELECT a.pid, a.application_name, coalesce(a.client_addr::text, 'local'), a.state, a.query "            \
        "FROM pg_catalog.pg_locks l JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid "                        \
        "WHERE l.locktype = 'advisory' AND l.granted AND ((l.classid = 1835624306 AND l.objid = 1 "              \
        "AND l.objsubid = 2) OR (l.classid = 0 AND l.objid = " PG_PRISMA_LOCK_KEY " AND l.objsubid = 1)) "       \
        "AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = "                              \
        "current_database()) AND l.pid <> pg_backend_pid()"

/* Who holds the lock: {pid, application_name, client_addr, state, query}, or NULL if nobody now. */
static json_t *describe_holder(PGconn *conn) {
        _cleanup_pgresult_ PGresult *res = PQexec(conn, HOLDER_SQL);

        if (!pg_result_ok(res) || PQntuples(res) < 1)
                return NULL;
        return json_pack("{s:i,s:s,s:s,s:s,s:s}", "pid", atoi(PQgetvalue(res, 0, 0)), "application_name",
                         PQgetvalue(res, 0, 1), "client_addr", PQgetvalue(res, 0, 2), "state", PQgetvalue(res, 0, 3),
                         "query", PQgetvalue(res, 0, 4));
}

/* Ours, then (in Prisma's layout) Prisma's; ours is given back when Prisma's is taken. */
static int try_lock(db_pg *p, bool *ret, db_failure *f) {
        _cleanup_pgresult_ PGresult *res = PQexec(p->conn, "SELECT pg_try_advisory_lock(" PG_LOCK_KEYS ")");
        _cleanup_pgresult_ PGresult *prisma = NULL;

        if (!pg_result_ok(res) || PQntuples(res) != 1)
                return pg_fail(p, res, f, "cannot take the advisory lock");
        *ret = PQgetvalue(res, 0, 0)[0] == 't';
        if (!*ret || !p->prisma_lock)
                return 0;
        prisma = PQexec(p->conn, "SELECT pg_try_advisory_lock(" PG_PRISMA_LOCK_KEY ")");
        if (pg_result_ok(prisma) && PQntuples(prisma) == 1 && PQgetvalue(prisma, 0, 0)[0] == 't')
                return 0;
        *ret = false;
        PQclear(PQexec(p->conn, "SELECT pg_advisory_unlock(" PG_LOCK_KEYS ")"));
        return pg_result_ok(prisma) ? 0 : pg_fail(p, prisma, f, "cannot take Prisma's advisory lock");
}

int pg_lock(db *d, db_wait_fn wait, void *userdata, db_failure *f) {
        db_pg *p = to_pg(d);
        long pause_ms = 10;
        json_t *last = NULL;
        bool got = false;
        int r;

        if (p->locked)
                return 0;
        for (;;) {
                json_t *holder;

                r = try_lock(p, &got, f);
                if (r != 0 || got)
                        break;
                if (p->cancel && atomic_load(p->cancel)) {
                        db_failure_clear(f);
                        f->code = PROTOCOL_ERROR_INTERRUPTED;
                        f->message = strdup("interrupted while waiting for the writer lock");
                        r = f->message ? DB_FAILED : -ENOMEM;
                        break;
                }
                /* a new holder (or the first sight of one) is told once */
                holder = describe_holder(p->conn);
                if (holder && (!last || !json_equal(holder, last))) {
                        if (wait)
                                wait(userdata, json_incref(holder));
                        else
                                log_info("Waiting for the writer lock, held by pid %d (%s)",
                                         (int) json_integer_value(json_object_get(holder, "pid")),
                                         json_string_value(json_object_get(holder, "application_name")) ?: "?");
                        json_decref(last);
                        last = json_incref(holder);
                }
                json_decref(holder);
                nanosleep(&(struct timespec) { pause_ms / 1000, (pause_ms % 1000) * 1000000L }, NULL);
                pause_ms = pause_ms * 2 > 1000 ? 1000 : pause_ms * 2;
        }
        json_decref(last);
        p->locked = r == 0;
        return r;
}

int pg_try_lock(db *d, bool *ret_got, db_failure *f) {
        db_pg *p = to_pg(d);
        int r;

        if (p->locked) {
                *ret_got = true;
                return 0;
        }
        r = try_lock(p, ret_got, f);
        p->locked = r == 0 && *ret_got;
        return r;
}

void pg_unlock(db *d) {
        db_pg *p = to_pg(d);

        if (!p->locked)
                return;
        if (PQtransactionStatus(p->conn) == PQTRANS_INERROR)
                PQclear(PQexec(p->conn, "ROLLBACK"));
        PQclear(PQexec(p->conn, "SELECT pg_advisory_unlock(" PG_LOCK_KEYS ")"));
        if (p->prisma_lock)
                PQclear(PQexec(p->conn, "SELECT pg_advisory_unlock(" PG_PRISMA_LOCK_KEY ")"));
        p->locked = false;
}

/* lock-check on PostgreSQL: who holds migrated's lock, and which sessions hold or wait for
 * relation locks, from pg_locks and pg_stat_activity. */
static int report_on(PGconn *conn, json_t **ret_report) {
        _cleanup_pgresult_ PGresult *res = NULL;
        json_t *report, *sessions, *holder;
        bool free_now;

        holder = describe_holder(conn);
        res = PQexec(conn,
                     "SELECT a.pid, a.application_name, coalesce(a.client_addr::text, 'local'), a.state, "
                     "l.mode, l.granted, coalesce(l.relation::regclass::text, ''), a.query "
                     "FROM pg_catalog.pg_locks l JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid "
                     "WHERE l.locktype = 'relation' AND l.database = (SELECT oid FROM pg_catalog.pg_database "
                     "WHERE datname = current_database()) AND l.pid <> pg_backend_pid() "
                     "AND l.relation >= 16384 ORDER BY l.granted, a.pid");
        if (!pg_result_ok(res)) {
                json_decref(holder);
                return -EIO;
        }
        sessions = json_array();
        for (int i = 0; i < PQntuples(res); i++)
                json_array_append_new(sessions,
                                      json_pack("{s:i,s:s,s:s,s:s,s:s,s:b,s:s,s:s}", "pid", atoi(PQgetvalue(res, i, 0)),
                                                "application_name", PQgetvalue(res, i, 1), "client_addr",
                                                PQgetvalue(res, i, 2), "state", PQgetvalue(res, i, 3), "mode",
                                                PQgetvalue(res, i, 4), "granted", PQgetvalue(res, i, 5)[0] == 't',
                                                "relation", PQgetvalue(res, i, 6), "query", PQgetvalue(res, i, 7)));
        free_now = !holder && json_array_size(sessions) == 0;
        report = json_pack("{s:s,s:o,s:o,s:b,s:s,s:s}", "backend", "postgresql", "writer_lock_holder",
                           holder ?: json_null(), "relation_locks", sessions, "migration_possible", free_now,
                           "verdict", holder ? "migrating" : free_now ? "free" : "tables_locked", "action",
                           holder ? "another migrated (or a session using its advisory lock) is migrating this "
                                    "database: wait for it, or end that session"
                           : json_array_size(sessions) > 0
                                   ? "these sessions hold or wait for table locks: a migration's DDL waits for "
                                     "them up to lock_timeout, then retries"
                                   : "nothing holds a lock on this database's tables");
        if (!report)
                return -ENOMEM;
        *ret_report = report;
        return 0;
}

/* Through a connection of its own (no password: the daemon uses pg_lock_report_live). */
int pg_lock_report(const char *target, json_t **ret_report) {
        const char *keys[] = { "application_name", "dbname", NULL };
        const char *values[] = { "migrated (lock-check)", target, NULL };
        PGconn *conn = PQconnectdbParams(keys, values, 1);
        int r = -ECONNREFUSED;

        if (conn && PQstatus(conn) == CONNECTION_OK)
                r = report_on(conn, ret_report);
        PQfinish(conn);
        return r;
}

int pg_lock_report_live(db *d, json_t **ret_report) {
        return report_on(to_pg(d)->conn, ret_report);
}
