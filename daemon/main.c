/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <event2/thread.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "commands.h"
#include "jobs.h"
#include "lockfile.h"
#include "log.h"
#include "macro.h"
#include "server.h"

static void on_request(void *userdata, const peer *p, const char *line, size_t size) {
        commands_dispatch(userdata, p, line, size);
}

static void on_signal(evutil_socket_t sig, short what, void *userdata) {
        server *s = userdata;

        if (sig == SIGHUP) {
                /* Every view rescans the directory anyway; a reload refreshes the snapshot so that
                 * status during the next job shows the new files. */
                log_info("SIGHUP: rescanning %s", s->cfg->migrations_dir);
                if (!jobs_busy(s->jobs)) {
                        json_t *snap = NULL;
                        engine_error err = {};
                        if (engine_status(s->job_engine, &snap, &err) == 0)
                                server_set_snapshot(s, snap);
                        engine_error_clear(&err);
                }
                return;
        }
        server_shutdown(s);
}

/* Opens both engines and clears what a killed predecessor left behind, before serving anyone. */
static int open_engines(server *s) {
        engine_options o = { .database = s->cfg->database, .migrations_dir = s->cfg->migrations_dir,
                             .busy_timeout_ms = s->cfg->busy_timeout_ms };
        engine_error err = {};
        json_t *snap = NULL;
        int r;

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
        fd = control_listen_path(cfg->socket_path);
        if (fd == -EADDRINUSE || fd == -EEXIST)
                return log_error_errno(fd, "Cannot listen on %s: %s", cfg->socket_path,
                                       fd == -EEXIST ? "a file that is not a socket is in the way"
                                                     : "another process is listening there");
        if (fd < 0)
                return log_error_errno(fd, "Failed to listen on %s: %m", cfg->socket_path);
        *ret_created = true;
        return fd;
}

static void notify_ready(server *s) {
        json_t *cur = s->snapshot ? json_object_get(s->snapshot, "current_version") : NULL;

        (void) sd_notifyf(0, "READY=1\nSTATUS=Idle at version %" JSON_INTEGER_FORMAT "\nMAINPID=%d",
                          json_is_integer(cur) ? json_integer_value(cur) : 0, (int) getpid());
}

static int run(const config *cfg) {
        server s = { .cfg = cfg };
        struct event *sig_term = NULL, *sig_int = NULL, *sig_hup = NULL;
        bool created = false;
        int fd = -1, r = -EIO;

        evthread_use_pthreads();
        s.base = event_base_new();
        if (!s.base)
                return log_error_errno(ENOMEM, "Failed to create the event loop: %m");
        if (open_engines(&s) < 0)
                goto finish;
        if (jobs_new(&s, cfg->max_queue, &s.jobs) < 0 || worker_new(s.base, "migrated-job", &s.job_worker) < 0 ||
            worker_new(s.base, "migrated-read", &s.reader) < 0) {
                log_error("Failed to start the workers");
                goto finish;
        }
        fd = open_listener(cfg, &created);
        if (fd < 0)
                goto finish;
        if (control_new(s.base, fd, on_request, &s, &s.control) < 0) {
                close(fd);
                goto finish;
        }
        sig_term = evsignal_new(s.base, SIGTERM, on_signal, &s);
        sig_int = evsignal_new(s.base, SIGINT, on_signal, &s);
        sig_hup = evsignal_new(s.base, SIGHUP, on_signal, &s);
        if (!sig_term || !sig_int || !sig_hup || evsignal_add(sig_term, NULL) < 0 || evsignal_add(sig_int, NULL) < 0 ||
            evsignal_add(sig_hup, NULL) < 0)
                goto finish;

        log_info("Serving %s (migrations %s) on %s", cfg->database, cfg->migrations_dir,
                 created ? cfg->socket_path : "the socket passed by systemd");
        if (cfg->auto_up) {
                engine_job up = { .request = { .direction = PLAN_UP, .to = PLAN_NO_TARGET },
                                  .requested_by = "migrated --auto-up" };
                jobs_submit(s.jobs, &up, 0, NULL);
        }
        notify_ready(&s);
        event_base_dispatch(s.base);
        r = 0;
finish:
        if (sig_term)
                event_free(sig_term);
        if (sig_int)
                event_free(sig_int);
        if (sig_hup)
                event_free(sig_hup);
        /* Workers first: joining them runs their last completions, which still reply. */
        s.job_worker = worker_free(s.job_worker);
        s.reader = worker_free(s.reader);
        s.control = control_free(s.control);
        if (created)
                (void) unlink(cfg->socket_path);
        if (s.exit_check)
                event_free(s.exit_check);
        s.jobs = jobs_free(s.jobs);
        s.job_engine = engine_free(s.job_engine);
        s.read_engine = engine_free(s.read_engine);
        json_decref(s.snapshot);
        event_base_free(s.base);
        return r;
}

int main(int argc, char **argv) {
        config cfg;
        pid_t holder = 0;
        int lock_fd = -1, r;

        log_setup("migrated");
        r = config_load(argc, argv, &cfg);
        if (r != CONFIG_RUN) {
                config_clear(&cfg);
                return r == CONFIG_EXIT_OK ? EXIT_SUCCESS : 2;
        }
        r = lockfile_acquire(cfg.database, &lock_fd, &holder);
        if (r == LOCKFILE_HELD) {
                if (holder > 0)
                        log_error("%s is locked by migrated (pid %d): only one daemon may migrate a database",
                                  cfg.database, (int) holder);
                else
                        log_error("%s is locked by another migrated: only one daemon may migrate a database",
                                  cfg.database);
                config_clear(&cfg);
                return EXIT_FAILURE;
        }
        if (r < 0) {
                log_error_errno(r, "Failed to take the migration lock beside %s: %m", cfg.database);
                config_clear(&cfg);
                return EXIT_FAILURE;
        }
        signal(SIGPIPE, SIG_IGN);
        r = run(&cfg);
        close(lock_fd);
        config_clear(&cfg);
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
