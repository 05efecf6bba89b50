/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dep-kind.h"
#include "dep-run.h"
#include "deps.h"
#include "statefile.h"
#include "log.h"
#include "macro.h"

static const dep_kind *const kinds[] = { &dep_kind_pm2, &dep_kind_exec, &dep_kind_container, &dep_kind_compose };

typedef enum dep_mode {
        DEP_STOP,
        DEP_START,
        DEP_QUERY,
} dep_mode;

struct deps {
        struct event_base *base;
        const config *cfg;
        units *units; /* NULL without systemd units */
        /* what the last query, stop or start said of each configured unit (by index in cfg->units) */
        signed char *last_running; /* -1 never asked, 0 down, 1 running */
        struct dep_op *ops;        /* running operations, for deps_drain() */
};

typedef struct dep_item {
        struct dep_op *op;
        const dep_kind *kind;
        dep_ctx ctx;
        char *id;
        size_t index;     /* in the outcomes */
        bool thread_started;
        pthread_t thread;
        int query_r;      /* DEP_QUERY: the kind's answer */
        bool running;
} dep_item;

typedef struct dep_op {
        deps *d;
        struct dep_op *next;
        dep_mode mode;
        uint64_t timeout_usec;
        unit_outcome *out;
        size_t n;
        dep_item *items;
        size_t n_items;
        size_t *sd_index; /* where each systemd unit's outcome goes */
        size_t n_sd;
        pthread_mutex_t lock;
        size_t remaining; /* threads + the systemd batch */
        struct event *finished;
        units_done_fn done;
        deps_query_fn query_done;
        void *userdata;
        unit_state *sd_states; /* DEP_QUERY: the systemd units', asked at launch */
        size_t n_sd_states;
        int sd_r;
} dep_op;

/* The kind a name carries ("pm2:api" → pm2, *ret_id "api"); NULL for a systemd unit. */
static const dep_kind *kind_of(const char *name, const char **ret_id) {
        const char *colon = strchr(name, ':');

        if (!colon)
                return NULL;
        for (size_t i = 0; i < ELEMENTSOF(kinds); i++)
                if (strlen(kinds[i]->prefix) == (size_t) (colon - name) && strneq(kinds[i]->prefix, name, colon - name)) {
                        *ret_id = colon + 1;
                        return kinds[i];
                }
        return NULL;
}

static const dep_kind *kind_of_section(const char *section, size_t len, size_t *ret_prefix) {
        const char *dot = memchr(section, '.', len);

        if (!dot || dot == section + len - 1)
                return NULL;
        for (size_t i = 0; i < ELEMENTSOF(kinds); i++)
                if (strlen(kinds[i]->prefix) == (size_t) (dot - section) && strneq(kinds[i]->prefix, section, dot - section)) {
                        *ret_prefix = (size_t) (dot - section);
                        return kinds[i];
                }
        return NULL;
}

bool deps_section_is_known(const char *section, size_t len) {
        size_t p;

        return kind_of_section(section, len, &p) != NULL;
}

bool deps_key_is_known(const char *section, const char *key) {
        size_t p;
        const dep_kind *k = kind_of_section(section, strlen(section), &p);

        for (size_t i = 0; k && k->keys[i]; i++)
                if (streq(k->keys[i], key))
                        return true;
        return false;
}

bool deps_name_is_valid(const char *name) {
        const char *id;

        const dep_kind *k;
        const char *slash;

        if (strlen(name) > 255)
                return false;
        if (!strchr(name, ':'))
                return strchr(name, '.') && !strchr(name, '/'); /* a unit name: "a.service" */
        if (!(k = kind_of(name, &id)) || !*id)
                return false;
        /* compose:PROJECT/SERVICE, both parts non-empty; no other kind has a '/' */
        slash = strchr(id, '/');
        if (slash ? k != &dep_kind_compose || slash == id || !slash[1] || strchr(slash + 1, '/')
                  : k == &dep_kind_compose)
                return false;
        return strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.@-/") == strlen(id);
}

const char *dep_get(const dep_ctx *c, const char *key) {
        size_t lk = strlen(c->kind);

        for (size_t i = 0; i < c->cfg->n_dep_settings; i++) {
                const dep_setting *s = &c->cfg->dep_settings[i];
                if (strneq(s->section, c->kind, lk) && s->section[lk] == '.' && streq(s->section + lk + 1, c->id) &&
                    streq(s->key, key))
                        return s->value;
        }
        return NULL;
}

uint64_t dep_setting_usec(const dep_ctx *c, const char *key, uint64_t fallback) {
        const char *v = dep_get(c, key);
        char *end;
        unsigned long s;

        if (!v)
                return fallback;
        errno = 0;
        s = strtoul(v, &end, 10);
        if (errno != 0 || *end || end == v || s == 0 || s > 86400)
                return fallback;
        return (uint64_t) s * 1000000;
}

void dep_outcome_set(unit_outcome *out, bool ok, bool killed, const char *fmt, ...) {
        va_list ap;

        free(out->result);
        va_start(ap, fmt);
        if (vasprintf(&out->result, fmt, ap) < 0)
                out->result = NULL;
        va_end(ap);
        out->ok = ok;
        out->killed = killed;
}

char *deps_check_config(const config *cfg) {
        for (size_t i = 0; i < cfg->n_units; i++) {
                const char *id;
                const dep_kind *k = kind_of(cfg->units[i], &id);
                dep_ctx c = { .cfg = cfg, .id = id };
                char *why;
                if (!k || !k->check)
                        continue;
                c.kind = k->prefix;
                why = k->check(&c);
                if (why)
                        return why;
        }
        return NULL;
}

int deps_inspect_commands(const config *cfg, const char *name, char **ret_status, char **ret_log) {
        const char *id;
        const dep_kind *k = kind_of(name, &id);
        dep_ctx c = { .cfg = cfg, .id = id };

        if (k) {
                c.kind = k->prefix;
                return k->inspect(&c, ret_status, ret_log);
        }
        if (asprintf(ret_status, "systemctl%s status %s", cfg->user_manager ? " --user" : "", name) < 0)
                return -ENOMEM;
        if (asprintf(ret_log, "journalctl%s -u %s", cfg->user_manager ? " --user" : "", name) < 0) {
                free(*ret_status);
                return -ENOMEM;
        }
        return 0;
}

int deps_new(struct event_base *base, const config *cfg, deps **ret) {
        deps *d = calloc(1, sizeof(*d));
        bool systemd = false;
        int r;

        if (!d)
                return -ENOMEM;
        d->base = base;
        d->cfg = cfg;
        d->last_running = malloc(cfg->n_units ? cfg->n_units : 1);
        if (!d->last_running) {
                free(d);
                return -ENOMEM;
        }
        memset(d->last_running, -1, cfg->n_units ? cfg->n_units : 1);
        for (size_t i = 0; i < cfg->n_units; i++) {
                const char *id;
                if (!kind_of(cfg->units[i], &id))
                        systemd = true;
        }
        if (systemd) {
                r = units_new(base, cfg->user_manager ? UNITS_MANAGER_USER : UNITS_MANAGER_SYSTEM, &d->units);
                if (r < 0) {
                        free(d->last_running);
                        free(d);
                        return r;
                }
        }
        *ret = d;
        return 0;
}

static void op_complete(dep_op *o);

void deps_drain(deps *d) {
        while (d && d->ops) {
                dep_op *o = d->ops;
                for (size_t i = 0; i < o->n_items; i++)
                        if (o->items[i].thread_started) {
                                pthread_join(o->items[i].thread, NULL);
                                o->items[i].thread_started = false;
                        }
                op_complete(o);
        }
}

deps *deps_free(deps *d) {
        if (!d)
                return NULL;
        deps_drain(d);
        units_free(d->units);
        free(d->last_running);
        free(d);
        return NULL;
}

static void remember(deps *d, const char *name, bool running) {
        for (size_t i = 0; i < d->cfg->n_units; i++)
                if (streq(d->cfg->units[i], name))
                        d->last_running[i] = running;
}

static int append_state(unit_state **v, size_t *n, const char *name, const char *active) {
        unit_state *m = realloc(*v, (*n + 1) * sizeof(unit_state));
        bool running = streq(active, "active");

        if (!m)
                return -ENOMEM;
        *v = m;
        m[*n] = (unit_state) {
                .name = strdup(name),
                .load_state = strdup("loaded"),
                .active_state = strdup(active),
                .sub_state = strdup(running ? "running" : streq(active, "inactive") ? "dead" : "unknown"),
        };
        (*n)++;
        return 0;
}

int deps_query_known(deps *d, unit_state **ret, size_t *ret_n) {
        _cleanup_free_ char **sd = calloc(d->cfg->n_units + 1, sizeof(char *));
        unit_state *states = NULL;
        size_t n_sd = 0, got = 0;
        int r = 0;

        if (!sd)
                return -ENOMEM;
        for (size_t i = 0; i < d->cfg->n_units; i++) {
                const char *id;
                if (!kind_of(d->cfg->units[i], &id))
                        sd[n_sd++] = d->cfg->units[i];
        }
        if (n_sd > 0) {
                if (!d->units)
                        return -ENOTCONN;
                r = units_query(d->units, sd, n_sd, &states, &got);
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; r >= 0 && i < d->cfg->n_units; i++) {
                const char *id;
                if (kind_of(d->cfg->units[i], &id))
                        r = append_state(&states, &got, d->cfg->units[i],
                                         d->last_running[i] < 0 ? "unknown"
                                         : d->last_running[i] ? "active" : "inactive");
        }
        if (r < 0) {
                unit_states_free(states, got);
                return r;
        }
        *ret = states;
        *ret_n = got;
        return 0;
}

static void op_free(dep_op *o) {
        for (size_t i = 0; i < o->n_items; i++)
                free(o->items[i].id);
        free(o->items);
        free(o->sd_index);
        unit_outcomes_free(o->out, o->n);
        unit_states_free(o->sd_states, o->n_sd_states);
        if (o->finished)
                event_free(o->finished);
        pthread_mutex_destroy(&o->lock);
        free(o);
}

static void op_unlink(dep_op *o) {
        for (dep_op **p = &o->d->ops; *p; p = &(*p)->next)
                if (*p == o) {
                        *p = o->next;
                        break;
                }
}

/* A query's answer: the systemd units' states first, then every other dependent's in order;
 * the first dependent that could not be asked fails the whole query, as a unit would. */
static void query_complete(dep_op *o) {
        deps_query_fn done = o->query_done;
        void *ud = o->userdata;
        unit_state *states = TAKE_PTR(o->sd_states);
        size_t got = o->n_sd_states;
        int r = o->sd_r;

        o->n_sd_states = 0;
        for (size_t i = 0; r >= 0 && i < o->n_items; i++) {
                dep_item *it = &o->items[i];
                if (it->query_r < 0) {
                        r = it->query_r;
                        continue;
                }
                remember(o->d, o->out[it->index].name, it->running);
                r = append_state(&states, &got, o->out[it->index].name, it->running ? "active" : "inactive");
        }
        op_free(o);
        if (r < 0) {
                unit_states_free(states, got);
                states = NULL;
                got = 0;
        }
        done(ud, r < 0 ? r : 0, states, got);
}

/* Loop thread, every thread joined: hand the outcomes over in the order they were asked. */
static void op_complete(dep_op *o) {
        units_done_fn done = o->done;
        void *ud = o->userdata;
        unit_outcome *out;
        size_t n = o->n;

        op_unlink(o);
        if (o->mode == DEP_QUERY)
                return query_complete(o);
        out = TAKE_PTR(o->out);
        for (size_t i = 0; i < n; i++) {
                if (!out[i].result) {
                        out[i].result = strdup("failed");
                        out[i].ok = false;
                }
                if (out[i].ok)
                        remember(o->d, out[i].name, o->mode == DEP_START);
        }
        o->n = 0;
        op_free(o);
        done(ud, out, n);
}

static void op_finished(evutil_socket_t fd, short what, void *userdata) {
        dep_op *o = userdata;

        for (size_t i = 0; i < o->n_items; i++)
                if (o->items[i].thread_started) {
                        pthread_join(o->items[i].thread, NULL);
                        o->items[i].thread_started = false;
                }
        op_complete(o);
}

/* Any thread: one part is done. */
static void op_part_done(dep_op *o) {
        bool last;

        pthread_mutex_lock(&o->lock);
        last = --o->remaining == 0;
        pthread_mutex_unlock(&o->lock);
        if (last)
                event_active(o->finished, EV_TIMEOUT, 0);
}

static void *item_thread(void *userdata) {
        dep_item *it = userdata;
        dep_op *o = it->op;
        unit_outcome *out = &o->out[it->index];
        uint64_t t0 = dep_now_usec();
        _cleanup_free_ char *why = NULL;

        switch (o->mode) {
        case DEP_STOP:
                it->kind->stop(&it->ctx, o->timeout_usec, out);
                break;
        case DEP_START:
                it->kind->start(&it->ctx, o->timeout_usec, out);
                break;
        case DEP_QUERY:
                it->query_r = it->kind->query(&it->ctx, &it->running, &why);
                if (it->query_r < 0)
                        log_error("Cannot ask about %s: %s", out->name, why ?: strerror(-it->query_r));
                break;
        }
        out->usec = dep_now_usec() - t0;
        op_part_done(o);
        return NULL;
}

static void on_units_done(void *userdata, unit_outcome *sd_out, size_t n_sd) {
        dep_op *o = userdata;

        for (size_t i = 0; i < o->n_sd; i++) {
                unit_outcome *dst = &o->out[o->sd_index[i]];
                if (i < n_sd) {
                        free(dst->result);
                        dst->result = TAKE_PTR(sd_out[i].result);
                        dst->ok = sd_out[i].ok;
                        dst->killed = sd_out[i].killed;
                        dst->usec = sd_out[i].usec;
                }
        }
        unit_outcomes_free(sd_out, n_sd);
        op_part_done(o);
}

/* Launches the systemd part of an operation; false when it will not call op_part_done(). */
static bool op_launch_units(dep_op *o, char **sd) {
        deps *d = o->d;
        int r;

        if (o->mode == DEP_QUERY) {
                /* the manager answers at once: asked here, on the loop, the only thread on its bus */
                o->sd_r = units_query(d->units, sd, o->n_sd, &o->sd_states, &o->n_sd_states);
                return false;
        }
        r = o->mode == DEP_STOP ? units_stop(d->units, sd, o->n_sd, o->timeout_usec, on_units_done, o)
                                : units_start(d->units, sd, o->n_sd, o->timeout_usec, on_units_done, o);
        if (r < 0)
                for (size_t i = 0; i < o->n_sd; i++)
                        dep_outcome_set(&o->out[o->sd_index[i]], false, false, "%s", strerror(-r));
        return r >= 0;
}

static int op_run(deps *d, dep_mode mode, char *const *names, size_t n, uint64_t timeout_usec, units_done_fn done,
                  deps_query_fn query_done, void *userdata) {
        _cleanup_free_ char **sd = calloc(n + 1, sizeof(char *));
        dep_op *o = calloc(1, sizeof(*o));
        int r = 0;

        if (!o || !sd) {
                free(o);
                return -ENOMEM;
        }
        pthread_mutex_init(&o->lock, NULL);
        o->d = d;
        o->mode = mode;
        o->timeout_usec = timeout_usec;
        o->done = done;
        o->query_done = query_done;
        o->userdata = userdata;
        o->n = n;
        o->out = calloc(n ? n : 1, sizeof(unit_outcome));
        o->items = calloc(n ? n : 1, sizeof(dep_item));
        o->sd_index = calloc(n ? n : 1, sizeof(size_t));
        o->finished = event_new(d->base, -1, 0, op_finished, o);
        if (!o->out || !o->items || !o->sd_index || !o->finished) {
                op_free(o);
                return -ENOMEM;
        }
        for (size_t i = 0; i < n && r == 0; i++) {
                const char *id;
                const dep_kind *k = kind_of(names[i], &id);
                if (!(o->out[i].name = strdup(names[i])))
                        r = -ENOMEM;
                else if (!k) {
                        o->sd_index[o->n_sd] = i;
                        sd[o->n_sd++] = names[i];
                } else {
                        dep_item *it = &o->items[o->n_items++];
                        it->op = o;
                        it->kind = k;
                        it->index = i;
                        it->id = strdup(id);
                        it->ctx = (dep_ctx) { .cfg = d->cfg, .kind = k->prefix, .id = it->id };
                        if (!it->id)
                                r = -ENOMEM;
                }
        }
        if (r == 0 && o->n_sd > 0 && !d->units)
                r = -ENOTCONN;
        if (r < 0) {
                op_free(o);
                return r;
        }
        o->next = d->ops;
        d->ops = o;
        /* one extra part held until everything is launched, so nothing finishes early */
        o->remaining = o->n_items + (o->n_sd > 0) + 1;
        if (o->n_sd > 0 && !op_launch_units(o, sd))
                o->remaining--;
        for (size_t i = 0; i < o->n_items; i++) {
                dep_item *it = &o->items[i];
                int k = pthread_create(&it->thread, NULL, item_thread, it);
                if (k != 0) {
                        dep_outcome_set(&o->out[it->index], false, false, "cannot start a thread: %s", strerror(k));
                        it->query_r = -k;
                        op_part_done(o);
                } else
                        it->thread_started = true;
        }
        op_part_done(o);
        return 0;
}

int deps_running_of(const unit_state *st, size_t n, char ***ret, size_t *ret_n) {
        size_t k = 0;
        char **v;

        v = calloc(n + 1, sizeof(char *));
        if (!v)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                if (unit_state_is_running(&st[i]) && !(v[k++] = strdup(st[i].name))) {
                        strv_free_n(v, k);
                        return -ENOMEM;
                }
        *ret = v;
        *ret_n = k;
        return 0;
}

int deps_query(deps *d, char *const *names, size_t n, deps_query_fn done, void *userdata) {
        return op_run(d, DEP_QUERY, names, n, 0, NULL, done, userdata);
}

int deps_stop(deps *d, char *const *names, size_t n, uint64_t timeout_usec, units_done_fn done, void *userdata) {
        return op_run(d, DEP_STOP, names, n, timeout_usec, done, NULL, userdata);
}

int deps_start(deps *d, char *const *names, size_t n, uint64_t timeout_usec, units_done_fn done, void *userdata) {
        return op_run(d, DEP_START, names, n, timeout_usec, done, NULL, userdata);
}
