/* SPDX-License-Identifier: MIT */
/* The SQLite backend: the only file that calls sqlite3. */

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "db-sqlite-internal.h"
#include "macro.h"
#include "sql-wrapper.h"

db_sqlite *to_sqlite(db *d) {
        return (db_sqlite *) d;
}

/* Maps an SQLite result code to a failure the user can act on. */
int sqlite_fail(db_sqlite *s, int rc, db_failure *f, const char *what) {
        int primary = rc & 0xff;

        if (!f)
                return DB_FAILED;
        db_failure_clear(f);
        if ((primary == SQLITE_BUSY || primary == SQLITE_LOCKED) && s->cancel && atomic_load(s->cancel))
                primary = SQLITE_INTERRUPT; /* the busy handler gave up because the job was stopped */
        switch (primary) {
        case SQLITE_BUSY:
        case SQLITE_LOCKED:
                f->code = PROTOCOL_ERROR_BUSY;
                if (asprintf(&f->message,
                             "%s: the database is locked by another writer and stayed locked for longer than the "
                             "busy timeout (%u ms); find the holder with: migratectl lock-check",
                             what, s->busy_timeout_ms) < 0)
                        f->message = NULL;
                break;
        case SQLITE_INTERRUPT:
                f->code = PROTOCOL_ERROR_INTERRUPTED;
                f->message = strdup("interrupted: the open transaction was rolled back");
                break;
        case SQLITE_FULL:
                f->code = PROTOCOL_ERROR_DATABASE;
                if (asprintf(&f->message, "%s: the disk is full (%s)", what, sqlite3_errmsg(s->conn)) < 0)
                        f->message = NULL;
                break;
        default:
                f->code = PROTOCOL_ERROR_DATABASE;
                if (asprintf(&f->message, "%s: %s", what, sqlite3_errmsg(s->conn)) < 0)
                        f->message = NULL;
        }
        return f->message ? DB_FAILED : -ENOMEM;
}

/* Runs SQL without results; for our own bookkeeping statements. */
int sqlite_exec_simple(db_sqlite *s, const char *sql, db_failure *f, const char *what) {
        int rc = sqlite3_exec(s->conn, sql, NULL, NULL, NULL);

        return rc == SQLITE_OK ? 0 : sqlite_fail(s, rc, f, what);
}

bool sqlite_table_exists(db_sqlite *s, const char *name, int *ret_rc) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int rc;

        rc = sqlite3_prepare_v2(s->conn, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1", -1, &st,
                                NULL);
        if (rc == SQLITE_OK) {
                sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
                rc = sqlite3_step(st);
        }
        *ret_rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
        return rc == SQLITE_ROW;
}

/* sqlite3_interrupt() only reaches statements already running; polling the flag from the progress
 * handler also stops one that starts a moment later. */
static int progress_handler(void *userdata) {
        db_sqlite *s = userdata;

        return s->cancel && atomic_load(s->cancel);
}

/* Our own busy handler rather than sqlite3_busy_timeout(): the same waiting, in short sleeps, but
 * it gives up at once when the job is cancelled, so SIGTERM never waits out a foreign writer. */
static int busy_handler(void *userdata, int count) {
        db_sqlite *s = userdata;
        struct timespec now, pause = { 0, 5 * 1000 * 1000 };
        static __thread struct timespec first;
        int64_t waited_ms;

        clock_gettime(CLOCK_MONOTONIC, &now);
        if (count == 0)
                first = now;
        if (s->cancel && atomic_load(s->cancel))
                return 0;
        waited_ms = (int64_t) (now.tv_sec - first.tv_sec) * 1000 + (now.tv_nsec - first.tv_nsec) / 1000000;
        if (waited_ms >= (int64_t) s->busy_timeout_ms)
                return 0;
        nanosleep(&pause, NULL);
        return 1;
}

static int sqlite_open(const db_options *o, db **ret, db_failure *f) {
        _cleanup_free_ db_sqlite *s = NULL;
        struct stat st;
        bool fresh;
        int rc, flags;

        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->path = strdup(o->target);
        if (!s->path)
                return -ENOMEM;
        s->base.backend = &db_sqlite_backend;
        s->busy_timeout_ms = o->busy_timeout_ms;
        fresh = stat(o->target, &st) < 0 || st.st_size == 0;

        /* The reader opens read-write too (a read-only connection cannot recover a WAL database nor
         * create its -shm), and is kept from writing by query_only. */
        flags = SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
        rc = sqlite3_open_v2(o->target, &s->conn, flags, NULL);
        if (rc != SQLITE_OK) {
                rc = sqlite_fail(s, rc, f, "cannot open the database");
                sqlite3_close(s->conn);
                free(s->path);
                return rc;
        }
        sqlite3_extended_result_codes(s->conn, 1);
        s->cancel = o->cancel;
        sqlite3_busy_handler(s->conn, busy_handler, s);
        if (s->cancel)
                sqlite3_progress_handler(s->conn, 1000, progress_handler, s);
        /* Foreign keys stay off on our connection: table rebuilds need it, and every transaction runs
         * PRAGMA foreign_key_check before commit instead. Never exclusive locking mode: the services
         * must get the database back after each job. */
        rc = sqlite3_exec(s->conn, "PRAGMA foreign_keys = OFF; PRAGMA locking_mode = NORMAL", NULL, NULL, NULL);
        if (rc == SQLITE_OK && fresh && !o->read_only)
                rc = sqlite3_exec(s->conn, "PRAGMA journal_mode = WAL", NULL, NULL, NULL);
        if (rc == SQLITE_OK && o->read_only)
                rc = sqlite3_exec(s->conn, "PRAGMA query_only = ON", NULL, NULL, NULL);
        if (rc != SQLITE_OK) {
                rc = sqlite_fail(s, rc, f, "cannot set up the database connection");
                sqlite3_close(s->conn);
                free(s->path);
                return rc;
        }
        rc = sqlite_identity_record(s, &o->identity, f);
        if (rc != 0) {
                sqlite3_close(s->conn);
                free(s->path);
                return rc;
        }
        *ret = &TAKE_PTR(s)->base;
        return 0;
}

static void sqlite_close(db *d) {
        db_sqlite *s = to_sqlite(d);

        sqlite3_close(s->conn);
        free(s->path);
        free(s);
}

static void sqlite_interrupt(db *d) {
        sqlite3_interrupt(to_sqlite(d)->conn);
}

/* The status's backend facts: the journal mode (null when it cannot be read). */
static int sqlite_info(db *d, json_t *status) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        db_sqlite *s = to_sqlite(d);
        json_t *mode = NULL;

        if (sqlite3_prepare_v2(s->conn, "PRAGMA journal_mode", -1, &st, NULL) == SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW)
                mode = json_string((const char *) sqlite3_column_text(st, 0) ?: "unknown");
        return json_object_set_new(status, "journal_mode", mode ?: json_null()) < 0 ? -ENOMEM : 0;
}

/* BEGIN IMMEDIATE takes the write lock up front, waiting up to busy_timeout, so that a busy
 * database is found before the first statement runs rather than halfway through. */
static int sqlite_begin(db *d, db_failure *f) {
        return sqlite_exec_simple(to_sqlite(d), "BEGIN IMMEDIATE", f, "cannot start a write transaction");
}

/* The level synchronous had before sqlite_begin_unsynced() lowered it, put back once the
 * transaction has ended (SQLite refuses to change it inside one). */
static void restore_synchronous(db_sqlite *s) {
        char sql[48];

        if (s->sync_restore == 0 || !sqlite3_get_autocommit(s->conn))
                return;
        snprintf(sql, sizeof(sql), "PRAGMA synchronous = %d", s->sync_restore - 1);
        (void) sqlite3_exec(s->conn, sql, NULL, NULL, NULL);
        s->sync_restore = 0;
}

static int pragma_int(db_sqlite *s, const char *sql, int fallback) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;

        if (sqlite3_prepare_v2(s->conn, sql, -1, &st, NULL) != SQLITE_OK || sqlite3_step(st) != SQLITE_ROW)
                return fallback;
        return sqlite3_column_int(st, 0);
}

/* In WAL mode a commit at synchronous=NORMAL is appended to the -wal without an fsync: it
 * survives a crash of the process (the kernel has it), and the next commit at FULL makes the -wal
 * durable up to and including it, since frames are only appended and each carries a running
 * checksum (recovery keeps a prefix of the commits, never a later one without an earlier one).
 * A rollback journal gives no such ordering: there it is an ordinary begin. */
static int sqlite_begin_unsynced(db *d, db_failure *f) {
        db_sqlite *s = to_sqlite(d);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        bool wal = false;
        int level, r;

        if (sqlite3_prepare_v2(s->conn, "PRAGMA journal_mode", -1, &st, NULL) == SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW)
                wal = streq((const char *) sqlite3_column_text(st, 0) ?: "", "wal");
        level = pragma_int(s, "PRAGMA synchronous", 0);
        if (wal && level > 1 && sqlite3_get_autocommit(s->conn) &&
            sqlite3_exec(s->conn, "PRAGMA synchronous = NORMAL", NULL, NULL, NULL) == SQLITE_OK)
                s->sync_restore = level + 1;
        r = sqlite_begin(d, f);
        if (r != 0)
                restore_synchronous(s);
        return r;
}

static int sqlite_commit(db *d, db_failure *f) {
        db_sqlite *s = to_sqlite(d);
        int r = sqlite_exec_simple(s, "COMMIT", f, "cannot commit");

        if (r != 0 && !sqlite3_get_autocommit(s->conn))
                sqlite3_exec(s->conn, "ROLLBACK", NULL, NULL, NULL);
        restore_synchronous(s);
        return r;
}

void sqlite_rollback(db *d) {
        db_sqlite *s = to_sqlite(d);

        if (!sqlite3_get_autocommit(s->conn))
                sqlite3_exec(s->conn, "ROLLBACK", NULL, NULL, NULL);
        restore_synchronous(s);
}

static unsigned line_of(const char *sql, const char *at) {
        unsigned line = 1;

        for (const char *p = sql; p < at; p++)
                if (*p == '\n')
                        line++;
        return line;
}

/* Statements that would end or nest our transaction: a migration must not contain them. */
static bool is_transaction_control(const char *p, const char *end) {
        if (sql_keyword_is(p, end, "BEGIN") || sql_keyword_is(p, end, "COMMIT") || sql_keyword_is(p, end, "END"))
                return true;
        if (sql_keyword_is(p, end, "ROLLBACK")) {
                const char *q = sql_skip_blank(p + 8, end);
                return !sql_keyword_is(q, end, "TO");
        }
        return false;
}

static int script_fail(db_failure *f, protocol_error_code code, unsigned line, const char *fmt, ...) _printf_(4, 5);
static int script_fail(db_failure *f, protocol_error_code code, unsigned line, const char *fmt, ...) {
        va_list ap;

        db_failure_clear(f);
        f->code = code;
        f->line = line;
        va_start(ap, fmt);
        if (vasprintf(&f->message, fmt, ap) < 0)
                f->message = NULL;
        va_end(ap);
        return f->message ? DB_FAILED : -ENOMEM;
}

/* Runs a script statement by statement, so a failure can name its line. */
static int sqlite_exec_script(db *d, const char *sql, size_t size, bool in_transaction, db_failure *f) {
        db_sqlite *s = to_sqlite(d);
        const char *p = sql, *end = sql + size;
        size_t body_start, body_end;
        int w;

        /* BEGIN; … COMMIT; around the whole file: the plan's transaction is the file's */
        if (in_transaction) {
                w = sql_find_wrapper(sql, size, &body_start, &body_end);
                if (w < 0)
                        return w;
                if (w > 0) {
                        p = sql + body_start;
                        end = sql + body_end;
                }
        }
        while (p < end) {
                _cleanup_stmt_ sqlite3_stmt *st = NULL;
                const char *tail = NULL, *start = sql_skip_blank(p, end);
                int rc;

                if (start >= end)
                        break;
                rc = sqlite3_prepare_v2(s->conn, p, (int) (end - p), &st, &tail);
                if (rc != SQLITE_OK) {
                        int off = sqlite3_error_offset(s->conn);
                        unsigned line = line_of(sql, off >= 0 ? p + off : start);
                        if ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_INTERRUPT)
                                return sqlite_fail(s, rc, f, "cannot prepare a statement");
                        return script_fail(f, PROTOCOL_ERROR_MIGRATION_FAILED, line, "%s", sqlite3_errmsg(s->conn));
                }
                if (!st) /* only comments or white space were left */
                        break;
                if (in_transaction && is_transaction_control(start, end))
                        return script_fail(f, PROTOCOL_ERROR_MIGRATION_FAILED, line_of(sql, start),
                                           "transaction control statements are not allowed in a migration: "
                                           "migrated runs it in its own transaction; a file may only be "
                                           "wrapped whole in BEGIN; ... COMMIT; (then the wrapper joins that "
                                           "transaction), or marked '-- migrated: no-transaction' to run on "
                                           "its own");
                while ((rc = sqlite3_step(st)) == SQLITE_ROW)
                        ;
                if (rc != SQLITE_DONE) {
                        int primary = rc & 0xff;
                        if (primary == SQLITE_BUSY || primary == SQLITE_INTERRUPT || primary == SQLITE_FULL) {
                                int r = sqlite_fail(s, rc, f, "statement failed");
                                f->line = line_of(sql, start);
                                return r;
                        }
                        return script_fail(f, PROTOCOL_ERROR_MIGRATION_FAILED, line_of(sql, start), "%s",
                                           sqlite3_errmsg(s->conn));
                }
                if (in_transaction && sqlite3_get_autocommit(s->conn))
                        return script_fail(f, PROTOCOL_ERROR_MIGRATION_FAILED, line_of(sql, start),
                                           "this statement ended migrated's transaction");
                p = tail;
        }
        return 0;
}

/* One value of the current row: its storage class, with the integer and the text both at hand. */
static db_value column_value(sqlite3_stmt *st, int col) {
        switch (sqlite3_column_type(st, col)) {
        case SQLITE_NULL:
                return DB_NULL;
        case SQLITE_INTEGER:
                return (db_value) { .type = DB_VALUE_INT, .i = sqlite3_column_int64(st, col),
                                    .s = (const char *) sqlite3_column_text(st, col) };
        default:
                return (db_value) { .type = DB_VALUE_TEXT, .i = sqlite3_column_int64(st, col),
                                    .s = (const char *) sqlite3_column_text(st, col) ?: "" };
        }
}

static int bind_params(sqlite3_stmt *st, const db_value *params, size_t n) {
        int rc = SQLITE_OK;

        for (size_t i = 0; rc == SQLITE_OK && i < n; i++)
                switch (params[i].type) {
                case DB_VALUE_NULL:
                        rc = sqlite3_bind_null(st, (int) i + 1);
                        break;
                case DB_VALUE_INT:
                        rc = sqlite3_bind_int64(st, (int) i + 1, params[i].i);
                        break;
                case DB_VALUE_TEXT:
                        rc = sqlite3_bind_text(st, (int) i + 1, params[i].s, -1, SQLITE_STATIC);
                        break;
                }
        return rc;
}

/* The history layer's whole access to SQLite: one statement, bound, stepped to the end. */
static int sqlite_query(db *d, const char *sql, const db_value *params, size_t n_params, db_row_fn row,
                        void *userdata, int64_t *ret_changes, db_failure *f, const char *what) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        db_sqlite *s = to_sqlite(d);
        int rc, r = 0;

        rc = sqlite3_prepare_v2(s->conn, sql, -1, &st, NULL);
        if (rc == SQLITE_OK)
                rc = bind_params(st, params, n_params);
        if (rc != SQLITE_OK)
                return sqlite_fail(s, rc, f, what);
        while (r == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW)
                if (row) {
                        int n = sqlite3_column_count(st);
                        db_value cols[n > 0 ? n : 1];
                        for (int i = 0; i < n; i++)
                                cols[i] = column_value(st, i);
                        r = row(cols, (size_t) n, userdata);
                }
        if (r != 0)
                return r;
        if (rc != SQLITE_DONE)
                return sqlite_fail(s, rc, f, what);
        if (ret_changes)
                *ret_changes = sqlite3_changes64(s->conn);
        return 0;
}

static int sqlite_table_exists_op(db *d, const char *name, bool *ret, db_failure *f) {
        db_sqlite *s = to_sqlite(d);
        int rc;
        bool exists = sqlite_table_exists(s, name, &rc);

        if (rc != SQLITE_OK)
                return sqlite_fail(s, rc, f, "cannot read the schema");
        *ret = exists;
        return 0;
}

/* Any table but SQLite's own and the bookkeeping ones. */
static int sqlite_has_user_tables(db *d, const char *const *bookkeeping, bool *ret) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        db_sqlite *s = to_sqlite(d);
        int rc;

        if (sqlite3_prepare_v2(s->conn,
                               "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' "
                               "ESCAPE '\\'", -1, &st, NULL) != SQLITE_OK)
                return -EIO;
        *ret = false;
        while (!*ret && (rc = sqlite3_step(st)) == SQLITE_ROW) {
                const char *name = (const char *) sqlite3_column_text(st, 0) ?: "";
                bool ours = false;
                for (size_t i = 0; bookkeeping[i] && !ours; i++)
                        ours = streq(bookkeeping[i], name);
                *ret = !ours;
        }
        return *ret || rc == SQLITE_DONE ? 0 : -EIO;
}

static int sqlite_check_foreign_keys(db *d, db_failure *f) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        db_sqlite *s = to_sqlite(d);
        int rc;

        rc = sqlite3_prepare_v2(s->conn, "PRAGMA foreign_key_check", -1, &st, NULL);
        if (rc != SQLITE_OK)
                return sqlite_fail(s, rc, f, "cannot check foreign keys");
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
                db_failure_clear(f);
                f->code = PROTOCOL_ERROR_FOREIGN_KEY_VIOLATION;
                if (asprintf(&f->message,
                             "foreign key violation: a row of table %s (rowid %lld) refers to a missing row of %s",
                             (const char *) sqlite3_column_text(st, 0) ?: "?", sqlite3_column_int64(st, 1),
                             (const char *) sqlite3_column_text(st, 2) ?: "?") < 0)
                        return -ENOMEM;
                return DB_FAILED;
        }
        return rc == SQLITE_DONE ? 0 : sqlite_fail(s, rc, f, "cannot check foreign keys");
}

/* Opens path, a file the caller created exclusively and holds open as fd, and checks that it is
 * that very file (the directory is ours, but never write to a file we did not make). */
static int open_own_file(const char *path, int fd, sqlite3 **ret) {
        struct stat a, b;
        int rc;

        rc = sqlite3_open_v2(path, ret, SQLITE_OPEN_READWRITE, NULL);
        if (rc == SQLITE_OK && (fstat(fd, &a) < 0 || lstat(path, &b) < 0 || a.st_dev != b.st_dev ||
                                a.st_ino != b.st_ino || !S_ISREG(b.st_mode)))
                rc = SQLITE_CANTOPEN;
        return rc;
}

/* Copies every page of src into dest with the backup API, in one step: it holds a read
 * transaction on the source for the copy, so the copy is one consistent snapshot even while other
 * connections write (WAL). */
static int copy_pages(sqlite3 *dest, sqlite3 *src) {
        sqlite3_backup *b;
        int rc;

        b = sqlite3_backup_init(dest, "main", src, "main");
        if (!b)
                return sqlite3_errcode(dest);
        do
                rc = sqlite3_backup_step(b, -1);
        while (rc == SQLITE_BUSY || rc == SQLITE_LOCKED ? (sqlite3_sleep(10), true) : false);
        return sqlite3_backup_finish(b) == SQLITE_OK && rc == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(dest);
}

static int backup_failed(db_failure *f, const char *path, sqlite3 *dest, int rc) {
        db_failure_clear(f);
        f->code = PROTOCOL_ERROR_BACKUP_FAILED;
        if (asprintf(&f->message, "the backup to %s failed: %s%s", path,
                     dest ? sqlite3_errmsg(dest) : rc == SQLITE_IOERR ? strerror(errno) : sqlite3_errstr(rc),
                     (rc & 0xff) == SQLITE_FULL ? " (the disk is full)" : "") < 0)
                f->message = NULL;
        return f->message ? DB_FAILED : -ENOMEM;
}

static int write_all_at_start(int fd, const unsigned char *data, size_t size) {
        for (size_t done = 0; done < size;) {
                ssize_t n = pwrite(fd, data + done, size - done, (off_t) done);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return n < 0 ? -errno : -EIO;
                done += (size_t) n;
        }
        return 0;
}

/* A small database's pages copied into memory, then written with one write(): the page copy into
 * a file costs a pwrite() per page, most of a small backup's time. *ret_done false (fd left
 * empty): the caller copies into the file instead. */
static int backup_through_memory(db_sqlite *s, int fd, bool *ret_done) {
        sqlite3 *mem = NULL;
        unsigned char *data = NULL;
        sqlite3_int64 size = 0;
        int64_t logical = sqlite_logical_size(s);
        char sql[48];
        int rc, r;

        *ret_done = false;
        if (logical < 0 || logical >= (int64_t) SQLITE_FILE_COPY_MIN_BYTES)
                return 0;
        /* an in-memory destination takes the source's page size before the copy, not from it */
        snprintf(sql, sizeof(sql), "PRAGMA page_size = %d", pragma_int(s, "PRAGMA page_size", 4096));
        /* SQLite's memdb VFS: its one buffer is the database file, handed out without a copy (a
         * plain ":memory:" database would be serialized by reading its pages with SQL); a name
         * without a leading "/" keeps it private to this connection */
        rc = sqlite3_open_v2("migrated-backup", &mem, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                             "memdb");
        if (rc == SQLITE_OK)
                rc = sqlite3_exec(mem, sql, NULL, NULL, NULL);
        if (rc == SQLITE_OK)
                rc = copy_pages(mem, s->conn);
        if (rc == SQLITE_OK)
                data = sqlite3_serialize(mem, "main", &size, SQLITE_SERIALIZE_NOCOPY);
        if (!data || size < 100) {
                sqlite3_close(mem);
                return 0;
        }
        /* stored in rollback-journal mode, as every backup is (see sqlite_backup_to) */
        data[18] = data[19] = 1;
        r = write_all_at_start(fd, data, (size_t) size);
        sqlite3_close(mem);
        if (r < 0)
                return ftruncate(fd, 0) < 0 ? -errno : r;
        *ret_done = true;
        return 0;
}

/* The database file copied by the kernel when that is provably one consistent snapshot
 * (db-sqlite-filecopy.c: large databases), else every page through the backup API. The
 * destination skips journaling (an incomplete backup is never published); the caller makes it
 * durable (backups_publish: one fsync of the file, one of the directory). */
static int sqlite_backup_to(db *d, const char *path, int fd, db_failure *f) {
        db_sqlite *s = to_sqlite(d);
        sqlite3 *dest = NULL;
        bool done = false;
        int rc, r;

        r = sqlite_backup_file_copy(s, fd, &done);
        if (r == 0 && !done)
                r = backup_through_memory(s, fd, &done);
        if (r < 0) {
                errno = -r;
                return backup_failed(f, path, NULL, SQLITE_IOERR);
        }
        if (done)
                return 0;
        rc = open_own_file(path, fd, &dest);
        if (rc == SQLITE_OK)
                rc = sqlite3_exec(dest, "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF", NULL, NULL, NULL);
        if (rc == SQLITE_OK) {
                /* reading the source through a memory map saves a read() per page */
                (void) sqlite3_exec(s->conn, "PRAGMA mmap_size = 4294967296", NULL, NULL, NULL);
                rc = copy_pages(dest, s->conn);
                (void) sqlite3_exec(s->conn, "PRAGMA mmap_size = 0", NULL, NULL, NULL);
        }
        if (rc != SQLITE_OK) {
                r = backup_failed(f, path, dest, rc);
                sqlite3_close(dest);
                return r;
        }
        sqlite3_close(dest);
        /* Stored in rollback-journal mode (header bytes 18 and 19, the file format's write and read
         * versions: 1 = legacy, 2 = WAL), a backup can be opened and checked without growing a -wal
         * and -shm beside it; a restore into a WAL database marks it WAL again. Written directly: a
         * journal_mode change would re-read the whole schema. */
        static const unsigned char legacy[2] = { 1, 1 };
        if (pwrite(fd, legacy, 2, 18) != 2)
                return backup_failed(f, path, NULL, SQLITE_IOERR);
        return 0;
}

/* The backup API in reverse: SQLite replaces every page of the live database inside one write
 * transaction, so the database is never missing, never half restored, and its WAL and -shm stay
 * consistent with it (a file rename would leave our own connections and a stale WAL pointing at
 * the old inode). The pages come from a scratch copy of the backup that already holds the live
 * history and the restore's own record. */
static int sqlite_restore_from(db *d, const char *path, const char *scratch, const db_event *ev, db_failure *f) {
        db_sqlite *s = to_sqlite(d);
        sqlite3 *src = NULL, *copy = NULL;
        int rc, r;

        rc = sqlite3_open_v2(path, &src, SQLITE_OPEN_READONLY, NULL);
        if (rc == SQLITE_OK)
                rc = sqlite3_open_v2(scratch, &copy, SQLITE_OPEN_READWRITE, NULL);
        if (rc == SQLITE_OK)
                rc = sqlite3_exec(copy, "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF", NULL, NULL, NULL);
        if (rc == SQLITE_OK)
                rc = copy_pages(copy, src);
        sqlite3_close(src);
        sqlite3_close(copy);
        if (rc != SQLITE_OK)
                return sqlite_fail(s, rc, f, "cannot read the backup");
        r = sqlite_carry_history(d, scratch, ev, f);
        if (r != 0)
                return r;
        rc = sqlite3_open_v2(scratch, &src, SQLITE_OPEN_READONLY, NULL);
        if (rc == SQLITE_OK) {
                sqlite3_backup *b = sqlite3_backup_init(s->conn, "main", src, "main");
                if (!b)
                        rc = sqlite3_errcode(s->conn);
                else {
                        rc = sqlite3_backup_step(b, -1);
                        rc = sqlite3_backup_finish(b) == SQLITE_OK && rc == SQLITE_DONE ? SQLITE_OK : rc;
                }
        }
        sqlite3_close(src);
        if (rc != SQLITE_OK)
                return sqlite_fail(s, rc, f, "restoring the backup failed; the database is unchanged");
        return 0;
}

static int sqlite_check_integrity(db *d, bool full, db_failure *f) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        db_sqlite *s = to_sqlite(d);
        const char *first;
        int rc;

        rc = sqlite3_prepare_v2(s->conn, full ? "PRAGMA integrity_check(20)" : "PRAGMA quick_check(20)", -1, &st, NULL);
        if (rc != SQLITE_OK)
                return sqlite_fail(s, rc, f, "cannot check integrity");
        rc = sqlite3_step(st);
        if (rc != SQLITE_ROW)
                return sqlite_fail(s, rc, f, "cannot check integrity");
        first = (const char *) sqlite3_column_text(st, 0);
        if (!first || !streq(first, "ok")) {
                db_failure_clear(f);
                f->code = PROTOCOL_ERROR_INTEGRITY;
                if (asprintf(&f->message, "%s failed: %s", full ? "integrity_check" : "quick_check", first ?: "?") < 0)
                        return -ENOMEM;
                return DB_FAILED;
        }
        return sqlite_check_foreign_keys(d, f);
}

/* The database's logical size (pages times page size): what a backup copies, and comparable
 * before and after a change whatever the WAL holds. */
static int sqlite_size(db *d, uint64_t *ret_bytes) {
        int64_t size = sqlite_logical_size(to_sqlite(d));

        if (size < 0)
                return -EIO;
        *ret_bytes = (uint64_t) size;
        return 0;
}

const db_backend db_sqlite_backend = {
        .name = "sqlite",
        .backup_suffix = ".sqlite",
        .open = sqlite_open,
        .close = sqlite_close,
        .interrupt = sqlite_interrupt,
        .begin = sqlite_begin,
        .begin_unsynced = sqlite_begin_unsynced,
        .commit = sqlite_commit,
        .rollback = sqlite_rollback,
        .exec_script = sqlite_exec_script,
        .check_foreign_keys = sqlite_check_foreign_keys,
        .backup_to = sqlite_backup_to,
        .restore_from = sqlite_restore_from,
        .check_integrity = sqlite_check_integrity,
        .size = sqlite_size,
        .query = sqlite_query,
        .table_exists = sqlite_table_exists_op,
        .has_user_tables = sqlite_has_user_tables,
        .check_identity = sqlite_check_identity,
        .change_token = sqlite_change_token,
        .backup_complete = sqlite_backup_complete,
        .info = sqlite_info,
        .inspect_backup = sqlite_inspect_backup,
        .clone = sqlite_clone,
        .clone_remove = sqlite_clone_remove,
        .disk_size = sqlite_disk_size,
        .find_holders = sqlite_find_holders,
        .lock_report = sqlite_lock_report,
        .reset = sqlite_reset,
        .drift = sqlite_drift,
        .schema_dump = sqlite_schema_dump,
};
