/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <event2/thread.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "commands.h"
#include "journal.h"
#include "statedir.h"
#include "statefile.h"
#include "deps.h"
#include "units.h"
#include "jobs.h"
#include "dblock.h"
#include "db-postgres.h"
#include "hosts.h"
#include "log.h"
#include "macro.h"
#include "migdir.h"
#include "oneshot.h"
#include "server.h"
#include "startcheck.h"


static void on_signal(evutil_socket_t sig, short what, void *userdata) {
        server *s = userdata;

        if (!s->serving) {
                /* start-up: finish what must be finished (recovering units), then exit cleanly;
                 * a reload is moot, the first scan is yet to come */
                if (sig != SIGHUP && !s->stop_requested) {
                        log_info("Received %s during start-up: stopping once the start-up step is done",
                                 sig == SIGTERM ? "SIGTERM" : "SIGINT");
                        s->stop_requested = true;
                }
                return;
        }
        if (sig == SIGHUP) {
                engine_rescan_directory(s->read_engine);
                engine_rescan_directory(s->job_engine);
                if (!s->shutting_down)
                        server_refresh(s, "SIGHUP: rescanning the migrations directory");
                return;
        }
        server_shutdown(s);
}

typedef struct recovery {
        bool done;
} recovery;

static void on_recovered(void *userdata, unit_outcome *o, size_t n) {
        recovery *rc = userdata;

        for (size_t i = 0; i < n; i++) {
                if (o[i].ok)
                        log_info("Started %s again", o[i].name);
                else
                        log_error("Failed to start %s again: %s", o[i].name, o[i].result);
                journal_event(o[i].ok ? LOG_INFO : LOG_ERR, o[i].ok ? MESSAGE_ID_UNIT_STARTED : MESSAGE_ID_UNIT_FAILED,
                              o[i].ok ? "Unit started after an interrupted job" : "Unit did not start",
                              "UNIT", o[i].name, "UNIT_RESULT", o[i].result, NULL);
        }
        unit_outcomes_free(o, n);
        rc->done = true;
}

static bool unit_configured(const config *cfg, const char *name) {
        for (size_t i = 0; i < cfg->n_units; i++)
                if (streq(cfg->units[i], name))
                        return true;
        return false;
}

/* Only what the configuration names may be started: the state file says which of those ran. */
static size_t keep_configured(const config *cfg, char **names, size_t n) {
        size_t k = 0;

        for (size_t i = 0; i < n; i++) {
                if (unit_configured(cfg, names[i])) {
                        names[k++] = names[i];
                        continue;
                }
                log_warning("The state file names %s, which is not a configured unit; not starting it", names[i]);
                free(names[i]);
        }
        names[k] = NULL;
        return k;
}

/* A predecessor died between stopping the units and starting them: start them now, before
 * serving anyone. SQLite has already rolled its transaction back. The old state file beside the
 * database, where others may write, is never trusted. */
static int recover_units(server *s) {
        _cleanup_free_ char *legacy = statefile_legacy_path(s->cfg->database);
        char **names = NULL;
        uint64_t job_id = 0;
        size_t n = 0;
        recovery rc = {};
        struct stat st;
        int r;

        if (legacy && lstat(legacy, &st) == 0)
                log_warning("Ignoring %s: state beside the database is not trusted (migrated keeps its state in %s "
                            "now); remove that file", legacy, s->cfg->state_dir);
        r = statefile_read(s->state_fd, s->cfg->database, &job_id, &names, &n);
        if (r == -ENOENT)
                return 0;
        if (r == -EBADMSG) {
                log_warning("Ignoring %s/%s: not a valid state document for %s", s->cfg->state_dir, STATEFILE_NAME,
                            s->cfg->database);
                return 0;
        }
        if (r < 0)
                return log_error_errno(r, "Failed to read %s/%s: %m", s->cfg->state_dir, STATEFILE_NAME);
        n = keep_configured(s->cfg, names, n);
        log_warning("A previous migrated (job %" PRIu64 ") stopped %zu unit(s) and did not start them again; "
                    "starting them now", job_id, n);
        journal_event(LOG_WARNING, MESSAGE_ID_RECOVERED, "Recovering from an interrupted job", "DATABASE",
                      s->cfg->database, NULL);
        r = n > 0 && s->deps ? deps_start(s->deps, names, n, (uint64_t) s->cfg->start_timeout_s * 1000000,
                                            on_recovered, &rc)
                              : 0;
        strv_free_n(names, n);
        if (r < 0)
                return log_error_errno(r, "Failed to start the units again: %m");
        while (n > 0 && s->deps && !rc.done)
                event_base_loop(s->base, EVLOOP_ONCE);
        r = statefile_remove(s->state_fd);
        if (r < 0)
                log_warning_errno(r, "Failed to remove the state file: %m");
        return 0;
}

/* The loop feeds the watchdog: SQL never runs on it, so a long migration cannot starve it. */
static void on_watchdog(evutil_socket_t fd, short what, void *userdata) {
        (void) sd_notify(0, "WATCHDOG=1");
}

static int setup_watchdog(server *s) {
        uint64_t usec = 0;
        struct timeval tv;

        if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0)
                return 0;
        usec /= 2;
        tv = (struct timeval) { (time_t) (usec / 1000000), (suseconds_t) (usec % 1000000) };
        s->watchdog = event_new(s->base, -1, EV_PERSIST, on_watchdog, s);
        if (!s->watchdog || event_add(s->watchdog, &tv) < 0)
                return -ENOMEM;
        return 0;
}

static void notify_ready(server *s) {
        json_t *cur = s->snapshot ? json_object_get(s->snapshot, "current_version") : NULL;

        (void) sd_notifyf(0, "READY=1\nSTATUS=Idle at version %" JSON_INTEGER_FORMAT "\nMAINPID=%d",
                          json_is_integer(cur) ? json_integer_value(cur) : 0, (int) getpid());
        /* the gate for services must answer even before the first status request */
}

/* The signal handlers, before anything can reach the daemon: the held signals are delivered to
 * them once they are in place. */
static int setup_signals(server *s, struct event *ev[static 3], const sigset_t *held) {
        static const int sigs[3] = { SIGTERM, SIGINT, SIGHUP };

        for (size_t i = 0; i < 3; i++) {
                ev[i] = evsignal_new(s->base, sigs[i], on_signal, s);
                if (!ev[i] || evsignal_add(ev[i], NULL) < 0)
                        return -ENOMEM;
        }
        if (sigprocmask(SIG_UNBLOCK, held, NULL) < 0)
                return -errno;
        return 0;
}

/* Whether a stop arrived during start-up (checked once the units a dead predecessor left stopped
 * are running again): the loop runs once so that a held signal is seen. */
static bool stopped_during_startup(server *s) {
        (void) event_base_loop(s->base, EVLOOP_NONBLOCK);
        if (s->stop_requested)
                log_info("Stopped during start-up");
        return s->stop_requested;
}

/* Start-up in order: the server's parts, the signal handlers, the units a dead predecessor left
 * stopped, then the socket; then the loop until a clean shutdown. */
static int run(const config *cfg, const db_file_identity *identity, const sigset_t *held) {
        _cleanup_(server_freep) server *s = NULL;
        struct event *sig[3] = {};
        int r = -EIO;

        if (server_new(cfg, identity, &s) < 0)
                return -EIO;
        if (setup_signals(s, sig, held) < 0) {
                log_error("Failed to install the signal handlers");
                goto finish;
        }
        if (recover_units(s) < 0)
                goto finish;
        if (stopped_during_startup(s)) {
                r = 0;
                goto finish;
        }
        if (server_listen(s) < 0)
                goto finish;
        if (cfg->auto_up && s->gate.hold)
                log_info("--auto-up: not applying, the schema is held at version %" JSON_INTEGER_FORMAT
                         " (migratectl up ends the hold)", json_integer_value(json_object_get(s->gate.hold, "version")));
        else if (cfg->auto_up) {
                engine_job up = { .request = { .direction = PLAN_UP, .to = PLAN_NO_TARGET },
                                  .requested_by = "migrated --auto-up" };
                jobs_submit(s->jobs, &up, 0, NULL);
        }
        if (setup_watchdog(s) < 0)
                goto finish;
        notify_ready(s);
        s->serving = true;
        if (s->stop_requested)
                server_shutdown(s);
        event_base_dispatch(s->base);
        r = 0;
finish:
        for (size_t i = 0; i < ELEMENTSOF(sig); i++)
                if (sig[i])
                        event_free(sig[i]);
        return r;
}

/* Each client is a file descriptor: allow as many as the hard limit permits (systemd's default
 * soft limit of 1024 would cap the connections). */
static void raise_fd_limit(void) {
        struct rlimit rl;

        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
                rl.rlim_cur = rl.rlim_max;
                (void) setrlimit(RLIMIT_NOFILE, &rl);
        }
}

/* An existing database keeps its mode: a world-readable one is reported, never changed. */
static void warn_if_world_readable(int fd, const char *database) {
        struct stat st;

        if (fstat(fd, &st) == 0 && (st.st_mode & S_IROTH))
                log_warning("%s is readable by every user (mode %04o); consider chmod o-r", database,
                            (unsigned) (st.st_mode & 07777));
}

/* A server's database: no file to lock (the server's advisory lock keeps one writer, across
 * hosts too); it is named by the server's identity, which keys the state directory. */
static int run_server_database(config *cfg, const sigset_t *held) {
        _cleanup_free_ char *key = NULL, *display = NULL, *error = NULL;
        db_file_identity none = {};
        int r;

        r = db_postgres_identify(cfg->connection, cfg->password_file, &key, &display, &error);
        if (r < 0) {
                log_error("Cannot use the PostgreSQL database %s: %s", display ?: "?", error ?: strerror(-r));
                return r;
        }
        r = config_name_server(cfg, key);
        if (r < 0)
                return log_error_errno(r, "No state directory for %s: set --state-dir: %m", key);
        log_info("PostgreSQL database %s is %s; state in %s", display, key, cfg->state_dir);
        signal(SIGPIPE, SIG_IGN);
        raise_fd_limit();
        return run(cfg, &none, held);
}

int main(int argc, char **argv) {
        config cfg;
        pid_t holder = 0;
        bool created = false;
        db_file_identity identity = {};
        dblock_create create;
        sigset_t stop_signals;
        int lock_fd = -1, r;

        /* Held until the loop's handlers are in place (run()): a SIGTERM during start-up then ends
         * the daemon cleanly instead of killing it while it listens or starts units again. */
        sigemptyset(&stop_signals);
        sigaddset(&stop_signals, SIGTERM);
        sigaddset(&stop_signals, SIGINT);
        sigaddset(&stop_signals, SIGHUP);
        (void) sigprocmask(SIG_BLOCK, &stop_signals, NULL);
        log_setup("migrated");
        r = config_load(argc, argv, &cfg);
        if (r != CONFIG_RUN) {
                config_clear(&cfg);
                return r == CONFIG_EXIT_OK ? EXIT_SUCCESS : 2;
        }
        r = hosts_set_name(cfg.host_name);
        if (r < 0) {
                log_error_errno(r, "Cannot read the host name (set host_name): %m");
                config_clear(&cfg);
                return EXIT_FAILURE;
        }
        /* one-shot: the client prints what matters; our progress lines would only repeat it */
        if (cfg.one_shot && !getenv("MIGRATED_LOG_LEVEL"))
                log_set_max_level(LOG_NOTICE);
        /* Prisma's migration_lock.toml names the backend's provider */
        migdir_set_prisma_provider(config_is_server(&cfg) ? "postgresql" : "sqlite");
        if (startcheck_migrations_dir(cfg.migrations_dir) < 0) {
                config_clear(&cfg);
                return 2; /* a configuration error, like an unknown option */
        }
        if (config_is_server(&cfg)) {
                r = run_server_database(&cfg, &stop_signals);
                config_clear(&cfg);
                return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
        }
        create = (dblock_create) { .owner = cfg.database_uid, .group = cfg.database_gid,
                                   .mode = (mode_t) cfg.database_mode };
        if (cfg.one_shot) {
                r = oneshot_acquire(&cfg, &create, ONE_SHOT_FD, &lock_fd, &identity, &created);
                if (r == ONESHOT_REFUSED || r == -ECONNRESET) {
                        config_clear(&cfg);
                        return r == ONESHOT_REFUSED ? PROTOCOL_ONE_SHOT_EXIT_LOCKED : EXIT_FAILURE;
                }
        } else
                r = dblock_acquire(cfg.database, &create, &lock_fd, &identity, &created, &holder);
        if (r == DBLOCK_HELD) {
                if (holder > 0)
                        log_error("%s is locked by another migrated (pid %d): only one daemon may migrate a database",
                                  cfg.database, (int) holder);
                else
                        log_error("%s is locked by another migrated: only one daemon may migrate a database",
                                  cfg.database);
                config_clear(&cfg);
                return EXIT_FAILURE;
        }
        if (r < 0) {
                const char *remedy = startcheck_remedy(r, false);
                log_error_errno(r, "Failed to open and lock %s: %m%s%s", cfg.database, remedy ? "; " : "",
                                remedy ?: "");
                config_clear(&cfg);
                return EXIT_FAILURE;
        }
        if (created)
                log_info("Created %s (mode %04o)", cfg.database, cfg.database_mode);
        else
                warn_if_world_readable(lock_fd, cfg.database);
        signal(SIGPIPE, SIG_IGN);
        raise_fd_limit();
        r = run(&cfg, &identity, &stop_signals);
        /* only now: closing it earlier would drop SQLite's own POSIX locks on the file */
        close(lock_fd);
        config_clear(&cfg);
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
