/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "confirm.h"

bool confirm_needed(bool yes) {
        return !yes && isatty(STDIN_FILENO) && isatty(STDERR_FILENO);
}

bool confirm(bool yes, const char *question) {
        char answer[64];
        size_t n;

        if (!confirm_needed(yes))
                return true;
        fprintf(stderr, "%s [y/N] ", question);
        fflush(stderr);
        if (!fgets(answer, sizeof(answer), stdin)) {
                fputc('\n', stderr);
                return false;
        }
        n = strcspn(answer, "\r\n");
        answer[n] = '\0';
        return strcasecmp(answer, "y") == 0 || strcasecmp(answer, "yes") == 0;
}
