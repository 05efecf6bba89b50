/* SPDX-License-Identifier: MIT */
/* One request to the daemon, or to the one-shot child, start to end (call.h). */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "args.h"
#include "call.h"
#include "conn.h"
#include "exit-codes.h"
#include "hints.h"
#include "macro.h"
#include "oneshot.h"
#include "output.h"
#include "render.h"

/* Reports a failed exchange; the daemon was reached, so this is a failed operation. */
static int call_failed(const char *path, int r, size_t n_events) {
        if (n_events == 0 && (r == CONN_EOF || r == -ECONNRESET || r == -EPIPE))
                return hint_activation_failed(path);
        if (r == CONN_EOF || r == -ECONNRESET || r == -EPIPE)
                fprintf(stderr, "migratectl: error: daemon closed the connection\n");
        else if (r == CONN_BAD_REPLY)
                fprintf(stderr, "migratectl: error: the daemon's reply is not protocol v%d\n",
                        MIGRATED_PROTOCOL_VERSION);
        else if (r == -EMSGSIZE)
                fprintf(stderr, "migratectl: error: a reply line is longer than %d bytes\n", CONN_LINE_MAX);
        else
                fprintf(stderr, "migratectl: error: talking to %s: %s\n", path, strerror(-r));
        return EXIT_FAILED;
}

/* Prints a daemon error as the mode asks and maps its code to the exit code. */
static int reply_error(json_t *error) {
        json_auto_t *doc = NULL;

        if (arg_json) {
                doc = json_pack("{s:O}", "error", error);
                if (!doc || output_json(doc) < 0)
                        return EXIT_FAILED;
        } else
                render_error(error);
        return exit_code_from_error(json_get_str(error, "code"));
}

/* --json: what the client found itself (no daemon to ask) is a JSON document on stdout too, shaped
 * like the daemon's errors, so a script reading stdout always gets one. */
static void client_error_json(const char *code, const char *path, int error) {
        _cleanup_free_ char *message = NULL;
        json_auto_t *doc = NULL;

        if (asprintf(&message, "cannot talk to %s: %s", path, strerror(-error)) < 0)
                message = NULL;
        doc = json_pack("{s:{s:s,s:s,s:s}}", "error", "code", code, "message", message ?: code, "socket", path);
        if (doc)
                (void) output_json(doc);
}

int64_t now_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Every event line counts (a connection that closes before any is a failed activation); only
 * human mode shows them. */
static int on_event(json_t *event, void *userdata) {
        progress *p = userdata;

        p->n_events++;
        return arg_json ? 0 : render_event(event, userdata);
}

/* Connects; with a deadline, keeps trying until then (a gate at boot may run before the daemon
 * or its socket exists). */
static int connect_until(const char *path, int64_t deadline_ms, conn **ret) {
        struct timespec pause = { 0, 100 * 1000 * 1000 };
        int r;

        for (;;) {
                r = conn_open(path, ret);
                if (r >= 0 || deadline_ms == 0 || now_ms() >= deadline_ms ||
                    (r != -ENOENT && r != -ECONNREFUSED && r != -EAGAIN))
                        return r;
                nanosleep(&pause, NULL);
        }
}

int call_daemon_until(protocol_method_id method, json_t *params, int (*render)(json_t *), json_t **ret_result,
                             int64_t connect_deadline_ms) {
        _cleanup_(oneshot_done) oneshot child = {}; /* after the connection closes: the child exits then */
        _cleanup_(conn_freep) conn *c = NULL;
        json_auto_t *root = NULL;
        const char *path = oneshot_requested() ? arg_oneshot_database ?: arg_oneshot_config
                                               : conn_socket_path(arg_socket ?: arg_instance_socket);
        progress p = { .tty = isatty(STDERR_FILENO) };
        protocol_reply_kind kind;
        json_t *body;
        int r;

        if (oneshot_requested() && (arg_socket || arg_instance_socket)) {
                json_decref(params);
                return usage_error(NULL, "--database runs migrated for this command alone: it does not go with "
                                   "--socket or --instance");
        }
        if (oneshot_requested()) {
                r = oneshot_start(&child, &c);
                if (r < 0) {
                        json_decref(params);
                        if (arg_json)
                                client_error_json("unreachable", path, r);
                        fprintf(stderr, "migratectl: error: cannot start migrated --one-shot: %s\n", strerror(-r));
                        return EXIT_FAILED;
                }
        } else
                r = connect_until(path, connect_deadline_ms, &c);
        if (r < 0) {
                json_decref(params);
                if (arg_json)
                        client_error_json(r == -EACCES ? "permission_denied" : "unreachable", path, r);
                if (r == -EACCES)
                        return hint_permission_denied(path);
                fprintf(stderr, "migratectl: error: cannot connect to %s: %s\n"
                        "  is migrated running? start it or pass --socket\n", path, strerror(-r));
                return EXIT_UNREACHABLE;
        }
        c->protocol = arg_protocol;
        r = conn_call(c, protocol_methods[method].name, params, on_event, &p, &kind, &root, &body);
        progress_end(&p);
        if (r != 0 && child.pid > 0 && p.n_events == 0) {
                /* the one-shot ended before a word: it said why on stderr; its status says how */
                c = conn_free(c);
                r = oneshot_exit_code(oneshot_wait(&child));
                if (arg_json)
                        client_error_json(r == EXIT_BUSY ? "busy" : "unreachable", path, r == EXIT_BUSY ? -EBUSY : -ECONNRESET);
                return r;
        }
        if (r != 0) {
                if (arg_json)
                        client_error_json("connection_lost", path, r > 0 ? -ECONNRESET : r);
                return call_failed(path, r, p.n_events);
        }
        if (kind == PROTOCOL_REPLY_ERROR)
                return reply_error(body);

        if (!render) /* the verb prints */
                r = 0;
        else
                r = arg_json ? output_json(body) : render(body);
        if (r < 0) {
                fprintf(stderr, "migratectl: error: cannot print the result: %s\n", strerror(-r));
                return EXIT_FAILED;
        }
        if (ret_result)
                *ret_result = json_incref(body);
        return EXIT_OK;
}

int call_daemon(protocol_method_id method, json_t *params, int (*render)(json_t *), json_t **ret_result) {
        return call_daemon_until(method, params, render, ret_result, 0);
}
