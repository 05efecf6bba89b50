/* SPDX-License-Identifier: MIT */
#pragma once

/* Attempts that could not be written to the database's history because it stayed locked (a job
 * cancelled or interrupted while it waited for another writer): kept in the state directory as
 * "unrecorded-attempts.json" (the newest UNRECORDED_MAX) and merged into `history`. */

#include <jansson.h>

#define UNRECORDED_FILE_NAME "unrecorded-attempts.json"
#define UNRECORDED_MAX 50

/* Appends attempt (borrowed), in the history's row format. */
int unrecorded_add(int dirfd, const char *database, json_t *attempt);

/* Merges the kept attempts into a history result ({"attempts": [...]}, newest first), at most
 * limit rows in all. */
void unrecorded_merge(int dirfd, const char *database, json_t *history, unsigned limit);
