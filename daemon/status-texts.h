/* SPDX-License-Identifier: MIT */
#pragma once

/* The status snapshot's part of a status reply, encoded once per snapshot: with 1000 applied
 * migrations it is ~175 KB of JSON, and rebuilding it at every request (protocol 2's version
 * rewrite copies the whole tree) was most of what an idle status cost. */

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "migdir-format.h"

#define STATUS_TEXTS_MAX 4

typedef struct status_text {
        char *text;
        size_t len;
        bool keys; /* protocol 2: versions spelled as the format's keys */
        const migration_format *format;
        unsigned applied_last;
} status_text;

/* The variants encoded of one snapshot: a human status (the newest applied) and a --json one,
 * in each protocol a client speaks. */
typedef struct status_texts {
        json_t *snapshot; /* borrowed: what the texts were encoded from */
        status_text items[STATUS_TEXTS_MAX];
        size_t n, next;
} status_texts;

/* The members the daemon's live state adds to every status reply, never taken from a snapshot. */
extern const char *const status_live_members[];

/* The snapshot (borrowed; NULL: none yet) as an encoded object, without the live members; with
 * applied_last > 0 only that many of the newest applied migrations ("applied_count" keeps the
 * total); keys: versions as format's keys. Returns a text the cache owns (valid until the next
 * call or status_texts_clear), its length in *ret_len; NULL on OOM. */
const char *status_texts_get(status_texts *c, json_t *snapshot, bool keys, const migration_format *format,
                             unsigned applied_last, size_t *ret_len);
void status_texts_clear(status_texts *c);
