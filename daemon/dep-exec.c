/* SPDX-License-Identifier: MIT */
/* exec: dependents, for anything that is neither a unit nor a pm2 process: a stop and a start
 * command (run by /bin/sh, as the configured user), each with a deadline, and an optional check
 * command whose exit status says whether the thing runs (0) or not (anything else). Without a
 * check the dependent counts as running, so it is always stopped and started again. */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dep-kind.h"
#include "dep-run.h"
#include "macro.h"

#define EXEC_CHECK_TIMEOUT_USEC (10 * 1000000ULL)

static const char *const exec_keys[] = { "stop", "start", "check", "user", "stop_timeout", "start_timeout", NULL };

static int exec_sh(const dep_ctx *c, const char *command, uint64_t timeout_usec) {
        char *argv[] = { (char *) "/bin/sh", (char *) "-c", (char *) command, NULL };
        _cleanup_free_ char *name = NULL;
        char *env[] = { NULL, NULL };
        dep_cmd cmd = { .argv = argv, .env = env, .user = dep_get(c, "user"), .timeout_usec = timeout_usec };

        /* the script learns which dependent it acts for */
        if (asprintf(&name, "MIGRATED_DEPENDENT=%s", c->id) < 0)
                return -ENOMEM;
        env[0] = name;
        return dep_run(&cmd, NULL);
}

/* Whether check says the dependent runs: 1 yes, 0 no, -errno when it could not run at all. */
static int exec_check(const dep_ctx *c, uint64_t timeout_usec) {
        const char *check = dep_get(c, "check");
        int r;

        if (!check)
                return 1;
        r = exec_sh(c, check, timeout_usec);
        if (r == DEP_RUN_TIMEOUT)
                return -ETIME;
        if (r < 0 || r == 126 || r == 127)
                return r < 0 ? r : -ENOEXEC;
        return r == 0;
}

static int exec_query(const dep_ctx *c, bool *ret_running, char **ret_error) {
        int r = exec_check(c, EXEC_CHECK_TIMEOUT_USEC);

        if (r < 0) {
                if (asprintf(ret_error, "its check command could not run (%s)", strerror(-r)) < 0)
                        *ret_error = NULL;
                return r;
        }
        *ret_running = r > 0;
        return 0;
}

/* Runs the command, then waits until check agrees (want: running after a start), all before the
 * deadline. */
static void exec_step(const dep_ctx *c, const char *key, uint64_t timeout_usec, bool want, unit_outcome *out) {
        uint64_t deadline = dep_now_usec() + timeout_usec;
        int r = exec_sh(c, dep_get(c, key), timeout_usec);

        if (r == DEP_RUN_TIMEOUT)
                return dep_outcome_set(out, false, false, "timeout");
        if (r < 0)
                return dep_outcome_set(out, false, false, "its %s command could not run: %s", key, strerror(-r));
        if (r != 0)
                return dep_outcome_set(out, false, false, "failed (its %s command exited with %d)", key, r);
        if (!dep_get(c, "check"))
                return dep_outcome_set(out, true, false, "done");
        for (;;) {
                uint64_t now = dep_now_usec();
                r = exec_check(c, now < deadline ? deadline - now : 1);
                if (r >= 0 && (r > 0) == want)
                        return dep_outcome_set(out, true, false, "done");
                if (!dep_pause_until(deadline, 100000))
                        return dep_outcome_set(out, false, false, "timeout");
        }
}

static void exec_stop(const dep_ctx *c, uint64_t timeout_usec, unit_outcome *out) {
        exec_step(c, "stop", dep_setting_usec(c, "stop_timeout", timeout_usec), false, out);
}

static void exec_start(const dep_ctx *c, uint64_t timeout_usec, unit_outcome *out) {
        /* like starting an active unit: one that still runs (its stop failed) is left alone */
        if (dep_get(c, "check") && exec_check(c, EXEC_CHECK_TIMEOUT_USEC) > 0)
                return dep_outcome_set(out, true, false, "done");
        exec_step(c, "start", dep_setting_usec(c, "start_timeout", timeout_usec), true, out);
}

static int exec_inspect(const dep_ctx *c, char **ret_status, char **ret_log) {
        const char *check = dep_get(c, "check");

        if ((check ? asprintf(ret_status, "its check command: %s", check)
                   : asprintf(ret_status, "(exec:%s has no check command)", c->id)) < 0)
                return -ENOMEM;
        if (asprintf(ret_log, "journalctl -t migrated (the exec:%s commands' output)", c->id) < 0) {
                free(*ret_status);
                return -ENOMEM;
        }
        return 0;
}

static char *exec_config_check(const dep_ctx *c) {
        char *why;

        if (dep_get(c, "stop") && dep_get(c, "start"))
                return NULL;
        if (asprintf(&why, "exec:%s needs a [exec.%s] section with stop= and start= commands", c->id, c->id) < 0)
                return NULL;
        return why;
}

const dep_kind dep_kind_exec = {
        .prefix = "exec",
        .keys = exec_keys,
        .query = exec_query,
        .stop = exec_stop,
        .start = exec_start,
        .inspect = exec_inspect,
        .check = exec_config_check,
};
