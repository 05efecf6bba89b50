/* SPDX-License-Identifier: MIT */
#pragma once

/* Shared by the PostgreSQL backend's files: db-postgres.c (connection, transactions, the query
 * API), db-postgres-script.c (migration scripts, statement by statement), db-postgres-lock.c (the
 * writer lock: a session advisory lock) and db-postgres-backup.c (pg_dump and pg_restore). */

#include <libpq-fe.h>

#include "db.h"
#include "macro.h"

extern const db_backend db_postgres_backend;

typedef struct db_pg {
        db base;
        PGconn *conn;
        PGcancel *canceller; /* PQcancel() from another thread uses only this */
        char *conninfo;      /* as configured but without the password, for pg_dump and the log */
        char *password;      /* from password_file; NULL: none */
        unsigned lock_timeout_ms;
        atomic_bool *cancel;
        bool read_only;
        bool locked;       /* the session advisory lock is held */
        bool lock_by_begin; /* taken by begin(): released at commit or rollback */
} db_pg;

DEFINE_TRIVIAL_CLEANUP_FUNC(PGresult *, PQclear);
#define _cleanup_pgresult_ _cleanup_(PQclearp)

db_pg *to_pg(db *d);
/* The connection's settings as a connection string without the password, which goes to
 * *ret_password (when given; NULL: it had none). */
char *pg_conninfo_split(const char *target, char **ret_password);
/* Maps a failed result (or a broken connection when res is NULL) to a failure. */
int pg_fail(db_pg *p, const PGresult *res, db_failure *f, const char *what);
/* Runs SQL without parameters; 0, or DB_FAILED with f filled. */
int pg_exec_simple(db_pg *p, const char *sql, db_failure *f, const char *what);
bool pg_result_ok(const PGresult *res);

/* db-postgres-script.c */
int pg_exec_script(db *d, const char *sql, size_t size, bool in_transaction, db_failure *f);

/* db-postgres-lock.c */
/* Takes the writer lock by polling, calling wait (when given) with who holds it meanwhile. */
int pg_lock(db *d, db_wait_fn wait, void *userdata, db_failure *f);
void pg_unlock(db *d);
int pg_lock_report(const char *target, json_t **ret_report);

/* db-postgres-backup.c */
int pg_backup_to(db *d, const char *path, int fd, db_failure *f);
bool pg_backup_complete(int fd, uint64_t size);
