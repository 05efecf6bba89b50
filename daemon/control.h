/* SPDX-License-Identifier: MIT */
#pragma once

/* The only code that touches client sockets: listening, accepting, peer credentials, line
 * framing, buffered output. Connections are named by a 64-bit id, never by pointer, so a reply
 * for a client that has gone away is simply dropped. */

#include <event2/event.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct control control;

#define PEER_GROUPS_MAX 64

typedef struct peer {
        uint64_t conn_id;
        uid_t uid;
        gid_t gid;
        pid_t pid;
        gid_t groups[PEER_GROUPS_MAX]; /* supplementary groups (SO_PEERGROUPS) */
        unsigned n_groups;
} peer;

typedef struct control_limits {
        unsigned max_connections;
        unsigned max_connections_per_uid;
        unsigned idle_timeout_s;    /* without a request in progress; 0: none */
        unsigned request_timeout_s; /* for an unfinished request line, from its first byte; 0: none */
        size_t max_output;          /* bytes queued for a client that does not read */
        unsigned max_outstanding;   /* requests in progress per connection before reading pauses */
} control_limits;

/* Called for each complete request line (without its '\n'). */
typedef void (*control_request_fn)(void *userdata, const peer *p, const char *line, size_t size);

/* Creates, binds and listens on a Unix socket at path (mode 0660, group group unless it is
 * (gid_t) -1), replacing a stale socket file but never a live one. Returns the fd or -errno. */
int control_listen_path(const char *path, gid_t group);

/* listen_fd < 0: no listener, only the connections given to control_adopt(). */
int control_new(struct event_base *base, int listen_fd, const control_limits *limits,
                control_request_fn on_request, void *userdata, control **ret);

/* Called once the last connection is gone. */
typedef void (*control_empty_fn)(void *userdata);

/* The one-shot mode: fd, already connected (one end of a socketpair), becomes a client
 * connection; on_empty runs when it (and any other) has closed. Returns 0 or -errno. */
int control_adopt(control *c, int fd, control_empty_fn on_empty, void *userdata);
control *control_free(control *c);

/* Queues line (which must end in '\n') for the connection. Takes ownership of line, also on
 * failure. final marks the one reply that ends a request: a client that has shut down its
 * sending side is closed once all its requests have their final reply. Returns -ENOENT when the
 * connection is gone. */
int control_send(control *c, uint64_t conn_id, char *line, bool final);

/* The protocol version the connection's latest request asked for (PROTOCOL_VERSION_MIN until
 * one did; 0 when the connection is gone): its replies are in that version. */
void control_set_protocol(control *c, uint64_t conn_id, int protocol);
int control_protocol(control *c, uint64_t conn_id);

/* Stops accepting new connections (shutdown). */
void control_stop_accepting(control *c);

/* Bytes queued on all connections and not yet written. */
size_t control_pending_output(control *c);

size_t control_connection_count(control *c);
