/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"

static const char *program = "migrated";
static int max_level = LOG_INFO;
static int journal_stream = -1;

/* JOURNAL_STREAM="dev:ino" tells us stderr is connected to journald (systemd.exec(5)). */
static int detect_journal_stream(void) {
        const char *e = getenv("JOURNAL_STREAM");
        unsigned long long dev, ino;
        struct stat st;

        if (!e || sscanf(e, "%llu:%llu", &dev, &ino) != 2)
                return 0;
        if (fstat(STDERR_FILENO, &st) < 0)
                return 0;
        return (unsigned long long) st.st_dev == dev && (unsigned long long) st.st_ino == ino;
}

void log_setup(const char *program_name) {
        const char *e;

        if (program_name)
                program = program_name;
        journal_stream = detect_journal_stream();
        e = getenv("MIGRATED_LOG_LEVEL");
        if (e && streq(e, "debug"))
                max_level = LOG_DEBUG;
}

void log_set_max_level(int level) {
        max_level = level;
}

int log_get_max_level(void) {
        return max_level;
}

int log_to_journal_stream(void) {
        if (journal_stream < 0)
                journal_stream = detect_journal_stream();
        return journal_stream;
}

static const char *level_name(int level) {
        switch (level) {
        case LOG_DEBUG: return "debug";
        case LOG_INFO: return "info";
        case LOG_NOTICE: return "notice";
        case LOG_WARNING: return "warning";
        default: return "error";
        }
}

int log_internal(int level, int error, const char *fmt, ...) {
        int saved = errno;
        va_list ap;

        if (error < 0)
                error = -error;
        if (level <= max_level) {
                if (log_to_journal_stream())
                        fprintf(stderr, "<%d>", level);
                else
                        fprintf(stderr, "%s: %s: ", program, level_name(level));
                errno = error;
                va_start(ap, fmt);
                vfprintf(stderr, fmt, ap);
                va_end(ap);
                fputc('\n', stderr);
        }
        errno = saved;
        return error > 0 ? -error : -EIO;
}
