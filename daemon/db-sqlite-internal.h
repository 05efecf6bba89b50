/* SPDX-License-Identifier: MIT */
#pragma once

/* Shared by the SQLite backend's files: db-sqlite.c (connection, transactions, scripts, the
 * query API, backups), db-sqlite-files.c (backup files, clones, holders, the history carried
 * through a restore) and db-sqlite-identity.c. */

#include <sqlite3.h>

#include "db.h"
#include "macro.h"

extern const db_backend db_sqlite_backend;

typedef struct db_sqlite {
        db base;
        sqlite3 *conn;
        char *path;
        db_file_identity identity;     /* the database file the connection opened */
        db_file_identity wal_identity; /* its -wal file, once one exists */
        unsigned busy_timeout_ms;
        atomic_bool *cancel;
        int sync_restore;              /* synchronous + 1 to put back when the transaction ends; 0: none */
} db_sqlite;

DEFINE_TRIVIAL_CLEANUP_FUNC(sqlite3_stmt *, sqlite3_finalize);
#define _cleanup_stmt_ _cleanup_(sqlite3_finalizep)

db_sqlite *to_sqlite(db *d);
int sqlite_fail(db_sqlite *s, int rc, db_failure *f, const char *what);
int sqlite_exec_simple(db_sqlite *s, const char *sql, db_failure *f, const char *what);
bool sqlite_table_exists(db_sqlite *s, const char *name, int *ret_rc);
void sqlite_rollback(db *d);

/* db-sqlite-files.c (restore) */
int sqlite_carry_history(db *d, const char *scratch, const db_event *ev, db_failure *f);

/* db-sqlite-files.c */
bool sqlite_backup_complete(int fd, uint64_t size);
int sqlite_inspect_backup(const char *path, bool full_check, int64_t *ret_version, char **ret_problem);
int sqlite_clone(db *d, int dirfd, const char *dir, const char *stem, char **ret_target, db_failure *f);
void sqlite_clone_remove(const char *target);
int sqlite_disk_size(const char *target, uint64_t *ret_bytes);
int sqlite_find_holders(const char *target, size_t *ret_n, char **ret_description, json_t **ret_holders);
int sqlite_lock_report(const char *target, json_t **ret_report);

/* Below this logical size the backup API's page copy, from memory, costs less than what a file
 * copy may need first: a checkpoint, with its two fsyncs, when the -wal holds frames. */
#define SQLITE_FILE_COPY_MIN_BYTES (8u * 1024u * 1024u)

/* db-sqlite-filecopy.c: the database's logical size (page count times page size; what a backup
 * holds, whatever the -wal has), or -1 */
int64_t sqlite_logical_size(db_sqlite *s);
/* *ret_done false when the caller must copy the pages instead */
int sqlite_backup_file_copy(db_sqlite *s, int fd, bool *ret_done);

/* db-sqlite-identity.c */
/* Records which file the path names now (refusing if it is not *expected, when known). */
int sqlite_identity_record(db_sqlite *s, const db_file_identity *expected, db_failure *f);
int sqlite_check_identity(db *d, db_failure *f);

/* db-sqlite-reset.c */
int sqlite_reset(db *d, db_failure *f);
/* db-sqlite-drift.c, db-sqlite-schema.c */
int sqlite_drift(db *d, const char *target, const drift_script *scripts, size_t n, const char *const *skip,
                 json_t **ret_differences, char **ret_error);
int sqlite_schema_dump(db *d, const char *const *skip, const char *history, FILE *out, db_failure *f);
int sqlite_change_token(db *d, uint64_t ret[static DB_CHANGE_TOKEN_WORDS], uint64_t *ret_others);
