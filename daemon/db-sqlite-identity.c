/* SPDX-License-Identifier: MIT */
/* Which files the SQLite connection has open, and whether the paths still name them: a database
 * renamed over (a restore by hand with mv) must never be migrated through the stale handle. */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "db-sqlite-internal.h"

static int stat_identity(const char *path, db_file_identity *ret) {
        struct stat st;

        if (stat(path, &st) < 0)
                return -errno;
        *ret = (db_file_identity) { .known = true, .dev = st.st_dev, .ino = st.st_ino };
        return 0;
}

static bool identity_equal(const db_file_identity *a, const db_file_identity *b) {
        return a->dev == b->dev && a->ino == b->ino;
}

static int replaced(db_failure *f, const char *path, const char *what) {
        db_failure_clear(f);
        f->code = PROTOCOL_ERROR_DATABASE_REPLACED;
        if (asprintf(&f->message,
                     "%s %s: it is no longer the file migrated opened, and nothing is read from it or "
                     "committed to it. A -wal or -shm beside it still belongs to the replaced file: stop the "
                     "services that have the database open, move those aside, and restart migrated to serve "
                     "the file now at that path",
                     path, what) < 0)
                f->message = NULL;
        return f->message ? DB_FAILED : -ENOMEM;
}

/* The -wal file exists only once the connection has read the database in WAL mode; it is kept
 * (not recreated) while any of our connections stays open. */
static int record_wal(db_sqlite *s) {
        _cleanup_free_ char *wal = NULL;
        int r;

        if (asprintf(&wal, "%s-wal", s->path) < 0)
                return -ENOMEM;
        r = stat_identity(wal, &s->wal_identity);
        return r == -ENOENT ? 0 : r;
}

int sqlite_identity_record(db_sqlite *s, const db_file_identity *expected, db_failure *f) {
        db_file_identity now = {};
        int r;

        r = stat_identity(s->path, &now);
        if (r < 0)
                return r;
        if (expected && expected->known && !identity_equal(expected, &now))
                return replaced(f, s->path, "was replaced while migrated started");
        s->identity = now;
        /* a read opens the -wal file of a WAL database, so that it can be recorded now */
        (void) sqlite3_exec(s->conn, "SELECT count(*) FROM sqlite_master", NULL, NULL, NULL);
        return record_wal(s);
}

int sqlite_check_identity(db *d, db_failure *f) {
        db_sqlite *s = to_sqlite(d);
        _cleanup_free_ char *wal = NULL;
        db_file_identity now = {};
        int moved = 0, r;

        r = stat_identity(s->path, &now);
        if (r == -ENOENT)
                return replaced(f, s->path, "was removed");
        if (r < 0)
                return r;
        /* SQLite's own view too: the inode of the descriptor it has open against the path's */
        if (sqlite3_file_control(s->conn, "main", SQLITE_FCNTL_HAS_MOVED, &moved) != SQLITE_OK)
                moved = 0;
        if (moved || !identity_equal(&s->identity, &now))
                return replaced(f, s->path, "was replaced (renamed over) while migrated had it open");
        if (!s->wal_identity.known)
                return record_wal(s);
        if (asprintf(&wal, "%s-wal", s->path) < 0)
                return -ENOMEM;
        r = stat_identity(wal, &now);
        if (r == -ENOENT)
                return replaced(f, wal, "was removed");
        if (r < 0)
                return r;
        if (!identity_equal(&s->wal_identity, &now))
                return replaced(f, wal, "was replaced while migrated had it open");
        return 0;
}

/* The files' identity, size and mtime (a write that bypassed SQLite), the -wal file's, the
 * data_version (another connection's commits) and this connection's own changes. */
int sqlite_change_token(db *d, uint64_t ret[static DB_CHANGE_TOKEN_WORDS], uint64_t *ret_others) {
        db_sqlite *s = to_sqlite(d);
        _cleanup_free_ char *wal = NULL;
        sqlite3_stmt *st = NULL;
        struct stat a, b = {};
        int64_t version = -1;

        if (asprintf(&wal, "%s-wal", s->path) < 0)
                return -ENOMEM;
        if (stat(s->path, &a) < 0 || (stat(wal, &b) < 0 && errno != ENOENT))
                return -errno;
        if (sqlite3_prepare_v2(s->conn, "PRAGMA data_version", -1, &st, NULL) == SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW)
                version = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        if (version < 0)
                return -EIO;
        ret[0] = (uint64_t) a.st_dev;
        ret[1] = (uint64_t) a.st_ino;
        ret[2] = (uint64_t) a.st_size;
        ret[3] = (uint64_t) a.st_mtim.tv_sec * 1000000000u + (uint64_t) a.st_mtim.tv_nsec;
        ret[4] = (uint64_t) b.st_ino;
        ret[5] = (uint64_t) b.st_size;
        ret[6] = (uint64_t) b.st_mtim.tv_sec * 1000000000u + (uint64_t) b.st_mtim.tv_nsec;
        ret[7] = (uint64_t) version;
        ret[8] = (uint64_t) sqlite3_total_changes64(s->conn);
        ret[9] = 0;
        *ret_others = (uint64_t) version;
        return 0;
}
