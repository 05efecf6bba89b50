/* SPDX-License-Identifier: MIT */
#pragma once

/* One row per kind of non-systemd dependent (dep-pm2.c, dep-exec.c, dep-container.c). Its functions block and run
 * on the dependent's own thread; they read only the configuration. */

#include <stdbool.h>
#include <stdint.h>

#include "settings.h"
#include "units.h"

typedef struct dep_ctx {
        const config *cfg;
        const char *kind; /* "pm2" */
        const char *id;   /* "api" in "pm2:api" */
} dep_ctx;

typedef struct dep_kind {
        const char *prefix;
        const char *const *keys; /* keys of its "[prefix.ID]" section */
        /* 0 with *ret_running, or -errno with *ret_error saying why it cannot be asked */
        int (*query)(const dep_ctx *c, bool *ret_running, char **ret_error);
        /* fill out->result ("done" on success), out->ok, out->killed */
        void (*stop)(const dep_ctx *c, uint64_t timeout_usec, unit_outcome *out);
        void (*start)(const dep_ctx *c, uint64_t timeout_usec, unit_outcome *out);
        int (*inspect)(const dep_ctx *c, char **ret_status, char **ret_log);
        /* NULL when the section has what the kind needs, else why not */
        char *(*check)(const dep_ctx *c);
} dep_kind;

extern const dep_kind dep_kind_pm2;
extern const dep_kind dep_kind_exec;
extern const dep_kind dep_kind_container;
extern const dep_kind dep_kind_compose;

/* A key of this dependent's "[kind.id]" section, or NULL. */
const char *dep_get(const dep_ctx *c, const char *key);

/* Seconds from a key, or fallback when unset or invalid. */
uint64_t dep_setting_usec(const dep_ctx *c, const char *key, uint64_t fallback);

void dep_outcome_set(unit_outcome *out, bool ok, bool killed, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
