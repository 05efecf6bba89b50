/* SPDX-License-Identifier: MIT */
#pragma once

/* migratectl's verbs: the table migratectl.c defines, read by the help and the argument parser. */

#include "protocol-methods.h"

/* The client's side of a method: the verb that calls it, which parses its own arguments and
 * returns an exit code. The verb's name comes from the protocol's method table
 * (common/protocol-methods.c) unless the row names itself (verbs without a method, such as new,
 * and verbs built on another verb's method, such as version). */
typedef struct verb verb;
struct verb {
        protocol_method_id method; /* _METHOD_INVALID: runs without the daemon */
        const char *name;          /* NULL: the method's verb */
        int (*run)(const verb *v, int argc, char **argv);
        const char *usage;
        const char *help; /* one line, at most VERB_HELP_MAX characters */
};

/* The top-level help's command column plus this fit 80 columns. */
#define VERB_HELP_MAX 64

/* Ends with a row whose run is NULL. */
extern const verb verbs[];

const char *verb_name(const verb *v);
const verb *verb_find(const char *name);
