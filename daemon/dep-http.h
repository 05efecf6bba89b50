/* SPDX-License-Identifier: MIT */
#pragma once

/* A minimal HTTP client for the Docker Engine API on its Unix socket (docker, podman's compatible
 * service): one request per connection, HTTP/1.0 so that the answer is never chunked, the body
 * read until the engine closes. */

#include <stdint.h>

/* Returns 0 with the HTTP status and the body (NUL-terminated), or -errno (-ETIME at the
 * deadline). */
int dep_http_request(const char *socket_path, const char *method, const char *path, uint64_t timeout_usec,
                     int *ret_status, char **ret_body);

/* Percent-encodes s for a query string. */
char *dep_http_escape(const char *s);
