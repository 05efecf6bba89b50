/* SPDX-License-Identifier: MIT */
#pragma once

/* migratectl lint [DIR]: the destructive-change lint of a migrations directory, without a daemon
 * or a database: migrated --one-shot plans every migration of DIR on an empty scratch database in
 * a private temporary directory, classifying each statement and collecting the findings
 * (daemon/classify.h); exit EXIT_LINT on an error not accepted in its file. */

#include "verbs.h"

int verb_lint(const verb *v, int argc, char **argv);
