/* SPDX-License-Identifier: MIT */
/* Many hosts on one shared database: the name this daemon's host goes by in the database's
 * history, so that another host's daemon can say who applied a plan ("applied by host X"). */

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hosts.h"
#include "macro.h"

static char *host_name;

int hosts_set_name(const char *configured) {
        char buf[HOST_NAME_MAX + 1] = "";
        char *s;

        if (!configured || !*configured) {
                if (gethostname(buf, sizeof(buf) - 1) < 0)
                        return -errno;
                configured = *buf ? buf : "localhost";
        }
        s = strdup(configured);
        if (!s)
                return -ENOMEM;
        /* a name with white space would not survive in "host=NAME" */
        for (char *c = s; *c; c++)
                if (*c == ' ' || *c == '\t' || *c == '\n')
                        *c = '_';
        free(host_name);
        host_name = s;
        return 0;
}

const char *hosts_name(void) {
        return host_name ?: "?";
}

char *hosts_of_requester(const char *requested_by) {
        const char *h;

        if (!requested_by)
                return NULL;
        h = strstr(requested_by, "host=");
        if (!h || (h != requested_by && h[-1] != ' '))
                return NULL;
        h += strlen("host=");
        return strndup(h, strcspn(h, " "));
}
