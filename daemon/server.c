/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <event2/thread.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "deps.h"
#include "hosts.h"
#include "jobs.h"
#include "statedir.h"
#include "units.h"
#include "versionkeys.h"
#include "log.h"
#include "macro.h"
#include "server.h"
#include "startcheck.h"

/* A final reply that cannot be encoded (e.g. no memory for it) still ends its request. */
static char *final_line(char *line) {
        return line ?: strdup(PROTOCOL_FALLBACK_ERROR);
}

const migration_format *server_wire_format(server *s) {
        return s->read_engine ? migration_format_get(engine_format(s->read_engine)) : NULL;
}

/* A reply's versions as the connection's protocol spells them. */
static json_t *wire(server *s, uint64_t conn_id, json_t *v) {
        return control_protocol(s->control, conn_id) >= 2 ? versionkeys_reply(server_wire_format(s), v) : v;
}

void server_reply_result(server *s, uint64_t conn_id, json_t *id, json_t *result) {
        if (conn_id == 0) {
                json_decref(result);
                return;
        }
        result = wire(s, conn_id, result);
        (void) control_send(s->control, conn_id, final_line(protocol_encode_result(id, result)), true);
}

void server_reply_error(server *s, uint64_t conn_id, json_t *id, protocol_error_code code, const char *message,
                        json_t *extra) {
        if (conn_id == 0) {
                json_decref(extra);
                return;
        }
        extra = wire(s, conn_id, extra);
        (void) control_send(s->control, conn_id, final_line(protocol_encode_error(id, code, message, extra)), true);
}

void server_reply_event(server *s, uint64_t conn_id, json_t *id, const char *event, json_t *fields) {
        if (conn_id == 0) {
                json_decref(fields);
                return;
        }
        fields = wire(s, conn_id, fields);
        (void) control_send(s->control, conn_id, protocol_encode_event(id, event, fields), false);
}

struct waiter {
        server *server;
        uint64_t conn_id;
        json_t *id;
        bool strict; /* only a current schema opens it, never a failed migration */
        struct event *timer;
        waiter *prev, *next;
};

static void waiter_free(waiter *w) {
        server *s = w->server;

        if (w->prev)
                w->prev->next = w->next;
        else
                s->waiters = w->next;
        if (w->next)
                w->next->prev = w->prev;
        if (w->timer)
                event_free(w->timer);
        json_decref(w->id);
        free(w);
}

bool server_schema_current(server *s) {
        return s->snapshot && json_array_size(json_object_get(s->snapshot, "pending")) == 0 &&
               json_array_size(json_object_get(s->snapshot, "problems")) == 0;
}

static json_t *gate_result(server *s, bool current, const char *reason) {
        json_t *r = json_pack("{s:O,s:b}", "current_version",
                              json_object_get(s->snapshot, "current_version") ?: json_null(), "schema_current", current);

        if (r && reason)
                json_object_set_new(r, "reason", json_string(reason));
        return r;
}

static void check_waiters(server *s) {
        for (waiter *w = s->waiters, *next; w; w = next) {
                const char *reason;
                bool current;
                next = w->next;
                if (!gate_opens(&s->gate, s->snapshot, w->strict, &current, &reason))
                        continue;
                server_reply_result(s, w->conn_id, w->id, gate_result(s, current, reason));
                waiter_free(w);
        }
}

void server_gate_changed(server *s) {
        check_waiters(s);
}

static void on_waiter_timeout(evutil_socket_t fd, short what, void *userdata) {
        waiter *w = userdata;
        json_t *pending = json_object_get(w->server->snapshot, "pending");

        server_reply_error(w->server, w->conn_id, w->id, PROTOCOL_ERROR_TIMEOUT,
                           json_array_size(pending) > 0
                                   ? "timed out: the schema is still not current (migrations are pending)"
                                   : "timed out: the schema is still not current (see migratectl status)",
                           json_pack("{s:O}", "pending", pending ?: json_null()));
        waiter_free(w);
}

void server_add_waiter(server *s, uint64_t conn_id, json_t *id, unsigned timeout_ms, bool strict) {
        struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };
        const char *reason;
        waiter *w;
        bool current;

        if (gate_opens(&s->gate, s->snapshot, strict, &current, &reason)) {
                server_reply_result(s, conn_id, id, gate_result(s, current, reason));
                return;
        }
        w = calloc(1, sizeof(*w));
        if (!w || !(w->timer = evtimer_new(s->base, on_waiter_timeout, w))) {
                free(w);
                server_reply_error(s, conn_id, id, PROTOCOL_ERROR_INTERNAL, "out of memory", NULL);
                return;
        }
        w->server = s;
        w->conn_id = conn_id;
        w->id = json_incref(id);
        w->strict = strict;
        w->next = s->waiters;
        if (s->waiters)
                s->waiters->prev = w;
        s->waiters = w;
        evtimer_add(w->timer, &tv);
}

/* A status read from the engine's cached one shares every member with it (engine-status.c). */
static bool same_members(json_t *a, json_t *b) {
        const char *key;
        json_t *v;

        if (!a || !b || json_object_size(a) != json_object_size(b))
                return false;
        json_object_foreach(a, key, v)
                if (json_object_get(b, key) != v)
                        return false;
        return true;
}

void server_set_snapshot(server *s, json_t *snapshot) {
        if (!snapshot)
                return;
        /* unchanged: keep the old one, and what was encoded of it */
        if (same_members(s->snapshot, snapshot)) {
                json_decref(snapshot);
                return;
        }
        status_texts_clear(&s->status_texts);
        json_decref(s->snapshot);
        s->snapshot = snapshot;
        metrics_set_snapshot(s->metrics, snapshot);
        check_waiters(s);
}

typedef struct refresh {
        server *server;
        json_t *snapshot;
} refresh;

static void refresh_run(void *userdata) {
        refresh *rf = userdata;
        engine_error err = {};

        if (engine_status(rf->server->read_engine, &rf->snapshot, &err) != 0) {
                rf->snapshot = NULL;
                log_warning("Cannot refresh the status: %s", err.message ?: "out of memory");
        }
        engine_error_clear(&err);
}

static void refresh_done(void *userdata) {
        refresh *rf = userdata;
        server *s = rf->server;

        server_set_snapshot(s, rf->snapshot);
        free(rf);
        s->rescan_running = false;
        if (s->rescan_pending && !s->shutting_down) {
                s->rescan_pending = false;
                server_refresh(s, s->rescan_why);
        }
}

/* A fresh snapshot (on the reader thread: no SQL on the loop), which opens the wait gates it
 * satisfies: after a reload (new files) or another host's commit. A storm of requests costs at
 * most one running and one pending rescan. */
void server_refresh(server *s, const char *why) {
        refresh *rf;

        if (s->rescan_running) {
                s->rescan_pending = true;
                s->rescan_why = why;
                return;
        }
        if (why)
                log_info("%s", why);
        rf = calloc(1, sizeof(*rf));
        if (!rf)
                return;
        rf->server = s;
        if (worker_submit(s->reader, refresh_run, refresh_done, rf) < 0) {
                free(rf);
                return;
        }
        s->rescan_running = true;
}

void server_notify_status(server *s, const char *fmt, ...) {
        char text[256];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(text, sizeof(text), fmt, ap);
        va_end(ap);
        (void) sd_notifyf(0, "STATUS=%s", text);
}

void server_notify_idle(server *s) {
        json_t *cur = s->snapshot ? json_object_get(s->snapshot, "current_version") : NULL;

        server_notify_status(s, "Idle at version %" JSON_INTEGER_FORMAT, json_is_integer(cur) ? json_integer_value(cur) : 0);
}

void server_reply_status(server *s, uint64_t conn_id, json_t *id, unsigned applied_last, json_t *more) {
        bool keys;
        const char *fixed;
        size_t len;

        if (conn_id == 0) {
                json_decref(more);
                return;
        }
        keys = control_protocol(s->control, conn_id) >= 2;
        if (!more)
                more = json_object();
        if (more) {
                jobs_describe(s->jobs, more);
                json_object_set_new(more, "gate", gate_describe(&s->gate, s->snapshot));
        }
        more = wire(s, conn_id, more);
        fixed = status_texts_get(&s->status_texts, s->snapshot, keys, server_wire_format(s), applied_last, &len);
        if (!fixed || !more) {
                json_decref(more);
                (void) control_send(s->control, conn_id, final_line(NULL), true);
                return;
        }
        (void) control_send(s->control, conn_id, final_line(protocol_encode_result_spliced(id, fixed, len, more)),
                            true);
}

/* Exit once every reply is written (or after two seconds, for clients that stopped reading). */
static void exit_check(evutil_socket_t fd, short what, void *userdata) {
        server *s = userdata;
        static struct timespec first;
        struct timespec now;
        struct timeval again = { 0, 20000 };

        clock_gettime(CLOCK_MONOTONIC, &now);
        if (first.tv_sec == 0)
                first = now;
        if (jobs_busy(s->jobs) || hosts_drained(s->hosts) ||
            (control_pending_output(s->control) > 0 && now.tv_sec - first.tv_sec < 2)) {
                if (!jobs_busy(s->jobs) && !hosts_drained(s->hosts))
                        evtimer_add(s->exit_check, &again);
                return;
        }
        event_base_loopexit(s->base, NULL);
}

void server_shutdown(server *s) {
        if (s->shutting_down)
                return;
        s->shutting_down = true;
        log_info("Shutting down%s", jobs_busy(s->jobs) ? ": interrupting the running job" : "");
        (void) sd_notify(0, "STOPPING=1\nSTATUS=Shutting down");
        control_stop_accepting(s->control);
        while (s->waiters) {
                server_reply_error(s, s->waiters->conn_id, s->waiters->id, PROTOCOL_ERROR_SHUTTING_DOWN,
                                   "migrated is shutting down", NULL);
                waiter_free(s->waiters);
        }
        jobs_shutdown(s->jobs);
        hosts_drained_leave(s->hosts); /* their start runs on the loop, waited for by exit_check */
        if (!s->exit_check)
                s->exit_check = evtimer_new(s->base, exit_check, s);
        if (s->exit_check && !jobs_busy(s->jobs))
                event_active(s->exit_check, EV_TIMEOUT, 0);
}

void server_job_finished(server *s) {
        if (s->shutting_down && s->exit_check)
                event_active(s->exit_check, EV_TIMEOUT, 0);
}

static void on_request(void *userdata, const peer *p, const char *line, size_t size) {
        commands_dispatch(userdata, p, line, size);
}

/* history.sqlite in the state directory, for migrated's own tables when the format keeps them
 * out of the application database; validated as every state file is. */
static int open_own_history(server *s, char **ret_path, db_file_identity *ret_identity) {
        struct stat st;
        int r;

        r = statedir_create_file(s->state_fd, STATEDIR_HISTORY_NAME, &st);
        if (r == -EBADMSG)
                return log_error_errno(r, "%s/%s is not a regular file of ours writable by us alone; move it aside",
                                       s->cfg->state_dir, STATEDIR_HISTORY_NAME);
        if (r < 0)
                return log_error_errno(r, "Failed to create %s/%s: %m", s->cfg->state_dir, STATEDIR_HISTORY_NAME);
        if (asprintf(ret_path, "%s/%s", s->cfg->state_dir, STATEDIR_HISTORY_NAME) < 0)
                return -ENOMEM;
        *ret_identity = (db_file_identity) { .known = true, .dev = st.st_dev, .ino = st.st_ino };
        return 0;
}

/* Opens both engines and clears what a killed predecessor left behind, before serving anyone. */
static int open_engines(server *s, const db_file_identity *identity) {
        const char *reason = NULL;
        migdir_format detected = s->cfg->format >= 0 ? (migdir_format) s->cfg->format
                                                     : migdir_detect_format_reason(s->cfg->migrations_dir, &reason);
        engine_options o = { .backend = s->cfg->backend, .database = s->cfg->database,
                             .target = s->cfg->connection, .password_file = s->cfg->password_file,
                             .migrations_dir = s->cfg->migrations_dir,
                             .busy_timeout_ms = s->cfg->busy_timeout_ms, .backup_dir = s->cfg->backup_dir,
                             .backup_keep = s->cfg->backup_keep, .no_auto_backup = s->cfg->no_auto_backup,
                             .integrity = (engine_integrity) s->cfg->integrity,
                             .format = detected, .format_auto = s->cfg->format < 0, .format_reason = reason,
                             .identity = *identity, .seeds_dir = s->cfg->seeds_dir,
                             .seed_retries = s->cfg->seed_retries, .seed_backoff_ms = s->cfg->seed_backoff_ms,
                             .allow_reset = s->cfg->allow_reset };
        _cleanup_free_ char *own = NULL;
        engine_error err = {};
        json_t *snap = NULL;
        int r;

        if (s->cfg->no_auto_backup)
                log_warning("No backup is taken before a change ([backup] skip = true)");
        if (!db_format_keeps_own_tables(o.format)) {
                r = open_own_history(s, &own, &o.own_identity);
                if (r < 0)
                        return r;
                o.own_target = own;
        }
        r = engine_new(&o, &s->job_engine, &err);
        if (r == 0) {
                o.read_only = true;
                r = engine_new(&o, &s->read_engine, &err);
        }
        if (r != 0) {
                if (r > 0)
                        log_error("Failed to open %s: %s", s->cfg->database, err.message);
                else
                        log_error_errno(r, "Failed to open %s: %m", s->cfg->database);
                engine_error_clear(&err);
                return -EIO;
        }
        r = engine_recover(s->job_engine, &err);
        if (r > 0)
                log_warning("Marked %d attempt(s) left running by a previous migrated as interrupted", r);
        else if (r < 0 || err.message)
                log_warning("Could not check for interrupted attempts now: %s", err.message ?: strerror(-r));
        engine_error_clear(&err);
        if (engine_status(s->job_engine, &snap, &err) == 0)
                server_set_snapshot(s, snap);
        engine_error_clear(&err);
        return 0;
}

/* The state directory, and the gate's memory in it, before anything reads either. */
static int open_state(server *s) {
        _cleanup_free_ char *msg = NULL;
        int r;

        s->state_fd = statedir_open(s->cfg->state_dir, &msg);
        if (s->state_fd < 0) {
                if (msg)
                        log_error("Cannot use the state directory: %s", msg);
                else
                        log_error_errno(s->state_fd, "Failed to open the state directory %s: %m", s->cfg->state_dir);
                return -EIO;
        }
        /* A server's database has no file to flock: its state directory, named by the server's
         * identity, is the one-daemon-per-host lock instead (across hosts, the advisory lock). */
        if (config_is_server(s->cfg) && flock(s->state_fd, LOCK_EX | LOCK_NB) < 0) {
                if (errno == EWOULDBLOCK)
                        log_error("Another migrated serves %s from the state directory %s", s->cfg->database,
                                  s->cfg->state_dir);
                else
                        log_error_errno(errno, "Failed to lock the state directory %s: %m", s->cfg->state_dir);
                return -EIO;
        }
        r = gate_load(&s->gate, s->state_fd, s->cfg->database, &msg);
        if (msg)
                log_warning("%s", msg);
        if (r < 0)
                return log_error_errno(r, "Failed to read the gate state in %s: %m", s->cfg->state_dir);
        if (s->gate.hold)
                log_info("The schema is held at version %" JSON_INTEGER_FORMAT " (by %s, job %" JSON_INTEGER_FORMAT
                         "): migratectl up ends the hold",
                         json_integer_value(json_object_get(s->gate.hold, "version")),
                         json_string_value(json_object_get(s->gate.hold, "by")),
                         json_integer_value(json_object_get(s->gate.hold, "job_id")));
        return 0;
}

static int open_listener(const config *cfg, bool *ret_created) {
        int n = sd_listen_fds(1), fd;

        if (n > 1) {
                log_error("Expected at most one socket from systemd, got %d", n);
                return -EINVAL;
        }
        if (n == 1) {
                *ret_created = false;
                return SD_LISTEN_FDS_START;
        }
        fd = control_listen_path(cfg->socket_path, cfg->socket_gid);
        if (fd == -EADDRINUSE || fd == -EEXIST)
                return log_error_errno(fd, "Cannot listen on %s: %s", cfg->socket_path,
                                       fd == -EEXIST ? "a file that is not a socket is in the way"
                                                     : "another process is listening there");
        if (fd < 0) {
                const char *remedy = startcheck_remedy(fd, true);
                return log_error_errno(fd, "Failed to listen on %s: %m%s%s", cfg->socket_path, remedy ? "; " : "",
                                       remedy ?: "");
        }
        *ret_created = true;
        return fd;
}

int server_new(const config *cfg, const db_file_identity *identity, server **ret) {
        _cleanup_(server_freep) server *s = NULL;
        int r;

        s = calloc(1, sizeof(*s));
        if (!s)
                return log_error_errno(ENOMEM, "Failed to allocate the server: %m");
        s->cfg = cfg;
        s->state_fd = -1;
        evthread_use_pthreads();
        s->base = event_base_new();
        if (!s->base)
                return log_error_errno(ENOMEM, "Failed to create the event loop: %m");
        if (open_state(s) < 0 || open_engines(s, identity) < 0)
                return -EIO;
        if (metrics_new(s->base, cfg->database, cfg->metrics_textfile, cfg->metrics_listen, &s->metrics) < 0)
                return -EIO;
        metrics_set_snapshot(s->metrics, s->snapshot);
        if (cfg->n_units > 0) {
                r = deps_new(s->base, cfg, &s->deps);
                if (r < 0) {
                        log_error_errno(r, "Failed to connect to the %s service manager: %m",
                                        cfg->user_manager ? "user" : "system");
                        return -EIO;
                }
        }
        *ret = TAKE_PTR(s);
        return 0;
}

static void on_client_gone(void *userdata) {
        server_shutdown(userdata);
}

/* The one-shot mode: no socket, only the client that started us, on fd 3; when it is gone, the
 * running job (if any) is interrupted as by SIGTERM and we exit. */
static int listen_one_shot(server *s) {
        control_limits limits = { .max_connections = 1, .max_connections_per_uid = 1,
                                  .request_timeout_s = s->cfg->request_timeout_s,
                                  .max_output = 16u * 1024u * 1024u, .max_outstanding = 64 };
        int r;

        if (control_new(s->base, -1, &limits, on_request, s, &s->control) < 0)
                return log_error_errno(ENOMEM, "Failed to set up the connection: %m");
        r = control_adopt(s->control, ONE_SHOT_FD, on_client_gone, s);
        if (r < 0)
                return log_error_errno(r, "--one-shot: no client connected on fd %d: %m", ONE_SHOT_FD);
        log_info("Serving %s (%s migrations in %s) for one client", s->cfg->database,
                 migdir_format_to_string(engine_format(s->job_engine)), s->cfg->migrations_dir);
        return 0;
}

int server_listen(server *s) {
        const config *cfg = s->cfg;
        struct rlimit rl;
        unsigned max_connections = cfg->max_connections;
        int fd;

        if (jobs_new(s, cfg->max_queue, &s->jobs) < 0 || worker_new(s->base, "migrated-job", &s->job_worker) < 0 ||
            worker_new(s->base, "migrated-read", &s->reader) < 0) {
                log_error("Failed to start the workers");
                return -EIO;
        }
        jobs_set_last_id(s->jobs, engine_last_job_id(s->job_engine));
        if (cfg->one_shot)
                return listen_one_shot(s); /* a client's own run: not one of the database's hosts */
        if (config_is_server(cfg) && hosts_new(s, &s->hosts) < 0)
                return -EIO;
        fd = open_listener(cfg, &s->socket_created);
        if (fd < 0)
                return -EIO;
        /* never promise more connections than there are file descriptors, less a reserve for
         * the database, the workers and the bus */
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur > 64 &&
            max_connections > rl.rlim_cur - 64)
                max_connections = (unsigned) (rl.rlim_cur - 64);
        control_limits limits = { .max_connections = max_connections,
                                  .max_connections_per_uid = cfg->max_connections_per_uid,
                                  .idle_timeout_s = cfg->idle_timeout_s,
                                  .request_timeout_s = cfg->request_timeout_s,
                                  .max_output = 16u * 1024u * 1024u,
                                  .max_outstanding = 64 };
        if (control_new(s->base, fd, &limits, on_request, s, &s->control) < 0) {
                close(fd);
                return -EIO;
        }
        log_info("Serving %s (%s migrations in %s) on %s", cfg->database,
                 migdir_format_to_string(engine_format(s->job_engine)),
                 cfg->migrations_dir,
                 s->socket_created ? cfg->socket_path : "the socket passed by systemd");
        return 0;
}

server *server_free(server *s) {
        if (!s)
                return NULL;
        /* Workers first: joining them runs their last completions, which still reply. */
        s->job_worker = worker_free(s->job_worker);
        s->reader = worker_free(s->reader);
        /* a dependents' query still running replies too */
        deps_drain(s->deps);
        s->control = control_free(s->control);
        s->hosts = hosts_free(s->hosts);
        if (s->socket_created)
                (void) unlink(s->cfg->socket_path);
        if (s->exit_check)
                event_free(s->exit_check);
        s->jobs = jobs_free(s->jobs);
        s->metrics = metrics_free(s->metrics);
        s->deps = deps_free(s->deps);
        if (s->watchdog)
                event_free(s->watchdog);
        s->job_engine = engine_free(s->job_engine);
        s->read_engine = engine_free(s->read_engine);
        status_texts_clear(&s->status_texts);
        json_decref(s->snapshot);
        gate_done(&s->gate);
        if (s->state_fd >= 0)
                close(s->state_fd);
        event_base_free(s->base);
        free(s);
        return NULL;
}
