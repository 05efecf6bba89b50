/* SPDX-License-Identifier: MIT */
/* migratectl seed, up --seed and reset: what the seeds did, and their progress events. */

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "output.h"
#include "render.h"

/* "Seeds: applied 001_a.sql, 002_b.sql; 1 already applied (2 retries)", from a result's "seeds". */
void render_seeds(json_t *result) {
        json_t *seeds = json_object_get(result, "seeds"), *names, *x;
        int64_t retries = 0;
        size_t i;

        if (!json_is_object(seeds))
                return;
        names = json_get_array(seeds, "applied");
        printf("Seeds: ");
        if (json_array_size(names) == 0)
                printf("none to apply");
        else
                printf("applied ");
        json_array_foreach(names, i, x)
                printf("%s%s", i ? ", " : "", json_string_value(x) ?: "?");
        if (json_get_array_size(seeds, "skipped") > 0)
                printf("; %zu already applied", json_get_array_size(seeds, "skipped"));
        if (json_get_int(seeds, "retries", &retries) && retries > 0)
                printf(" (%" PRId64 " %s after transient failures)", retries, retries == 1 ? "retry" : "retries");
        printf(" [%s]\n", json_get_str(seeds, "dir") ?: "?");
}

/* A seed job, or a reset: its own lines; false for any other result. */
bool render_seed_job(json_t *result) {
        const char *status = json_get_str(result, "status") ?: "";
        json_t *bk = json_object_get(result, "backup");

        if (streq(status, "seeded")) {
                render_seeds(result);
                return true;
        }
        if (!streq(status, "reset"))
                return false;
        if (json_get_str(bk, "path"))
                printf("Backup taken first: %s\n", json_get_str(bk, "path"));
        size_t n = json_get_array_size(json_object_get(result, "migrations"), "applied");
        printf("Reset: every table dropped, %zu migration%s applied again\n", n, n == 1 ? "" : "s");
        render_seeds(result);
        return true;
}

void render_seed_event(json_t *ev) {
        const char *phase = json_get_str(ev, "phase") ?: "";
        int64_t retry = 0, ms = 0;

        if (streq(phase, "retrying")) {
                json_get_int(ev, "retry", &retry);
                json_get_int(ev, "backoff_ms", &ms);
                fprintf(stderr, "seed %s: transient failure, retry %" PRId64 " in %" PRId64 " ms: %s\n",
                        json_get_str(ev, "name") ?: "?", retry, ms, json_get_str(ev, "reason") ?: "");
        } else
                fprintf(stderr, "seed %s: %s\n", json_get_str(ev, "name") ?: "?", phase);
}
