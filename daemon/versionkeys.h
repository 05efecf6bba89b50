/* SPDX-License-Identifier: MIT */
#pragma once

/* Versions on the wire in protocol version 2: the format's string keys, null for the empty
 * schema (see versionkeys.c). */

#include <jansson.h>
#include <stdbool.h>

#include "migdir-format.h"

/* Whether a version-1 request (integers) must be refused: the format's versions are not integers. */
bool versionkeys_v1_refused(const migration_format *f);

/* Turns a version-2 request's version params ("to", "version": a key or null) into the integers
 * the handlers read. Returns 0, -EINVAL with *ret_message (malloc'd, or NULL when out of memory),
 * or -ENOMEM. */
int versionkeys_params(const migration_format *f, json_t *params, char **ret_message);

/* A reply object for a version-2 connection: a copy of v (whose reference it takes) with every
 * version field as its key. NULL when v is NULL or out of memory. */
json_t *versionkeys_reply(const migration_format *f, json_t *v);
