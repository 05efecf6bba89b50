/* SPDX-License-Identifier: MIT */
#pragma once

/* libpq is loaded when the PostgreSQL backend first needs it (libpq-lazy.c): NULL when it is
 * there, else why it cannot be loaded. */
const char *libpq_missing(void);
