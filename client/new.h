/* SPDX-License-Identifier: MIT */
#pragma once

/* `migratectl new`: creates the up/down file pair of the next migration, without the daemon. */

#include <stdbool.h>

/* $MIGRATED_MIGRATIONS, else ./migrations. */
const char *new_default_dir(void);

/* Creates NNNN_name.up.sql and NNNN_name.down.sql in dir, never overwriting. Prints the two paths
 * (or a JSON document) and returns an exit code; errors are printed. */
int new_migration(const char *dir, const char *name, bool json);
