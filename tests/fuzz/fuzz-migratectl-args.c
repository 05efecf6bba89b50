/* SPDX-License-Identifier: MIT */
/* libFuzzer target: migratectl's command line. client/migratectl.c is compiled into this target
 * with -Dmain=migratectl_main and called with an argv made of the input's NUL-separated words
 * (at most MAX_ARGS), after "migratectl --socket <a path that cannot exist>":
 *   - no daemon is ever reached: connecting fails at once with ENOTDIR, which even `wait` does not
 *     retry, so every command that asks the daemon ends with exit 3;
 *   - stdout goes to /dev/null (once, at start), stderr while migratectl runs (libFuzzer's own
 *     output and sanitizer reports stay visible);
 *   - inputs are skipped when they could have side effects or be slow: any word "new" (it writes
 *     files), `wait` together with an option that could replace our socket (`wait` retries
 *     connecting to a missing socket until its timeout), and `lock-check` with --database (it
 *     scans every process in /proc, without the daemon);
 *   - words starting with "--i" (--instance and its abbreviations) are skipped as well: with our
 *     --socket, --instance is always refused as exclusive, which would only mask the rest.
 * Other static state of migratectl (client/args.c): arg_socket is set by every call (we always
 * pass --socket); arg_json and the colour mode stay as the last call that set them left them.
 * Confirmations never prompt: stdin is not a terminal here. getopt's state is global: optind is reset to 0
 * (glibc: start over) before each call; the verbs do it themselves, the global options do not. */
#include <fcntl.h>
#include <getopt.h>
#include <sanitizer/common_interface_defs.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);
int migratectl_main(int argc, char **argv);

#define MAX_ARGS 16
/* below /dev/null, so connect() fails with ENOTDIR: not a reason to retry */
#define NO_SOCKET "/dev/null/migrated-fuzz.sock"

static int null_fd = -1, stderr_fd = -1;

/* stdout goes to /dev/null once and for all. stderr only while migratectl runs: libFuzzer prints
 * its statistics there; sanitizer reports go to a copy of the real stderr in any case. */
int LLVMFuzzerInitialize(int *argc, char ***argv) {
        null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
        stderr_fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
        if (null_fd < 0 || stderr_fd < 0 || dup2(null_fd, STDOUT_FILENO) < 0)
                abort();
        __sanitizer_set_report_fd((void *) (intptr_t) stderr_fd);
        setenv("MIGRATED_SOCKET", NO_SOCKET, 1);
        unsetenv("MIGRATED_MIGRATIONS");
        return 0;
}

static bool skip(char **words, size_t n) {
        bool has_wait = false, has_socket = false, has_lock_check = false, has_database = false;

        for (size_t i = 0; i < n; i++) {
                if (strcmp(words[i], "new") == 0)
                        return true;
                if (strncmp(words[i], "--i", 3) == 0)
                        return true;
                if (strcmp(words[i], "wait") == 0)
                        has_wait = true;
                if (strncmp(words[i], "--s", 3) == 0)
                        has_socket = true;
                if (strcmp(words[i], "lock-check") == 0)
                        has_lock_check = true;
                if (strncmp(words[i], "--d", 3) == 0)
                        has_database = true;
        }
        return (has_wait && has_socket) || (has_lock_check && has_database);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char *argv[3 + MAX_ARGS + 1] = { "migratectl", "--socket", NO_SOCKET };
        char **words = argv + 3;
        const uint8_t *p = data, *end = data + size;
        size_t n = 0;
        int r = 0;

        while (p < end && n < MAX_ARGS) {
                const uint8_t *nul = memchr(p, '\0', (size_t) (end - p));
                size_t len = (size_t) ((nul ? nul : end) - p);
                /* each word in its own allocation of exactly its size, so overreads are caught */
                words[n] = malloc(len + 1);
                if (!words[n])
                        abort();
                memcpy(words[n], p, len);
                words[n][len] = '\0';
                n++;
                p = nul ? nul + 1 : end;
        }

        if (skip(words, n))
                r = -1; /* not kept in the corpus */
        else {
                if (dup2(null_fd, STDERR_FILENO) < 0)
                        abort();
                optind = 0;
                r = migratectl_main((int) (3 + n), argv);
                fflush(stderr);
                if (dup2(stderr_fd, STDERR_FILENO) < 0)
                        abort();
                if (r < 0 || r > 7) {
                        fprintf(stderr, "fuzz-migratectl-args: exit code %d outside the documented 0..7\n", r);
                        abort();
                }
                r = 0;
        }

        for (size_t i = 0; i < n; i++)
                free(words[i]);
        return r;
}
