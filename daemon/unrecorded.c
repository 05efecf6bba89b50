/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <string.h>

#include "macro.h"
#include "statedir.h"
#include "unrecorded.h"

/* The kept attempts, oldest first; an empty array when there are none or the file is not ours. */
static json_t *unrecorded_load(int dirfd, const char *database) {
        json_t *doc = NULL, *arr;

        if (statedir_read(dirfd, UNRECORDED_FILE_NAME, &doc) < 0)
                return json_array();
        arr = json_object_get(doc, "attempts");
        if (!json_is_string(json_object_get(doc, "database")) ||
            !streq(json_string_value(json_object_get(doc, "database")), database) || !json_is_array(arr)) {
                json_decref(doc);
                return json_array();
        }
        json_incref(arr);
        json_decref(doc);
        return arr;
}

int unrecorded_add(int dirfd, const char *database, json_t *attempt) {
        json_t *arr = unrecorded_load(dirfd, database), *doc;
        int r;

        if (!arr || json_array_append(arr, attempt) < 0) {
                json_decref(arr);
                return -ENOMEM;
        }
        while (json_array_size(arr) > UNRECORDED_MAX)
                json_array_remove(arr, 0);
        doc = json_pack("{s:s,s:o}", "database", database, "attempts", arr);
        if (!doc)
                return -ENOMEM;
        r = statedir_write(dirfd, UNRECORDED_FILE_NAME, doc);
        json_decref(doc);
        return r;
}

static const char *started(json_t *row) {
        return json_string_value(json_object_get(row, "started_at")) ?: "";
}

void unrecorded_merge(int dirfd, const char *database, json_t *history, unsigned limit) {
        json_t *kept = unrecorded_load(dirfd, database), *rows = json_object_get(history, "attempts"), *a;
        size_t i;

        if (!json_is_array(rows)) {
                json_decref(kept);
                return;
        }
        /* rows is newest first; insert each kept attempt (oldest first) before the first older row */
        json_array_foreach(kept, i, a) {
                size_t at = 0;
                while (at < json_array_size(rows) && strcmp(started(json_array_get(rows, at)), started(a)) > 0)
                        at++;
                json_array_insert(rows, at, a);
        }
        while (json_array_size(rows) > limit)
                json_array_remove(rows, json_array_size(rows) - 1);
        json_decref(kept);
}
