/* SPDX-License-Identifier: MIT */
#pragma once

/* The dependents of a database, of every kind, behind one interface: names in the configured
 * units list are systemd units unless they carry a kind prefix ("pm2:api", "exec:worker").
 * Systemd units go to units.c in one batch; every other dependent is asked, stopped or started on a
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
/* Waits for the operations still running (joins their threads) and completes them: called before
 * what their callbacks reply through goes away. */
void deps_drain(deps *d);
deps *deps_free(deps *d);

/* Called on the loop thread with each name's state (active_state "active" or "inactive" for other
 * kinds), or r < 0 when one could not be asked; takes ownership of states. */
typedef void (*deps_query_fn)(void *userdata, int r, unit_state *states, size_t n);

/* Asks for each name's state without blocking the loop: systemd units through the manager at once,
 * every other dependent (pm2's jlist, an exec: check command) on a thread of its own. */
int deps_query(deps *d, char *const *names, size_t n, deps_query_fn done, void *userdata);

/* Every configured dependent's state without waiting: systemd units asked now, other kinds as
 * their last query, stop or start left them ("unknown" before any). */
int deps_query_known(deps *d, unit_state **ret, size_t *ret_n);

/* Which of a query's states run (names newly allocated, NULL-terminated, *ret_n of them): what a
 * stop records and stops. */
int deps_running_of(const unit_state *st, size_t n, char ***ret, size_t *ret_n);

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
