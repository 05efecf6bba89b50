/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <jansson.h>

#include "jobids.h"
#include "statedir.h"

#define JOBIDS_NAME "job-ids.json"

int jobids_load(int dirfd, uint64_t *ret_reserved) {
        json_t *doc = NULL, *v;
        int r;

        r = statedir_read(dirfd, JOBIDS_NAME, &doc);
        if (r == -ENOENT) {
                *ret_reserved = 0;
                return 0;
        }
        if (r < 0)
                return r;
        v = json_object_get(doc, "reserved_through");
        if (!json_is_integer(v) || json_integer_value(v) < 0) {
                json_decref(doc);
                return -EBADMSG;
        }
        *ret_reserved = (uint64_t) json_integer_value(v);
        json_decref(doc);
        return 0;
}

int jobids_reserve(int dirfd, uint64_t through) {
        json_t *doc = json_pack("{s:I}", "reserved_through", (json_int_t) through);
        int r;

        if (!doc)
                return -ENOMEM;
        r = statedir_write(dirfd, JOBIDS_NAME, doc);
        json_decref(doc);
        return r;
}
