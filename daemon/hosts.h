/* SPDX-License-Identifier: MIT */
#pragma once

/* Many hosts on one shared database (PostgreSQL): each host runs its own migrated, and the
 * database is where they meet. This names the host this daemon runs for. */

/* Sets the host's name: the configured one, or the kernel's host name when NULL or empty. */
int hosts_set_name(const char *configured);
/* The host's name ("?" before hosts_set_name). */
const char *hosts_name(void);
/* The host named in a requested_by text ("uid=0 pid=1 comm=x host=NAME"), newly allocated, or
 * NULL when it names none. */
char *hosts_of_requester(const char *requested_by);
