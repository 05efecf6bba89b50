/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "gate.h"
#include "macro.h"
#include "statedir.h"

#define GATE_VERSIONS_MAX 100000

static bool hold_valid(json_t *h) {
        return json_is_object(h) && json_is_integer(json_object_get(h, "version")) &&
               json_is_string(json_object_get(h, "by")) && json_is_integer(json_object_get(h, "job_id"));
}

static bool failed_plan_valid(json_t *f) {
        json_t *v = json_object_get(f, "versions"), *x;
        size_t i;

        if (!json_is_object(f) || !json_is_array(v) || json_array_size(v) > GATE_VERSIONS_MAX ||
            !json_is_integer(json_object_get(f, "job_id")))
                return false;
        json_array_foreach(v, i, x)
                if (!json_is_integer(x))
                        return false;
        return true;
}

int gate_load(gate *g, int dirfd, const char *database, char **ret_warning) {
        json_t *doc = NULL, *h, *f, *dbp;
        int r;

        *g = (gate) { .dirfd = dirfd, .database = database };
        *ret_warning = NULL;
        r = statedir_read(dirfd, GATE_FILE_NAME, &doc);
        if (r == -ENOENT)
                return 0;
        if (r == -EBADMSG) {
                *ret_warning = strdup(GATE_FILE_NAME " in the state directory is not a valid state document; ignored");
                return 0;
        }
        if (r < 0)
                return r;
        h = json_object_get(doc, "hold");
        f = json_object_get(doc, "failed_plan");
        dbp = json_object_get(doc, "database");
        if (!json_is_string(dbp) || !streq(json_string_value(dbp), database) || (h && !json_is_null(h) && !hold_valid(h)) ||
            (f && !json_is_null(f) && !failed_plan_valid(f))) {
                if (asprintf(ret_warning, "%s in the state directory does not describe %s; ignored", GATE_FILE_NAME,
                             database) < 0)
                        *ret_warning = NULL;
                json_decref(doc);
                return 0;
        }
        g->hold = hold_valid(h) ? json_incref(h) : NULL;
        g->failed_plan = failed_plan_valid(f) ? json_incref(f) : NULL;
        json_decref(doc);
        return 0;
}

void gate_done(gate *g) {
        json_decref(g->hold);
        json_decref(g->failed_plan);
        g->hold = g->failed_plan = NULL;
}

static int gate_save(gate *g) {
        json_t *doc;
        int r;

        if (!g->hold && !g->failed_plan)
                return statedir_remove(g->dirfd, GATE_FILE_NAME);
        doc = json_pack("{s:s,s:O,s:O}", "database", g->database, "hold", g->hold ?: json_null(), "failed_plan",
                        g->failed_plan ?: json_null());
        if (!doc)
                return -ENOMEM;
        r = statedir_write(g->dirfd, GATE_FILE_NAME, doc);
        json_decref(doc);
        return r;
}

int gate_hold(gate *g, json_t *version, const char *by, uint64_t job_id) {
        char now[32];
        json_t *h;

        if (!json_is_integer(version))
                return -EINVAL;
        db_timestamp(now);
        h = json_pack("{s:O,s:s,s:I,s:s}", "version", version, "by", by, "job_id", (json_int_t) job_id, "since", now);
        if (!h)
                return -ENOMEM;
        json_decref(g->hold);
        g->hold = h;
        return gate_save(g);
}

int gate_release(gate *g) {
        if (!g->hold)
                return 0;
        json_decref(g->hold);
        g->hold = NULL;
        return gate_save(g);
}

int gate_fail_plan(gate *g, uint64_t job_id, json_t *versions) {
        char now[32];
        json_t *f;

        db_timestamp(now);
        f = json_pack("{s:I,s:O,s:s}", "job_id", (json_int_t) job_id, "versions", versions, "since", now);
        if (!f)
                return -ENOMEM;
        json_decref(g->failed_plan);
        g->failed_plan = f;
        return gate_save(g);
}

int gate_clear_failed_plan(gate *g) {
        if (!g->failed_plan)
                return 0;
        json_decref(g->failed_plan);
        g->failed_plan = NULL;
        return gate_save(g);
}

static bool versions_contain(json_t *versions, json_t *v) {
        size_t i;
        json_t *x;

        json_array_foreach(versions, i, x)
                if (json_equal(x, v))
                        return true;
        return false;
}

/* Every pending migration belongs to the failed plan: the units may run on the unchanged schema. */
static bool pending_all_failed(const gate *g, json_t *pending) {
        json_t *versions = json_object_get(g->failed_plan, "versions"), *p;
        size_t i;

        if (!g->failed_plan || g->suspended)
                return false;
        json_array_foreach(pending, i, p)
                if (!versions_contain(versions, json_object_get(p, "version")))
                        return false;
        return true;
}

bool gate_opens(const gate *g, json_t *snapshot, bool strict, bool *ret_current, const char **ret_reason) {
        json_t *pending = json_object_get(snapshot, "pending");
        json_t *cur = json_object_get(snapshot, "current_version");

        *ret_current = false;
        *ret_reason = NULL;
        if (!snapshot || json_array_size(json_object_get(snapshot, "problems")) > 0)
                return false;
        if (json_array_size(pending) == 0) {
                *ret_current = true;
                return true;
        }
        if (g->hold && !g->suspended && json_equal(json_object_get(g->hold, "version"), cur ?: json_null())) {
                *ret_reason = "the schema is held at this version (down or restore); migratectl up applies the "
                              "pending migrations";
                return true;
        }
        if (!strict && pending_all_failed(g, pending)) {
                *ret_reason = "the last migration failed and was rolled back: the services run on the previous schema";
                return true;
        }
        return false;
}

json_t *gate_describe(const gate *g, json_t *snapshot) {
        json_t *pending = json_object_get(snapshot, "pending");
        json_t *latest = json_object_get(snapshot, "current_version");
        size_t n = json_array_size(pending);

        if (n > 0)
                latest = json_object_get(json_array_get(pending, n - 1), "version");
        return json_pack("{s:O,s:O,s:I,s:O,s:O}", "target",
                         g->hold ? json_object_get(g->hold, "version") : (latest ?: json_null()), "latest",
                         latest ?: json_null(), "pending", (json_int_t) n, "hold", g->hold ?: json_null(), "failed_plan",
                         g->failed_plan ?: json_null());
}
