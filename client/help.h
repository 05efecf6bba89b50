/* SPDX-License-Identifier: MIT */
#pragma once

/* migratectl's help: the overview (every verb in one line, fitting 80 columns) and each verb's
 * page (what it does, every option, one example). */

#include "verbs.h"

/* migratectl help, migratectl --help. Returns EXIT_OK. */
int help_overview(void);
/* migratectl help VERB, migratectl VERB --help. Returns EXIT_OK. */
int help_verb(const verb *v);
/* The help verb itself: no argument for the overview, a verb's name for its page. */
int verb_help(const verb *v, int argc, char **argv);
