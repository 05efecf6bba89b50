/* SPDX-License-Identifier: MIT */
#pragma once

/* Shared by the PostgreSQL backend's files: db-postgres.c (connection, transactions, the query
 * API), db-postgres-script.c (migration scripts, statement by statement), db-postgres-lock.c (the
 * writer lock: a session advisory lock) and db-postgres-backup.c (pg_dump and pg_restore). */

#include <libpq-fe.h>
#include <pthread.h>

#include "db.h"
#include "macro.h"

extern const db_backend db_postgres_backend;

typedef struct db_pg {
        db base;
        PGconn *conn;
        PGcancel *canceller; /* PQcancel() from another thread uses only this, under cancel_lock */
        pthread_mutex_t cancel_lock;
        char *conninfo;      /* as configured but without the password, for pg_dump and the log */
        char *password;      /* from password_file; NULL: none */
        char *search_path;   /* the session's, as connected: restored after each script */
        unsigned lock_timeout_ms;
        atomic_bool *cancel;
        bool read_only;
        bool in_transaction; /* between begin() and commit() or rollback() */
        bool locked;       /* the session advisory lock is held */
        bool lock_by_begin; /* taken by begin(): released at commit or rollback */
        bool prisma_lock;   /* Prisma's layout: Prisma Migrate's own advisory lock is held with ours */
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
/* A connection to another database (dbname) of d's server, with d's settings and password,
 * writable. */
int pg_open_other(db *d, const char *dbname, db **ret, db_failure *f);
/* Puts the session's search_path back as it was when connected. */
int pg_restore_search_path(db_pg *p, db_failure *f);

/* db-postgres-script.c */
/* The end of the SQL statement starting at p: after its semicolon (quotes, dollar quotes and
 * comments skipped), or end. */
const char *pg_statement_end(const char *p, const char *end);
/* The first byte at or after p that is not white space or a comment. */
const char *pg_skip_blank(const char *p, const char *end);
int pg_exec_script(db *d, const char *sql, size_t size, bool in_transaction, db_failure *f);

/* db-postgres-lock.c */
/* Takes the writer lock by polling, calling wait (when given) with who holds it meanwhile. */
int pg_lock(db *d, db_wait_fn wait, void *userdata, db_failure *f);
void pg_unlock(db *d);
int pg_try_lock(db *d, bool *ret_got, db_failure *f);
int pg_lock_report(const char *target, json_t **ret_report);
int pg_lock_report_live(db *d, json_t **ret_report);

/* db-postgres-backup.c */
int pg_backup_to(db *d, const char *path, int fd, db_failure *f);
/* Runs argv (a PostgreSQL client program) with stdout to out_fd and the password, if any, in its
 * environment only; its wait status. */
int pg_run_tool(char *const argv[], int out_fd, const char *password, int *ret_status);

/* db-postgres-schema.c, db-postgres-drift.c */
int pg_schema_dump(db *d, const char *const *skip, const char *history, FILE *out, db_failure *f);
int pg_drift(db *d, const char *target, const drift_script *scripts, size_t n, const char *const *skip,
             json_t **ret_differences, char **ret_error);

/* db-postgres-restore.c */
int pg_inspect_backup(const char *path, bool full_check, int64_t *ret_version, char **ret_problem);
int pg_restore_from(db *d, const char *path, const char *scratch, const db_event *ev, db_failure *f);
int pg_reset(db *d, db_failure *f);
bool pg_backup_complete(int fd, uint64_t size);
