/* SPDX-License-Identifier: MIT */
/* A breaking plan drains every live host, through the database: the job holding the writer lock
 * NOTIFYs "drain" on migrated_drain; every other host alive (its liveness lock held) records its
 * running dependents in its state file, stops them and NOTIFYs "ack" (or "fail"); the holder
 * waits for every ack, drops a host whose liveness lock goes meanwhile, and fails the job naming
 * a host that neither acks nor dies in time. At the job's end the holder NOTIFYs "done", and each
 * drained host starts its dependents again; a drained host whose holder's liveness lock goes (its
 * daemon or session died) starts them itself. Payloads, fields separated by spaces (host names
 * hold none):
 *
 *   drain HOLDER JOB        ack HOLDER JOB HOST        fail HOLDER JOB HOST REASON…
 *   done HOLDER JOB ok|failed
 *
 * Nothing here needs a table: a foreign format's database stays as its tool made it. */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "deps.h"
#include "hosts-internal.h"
#include "job.h"
#include "log.h"
#include "macro.h"
#include "server.h"
#include "statefile.h"
#include "units.h"

#define LIVE_WHERE                                                                                                  \
        "FROM pg_catalog.pg_locks l LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid "                    \
        "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = " HOSTS_LOCK_CLASS " AND l.objsubid = 2 "     \
        "AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database()) "          \
        "AND l.pid <> pg_backend_pid()"
/* Every other live host: its liveness session's pid and a name (from migrated_hosts where the
 * format keeps our tables, else the session's application_name). */
static const char live_sql[] =
        "SELECT l.pid, coalesce((SELECT h.host FROM migrated_hosts h WHERE hashtext(h.host)::oid = l.objid "
        "LIMIT 1), coalesce(nullif(a.application_name, ''), 'a host') || ' (pid ' || l.pid || ')') " LIVE_WHERE;
static const char live_sql_no_table[] =
        "SELECT l.pid, coalesce(nullif(a.application_name, ''), 'a host') || ' (pid ' || l.pid || ')' " LIVE_WHERE;
/* Whether the drain may still be in force: its holder's liveness lock is held, or the writer lock
 * is (by the holder's job, whose own session outlived a lost liveness session; or by a next job,
 * which drains again if it has anything to apply). */
static const char holder_alive_sql[] =
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_locks WHERE locktype = 'advisory' AND granted AND "
        "database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database()) AND "
        "((classid = " HOSTS_LOCK_CLASS " AND objsubid = 2 AND pid = $1::int) OR "
        "(classid = 1835624306 AND objid = 1 AND objsubid = 2)))";

struct hosts_drainer {
        uint64_t job_id;
        unsigned timeout_s;
        int64_t deadline_ms;
        struct event *tick;
        hosts_drain_fn done;
        void *userdata;
        bool finished; /* done was called */
        bool notified; /* "drain" was sent: "done" is due */
        bool checking; /* a liveness query is in flight */
        int *pids;     /* the hosts whose ack is awaited */
        char **names;
        size_t n;
};

struct hosts_drained_state {
        char *holder;
        uint64_t job_id;
        int holder_pid;
        char **units;
        size_t n;
        bool stopping, starting, end_pending, checking;
        bool adopted; /* a job of this host took the units over: it starts them */
        /* a new holder's drain that came while the units were being started again: begun after */
        char *next_holder;
        uint64_t next_job_id;
        int next_pid;
        struct event *tick;
};

static int64_t mono_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* "b, c" for messages. */
static char *names_text(char *const *names, size_t n) {
        char *s = NULL;

        for (size_t i = 0; i < n; i++) {
                char *more;
                if (asprintf(&more, "%s%s%s", s ?: "", s ? ", " : "", names[i]) < 0)
                        break;
                free(s);
                s = more;
        }
        return s;
}

/* ---- the job holder's side ---- */

static void drainer_waiting_state(hosts *h) {
        hosts_drainer *d = h->drainer;
        _cleanup_free_ char *names = names_text(d->names, d->n), *text = NULL;

        if (asprintf(&text, "acks from hosts %s (drain for job %" PRIu64 ")", names ?: "?", d->job_id) < 0)
                text = NULL;
        hosts_set_state(h, "draining", text);
}

static void drainer_finish(hosts *h, int r, const char *message) {
        hosts_drainer *d = h->drainer;

        if (!d || d->finished)
                return;
        d->finished = true;
        if (d->tick)
                event_del(d->tick);
        hosts_set_state(h, "up", NULL);
        d->done(d->userdata, r, message);
}

static void drainer_remove(hosts_drainer *d, size_t i) {
        free(d->names[i]);
        d->pids[i] = d->pids[d->n - 1];
        d->names[i] = d->names[d->n - 1];
        d->n--;
}

static void drainer_check_done(hosts *h) {
        if (h->drainer->n == 0) {
                log_info("Every live host acknowledged the drain for job %" PRIu64, h->drainer->job_id);
                drainer_finish(h, 0, NULL);
        } else
                drainer_waiting_state(h);
}

/* A liveness answer while acks are awaited: a host whose lock went died and is dropped. */
static void on_live_again(hosts *h, PGresult *res, void *userdata) {
        hosts_drainer *d = h->drainer;

        if (!d || d->finished)
                return;
        d->checking = false;
        if (!res || PQresultStatus(res) != PGRES_TUPLES_OK)
                return;
        for (size_t i = 0; i < d->n;) {
                bool alive = false;
                for (int k = 0; k < PQntuples(res) && !alive; k++)
                        alive = atoi(PQgetvalue(res, k, 0)) == d->pids[i];
                if (alive) {
                        i++;
                        continue;
                }
                log_warning("Host %s died during the drain for job %" PRIu64 " (its liveness lock went): dropped",
                            d->names[i], d->job_id);
                drainer_remove(d, i);
        }
        drainer_check_done(h);
}

static void on_drainer_tick(evutil_socket_t fd, short what, void *userdata) {
        hosts *h = userdata;
        hosts_drainer *d = h->drainer;

        if (!d || d->finished)
                return;
        if (mono_ms() >= d->deadline_ms) {
                _cleanup_free_ char *names = names_text(d->names, d->n), *msg = NULL;
                if (asprintf(&msg, "host%s %s neither acknowledged the drain for job %" PRIu64 " nor died within "
                             "%u s (drain_timeout): nothing was applied", d->n == 1 ? "" : "s", names ?: "?",
                             d->job_id, d->timeout_s) < 0)
                        msg = NULL;
                log_error("%s", msg ?: "the drain timed out");
                drainer_finish(h, -ETIMEDOUT, msg ?: "the drain timed out: nothing was applied");
                return;
        }
        if (!d->checking && hosts_query_send(h, h->no_table ? live_sql_no_table : live_sql, 0, NULL, on_live_again,
                                             NULL) >= 0)
                d->checking = true;
}

/* The first liveness answer: the hosts to drain, then "drain" to all of them. */
static void on_live(hosts *h, PGresult *res, void *userdata) {
        hosts_drainer *d = h->drainer;
        char payload[128];
        struct timeval tv = { 0, 500 * 1000 };

        if (!d || d->finished)
                return;
        if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
                drainer_finish(h, -EIO, "cannot ask the database which hosts are alive: nothing was applied");
                return;
        }
        d->n = 0;
        d->pids = calloc(PQntuples(res) + 1, sizeof(int));
        d->names = calloc(PQntuples(res) + 1, sizeof(char *));
        if (!d->pids || !d->names) {
                drainer_finish(h, -ENOMEM, "out of memory");
                return;
        }
        for (int k = 0; k < PQntuples(res); k++) {
                d->pids[d->n] = atoi(PQgetvalue(res, k, 0));
                d->names[d->n] = strdup(PQgetvalue(res, k, 1));
                if (d->names[d->n])
                        d->n++;
        }
        if (d->n == 0) {
                drainer_finish(h, 0, NULL);
                return;
        }
        _cleanup_free_ char *names = names_text(d->names, d->n);
        log_info("Draining %zu other host%s for job %" PRIu64 ": %s", d->n, d->n == 1 ? "" : "s", d->job_id,
                 names ?: "?");
        snprintf(payload, sizeof(payload), "drain %s %" PRIu64, hosts_name(), d->job_id);
        hosts_drain_notify(h, payload);
        d->notified = true;
        d->deadline_ms = mono_ms() + (int64_t) d->timeout_s * 1000;
        drainer_waiting_state(h);
        d->tick = event_new(h->server->base, -1, EV_PERSIST, on_drainer_tick, h);
        if (!d->tick || event_add(d->tick, &tv) < 0)
                drainer_finish(h, -ENOMEM, "out of memory");
}

static void drainer_free(hosts_drainer *d) {
        if (!d)
                return;
        if (d->tick)
                event_free(d->tick);
        strv_free_n(d->names, d->n);
        free(d->pids);
        free(d);
}

int hosts_drain_begin(hosts *h, uint64_t job_id, unsigned timeout_s, hosts_drain_fn done, void *userdata) {
        hosts_drainer *d;
        int r;

        if (!h) {
                done(userdata, 0, NULL);
                return 0;
        }
        drainer_free(h->drainer);
        h->drainer = d = calloc(1, sizeof(*d));
        if (!d)
                return -ENOMEM;
        d->job_id = job_id;
        d->timeout_s = timeout_s;
        d->done = done;
        d->userdata = userdata;
        r = hosts_query_send(h, h->no_table ? live_sql_no_table : live_sql, 0, NULL, on_live, NULL);
        if (r < 0) {
                h->drainer = NULL;
                drainer_free(d);
        }
        return r;
}

void hosts_drain_cancel(hosts *h) {
        if (h && h->drainer)
                drainer_finish(h, -ECANCELED, "the drain was cancelled: nothing was applied");
}

void hosts_drain_end(hosts *h, bool ok) {
        char payload[160];

        if (!h || !h->drainer)
                return;
        if (h->drainer->notified) {
                snprintf(payload, sizeof(payload), "done %s %" PRIu64 " %s", hosts_name(), h->drainer->job_id,
                         ok ? "ok" : "failed");
                hosts_drain_notify(h, payload);
        }
        h->drainer->finished = true; /* no callback after the job's end */
        drainer_free(TAKE_PTR(h->drainer));
}

/* An ack or a fail for our drain, from the session be_pid. */
static void drainer_on_answer(hosts *h, int be_pid, bool ack, const char *host, const char *reason) {
        hosts_drainer *d = h->drainer;
        _cleanup_free_ char *msg = NULL;

        for (size_t i = 0; i < d->n; i++) {
                if (d->pids[i] != be_pid)
                        continue;
                if (ack) {
                        log_info("Host %s stopped its dependents for job %" PRIu64, host, d->job_id);
                        drainer_remove(d, i);
                        drainer_check_done(h);
                        return;
                }
                if (asprintf(&msg, "host %s could not stop its dependents for job %" PRIu64 " (%s): nothing was "
                             "applied", host, d->job_id, reason ?: "?") < 0)
                        msg = NULL;
                log_error("%s", msg ?: "a host could not stop its dependents");
                drainer_finish(h, -EIO, msg ?: "a host could not stop its dependents: nothing was applied");
                return;
        }
}

/* ---- a drained host's side ---- */

static void drained_free(hosts_drained_state *x) {
        if (!x)
                return;
        if (x->tick)
                event_free(x->tick);
        strv_free_n(x->units, x->n);
        free(x->holder);
        free(x->next_holder);
        free(x);
}

int hosts_drained_adopt(hosts *h, char ***names, size_t *n) {
        hosts_drained_state *x = h ? h->drained : NULL;
        char **v;
        int added = 0;

        if (!x || x->stopping || x->starting || x->n == 0)
                return 0;
        v = realloc(*names, (*n + x->n + 1) * sizeof(char *));
        if (!v)
                return -ENOMEM;
        *names = v;
        for (size_t i = 0; i < x->n; i++) {
                bool have = false;
                for (size_t k = 0; k < *n && !have; k++)
                        have = streq(v[k], x->units[i]);
                if (have)
                        continue;
                if (!(v[*n] = strdup(x->units[i])))
                        return -ENOMEM;
                (*n)++;
                added++;
        }
        v[*n] = NULL;
        x->adopted = true;
        return added;
}

bool hosts_drained(hosts *h) {
        return h && h->drained;
}

static void drained_begin(hosts *h, int be_pid, const char *holder, uint64_t job_id);

static void on_drained_started(void *userdata, unit_outcome *o, size_t n) {
        hosts *h = userdata;
        hosts_drained_state *x = h->drained;
        _cleanup_free_ char *next = x ? TAKE_PTR(x->next_holder) : NULL;
        uint64_t next_job_id = x ? x->next_job_id : 0;
        int next_pid = x ? x->next_pid : 0, r;

        for (size_t i = 0; i < n; i++)
                if (!o[i].ok)
                        log_error("Failed to start %s again after the drain: %s", o[i].name ?: "?", o[i].result ?: "?");
        unit_outcomes_free(o, n);
        log_info("Started this host's dependents again after the drain for job %" PRIu64 " of host %s",
                 x ? x->job_id : 0, x ? x->holder : "?");
        r = statefile_remove(h->server->state_fd);
        if (r < 0)
                log_warning_errno(r, "Failed to remove the state file: %m");
        drained_free(TAKE_PTR(h->drained));
        hosts_set_state(h, h->server->jobs && jobs_busy(h->server->jobs) ? "up" : "idle", NULL);
        if (h->server->shutting_down) {
                server_job_finished(h->server); /* the exit waited for this */
                return;
        }
        if (next)
                drained_begin(h, next_pid, next, next_job_id);
}

/* The drain is over (the holder's "done", its death, or our lost session): start them again. */
static void drained_end(hosts *h, const char *why) {
        hosts_drained_state *x = h->drained;
        const config *cfg = h->server->cfg;

        if (!x || x->starting)
                return;
        if (x->stopping) {
                x->end_pending = true;
                return;
        }
        x->starting = true;
        if (x->tick)
                event_del(x->tick);
        if (x->adopted) {
                log_info("The drain for job %" PRIu64 " of host %s is over (%s): this host's job starts its "
                         "dependents", x->job_id, x->holder, why);
                drained_free(TAKE_PTR(h->drained));
                return;
        }
        log_info("The drain for job %" PRIu64 " of host %s is over (%s): starting %zu dependent%s again", x->job_id,
                 x->holder, why, x->n, x->n == 1 ? "" : "s");
        if (x->n == 0 || !h->server->deps ||
            deps_start(h->server->deps, x->units, x->n, (uint64_t) cfg->start_timeout_s * 1000000, on_drained_started,
                       h) < 0)
                on_drained_started(h, NULL, 0);
}

/* Our dependents come back while the holder may still migrate: the holder sees this host's
 * liveness lock go with us and drops it. Never leaving them stopped comes first. */
void hosts_drained_leave(hosts *h) {
        if (h && h->drained)
                drained_end(h, "this daemon is shutting down");
}

static void on_holder_alive(hosts *h, PGresult *res, void *userdata) {
        hosts_drained_state *x = h->drained;

        if (!x || x->starting)
                return;
        x->checking = false;
        if (res && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 && PQgetvalue(res, 0, 0)[0] == 'f') {
                log_warning("Host %s, which drained this host for job %" PRIu64 ", died (its liveness lock went, "
                            "and nobody holds the writer lock)", x->holder, x->job_id);
                drained_end(h, "its holder died");
        }
}

static void on_drained_tick(evutil_socket_t fd, short what, void *userdata) {
        hosts *h = userdata;
        hosts_drained_state *x = h->drained;
        char pid[16];

        if (!x || x->checking || x->starting)
                return;
        snprintf(pid, sizeof(pid), "%d", x->holder_pid);
        if (hosts_query_send(h, holder_alive_sql, 1, (const char *const[]) { pid }, on_holder_alive, NULL) >= 0)
                x->checking = true;
}

static void drained_answer(hosts *h, bool ack, const char *reason) {
        hosts_drained_state *x = h->drained;
        char payload[512];

        if (ack)
                snprintf(payload, sizeof(payload), "ack %s %" PRIu64 " %s", x->holder, x->job_id, hosts_name());
        else
                snprintf(payload, sizeof(payload), "fail %s %" PRIu64 " %s %s", x->holder, x->job_id, hosts_name(),
                         reason);
        hosts_drain_notify(h, payload);
}

static void on_drained_stopped(void *userdata, unit_outcome *o, size_t n) {
        hosts *h = userdata;
        hosts_drained_state *x = h->drained;
        _cleanup_free_ char *failed = NULL;
        struct timeval tv = { 1, 0 };
        bool asked = o != NULL;

        for (size_t i = 0; i < n; i++)
                if (!o[i].ok) {
                        char *more;
                        if (asprintf(&more, "%s%s%s did not stop: %s", failed ?: "", failed ? "; " : "",
                                     o[i].name ?: "?", o[i].result ?: "?") >= 0) {
                                free(failed);
                                failed = more;
                        }
                }
        unit_outcomes_free(o, n);
        if (!x)
                return;
        x->stopping = false;
        if (failed || (!asked && x->n > 0)) {
                drained_answer(h, false, failed ?: "the dependents could not be stopped");
                drained_end(h, "this host could not stop its dependents");
                return;
        }
        /* the row shows the dependents stopped before the holder hears the ack (same session, in order) */
        _cleanup_free_ char *waiting = h->waiting_for ? strdup(h->waiting_for) : NULL;
        hosts_set_state(h, "drained", waiting);
        drained_answer(h, true, NULL);
        if (x->end_pending) {
                drained_end(h, "the job ended meanwhile");
                return;
        }
        x->tick = event_new(h->server->base, -1, EV_PERSIST, on_drained_tick, h);
        if (x->tick)
                (void) event_add(x->tick, &tv);
}

/* Which dependents run is known (a pm2 or exec: answer comes from a thread): recorded durably
 * first, as for a job of our own, so that a crash in between starts them at the next start. */
static void on_drained_queried(void *userdata, int r, unit_state *st, size_t n) {
        hosts *h = userdata;
        hosts_drained_state *x = h->drained;
        server *s = h->server;
        _cleanup_free_ char *waiting = NULL;

        if (x && r >= 0)
                r = deps_running_of(st, n, &x->units, &x->n);
        unit_states_free(st, n);
        if (!x)
                return;
        if (r < 0) {
                drained_answer(h, false, "cannot ask the service manager about the dependents");
                drained_free(TAKE_PTR(h->drained));
                return;
        }
        if (x->n == 0 || x->end_pending) { /* nothing runs here to stop, or the drain ended first */
                log_info("Host %s drains this host for job %" PRIu64 ": %s", x->holder, x->job_id,
                         x->n == 0 ? "no dependent runs here" : "over before anything was stopped");
                if (!x->end_pending)
                        drained_answer(h, true, NULL);
                drained_free(TAKE_PTR(h->drained));
                if (s->shutting_down)
                        server_job_finished(s);
                return;
        }
        r = statefile_write(s->state_fd, s->cfg->database, x->job_id, x->units, x->n);
        if (r < 0) {
                log_error_errno(r, "Failed to write the state file: %m");
                drained_answer(h, false, "cannot record which dependents it stops (state directory)");
                drained_free(TAKE_PTR(h->drained));
                return;
        }
        if (asprintf(&waiting, "drained for job %" PRIu64 " of host %s", x->job_id, x->holder) < 0)
                waiting = NULL;
        hosts_set_state(h, "drained", waiting);
        log_info("Host %s drains this host for job %" PRIu64 ": stopping %zu dependent%s", x->holder, x->job_id,
                 x->n, x->n == 1 ? "" : "s");
        if (deps_stop(s->deps, x->units, x->n, (uint64_t) s->cfg->stop_timeout_s * 1000000, on_drained_stopped,
                      h) < 0)
                on_drained_stopped(h, NULL, 0);
}

/* Another host's job asks this one to stop its dependents. */
static void drained_begin(hosts *h, int be_pid, const char *holder, uint64_t job_id) {
        server *s = h->server;
        _cleanup_free_ char *waiting = NULL;
        hosts_drained_state *x;
        int r;

        if (s->shutting_down) {
                /* the holder drops this host once its liveness lock goes with the exit */
                log_info("Host %s asks to drain this host for job %" PRIu64 ", but migrated is shutting down",
                         holder, job_id);
                return;
        }
        x = h->drained;
        if (x && streq(x->holder, holder) && x->job_id == job_id)
                return;
        if (x) {
                /* only the writer lock's holder drains: the previous drain is over, its end not
                 * heard yet. The units stay stopped for the new one, or are stopped again after
                 * their start. */
                log_info("Host %s drains this host for job %" PRIu64 ", which host %s's drain for job %" PRIu64
                         " had stopped: the new drain takes them over", holder, job_id, x->holder, x->job_id);
                char *copy = strdup(holder);
                if (!copy)
                        return;
                if (x->starting) {
                        free(x->next_holder);
                        x->next_holder = copy;
                        x->next_job_id = job_id;
                        x->next_pid = be_pid;
                        return;
                }
                free(x->holder);
                x->holder = copy;
                x->job_id = job_id;
                x->holder_pid = be_pid;
                x->end_pending = false;
                if (!x->stopping)
                        drained_answer(h, true, NULL);
                if (asprintf(&waiting, "drained for job %" PRIu64 " of host %s", job_id, holder) < 0)
                        waiting = NULL;
                hosts_set_state(h, "drained", waiting);
                return;
        }
        h->drained = x = calloc(1, sizeof(*x));
        if (!x || !(x->holder = strdup(holder))) {
                drained_free(TAKE_PTR(h->drained));
                return;
        }
        x->job_id = job_id;
        x->holder_pid = be_pid;
        if (s->jobs && s->jobs->running && s->jobs->running->statefile_written) {
                drained_answer(h, false, "a job of this host has its dependents stopped");
                drained_free(TAKE_PTR(h->drained));
                return;
        }
        /* the query counts as stopping: an end or a new holder heard meanwhile waits for it */
        x->stopping = true;
        if (!s->deps || s->cfg->n_units == 0)
                on_drained_queried(h, 0, NULL, 0);
        else if ((r = deps_query(s->deps, s->cfg->units, s->cfg->n_units, on_drained_queried, h)) < 0)
                on_drained_queried(h, r, NULL, 0);
}

void hosts_drain_on_notify(hosts *h, int be_pid, const char *payload) {
        char verb[8], holder[256], host[256];
        unsigned long long job_id;
        int used = 0;

        if (sscanf(payload, "%7s %255s %llu%n", verb, holder, &job_id, &used) != 3 || job_id == 0)
                return;
        if (streq(verb, "drain")) {
                if (!streq(holder, hosts_name()))
                        drained_begin(h, be_pid, holder, job_id);
        } else if (streq(verb, "done")) {
                if (h->drained && streq(h->drained->holder, holder) && h->drained->job_id == job_id)
                        drained_end(h, strstr(payload + used, "ok") ? "the job succeeded" : "the job failed");
        } else if ((streq(verb, "ack") || streq(verb, "fail")) && streq(holder, hosts_name()) && h->drainer &&
                   !h->drainer->finished && h->drainer->job_id == job_id &&
                   sscanf(payload + used, "%255s", host) == 1) {
                const char *reason = strstr(payload + used, host) + strlen(host);
                drainer_on_answer(h, be_pid, streq(verb, "ack"), host, *reason ? reason + 1 : NULL);
        }
}

void hosts_drain_on_lost(hosts *h) {
        if (h->drained)
                drained_end(h, "this host lost its session: nobody could end the drain");
        if (h->drainer)
                drainer_finish(h, -ECONNRESET, "lost the connection to the database during the drain: nothing was "
                                                "applied");
}

void hosts_drain_free(hosts *h) {
        drainer_free(TAKE_PTR(h->drainer));
        drained_free(TAKE_PTR(h->drained));
}
