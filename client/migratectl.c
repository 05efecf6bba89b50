/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "args.h"
#include "complete.h"
#include "config.h"
#include "confirm.h"
#include "conn.h"
#include "exit-codes.h"
#include "help.h"
#include "hints.h"
#include "lockcheck.h"
#include "macro.h"
#include "new.h"
#include "oneshot.h"
#include "call.h"
#include "lint.h"
#include "output.h"
#include "protocol-methods.h"
#include "render.h"
#include "schema.h"

const char *verb_name(const verb *v) {
        return v->name ?: protocol_methods[v->method].verb;
}

/* Builds params from the given options only, so the daemon's defaults apply to the rest. */
static json_t *request_params(const request_args *a) {
        json_t *p = json_object();

        if (!p)
                return NULL;
        if ((a->has_to && json_object_set_new(p, "to", a->to_key ? json_string(a->to_key)
                                                                : json_integer((json_int_t) a->to)) < 0) ||
            (a->has_steps && json_object_set_new(p, "steps", json_integer((json_int_t) a->steps)) < 0) ||
            (a->has_limit && json_object_set_new(p, "limit", json_integer((json_int_t) a->limit)) < 0) ||
            (a->dry_run && json_object_set_new(p, "dry_run", json_true()) < 0) ||
            (a->per_migration && json_object_set_new(p, "per_migration", json_true()) < 0) ||
            (a->rehearse && json_object_set_new(p, "rehearse", json_true()) < 0) ||
            (a->out_of_order && json_object_set_new(p, "allow_out_of_order", json_true()) < 0) ||
            (a->seed && json_object_set_new(p, "seed", json_true()) < 0)) {
                json_decref(p);
                return NULL;
        }
        return p;
}

static bool has_checksum_mismatch(json_t *result) {
        json_t *problems = json_get_array(result, "problems"), *p;
        size_t i;

        json_array_foreach(problems, i, p) {
                const char *kind = json_get_str(p, "kind");
                if (kind && streq(kind, "checksum_mismatch"))
                        return true;
        }
        return false;
}

static int verb_status(const verb *v, int argc, char **argv) {
        static const struct option options[] = {
                COMMON_OPTIONS,
                { "check", no_argument, NULL, ARG_CHECK },
                { "drift", no_argument, NULL, ARG_DRIFT },
                { "all", no_argument, NULL, ARG_ALL },
                {}
        };
        json_auto_t *result = NULL, *params = NULL;
        request_args a = {};
        int r;

        r = parse_options_only(v, argc, argv, options, &a);
        if (r != CONTINUE)
                return r;

        params = json_object();
        if (!params)
                return EXIT_FAILED;
        if (a.drift)
                json_object_set_new(params, "drift", json_true());
        /* a person sees the newest applied: the daemon sends no more (--json and --all: all) */
        if (!a.all && !arg_json)
                json_object_set_new(params, "applied_last", json_integer(STATUS_APPLIED_SHOWN));
        r = call_daemon(v->method, TAKE_PTR(params), a.all ? render_status_all : render_status, &result);
        if (r != EXIT_OK || !a.check)
                return r;
        if (has_checksum_mismatch(result))
                return EXIT_CHECKSUM;
        if (json_get_array_size(result, "problems") > 0) /* a missing file, an unreadable directory */
                return EXIT_FAILED;
        if (json_get_array_size(result, "pending") > 0)
                return EXIT_PENDING;
        return json_is_true(json_object_get(result, "drift")) ? EXIT_DRIFT : EXIT_OK;
}

/* Exit 9 when the live schema drifted from the applied migrations, 0 when it did not. */
static int verb_diff(const verb *v, int argc, char **argv) {
        static const struct option options[] = { COMMON_OPTIONS, {} };
        json_auto_t *result = NULL;
        request_args a = {};
        int r;

        r = parse_options_only(v, argc, argv, options, &a);
        if (r != CONTINUE)
                return r;
        r = call_daemon(v->method, NULL, render_diff, &result);
        if (r != EXIT_OK)
                return r;
        return json_get_bool(result, "drift", false) ? EXIT_DRIFT : EXIT_OK;
}

/* The schema as SQL: to stdout, or written atomically to --output (never a half-written file). */
static int verb_schema(const verb *v, int argc, char **argv) {
        static const struct option options[] = {
                COMMON_OPTIONS,
                { "output", required_argument, NULL, ARG_OUTPUT },
                { "with-history", no_argument, NULL, ARG_WITH_HISTORY },
                {}
        };
        json_auto_t *result = NULL;
        request_args a = {};
        int r;

        r = parse_options_only(v, argc, argv, options, &a);
        if (r != CONTINUE)
                return r;
        r = call_daemon(v->method, a.with_history ? json_pack("{s:b}", "with_history", true) : NULL,
                        a.output ? NULL : render_schema, &result);
        if (r != EXIT_OK || !a.output)
                return r;
        return schema_write_file(a.output, result);
}

/* The answer to a declined confirmation: nothing happened, and the exit code says so. */
static int declined(void) {
        fprintf(stderr, "migratectl: cancelled; nothing was changed\n");
        return EXIT_FAILED;
}

static int render_plan_result(json_t *result) {
        return render_plan(result, false);
}

static int verb_up(const verb *v, int argc, char **argv) {
        static const struct option options[] = {
                COMMON_OPTIONS,
                { "to", required_argument, NULL, ARG_TO },
                { "dry-run", no_argument, NULL, ARG_DRY_RUN },
                { "per-migration", no_argument, NULL, ARG_PER_MIGRATION },
                { "rehearse", no_argument, NULL, ARG_REHEARSE },
                { "allow-out-of-order", no_argument, NULL, ARG_ALLOW_OUT_OF_ORDER },
                { "seed", no_argument, NULL, ARG_SEED },
                {}
        };
        request_args a = {};
        json_t *params;
        int r;

        r = parse_options_only(v, argc, argv, options, &a);
        if (r != CONTINUE)
                return r;
        if (a.seed && (a.dry_run || a.rehearse))
                return usage_error(v, "--seed goes with a real up, not with --dry-run or --rehearse");
        if (a.dry_run && a.rehearse)
                return usage_error(v, "--dry-run and --rehearse exclude each other (a rehearsal already changes "
                                   "only a copy)");
        params = request_params(&a);
        if (!params)
                return -ENOMEM;
        return call_daemon(v->method, params, render_job, NULL);
}

/* On a terminal, shows what down will revert (the daemon's plan) and asks first. Returns
 * CONTINUE to go ahead, or an exit code. */
static int confirm_down(const request_args *a) {
        json_t *params;
        int r;

        if (a->dry_run || !confirm_needed(a->yes))
                return CONTINUE;
        params = request_params(a);
        if (!params || json_object_set_new(params, "direction", json_string("down")) < 0) {
                json_decref(params);
                return -ENOMEM;
        }
        r = call_daemon(METHOD_PLAN, params, arg_json ? NULL : render_plan_result, NULL);
        if (r != EXIT_OK)
                return r;
        return confirm(false, "Revert these migrations (their down files run, data they hold is lost)?") ? CONTINUE
                                                                                                           : declined();
}

static int verb_down(const verb *v, int argc, char **argv) {
        static const struct option options[] = {
                COMMON_OPTIONS,
                { "steps", required_argument, NULL, ARG_STEPS },
                { "to", required_argument, NULL, ARG_TO },
                { "dry-run", no_argument, NULL, ARG_DRY_RUN },
                { "yes", no_argument, NULL, ARG_YES },
                {}
        };
        request_args a = {};
        json_t *params;
        int r;

        r = parse_options_only(v, argc, argv, options, &a);
        if (r != CONTINUE)
                return r;
        if (a.has_steps && a.has_to)
                return usage_error(v, "--steps and --to exclude each other");
        r = confirm_down(&a);
        if (r != CONTINUE)
                return r;
        params = request_params(&a);
        if (!params)
                return -ENOMEM;
        return call_daemon(v->method, params, render_job, NULL);
}

/* The last applied migration of a status result: its version, and "0003 name" for people.
 * Returns false when none is applied. */
static bool last_applied(json_t *status, int64_t *ret_version, char label[static 128]) {
        json_t *applied = json_get_array(status, "applied"), *last = NULL, *m;
        int64_t version = 0, best = -1;
        size_t i;

        json_array_foreach(applied, i, m)
                if (json_get_int(m, "version", &version) && version > best) {
                        best = version;
                        last = m;
                }
        if (!last)
                return false;
        snprintf(label, 128, "%04" PRId64 " %s", best, json_get_str(last, "name") ?: "");
        *ret_version = best;
        return true;
}

/* redo: down one step, then up to the same version, for development; two jobs, each all or
 * nothing, so a failing up leaves the database one migration lower, as its message says. */
static int verb_redo(const verb *v, int argc, char **argv) {
        static const struct option options[] = { COMMON_OPTIONS, { "yes", no_argument, NULL, ARG_YES }, {} };
        json_auto_t *status = NULL, *down = NULL, *up = NULL, *doc = NULL;
        char label[128], question[192];
        request_args a = {};
        int64_t version, latest = -1;
        int r;

        r = parse_options_only(v, argc, argv, options, &a);
        if (r != CONTINUE)
                return r;
        r = call_daemon(METHOD_STATUS, NULL, NULL, &status);
        if (r != EXIT_OK)
                return r;
        if (!last_applied(status, &version, label)) {
                fprintf(stderr, "migratectl: error: nothing to redo: no migration is applied\n");
                return EXIT_FAILED;
        }
        snprintf(question, sizeof(question), "Revert %s and apply it again?", label);
        if (!confirm(a.yes, question))
                return declined();
        r = call_daemon(METHOD_DOWN, json_pack("{s:I}", "steps", (json_int_t) 1), arg_json ? NULL : render_job, &down);
        if (r != EXIT_OK)
                return r;
        /* at the newest migration a plain up, which releases the gate's hold that down set */
        json_get_int(status, "latest_version", &latest);
        r = call_daemon(METHOD_UP, latest == version ? json_object() : json_pack("{s:I}", "to", (json_int_t) version),
                        arg_json ? NULL : render_job, &up);
        if (r != EXIT_OK || !arg_json)
                return r;
        doc = json_pack("{s:O,s:O}", "down", down, "up", up);
        return doc && output_json(doc) >= 0 ? EXIT_OK : EXIT_FAILED;
}

/* version: the schema version alone, "0" before the first migration, for scripts and gates. */
static int verb_version(const verb *v, int argc, char **argv) {
        static const struct option options[] = { COMMON_OPTIONS, {} };
        json_auto_t *status = NULL, *doc = NULL;
        request_args a = {};
        int64_t version = 0;
        int r;

        r = parse_options_only(v, argc, argv, options, &a);
        if (r != CONTINUE)
                return r;
        r = call_daemon(v->method, NULL, NULL, &status);
        if (r != EXIT_OK)
                return r;
        json_get_int(status, "current_version", &version);
        if (!arg_json) {
                printf("%" PRId64 "\n", version);
                return EXIT_OK;
        }
        doc = json_pack("{s:I}", "version", (json_int_t) version);
        return doc && output_json(doc) >= 0 ? EXIT_OK : EXIT_FAILED;
}


static int verb_plan(const verb *v, int argc, char **argv) {
        static const struct option options[] = {
                COMMON_OPTIONS,
                { "to", required_argument, NULL, ARG_TO },
                { "steps", required_argument, NULL, ARG_STEPS },
                {}
        };
        const char *direction = "up";
        request_args a = {};
        json_t *params;
        int r;

        r = parse_verb_options(v, argc, argv, options, &a);
        if (r != CONTINUE)
                return r;
        if (optind < argc)
                direction = argv[optind++];
        if (!streq(direction, "up") && !streq(direction, "down"))
                return usage_error(v, "the direction must be 'up' or 'down', not '%s'", direction);
        if (optind < argc)
                return usage_error(v, "unexpected argument '%s'", argv[optind]);
        params = request_params(&a);
        if (!params || json_object_set_new(params, "direction", json_string(direction)) < 0) {
                json_decref(params);
                return -ENOMEM;
        }
        return call_daemon(v->method, params, render_plan_result, NULL);
}

static int verb_history(const verb *v, int argc, char **argv) {
        static const struct option options[] = {
                COMMON_OPTIONS,
                { "limit", required_argument, NULL, ARG_LIMIT },
                {}
        };
        request_args a = {};
        json_t *params;
        int r;

        r = parse_options_only(v, argc, argv, options, &a);
        if (r != CONTINUE)
                return r;
        params = request_params(&a);
        if (!params)
                return -ENOMEM;
        return call_daemon(v->method, params, render_history, NULL);
}

/* Exit 5 for an edited applied migration, 1 for any other problem. */
static int verb_verify(const verb *v, int argc, char **argv) {
        static const struct option options[] = { COMMON_OPTIONS, {} };
        json_auto_t *result = NULL;
        request_args a = {};
        int r;

        r = parse_options_only(v, argc, argv, options, &a);
        if (r != CONTINUE)
                return r;
        r = call_daemon(v->method, NULL, render_verify, &result);
        if (r != EXIT_OK)
                return r;
        if (has_checksum_mismatch(result))
                return EXIT_CHECKSUM;
        if (json_get_array_size(result, "problems") > 0 || !json_get_bool(result, "ok", true))
                return EXIT_FAILED;
        return EXIT_OK;
}

static int verb_new(const verb *v, int argc, char **argv) {
        static const struct option options[] = {
                COMMON_OPTIONS,
                { "migrations", required_argument, NULL, ARG_MIGRATIONS },
                {}
        };
        request_args a = {};
        int r;

        r = parse_verb_options(v, argc, argv, options, &a);
        if (r != CONTINUE)
                return r;
        if (optind >= argc)
                return usage_error(v, "missing the migration's NAME");
        if (optind + 1 < argc)
                return usage_error(v, "unexpected argument '%s'", argv[optind + 1]);
        return new_migration(a.migrations ?: new_default_dir(), argv[optind], arg_json);
}

/* The gate for services (ExecStartPre=): returns once the schema is current. */
static int verb_wait(const verb *v, int argc, char **argv) {
        static const struct option options[] = {
                COMMON_OPTIONS,
                { "timeout", required_argument, NULL, ARG_TIMEOUT },
                { "strict", no_argument, NULL, ARG_STRICT },
                {}
        };
        request_args a = { .timeout = 90 };
        int64_t deadline, left;
        json_t *params;
        int r;

        r = parse_options_only(v, argc, argv, options, &a);
        if (r != CONTINUE)
                return r;
        if (oneshot_requested()) /* it would hold the lock: nobody else could make the schema current */
                return usage_error(v, "wait needs a daemon (--socket); without one, use status --check");
        if (a.timeout > 86400)
                return usage_error(v, "--timeout takes seconds, at most 86400");
        deadline = now_ms() + a.timeout * 1000;
        left = deadline - now_ms();
        params = json_pack("{s:I,s:b}", "timeout_ms", (json_int_t) (left > 0 ? left : 0), "strict", a.strict);
        if (!params)
                return -ENOMEM;
        /* connecting is retried until the deadline; the daemon then waits what is left */
        r = call_daemon_until(v->method, params, render_wait, NULL, deadline > now_ms() ? deadline : 1);
        if (r == EXIT_UNREACHABLE)
                fprintf(stderr, "migratectl: error: migrated did not answer within %" PRId64 " s\n", a.timeout);
        return r;
}

static int verb_backup(const verb *v, int argc, char **argv) {
        static const struct option options[] = { COMMON_OPTIONS, {} };
        request_args a = {};
        int r;

        r = parse_options_only(v, argc, argv, options, &a);
        if (r != CONTINUE)
                return r;
        return call_daemon(v->method, NULL, render_job, NULL);
}

static int verb_backups(const verb *v, int argc, char **argv) {
        static const struct option options[] = { COMMON_OPTIONS, {} };
        request_args a = {};
        int r;

        r = parse_options_only(v, argc, argv, options, &a);
        if (r != CONTINUE)
                return r;
        return call_daemon(v->method, NULL, render_backups, NULL);
}

static int verb_restore(const verb *v, int argc, char **argv) {
        static const struct option options[] = { COMMON_OPTIONS, { "yes", no_argument, NULL, ARG_YES }, {} };
        _cleanup_free_ char *question = NULL;
        request_args a = {};
        json_t *params;
        int r;

        r = parse_verb_options(v, argc, argv, options, &a);
        if (r != CONTINUE)
                return r;
        if (optind + 1 < argc)
                return usage_error(v, "unexpected argument '%s'", argv[optind + 1]);
        if (asprintf(&question, "Replace the database with %s (changes made since it was taken are lost; the "
                     "current database is backed up first)?", optind < argc ? argv[optind] : "the newest backup") < 0) {
                question = NULL;
                return -ENOMEM;
        }
        if (!confirm(a.yes, question))
                return declined();
        params = optind < argc ? json_pack("{s:s}", "backup", argv[optind]) : json_object();
        if (!params)
                return -ENOMEM;
        return call_daemon(v->method, params, render_job, NULL);
}

/* mark applied|rolled-back MIGRATION: Prisma's migrate resolve, in both formats. */
static int verb_mark(const verb *v, int argc, char **argv) {
        static const struct option options[] = { COMMON_OPTIONS, {} };
        request_args a = {};
        const char *state;
        int r;

        r = parse_verb_options(v, argc, argv, options, &a);
        if (r != CONTINUE)
                return r;
        if (argc - optind != 2)
                return usage_error(v, "expected a state (applied or rolled-back) and a migration");
        if (streq(argv[optind], "applied"))
                state = "applied";
        else if (streq(argv[optind], "rolled-back"))
                state = "rolled_back";
        else
                return usage_error(v, "the state must be 'applied' or 'rolled-back', not '%s'", argv[optind]);
        return call_daemon(v->method, json_pack("{s:s,s:s}", "migration", argv[optind + 1], "state", state), render_marked,
                           NULL);
}

/* repair MIGRATION: an applied migration's file was edited on purpose; accept its checksum. */
static int verb_repair(const verb *v, int argc, char **argv) {
        static const struct option options[] = { COMMON_OPTIONS, {} };
        request_args a = {};
        int r;

        r = parse_verb_options(v, argc, argv, options, &a);
        if (r != CONTINUE)
                return r;
        if (argc - optind != 1)
                return usage_error(v, "expected one MIGRATION (its version, name or file)");
        return call_daemon(v->method, json_pack("{s:s}", "migration", argv[optind]), render_repaired, NULL);
}

static int verb_baseline(const verb *v, int argc, char **argv) {
        static const struct option options[] = { COMMON_OPTIONS, {} };
        request_args a = {};
        json_t *version = NULL;
        int r;

        r = parse_verb_options(v, argc, argv, options, &a);
        if (r != CONTINUE)
                return r;
        if (argc - optind != 1 || !(version = version_arg(argv[optind])) ||
            (json_is_integer(version) && json_integer_value(version) == 0)) {
                json_decref(version); /* "0" parses, but is not a migration */
                return usage_error(v, "expected one VERSION (a migration's number, or its key such as 1.2.10)");
        }
        return call_daemon(v->method, json_pack("{s:o}", "version", version), render_marked, NULL);
}

static int verb_seed(const verb *v, int argc, char **argv) {
        static const struct option options[] = { COMMON_OPTIONS, {} };
        request_args a = {};
        int r;

        r = parse_options_only(v, argc, argv, options, &a);
        if (r != CONTINUE)
                return r;
        return call_daemon(v->method, NULL, render_job, NULL);
}

/* reset drops everything: asked on a terminal, --yes for scripts, refused without either. */
static int verb_reset(const verb *v, int argc, char **argv) {
        static const struct option options[] = { COMMON_OPTIONS, { "yes", no_argument, NULL, ARG_YES }, {} };
        request_args a = {};
        int r;

        r = parse_options_only(v, argc, argv, options, &a);
        if (r != CONTINUE)
                return r;
        if (!a.yes && !confirm_needed(false))
                return usage_error(v, "reset drops every table and its data: without a terminal to ask on, pass "
                                   "--yes");
        if (!confirm(a.yes, "Drop every table of the database (a backup is taken first), apply every migration "
                     "and the seeds again?"))
                return declined();
        return call_daemon(v->method, NULL, render_job, NULL);
}

/* With --database, inspects locally (the daemon may be what is down); else asks the daemon, which
 * adds its own state and the dependent units'. Exit 0 when a migration could run now, 6 when not. */
static int verb_lock_check(const verb *v, int argc, char **argv) {
        static const struct option options[] = {
                COMMON_OPTIONS,
                { "database", required_argument, NULL, ARG_DATABASE },
                {}
        };
        json_auto_t *result = NULL;
        request_args a = {};
        int r;

        r = parse_options_only(v, argc, argv, options, &a);
        if (r != CONTINUE)
                return r;
        if (a.database)
                return lockcheck_local(a.database, arg_json);
        r = call_daemon(v->method, NULL, render_lockcheck, &result);
        if (r != EXIT_OK)
                return r;
        return lockcheck_exit_code(result);
}

static int verb_cancel(const verb *v, int argc, char **argv) {
        static const struct option options[] = { COMMON_OPTIONS, {} };
        request_args a = {};
        json_t *params = json_object();
        int64_t id;
        int r;

        if (!params)
                return -ENOMEM;
        r = parse_verb_options(v, argc, argv, options, &a);
        if (r == CONTINUE && optind < argc) {
                if (parse_number(argv[optind], &id) < 0 || id == 0)
                        r = usage_error(v, "JOB must be a job number, not '%s'", argv[optind]);
                else if (optind + 1 < argc)
                        r = usage_error(v, "unexpected argument '%s'", argv[optind + 1]);
                else if (json_object_set_new(params, "job_id", json_integer((json_int_t) id)) < 0)
                        r = -ENOMEM;
        }
        if (r != CONTINUE) {
                json_decref(params);
                return r;
        }
        return call_daemon(v->method, params, render_cancel, NULL);
}

/* __complete verbs|migrations|backups: names for the shell completion, one a line (the scripts
 * send standard error to /dev/null: a completion stays quiet when the daemon is away). */
static int verb_complete(const verb *v, int argc, char **argv) {
        static const struct option options[] = { COMMON_OPTIONS, {} };
        const char *what;
        request_args a = {};
        int r;

        r = parse_verb_options(v, argc, argv, options, &a);
        if (r != CONTINUE)
                return r;
        if (argc - optind > 1)
                return usage_error(v, "unexpected argument '%s'", argv[optind + 1]);
        what = argc > optind ? argv[optind] : "verbs";
        arg_json = false;
        if (streq(what, "migrations"))
                return call_daemon(METHOD_STATUS, NULL, complete_print_migrations, NULL);
        if (streq(what, "backups"))
                return call_daemon(METHOD_BACKUPS, NULL, complete_print_backups, NULL);
        complete_print_verbs();
        return EXIT_OK;
}

/* In the order --help lists them; each help line fits VERB_HELP_MAX; no help line: hidden. */
const verb verbs[] = {
        { METHOD_STATUS, NULL, verb_status, "[--check] [--drift] [--all]", "Show versions, applied and pending migrations, problems" },
        { METHOD_STATUS, "version", verb_version, "", "Print the schema version alone (for scripts)" },
        { METHOD_UP, NULL, verb_up, "[--to V] [--dry-run | --rehearse] [--per-migration] [--allow-out-of-order] [--seed]",
          "Apply pending migrations, all or nothing" },
        { METHOD_DOWN, NULL, verb_down, "[--steps N | --to V] [--dry-run] [--yes]",
          "Revert migrations (default: the last one)" },
        { METHOD_DOWN, "redo", verb_redo, "[--yes]", "Revert the last migration and apply it again" },
        { METHOD_PLAN, NULL, verb_plan, "[up|down] [--to V] [--steps N]", "Show what up or down would do" },
        { METHOD_HISTORY, NULL, verb_history, "[--limit N]", "Show recorded migration attempts, newest first" },
        { METHOD_VERIFY, NULL, verb_verify, "", "Check applied migrations against their files" },
        { METHOD_DIFF, NULL, verb_diff, "", "Compare the live schema with the applied migrations' (drift)" },
        { METHOD_SCHEMA, NULL, verb_schema, "[--output FILE] [--with-history]", "Print the schema as SQL, stable for diffs in git" },
        { METHOD_PLAN, "lint", verb_lint, "[DIR] [--postgres] [--json]", "Check migrations for destructive changes (no daemon)" },
        { METHOD_WAIT, NULL, verb_wait, "[--timeout S] [--strict]", "Return once the schema is current (a gate)" },
        { METHOD_CANCEL, NULL, verb_cancel, "[JOB]", "Remove a queued job, or roll back the running one" },
        { METHOD_BACKUP, NULL, verb_backup, "", "Take a backup now (online, consistent)" },
        { METHOD_BACKUPS, NULL, verb_backups, "", "List the backups, newest first" },
        { METHOD_RESTORE, NULL, verb_restore, "[BACKUP] [--yes]", "Replace the database with a backup" },
        { METHOD_LOCK_CHECK, NULL, verb_lock_check, "[--database PATH]", "Who holds the database and what to do" },
        { METHOD_MARK, NULL, verb_mark, "applied|rolled-back MIGRATION", "Record a migration's state without running it" },
        { METHOD_BASELINE, NULL, verb_baseline, "VERSION", "Record migrations up to VERSION as applied" },
        { METHOD_REPAIR, NULL, verb_repair, "MIGRATION", "Accept an applied migration's edited file (new checksum)" },
        { METHOD_SEED, NULL, verb_seed, "", "Apply the seed files not applied yet (after the migrations)" },
        { METHOD_RESET, NULL, verb_reset, "[--yes]", "Development: drop everything, apply every migration, seed" },
        { _METHOD_INVALID, "new", verb_new, "NAME [--migrations DIR]", "Create the next NNNN_NAME.up.sql and .down.sql" },
        { _METHOD_INVALID, "help", verb_help, "[COMMAND]", "Show this list, or a command's options and an example" },
        { _METHOD_INVALID, "__complete", verb_complete, "verbs|migrations|backups", NULL },
        {}
};
/* Every method but hello has its verb, plus the verbs named in their row (version, redo, new,
 * help, __complete, lint) and the end marker: a method added to the protocol's table without a verb
 * here fails to build (or, if it has none, adjust the count). */
_Static_assert(ELEMENTSOF(verbs) == _METHOD_MAX - 1 + 6 + 1, "one verb per method with a verb");

const verb *verb_find(const char *name) {
        for (const verb *v = verbs; v->run; v++)
                if (streq(verb_name(v), name))
                        return v;
        return NULL;
}

/* "unknown command 'stauts'; did you mean 'status'?" */
static int unknown_command(const char *name) {
        const char *names[64], *best;
        size_t n = 0;

        for (const verb *v = verbs; v->run && n < ELEMENTSOF(names); v++)
                names[n++] = verb_name(v);
        best = closest_word(name, names, n);
        if (best)
                return usage_error(NULL, "unknown command '%s'; did you mean '%s'?", name, best);
        return usage_error(NULL, "unknown command '%s'", name);
}

/* Names every verb, in the table's order. */
static int missing_command(void) {
        char list[512] = "";
        size_t k = 0;

        for (const verb *v = verbs; v->run && k < sizeof(list); v++)
                if (v->help)
                        k += (size_t) snprintf(list + k, sizeof(list) - k, "%s%s", k > 0 ? ", " : "", verb_name(v));
        return usage_error(NULL, "missing command (one of %s)", list);
}

/* Options before the command; the command's parser accepts the shared ones again after it.
 * Returns CONTINUE or an exit code. */
static int parse_global_options(int argc, char **argv) {
        static const struct option options[] = {
                COMMON_OPTIONS,
                { "version", no_argument, NULL, ARG_VERSION },
                { "database", required_argument, NULL, ARG_DATABASE },
                { "migrations", required_argument, NULL, ARG_MIGRATIONS },
                { "config", required_argument, NULL, ARG_CONFIG },
                {}
        };
        int c, r;

        while ((c = getopt_long(argc, argv, "+:h", options, NULL)) >= 0) {
                switch (c) {
                case 'h':
                        return help_overview();
                case ARG_VERSION:
                        printf("migratectl %s\n", PROJECT_VERSION);
                        return EXIT_OK;
                case ARG_DATABASE: /* the one-shot mode (oneshot.h) */
                        arg_oneshot_database = optarg;
                        continue;
                case ARG_MIGRATIONS:
                        arg_oneshot_migrations = optarg;
                        continue;
                case ARG_CONFIG:
                        arg_oneshot_config = optarg;
                        continue;
                case ':':
                        return usage_error(NULL, "option '%s' needs an argument", argv[optind - 1]);
                case '?':
                        if (optopt > 0 && optopt < 0x100)
                                return usage_error(NULL, "unknown option '-%c'", optopt);
                        return usage_error(NULL, "unknown option '%s'", argv[optind - 1]);
                default:
                        r = shared_option(c);
                        if (r != CONTINUE)
                                return r;
                }
        }
        return CONTINUE;
}

/* Parses up to the command and runs it. Returns an exit code or -errno. */
static int run(int argc, char **argv) {
        const verb *v;
        int r;

        opterr = 0; /* our messages name the command */
        r = parse_global_options(argc, argv);
        if (r != CONTINUE)
                return r;
        if (arg_oneshot_migrations && !oneshot_requested())
                return usage_error(NULL, "--migrations before the command goes with --database (or --config): "
                                   "the one-shot mode; a daemon knows its own directory");
        if (optind >= argc)
                return missing_command();
        v = verb_find(argv[optind]);
        if (!v)
                return unknown_command(argv[optind]);
        return v->run(v, argc - optind, argv + optind);
}

int main(int argc, char **argv) {
        int r;

        output_setup();
        r = run(argc, argv);
        arg_instance_socket = mfree(arg_instance_socket);
        if (r < 0) {
                fprintf(stderr, "migratectl: error: %s\n", strerror(-r));
                r = EXIT_FAILED;
        }
        /* a full disk or a closed pipe must not pass for success */
        if (fflush(stdout) != 0 && r == EXIT_OK) {
                fprintf(stderr, "migratectl: error: cannot write the output: %m\n");
                r = EXIT_FAILED;
        }
        return r;
}
