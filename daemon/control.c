/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "control.h"
#include "log.h"
#include "macro.h"
#include "protocol.h"

typedef struct connection {
        control *owner;
        uint64_t id;
        struct bufferevent *bev;
        struct event *line_timer; /* the deadline of an unfinished request line */
        peer peer;
        unsigned outstanding; /* requests without their final reply yet */
        int protocol;         /* of its latest request; 0: none yet (version 1) */
        bool paused;          /* reading paused: too many requests in progress */
        bool read_eof;        /* the client shut down its sending side */
        bool closing; /* no more input; freed once the output is flushed */
        bool dead;    /* freed from a deferred callback, never from its own */
        struct connection *prev, *next;
} connection;

struct control {
        struct event_base *base;
        control_limits limits;
        struct evconnlistener *listener;
        control_request_fn on_request;
        void *userdata;
        connection *conns;
        size_t n_conns;
        uint64_t next_id;
        struct event *reaper; /* frees dead connections outside their callbacks */
        struct event *resume; /* re-enables accepting after running out of file descriptors */
        int listen_fd;
        int reserve_fd;       /* given up to answer one client when out of descriptors */
        bool warned_emfile;
        control_empty_fn on_empty; /* the one-shot mode: its only client went away */
        void *empty_userdata;
};

int control_listen_path(const char *path, gid_t group) {
        _cleanup_close_ int fd = -1;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        struct stat st;

        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        if (lstat(path, &st) == 0) {
                _cleanup_close_ int probe = -1;
                if (!S_ISSOCK(st.st_mode))
                        return -EEXIST;
                /* A socket file nobody listens on is left over from a crash; a live one is not ours. */
                probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (probe >= 0 && connect(probe, (struct sockaddr *) &sa, sizeof(sa)) == 0)
                        return -EADDRINUSE;
                (void) unlink(path);
        }
        if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                return -errno;
        /* Anyone who can connect may read; changes are checked per request against the peer. */
        if (chmod(path, 0660) < 0 || (group != (gid_t) -1 && chown(path, (uid_t) -1, group) < 0) ||
            listen(fd, SOMAXCONN) < 0) {
                int r = -errno;
                (void) unlink(path);
                return r;
        }
        return TAKE_FD(fd);
}

static connection *find(control *c, uint64_t id) {
        for (connection *k = c->conns; k; k = k->next)
                if (k->id == id && !k->dead)
                        return k;
        return NULL;
}

static void reap(evutil_socket_t fd, short what, void *userdata) {
        control *c = userdata;
        connection *k = c->conns, *next;

        for (; k; k = next) {
                next = k->next;
                if (!k->dead)
                        continue;
                if (k->prev)
                        k->prev->next = k->next;
                else
                        c->conns = k->next;
                if (k->next)
                        k->next->prev = k->prev;
                bufferevent_free(k->bev);
                if (k->line_timer)
                        event_free(k->line_timer);
                c->n_conns--;
                free(k);
                if (c->n_conns == 0 && c->on_empty)
                        c->on_empty(c->empty_userdata);
                /* a descriptor is free again: accept at once rather than after the pause */
                if (c->warned_emfile && c->listener) {
                        c->warned_emfile = false;
                        evconnlistener_enable(c->listener);
                }
        }
}

static void kill_connection(connection *k) {
        if (k->dead)
                return;
        k->dead = true;
        bufferevent_disable(k->bev, EV_READ | EV_WRITE);
        if (k->line_timer)
                evtimer_del(k->line_timer);
        event_active(k->owner->reaper, EV_TIMEOUT, 0);
}

/* The idle timeout restarts with every byte; a client that trickles a request a byte at a time
 * must still finish its line within request_timeout, counted from the line's first byte. */
static void on_line_timeout(evutil_socket_t fd, short what, void *userdata) {
        connection *k = userdata;
        struct evbuffer *in = bufferevent_get_input(k->bev);

        if (k->closing || k->dead)
                return;
        control_send(k->owner, k->id,
                     protocol_encode_error(NULL, PROTOCOL_ERROR_REQUEST_TIMEOUT,
                                           "the request line was not finished in time; closing", NULL),
                     false);
        k->closing = true;
        bufferevent_disable(k->bev, EV_READ);
        evbuffer_drain(in, evbuffer_get_length(in));
}

/* Arms the deadline when an unfinished line is buffered (restarted when a line was completed),
 * clears it when nothing is. */
static void update_line_deadline(connection *k, bool line_done) {
        struct timeval tv = { (time_t) k->owner->limits.request_timeout_s, 0 };
        bool unfinished;

        if (!k->line_timer)
                return;
        unfinished = !k->closing && !k->dead && !k->paused && evbuffer_get_length(bufferevent_get_input(k->bev)) > 0;
        if (line_done || !unfinished)
                evtimer_del(k->line_timer);
        if (unfinished && !evtimer_pending(k->line_timer, NULL))
                evtimer_add(k->line_timer, &tv);
}

/* Framing: every complete line goes to the dispatcher; an over-long line is answered and the
 * connection closed, since there is no way to find where the next request starts. */
static void on_read(struct bufferevent *bev, void *userdata) {
        connection *k = userdata;
        struct evbuffer *in = bufferevent_get_input(bev);
        bool line_done = false;

        while (!k->closing && !k->dead) {
                struct evbuffer_ptr eol;

                /* A client pipelining without reading its replies waits: no unbounded work. */
                if (k->owner->limits.max_outstanding && k->outstanding >= k->owner->limits.max_outstanding) {
                        k->paused = true;
                        bufferevent_disable(bev, EV_READ);
                        break;
                }
                eol = evbuffer_search_eol(in, NULL, NULL, EVBUFFER_EOL_LF);
                size_t len;
                char *line;

                if (eol.pos < 0) {
                        if (evbuffer_get_length(in) > PROTOCOL_LINE_MAX) {
                                char *msg = protocol_encode_error(NULL, PROTOCOL_ERROR_LINE_TOO_LONG,
                                                                  "request line longer than 65536 bytes; closing",
                                                                  NULL);
                                control_send(k->owner, k->id, msg, false);
                                k->closing = true;
                                evbuffer_drain(in, evbuffer_get_length(in));
                        }
                        break;
                }
                len = (size_t) eol.pos;
                if (len > PROTOCOL_LINE_MAX) {
                        char *msg = protocol_encode_error(NULL, PROTOCOL_ERROR_LINE_TOO_LONG,
                                                          "request line longer than 65536 bytes; closing", NULL);
                        control_send(k->owner, k->id, msg, false);
                        k->closing = true;
                        evbuffer_drain(in, evbuffer_get_length(in));
                        break;
                }
                line = malloc(len + 1);
                if (!line) {
                        kill_connection(k);
                        break;
                }
                evbuffer_remove(in, line, len + 1);
                line_done = true;
                line[len] = '\0';
                if (len > 0 && line[len - 1] == '\r')
                        line[--len] = '\0';
                if (len > 0) {
                        k->outstanding++;
                        k->owner->on_request(k->owner->userdata, &k->peer, line, len);
                }
                free(line);
        }
        update_line_deadline(k, line_done);
        if (k->closing && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
                kill_connection(k);
}

static void on_write(struct bufferevent *bev, void *userdata) {
        connection *k = userdata;

        if (k->closing)
                kill_connection(k);
}

/* A client may shut down its sending side right after its request (echo ... | socat): it still
 * gets its replies. An error, or EOF with nothing outstanding, ends the connection; jobs it asked
 * for go on and their replies are dropped. */
static void on_event(struct bufferevent *bev, short what, void *userdata) {
        connection *k = userdata;

        if (what & BEV_EVENT_TIMEOUT) {
                /* Idle only counts while the client waits for nothing: a job may take long. */
                if (k->outstanding > 0 || k->paused) {
                        if (!k->paused)
                                bufferevent_enable(bev, EV_READ);
                        return;
                }
                control_send(k->owner, k->id,
                             protocol_encode_error(NULL, PROTOCOL_ERROR_IDLE_TIMEOUT,
                                                   "no request for too long; closing", NULL), false);
                k->closing = true;
                return;
        }
        if (what & BEV_EVENT_ERROR)
                kill_connection(k);
        else if (what & BEV_EVENT_EOF) {
                struct evbuffer *in = bufferevent_get_input(bev);
                k->read_eof = true;
                on_read(bev, k);
                /* a last request without its newline still counts: printf '{...}' | socat */
                if (!k->closing && !k->dead && evbuffer_get_length(in) > 0) {
                        size_t len = evbuffer_get_length(in);
                        char *line = malloc(len + 1);
                        if (line) {
                                evbuffer_remove(in, line, len);
                                line[len] = '\0';
                                k->outstanding++;
                                k->owner->on_request(k->owner->userdata, &k->peer, line, len);
                                free(line);
                        }
                }
                /* nothing in progress: close once what was already answered is written */
                if (k->outstanding == 0 && !k->closing) {
                        if (evbuffer_get_length(bufferevent_get_output(bev)) > 0)
                                k->closing = true; /* on_write frees it after the flush */
                        else
                                kill_connection(k);
                }
        }
}

/* SO_PEERGROUPS: the peer's supplementary groups, for the admin group check. */
static void read_peer_groups(int fd, peer *p) {
        gid_t groups[PEER_GROUPS_MAX];
        socklen_t len = sizeof(groups);

        if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0)
                return; /* ERANGE for more than PEER_GROUPS_MAX: only the primary group counts */
        p->n_groups = (unsigned) (len / sizeof(gid_t));
        memcpy(p->groups, groups, p->n_groups * sizeof(gid_t));
}

/* Over a connection limit: one error line, written directly (the socket is fresh and
 * non-blocking, the line small), then closed. Never a hang. */
static bool refuse_over_limit(control *c, int fd, uid_t uid) {
        unsigned same_uid = 0;
        char *line;

        for (connection *k = c->conns; k; k = k->next)
                if (!k->dead && k->peer.uid == uid)
                        same_uid++;
        if ((!c->limits.max_connections || c->n_conns < c->limits.max_connections) &&
            (!c->limits.max_connections_per_uid || same_uid < c->limits.max_connections_per_uid))
                return false;
        line = protocol_encode_error(NULL, PROTOCOL_ERROR_TOO_MANY_CONNECTIONS,
                                     same_uid >= c->limits.max_connections_per_uid
                                             ? "too many connections from this user; try again later"
                                             : "too many connections; try again later",
                                     NULL);
        if (line)
                (void) send(fd, line, strlen(line), MSG_DONTWAIT | MSG_NOSIGNAL);
        free(line);
        close(fd);
        log_warning("Refused a connection from uid %u: connection limit reached", (unsigned) uid);
        return true;
}

/* Takes a connected socket as a client connection (its peer's credentials decide what it may do). */
static int add_connection(control *c, int fd) {
        struct ucred cred = {};
        socklen_t len = sizeof(cred);
        connection *k;

        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
                int r = log_warning_errno(errno, "Failed to read peer credentials, refusing connection: %m");
                close(fd);
                return r;
        }
        if (refuse_over_limit(c, fd, cred.uid))
                return -EUSERS;
        k = calloc(1, sizeof(*k));
        if (k)
                k->bev = bufferevent_socket_new(c->base, fd, BEV_OPT_CLOSE_ON_FREE);
        if (!k || !k->bev) {
                free(k);
                close(fd);
                return -ENOMEM;
        }
        k->owner = c;
        k->id = ++c->next_id;
        k->peer = (peer) { .conn_id = k->id, .uid = cred.uid, .gid = cred.gid, .pid = cred.pid };
        read_peer_groups(fd, &k->peer);
        bufferevent_setcb(k->bev, on_read, on_write, on_event, k);
        if (c->limits.request_timeout_s > 0 && !(k->line_timer = evtimer_new(c->base, on_line_timeout, k))) {
                bufferevent_free(k->bev);
                free(k);
                return -ENOMEM;
        }
        if (c->limits.idle_timeout_s > 0) {
                struct timeval tv = { (time_t) c->limits.idle_timeout_s, 0 };
                bufferevent_set_timeouts(k->bev, &tv, NULL);
        }
        bufferevent_enable(k->bev, EV_READ | EV_WRITE);
        k->next = c->conns;
        if (c->conns)
                c->conns->prev = k;
        c->conns = k;
        c->n_conns++;
        return 0;
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int socklen,
                      void *userdata) {
        (void) add_connection(userdata, fd);
}

int control_adopt(control *c, int fd, control_empty_fn on_empty, void *userdata) {
        evutil_make_socket_nonblocking(fd);
        c->on_empty = on_empty;
        c->empty_userdata = userdata;
        return add_connection(c, fd);
}

static void on_resume(evutil_socket_t fd, short what, void *userdata) {
        control *c = userdata;

        if (c->listener)
                evconnlistener_enable(c->listener);
}

/* Out of file descriptors (EMFILE/ENFILE): a listener left enabled would spin on accept(). Use
 * the reserve descriptor to take one waiting client, tell it why, close it, and pause accepting
 * briefly; connections that close meanwhile free descriptors for the next ones. */
static void on_accept_error(struct evconnlistener *l, void *userdata) {
        control *c = userdata;
        int err = EVUTIL_SOCKET_ERROR();
        struct timeval pause = { 0, 50 * 1000 };

        if (err != EMFILE && err != ENFILE) {
                log_warning_errno(err, "Failed to accept a connection: %m");
                return;
        }
        if (!c->warned_emfile)
                log_warning("Out of file descriptors with %zu connections: refusing new ones until some close",
                            c->n_conns);
        c->warned_emfile = true;
        if (c->reserve_fd >= 0) {
                int fd;
                close(c->reserve_fd);
                fd = accept4(c->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
                if (fd >= 0) {
                        char *line = protocol_encode_error(NULL, PROTOCOL_ERROR_TOO_MANY_CONNECTIONS,
                                                           "the daemon is out of file descriptors; try again later",
                                                           NULL);
                        if (line)
                                (void) send(fd, line, strlen(line), MSG_DONTWAIT | MSG_NOSIGNAL);
                        free(line);
                        close(fd);
                }
                c->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        }
        evconnlistener_disable(l);
        evtimer_add(c->resume, &pause);
}

int control_new(struct event_base *base, int listen_fd, const control_limits *limits,
                control_request_fn on_request, void *userdata, control **ret) {
        control *c = calloc(1, sizeof(*c));

        if (!c)
                return -ENOMEM;
        c->base = base;
        c->limits = *limits;
        c->on_request = on_request;
        c->userdata = userdata;
        c->reaper = event_new(base, -1, 0, reap, c);
        c->resume = evtimer_new(base, on_resume, c);
        c->listen_fd = listen_fd;
        c->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (listen_fd >= 0) {
                evutil_make_socket_nonblocking(listen_fd);
                c->listener = evconnlistener_new(base, on_accept, c, LEV_OPT_CLOSE_ON_FREE, -1, listen_fd);
        }
        if (!c->reaper || !c->resume || (listen_fd >= 0 && !c->listener)) {
                control_free(c);
                return -ENOMEM;
        }
        if (c->listener)
                evconnlistener_set_error_cb(c->listener, on_accept_error);
        *ret = c;
        return 0;
}

control *control_free(control *c) {
        if (!c)
                return NULL;
        for (connection *k = c->conns; k; k = k->next)
                k->dead = true;
        reap(-1, 0, c);
        if (c->listener)
                evconnlistener_free(c->listener);
        if (c->reaper)
                event_free(c->reaper);
        if (c->resume)
                event_free(c->resume);
        if (c->reserve_fd > 0)
                close(c->reserve_fd);
        free(c);
        return NULL;
}

void control_set_protocol(control *c, uint64_t conn_id, int protocol) {
        connection *k = find(c, conn_id);

        if (k)
                k->protocol = protocol;
}

int control_protocol(control *c, uint64_t conn_id) {
        connection *k = find(c, conn_id);

        return !k ? 0 : k->protocol ?: PROTOCOL_VERSION_MIN;
}

int control_send(control *c, uint64_t conn_id, char *line, bool final) {
        connection *k = find(c, conn_id);
        int r = 0;

        if (!k) {
                free(line);
                return -ENOENT;
        }
        if (final && k->outstanding > 0)
                k->outstanding--;
        if (!line)
                r = -ENOMEM;
        else if (c->limits.max_output &&
                 evbuffer_get_length(bufferevent_get_output(k->bev)) + strlen(line) > c->limits.max_output) {
                /* a client that stopped reading must not grow our memory without bound */
                log_warning("Dropping a connection of uid %u pid %d: it does not read its replies",
                            (unsigned) k->peer.uid, (int) k->peer.pid);
                kill_connection(k);
                r = -ENOBUFS;
        } else if (bufferevent_write(k->bev, line, strlen(line)) < 0)
                r = -ENOMEM;
        free(line);
        if (k->paused && k->outstanding < c->limits.max_outstanding && !k->dead) {
                k->paused = false;
                bufferevent_enable(k->bev, EV_READ);
                /* requests already buffered, from the loop rather than from inside this call */
                bufferevent_trigger(k->bev, EV_READ, BEV_OPT_DEFER_CALLBACKS);
        }
        if (final && k->read_eof && k->outstanding == 0)
                k->closing = true; /* on_write frees it once the reply is out */
        return r;
}

void control_stop_accepting(control *c) {
        if (c->listener)
                evconnlistener_disable(c->listener);
}

size_t control_pending_output(control *c) {
        size_t n = 0;

        for (connection *k = c->conns; k; k = k->next)
                if (!k->dead)
                        n += evbuffer_get_length(bufferevent_get_output(k->bev));
        return n;
}

size_t control_connection_count(control *c) {
        return c->n_conns;
}
