/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>

#include "control.h"
#include "server.h"

/* Decodes one request line, checks it against the method table (parameters, privilege) and runs
 * the method: at once, on the reader thread, or as a queued job. Every request gets exactly one
 * final reply. */
void commands_dispatch(server *s, const peer *p, const char *line, size_t size);
