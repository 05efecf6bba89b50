/* SPDX-License-Identifier: MIT */
#pragma once

/* migratectl __complete: what the shell completion (packaging/completions) asks for, one name a
 * line, so that the scripts take the verbs from the binary and the names from the live daemon. */

#include <jansson.h>

/* Every visible verb. */
void complete_print_verbs(void);
/* Each migration of a status result by the stem mark and repair take ("0003_add_users"). */
int complete_print_migrations(json_t *status);
/* Each backup of a backups result by the file name restore takes. */
int complete_print_backups(json_t *backups);
