/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-bus.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"
#include "units.h"

#define SD_DEST "org.freedesktop.systemd1"
#define SD_PATH "/org/freedesktop/systemd1"
#define SD_MANAGER "org.freedesktop.systemd1.Manager"

/* sd-bus.h provides sd_bus_message_unrefp and sd_bus_flush_close_unrefp for _cleanup_. */

typedef struct op_item {
        char *name;
        char *job_path; /* NULL until the manager answered the request */
        char *result;
        bool done;
        bool killed;
        uint64_t t0, t1;
        struct op *op;
        sd_bus_slot *slot;
} op_item;

typedef struct op {
        units *u;
        bool stop;
        op_item *items;
        size_t n, remaining;
        uint64_t timeout_usec;
        bool escalated;
        struct event *timer;
        units_done_fn done;
        void *userdata;
        struct op *prev, *next;
} op;

/* JobRemoved that arrived before the reply naming its job path, kept until that reply comes. */
typedef struct early_job {
        char *path;
        char *result;
        struct early_job *next;
} early_job;

struct units {
        struct event_base *base;
        sd_bus *bus;
        struct event *io;
        struct event *timeout;
        sd_bus_slot *job_removed;
        op *ops;
        early_job *early;
};

static uint64_t now_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}

int units_manager_from_string(const char *s, units_manager *ret) {
        if (streq(s, "system"))
                *ret = UNITS_MANAGER_SYSTEM;
        else if (streq(s, "user"))
                *ret = UNITS_MANAGER_USER;
        else
                return -EINVAL;
        return 0;
}

const char *units_manager_to_string(units_manager m) {
        return m == UNITS_MANAGER_USER ? "user" : "system";
}

static void on_bus_ready(evutil_socket_t fd, short what, void *userdata);

/* sd-bus says what it waits for (fd events, an absolute CLOCK_MONOTONIC deadline); libevent is
 * re-armed accordingly after every round of processing and after every request we queue. */
static void bus_arm(units *u) {
        int events = sd_bus_get_events(u->bus);
        uint64_t until = UINT64_MAX;

        event_del(u->io);
        if (events > 0) {
                short what = ((events & POLLIN) ? EV_READ : 0) | ((events & POLLOUT) ? EV_WRITE : 0);
                event_assign(u->io, u->base, sd_bus_get_fd(u->bus), what, on_bus_ready, u);
                event_add(u->io, NULL);
        }
        event_del(u->timeout);
        if (sd_bus_get_timeout(u->bus, &until) >= 0 && until != UINT64_MAX) {
                uint64_t now = now_usec(), rel = until > now ? until - now : 0;
                struct timeval tv = { (time_t) (rel / 1000000), (suseconds_t) (rel % 1000000) };
                event_add(u->timeout, &tv);
        }
}

static void on_bus_ready(evutil_socket_t fd, short what, void *userdata) {
        units *u = userdata;
        int r;

        while ((r = sd_bus_process(u->bus, NULL)) > 0)
                ;
        if (r < 0)
                log_error_errno(r, "Lost the connection to the service manager: %m");
        bus_arm(u);
}

static void op_finish_later(op *o);

/* A unit's job ended: result is JobRemoved's ("done" is success) or why there was no job. */
static void item_done(op_item *it, const char *result) {
        if (it->done)
                return;
        it->done = true;
        it->t1 = now_usec();
        free(it->result);
        it->result = strdup(result);
        if (--it->op->remaining == 0)
                op_finish_later(it->op);
}

static bool take_early(units *u, const char *path, char **ret_result) {
        for (early_job **p = &u->early; *p; p = &(*p)->next)
                if (streq((*p)->path, path)) {
                        early_job *e = *p;
                        *p = e->next;
                        *ret_result = e->result;
                        free(e->path);
                        free(e);
                        return true;
                }
        return false;
}

static int on_job_removed(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        units *u = userdata;
        const char *path, *unit, *result;
        uint32_t id;
        size_t n_early = 0;

        if (sd_bus_message_read(m, "uoss", &id, &path, &unit, &result) < 0)
                return 0;
        for (op *o = u->ops; o; o = o->next)
                for (size_t i = 0; i < o->n; i++)
                        if (!o->items[i].done && o->items[i].job_path && streq(o->items[i].job_path, path)) {
                                item_done(&o->items[i], result);
                                return 0;
                        }
        /* Possibly ours, its request's reply not yet read: keep a few for a moment. */
        for (early_job *e = u->early; e; e = e->next)
                n_early++;
        if (u->ops && n_early < 64) {
                early_job *e = calloc(1, sizeof(*e));
                if (e && (e->path = strdup(path)) && (e->result = strdup(result))) {
                        e->next = u->early;
                        u->early = e;
                } else if (e) {
                        free(e->path);
                        free(e);
                }
        }
        return 0;
}

static int on_job_reply(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        op_item *it = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(m);
        const char *path;
        char *early = NULL;

        if (e) {
                /* Stopping a unit that is not loaded leaves it stopped: that is success. */
                if (it->op->stop && sd_bus_error_has_name(e, "org.freedesktop.systemd1.NoSuchUnit"))
                        item_done(it, "done");
                else
                        item_done(it, e->message ?: e->name);
                return 0;
        }
        if (sd_bus_message_read(m, "o", &path) < 0 || !(it->job_path = strdup(path))) {
                item_done(it, "unreadable reply from the service manager");
                return 0;
        }
        if (take_early(it->op->u, path, &early)) {
                item_done(it, early);
                free(early);
        }
        return 0;
}

static void op_free(op *o) {
        units *u = o->u;

        if (o->prev)
                o->prev->next = o->next;
        else if (u->ops == o)
                u->ops = o->next;
        if (o->next)
                o->next->prev = o->prev;
        for (size_t i = 0; i < o->n; i++) {
                sd_bus_slot_unref(o->items[i].slot); /* cancels a call still waiting */
                free(o->items[i].name);
                free(o->items[i].job_path);
                free(o->items[i].result);
        }
        free(o->items);
        if (o->timer)
                event_free(o->timer);
        free(o);
}

/* Runs from the loop, outside any sd-bus callback, so the caller may start new operations. */
static void op_finish(evutil_socket_t fd, short what, void *userdata) {
        op *o = userdata;
        unit_outcome *out = calloc(o->n ? o->n : 1, sizeof(*out));
        units_done_fn done = o->done;
        void *ud = o->userdata;
        size_t n = o->n;

        for (size_t i = 0; out && i < o->n; i++) {
                op_item *it = &o->items[i];
                out[i].name = TAKE_PTR(it->name);
                out[i].result = TAKE_PTR(it->result);
                if (!out[i].result)
                        out[i].result = strdup("timeout");
                out[i].ok = it->done && out[i].result && streq(out[i].result, "done");
                out[i].killed = it->killed;
                out[i].usec = (it->done ? it->t1 : now_usec()) - it->t0;
        }
        op_free(o);
        done(ud, out, out ? n : 0);
}

static void op_finish_later(op *o) {
        event_del(o->timer);
        event_assign(o->timer, o->u->base, -1, 0, op_finish, o);
        event_active(o->timer, EV_TIMEOUT, 0);
}

static int call_job(op_item *it, const char *method) {
        units *u = it->op->u;

        it->t0 = now_usec();
        return sd_bus_call_method_async(u->bus, &it->slot, SD_DEST, SD_PATH, SD_MANAGER, method, on_job_reply, it,
                                        "ss", it->name, "replace");
}

/* The stop timeout passed: SIGKILL what is still up, wait as long again, then give up. */
static void op_timeout(evutil_socket_t fd, short what, void *userdata) {
        op *o = userdata;
        struct timeval tv = { (time_t) (o->timeout_usec / 1000000), (suseconds_t) (o->timeout_usec % 1000000) };

        if (o->stop && !o->escalated) {
                o->escalated = true;
                for (size_t i = 0; i < o->n; i++) {
                        op_item *it = &o->items[i];
                        if (it->done)
                                continue;
                        log_warning("%s did not stop within %llu s, sending SIGKILL", it->name,
                                    (unsigned long long) (o->timeout_usec / 1000000));
                        it->killed = true;
                        (void) sd_bus_call_method_async(o->u->bus, NULL, SD_DEST, SD_PATH, SD_MANAGER, "KillUnit",
                                                        NULL, NULL, "ssi", it->name, "all", (int32_t) SIGKILL);
                }
                bus_arm(o->u);
                evtimer_add(o->timer, &tv);
                return;
        }
        for (size_t i = 0; i < o->n; i++)
                if (!o->items[i].done)
                        item_done(&o->items[i], "timeout");
}

static int op_start(units *u, bool stop, char *const *names, size_t n, uint64_t timeout_usec, units_done_fn done,
                    void *userdata) {
        struct timeval tv = { (time_t) (timeout_usec / 1000000), (suseconds_t) (timeout_usec % 1000000) };
        op *o = calloc(1, sizeof(*o));
        int r = 0;

        if (!o || !(o->items = calloc(n ? n : 1, sizeof(op_item))) ||
            !(o->timer = evtimer_new(u->base, op_timeout, o))) {
                if (o) {
                        free(o->items);
                        free(o);
                }
                return -ENOMEM;
        }
        o->u = u;
        o->stop = stop;
        o->n = o->remaining = n;
        o->timeout_usec = timeout_usec;
        o->done = done;
        o->userdata = userdata;
        o->next = u->ops;
        if (u->ops)
                u->ops->prev = o;
        u->ops = o;
        for (size_t i = 0; i < n; i++) {
                o->items[i].op = o;
                o->items[i].name = strdup(names[i]);
                if (!o->items[i].name)
                        r = -ENOMEM;
        }
        for (size_t i = 0; r == 0 && i < n; i++) {
                int k = call_job(&o->items[i], stop ? "StopUnit" : "StartUnit");
                if (k < 0)
                        item_done(&o->items[i], strerror(-k));
        }
        if (r < 0) {
                op_free(o);
                return r;
        }
        if (n == 0)
                op_finish_later(o);
        else
                evtimer_add(o->timer, &tv);
        bus_arm(u);
        return 0;
}

int units_stop(units *u, char *const *names, size_t n, uint64_t timeout_usec, units_done_fn done, void *userdata) {
        return op_start(u, true, names, n, timeout_usec, done, userdata);
}

int units_start(units *u, char *const *names, size_t n, uint64_t timeout_usec, units_done_fn done, void *userdata) {
        return op_start(u, false, names, n, timeout_usec, done, userdata);
}

/* The manager's private socket needs no bus daemon: the one thing we must not depend on while
 * the services are down. */
static int connect_manager(units_manager m, sd_bus **ret) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_free_ char *path = NULL;
        const char *rt = getenv("XDG_RUNTIME_DIR");
        int r;

        if (m == UNITS_MANAGER_SYSTEM)
                path = geteuid() == 0 ? strdup("/run/systemd/private") : NULL;
        else if (rt && asprintf(&path, "%s/systemd/private", rt) < 0)
                path = NULL;
        if (path && access(path, R_OK | W_OK) == 0) {
                _cleanup_free_ char *address = NULL;
                if (asprintf(&address, "unix:path=%s", path) < 0)
                        return -ENOMEM;
                r = sd_bus_new(&bus);
                if (r >= 0)
                        r = sd_bus_set_address(bus, address);
                if (r >= 0)
                        r = sd_bus_start(bus);
                if (r >= 0) {
                        *ret = TAKE_PTR(bus);
                        return 0;
                }
                bus = sd_bus_flush_close_unref(bus);
        }
        r = m == UNITS_MANAGER_USER ? sd_bus_open_user(&bus) : sd_bus_open_system(&bus);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(bus);
        return 0;
}

int units_new(struct event_base *base, units_manager m, units **ret) {
        units *u;
        int r;

        u = calloc(1, sizeof(*u));
        if (!u)
                return -ENOMEM;
        u->base = base;
        r = connect_manager(m, &u->bus);
        if (r < 0) {
                free(u);
                return r;
        }
        /* The manager only emits job signals to clients that subscribed. */
        r = sd_bus_match_signal(u->bus, &u->job_removed, NULL, SD_PATH, SD_MANAGER, "JobRemoved", on_job_removed, u);
        if (r >= 0)
                r = sd_bus_call_method(u->bus, SD_DEST, SD_PATH, SD_MANAGER, "Subscribe", NULL, NULL, NULL);
        u->io = event_new(base, sd_bus_get_fd(u->bus), EV_READ, on_bus_ready, u);
        u->timeout = evtimer_new(base, on_bus_ready, u);
        if (r < 0 || !u->io || !u->timeout) {
                units_free(u);
                return r < 0 ? r : -ENOMEM;
        }
        bus_arm(u);
        *ret = u;
        return 0;
}

units *units_free(units *u) {
        if (!u)
                return NULL;
        while (u->ops)
                op_free(u->ops);
        for (early_job *e = u->early, *next; e; e = next) {
                next = e->next;
                free(e->path);
                free(e->result);
                free(e);
        }
        sd_bus_slot_unref(u->job_removed);
        if (u->io)
                event_free(u->io);
        if (u->timeout)
                event_free(u->timeout);
        sd_bus_flush_close_unref(u->bus);
        free(u);
        return NULL;
}

void unit_states_free(unit_state *s, size_t n) {
        for (size_t i = 0; s && i < n; i++) {
                free(s[i].name);
                free(s[i].load_state);
                free(s[i].active_state);
                free(s[i].sub_state);
        }
        free(s);
}

void unit_outcomes_free(unit_outcome *o, size_t n) {
        for (size_t i = 0; o && i < n; i++) {
                free(o[i].name);
                free(o[i].result);
        }
        free(o);
}

bool unit_state_is_running(const unit_state *s) {
        /* activating/deactivating/reloading units may hold the database too */
        return s->active_state && !streq(s->active_state, "inactive") && !streq(s->active_state, "failed");
}

int units_query(units *u, char *const *names, size_t n, unit_state **ret, size_t *ret_n) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *req = NULL, *reply = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        unit_state *states = calloc(n ? n : 1, sizeof(*states));
        size_t got = 0;
        int r;

        if (!states)
                return -ENOMEM;
        r = sd_bus_message_new_method_call(u->bus, &req, SD_DEST, SD_PATH, SD_MANAGER, "ListUnitsByNames");
        /* append exactly n names: callers' arrays need not be NULL-terminated */
        if (r >= 0)
                r = sd_bus_message_open_container(req, 'a', "s");
        for (size_t i = 0; r >= 0 && i < n; i++)
                r = sd_bus_message_append(req, "s", names[i]);
        if (r >= 0)
                r = sd_bus_message_close_container(req);
        if (r >= 0)
                r = sd_bus_call(u->bus, req, 10 * 1000000, &error, &reply);
        if (r >= 0)
                r = sd_bus_message_enter_container(reply, 'a', "(ssssssouso)");
        while (r >= 0 && got < n) {
                const char *name, *desc, *load, *active, *sub;
                r = sd_bus_message_read(reply, "(ssssssouso)", &name, &desc, &load, &active, &sub, NULL, NULL, NULL,
                                        NULL, NULL);
                if (r <= 0)
                        break;
                states[got].name = strdup(name);
                states[got].load_state = strdup(load);
                states[got].active_state = strdup(active);
                states[got].sub_state = strdup(sub);
                got++;
        }
        if (r < 0)
                log_debug("ListUnitsByNames failed: %s", error.message ?: strerror(-r));
        sd_bus_error_free(&error);
        bus_arm(u);
        if (r < 0) {
                unit_states_free(states, got);
                return r;
        }
        *ret = states;
        *ret_n = got;
        return 0;
}
