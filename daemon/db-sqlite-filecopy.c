/* SPDX-License-Identifier: MIT */
/* The SQLite backend's fast backup: the database file itself copied by the kernel, while a read
 * transaction provably keeps it holding one consistent snapshot; the backup API's page copy
 * (db-sqlite.c) stays the way whenever that cannot be proven. */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "db-sqlite-internal.h"
#include "log.h"
#include "macro.h"

int64_t sqlite_logical_size(db_sqlite *s) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;

        if (sqlite3_prepare_v2(s->conn, "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
                               -1, &st, NULL) != SQLITE_OK || sqlite3_step(st) != SQLITE_ROW)
                return -1;
        return sqlite3_column_int64(st, 0);
}

/* A PASSIVE checkpoint from a connection of its own (SQLite refuses one on a connection inside a
 * transaction): true when every frame of the -wal is now in the database file, or when the
 * database has no -wal (rollback journal). Through the pragma, which reads the schema first: only
 * then does a fresh connection know the database is in WAL mode. It never waits: a lock held
 * elsewhere only means "not all". */
static bool checkpoint_all(const char *path) {
        sqlite3 *c = NULL;
        sqlite3_stmt *st = NULL;
        bool all = false;

        if (sqlite3_open_v2(path, &c, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) == SQLITE_OK &&
            sqlite3_prepare_v2(c, "PRAGMA main.wal_checkpoint(PASSIVE)", -1, &st, NULL) == SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW)
                all = sqlite3_column_int(st, 0) == 0 && sqlite3_column_int(st, 1) == sqlite3_column_int(st, 2);
        sqlite3_finalize(st);
        sqlite3_close(c);
        return all;
}

/* size bytes of in copied into out from the start, in the kernel (a reflink or an in-kernel copy
 * where the filesystem can); a negative errno when it cannot (-EXDEV, -EOPNOTSUPP, -ENOSYS…). */
static int copy_range(int in, int out, uint64_t size) {
        loff_t off_in = 0, off_out = 0;

        while ((uint64_t) off_in < size) {
                ssize_t n = copy_file_range(in, &off_in, out, &off_out, (size_t) (size - (uint64_t) off_in), 0);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n == 0)
                        return -EIO; /* the file is shorter than its pages */
        }
        return 0;
}

/* The head of the unix VFS's sqlite3_file (struct unixFile in sqlite3.c, unchanged since 3.7). */
typedef struct unix_file_head {
        const sqlite3_io_methods *methods;
        sqlite3_vfs *vfs;
        void *inode;
        int h;
} unix_file_head;

/* The connection's own descriptor of the database file, or -1. Never a descriptor of our own:
 * closing any descriptor of a file drops every POSIX lock the process holds on it, SQLite's
 * included. The layout is checked by the VFS pointer it holds and then by the caller's fstat. */
static int connection_fd(db_sqlite *s) {
        sqlite3_file *file = NULL;
        sqlite3_vfs *vfs = NULL;
        const unix_file_head *head;

        if (sqlite3_file_control(s->conn, "main", SQLITE_FCNTL_VFS_POINTER, &vfs) != SQLITE_OK || !vfs ||
            !vfs->zName || strncmp(vfs->zName, "unix", 4) != 0 ||
            sqlite3_file_control(s->conn, "main", SQLITE_FCNTL_FILE_POINTER, &file) != SQLITE_OK || !file)
                return -1;
        head = (const unix_file_head *) file;
        return head->vfs == vfs && head->h >= 0 ? head->h : -1;
}

static bool same_file(db_sqlite *s, int fd) {
        struct stat st;

        return s->identity.known && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_dev == s->identity.dev &&
               st.st_ino == s->identity.ino;
}

/* Copies the file under a read transaction of the connection, once a checkpoint run meanwhile says
 * that the file holds exactly that transaction's snapshot, and that nothing can change it before
 * the transaction ends:
 * - WAL: a checkpoint never copies frames past the mark of an open reader, and none at all while
 *   a reader reads the file alone (read mark 0), so every frame backfilled means the file is our
 *   snapshot, and it stays so until we end the transaction, whatever other writers append.
 * - rollback journal: our shared lock keeps every writer out of the file.
 * Then the copy is checked before anyone may use it: its header equals the source's and describes
 * exactly the snapshot's pages (page count times page size is the file's size). *ret_done false
 * (fd left empty): it could not be proven or done here; the caller copies the pages instead. */
int sqlite_backup_file_copy(db_sqlite *s, int fd, bool *ret_done) {
        int src;
        unsigned char want[100], got[100];
        static const unsigned char legacy[2] = { 1, 1 };
        struct stat st;
        int64_t size = 0;
        bool ok = false;
        int r = 0;

        *ret_done = false;
        if (!sqlite3_get_autocommit(s->conn) || sqlite_logical_size(s) < (int64_t) SQLITE_FILE_COPY_MIN_BYTES)
                return 0;
        if (sqlite3_exec(s->conn, "BEGIN; SELECT count(*) FROM sqlite_master", NULL, NULL, NULL) != SQLITE_OK)
                goto end;
        src = connection_fd(s);
        if (src < 0 || !same_file(s, src) || !checkpoint_all(s->path))
                goto end;
        size = sqlite_logical_size(s);
        if (size <= 0 || fstat(src, &st) < 0 || st.st_size < size)
                goto end;
        r = copy_range(src, fd, (uint64_t) size);
        if (r < 0) {
                log_debug("Backup by file copy not possible here (%s): copying the pages", strerror(-r));
                r = 0;
                goto end;
        }
        ok = pread(src, want, sizeof(want), 0) == (ssize_t) sizeof(want);
end:
        if (!sqlite3_get_autocommit(s->conn))
                (void) sqlite3_exec(s->conn, "ROLLBACK", NULL, NULL, NULL);
        /* Stored in rollback-journal mode, as the page copy stores it (see sqlite_backup_to). */
        if (ok) {
                memcpy(want + 18, legacy, sizeof(legacy));
                ok = pwrite(fd, legacy, sizeof(legacy), 18) == (ssize_t) sizeof(legacy) &&
                     pread(fd, got, sizeof(got), 0) == (ssize_t) sizeof(got) && memcmp(want, got, sizeof(got)) == 0 &&
                     sqlite_backup_complete(fd, (uint64_t) size);
                if (!ok)
                        log_warning("The file copy of %s did not check out; copying the pages instead", s->path);
        }
        if (!ok) {
                if (ftruncate(fd, 0) < 0)
                        return -errno;
                return r;
        }
        log_info("Backup: copied the database file (%" PRId64 " bytes) under a read transaction", size);
        *ret_done = true;
        return 0;
}
