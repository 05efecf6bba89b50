/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-login.h>
#include <unistd.h>

#include "commands.h"
#include "config.h"
#include "jobs.h"
#include "migdir-format.h"
#include "protocol-methods.h"
#include "deps.h"
#include "hosts.h"
#include "units.h"
#include "unrecorded.h"
#include "versionkeys.h"
#include "log.h"
#include "macro.h"

typedef struct request {
        server *server;
        peer peer;
        json_t *id;     /* owned reference */
        json_t *params; /* owned reference */
} request;

/* The daemon's side of a method: its handler. Its parameters and who may call it are in the
 * protocol's table (common/protocol-methods.c). */
typedef void (*command_fn)(request *rq);

static void request_free(request *rq) {
        json_decref(rq->id);
        json_decref(rq->params);
        free(rq);
}

static int64_t param_int(request *rq, const char *key, int64_t dflt) {
        json_t *v = json_object_get(rq->params, key);

        return json_is_integer(v) ? (int64_t) json_integer_value(v) : dflt;
}

static bool param_bool(request *rq, const char *key) {
        return json_is_true(json_object_get(rq->params, key));
}

/* "uid=1000 pid=4242 comm=migratectl host=box1": who asked, and on which host (the daemon's),
 * for history and the journal. */
static char *describe_peer(const peer *p) {
        char path[64], comm[64] = "?", *s;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/comm", (int) p->pid);
        f = fopen(path, "re");
        if (f) {
                if (fgets(comm, sizeof(comm), f))
                        comm[strcspn(comm, "\n")] = '\0';
                fclose(f);
        }
        if (asprintf(&s, "uid=%u pid=%d comm=%s host=%s", (unsigned) p->uid, (int) p->pid, comm, hosts_name()) < 0)
                return NULL;
        return s;
}

static void cmd_hello(request *rq);

/* Read-only methods run on the reader thread with its own connection, so they never wait behind
 * a job, and never block the loop. */
typedef enum read_kind {
        READ_STATUS,
        READ_PLAN,
        READ_HISTORY,
        READ_VERIFY,
        READ_WAIT, /* a fresh status, then wait until it says current */
        READ_DRY_RUN,
        READ_BACKUPS,
        READ_LOCK_CHECK,
        READ_HOSTS, /* a shared server's hosts, for a status answered from the snapshot */
        READ_DIFF,
        READ_SCHEMA,
} read_kind;

typedef struct read_task {
        request *rq;
        read_kind kind;
        plan_request plan;
        bool dry_run;
        unsigned limit;
        unsigned timeout_ms;
        bool strict;
        bool drift; /* status --drift */
        bool with_history; /* schema --with-history */
        unsigned applied_last; /* status: only the newest so many applied (0: all) */
        json_t *more;          /* status: what joins the snapshot in the reply (hosts, drift) */
        int r;
        json_t *result;
        engine_error err;
} read_task;

/* status --drift: "drift" true/false, or null with "drift_error" when the replay could not run. */
static void add_drift(engine *e, json_t *status) {
        engine_error err = {};
        json_t *diff = NULL;
        int r;

        r = engine_diff(e, &diff, &err);
        if (r == 0)
                (void) json_object_set(status, "drift", json_object_get(diff, "drift"));
        else {
                (void) json_object_set_new(status, "drift", json_null());
                (void) json_object_set_new(status, "drift_error",
                                           json_string(err.message ?: r < 0 ? strerror(-r) : "unknown error"));
        }
        json_decref(diff);
        engine_error_clear(&err);
}

static void read_run(void *userdata) {
        read_task *t = userdata;
        engine *e = t->rq->server->read_engine;

        switch (t->kind) {
        case READ_STATUS:
                t->r = engine_status(e, &t->result, &t->err);
                if (t->r == 0 && !(t->more = json_object()))
                        t->r = -ENOMEM;
                if (t->r == 0)
                        (void) engine_add_hosts(e, t->more);
                if (t->r == 0 && t->drift)
                        add_drift(e, t->more);
                break;
        case READ_DIFF: t->r = engine_diff(e, &t->result, &t->err); break;
        case READ_SCHEMA: t->r = engine_schema(e, t->with_history, &t->result, &t->err); break;
        case READ_WAIT: t->r = engine_status(e, &t->result, &t->err); break;
        case READ_HOSTS:
                t->result = json_object();
                t->r = t->result ? engine_add_hosts(e, t->result) : -ENOMEM;
                break;
        case READ_PLAN: t->r = engine_plan(e, &t->plan, &t->result, &t->err); break;
        case READ_HISTORY: t->r = engine_history(e, t->limit, &t->result, &t->err); break;
        case READ_VERIFY: t->r = engine_verify(e, &t->result, &t->err); break;
        case READ_DRY_RUN: t->r = engine_dry_run(e, &t->plan, &t->result, &t->err); break;
        case READ_BACKUPS: t->r = engine_list_backups(e, &t->result, &t->err); break;
        case READ_LOCK_CHECK:
                /* the backend knows its locks (SQLite: /proc/locks and the wal-index) */
                t->r = engine_lock_report(e, config_target(t->rq->server->cfg), &t->result);
                if (t->r < 0) {
                        t->err.code = PROTOCOL_ERROR_DATABASE;
                        if (asprintf(&t->err.message, "cannot inspect %s: %s", t->rq->server->cfg->database,
                                     t->r == -EOPNOTSUPP ? "this database backend cannot report its locks"
                                                         : strerror(-t->r)) < 0)
                                t->err.message = NULL;
                        t->r = ENGINE_FAILED;
                }
                break;
        }
}

/* Which dependent units the job would stop: those running now. */
static void add_units_to_dry_run(server *s, json_t *result, const unit_state *st, size_t n) {
        json_t *arr = json_array();
        bool changes = json_array_size(json_object_get(result, "steps")) > 0;
        const char *class = json_string_value(json_object_get(result, "class"));

        /* an online plan keeps them running (unless, timed on a copy, it is over online_lock_ms) */
        if (changes && s->cfg->n_units > 0 && !s->cfg->online_never && class && streq(class, "online")) {
                changes = false;
                json_object_set_new(result, "online_lock_ms", json_integer(s->cfg->online_lock_ms));
        }

        for (size_t i = 0; i < n; i++)
                json_array_append_new(arr, json_pack("{s:s,s:s,s:b}", "unit", st[i].name, "active_state",
                                                     st[i].active_state, "will_stop",
                                                     changes && unit_state_is_running(&st[i])));
        json_object_set_new(result, "units", arr);
}

/* What only the loop knows: the daemon's state and the dependent units'. */
static void add_daemon_to_lock_check(server *s, json_t *report, const unit_state *st, size_t n) {
        json_t *daemon = json_object(), *arr = json_array();

        jobs_describe(s->jobs, daemon);
        json_object_set_new(daemon, "pid", json_integer((json_int_t) getpid()));
        json_object_set_new(report, "daemon", daemon);
        for (size_t i = 0; i < n; i++)
                json_array_append_new(arr, json_pack("{s:s,s:s,s:s,s:s}", "unit", st[i].name, "load_state",
                                                     st[i].load_state, "active_state", st[i].active_state,
                                                     "sub_state", st[i].sub_state));
        json_object_set_new(report, "units", arr);
}

/* Last step of a read, on the loop: the dependents' states (when asked for) go in, the reply out. */
static void read_reply(void *userdata, int query_r, unit_state *st, size_t n) {
        read_task *t = userdata;
        request *rq = t->rq;
        server *s = rq->server;

        if (query_r < 0)
                n = 0;
        if (t->r == 0 && t->kind == READ_LOCK_CHECK)
                add_daemon_to_lock_check(s, t->result, st, n);
        if (t->r == 0 && t->dry_run) {
                json_object_set_new(t->result, "dry_run", json_true());
                add_units_to_dry_run(s, t->result, st, n);
        }
        unit_states_free(st, n);
        if (t->r == 0)
                server_reply_result(s, rq->peer.conn_id, rq->id, TAKE_PTR(t->result));
        else if (t->r > 0)
                server_reply_error(s, rq->peer.conn_id, rq->id, t->err.code, t->err.message, TAKE_PTR(t->err.extra));
        else
                server_reply_error(s, rq->peer.conn_id, rq->id, PROTOCOL_ERROR_INTERNAL, strerror(-t->r), NULL);
        engine_error_clear(&t->err);
        json_decref(t->result);
        json_decref(t->more);
        request_free(rq);
        free(t);
}

static void read_done(void *userdata) {
        read_task *t = userdata;
        request *rq = t->rq;
        server *s = rq->server;

        if (t->r == 0 && t->kind == READ_WAIT) {
                server_set_snapshot(s, TAKE_PTR(t->result));
                server_add_waiter(s, rq->peer.conn_id, rq->id, t->timeout_ms, t->strict);
                request_free(rq);
                free(t);
                return;
        }
        if (t->r == 0 && (t->kind == READ_STATUS || t->kind == READ_HOSTS)) {
                if (t->kind == READ_STATUS)
                        server_set_snapshot(s, TAKE_PTR(t->result));
                else
                        t->more = TAKE_PTR(t->result); /* the hosts, beside the job's snapshot */
                server_reply_status(s, rq->peer.conn_id, rq->id, t->applied_last, TAKE_PTR(t->more));
                request_free(rq);
                free(t);
                return;
        }
        if (t->r == 0 && t->kind == READ_HISTORY)
                unrecorded_merge(s->state_fd, s->cfg->database, t->result, t->limit);
        /* a pm2 jlist or an exec: check takes a while: asked off the loop, replied when answered */
        if (t->r == 0 && (t->kind == READ_LOCK_CHECK || t->dry_run) && s->deps &&
            deps_query(s->deps, s->cfg->units, s->cfg->n_units, read_reply, t) >= 0)
                return;
        read_reply(t, -ENOTCONN, NULL, 0);
}

static void submit_read(request *rq, read_task *t) {
        t->rq = rq;
        if (worker_submit(rq->server->reader, read_run, read_done, t) < 0) {
                server_reply_error(rq->server, rq->peer.conn_id, rq->id, PROTOCOL_ERROR_SHUTTING_DOWN,
                                   "migrated is shutting down", NULL);
                request_free(rq);
                free(t);
        }
}

static read_task *read_task_new(request *rq, read_kind kind) {
        read_task *t = calloc(1, sizeof(*t));

        if (!t) {
                server_reply_error(rq->server, rq->peer.conn_id, rq->id, PROTOCOL_ERROR_INTERNAL, "out of memory",
                                   NULL);
                request_free(rq);
                return NULL;
        }
        t->kind = kind;
        return t;
}

/* While a job runs the database is changing under the writer's transaction: answer from the
 * snapshot the job worker published, plus the job's live progress. */
static void cmd_status(request *rq) {
        unsigned applied_last = (unsigned) param_int(rq, "applied_last", 0);
        read_task *t;

        /* the drift replay reads committed state only: it needs no snapshot */
        if (param_bool(rq, "drift")) {
                t = read_task_new(rq, READ_STATUS);
                if (t) {
                        t->drift = true;
                        t->applied_last = applied_last;
                        submit_read(rq, t);
                }
                return;
        }
        /* a shared server's hosts are read even then: the writer's transaction blocks nothing */
        if (jobs_busy(rq->server->jobs) && rq->server->snapshot && rq->server->hosts) {
                t = read_task_new(rq, READ_HOSTS);
                if (t) {
                        t->applied_last = applied_last;
                        submit_read(rq, t);
                }
                return;
        }
        if (jobs_busy(rq->server->jobs) && rq->server->snapshot) {
                server_reply_status(rq->server, rq->peer.conn_id, rq->id, applied_last, NULL);
                request_free(rq);
                return;
        }
        t = read_task_new(rq, READ_STATUS);
        if (t) {
                t->applied_last = applied_last;
                submit_read(rq, t);
        }
}

static void plan_from_params(request *rq, plan_request *p, plan_direction dir) {
        p->direction = dir;
        p->to = param_int(rq, "to", PLAN_NO_TARGET);
        p->steps = param_int(rq, "steps", 0);
        p->allow_out_of_order = param_bool(rq, "allow_out_of_order");
}

static void cmd_plan(request *rq) {
        const char *dir = json_string_value(json_object_get(rq->params, "direction"));
        read_task *t;

        const char *dialect = json_string_value(json_object_get(rq->params, "dialect"));

        if (dir && !streq(dir, "up") && !streq(dir, "down")) {
                server_reply_error(rq->server, rq->peer.conn_id, rq->id, PROTOCOL_ERROR_INVALID_PARAMS,
                                   "parameter \"direction\" must be \"up\" or \"down\"", NULL);
                request_free(rq);
                return;
        }
        if (dialect && !streq(dialect, "sqlite") && !streq(dialect, "postgresql")) {
                server_reply_error(rq->server, rq->peer.conn_id, rq->id, PROTOCOL_ERROR_INVALID_PARAMS,
                                   "parameter \"dialect\" must be \"sqlite\" or \"postgresql\"", NULL);
                request_free(rq);
                return;
        }
        t = read_task_new(rq, READ_PLAN);
        if (!t)
                return;
        plan_from_params(rq, &t->plan, dir && streq(dir, "down") ? PLAN_DOWN : PLAN_UP);
        t->plan.classify_postgres = dialect && streq(dialect, "postgresql");
        submit_read(rq, t);
}

static void cmd_history(request *rq) {
        read_task *t = read_task_new(rq, READ_HISTORY);

        if (!t)
                return;
        t->limit = (unsigned) param_int(rq, "limit", 50);
        submit_read(rq, t);
}

/* The gate for services: answered once the schema is current. While a job runs, its commit
 * refreshes the snapshot and opens the gate before the job starts the units again. */
static void cmd_wait(request *rq) {
        unsigned timeout_ms = (unsigned) param_int(rq, "timeout_ms", 0);
        bool strict = param_bool(rq, "strict");
        read_task *t;

        if (jobs_busy(rq->server->jobs)) {
                server_add_waiter(rq->server, rq->peer.conn_id, rq->id, timeout_ms, strict);
                request_free(rq);
                return;
        }
        t = read_task_new(rq, READ_WAIT);
        if (!t)
                return;
        t->timeout_ms = timeout_ms;
        t->strict = strict;
        submit_read(rq, t);
}

static void cmd_cancel(request *rq) {
        json_t *result = NULL;
        uint64_t id = (uint64_t) param_int(rq, "job_id", 0);

        if (jobs_cancel(rq->server->jobs, id, &result) < 0) {
                _cleanup_free_ char *msg = NULL;
                if (id == 0 ? asprintf(&msg, "no job is running") < 0
                            : asprintf(&msg, "no job %" PRIu64 " is queued or running", id) < 0)
                        msg = NULL;
                server_reply_error(rq->server, rq->peer.conn_id, rq->id, PROTOCOL_ERROR_STATE_CONFLICT,
                                   msg ?: "no such job", NULL);
        } else
                server_reply_result(rq->server, rq->peer.conn_id, rq->id, result);
        request_free(rq);
}

static void cmd_lock_check(request *rq) {
        read_task *t = read_task_new(rq, READ_LOCK_CHECK);

        if (t)
                submit_read(rq, t);
}

static void cmd_diff(request *rq) {
        read_task *t = read_task_new(rq, READ_DIFF);

        if (t)
                submit_read(rq, t);
}

/* The dump runs on the reader thread: pg_dump may take a while on a large schema. */
static void cmd_schema(request *rq) {
        read_task *t = read_task_new(rq, READ_SCHEMA);

        if (!t)
                return;
        t->with_history = param_bool(rq, "with_history");
        submit_read(rq, t);
}

static void cmd_verify(request *rq) {
        read_task *t = read_task_new(rq, READ_VERIFY);

        if (t)
                submit_read(rq, t);
}

/* up and down: a dry run is only a plan; anything else is a job in the queue. */
static void submit_job(request *rq, plan_direction dir) {
        _cleanup_free_ char *who = NULL;
        engine_job spec = {};
        read_task *t;

        if (param_bool(rq, "dry_run")) {
                t = read_task_new(rq, READ_DRY_RUN);
                if (!t)
                        return;
                plan_from_params(rq, &t->plan, dir);
                t->dry_run = true;
                submit_read(rq, t);
                return;
        }
        plan_from_params(rq, &spec.request, dir);
        spec.kind = param_bool(rq, "rehearse") ? ENGINE_JOB_REHEARSE : ENGINE_JOB_MIGRATE;
        spec.per_migration = param_bool(rq, "per_migration");
        spec.seed = param_bool(rq, "seed");
        who = describe_peer(&rq->peer);
        spec.requested_by = who;
        jobs_submit(rq->server->jobs, &spec, rq->peer.conn_id, rq->id);
        request_free(rq);
}

/* backup and restore are jobs too: serialized with migrations, restore with the units stopped. */
static void submit_simple_job(request *rq, engine_job_kind kind) {
        _cleanup_free_ char *who = describe_peer(&rq->peer);
        engine_job spec = { .kind = kind, .requested_by = who,
                            .backup = json_string_value(json_object_get(rq->params, "backup")) };

        jobs_submit(rq->server->jobs, &spec, rq->peer.conn_id, rq->id);
        request_free(rq);
}

/* mark {"migration": ..., "state": "applied" | "rolled_back"}: Prisma's migrate resolve. */
static void cmd_mark(request *rq) {
        _cleanup_free_ char *who = describe_peer(&rq->peer);
        const char *state = json_string_value(json_object_get(rq->params, "state"));
        const char *target = json_string_value(json_object_get(rq->params, "migration"));
        engine_job spec = { .requested_by = who, .target = target };

        if (!target || !state || (!streq(state, "applied") && !streq(state, "rolled_back"))) {
                server_reply_error(rq->server, rq->peer.conn_id, rq->id, PROTOCOL_ERROR_INVALID_PARAMS,
                                   "mark needs \"migration\" and \"state\": \"applied\" or \"rolled_back\"", NULL);
                request_free(rq);
                return;
        }
        spec.kind = streq(state, "applied") ? ENGINE_JOB_MARK_APPLIED : ENGINE_JOB_MARK_ROLLED_BACK;
        jobs_submit(rq->server->jobs, &spec, rq->peer.conn_id, rq->id);
        request_free(rq);
}

static void cmd_baseline(request *rq) {
        _cleanup_free_ char *who = describe_peer(&rq->peer), *version = NULL;
        engine_job spec = { .kind = ENGINE_JOB_BASELINE, .requested_by = who };
        json_t *v = json_object_get(rq->params, "version");

        if (!json_is_integer(v) || asprintf(&version, "%" JSON_INTEGER_FORMAT, json_integer_value(v)) < 0) {
                server_reply_error(rq->server, rq->peer.conn_id, rq->id, PROTOCOL_ERROR_INVALID_PARAMS,
                                   "baseline needs \"version\"", NULL);
                request_free(rq);
                return;
        }
        spec.target = version;
        jobs_submit(rq->server->jobs, &spec, rq->peer.conn_id, rq->id);
        request_free(rq);
}

/* repair {"migration": ...}: accept an applied migration's edited file on purpose. */
static void cmd_repair(request *rq) {
        _cleanup_free_ char *who = describe_peer(&rq->peer);
        const char *target = json_string_value(json_object_get(rq->params, "migration"));
        engine_job spec = { .kind = ENGINE_JOB_REPAIR, .requested_by = who, .target = target };

        if (!target) {
                server_reply_error(rq->server, rq->peer.conn_id, rq->id, PROTOCOL_ERROR_INVALID_PARAMS,
                                   "repair needs \"migration\"", NULL);
                request_free(rq);
                return;
        }
        jobs_submit(rq->server->jobs, &spec, rq->peer.conn_id, rq->id);
        request_free(rq);
}

static void cmd_backup(request *rq) {
        submit_simple_job(rq, ENGINE_JOB_BACKUP);
}

static void cmd_restore(request *rq) {
        const char *name = json_string_value(json_object_get(rq->params, "backup"));

        if (name && (strchr(name, '/') || name[0] == '.')) {
                server_reply_error(rq->server, rq->peer.conn_id, rq->id, PROTOCOL_ERROR_INVALID_PARAMS,
                                   "\"backup\" is a backup's file name as listed by backups, not a path", NULL);
                request_free(rq);
                return;
        }
        submit_simple_job(rq, ENGINE_JOB_RESTORE);
}

static void cmd_backups(request *rq) {
        read_task *t = read_task_new(rq, READ_BACKUPS);

        if (t)
                submit_read(rq, t);
}

/* seed: the seed files not applied yet; a job like up, but the dependents keep running. */
static void cmd_seed(request *rq) {
        submit_simple_job(rq, ENGINE_JOB_SEED);
}

/* reset: development only; the engine refuses it unless the configuration allows it. */
static void cmd_reset(request *rq) {
        submit_simple_job(rq, ENGINE_JOB_RESET);
}

static void cmd_up(request *rq) {
        submit_job(rq, PLAN_UP);
}

static void cmd_down(request *rq) {
        if (json_object_get(rq->params, "to") && json_object_get(rq->params, "steps")) {
                server_reply_error(rq->server, rq->peer.conn_id, rq->id, PROTOCOL_ERROR_INVALID_PARAMS,
                                   "give either \"to\" or \"steps\", not both", NULL);
                request_free(rq);
                return;
        }
        submit_job(rq, PLAN_DOWN);
}

/* One handler per protocol_method_id: the build checks the count; a hole would answer
 * unknown_method, which test_authz's test_every_method_of_the_table catches. */
static const command_fn handlers[] = {
        [METHOD_HELLO] = cmd_hello,
        [METHOD_STATUS] = cmd_status,
        [METHOD_PLAN] = cmd_plan,
        [METHOD_HISTORY] = cmd_history,
        [METHOD_VERIFY] = cmd_verify,
        [METHOD_WAIT] = cmd_wait,
        [METHOD_LOCK_CHECK] = cmd_lock_check,
        [METHOD_UP] = cmd_up,
        [METHOD_DOWN] = cmd_down,
        [METHOD_CANCEL] = cmd_cancel,
        [METHOD_BACKUPS] = cmd_backups,
        [METHOD_BACKUP] = cmd_backup,
        [METHOD_RESTORE] = cmd_restore,
        [METHOD_MARK] = cmd_mark,
        [METHOD_BASELINE] = cmd_baseline,
        [METHOD_REPAIR] = cmd_repair,
        [METHOD_DIFF] = cmd_diff,
        [METHOD_SEED] = cmd_seed,
        [METHOD_RESET] = cmd_reset,
        [METHOD_SCHEMA] = cmd_schema,
};
_Static_assert(ELEMENTSOF(handlers) == _METHOD_MAX, "one handler per protocol_method_id");

static void cmd_hello(request *rq) {
        json_t *methods = json_array();
        json_t *capabilities = json_pack("[sssssss]", "events", "coalescing", "dry_run", "units", "wait", "backups",
                                         "rehearse");

        for (protocol_method_id i = 0; i < _METHOD_MAX; i++)
                json_array_append_new(methods, json_string(protocol_methods[i].name));
        /* the formats that announce themselves, from the table of migration formats */
        for (size_t i = 0; capabilities && i < migration_format_count(); i++)
                if (migration_format_at(i)->capability)
                        json_array_append_new(capabilities, json_string(migration_format_at(i)->capability));
        server_reply_result(rq->server, rq->peer.conn_id, rq->id,
                            json_pack("{s:i,s:[ii],s:s,s:s,s:o,s:o,s:I}", "protocol",
                                      control_protocol(rq->server->control, rq->peer.conn_id), "protocols",
                                      PROTOCOL_VERSION_MIN, MIGRATED_PROTOCOL_VERSION, "server", "migrated", "version",
                                      PROJECT_VERSION, "methods", methods, "capabilities", capabilities, "pid",
                                      (json_int_t) getpid()));
        request_free(rq);
}

/* The one place that decides who may change things: root, the daemon's own user, and members
 * (primary or supplementary) of the configured admin group. */
static bool peer_may_change(const server *s, const peer *p) {
        gid_t admin = s->cfg->admin_gid;

        if (p->uid == 0 || p->uid == geteuid())
                return true;
        if (admin == (gid_t) -1)
                return false;
        if (p->gid == admin)
                return true;
        for (unsigned i = 0; i < p->n_groups; i++)
                if (p->groups[i] == admin)
                        return true;
        return false;
}

/* Version 1 carries versions as integers, which a format with dotted keys (Flyway's) cannot use:
 * such a daemon answers version 1 with hello only. Version 2's version params become the
 * integers the handlers read. Returns 0 or a protocol_error_code + 1 with *ret_message set. */
static int check_protocol(server *s, protocol_method_id id, const protocol_request *req, char **ret_message) {
        const migration_format *f = server_wire_format(s);
        int r;

        if (req->protocol >= 2) {
                r = versionkeys_params(f, req->params, ret_message);
                if (r == -ENOMEM && !*ret_message)
                        return PROTOCOL_ERROR_INTERNAL + 1;
                return r < 0 ? PROTOCOL_ERROR_INVALID_PARAMS + 1 : 0;
        }
        if (id == METHOD_HELLO || !versionkeys_v1_refused(f))
                return 0;
        if (asprintf(ret_message, "the %s format's versions are string keys (such as 1.2.10) that protocol version 1 "
                     "cannot carry: send \"protocol\": 2 with the request (migratectl does)", f->name) < 0)
                *ret_message = NULL;
        return PROTOCOL_ERROR_INVALID_REQUEST + 1;
}

void commands_dispatch(server *s, const peer *p, const char *line, size_t size) {
        protocol_request req;
        protocol_method_id id;
        _cleanup_free_ char *msg = NULL;
        request *rq;
        int r;

        r = protocol_decode_request(line, size, &req, &msg);
        if (r > 0) {
                server_reply_error(s, p->conn_id, req.id, (protocol_error_code) (r - 1), msg, NULL);
                protocol_request_done(&req);
                return;
        }
        control_set_protocol(s->control, p->conn_id, req.protocol);
        id = protocol_method_from_name(req.method);
        if (id < 0 || !handlers[id]) {
                free(msg);
                msg = NULL;
                if (asprintf(&msg, "unknown method \"%.64s\"", req.method) < 0)
                        msg = NULL;
                server_reply_error(s, p->conn_id, req.id, PROTOCOL_ERROR_UNKNOWN_METHOD, msg, NULL);
                protocol_request_done(&req);
                return;
        }
        r = check_protocol(s, id, &req, &msg);
        if (r == 0)
                r = protocol_check_params(req.params, protocol_methods[id].params, protocol_methods[id].n_params, &msg);
        if (r > 0) {
                /* a refused version 1 says which version to speak, for clients to switch */
                server_reply_error(s, p->conn_id, req.id, (protocol_error_code) (r - 1), msg,
                                   r == PROTOCOL_ERROR_INVALID_REQUEST + 1
                                           ? json_pack("{s:i}", "protocol_required", MIGRATED_PROTOCOL_VERSION)
                                           : NULL);
                protocol_request_done(&req);
                return;
        }
        if (protocol_method_changes(id, req.params) && !peer_may_change(s, p)) {
                _cleanup_free_ char *unit = NULL;
                if (sd_pid_get_unit(p->pid, &unit) < 0)
                        unit = NULL;
                log_warning("Refused %s from uid %u pid %d unit %s: not permitted", protocol_methods[id].name, (unsigned) p->uid,
                            (int) p->pid, unit ?: "-");
                server_reply_error(s, p->conn_id, req.id, PROTOCOL_ERROR_PERMISSION_DENIED,
                                   s->cfg->admin_gid != (gid_t) -1
                                           ? "only root, migrated's own user and members of its admin group may "
                                             "change the database"
                                           : "only root or migrated's own user may change the database (set "
                                             "admin_group to allow a group)",
                                   NULL);
                protocol_request_done(&req);
                return;
        }
        rq = calloc(1, sizeof(*rq));
        if (!rq) {
                server_reply_error(s, p->conn_id, req.id, PROTOCOL_ERROR_INTERNAL, "out of memory", NULL);
                protocol_request_done(&req);
                return;
        }
        rq->server = s;
        rq->peer = *p;
        rq->id = json_incref(req.id);
        rq->params = json_incref(req.params);
        protocol_request_done(&req);
        handlers[id](rq);
}
