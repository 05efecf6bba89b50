/* SPDX-License-Identifier: MIT */
/* The backend-independent half of drift: a schema as objects with attributes, and the
 * differences between two of them, the same for every backend (db-sqlite-drift.c and
 * db-postgres-drift.c read their catalogs into this shape). */

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "drift.h"
#include "macro.h"

/* A schema: object ("column t.c") -> {attribute: value}, plus "_owner", the table it belongs to. */
int drift_put(json_t *schema, const char *object, const char *owner, json_t *attrs) {
        if (!attrs)
                return -ENOMEM;
        if (owner && json_object_set_new(attrs, "_owner", json_string(owner)) < 0) {
                json_decref(attrs);
                return -ENOMEM;
        }
        return json_object_set_new(schema, object, attrs) < 0 ? -ENOMEM : 0;
}

/* "type TEXT, default 0" for an added or removed object; "type TEXT → INTEGER" for a changed
 * one (other given). */
static char *describe(json_t *attrs, json_t *other) {
        char *buf = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&buf, &size);
        const char *key;
        json_t *v;
        bool first = true;

        if (!f)
                return NULL;
        json_object_foreach(attrs, key, v) {
                json_t *w = other ? json_object_get(other, key) : NULL;
                const char *a = json_is_string(v) ? json_string_value(v) : NULL;
                _cleanup_free_ char *as = a ? NULL : json_dumps(v, JSON_ENCODE_ANY);
                _cleanup_free_ char *bs = w && !json_is_string(w) ? json_dumps(w, JSON_ENCODE_ANY) : NULL;
                const char *b = w ? (json_is_string(w) ? json_string_value(w) : bs) : NULL;

                if (key[0] == '_' || (other && json_equal(v, w)))
                        continue;
                if (other)
                        fprintf(f, "%s%s %s → %s", first ? "" : "; ", key, b ?: "none", a ?: as);
                else
                        fprintf(f, "%s%s %s", first ? "" : ", ", key, a ?: as);
                first = false;
        }
        if (fclose(f) != 0) {
                free(buf);
                return NULL;
        }
        return buf;
}

static int cmp_string(const void *a, const void *b) {
        return strcmp(*(const char *const *) a, *(const char *const *) b);
}

/* Whether the object's table is itself only on one side (then only the table is reported). */
static bool owner_missing(json_t *attrs, json_t *other_schema) {
        const char *owner = json_string_value(json_object_get(attrs, "_owner"));
        char object[512];

        if (!owner)
                return false;
        snprintf(object, sizeof(object), "table %s", owner);
        return !json_object_get(other_schema, object);
}

static int add_difference(json_t *out, const char *kind, const char *object, char *detail) {
        json_t *d;

        if (!detail)
                return -ENOMEM;
        d = json_pack("{s:s,s:s,s:s}", "kind", kind, "object", object, "detail", detail);
        free(detail);
        return d && json_array_append_new(out, d) == 0 ? 0 : -ENOMEM;
}

/* The differences from want (replayed) to live, sorted by object. */
int drift_compare(json_t *live, json_t *want, json_t **ret) {
        _cleanup_free_ const char **keys = NULL;
        json_t *out = json_array();
        size_t n = 0, cap = json_object_size(live) + json_object_size(want);
        const char *key;
        json_t *v;
        int r = 0;

        keys = calloc(cap + 1, sizeof(*keys));
        if (!out || !keys) {
                json_decref(out);
                return -ENOMEM;
        }
        json_object_foreach(live, key, v)
                keys[n++] = key;
        json_object_foreach(want, key, v)
                if (!json_object_get(live, key))
                        keys[n++] = key;
        qsort(keys, n, sizeof(*keys), cmp_string);
        for (size_t i = 0; r == 0 && i < n; i++) {
                json_t *l = json_object_get(live, keys[i]), *w = json_object_get(want, keys[i]);

                if (l && !w && !owner_missing(l, want))
                        r = add_difference(out, "added", keys[i], describe(l, NULL));
                else if (!l && w && !owner_missing(w, live))
                        r = add_difference(out, "removed", keys[i], describe(w, NULL));
                else if (l && w && !json_equal(l, w))
                        r = add_difference(out, "changed", keys[i], describe(l, w));
        }
        if (r < 0) {
                json_decref(out);
                return r;
        }
        *ret = out;
        return 0;
}

bool drift_skipped(const char *const *skip, const char *table) {
        for (; skip && *skip; skip++)
                if (strcasecmp(*skip, table) == 0)
                        return true;
        return false;
}
