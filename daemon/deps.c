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

struct deps {
        struct event_base *base;
        const config *cfg;
        units *units; /* NULL without systemd units */
};

typedef struct dep_item {
        struct dep_op *op;
        const dep_kind *kind;
        dep_ctx ctx;
        char *id;
        size_t index;     /* in the outcomes */
        bool thread_started;
        pthread_t thread;
} dep_item;

typedef struct dep_op {
        deps *d;
        bool stop;
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
        void *userdata;
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
        for (size_t i = 0; i < cfg->n_units; i++) {
                const char *id;
                if (!kind_of(cfg->units[i], &id))
                        systemd = true;
        }
        if (systemd) {
                r = units_new(base, cfg->user_manager ? UNITS_MANAGER_USER : UNITS_MANAGER_SYSTEM, &d->units);
                if (r < 0) {
                        free(d);
                        return r;
                }
        }
        *ret = d;
        return 0;
}

deps *deps_free(deps *d) {
        if (!d)
                return NULL;
        units_free(d->units);
        free(d);
        return NULL;
}

static int append_state(unit_state **v, size_t *n, const char *name, bool running) {
        unit_state *m = realloc(*v, (*n + 1) * sizeof(unit_state));

        if (!m)
                return -ENOMEM;
        *v = m;
        m[*n] = (unit_state) {
                .name = strdup(name),
                .load_state = strdup("loaded"),
                .active_state = strdup(running ? "active" : "inactive"),
                .sub_state = strdup(running ? "running" : "dead"),
        };
        (*n)++;
        return 0;
}

int deps_query(deps *d, char *const *names, size_t n, unit_state **ret, size_t *ret_n) {
        _cleanup_free_ char **sd = calloc(n + 1, sizeof(char *));
        unit_state *states = NULL;
        size_t n_sd = 0, got = 0;
        int r = 0;

        if (!sd)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                const char *id;
                if (!kind_of(names[i], &id))
                        sd[n_sd++] = names[i];
        }
        if (n_sd > 0) {
                if (!d->units)
                        return -ENOTCONN;
                r = units_query(d->units, sd, n_sd, &states, &got);
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; r >= 0 && i < n; i++) {
                const char *id;
                const dep_kind *k = kind_of(names[i], &id);
                dep_ctx c = { .cfg = d->cfg, .id = id };
                _cleanup_free_ char *why = NULL;
                bool running = false;
                if (!k)
                        continue;
                c.kind = k->prefix;
                r = k->query(&c, &running, &why);
                if (r < 0)
                        log_error("Cannot ask about %s: %s", names[i], why ?: strerror(-r));
                else
                        r = append_state(&states, &got, names[i], running);
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
        if (o->finished)
                event_free(o->finished);
        pthread_mutex_destroy(&o->lock);
        free(o);
}

/* Loop thread: every part is done; hand the outcomes over in the order they were asked. */
static void op_finished(evutil_socket_t fd, short what, void *userdata) {
        dep_op *o = userdata;
        units_done_fn done = o->done;
        void *ud = o->userdata;
        unit_outcome *out = TAKE_PTR(o->out);
        size_t n = o->n;

        for (size_t i = 0; i < o->n_items; i++)
                if (o->items[i].thread_started)
                        pthread_join(o->items[i].thread, NULL);
        for (size_t i = 0; i < n; i++)
                if (!out[i].result) {
                        out[i].result = strdup("failed");
                        out[i].ok = false;
                }
        o->n = 0;
        op_free(o);
        done(ud, out, n);
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

        if (o->stop)
                it->kind->stop(&it->ctx, o->timeout_usec, out);
        else
                it->kind->start(&it->ctx, o->timeout_usec, out);
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

static int op_run(deps *d, bool stop, char *const *names, size_t n, uint64_t timeout_usec, units_done_fn done,
                  void *userdata) {
        _cleanup_free_ char **sd = calloc(n + 1, sizeof(char *));
        dep_op *o = calloc(1, sizeof(*o));
        int r = 0;

        if (!o || !sd) {
                free(o);
                return -ENOMEM;
        }
        pthread_mutex_init(&o->lock, NULL);
        o->d = d;
        o->stop = stop;
        o->timeout_usec = timeout_usec;
        o->done = done;
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
        /* one extra part held until everything is launched, so nothing finishes early */
        o->remaining = o->n_items + (o->n_sd > 0) + 1;
        if (o->n_sd > 0) {
                r = stop ? units_stop(d->units, sd, o->n_sd, timeout_usec, on_units_done, o)
                         : units_start(d->units, sd, o->n_sd, timeout_usec, on_units_done, o);
                if (r < 0) {
                        for (size_t i = 0; i < o->n_sd; i++)
                                dep_outcome_set(&o->out[o->sd_index[i]], false, false, "%s", strerror(-r));
                        o->remaining--;
                }
        }
        for (size_t i = 0; i < o->n_items; i++) {
                dep_item *it = &o->items[i];
                int k = pthread_create(&it->thread, NULL, item_thread, it);
                if (k != 0) {
                        dep_outcome_set(&o->out[it->index], false, false, "cannot start a thread: %s", strerror(k));
                        op_part_done(o);
                } else
                        it->thread_started = true;
        }
        op_part_done(o);
        return 0;
}

int deps_running(deps *d, char *const *names, size_t n, char ***ret, size_t *ret_n) {
        unit_state *st = NULL;
        size_t n_st = 0, k = 0;
        char **v;
        int r;

        r = deps_query(d, names, n, &st, &n_st);
        if (r < 0)
                return r;
        v = calloc(n_st + 1, sizeof(char *));
        for (size_t i = 0; v && i < n_st; i++)
                if (unit_state_is_running(&st[i]) && !(v[k++] = strdup(st[i].name))) {
                        strv_free_n(v, k);
                        v = NULL;
                }
        unit_states_free(st, n_st);
        if (!v)
                return -ENOMEM;
        *ret = v;
        *ret_n = k;
        return 0;
}

int deps_stop(deps *d, char *const *names, size_t n, uint64_t timeout_usec, units_done_fn done, void *userdata) {
        return op_run(d, true, names, n, timeout_usec, done, userdata);
}

int deps_start(deps *d, char *const *names, size_t n, uint64_t timeout_usec, units_done_fn done, void *userdata) {
        return op_run(d, false, names, n, timeout_usec, done, userdata);
}
