/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"
#include "oneshot.h"
#include "protocol.h"

#define ONESHOT_RETRY_MS 100
#define CMDLINE_MAX 8192

/* The holder's command line as NUL-separated words; 0 bytes when it cannot be read. */
static size_t read_cmdline(pid_t pid, char *buf, size_t size) {
        _cleanup_close_ int fd = -1;
        char path[64];
        ssize_t n;

        snprintf(path, sizeof(path), "/proc/%d/cmdline", (int) pid);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return 0;
        n = read(fd, buf, size - 1);
        if (n <= 0)
                return 0;
        buf[n] = '\0';
        return (size_t) n;
}

/* Whether the holder runs with --one-shot, and the socket it was told to listen on (NULL: its
 * configuration's, or the default). */
static bool holder_describe(pid_t pid, char *buf, size_t size, const char **ret_socket) {
        size_t n = pid > 0 ? read_cmdline(pid, buf, size) : 0;
        bool one_shot = false;

        *ret_socket = NULL;
        for (const char *w = buf, *prev = NULL; w < buf + n; prev = w, w += strlen(w) + 1) {
                if (streq(w, "--one-shot"))
                        one_shot = true;
                else if (strneq(w, "--socket=", 9))
                        *ret_socket = w + 9;
                else if (prev && (streq(prev, "--socket") || streq(prev, "-s")))
                        *ret_socket = w;
        }
        return one_shot;
}

/* Waits ONESHOT_RETRY_MS, or less when the client hangs up (then there is nobody to serve). */
static int wait_or_client_gone(int client_fd) {
        struct pollfd p = { .fd = client_fd, .events = POLLRDHUP };

        if (poll(&p, 1, ONESHOT_RETRY_MS) < 0 && errno != EINTR)
                return -errno;
        if (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL))
                return -ECONNRESET;
        return 0;
}

/* The refusal is the reply to the client's request (id null: not read yet), so that migratectl
 * prints it, with --json too, as it prints the daemon's errors; logged only if it cannot be sent. */
static void refuse(const config *cfg, int client_fd, pid_t holder, const char *socket) {
        _cleanup_free_ char *message = NULL, *line = NULL;
        size_t size;

        if (asprintf(&message, "%s is served by a running migrated (pid %d, socket %s): ask it with migratectl "
                     "--socket %s, or stop it first", cfg->database, (int) holder, socket ?: "of its configuration",
                     socket ?: "PATH") < 0)
                message = NULL;
        line = protocol_encode_error(NULL, PROTOCOL_ERROR_BUSY, message ?: "a running migrated serves the database",
                                     json_pack("{s:i,s:s?}", "daemon_pid", (int) holder, "daemon_socket", socket));
        size = line ? strlen(line) : 0;
        if (line && send(client_fd, line, size, MSG_NOSIGNAL) == (ssize_t) size)
                return;
        log_error("%s", message ?: "a running migrated serves the database");
}

int oneshot_acquire(const config *cfg, const dblock_create *create, int client_fd, int *ret_fd,
                    db_file_identity *ret_identity, bool *ret_created) {
        pid_t holder = 0, announced = -1;
        char cmdline[CMDLINE_MAX];
        const char *socket;
        int r;

        for (;;) {
                r = dblock_acquire(cfg->database, create, ret_fd, ret_identity, ret_created, &holder);
                if (r != DBLOCK_HELD)
                        return r;
                /* A holder we cannot see runs in another pid namespace (a replica's container) or
                 * has just exited (the one-shot we waited for): wait for it as for a one-shot. */
                if (holder > 0 && !holder_describe(holder, cmdline, sizeof(cmdline), &socket)) {
                        refuse(cfg, client_fd, holder, socket);
                        return ONESHOT_REFUSED;
                }
                if (holder != announced) {
                        if (holder > 0)
                                log_notice("Waiting for the one-shot migrated (pid %d) that holds %s", (int) holder,
                                           cfg->database);
                        else if (announced < 0)
                                log_notice("Waiting for the migrated that holds %s (not visible from here: "
                                           "another container?)", cfg->database);
                        announced = holder;
                }
                r = wait_or_client_gone(client_fd);
                if (r < 0)
                        return r;
        }
}
