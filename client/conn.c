/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "config.h"
#include "conn.h"

#define CONN_BUF_INITIAL (PROTOCOL_LINE_MAX + 4096)
#define CONN_REQUEST_ID 1

const char *conn_socket_path(const char *arg) {
        const char *e;

        if (arg)
                return arg;
        e = getenv("MIGRATED_SOCKET");
        if (e && *e)
                return e;
        return DEFAULT_SOCKET;
}

int conn_open(const char *path, conn **ret) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int fd = -1;
        size_t len = strlen(path);

        if (len == 0)
                return -EINVAL;
        if (len >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        memcpy(sa.sun_path, path, len);

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return negative_errno();
        while (connect(fd, (struct sockaddr *) &sa, (socklen_t) (offsetof(struct sockaddr_un, sun_path) + len + 1)) < 0)
                if (errno != EINTR)
                        return negative_errno();
        if (conn_from_fd(fd, ret) < 0)
                return -ENOMEM;
        fd = -1; /* the connection's now */
        return 0;
}

int conn_from_fd(int fd, conn **ret) {
        conn *c;

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->buf = malloc(CONN_BUF_INITIAL);
        if (!c->buf) {
                free(c);
                return -ENOMEM;
        }
        c->allocated = CONN_BUF_INITIAL;
        c->fd = fd;
        *ret = c;
        return 0;
}

conn *conn_free(conn *c) {
        if (!c)
                return NULL;
        closep(&c->fd);
        free(c->buf);
        free(c);
        return NULL;
}

/* Writes the whole line; MSG_NOSIGNAL so that a daemon going away is an error, not SIGPIPE. */
static int conn_send(conn *c, const char *line, size_t size) {
        while (size > 0) {
                ssize_t n = send(c->fd, line, size, MSG_NOSIGNAL);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                line += n;
                size -= (size_t) n;
        }
        return 0;
}

/* Makes room for more input: drops consumed bytes, then grows up to one maximal line. */
static int conn_make_room(conn *c) {
        char *b;
        size_t n;

        if (c->start > 0) {
                memmove(c->buf, c->buf + c->start, c->end - c->start);
                c->end -= c->start;
                c->start = 0;
        }
        if (c->end < c->allocated)
                return 0;
        if (c->allocated >= CONN_LINE_MAX + 1)
                return -EMSGSIZE;
        n = c->allocated * 2;
        if (n > CONN_LINE_MAX + 1)
                n = CONN_LINE_MAX + 1;
        b = realloc(c->buf, n);
        if (!b)
                return -ENOMEM;
        c->buf = b;
        c->allocated = n;
        return 0;
}

/* Returns the next line, NUL-terminated in place (valid until the next call), without its
 * newline. Returns 0, CONN_EOF, or -errno (-EMSGSIZE for a line longer than CONN_LINE_MAX). */
static int conn_read_line(conn *c, char **ret_line, size_t *ret_size) {
        size_t scanned = 0;

        for (;;) {
                char *nl = memchr(c->buf + c->start + scanned, '\n', c->end - c->start - scanned);
                if (nl) {
                        *nl = '\0';
                        *ret_line = c->buf + c->start;
                        *ret_size = (size_t) (nl - (c->buf + c->start));
                        c->start = (size_t) (nl - c->buf) + 1;
                        return 0;
                }
                scanned = c->end - c->start;

                int r = conn_make_room(c);
                if (r < 0)
                        return r;
                ssize_t n = read(c->fd, c->buf + c->end, c->allocated - c->end);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (n == 0)
                        return CONN_EOF;
                c->end += (size_t) n;
        }
}

static int conn_call_once(conn *c, const char *method, json_t *params, conn_event_fn on_event, void *userdata,
                          protocol_reply_kind *ret_kind, json_t **ret_root, json_t **ret_body);

/* Version 2 spells the version params as strings: "to": 5 is "to": "5". */
static int params_to_v2(json_t *params) {
        static const char *const keys[] = { "to", "version" };
        char buf[24];

        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                json_t *v = json_object_get(params, keys[i]);
                if (!json_is_integer(v))
                        continue;
                snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
                if (json_object_set_new(params, keys[i], json_integer_value(v) == 0 ? json_null() : json_string(buf)) < 0)
                        return -ENOMEM;
        }
        return 0;
}

/* A daemon whose versions are not integers (Flyway's) refuses version 1 before doing anything,
 * naming the version it needs: then the same request goes again in that version. */
static bool wants_newer_protocol(conn *c, protocol_reply_kind kind, json_t *body) {
        json_t *v = json_object_get(body, "protocol_required");

        return kind == PROTOCOL_REPLY_ERROR && c->protocol < 2 && json_is_integer(v) && json_integer_value(v) == 2;
}

int conn_call(conn *c, const char *method, json_t *params, conn_event_fn on_event, void *userdata,
              protocol_reply_kind *ret_kind, json_t **ret_root, json_t **ret_body) {
        json_auto_t *kept = NULL;
        int r;

        if (!params)
                params = json_object();
        kept = json_deep_copy(params);
        if (!kept) {
                json_decref(params);
                return -ENOMEM;
        }
        r = conn_call_once(c, method, params, on_event, userdata, ret_kind, ret_root, ret_body);
        if (r != 0 || !wants_newer_protocol(c, *ret_kind, *ret_body))
                return r;
        json_decref(*ret_root);
        c->protocol = 2;
        if (params_to_v2(kept) < 0)
                return -ENOMEM;
        return conn_call_once(c, method, json_incref(kept), on_event, userdata, ret_kind, ret_root, ret_body);
}

/* One request per connection, so the first result or error line (also one with id null, for a
 * request the daemon could not read) is ours and ends the call; events go to on_event as they
 * come. */
static int conn_call_once(conn *c, const char *method, json_t *params, conn_event_fn on_event, void *userdata,
                          protocol_reply_kind *ret_kind, json_t **ret_root, json_t **ret_body) {
        _cleanup_free_ char *request = NULL;
        json_t *id;
        int r;

        if (c->protocol >= 2 && params_to_v2(params) < 0) {
                json_decref(params);
                return -ENOMEM;
        }
        id = json_integer(CONN_REQUEST_ID);
        request = protocol_encode_request_version(id, method, params, c->protocol ?: 1);
        json_decref(id);
        if (!request)
                return -ENOMEM;
        r = conn_send(c, request, strlen(request));
        if (r < 0)
                return r;

        for (;;) {
                protocol_reply_kind kind;
                json_t *root, *body;
                char *line;
                size_t size;

                r = conn_read_line(c, &line, &size);
                if (r != 0)
                        return r;
                if (size == 0)
                        continue;
                if (protocol_decode_reply(line, size, &kind, &root, &body) < 0)
                        return CONN_BAD_REPLY;
                if (kind != PROTOCOL_REPLY_EVENT) {
                        *ret_kind = kind;
                        *ret_root = root;
                        *ret_body = body;
                        return 0;
                }
                r = on_event ? on_event(body, userdata) : 0;
                json_decref(root);
                if (r < 0)
                        return r;
        }
}
