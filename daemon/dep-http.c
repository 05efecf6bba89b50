/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "dep-http.h"
#include "dep-run.h"
#include "macro.h"

#define HTTP_RESPONSE_MAX (16u * 1024 * 1024)

char *dep_http_escape(const char *s) {
        static const char hex[] = "0123456789ABCDEF";
        char *out = malloc(strlen(s) * 3 + 1), *p = out;

        for (; out && *s; s++) {
                unsigned char ch = (unsigned char) *s;
                if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                    strchr("-_.~", ch))
                        *p++ = (char) ch;
                else {
                        *p++ = '%';
                        *p++ = hex[ch >> 4];
                        *p++ = hex[ch & 15];
                }
        }
        if (out)
                *p = '\0';
        return out;
}

/* Waits until fd is ready for events, at most until deadline. */
static int wait_fd(int fd, short events, uint64_t deadline) {
        for (;;) {
                uint64_t now = dep_now_usec();
                struct pollfd p = { .fd = fd, .events = events };
                int k;
                if (now >= deadline)
                        return -ETIME;
                k = poll(&p, 1, (int) ((deadline - now + 999) / 1000));
                if (k > 0)
                        return 0;
                if (k < 0 && errno != EINTR)
                        return -errno;
        }
}

int dep_http_request(const char *socket_path, const char *method, const char *path, uint64_t timeout_usec,
                     int *ret_status, char **ret_body) {
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        uint64_t deadline = dep_now_usec() + timeout_usec;
        _cleanup_free_ char *req = NULL, *buf = NULL;
        size_t len = 0, cap = 0, sent = 0;
        const char *body;
        int n, r, status;

        if (fd < 0)
                return -errno;
        if (strlen(socket_path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, socket_path);
        if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0 && errno != EINPROGRESS)
                return -errno;
        n = asprintf(&req, "%s %s HTTP/1.0\r\nHost: docker\r\nUser-Agent: migrated\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
                     method, path);
        if (n < 0)
                return -ENOMEM;
        while (sent < (size_t) n) {
                ssize_t k;
                r = wait_fd(fd, POLLOUT, deadline);
                if (r < 0)
                        return r;
                k = send(fd, req + sent, (size_t) n - sent, MSG_NOSIGNAL);
                if (k < 0 && errno != EAGAIN && errno != EINTR)
                        return -errno;
                if (k > 0)
                        sent += (size_t) k;
        }
        for (;;) {
                ssize_t k;
                if (len + 4096 + 1 > cap) {
                        char *m;
                        if (cap >= HTTP_RESPONSE_MAX)
                                return -E2BIG;
                        m = realloc(buf, cap = cap ? cap * 2 : 16384);
                        if (!m)
                                return -ENOMEM;
                        buf = m;
                }
                r = wait_fd(fd, POLLIN, deadline);
                if (r < 0)
                        return r;
                k = recv(fd, buf + len, cap - len - 1, 0);
                if (k < 0 && (errno == EAGAIN || errno == EINTR))
                        continue;
                if (k < 0)
                        return -errno;
                if (k == 0)
                        break;
                len += (size_t) k;
        }
        if (!buf)
                return -EBADMSG;
        buf[len] = '\0';
        if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
                return -EBADMSG;
        body = strstr(buf, "\r\n\r\n");
        if (!body)
                return -EBADMSG;
        *ret_body = strdup(body + 4);
        if (!*ret_body)
                return -ENOMEM;
        *ret_status = status;
        return 0;
}
