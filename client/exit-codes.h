/* SPDX-License-Identifier: MIT */
#pragma once

/* migratectl's exit codes, the contract scripts rely on (README "Exit codes of migratectl").
 * Defined here and nowhere else. */

#include <stddef.h>
#include <string.h>

enum {
        EXIT_OK = 0,          /* success */
        EXIT_FAILED = 1,      /* the operation failed; the message says why */
        EXIT_USAGE = 2,       /* usage error */
        EXIT_UNREACHABLE = 3, /* the daemon is unreachable */
        EXIT_PENDING = 4,     /* status --check: migrations are pending */
        EXIT_CHECKSUM = 5,    /* an applied migration's file was edited */
        EXIT_BUSY = 6,        /* the database is busy or still open: another writer or holder */
        EXIT_TIMEOUT = 7,     /* wait: the schema did not become current in time */
        EXIT_UNITS_FAILED = 8, /* a dependent unit did not stop, or did not start again */
        EXIT_DRIFT = 9,        /* diff, status --check --drift: the live schema differs from the migrations' */
        EXIT_LINT = 10,        /* lint: an error-severity finding not accepted in its file */
};

#define EXIT_CODE_MAX EXIT_LINT

/* The meaning of each exit code, for --help; NULL past the last one. */
static inline const char *exit_code_meaning(int code) {
        switch (code) {
        case EXIT_OK:
                return "success";
        case EXIT_FAILED:
                return "the operation failed (the message says why)";
        case EXIT_USAGE:
                return "usage error";
        case EXIT_UNREACHABLE:
                return "the daemon is unreachable";
        case EXIT_PENDING:
                return "status --check: migrations are pending";
        case EXIT_CHECKSUM:
                return "checksum mismatch: an applied migration's file was edited (status --check, verify, up)";
        case EXIT_BUSY:
                return "the database is busy: another writer held it past the busy timeout, or a process still "
                       "had it open after the units stopped";
        case EXIT_TIMEOUT:
                return "wait: the schema did not become current before the timeout";
        case EXIT_UNITS_FAILED:
                return "units_failed: a dependent unit did not stop, or did not start again (the message names it "
                       "and the database outcome)";
        case EXIT_DRIFT:
                return "diff (and status --check --drift): the live schema differs from the one the applied "
                       "migrations produce";
        case EXIT_LINT:
                return "lint: a migration has an error-severity finding (data loss) not accepted in its file";
        default:
                return NULL;
        }
}

/* Maps a protocol error code ("busy", "checksum_mismatch", ...) to the exit code that tells a
 * script what to do next; every code without a dedicated exit code is a plain failure. */
static inline int exit_code_from_error(const char *code) {
        if (!code)
                return EXIT_FAILED;
        if (strcmp(code, "invalid_params") == 0) /* the daemon found a usage error the client let through */
                return EXIT_USAGE;
        if (strcmp(code, "checksum_mismatch") == 0)
                return EXIT_CHECKSUM;
        if (strcmp(code, "busy") == 0 || strcmp(code, "database_in_use") == 0)
                return EXIT_BUSY;
        if (strcmp(code, "timeout") == 0)
                return EXIT_TIMEOUT;
        if (strcmp(code, "units_failed") == 0)
                return EXIT_UNITS_FAILED;
        return EXIT_FAILED;
}
