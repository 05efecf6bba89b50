/* SPDX-License-Identifier: MIT */
#pragma once

/* Turns migration sets, applied sets and plans into the protocol's JSON shapes. Pure functions:
 * the one place that decides what the documents look like. */

#include <jansson.h>

#include "migdir.h"
#include "plan.h"

/* status result without the live fields (state, job, queue_length), which the loop adds. */
json_t *report_status(const char *database, const migration_set *set, const applied_set *applied,
                      json_t *backend_info, const migdir_errors *dir_errors);

/* Applied migrations whose file changed or vanished, plus directory errors. */
json_t *report_problems(const migration_set *set, const applied_set *applied, const migdir_errors *dir_errors);

json_t *report_plan(const plan *p);

/* The error extra fields for a refused plan: version, file, expected/actual checksums. */
json_t *report_plan_error(const plan_error *e);

json_t *report_dir_errors(const migdir_errors *e);
