/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "config.h"
#include "exit-codes.h"
#include "help.h"

const char *arg_socket = NULL;
char *arg_instance_socket = NULL;
bool arg_json = false;

int usage_error(const verb *v, const char *fmt, ...) {
        va_list ap;

        fputs("migratectl: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        if (v)
                fprintf(stderr, "\nUsage: migratectl %s %s\nTry 'migratectl help %s' for its options and an example.\n",
                        verb_name(v), v->usage, verb_name(v));
        else
                fprintf(stderr, "\nTry 'migratectl help' for more information.\n");
        return EXIT_USAGE;
}

int parse_number(const char *s, int64_t *ret) {
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

int arg_protocol = 1;

bool is_version_key(const char *s) {
        int64_t n;

        return *s && strspn(s, "0123456789._") == strlen(s) && parse_number(s, &n) < 0;
}

json_t *version_arg(const char *s) {
        int64_t n;

        if (parse_number(s, &n) == 0)
                return json_integer((json_int_t) n);
        if (!is_version_key(s))
                return NULL;
        arg_protocol = 2;
        return json_string(s);
}

static size_t size_min(size_t a, size_t b) {
        return a < b ? a : b;
}

/* Optimal string alignment distance: insertions, deletions, substitutions and swaps of two
 * neighbours each cost one, so "stauts" is one step from "status". Words are short; longer
 * ones are cut at 63 characters. */
static size_t edit_distance(const char *a, const char *b) {
        size_t n = strnlen(a, 63), m = strnlen(b, 63), d[64][64];

        for (size_t i = 0; i <= n; i++)
                d[i][0] = i;
        for (size_t j = 0; j <= m; j++)
                d[0][j] = j;
        for (size_t i = 1; i <= n; i++)
                for (size_t j = 1; j <= m; j++) {
                        size_t cost = a[i - 1] == b[j - 1] ? 0 : 1, best = d[i - 1][j - 1] + cost;
                        best = size_min(best, d[i - 1][j] + 1);
                        best = size_min(best, d[i][j - 1] + 1);
                        if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
                                best = size_min(best, d[i - 2][j - 2] + 1);
                        d[i][j] = best;
                }
        return d[n][m];
}

const char *closest_word(const char *word, const char *const *candidates, size_t n) {
        const char *best = NULL;
        size_t best_distance = SIZE_MAX, limit = size_min(strlen(word) / 3, 3);

        for (size_t i = 0; i < n && candidates[i]; i++) {
                size_t d = edit_distance(word, candidates[i]);
                if (d < best_distance) {
                        best = candidates[i];
                        best_distance = d;
                }
        }
        return best_distance <= (limit > 0 ? limit : 1) ? best : NULL;
}

/* "unknown option '--rehersae'", with the verb's closest option when there is a likely one. */
static int unknown_option(const verb *v, const struct option *options, const char *arg) {
        const char *names[64];
        _cleanup_free_ char *name = NULL;
        const char *best;
        size_t n = 0;

        if (!strneq(arg, "--", 2))
                return usage_error(v, "unknown option '%s'", arg);
        name = strndup(arg + 2, strcspn(arg + 2, "="));
        if (!name)
                return -ENOMEM;
        for (const struct option *o = options; o->name && n < ELEMENTSOF(names); o++)
                names[n++] = o->name;
        best = closest_word(name, names, n);
        if (best)
                return usage_error(v, "unknown option '%s'; did you mean '--%s'?", arg, best);
        return usage_error(v, "unknown option '%s'", arg);
}

int shared_option(int c) {
        switch (c) {
        case ARG_SOCKET:
                arg_socket = optarg;
                return CONTINUE;
        case ARG_INSTANCE:
                /* migrated@NAME.service listens on /run/migrated/NAME.sock */
                if (!*optarg || strchr(optarg, '/') || strlen(optarg) > 64)
                        return usage_error(NULL, "--instance takes an instance name, not '%s'", optarg);
                free(arg_instance_socket);
                if (asprintf(&arg_instance_socket, "%s/%s.sock", INSTANCE_SOCKET_DIR, optarg) < 0) {
                        arg_instance_socket = NULL;
                        return -ENOMEM;
                }
                return CONTINUE;
        case ARG_JSON:
                arg_json = true;
                return CONTINUE;
        case ARG_COLOR:
                if (streq(optarg, "auto"))
                        output_set_color(COLOR_AUTO);
                else if (streq(optarg, "always"))
                        output_set_color(COLOR_ALWAYS);
                else if (streq(optarg, "never"))
                        output_set_color(COLOR_NEVER);
                else
                        return usage_error(NULL, "--color takes auto, always or never, not '%s'", optarg);
                return CONTINUE;
        default:
                return EXIT_USAGE;
        }
}

int check_exclusive_options(const verb *v) {
        if (arg_socket && arg_instance_socket)
                return usage_error(v, "--socket and --instance exclude each other (both name the daemon's socket)");
        return CONTINUE;
}

/* Options every verb takes, and getopt's complaints. Returns CONTINUE or an exit code. */
static int common_option(const verb *v, const struct option *options, int c, char **argv) {
        switch (c) {
        case ARG_SOCKET:
        case ARG_INSTANCE:
        case ARG_JSON:
        case ARG_COLOR:
                return shared_option(c);
        case 'h':
                return help_verb(v);
        case ':':
                return usage_error(v, "option '%s' needs an argument", argv[optind - 1]);
        default:
                if (optopt > 0 && optopt < 0x100)
                        return usage_error(v, "unknown option '-%c'", optopt);
                return unknown_option(v, options, argv[optind - 1]);
        }
}

static int number_option(const verb *v, const char *option, int64_t *ret, bool *ret_given) {
        if (parse_number(optarg, ret) < 0)
                return usage_error(v, "invalid number for %s: '%s' (expected a whole number >= 0)", option, optarg);
        *ret_given = true;
        return CONTINUE;
}

int parse_verb_options(const verb *v, int argc, char **argv, const struct option *options, request_args *a) {
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
                case ARG_YES:
                        a->yes = true;
                        continue;
                case ARG_DRIFT:
                        a->drift = true;
                        continue;
                case ARG_SEED:
                        a->seed = true;
                        continue;
                case ARG_POSTGRES:
                        a->postgres = true;
                        continue;
                case ARG_ALL:
                        a->all = true;
                        continue;
                case ARG_MIGRATIONS:
                        a->migrations = optarg;
                        continue;
                case ARG_DATABASE:
                        a->database = optarg;
                        continue;
                case ARG_OUTPUT:
                        a->output = optarg;
                        continue;
                case ARG_WITH_HISTORY:
                        a->with_history = true;
                        continue;
                default:
                        r = common_option(v, options, c, argv);
                }
                if (r != CONTINUE)
                        return r;
        }
        return check_exclusive_options(v);
}

int parse_options_only(const verb *v, int argc, char **argv, const struct option *options, request_args *a) {
        int r = parse_verb_options(v, argc, argv, options, a);

        if (r == CONTINUE && optind < argc)
                return usage_error(v, "unexpected argument '%s'", argv[optind]);
        return r;
}
