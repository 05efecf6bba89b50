/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "conn.h"
#include "exit-codes.h"
#include "hints.h"
#include "lockcheck.h"
#include "macro.h"
#include "new.h"
#include "output.h"
#include "protocol-methods.h"
#include "render.h"

/* The client's side of a method: the verb that calls it, which parses its own arguments and
 * returns an exit code. The verb's name and the method it calls come from the protocol's method
 * table (common/protocol-methods.c); a verb without a method (new) names itself. */
typedef struct verb verb;
struct verb {
        protocol_method_id method; /* _METHOD_INVALID: runs without the daemon */
        const char *name;          /* only when method is _METHOD_INVALID */
        int (*run)(const verb *v, int argc, char **argv);
        const char *usage;
        const char *help;
};

/* Long-only options, shared by the global and the per-verb parsers. */
enum {
        ARG_SOCKET = 0x100,
        ARG_JSON,
        ARG_VERSION,
        ARG_CHECK,
        ARG_TO,
        ARG_STEPS,
        ARG_DRY_RUN,
        ARG_PER_MIGRATION,
        ARG_LIMIT,
        ARG_MIGRATIONS,
        ARG_INSTANCE,
        ARG_TIMEOUT,
        ARG_REHEARSE,
        ARG_ALLOW_OUT_OF_ORDER,
        ARG_DATABASE,
        ARG_STRICT,
};

#define CONTINUE (-1)
#define COMMON_OPTIONS                                              \
        { "json", no_argument, NULL, ARG_JSON },                    \
        { "help", no_argument, NULL, 'h' }

static const char *arg_socket = NULL;
static char *arg_instance_socket = NULL; /* from --instance NAME */
static bool arg_json = false;

static const verb verbs[];

static const char *verb_name(const verb *v) {
        return v->method >= 0 ? protocol_methods[v->method].verb : v->name;
}

/* The full help: every verb from the verb table, the options, the exit codes. */
static int help(void) {
        _cleanup_(table_freep) table *verbs_table = table_new(2), *codes = table_new(2);
        int r = verbs_table && codes ? 0 : -ENOMEM;

        for (const verb *v = verbs; r >= 0 && v->run; v++)
                r = table_addf(verbs_table, "%s %s", verb_name(v), v->usage) ?: table_add(verbs_table, v->help);
        for (int c = 0; r >= 0 && c <= EXIT_CODE_MAX; c++)
                r = table_addf(codes, "%d", c) ?: table_add(codes, exit_code_meaning(c));
        if (r < 0)
                return r;

        printf("migratectl [--socket PATH | --instance NAME] [--json] COMMAND [ARGS]\n\n"
               "Client of migrated, the daemon that applies schema migrations to one database.\n\n"
               "Commands:\n");
        table_print(verbs_table, stdout, "  ");
        printf("\nOptions:\n"
               "  --socket PATH  the daemon's socket (default: $MIGRATED_SOCKET, else %s)\n"
               "  --instance NAME  the socket of migrated@NAME.service: " INSTANCE_SOCKET_DIR "/NAME.sock\n"
               "  --json         print one JSON document on stdout instead of text\n"
               "  -h --help      show this help (after a command: that command's usage)\n"
               "  --version      show the version\n"
               "\nExit codes:\n",
               DEFAULT_SOCKET);
        table_print(codes, stdout, "  ");
        return EXIT_OK;
}

static int usage_error(const verb *v, const char *fmt, ...) _printf_(2, 3);
static int usage_error(const verb *v, const char *fmt, ...) {
        va_list ap;

        fputs("migratectl: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        if (v)
                fprintf(stderr, "\nUsage: migratectl %s %s", verb_name(v), v->usage);
        fprintf(stderr, "\nTry 'migratectl --help' for more information.\n");
        return EXIT_USAGE;
}

/* Options every verb takes, and getopt's complaints. Returns CONTINUE or an exit code. */
static int common_option(const verb *v, int c, char **argv) {
        switch (c) {
        case ARG_JSON:
                arg_json = true;
                return CONTINUE;
        case 'h':
                printf("Usage: migratectl %s %s\n  %s\n", verb_name(v), v->usage, v->help);
                return EXIT_OK;
        case ':':
                return usage_error(v, "option '%s' needs an argument", argv[optind - 1]);
        default:
                if (optopt > 0 && optopt < 0x100)
                        return usage_error(v, "unknown option '-%c'", optopt);
                return usage_error(v, "unknown option '%s'", argv[optind - 1]);
        }
}

/* Strict: digits only, the whole string, no sign, no overflow. Returns 0 or -EINVAL. */
static int parse_number(const char *s, int64_t *ret) {
        char *end;
        long long n;

        if (*s < '0' || *s > '9')
                return -EINVAL;
        errno = 0;
        n = strtoll(s, &end, 10);
        if (errno != 0 || *end != '\0')
                return -EINVAL;
        *ret = (int64_t) n;
        return 0;
}

/* The protocol version to speak from the start: 2 once a version is given as a key that is not a
 * number ("1.2.10"); else version 1, and version 2 when the daemon asks for it. */
static int arg_protocol = 1;

/* A version that is not a number but a format's key, such as Flyway's 1.2.10. */
static bool is_version_key(const char *s) {
        int64_t n;

        return *s && strspn(s, "0123456789._") == strlen(s) && parse_number(s, &n) < 0;
}

/* A version argument: a number (protocol 1), or a key (then protocol 2). NULL: neither. */
static json_t *version_arg(const char *s) {
        int64_t n;

        if (parse_number(s, &n) == 0)
                return json_integer((json_int_t) n);
        if (!is_version_key(s))
                return NULL;
        arg_protocol = 2;
        return json_string(s);
}

/* What the verbs' options ask of the daemon; only what was given goes into the request. */
typedef struct request_args {
        const char *to_key; /* --to as a version key such as 1.2.10 (protocol 2) */
        int64_t to, steps, limit, timeout;
        bool has_to, has_steps, has_limit, has_timeout, dry_run, per_migration, check, rehearse, out_of_order, strict;
        const char *migrations;
        const char *database; /* lock-check --database: inspect without the daemon */
} request_args;

static int number_option(const verb *v, const char *option, int64_t *ret, bool *ret_given) {
        if (parse_number(optarg, ret) < 0)
                return usage_error(v, "invalid number for %s: '%s' (expected a whole number >= 0)", option, optarg);
        *ret_given = true;
        return CONTINUE;
}

/* The one getopt loop of the verbs; each verb's options table says which options it takes.
 * Returns CONTINUE with optind at the first positional argument, or an exit code. */
static int parse_verb_options(const verb *v, int argc, char **argv, const struct option *options, request_args *a) {
        int c, r;

        optind = 0; /* glibc: start over for this argv */
        while ((c = getopt_long(argc, argv, ":h", options, NULL)) >= 0) {
                switch (c) {
                case ARG_TO:
                        if (is_version_key(optarg)) {
                                a->to_key = optarg;
                                a->has_to = true;
                                arg_protocol = 2;
                                r = CONTINUE;
                        } else
                                r = number_option(v, "--to", &a->to, &a->has_to);
                        break;
                case ARG_STEPS:
                        r = number_option(v, "--steps", &a->steps, &a->has_steps);
                        break;
                case ARG_LIMIT:
                        r = number_option(v, "--limit", &a->limit, &a->has_limit);
                        break;
                case ARG_TIMEOUT:
                        r = number_option(v, "--timeout", &a->timeout, &a->has_timeout);
                        break;
                case ARG_DRY_RUN:
                        a->dry_run = true;
                        continue;
                case ARG_PER_MIGRATION:
                        a->per_migration = true;
                        continue;
                case ARG_REHEARSE:
                        a->rehearse = true;
                        continue;
                case ARG_ALLOW_OUT_OF_ORDER:
                        a->out_of_order = true;
                        continue;
                case ARG_STRICT:
                        a->strict = true;
                        continue;
                case ARG_CHECK:
                        a->check = true;
                        continue;
                case ARG_MIGRATIONS:
                        a->migrations = optarg;
                        continue;
                default:
                        r = common_option(v, c, argv);
                }
                if (r != CONTINUE)
                        return r;
        }
        return CONTINUE;
}

/* For verbs without positional arguments: options, then nothing else. */
static int parse_options_only(const verb *v, int argc, char **argv, const struct option *options, request_args *a) {
        int r = parse_verb_options(v, argc, argv, options, a);

        if (r == CONTINUE && optind < argc)
                return usage_error(v, "unexpected argument '%s'", argv[optind]);
        return r;
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
            (a->out_of_order && json_object_set_new(p, "allow_out_of_order", json_true()) < 0)) {
                json_decref(p);
                return NULL;
        }
        return p;
}

/* Reports a failed exchange; the daemon was reached, so this is a failed operation. */
static int call_failed(const char *path, int r, size_t n_events) {
        if (n_events == 0 && (r == CONN_EOF || r == -ECONNRESET || r == -EPIPE))
                return hint_activation_failed(path);
        if (r == CONN_EOF || r == -ECONNRESET || r == -EPIPE)
                fprintf(stderr, "migratectl: error: daemon closed the connection\n");
        else if (r == CONN_BAD_REPLY)
                fprintf(stderr, "migratectl: error: the daemon's reply is not protocol v%d\n",
                        MIGRATED_PROTOCOL_VERSION);
        else if (r == -EMSGSIZE)
                fprintf(stderr, "migratectl: error: a reply line is longer than %d bytes\n", CONN_LINE_MAX);
        else
                fprintf(stderr, "migratectl: error: talking to %s: %s\n", path, strerror(-r));
        return EXIT_FAILED;
}

/* Prints a daemon error as the mode asks and maps its code to the exit code. */
static int reply_error(json_t *error) {
        json_auto_t *doc = NULL;

        if (arg_json) {
                doc = json_pack("{s:O}", "error", error);
                if (!doc || output_json(doc) < 0)
                        return EXIT_FAILED;
        } else
                render_error(error);
        return exit_code_from_error(json_get_str(error, "code"));
}

static int64_t now_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Every event line counts (a connection that closes before any is a failed activation); only
 * human mode shows them. */
static int on_event(json_t *event, void *userdata) {
        progress *p = userdata;

        p->n_events++;
        return arg_json ? 0 : render_event(event, userdata);
}

/* Connects; with a deadline, keeps trying until then (a gate at boot may run before the daemon
 * or its socket exists). */
static int connect_until(const char *path, int64_t deadline_ms, conn **ret) {
        struct timespec pause = { 0, 100 * 1000 * 1000 };
        int r;

        for (;;) {
                r = conn_open(path, ret);
                if (r >= 0 || deadline_ms == 0 || now_ms() >= deadline_ms ||
                    (r != -ENOENT && r != -ECONNREFUSED && r != -EAGAIN))
                        return r;
                nanosleep(&pause, NULL);
        }
}

/* One request, start to end: connect, send, show progress, print the final line. On success
 * *ret_result (if given) gets a reference to the result for the verb's own exit code. With a
 * connect deadline, connecting is retried until then. */
static int call_daemon_until(protocol_method_id method, json_t *params, int (*render)(json_t *), json_t **ret_result,
                             int64_t connect_deadline_ms) {
        _cleanup_(conn_freep) conn *c = NULL;
        json_auto_t *root = NULL;
        const char *path = conn_socket_path(arg_socket ?: arg_instance_socket);
        progress p = { .tty = isatty(STDERR_FILENO) };
        protocol_reply_kind kind;
        json_t *body;
        int r;

        r = connect_until(path, connect_deadline_ms, &c);
        if (r == -EACCES) {
                json_decref(params);
                return hint_permission_denied(path);
        }
        if (r < 0) {
                json_decref(params);
                fprintf(stderr, "migratectl: error: cannot connect to %s: %s\n"
                        "  is migrated running? start it or pass --socket\n", path, strerror(-r));
                return EXIT_UNREACHABLE;
        }
        c->protocol = arg_protocol;
        r = conn_call(c, protocol_methods[method].name, params, on_event, &p, &kind, &root, &body);
        progress_end(&p);
        if (r != 0)
                return call_failed(path, r, p.n_events);
        if (kind == PROTOCOL_REPLY_ERROR)
                return reply_error(body);

        r = arg_json ? output_json(body) : render(body);
        if (r < 0) {
                fprintf(stderr, "migratectl: error: cannot print the result: %s\n", strerror(-r));
                return EXIT_FAILED;
        }
        if (ret_result)
                *ret_result = json_incref(body);
        return EXIT_OK;
}

static int call_daemon(protocol_method_id method, json_t *params, int (*render)(json_t *), json_t **ret_result) {
        return call_daemon_until(method, params, render, ret_result, 0);
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
        static const struct option options[] = { COMMON_OPTIONS, { "check", no_argument, NULL, ARG_CHECK }, {} };
        json_auto_t *result = NULL;
        request_args a = {};
        int r;

        r = parse_options_only(v, argc, argv, options, &a);
        if (r != CONTINUE)
                return r;

        r = call_daemon(v->method, NULL, render_status, &result);
        if (r != EXIT_OK || !a.check)
                return r;
        if (has_checksum_mismatch(result))
                return EXIT_CHECKSUM;
        return json_get_array_size(result, "pending") > 0 ? EXIT_PENDING : EXIT_OK;
}

/* up and down: the same request shape, the same rendering. */
static int run_job(const verb *v, int argc, char **argv, const struct option *options) {
        request_args a = {};
        json_t *params;
        int r;

        r = parse_options_only(v, argc, argv, options, &a);
        if (r != CONTINUE)
                return r;
        if (a.has_steps && a.has_to)
                return usage_error(v, "--steps and --to exclude each other");
        params = request_params(&a);
        if (!params)
                return -ENOMEM;
        return call_daemon(v->method, params, render_job, NULL);
}

static int verb_up(const verb *v, int argc, char **argv) {
        static const struct option options[] = {
                COMMON_OPTIONS,
                { "to", required_argument, NULL, ARG_TO },
                { "dry-run", no_argument, NULL, ARG_DRY_RUN },
                { "per-migration", no_argument, NULL, ARG_PER_MIGRATION },
                { "rehearse", no_argument, NULL, ARG_REHEARSE },
                { "allow-out-of-order", no_argument, NULL, ARG_ALLOW_OUT_OF_ORDER },
                {}
        };

        return run_job(v, argc, argv, options);
}

static int verb_down(const verb *v, int argc, char **argv) {
        static const struct option options[] = {
                COMMON_OPTIONS,
                { "steps", required_argument, NULL, ARG_STEPS },
                { "to", required_argument, NULL, ARG_TO },
                { "dry-run", no_argument, NULL, ARG_DRY_RUN },
                {}
        };

        return run_job(v, argc, argv, options);
}

static int render_plan_result(json_t *result) {
        return render_plan(result, false);
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

static int render_wait(json_t *result) {
        char buf[24];

        if (json_get_bool(result, "schema_current", true))
                printf("The schema is current (version %s).\n", fmt_version(result, "current_version", buf));
        else
                printf("Go ahead on version %s: %s.\n", fmt_version(result, "current_version", buf),
                       json_get_str(result, "reason") ?: "the last migration failed");
        return 0;
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
        static const struct option options[] = { COMMON_OPTIONS, {} };
        request_args a = {};
        json_t *params;
        int r;

        r = parse_verb_options(v, argc, argv, options, &a);
        if (r != CONTINUE)
                return r;
        if (optind + 1 < argc)
                return usage_error(v, "unexpected argument '%s'", argv[optind + 1]);
        params = optind < argc ? json_pack("{s:s}", "backup", argv[optind]) : json_object();
        if (!params)
                return -ENOMEM;
        return call_daemon(v->method, params, render_job, NULL);
}

static int render_marked(json_t *result) {
        const char *status = json_get_str(result, "status") ?: "";
        char buf[24];

        if (streq(status, "baselined"))
                printf("Baseline recorded: migrations up to %s marked applied (nothing was run).\n",
                       fmt_version(result, "to_version", buf));
        else
                printf("%s marked %s (nothing was run).\n", json_get_str(result, "name") ?: "?",
                       streq(status, "marked_applied") ? "applied" : "rolled back");
        return 0;
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

static int verb_baseline(const verb *v, int argc, char **argv) {
        static const struct option options[] = { COMMON_OPTIONS, {} };
        request_args a = {};
        json_t *version;
        int r;

        r = parse_verb_options(v, argc, argv, options, &a);
        if (r != CONTINUE)
                return r;
        if (argc - optind != 1 || !(version = version_arg(argv[optind])) ||
            (json_is_integer(version) && json_integer_value(version) == 0))
                return usage_error(v, "expected one VERSION (a migration's number, or its key such as 1.2.10)");
        return call_daemon(v->method, json_pack("{s:o}", "version", version), render_marked, NULL);
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
        int c, r;

        optind = 0;
        while ((c = getopt_long(argc, argv, ":h", options, NULL)) >= 0) {
                if (c == ARG_DATABASE) {
                        a.database = optarg;
                        continue;
                }
                r = common_option(v, c, argv);
                if (r != CONTINUE)
                        return r;
        }
        if (optind < argc)
                return usage_error(v, "unexpected argument '%s'", argv[optind]);
        if (a.database)
                return lockcheck_local(a.database, arg_json);
        r = call_daemon(v->method, NULL, render_lockcheck, &result);
        if (r != EXIT_OK)
                return r;
        return lockcheck_exit_code(result);
}

static int render_cancel(json_t *result) {
        int64_t id = 0;
        const char *state = json_get_str(result, "state");

        json_get_int(result, "job_id", &id);
        if (state && streq(state, "removed"))
                printf("Job %" PRId64 " removed from the queue.\n", id);
        else
                printf("Job %" PRId64 " is being cancelled: its transaction is rolled back and the units are "
                       "started again.\n", id);
        return 0;
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

/* In the order --help lists them. */
static const verb verbs[] = {
        { METHOD_STATUS, NULL, verb_status, "[--check]", "Show versions, applied and pending migrations, problems" },
        { METHOD_UP, NULL, verb_up, "[--to V] [--dry-run | --rehearse] [--per-migration] [--allow-out-of-order]",
          "Apply pending migrations, all or nothing (--rehearse: on a copy)" },
        { METHOD_DOWN, NULL, verb_down, "[--steps N | --to V] [--dry-run]", "Revert migrations (default: the last one)" },
        { METHOD_PLAN, NULL, verb_plan, "[up|down] [--to V] [--steps N]", "Show what up or down would do; change nothing" },
        { METHOD_HISTORY, NULL, verb_history, "[--limit N]", "Show recorded migration attempts, newest first" },
        { METHOD_VERIFY, NULL, verb_verify, "", "Check applied migrations against their files" },
        { METHOD_WAIT, NULL, verb_wait, "[--timeout S] [--strict]",
          "Return once the schema is current, or a failed migration was rolled back (--strict: current only)" },
        { METHOD_CANCEL, NULL, verb_cancel, "[JOB]", "Remove a queued job, or roll back the running one" },
        { METHOD_BACKUP, NULL, verb_backup, "", "Take a backup now (online, consistent)" },
        { METHOD_BACKUPS, NULL, verb_backups, "", "List the backups, newest first" },
        { METHOD_RESTORE, NULL, verb_restore, "[BACKUP]", "Replace the database with a backup (default: the newest)" },
        { METHOD_LOCK_CHECK, NULL, verb_lock_check, "[--database PATH]",
          "Who holds the database and what to do (exit 6: a migration could not run now)" },
        { METHOD_MARK, NULL, verb_mark, "applied|rolled-back MIGRATION", "Record a migration's state without running it (migrate resolve)" },
        { METHOD_BASELINE, NULL, verb_baseline, "VERSION", "Record migrations up to VERSION as applied on a database without history" },
        { _METHOD_INVALID, "new", verb_new, "NAME [--migrations DIR]", "Create the next NNNN_NAME.up.sql and .down.sql" },
        {}
};
/* Every method but hello has its verb, plus new and the end marker: a method added to the
 * protocol's table without a verb here fails to build (or, if it has none, adjust the count). */
_Static_assert(ELEMENTSOF(verbs) == _METHOD_MAX - 1 + 1 + 1, "one verb per method with a verb");

static const verb *verb_find(const char *name) {
        for (const verb *v = verbs; v->run; v++)
                if (streq(verb_name(v), name))
                        return v;
        return NULL;
}

/* Names every verb, in the table's order. */
static int missing_command(void) {
        char list[512] = "";
        size_t k = 0;

        for (const verb *v = verbs; v->run && k < sizeof(list); v++)
                k += (size_t) snprintf(list + k, sizeof(list) - k, "%s%s", k > 0 ? ", " : "", verb_name(v));
        return usage_error(NULL, "missing command (one of %s)", list);
}

/* Global options stop at the command; the command's own options follow it. Returns CONTINUE or
 * an exit code. */
static int parse_global_options(int argc, char **argv) {
        static const struct option options[] = {
                { "socket", required_argument, NULL, ARG_SOCKET },
                { "instance", required_argument, NULL, ARG_INSTANCE },
                { "json", no_argument, NULL, ARG_JSON },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                {}
        };
        int c;

        while ((c = getopt_long(argc, argv, "+:h", options, NULL)) >= 0)
                switch (c) {
                case ARG_SOCKET:
                        arg_socket = optarg;
                        break;
                case ARG_INSTANCE:
                        /* migrated@NAME.service listens on /run/migrated/NAME.sock */
                        if (!*optarg || strchr(optarg, '/') || strlen(optarg) > 64)
                                return usage_error(NULL, "--instance takes an instance name, not '%s'", optarg);
                        free(arg_instance_socket);
                        if (asprintf(&arg_instance_socket, "%s/%s.sock", INSTANCE_SOCKET_DIR, optarg) < 0)
                                return -ENOMEM;
                        break;
                case ARG_JSON:
                        arg_json = true;
                        break;
                case 'h':
                        return help();
                case ARG_VERSION:
                        printf("migratectl %s\n", PROJECT_VERSION);
                        return EXIT_OK;
                case ':':
                        return usage_error(NULL, "option '%s' needs an argument", argv[optind - 1]);
                default:
                        if (optopt > 0 && optopt < 0x100)
                                return usage_error(NULL, "unknown option '-%c'", optopt);
                        return usage_error(NULL, "unknown option '%s'", argv[optind - 1]);
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
        if (optind >= argc)
                return missing_command();
        v = verb_find(argv[optind]);
        if (!v)
                return usage_error(NULL, "unknown command '%s'", argv[optind]);
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
