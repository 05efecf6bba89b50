/* SPDX-License-Identifier: MIT */
#pragma once

/* The only code that talks to systemd: a bus connection to the system or user manager, attached
 * to the libevent loop, that stops and starts sets of units in parallel and waits for their jobs
 * through JobRemoved signals (no polling). A stop that outlasts its timeout is escalated to
 * KillUnit(SIGKILL), then waited for once more. */

#include <event2/event.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct units units;

typedef enum units_manager {
        UNITS_MANAGER_SYSTEM,
        UNITS_MANAGER_USER,
} units_manager;

int units_manager_from_string(const char *s, units_manager *ret);
const char *units_manager_to_string(units_manager m);

/* Connects to the manager: its private socket when we may use it (no bus daemon needed), else
 * the system or user bus. */
int units_new(struct event_base *base, units_manager m, units **ret);
units *units_free(units *u);

typedef struct unit_state {
        char *name;
        char *load_state;   /* "loaded", "not-found", ... */
        char *active_state; /* "active", "inactive", "failed", "activating", ... */
        char *sub_state;
} unit_state;

void unit_states_free(unit_state *s, size_t n);

/* Asks the manager for the state of each unit (one round trip, blocking briefly). */
int units_query(units *u, char *const *names, size_t n, unit_state **ret, size_t *ret_n);

/* True for states in which the unit may have the database open. */
bool unit_state_is_running(const unit_state *s);

typedef struct unit_outcome {
        char *name;
        char *result;  /* JobRemoved's result: "done", "failed", "timeout", "canceled", ...; or an error */
        bool ok;       /* stop: the unit is down; start: the unit started */
        bool killed;   /* stop: escalated to SIGKILL */
        uint64_t usec; /* from the request to the end of its job */
} unit_outcome;

void unit_outcomes_free(unit_outcome *o, size_t n);

/* Called on the loop thread once every unit's job has ended (or given up on). Takes ownership of
 * outcomes. */
typedef void (*units_done_fn)(void *userdata, unit_outcome *outcomes, size_t n);

/* Stops names in parallel; after timeout_usec, SIGKILLs what is still running and waits for the
 * same time again before giving up on it. */
int units_stop(units *u, char *const *names, size_t n, uint64_t timeout_usec, units_done_fn done, void *userdata);

/* Starts names in parallel and waits for their start jobs, at most timeout_usec. */
int units_start(units *u, char *const *names, size_t n, uint64_t timeout_usec, units_done_fn done, void *userdata);
