/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "log.h"
#include "macro.h"
#include "metrics.h"

struct metrics_http {
        struct evhttp *http;
        metrics *m;
};

bool metrics_listen_parse(const char *listen, char *host, size_t size, unsigned *ret_port) {
        const char *colon = strrchr(listen, ':'), *h = listen;
        size_t hlen;
        char *end;
        unsigned long port;
        struct in_addr a4;
        struct in6_addr a6;

        if (!colon || !colon[1])
                return false;
        errno = 0;
        port = strtoul(colon + 1, &end, 10);
        if (errno != 0 || *end || port > 65535 || colon[1] == '-' || colon[1] == '+')
                return false;
        hlen = (size_t) (colon - listen);
        if (hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']') {
                h++;
                hlen -= 2;
        }
        if (hlen == 0 || hlen >= size)
                return false;
        memcpy(host, h, hlen);
        host[hlen] = '\0';
        if (streq(host, "localhost"))
                snprintf(host, size, "127.0.0.1");
        *ret_port = (unsigned) port;
        /* loopback only: 127.0.0.0/8 or ::1 */
        if (inet_pton(AF_INET, host, &a4) == 1)
                return (ntohl(a4.s_addr) >> 24) == 127;
        return inet_pton(AF_INET6, host, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}

static void on_request(struct evhttp_request *req, void *userdata) {
        metrics_http *h = userdata;
        struct evbuffer *body;
        _cleanup_free_ char *text = NULL;

        if (evhttp_request_get_command(req) != EVHTTP_REQ_GET && evhttp_request_get_command(req) != EVHTTP_REQ_HEAD) {
                evhttp_send_error(req, 405, "only GET");
                return;
        }
        text = metrics_render(h->m);
        body = evbuffer_new();
        if (!text || !body || evbuffer_add(body, text, strlen(text)) < 0) {
                if (body)
                        evbuffer_free(body);
                evhttp_send_error(req, 500, "out of memory");
                return;
        }
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "text/plain; version=0.0.4");
        evhttp_send_reply(req, 200, "OK", body);
        evbuffer_free(body);
}

static void on_other(struct evhttp_request *req, void *userdata) {
        evhttp_send_error(req, 404, "only /metrics");
}

int metrics_http_new(struct event_base *base, const char *listen, metrics *m, metrics_http **ret,
                     unsigned *ret_port) {
        _cleanup_free_ metrics_http *h = NULL;
        struct evhttp_bound_socket *sock;
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        char host[64];
        unsigned port;

        if (!metrics_listen_parse(listen, host, sizeof(host), &port)) {
                log_error("[metrics] listen = %s: must be " METRICS_LISTEN_EXPECTED, listen);
                return -EINVAL;
        }
        h = calloc(1, sizeof(*h));
        if (!h || !(h->http = evhttp_new(base)))
                return log_error_errno(ENOMEM, "Failed to set up the metrics endpoint: %m");
        h->m = m;
        evhttp_set_allowed_methods(h->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
        evhttp_set_timeout(h->http, 10);
        evhttp_set_max_headers_size(h->http, 8192);
        evhttp_set_max_body_size(h->http, 0);
        if (evhttp_set_cb(h->http, "/metrics", on_request, h) != 0) {
                evhttp_free(h->http);
                return log_error_errno(ENOMEM, "Failed to set up the metrics endpoint: %m");
        }
        evhttp_set_gencb(h->http, on_other, h);
        sock = evhttp_bind_socket_with_handle(h->http, host, (ev_uint16_t) port);
        if (!sock) {
                int r = errno > 0 ? -errno : -EADDRINUSE;
                evhttp_free(h->http);
                return log_error_errno(r, "Cannot serve the metrics on %s: %m (another process on that port? under "
                                       "the shipped unit, install the drop-in migrated-metrics.conf)", listen);
        }
        if (getsockname(evhttp_bound_socket_get_fd(sock), (struct sockaddr *) &ss, &len) == 0)
                port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *) &ss)->sin6_port
                                                      : ((struct sockaddr_in *) &ss)->sin_port);
        *ret_port = port;
        *ret = TAKE_PTR(h);
        return 0;
}

metrics_http *metrics_http_free(metrics_http *h) {
        if (!h)
                return NULL;
        evhttp_free(h->http);
        free(h);
        return NULL;
}
