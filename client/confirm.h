/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>

/* Asks "QUESTION [y/N]" on the terminal before a change that loses data (down, redo, restore).
 * Asks only when stdin and stderr are terminals and yes is false; scripts (no terminal) are never
 * prompted and go ahead, as with dbmate's rollback. Returns true to go ahead. */
bool confirm(bool yes, const char *question);
/* Whether confirm would ask: a terminal on stdin and stderr, and no --yes. */
bool confirm_needed(bool yes);
