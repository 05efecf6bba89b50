/* SPDX-License-Identifier: MIT */
/* container: and compose: dependents, through the Docker Engine API on its Unix socket (dockerd,
 * or podman's compatible service): container:NAME is one container by name, compose:PROJECT/
 * SERVICE every container with Compose's labels for that project and service. Stop is the
 * engine's own stop (its stop signal, then SIGKILL after our stop timeout, counted as killed when
 * the container exits with 137); start waits until the container runs and, when it has a health
 * check, until it is healthy. */

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dep-http.h"
#include "dep-kind.h"
#include "dep-run.h"
#include "macro.h"

#define DOCKER_SOCKET_DEFAULT "/run/docker.sock"
#define DOCKER_QUERY_TIMEOUT_USEC (10 * 1000000ULL)
#define DOCKER_POLL_USEC 200000

static const char *const container_keys[] = { "socket", NULL };

static bool is_compose(const dep_ctx *c) {
        return streq(c->kind, "compose");
}

/* container: its own section; compose: the project's ("[compose.PROJECT]"). */
static const char *engine_socket(const dep_ctx *c) {
        _cleanup_free_ char *project = NULL;
        dep_ctx p = *c;

        if (is_compose(c)) {
                project = strndup(c->id, strcspn(c->id, "/"));
                if (!project)
                        return DOCKER_SOCKET_DEFAULT;
                p.id = project;
                return dep_get(&p, "socket") ?: DOCKER_SOCKET_DEFAULT;
        }
        return dep_get(c, "socket") ?: DOCKER_SOCKET_DEFAULT;
}

static int engine_json(const dep_ctx *c, const char *method, const char *path, uint64_t timeout_usec,
                       int *ret_status, json_t **ret) {
        _cleanup_free_ char *body = NULL;
        int r = dep_http_request(engine_socket(c), method, path, timeout_usec, ret_status, &body);

        if (r < 0)
                return r;
        *ret = *body ? json_loads(body, 0, NULL) : NULL;
        return 0;
}

/* The ids of the dependent's containers (none when they do not exist). */
static int container_ids(const dep_ctx *c, char ***ret, size_t *ret_n) {
        _cleanup_free_ char *filter = NULL, *escaped = NULL, *path = NULL;
        const char *slash = strchr(c->id, '/');
        json_t *list = NULL;
        char **ids;
        int status, r;

        if (is_compose(c))
                r = asprintf(&filter, "{\"label\":[\"com.docker.compose.project=%.*s\",\"com.docker.compose.service=%s\"]}",
                             (int) (slash ? slash - c->id : 0), c->id, slash ? slash + 1 : "");
        else
                r = asprintf(&filter, "{\"name\":[\"^/?%s$\"]}", c->id); /* docker: "/NAME", podman: "NAME" */
        if (r < 0 || !(escaped = dep_http_escape(filter)) ||
            asprintf(&path, "/containers/json?all=1&filters=%s", escaped) < 0)
                return -ENOMEM;
        r = engine_json(c, "GET", path, DOCKER_QUERY_TIMEOUT_USEC, &status, &list);
        if (r < 0)
                return r;
        if (status != 200 || !json_is_array(list)) {
                json_decref(list);
                return -EBADMSG;
        }
        ids = calloc(json_array_size(list) + 1, sizeof(char *));
        for (size_t i = 0; ids && i < json_array_size(list); i++)
                ids[i] = strdup(json_string_value(json_object_get(json_array_get(list, i), "Id")) ?: "");
        *ret_n = json_array_size(list);
        json_decref(list);
        if (!ids)
                return -ENOMEM;
        *ret = ids;
        return 0;
}

static void ids_free(char **ids, size_t n) {
        for (size_t i = 0; ids && i < n; i++)
                free(ids[i]);
        free(ids);
}

static bool health_ok(const char *status) {
        return !status || streq(status, "") || streq(status, "healthy");
}

typedef struct container_state {
        bool running;
        bool healthy; /* or no health check */
        int exit_code;
} container_state;

static int inspect(const dep_ctx *c, const char *id, container_state *ret) {
        _cleanup_free_ char *path = NULL;
        json_t *doc = NULL, *state, *health;
        int status, r;

        if (asprintf(&path, "/containers/%s/json", id) < 0)
                return -ENOMEM;
        r = engine_json(c, "GET", path, DOCKER_QUERY_TIMEOUT_USEC, &status, &doc);
        if (r < 0)
                return r;
        state = json_object_get(doc, "State");
        if (status != 200 || !json_is_object(state)) {
                json_decref(doc);
                return status == 404 ? -ENOENT : -EBADMSG;
        }
        health = json_object_get(state, "Health");
        /* podman says Running false while it is still "stopping": only an end state is stopped */
        ret->running = json_is_true(json_object_get(state, "Running")) ||
                       streq(json_string_value(json_object_get(state, "Status")) ?: "", "stopping");
        /* podman reports a Health object with an empty Status for a container without a check */
        ret->healthy = !json_is_object(health) ||
                       health_ok(json_string_value(json_object_get(health, "Status")));
        ret->exit_code = (int) json_integer_value(json_object_get(state, "ExitCode"));
        json_decref(doc);
        return 0;
}

static int container_query(const dep_ctx *c, bool *ret_running, char **ret_error) {
        char **ids = NULL;
        size_t n = 0;
        int r = container_ids(c, &ids, &n);

        *ret_running = false;
        for (size_t i = 0; r >= 0 && i < n; i++) {
                container_state st = {};
                if (inspect(c, ids[i], &st) == 0 && st.running)
                        *ret_running = true;
        }
        ids_free(ids, n);
        if (r < 0 && asprintf(ret_error, "the container engine at %s did not answer (%s)", engine_socket(c),
                              strerror(-r)) < 0)
                *ret_error = NULL;
        return r;
}

/* Stops (or starts) every container of the dependent and waits for each. */
static void container_act(const dep_ctx *c, bool stop, uint64_t timeout_usec, unit_outcome *out) {
        uint64_t deadline = dep_now_usec() + timeout_usec;
        unsigned long t = (unsigned long) (timeout_usec / 1000000);
        bool killed = false;
        char **ids = NULL;
        size_t n = 0;
        int r = container_ids(c, &ids, &n);

        if (r < 0)
                return dep_outcome_set(out, false, false, "the container engine did not answer (%s)", strerror(-r));
        if (n == 0 && !stop) {
                ids_free(ids, n);
                return dep_outcome_set(out, false, false, "no such container");
        }
        for (size_t i = 0; i < n; i++) {
                _cleanup_free_ char *path = NULL, *body = NULL;
                container_state st = {};
                int status = 0;
                if ((stop ? asprintf(&path, "/containers/%s/stop?t=%lu", ids[i], t)
                          : asprintf(&path, "/containers/%s/start", ids[i])) < 0) {
                        r = -ENOMEM;
                        break;
                }
                /* the engine SIGKILLs after t seconds: give it that and as long again to answer */
                r = dep_http_request(engine_socket(c), "POST", path, stop ? 2 * timeout_usec + 5000000 : timeout_usec,
                                     &status, &body);
                if (r == 0 && status != 204 && status != 304)
                        r = -EIO;
                if (r < 0)
                        break;
                /* stopped: not running; started: running, and healthy when it has a health check */
                do {
                        r = inspect(c, ids[i], &st);
                        if (r == 0 && (stop ? !st.running : st.running && st.healthy))
                                break;
                } while (dep_pause_until(stop ? deadline + timeout_usec : deadline, DOCKER_POLL_USEC));
                if (r == 0 && stop && !st.running && st.exit_code == 137)
                        killed = true;
                if (r == 0 && (stop ? st.running : !(st.running && st.healthy)))
                        r = -ETIME;
                if (r < 0)
                        break;
        }
        ids_free(ids, n);
        if (r == -ETIME)
                return dep_outcome_set(out, false, killed, "timeout");
        if (r < 0)
                return dep_outcome_set(out, false, killed, "%s failed (%s)", stop ? "stop" : "start", strerror(-r));
        dep_outcome_set(out, true, killed, "done");
}

static void container_stop(const dep_ctx *c, uint64_t timeout_usec, unit_outcome *out) {
        container_act(c, true, timeout_usec, out);
}

static void container_start(const dep_ctx *c, uint64_t timeout_usec, unit_outcome *out) {
        container_act(c, false, timeout_usec, out);
}

static int container_inspect(const dep_ctx *c, char **ret_status, char **ret_log) {
        const char *sock = engine_socket(c);
        const char *slash = strchr(c->id, '/');
        int r;

        if (is_compose(c))
                r = asprintf(ret_status, "docker -H unix://%s ps -a --filter label=com.docker.compose.project=%.*s "
                             "--filter label=com.docker.compose.service=%s", sock, (int) (slash ? slash - c->id : 0),
                             c->id, slash ? slash + 1 : "");
        else
                r = asprintf(ret_status, "docker -H unix://%s inspect %s", sock, c->id);
        if (r < 0)
                return -ENOMEM;
        if ((is_compose(c) ? asprintf(ret_log, "docker -H unix://%s logs CONTAINER (one of those listed)", sock)
                           : asprintf(ret_log, "docker -H unix://%s logs %s", sock, c->id)) < 0) {
                free(*ret_status);
                return -ENOMEM;
        }
        return 0;
}

const dep_kind dep_kind_container = {
        .prefix = "container",
        .keys = container_keys,
        .query = container_query,
        .stop = container_stop,
        .start = container_start,
        .inspect = container_inspect,
};

const dep_kind dep_kind_compose = {
        .prefix = "compose",
        .keys = container_keys,
        .query = container_query,
        .stop = container_stop,
        .start = container_start,
        .inspect = container_inspect,
};
