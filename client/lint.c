/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <ftw.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "call.h"
#include "exit-codes.h"
#include "lint.h"
#include "macro.h"
#include "oneshot.h"
#include "output.h"
#include "render.h"

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        (void) st;
        (void) flag;
        (void) ftw;
        (void) remove(path);
        return 0;
}

/* The findings, then one line that counts them. */
static int render_lint(json_t *result) {
        json_t *findings = json_get_array(result, "findings");
        size_t errors = 0, warnings = 0, accepted = 0;

        render_findings(findings);
        for (size_t i = 0; i < json_array_size(findings); i++) {
                json_t *f = json_array_get(findings, i);
                if (json_get_bool(f, "accepted", false))
                        accepted++;
                else if (streq(json_get_str(f, "severity") ?: "", "error"))
                        errors++;
                else
                        warnings++;
        }
        printf("%zu error%s, %zu warning%s, %zu accepted in their files\n", errors, errors == 1 ? "" : "s", warnings,
               warnings == 1 ? "" : "s", accepted);
        return 0;
}

int verb_lint(const verb *v, int argc, char **argv) {
        static const struct option options[] = {
                COMMON_OPTIONS,
                { "postgres", no_argument, NULL, ARG_POSTGRES },
                {}
        };
        _cleanup_free_ char *database = NULL, *state = NULL;
        json_auto_t *result = NULL;
        _cleanup_free_ char *scratch = NULL;
        request_args a = {};
        const char *dir;
        int r;

        r = parse_verb_options(v, argc, argv, options, &a);
        if (r != CONTINUE)
                return r;
        if (argc - optind > 1)
                return usage_error(v, "unexpected argument '%s'", argv[optind + 1]);
        if (oneshot_requested() || arg_socket || arg_instance_socket)
                return usage_error(v, "lint needs no database or daemon: give the migrations directory alone");
        dir = argc > optind ? argv[optind] : arg_oneshot_migrations ?: "migrations";
        if (access(dir, R_OK | X_OK) < 0) {
                fprintf(stderr, "migratectl: error: cannot read the migrations directory %s: %s\n", dir,
                        strerror(errno));
                return EXIT_FAILED;
        }
        if (asprintf(&scratch, "%s/migratectl-lint-XXXXXX", getenv("TMPDIR") ?: "/tmp") < 0)
                return EXIT_FAILED;
        if (!mkdtemp(scratch)) {
                fprintf(stderr, "migratectl: error: cannot create a scratch directory: %s\n", strerror(errno));
                return EXIT_FAILED;
        }
        if (asprintf(&database, "%s/lint.sqlite", scratch) < 0 || asprintf(&state, "%s/state", scratch) < 0) {
                (void) nftw(scratch, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
                return EXIT_FAILED;
        }
        arg_oneshot_database = database;
        arg_oneshot_migrations = dir;
        arg_oneshot_state_dir = state;
        r = call_daemon(METHOD_PLAN, json_pack("{s:s,s:s}", "direction", "up", "dialect",
                                               a.postgres ? "postgresql" : "sqlite"),
                        render_lint, &result);
        (void) nftw(scratch, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
        if (r != EXIT_OK)
                return r;
        return json_get_bool(result, "lint_errors", false) ? EXIT_LINT : EXIT_OK;
}
