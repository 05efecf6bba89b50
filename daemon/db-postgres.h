/* SPDX-License-Identifier: MIT */
#pragma once

/* What the daemon learns of a PostgreSQL database before serving it (main.c). */

/* Connects once and names the database by the server's identity, "pg-<system identifier>-<database
 * oid>" (whatever host name or address reaches it), and describes the connection without its
 * password for the log. On failure returns < 0 with *ret_error set when it can say why. */
int db_postgres_identify(const char *target, const char *password_file, char **ret_key, char **ret_display,
                         char **ret_error);

/* The libpq connection of a database opened with the postgresql backend (NULL for any other):
 * for the hosts' own connection (hosts-pg.c), which the event loop drives. */
struct pg_conn;
struct db;
struct pg_conn *db_postgres_conn(struct db *d);
