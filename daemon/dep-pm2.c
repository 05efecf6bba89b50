/* SPDX-License-Identifier: MIT */
/* pm2: dependents: a process that pm2 supervises, acted on through the pm2 CLI run as the user
 * that owns it, with its PM2_HOME. The CLI rather than pm2's RPC socket: the socket's protocol
 * (axon messages in pm2's own framing) is internal and changes between pm2 versions, while the
 * CLI verbs (stop, start, jlist) are pm2's documented interface; and running the CLI as the owner
 * means we never act on a pm2 home with root's rights. "Really stopped" is pm2's own state
 * ("stopped" in jlist) and the process id it had being gone; "online" is jlist's state with a
 * live process id. A process still there when the stop timeout ends is killed (SIGKILL). */

#include <errno.h>
#include <jansson.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dep-kind.h"
#include "dep-run.h"
#include "log.h"
#include "macro.h"

#define PM2_CLI_TIMEOUT_USEC (30 * 1000000ULL)
#define PM2_POLL_USEC 200000

static const char *const pm2_keys[] = { "home", "user", "pm2", "process", NULL };

static const char *pm2_process(const dep_ctx *c) {
        return dep_get(c, "process") ?: c->id;
}

static int pm2_cli(const dep_ctx *c, const char *verb, uint64_t timeout_usec, char **ret_stdout) {
        _cleanup_free_ char *home = NULL;
        char *argv[] = { (char *) (dep_get(c, "pm2") ?: "pm2"), (char *) verb, (char *) pm2_process(c), NULL };
        char *env[] = { NULL, (char *) "PM2_NO_INTERACTION=true", (char *) "FORCE_COLOR=0", NULL };
        dep_cmd cmd = { .argv = argv, .env = env + 1, .user = dep_get(c, "user"), .timeout_usec = timeout_usec };
        int r;

        if (dep_get(c, "home")) {
                if (asprintf(&home, "PM2_HOME=%s", dep_get(c, "home")) < 0)
                        return -ENOMEM;
                env[0] = home;
                cmd.env = env;
        }
        if (streq(verb, "jlist"))
                argv[2] = NULL;
        r = dep_run(&cmd, ret_stdout);
        if (r == 126 || r == 127)
                log_error("pm2:%s: could not run %s as %s (%s)", c->id, argv[0], cmd.user ?: "ourselves",
                          r == 126 ? "cannot become that user or enter its home" : "cannot execute it");
        else if (r > 0)
                log_warning("pm2:%s: pm2 %s exited with %d", c->id, verb, r);
        return r;
}

/* The process's jlist state and pid: 0, -ENOENT when pm2 does not know it, -EBADMSG when jlist
 * printed no list, or dep_run()'s error. */
static int pm2_find(const dep_ctx *c, char **ret_status, long *ret_pid) {
        _cleanup_free_ char *out = NULL;
        json_t *list = NULL;
        int r = pm2_cli(c, "jlist", PM2_CLI_TIMEOUT_USEC, &out);

        if (r != 0)
                return r < 0 ? r : -EIO;
        /* pm2 may print a line about spawning its daemon before the list */
        for (char *line = out; line && *line && !list; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
                if (line[0] == '[')
                        list = json_loadb(line, strcspn(line, "\n"), 0, NULL);
        if (!json_is_array(list)) {
                json_decref(list);
                return -EBADMSG;
        }
        r = -ENOENT;
        for (size_t i = 0; i < json_array_size(list); i++) {
                json_t *p = json_array_get(list, i);
                const char *name = json_string_value(json_object_get(p, "name"));
                const char *status = json_string_value(json_object_get(json_object_get(p, "pm2_env"), "status"));
                if (!name || !streq(name, pm2_process(c)))
                        continue;
                *ret_status = strdup(status ?: "unknown");
                *ret_pid = (long) json_integer_value(json_object_get(p, "pid"));
                r = *ret_status ? 0 : -ENOMEM;
                break;
        }
        json_decref(list);
        return r;
}

static bool pid_alive(long pid) {
        return pid > 0 && (kill((pid_t) pid, 0) == 0 || errno == EPERM);
}

static bool status_is_down(const char *s) {
        return streq(s, "stopped") || streq(s, "errored");
}

static int pm2_query(const dep_ctx *c, bool *ret_running, char **ret_error) {
        _cleanup_free_ char *status = NULL;
        long pid = 0;
        int r = pm2_find(c, &status, &pid);

        if (r == -ENOENT) {
                *ret_running = false;
                return 0;
        }
        if (r < 0) {
                if (asprintf(ret_error, "pm2 jlist failed (%s)", r == DEP_RUN_TIMEOUT ? "timeout" : strerror(-r)) < 0)
                        *ret_error = NULL;
                return r;
        }
        *ret_running = !status_is_down(status);
        return 0;
}

/* Polls jlist until the process is down (pid gone, state stopped) or up (online, pid alive). */
static bool pm2_wait(const dep_ctx *c, bool up, long old_pid, uint64_t deadline) {
        do {
                _cleanup_free_ char *status = NULL;
                long pid = 0;
                int r = pm2_find(c, &status, &pid);
                if (up && r == 0 && streq(status, "online") && pid_alive(pid))
                        return true;
                if (!up && !pid_alive(old_pid) && (r == -ENOENT || (r == 0 && status_is_down(status) && !pid_alive(pid))))
                        return true;
        } while (dep_pause_until(deadline, PM2_POLL_USEC));
        return false;
}

static void pm2_stop(const dep_ctx *c, uint64_t timeout_usec, unit_outcome *out) {
        _cleanup_free_ char *status = NULL;
        uint64_t deadline = dep_now_usec() + timeout_usec;
        long pid = 0;
        int r = pm2_find(c, &status, &pid);

        if (r == -ENOENT)
                return dep_outcome_set(out, true, false, "done");
        if (r < 0)
                return dep_outcome_set(out, false, false, "pm2 jlist failed (%s)",
                                       r == DEP_RUN_TIMEOUT ? "timeout" : strerror(-r));
        r = pm2_cli(c, "stop", timeout_usec, NULL);
        if (r > 0 && !pid_alive(pid))
                return dep_outcome_set(out, false, false, "failed (pm2 stop exited with %d)", r);
        if (pm2_wait(c, false, pid, deadline))
                return dep_outcome_set(out, true, false, "done");
        /* still there after the stop timeout: kill it, and wait as long again */
        if (pid_alive(pid))
                (void) kill((pid_t) pid, SIGKILL);
        if (pm2_wait(c, false, pid, dep_now_usec() + timeout_usec))
                return dep_outcome_set(out, true, true, "done");
        dep_outcome_set(out, false, true, "timeout");
}

static void pm2_start(const dep_ctx *c, uint64_t timeout_usec, unit_outcome *out) {
        _cleanup_free_ char *status = NULL;
        uint64_t deadline = dep_now_usec() + timeout_usec;
        long pid = 0;
        int r;

        /* like starting an active unit: one that still runs (its stop failed) is left alone */
        if (pm2_find(c, &status, &pid) == 0 && streq(status, "online") && pid_alive(pid))
                return dep_outcome_set(out, true, false, "done");
        r = pm2_cli(c, "start", timeout_usec, NULL);

        if (r == DEP_RUN_TIMEOUT)
                return dep_outcome_set(out, false, false, "timeout");
        if (r < 0)
                return dep_outcome_set(out, false, false, "pm2 could not run: %s", strerror(-r));
        if (r > 0)
                return dep_outcome_set(out, false, false, "failed (pm2 start exited with %d)", r);
        if (pm2_wait(c, true, 0, deadline))
                return dep_outcome_set(out, true, false, "done");
        dep_outcome_set(out, false, false, "timeout");
}

static int pm2_inspect(const dep_ctx *c, char **ret_status, char **ret_log) {
        _cleanup_free_ char *prefix = NULL;
        const char *user = dep_get(c, "user"), *home = dep_get(c, "home");
        const char *pm2 = dep_get(c, "pm2") ?: "pm2";

        if (asprintf(&prefix, "%s%s%s%s%s", user ? "sudo -u " : "", user ?: "", user ? " " : "",
                     home ? "env PM2_HOME=" : "", home ?: "") < 0)
                return -ENOMEM;
        if (asprintf(ret_status, "%s%s%s describe %s", prefix, home ? " " : "", pm2, pm2_process(c)) < 0)
                return -ENOMEM;
        if (asprintf(ret_log, "%s%s%s logs %s --lines 100 --nostream", prefix, home ? " " : "", pm2,
                     pm2_process(c)) < 0) {
                free(*ret_status);
                return -ENOMEM;
        }
        return 0;
}

static char *pm2_config_check(const dep_ctx *c) {
        const char *user = dep_get(c, "user");
        char *why;

        if (user && !getpwnam(user)) {
                if (asprintf(&why, "pm2:%s: user %s does not exist", c->id, user) < 0)
                        return NULL;
                return why;
        }
        if (user || dep_get(c, "home"))
                return NULL;
        if (asprintf(&why, "pm2:%s needs a [pm2.%s] section with home= (its PM2_HOME) or user= (its owner, "
                     "whose ~/.pm2 is used)", c->id, c->id) < 0)
                return NULL;
        return why;
}

const dep_kind dep_kind_pm2 = {
        .prefix = "pm2",
        .keys = pm2_keys,
        .query = pm2_query,
        .stop = pm2_stop,
        .start = pm2_start,
        .inspect = pm2_inspect,
        .check = pm2_config_check,
};
