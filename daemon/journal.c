/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <systemd/sd-journal.h>

#include "journal.h"
#include "log.h"
#include "macro.h"

#define JOURNAL_FIELDS_MAX 16

void journal_event(int priority, const char *message_id, const char *message, ...) {
        struct iovec iov[JOURNAL_FIELDS_MAX + 3];
        char *owned[JOURNAL_FIELDS_MAX + 3];
        size_t n = 0;
        va_list ap;

        if (priority > log_get_max_level())
                return;
        if (!log_to_journal_stream()) {
                /* plain stderr: the message, then its fields as KEY=value */
                char line[1024];
                size_t len = (size_t) snprintf(line, sizeof(line), "%s", message);
                va_start(ap, message);
                for (const char *key; (key = va_arg(ap, const char *));) {
                        const char *value = va_arg(ap, const char *);
                        if (value && len < sizeof(line))
                                len += (size_t) snprintf(line + len, sizeof(line) - len, " %s=%s", key, value);
                }
                va_end(ap);
                log_internal(priority, 0, "%s", line);
                return;
        }
        if (asprintf(&owned[n], "MESSAGE=%s", message) >= 0)
                n++;
        if (asprintf(&owned[n], "PRIORITY=%d", priority) >= 0)
                n++;
        if (asprintf(&owned[n], "MESSAGE_ID=%s", message_id) >= 0)
                n++;
        va_start(ap, message);
        for (const char *key; (key = va_arg(ap, const char *));) {
                const char *value = va_arg(ap, const char *);
                if (!value || n >= ELEMENTSOF(owned))
                        continue;
                if (asprintf(&owned[n], "%s=%s", key, value) >= 0)
                        n++;
        }
        va_end(ap);
        for (size_t i = 0; i < n; i++)
                iov[i] = (struct iovec) { .iov_base = owned[i], .iov_len = strlen(owned[i]) };
        (void) sd_journal_sendv(iov, (int) n);
        for (size_t i = 0; i < n; i++)
                free(owned[i]);
}
