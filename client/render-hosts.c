/* SPDX-License-Identifier: MIT */
/* status on a database several hosts share (PostgreSQL): each host's daemon, whether it is alive
 * (its liveness lock is held in the server), what it does and waits for, its dependents. */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "output.h"
#include "render.h"

/* "api.service active, worker.service inactive", or "-". */
static int add_dependents(table *t, json_t *deps) {
        char buf[512] = "";
        size_t used = 0;

        for (size_t i = 0; i < json_array_size(deps) && used < sizeof(buf); i++) {
                json_t *d = json_array_get(deps, i);
                int n = snprintf(buf + used, sizeof(buf) - used, "%s%s %s", i ? ", " : "",
                                 json_get_str(d, "name") ?: "?", json_get_str(d, "active_state") ?: "?");
                if (n < 0)
                        break;
                used += (size_t) n;
        }
        return table_add(t, *buf ? buf : "-");
}

int render_hosts(json_t *hosts) {
        _cleanup_(table_freep) table *t = table_new(6);
        int r;

        if (!json_is_array(hosts))
                return 0;
        if (!t)
                return -ENOMEM;
        printf("\nHosts (%zu):\n", json_array_size(hosts));
        r = table_add(t, "HOST") ?: table_add(t, "LIVENESS") ?: table_add(t, "PID") ?: table_add(t, "STATE") ?:
            table_add(t, "WAITING FOR") ?: table_add(t, "DEPENDENTS");
        for (size_t i = 0; r >= 0 && i < json_array_size(hosts); i++) {
                json_t *h = json_array_get(hosts, i);
                int64_t pid = 0;

                json_get_int(h, "pid", &pid);
                r = table_add(t, json_get_str(h, "host") ?: "?") ?:
                    table_add(t, json_get_bool(h, "alive", false) ? "alive" : "dead") ?:
                    table_addf(t, "%" PRId64, pid) ?: table_add(t, json_get_str(h, "state") ?: "?") ?:
                    table_add(t, json_get_str(h, "waiting_for") ?: "-") ?:
                    add_dependents(t, json_get_array(h, "dependents"));
        }
        if (r < 0)
                return r;
        table_print(t, stdout, "  ");
        return 0;
}
