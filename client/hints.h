/* SPDX-License-Identifier: MIT */
#pragma once

/* What to do next when the socket cannot be used: each message names the command to run. Both
 * return EXIT_UNREACHABLE. */

/* The connection closed before a single line: under socket activation, the service behind the
 * socket did not start (systemd accepted the connection for it). */
int hint_activation_failed(const char *path);

/* connect() failed with EACCES: the user is not in the socket's group. */
int hint_permission_denied(const char *path);
