/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>

/* Start-up errors that name their remedy: what the daemon needs of the paths it was given, and
 * what to change when it does not get it. */

/* The remedy for a path the daemon cannot use, by errno ("create it", "ReadWritePaths=", ...), for
 * the socket or for a file of the database; NULL when there is nothing more specific to say than
 * the error itself. */
const char *startcheck_remedy(int error, bool socket);

/* The migrations directory must exist and be a readable directory: a typo in the configuration is
 * refused at start rather than served as an empty directory. Returns 0, or -errno after logging
 * the path and the remedy. */
int startcheck_migrations_dir(const char *dir);
