/* SPDX-License-Identifier: MIT */
#pragma once

/* The dependents of a database, of every kind, behind one interface: names in the configured
 * units list are systemd units unless they carry a kind prefix ("pm2:api", "exec:worker").
 * Systemd units go to units.c in one batch; every other dependent is stopped or started on a
 * thread of its own, so that all of them move in parallel, and the outcomes come back together
 * in the order asked, on the loop thread, as unit_outcome like a unit's. */

#include <event2/event.h>
#include <stdbool.h>
#include <stdint.h>

#include "settings.h"
#include "units.h"

typedef struct deps deps;

/* Connects to the service manager only when a systemd unit is configured. */
int deps_new(struct event_base *base, const config *cfg, deps **ret);
deps *deps_free(deps *d);

/* Each name's state (active_state "active" or "inactive" for other kinds); blocks briefly. */
int deps_query(deps *d, char *const *names, size_t n, unit_state **ret, size_t *ret_n);

/* Which of names run now (newly allocated, NULL-terminated, *ret_n of them): what a stop
 * records and stops. */
int deps_running(deps *d, char *const *names, size_t n, char ***ret, size_t *ret_n);

int deps_stop(deps *d, char *const *names, size_t n, uint64_t timeout_usec, units_done_fn done, void *userdata);
int deps_start(deps *d, char *const *names, size_t n, uint64_t timeout_usec, units_done_fn done, void *userdata);

/* The commands an operator runs to look at a dependent (its status, its log). */
int deps_inspect_commands(const config *cfg, const char *name, char **ret_status, char **ret_log);

/* Settings: whether "[SECTION]" is a dependent's section ("pm2.api"), whether it may hold key,
 * and whether a units-list entry names a known kind correctly. */
bool deps_section_is_known(const char *section, size_t len);
bool deps_key_is_known(const char *section, const char *key);
bool deps_name_is_valid(const char *name);

/* A configured dependent that cannot work (an exec: without its commands); NULL when all can. */
char *deps_check_config(const config *cfg);
