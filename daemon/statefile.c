/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db.h"
#include "macro.h"
#include "statedir.h"
#include "statefile.h"

#define STATEFILE_UNITS_MAX 1024

char *statefile_legacy_path(const char *database) {
        char *p;

        if (asprintf(&p, "%s-migrated.state", database) < 0)
                return NULL;
        return p;
}

void strv_free_n(char **v, size_t n) {
        for (size_t i = 0; v && i < n; i++)
                free(v[i]);
        free(v);
}

int statefile_write(int dirfd, const char *database, uint64_t job_id, char *const *units, size_t n) {
        json_t *doc, *arr = json_array();
        char now[32];
        int r;

        if (!arr)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                json_array_append_new(arr, json_string(units[i]));
        db_timestamp(now);
        doc = json_pack("{s:I,s:s,s:o,s:s,s:i}", "job_id", (json_int_t) job_id, "database", database, "units", arr,
                        "since", now, "pid", (int) getpid());
        if (!doc)
                return -ENOMEM;
        r = statedir_write(dirfd, STATEFILE_NAME, doc);
        json_decref(doc);
        return r;
}

int statefile_read(int dirfd, const char *database, uint64_t *ret_job_id, char ***ret_units, size_t *ret_n) {
        json_t *doc = NULL, *arr, *job, *dbp;
        char **v;
        size_t n;
        int r;

        r = statedir_read(dirfd, STATEFILE_NAME, &doc);
        if (r < 0)
                return r;
        arr = json_object_get(doc, "units");
        job = json_object_get(doc, "job_id");
        dbp = json_object_get(doc, "database");
        if (!json_is_array(arr) || json_array_size(arr) > STATEFILE_UNITS_MAX || !json_is_integer(job) ||
            json_integer_value(job) <= 0 || !json_is_string(dbp) || !streq(json_string_value(dbp), database)) {
                json_decref(doc);
                return -EBADMSG;
        }
        n = json_array_size(arr);
        v = calloc(n + 1, sizeof(char *));
        for (size_t i = 0; v && i < n; i++) {
                const char *name = json_string_value(json_array_get(arr, i));
                if (!name) {
                        strv_free_n(v, n);
                        json_decref(doc);
                        return -EBADMSG;
                }
                v[i] = strdup(name);
        }
        *ret_job_id = (uint64_t) json_integer_value(job);
        json_decref(doc);
        if (!v)
                return -ENOMEM;
        *ret_units = v;
        *ret_n = n;
        return 0;
}

int statefile_remove(int dirfd) {
        return statedir_remove(dirfd, STATEFILE_NAME);
}
