/* SPDX-License-Identifier: MIT */
#pragma once

/* Plain leveled logging to stderr. Under systemd (JOURNAL_STREAM names our stderr) each line
 * carries a "<N>" priority prefix that journald understands; elsewhere a readable prefix. */

#include <syslog.h>

#include "macro.h"

void log_setup(const char *program_name);
void log_set_max_level(int level);
int log_get_max_level(void);
int log_to_journal_stream(void);

/* Logs and returns -abs(error) so callers can write "return log_error_errno(r, ...)". %m prints
 * strerror(abs(error)). */
int log_internal(int level, int error, const char *fmt, ...) _printf_(3, 4);

#define log_debug(...) log_internal(LOG_DEBUG, 0, __VA_ARGS__)
#define log_info(...) log_internal(LOG_INFO, 0, __VA_ARGS__)
#define log_notice(...) log_internal(LOG_NOTICE, 0, __VA_ARGS__)
#define log_warning(...) log_internal(LOG_WARNING, 0, __VA_ARGS__)
#define log_error(...) log_internal(LOG_ERR, 0, __VA_ARGS__)

#define log_debug_errno(e, ...) log_internal(LOG_DEBUG, (e), __VA_ARGS__)
#define log_warning_errno(e, ...) log_internal(LOG_WARNING, (e), __VA_ARGS__)
#define log_error_errno(e, ...) log_internal(LOG_ERR, (e), __VA_ARGS__)
