/* SPDX-License-Identifier: MIT */
/* The SQLite backend's file-level operations, which need no open connection or make their own:
 * checking and reading backup files, rehearsal clones with their -wal and -shm, the space a
 * backup needs, and the lock holders. */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backups.h"
#include "db-sqlite-internal.h"
#include "history.h"
#include "lockcheck.h"
#include "lockinfo.h"
#include "macro.h"

static uint32_t be32(const unsigned char *p) {
        return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 | (uint32_t) p[2] << 8 | p[3];
}

/* Complete when the SQLite header describes exactly the file's size. */
bool sqlite_backup_complete(int fd, uint64_t size) {
        unsigned char h[100];
        uint32_t page_size;

        if (pread(fd, h, sizeof(h), 0) != (ssize_t) sizeof(h) || memcmp(h, "SQLite format 3", 16) != 0)
                return false;
        page_size = (uint32_t) h[16] << 8 | h[17];
        if (page_size == 1)
                page_size = 65536;
        if (page_size < 512 || (page_size & (page_size - 1)) != 0)
                return false;
        /* the in-header page count is valid when its version-valid-for matches the change counter */
        return be32(h + 92) == be32(h + 24) && be32(h + 28) != 0 && (uint64_t) be32(h + 28) * page_size == size;
}

int sqlite_inspect_backup(const char *path, bool full_check, int64_t *ret_version, char **ret_problem) {
        sqlite3 *c = NULL;
        sqlite3_stmt *st = NULL;
        int rc;

        *ret_problem = NULL;
        rc = sqlite3_open_v2(path, &c, SQLITE_OPEN_READONLY, NULL);
        if (rc == SQLITE_OK)
                rc = sqlite3_prepare_v2(c, full_check ? "PRAGMA integrity_check(1)" : "PRAGMA quick_check(1)", -1, &st,
                                        NULL);
        if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW &&
            !streq((const char *) sqlite3_column_text(st, 0) ?: "", "ok")) {
                if (asprintf(ret_problem, "fails its integrity check: %s", sqlite3_column_text(st, 0)) < 0)
                        *ret_problem = NULL;
                rc = SQLITE_CORRUPT;
        } else if (rc != SQLITE_OK) {
                if (asprintf(ret_problem, "is not a readable SQLite database: %s", c ? sqlite3_errmsg(c) : sqlite3_errstr(rc)) < 0)
                        *ret_problem = NULL;
        }
        sqlite3_finalize(st);
        st = NULL;
        /* Its version, read by the history of whichever format's table it has: the connection
         * lent to the history layer for the time of the read. */
        if (rc == SQLITE_OK) {
                db_sqlite tmp = { .base.backend = &db_sqlite_backend, .conn = c, .path = (char *) path };
                db_failure f = {};

                if (history_version_of(&tmp.base, ret_version, &f) != 0) {
                        if (asprintf(ret_problem, "has an unreadable migration history: %s",
                                     f.message ?: sqlite3_errmsg(c)) < 0)
                                *ret_problem = NULL;
                        rc = SQLITE_ERROR;
                }
                db_failure_clear(&f);
        }
        sqlite3_close(c);
        return rc == SQLITE_OK ? 0 : -EINVAL;
}

/* A rehearsal clone is an online backup into a file of our own beside the backups. */
int sqlite_clone(db *d, int dirfd, const char *dir, const char *stem, char **ret_target, db_failure *f) {
        _cleanup_free_ char *name = NULL, *path = NULL;
        _cleanup_close_ int fd = -EBADF;
        int r;

        if (asprintf(&name, "%s.sqlite", stem) < 0 || asprintf(&path, "%s/%s", dir, name) < 0)
                return -ENOMEM;
        fd = backups_create_file(dirfd, name);
        if (fd < 0) {
                db_failure_clear(f);
                f->code = PROTOCOL_ERROR_BACKUP_FAILED;
                if (asprintf(&f->message, "cannot create the rehearsal copy %s: %s", path, strerror(-fd)) < 0)
                        return -ENOMEM;
                return DB_FAILED;
        }
        r = d->backend->backup_to(d, path, fd, f);
        if (r != 0) {
                (void) unlinkat(dirfd, name, 0);
                return r;
        }
        *ret_target = TAKE_PTR(path);
        return 0;
}

/* The clone and the -wal and -shm its connections left. */
void sqlite_clone_remove(const char *target) {
        static const char *const suffixes[] = { "-wal", "-shm" };

        (void) unlink(target);
        for (size_t i = 0; i < ELEMENTSOF(suffixes); i++) {
                _cleanup_free_ char *p = NULL;
                if (asprintf(&p, "%s%s", target, suffixes[i]) >= 0)
                        (void) unlink(p);
        }
}

static uint64_t file_size(const char *path) {
        struct stat st;

        return stat(path, &st) == 0 && S_ISREG(st.st_mode) ? (uint64_t) st.st_size : 0;
}

/* A backup copies the pages of the database and of its WAL: at most both files' sizes. */
int sqlite_disk_size(const char *target, uint64_t *ret_bytes) {
        _cleanup_free_ char *wal = NULL;

        if (asprintf(&wal, "%s-wal", target) < 0)
                return -ENOMEM;
        *ret_bytes = file_size(target) + file_size(wal);
        return 0;
}

/* The /proc/<pid>/fd scan for the database, its -wal and its -shm. */
int sqlite_find_holders(const char *target, size_t *ret_n, char **ret_description, json_t **ret_holders) {
        holder *h = NULL;
        size_t n = 0;
        int r;

        r = lockcheck_find_holders(target, &h, &n);
        if (r < 0) {
                holders_free(h, n);
                return r;
        }
        *ret_n = n;
        if (ret_description)
                *ret_description = n > 0 ? holders_describe(h, n) : NULL;
        if (ret_holders)
                *ret_holders = n > 0 ? holders_to_json(h, n) : NULL;
        holders_free(h, n);
        return 0;
}

/* The /proc/locks and lock-byte scan of lock-check. */
int sqlite_lock_report(const char *target, json_t **ret_report) {
        return lockinfo_inspect(target, ret_report);
}

/* Inserts a finished non-migration job into the attempts table of the copy being restored. */
static int insert_restored_event(db_sqlite *s, const db_event *ev, db_failure *f) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        char now[32];
        int rc;

        db_timestamp(now);
        rc = sqlite3_prepare_v2(s->conn,
                                "INSERT INTO restored.migrated_attempts (job_id, direction, status, from_version, "
                                "to_version, versions, detail, started_at, finished_at, requested_by) "
                                "VALUES (?1, ?2, 'succeeded', ?3, ?4, '[]', ?5, ?6, ?6, ?7)", -1, &st, NULL);
        if (rc == SQLITE_OK) {
                sqlite3_bind_int64(st, 1, (sqlite3_int64) ev->job_id);
                sqlite3_bind_text(st, 2, ev->direction, -1, SQLITE_STATIC);
                sqlite3_bind_int64(st, 3, ev->from_version);
                sqlite3_bind_int64(st, 4, ev->to_version);
                sqlite3_bind_text(st, 5, ev->detail, -1, SQLITE_STATIC);
                sqlite3_bind_text(st, 6, now, -1, SQLITE_STATIC);
                sqlite3_bind_text(st, 7, ev->requested_by, -1, SQLITE_STATIC);
                rc = sqlite3_step(st);
        }
        return rc == SQLITE_DONE ? 0 : sqlite_fail(s, rc, f, "cannot record the job in the history");
}

/* The history is the live database's, never the backup's: the copy about to be restored (attached
 * as "restored") gets every attempt recorded so far plus the restore itself, at the current
 * layout of migrated's tables, in one transaction, so that a restore never forgets an attempt
 * and ids continue where they were. */
int sqlite_carry_history(db *d, const char *scratch, const db_event *ev, db_failure *f) {
        db_sqlite *s = to_sqlite(d);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        char *sql = NULL;
        bool have;
        int rc, r;

        rc = sqlite3_prepare_v2(s->conn, "ATTACH ?1 AS restored", -1, &st, NULL);
        if (rc == SQLITE_OK) {
                sqlite3_bind_text(st, 1, scratch, -1, SQLITE_STATIC);
                rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(s->conn);
        }
        if (rc != SQLITE_OK)
                return sqlite_fail(s, rc, f, "cannot open the copy being restored");
        have = sqlite_table_exists(s, "migrated_attempts", &rc);
        r = rc == SQLITE_OK ? 0 : sqlite_fail(s, rc, f, "cannot read the history");
        if (r == 0)
                r = sqlite_exec_simple(s, "PRAGMA restored.journal_mode = OFF; PRAGMA restored.synchronous = OFF; BEGIN",
                                       f, "cannot prepare the copy being restored");
        if (r == 0 && !ev) {
                /* the history lives apart: a backup an earlier migrated took may still hold its tables */
                r = sqlite_exec_simple(s, "DROP TABLE IF EXISTS restored.migrated_attempts; "
                                       "DROP TABLE IF EXISTS restored.migrated_meta; COMMIT",
                                       f, "cannot prepare the copy being restored");
                sqlite_rollback(d);
                (void) sqlite3_exec(s->conn, "DETACH restored", NULL, NULL, NULL);
                return r;
        }
        if (r == 0) {
                sql = sqlite3_mprintf("DROP TABLE IF EXISTS restored.migrated_attempts; "
                                      "CREATE TABLE restored.migrated_attempts %s; "
                                      "CREATE TABLE IF NOT EXISTS restored.migrated_meta "
                                      "(key TEXT PRIMARY KEY, value TEXT NOT NULL); "
                                      "INSERT INTO restored.migrated_meta (key, value) VALUES ('schema_version', %d) "
                                      "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                                      history_attempts_columns, HISTORY_SCHEMA_VERSION);
                r = sql ? sqlite_exec_simple(s, sql, f, "cannot create migrated_attempts") : -ENOMEM;
                sqlite3_free(sql);
        }
        if (r == 0 && have)
                r = sqlite_exec_simple(s, "INSERT INTO restored.migrated_attempts (" HISTORY_ATTEMPT_COLUMNS ") SELECT "
                                       HISTORY_ATTEMPT_COLUMNS " FROM main.migrated_attempts", f,
                                       "cannot carry the history into the restored copy");
        if (r == 0)
                r = insert_restored_event(s, ev, f);
        if (r == 0)
                r = sqlite_exec_simple(s, "COMMIT", f, "cannot carry the history into the restored copy");
        sqlite_rollback(d);
        (void) sqlite3_exec(s->conn, "DETACH restored", NULL, NULL, NULL);
        return r;
}
