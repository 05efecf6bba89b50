/* SPDX-License-Identifier: MIT */
#pragma once

/* The client's side of the socket: a blocking connection that sends one request line and reads
 * the reply lines (events, then one result or error). The only file of migratectl doing socket
 * I/O. */

#include <jansson.h>
#include <stddef.h>

#include "macro.h"
#include "protocol.h"

/* Replies can be larger than the requests the daemon accepts (a status of a directory with
 * hundreds of migrations), so the client allows well beyond PROTOCOL_LINE_MAX. */
#define CONN_LINE_MAX (16 * PROTOCOL_LINE_MAX)

/* Expected outcomes, positive per the project's error convention. */
enum {
        CONN_EOF = 1,       /* the daemon closed the connection before the final line */
        CONN_BAD_REPLY = 2, /* a line that is not a reply of protocol v1 */
};

typedef struct conn {
        int fd;
        char *buf;
        size_t start, end, allocated; /* unread bytes are buf[start..end) */
        int protocol; /* 0 or 1: version 1 until the daemon asks for more, 2: versions as string keys */
} conn;

/* --socket, else $MIGRATED_SOCKET, else the compiled-in default. */
const char *conn_socket_path(const char *arg);

/* Connects to the daemon. Returns 0 or -errno. */
int conn_open(const char *path, conn **ret);
/* A connection over fd, already connected (the one-shot mode's socketpair). Takes fd only on
 * success. */
int conn_from_fd(int fd, conn **ret);
conn *conn_free(conn *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(conn *, conn_free);

/* Called for each event line of the reply; return < 0 to abort. */
typedef int (*conn_event_fn)(json_t *event, void *userdata);

/* Sends {"id":1,"method":method,"params":params} (params stolen, may be NULL) and reads the reply.
 * Returns 0 with *ret_kind (RESULT or ERROR), *ret_root owning the final line and *ret_body the
 * result or error object; CONN_EOF or CONN_BAD_REPLY; or -errno. */
int conn_call(conn *c, const char *method, json_t *params, conn_event_fn on_event, void *userdata,
              protocol_reply_kind *ret_kind, json_t **ret_root, json_t **ret_body);
