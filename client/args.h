/* SPDX-License-Identifier: MIT */
#pragma once

/* migratectl's command line: the options every verb takes (before or after the verb), the one
 * getopt loop of the verbs, usage errors with "did you mean", strict numbers. */

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>

#include "macro.h"
#include "output.h"
#include "verbs.h"

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
        ARG_YES,
        ARG_COLOR,
        ARG_CONFIG,
        ARG_DRIFT,
        ARG_SEED,
        ARG_OUTPUT,
        ARG_WITH_HISTORY,
        ARG_POSTGRES,
        ARG_ALL,
};

/* Returned by the parsers when the verb goes on; any other value is an exit code. */
#define CONTINUE (-1)

/* The options every verb accepts, also after the verb. */
#define COMMON_OPTIONS                                                       \
        { "json", no_argument, NULL, ARG_JSON },                             \
        { "socket", required_argument, NULL, ARG_SOCKET },                   \
        { "instance", required_argument, NULL, ARG_INSTANCE },               \
        { "color", required_argument, NULL, ARG_COLOR },                     \
        { "help", no_argument, NULL, 'h' }

/* The options every verb shares, wherever they were given. */
extern const char *arg_socket;
extern char *arg_instance_socket; /* from --instance NAME */
extern bool arg_json;

/* What the verbs' options ask of the daemon; only what was given goes into the request. */
typedef struct request_args {
        const char *to_key; /* --to as a version key such as 1.2.10 (protocol 2) */
        int64_t to, steps, limit, timeout;
        bool has_to, has_steps, has_limit, has_timeout, dry_run, per_migration, check, rehearse, out_of_order, strict;
        bool yes;
        bool drift; /* status --drift */
        bool seed;  /* up --seed */
        bool all;   /* status --all: every applied migration */
        const char *migrations;
        const char *database; /* lock-check --database: inspect without the daemon */
        const char *output;   /* schema --output FILE */
        bool with_history;    /* schema --with-history */
        bool postgres;        /* lint --postgres: PostgreSQL's dialect */
} request_args;

/* Prints "migratectl: MESSAGE", the verb's usage and where to read more. Returns EXIT_USAGE. */
int usage_error(const verb *v, const char *fmt, ...) _printf_(2, 3);

/* Strict: digits only, the whole string, no sign, no overflow. Returns 0 or -EINVAL. */
int parse_number(const char *s, int64_t *ret);

/* The protocol version to speak from the start: 2 once a version is given as a key that is not a
 * number ("1.2.10"); else version 1, and version 2 when the daemon asks for it. */
extern int arg_protocol;
/* A version that is not a number but a format's key, such as Flyway's 1.2.10. */
bool is_version_key(const char *s);
/* A version argument: a number (protocol 1), or a key (then protocol 2). NULL: neither. */
json_t *version_arg(const char *s);

/* The closest of candidates to word by edit distance, if close enough to be a likely typo; else
 * NULL. candidates is NULL-terminated when n is SIZE_MAX. */
const char *closest_word(const char *word, const char *const *candidates, size_t n);

/* An option every verb takes, also before the verb (--socket, --instance, --json, --color).
 * Returns CONTINUE, or an exit code for a bad value. */
int shared_option(int c);

/* The one getopt loop of the verbs; options says which options the verb takes. Returns CONTINUE
 * with optind at the first positional argument, or an exit code. */
int parse_verb_options(const verb *v, int argc, char **argv, const struct option *options, request_args *a);
/* For verbs without positional arguments: options, then nothing else. */
int parse_options_only(const verb *v, int argc, char **argv, const struct option *options, request_args *a);
/* Refuses --socket with --instance. Returns CONTINUE or EXIT_USAGE. */
int check_exclusive_options(const verb *v);
