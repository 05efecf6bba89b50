/* SPDX-License-Identifier: MIT */
/* Protocol version 2's versions: the engine, the planner and the histories carry a version as an
 * int64 that orders as its format orders versions; on the wire, version 2 spells it as the
 * format's string key and the empty schema as null. The conversion happens here, at the edge:
 * a request's version params on the way in, every reply line of a version-2 connection on the
 * way out. */

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "macro.h"
#include "versionkeys.h"

/* The reply fields that hold a version, at any depth, and the one that holds a list of them. */
static const char *const version_fields[] = {
        "version", "from_version", "to_version", "current_version", "latest_version", "target", "latest", "reached",
};
#define VERSION_LIST_FIELD "versions"

/* The request params that name a version. */
static const char *const version_params[] = { "to", "version" };

bool versionkeys_v1_refused(const migration_format *f) {
        return f && f->key_of;
}

int versionkeys_params(const migration_format *f, json_t *params, char **ret_message) {
        for (size_t i = 0; i < ELEMENTSOF(version_params); i++) {
                json_t *v = json_object_get(params, version_params[i]);
                int64_t version;

                if (!v)
                        continue;
                if (json_is_null(v))
                        version = 0;
                else if (!json_is_string(v)) {
                        if (asprintf(ret_message, "parameter \"%s\" is a version: in protocol version 2 a string "
                                     "key (\"1.2.10\") or null for the empty schema", version_params[i]) < 0)
                                *ret_message = NULL;
                        return -EINVAL;
                } else if (migration_format_parse_key(f, json_string_value(v), &version) < 0) {
                        if (asprintf(ret_message, "parameter \"%s\": \"%.64s\" is not a version of the %s format (%s)",
                                     version_params[i], json_string_value(v), f ? f->name : "native",
                                     f ? f->layout : "") < 0)
                                *ret_message = NULL;
                        return -EINVAL;
                }
                if (json_object_set_new(params, version_params[i], json_integer(version)) < 0)
                        return -ENOMEM;
        }
        return 0;
}

static json_t *key_value(const migration_format *f, json_t *v) {
        char key[MIGRATION_KEY_MAX];

        if (!json_is_integer(v) || json_integer_value(v) < 0)
                return json_incref(v);
        if (json_integer_value(v) == 0)
                return json_null();
        migration_format_key(f, json_integer_value(v), key);
        return json_string(key);
}

/* In place, over a copy the caller owns. */
static int rewrite(const migration_format *f, json_t *v) {
        const char *name;
        json_t *member, *item;
        size_t i;

        if (json_is_array(v)) {
                json_array_foreach(v, i, member)
                        if (rewrite(f, member) < 0)
                                return -ENOMEM;
                return 0;
        }
        json_object_foreach(v, name, member) {
                bool is_version = false;

                for (size_t k = 0; k < ELEMENTSOF(version_fields); k++)
                        is_version = is_version || streq(name, version_fields[k]);
                if (is_version) {
                        if (json_object_set_new(v, name, key_value(f, member)) < 0)
                                return -ENOMEM;
                } else if (streq(name, VERSION_LIST_FIELD) && json_is_array(member)) {
                        json_array_foreach(member, i, item)
                                if (json_array_set_new(member, i, key_value(f, item)) < 0)
                                        return -ENOMEM;
                } else if (rewrite(f, member) < 0)
                        return -ENOMEM;
        }
        return 0;
}

json_t *versionkeys_reply(const migration_format *f, json_t *v) {
        json_t *copy;

        if (!v)
                return NULL;
        /* a job's result is shared by every request that joined it: rewrite a copy */
        copy = json_deep_copy(v);
        json_decref(v);
        if (copy && rewrite(f, copy) < 0) {
                json_decref(copy);
                return NULL;
        }
        return copy;
}
