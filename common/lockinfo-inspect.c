/* SPDX-License-Identifier: MIT */
/* The gathering half of lock-check: files and headers, holders, /proc/locks, the live probe, the
 * verdict's facts and the JSON report. The pure helpers are in lockinfo.c. */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lockinfo.h"
#include "macro.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(sqlite3 *, sqlite3_close);
DEFINE_TRIVIAL_CLEANUP_FUNC(sqlite3_stmt *, sqlite3_finalize);
DEFINE_TRIVIAL_CLEANUP_FUNC(FILE *, fclose);

#define SQLITE_HEADER_SIZE 100
#define WAL_HEADER_SIZE 32 /* a -wal file of this size or less has no frames */
#define MAX_IDS 4

static const char *const file_names[_HOLDER_FILE_MAX] = { "db", "wal", "shm" };

/* ---- gathering ---- */

typedef struct file_info {
        bool present;
        struct stat st;
        size_t n_ids; /* the identities /proc/locks may print for the file */
        struct {
                unsigned major, minor;
                uint64_t inode;
        } ids[MAX_IDS];
} file_info;

typedef struct found_lock {
        proc_lock l;
        unsigned file;  /* HOLDER_FILE_* */
        pid_t owner;    /* the process holding it (an OFD lock's from fdinfo); <= 0: unknown */
        unsigned locks; /* LOCKINFO_* */
        bool self;
} found_lock;

typedef struct inspection {
        const char *database;
        char *path; /* canonical */
        file_info files[_HOLDER_FILE_MAX];
        const char *journal_mode;
        uint32_t page_size;
        bool index_read;
        wal_index index;
        holder *holders;
        size_t n_holders;
        found_lock *locks;
        size_t n_locks;
        char *write_error;
        bool checkpoint_ran, checkpoint_ok;
        int64_t checkpoint_log, checkpoint_done;
        lockinfo_facts facts;
        lockinfo_verdict verdict;
        const found_lock *blocker;
        holder blocker_info;
} inspection;

static void inspection_done(inspection *in) {
        free(in->path);
        holders_free(in->holders, in->n_holders);
        free(in->locks);
        free(in->write_error);
        holder_done(&in->blocker_info);
}

static void add_id(file_info *f, unsigned major, unsigned minor, uint64_t inode) {
        for (size_t i = 0; i < f->n_ids; i++)
                if (f->ids[i].major == major && f->ids[i].minor == minor && f->ids[i].inode == inode)
                        return;
        if (f->n_ids < MAX_IDS)
                f->ids[f->n_ids++] = (typeof(f->ids[0])) { major, minor, inode };
}

/* The first bytes of the database and of its -shm (three reads of it: a writer may be between the
 * two copies of the wal-index header). An *_n is the bytes read, or -errno. */
typedef struct file_heads {
        ssize_t db_n;
        uint8_t db[SQLITE_HEADER_SIZE];
        ssize_t shm_n[3];
        uint8_t shm[3][LOCKINFO_WAL_INDEX_HDR_SIZE];
} file_heads;

/* The child's part: async-signal-safe calls only, as it is forked from a threaded daemon. */
static _noreturn_ void read_heads_child(int fd_out, const char *db_path, const char *shm_path, file_heads *h) {
        struct timespec pause = { 0, 1000 * 1000 };
        int fd;

        fd = open(db_path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        h->db_n = fd < 0 ? -errno : pread(fd, h->db, sizeof(h->db), 0);
        if (fd >= 0)
                close(fd);
        fd = shm_path ? open(shm_path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK) : -1;
        for (int i = 0; i < 3; i++) {
                h->shm_n[i] = fd < 0 ? -ENOENT : pread(fd, h->shm[i], sizeof(h->shm[i]), 0);
                if (i > 0 && h->shm_n[i] > 0 && h->shm_n[i] == h->shm_n[i - 1] &&
                    memcmp(h->shm[i], h->shm[i - 1], sizeof(h->shm[i])) == 0)
                        break; /* stable */
                nanosleep(&pause, NULL);
        }
        (void) !write(fd_out, h, sizeof(*h));
        _exit(0);
}

/* POSIX locks belong to a process, and closing any descriptor of a file drops all the process's
 * locks on that file. In the daemon, opening and closing the database or its -shm here would
 * silently release the locks its own connections hold (a running job's write lock among them),
 * so a child process reads the headers. Never checkpoints, never maps the files. */
static int read_heads(const char *db_path, const char *shm_path, file_heads *ret) {
        _cleanup_close_ int rd = -1, wr = -1;
        file_heads h = { .db_n = -EIO, .shm_n = { -ENOENT, -ENOENT, -ENOENT } };
        size_t got = 0;
        int fds[2];
        pid_t pid;

        if (pipe2(fds, O_CLOEXEC) < 0)
                return -errno;
        rd = fds[0];
        wr = fds[1];
        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0)
                read_heads_child(wr, db_path, shm_path, &h);
        close(TAKE_FD(wr)); /* the child has its copy: EOF once it is done */
        while (got < sizeof(h)) {
                ssize_t n = read(rd, (uint8_t *) &h + got, sizeof(h) - got);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                got += (size_t) n;
        }
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                ;
        if (got != sizeof(h))
                return -EIO;
        *ret = h;
        return 0;
}

/* The database header: journal mode from the read/write format bytes (2 is WAL), page size. */
static int parse_db_header(inspection *in, const file_heads *h) {
        const uint8_t *b = h->db;

        if (h->db_n < 0)
                return (int) h->db_n;
        if (h->db_n == 0) { /* an empty file is an empty database */
                in->journal_mode = "delete";
                return 0;
        }
        if (h->db_n < SQLITE_HEADER_SIZE || memcmp(b, "SQLite format 3", 16) != 0)
                return -EBADMSG;
        in->page_size = b[16] << 8 | b[17];
        if (in->page_size == 1)
                in->page_size = 65536;
        in->facts.wal = b[18] == 2 && b[19] == 2;
        in->journal_mode = in->facts.wal ? "wal" : b[18] == 1 && b[19] == 1 ? "delete" : NULL;
        return 0;
}

/* The last consistent read of the wal-index header, or the last read. */
static void parse_wal_index(inspection *in, const file_heads *h) {
        for (int i = 0; i < 3; i++) {
                if (h->shm_n[i] < LOCKINFO_WAL_INDEX_HDR_SIZE)
                        continue;
                in->index_read = lockinfo_parse_wal_index(h->shm[i], sizeof(h->shm[i]), &in->index) == 0;
                if (in->index.valid)
                        return;
        }
}

/* The files, named after the database's canonical path as SQLite names its -wal and -shm (it
 * follows symbolic links); then their first bytes. */
static int inspect_files(inspection *in) {
        static const char *const suffixes[_HOLDER_FILE_MAX] = { "", "-wal", "-shm" };
        _cleanup_free_ char *shm = NULL;
        file_heads heads;
        int r;

        if (stat(in->database, &in->files[HOLDER_FILE_DB].st) < 0)
                return -errno;
        if (S_ISDIR(in->files[HOLDER_FILE_DB].st.st_mode))
                return -EISDIR;
        if (!S_ISREG(in->files[HOLDER_FILE_DB].st.st_mode))
                return -EINVAL;
        in->path = realpath(in->database, NULL);
        if (!in->path && !(in->path = strdup(in->database)))
                return -ENOMEM;
        for (unsigned i = 0; i < _HOLDER_FILE_MAX; i++) {
                _cleanup_free_ char *p = NULL;
                file_info *f = &in->files[i];

                if (asprintf(&p, "%s%s", in->path, suffixes[i]) < 0)
                        return -ENOMEM;
                if (stat(p, &f->st) < 0) {
                        if (errno != ENOENT || i == HOLDER_FILE_DB)
                                return -errno;
                        continue;
                }
                f->present = true;
                add_id(f, major(f->st.st_dev), minor(f->st.st_dev), f->st.st_ino);
        }
        if (asprintf(&shm, "%s-shm", in->path) < 0)
                return -ENOMEM;
        r = read_heads(in->path, in->files[HOLDER_FILE_SHM].present ? shm : NULL, &heads);
        if (r < 0)
                return r;
        r = parse_db_header(in, &heads);
        if (r < 0)
                return r;
        parse_wal_index(in, &heads);
        return 0;
}

/* Goes through the lock lines a holder's fdinfo shows on file: learns the file's identities into
 * learn (when given), and tells whether one is the lock want (when given). */
static bool fd_locks_find(const holder *h, unsigned file, const proc_lock *want, file_info *learn) {
        const char *s = h->fd_locks[file];
        bool found = false;

        for (; s && *s; s += strcspn(s, "\n") + (s[strcspn(s, "\n")] ? 1 : 0)) {
                _cleanup_free_ char *line = strndup(s, strcspn(s, "\n"));
                proc_lock l;

                if (!line || lockinfo_parse_lock_line(line, &l) < 0)
                        continue;
                if (learn)
                        add_id(learn, l.major, l.minor, l.inode);
                if (want && streq(l.kind, want->kind) && l.write == want->write && l.start == want->start &&
                    l.end == want->end && l.major == want->major && l.minor == want->minor && l.inode == want->inode)
                        found = true;
        }
        return found;
}

/* Which of our files a lock is on, or -1. */
static int lock_file(const inspection *in, const proc_lock *l) {
        for (unsigned i = 0; i < _HOLDER_FILE_MAX; i++)
                for (size_t j = 0; j < in->files[i].n_ids; j++)
                        if (in->files[i].ids[j].major == l->major && in->files[i].ids[j].minor == l->minor &&
                            in->files[i].ids[j].inode == l->inode)
                                return (int) i;
        return -1;
}

/* An OFD lock shows pid -1 (and a foreign one 0): its owner is the holder whose fdinfo lists it. */
static pid_t lock_owner(const inspection *in, const proc_lock *l, unsigned file) {
        if (l->pid > 0)
                return l->pid;
        for (size_t i = 0; i < in->n_holders; i++)
                if (fd_locks_find(&in->holders[i], file, l, NULL))
                        return in->holders[i].pid;
        return l->pid;
}

static int compare_locks(const void *a, const void *b) {
        const found_lock *x = a, *y = b;

        if (x->file != y->file)
                return x->file < y->file ? -1 : 1;
        if (x->l.start != y->l.start)
                return x->l.start < y->l.start ? -1 : 1;
        if (x->l.waiting != y->l.waiting)
                return x->l.waiting ? 1 : -1;
        return x->owner < y->owner ? -1 : x->owner > y->owner;
}

static bool same_lock(const proc_lock *a, const proc_lock *b) {
        return streq(a->kind, b->kind) && a->write == b->write && a->waiting == b->waiting && a->pid == b->pid &&
               a->major == b->major && a->minor == b->minor && a->inode == b->inode && a->start == b->start &&
               a->end == b->end;
}

/* Adds l on file to the locks found, once. */
static int add_lock(inspection *in, const proc_lock *l, unsigned file) {
        found_lock *m;

        for (size_t i = 0; i < in->n_locks; i++)
                if (in->locks[i].file == file && same_lock(&in->locks[i].l, l))
                        return 0;
        m = realloc(in->locks, (in->n_locks + 1) * sizeof(*m));
        if (!m)
                return -ENOMEM;
        in->locks = m;
        m[in->n_locks++] = (found_lock) {
                .l = *l,
                .file = file,
                .owner = lock_owner(in, l, file),
                /* an flock (migrated's own one-writer lock) is none of SQLite's */
                .locks = streq(l->kind, "FLOCK") ? 0 : lockinfo_sqlite_locks(file, l->start, l->end, l->write),
                .self = l->pid == getpid(),
        };
        return 0;
}

/* Every lock on our files: those of /proc/locks, and those the holders' fdinfo lists. The files
 * are known by the device and inode stat gives, and by those the holders' fdinfo prints (on
 * overlayfs and btrfs they differ). /proc/locks alone is not enough: the kernel prints it a page
 * per read() and finds its place again by position, so a lock released meanwhile earlier in the
 * list (other processes' SQLite locks come and go all the time) makes a held one vanish from the
 * scan; a holder's fdinfo is printed whole. */
static int scan_locks(inspection *in) {
        _cleanup_(fclosep) FILE *f = NULL;
        _cleanup_free_ char *line = NULL;
        size_t size = 0;
        int r;

        for (size_t i = 0; i < in->n_holders; i++)
                for (unsigned j = 0; j < _HOLDER_FILE_MAX; j++)
                        fd_locks_find(&in->holders[i], j, NULL, &in->files[j]);
        f = fopen("/proc/locks", "re");
        if (!f)
                return -errno;
        while (getline(&line, &size, f) > 0) {
                proc_lock l;
                int file;

                if (lockinfo_parse_lock_line(line, &l) < 0 || (file = lock_file(in, &l)) < 0)
                        continue;
                r = add_lock(in, &l, (unsigned) file);
                if (r < 0)
                        return r;
        }
        if (ferror(f))
                return -EIO;
        for (size_t i = 0; i < in->n_holders; i++)
                for (unsigned j = 0; j < _HOLDER_FILE_MAX; j++)
                        for (const char *s = in->holders[i].fd_locks[j]; s && *s;
                             s += strcspn(s, "\n") + (s[strcspn(s, "\n")] ? 1 : 0)) {
                                _cleanup_free_ char *one = strndup(s, strcspn(s, "\n"));
                                proc_lock l;

                                if (!one)
                                        return -ENOMEM;
                                if (lockinfo_parse_lock_line(one, &l) < 0)
                                        continue;
                                r = add_lock(in, &l, j);
                                if (r < 0)
                                        return r;
                        }
        if (in->n_locks > 1)
                qsort(in->locks, in->n_locks, sizeof(*in->locks), compare_locks);
        return 0;
}

/* The live probe, on a connection of our own that never blocks: can a writer start now.
 * Opened without SQLITE_OPEN_CREATE; the transaction writes nothing and is rolled back. When
 * -wal or -shm were there before, closing must not checkpoint and delete them
 * (NO_CKPT_ON_CLOSE); when they were not, the default close removes the ones the probe made (an
 * empty WAL: nothing is copied). No checkpoint is run: a diagnostic must not move frames into
 * the database; whether one could run is read from the locks (checkpoint_facts). */
static void probe(inspection *in) {
        _cleanup_(sqlite3_closep) sqlite3 *db = NULL;
        int rc;

        rc = sqlite3_open_v2(in->path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_EXRESCODE, NULL);
        if (rc != SQLITE_OK) {
                in->write_error = strdup(db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
                return;
        }
        sqlite3_busy_timeout(db, 0);
        if (in->files[HOLDER_FILE_WAL].present || in->files[HOLDER_FILE_SHM].present)
                sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
        in->facts.probe_ran = true;
        /* a file we may not write opens read-only, and then proves nothing about writers */
        if (sqlite3_db_readonly(db, "main") == 1) {
                if (asprintf(&in->write_error, "the database is read-only for uid %u: run lock-check as its owner "
                             "or as root", (unsigned) geteuid()) < 0)
                        in->write_error = NULL;
        } else if ((rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL)) == SQLITE_OK) {
                in->facts.write_ok = true;
                (void) sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        } else {
                in->write_error = strdup(sqlite3_errmsg(db));
                in->facts.write_busy = (rc & 0xff) == SQLITE_BUSY;
                in->facts.busy_recovery = rc == SQLITE_BUSY_RECOVERY;
        }
}

/* Whether a checkpoint could run now, without running one: nobody else holds the checkpoint or
 * recovery lock in -shm, nor an exclusive lock on the database. The frames are the wal-index's
 * (committed, and already copied back), -1 when its header could not be read. */
static void checkpoint_facts(inspection *in) {
        bool busy = false;

        if (!in->facts.wal)
                return;
        in->checkpoint_ran = true;
        for (size_t i = 0; i < in->n_locks; i++) {
                const found_lock *k = &in->locks[i];
                if (!k->l.waiting && !k->self && k->l.write &&
                    (k->locks & (LOCKINFO_WAL_CKPT | LOCKINFO_WAL_RECOVER | LOCKINFO_EXCLUSIVE)))
                        busy = true;
        }
        in->checkpoint_ok = !busy;
        if (in->index_read && in->index.valid) {
                in->checkpoint_log = in->index.mx_frame;
                in->checkpoint_done = in->index.n_backfill;
        } else if (!in->files[HOLDER_FILE_WAL].present)
                in->checkpoint_log = in->checkpoint_done = 0;
        else
                in->checkpoint_log = in->checkpoint_done = -1;
}

static bool wal_has_frames(const inspection *in) {
        return in->files[HOLDER_FILE_WAL].present && in->files[HOLDER_FILE_WAL].st.st_size > WAL_HEADER_SIZE;
}

/* The lock a verdict is about, first in the file/offset order. */
static const found_lock *find_blocker(const inspection *in, unsigned want_write, unsigned want_read) {
        for (size_t i = 0; i < in->n_locks; i++) {
                const found_lock *k = &in->locks[i];
                if (!k->l.waiting && (k->locks & (k->l.write ? want_write : want_read)))
                        return k;
        }
        return NULL;
}

/* Folds the locks into facts, decides, and finds whom the action must name. Our own read locks
 * (the daemon's idle connections) do not count; our own write locks (a running job) do. */
static void decide(inspection *in) {
        static const unsigned writer_bits = LOCKINFO_EXCLUSIVE | LOCKINFO_PENDING | LOCKINFO_RESERVED |
                                            LOCKINFO_WAL_WRITE | LOCKINFO_WAL_RECOVER;
        bool live = false;

        for (size_t i = 0; i < in->n_locks; i++) {
                const found_lock *k = &in->locks[i];
                if (k->l.waiting)
                        continue;
                if (k->locks & LOCKINFO_WAL_DMS)
                        live = true;
                if (k->self)
                        in->facts.held_write |= k->l.write ? k->locks & writer_bits : 0;
                else if (k->l.write)
                        in->facts.held_write |= k->locks;
                else
                        in->facts.held_read |= k->locks;
        }
        in->facts.wal_index_invalid = in->facts.wal && live && wal_has_frames(in) &&
                                      (!in->index_read || !in->index.valid);
        in->verdict = lockinfo_verdict_from_facts(&in->facts);
        switch (in->verdict) {
        case LOCKINFO_EXCLUSIVE_LOCK_HELD:
                in->blocker = find_blocker(in, LOCKINFO_EXCLUSIVE, 0);
                break;
        case LOCKINFO_WAL_NEEDS_RECOVERY:
                in->blocker = find_blocker(in, LOCKINFO_WAL_RECOVER, 0);
                break;
        case LOCKINFO_WRITER_ACTIVE:
                in->blocker = find_blocker(in, LOCKINFO_RESERVED | LOCKINFO_PENDING | LOCKINFO_WAL_WRITE,
                                           LOCKINFO_WAL_WRITE);
                break;
        default:
                break;
        }
        if (in->blocker && in->blocker->owner > 0) {
                const holder *h = NULL;
                for (size_t i = 0; i < in->n_holders && !h; i++)
                        if (in->holders[i].pid == in->blocker->owner)
                                h = &in->holders[i];
                if (!h && lockcheck_process_info(in->blocker->owner, &in->blocker_info) < 0)
                        in->blocker_info = (holder) { .pid = in->blocker->owner };
                else if (h)
                        in->blocker_info = (holder) {
                                .pid = h->pid,
                                .comm = h->comm ? strdup(h->comm) : NULL,
                                .unit = h->unit ? strdup(h->unit) : NULL,
                                .user_unit = h->user_unit,
                        };
        }
}

/* ---- the report ---- */

static json_t *database_json(const inspection *in) {
        const struct stat *st = &in->files[HOLDER_FILE_DB].st;
        _cleanup_free_ char *user = NULL;
        struct passwd pw, *found = NULL;
        char buf[1024], mode[8];

        if (getpwuid_r(st->st_uid, &pw, buf, sizeof(buf), &found) == 0 && found)
                user = strdup(found->pw_name);
        snprintf(mode, sizeof(mode), "%04o", (unsigned) (st->st_mode & 07777));
        return json_pack("{s:s,s:I,s:i,s:s?,s:s,s:s?,s:o}", "path", in->path, "size", (json_int_t) st->st_size,
                         "owner_uid", (int) st->st_uid, "owner_user", user, "mode", mode, "journal_mode",
                         in->journal_mode, "page_size", in->page_size ? json_integer(in->page_size) : json_null());
}

static json_t *wal_json(const inspection *in) {
        const file_info *wal = &in->files[HOLDER_FILE_WAL];
        bool known = in->index_read && in->index.valid;
        json_t *pending;

        if (!wal->present)
                pending = json_integer(0);
        else if (known)
                pending = json_integer(in->index.mx_frame >= in->index.n_backfill
                                               ? in->index.mx_frame - in->index.n_backfill : 0);
        else
                pending = json_null();
        return json_pack("{s:b,s:I,s:o,s:o,s:o,s:b}", "present", wal->present, "size",
                         (json_int_t) (wal->present ? wal->st.st_size : 0), "frames_not_checkpointed", pending,
                         "frames", known ? json_integer(in->index.mx_frame) : json_null(), "checkpointed",
                         known ? json_integer(in->index.n_backfill) : json_null(), "index_valid", known);
}

static json_t *locks_json(const inspection *in) {
        json_t *arr = json_array();

        for (size_t i = 0; arr && i < in->n_locks; i++) {
                const found_lock *k = &in->locks[i];
                char name[LOCKINFO_NAME_MAX];
                json_t *o;

                o = json_pack("{s:i,s:o,s:s,s:s,s:I,s:o,s:s,s:s?,s:b,s:b}", "pid", (int) k->l.pid, "owner_pid",
                              k->owner > 0 ? json_integer(k->owner) : json_null(), "file", file_names[k->file],
                              "kind", k->l.kind, "range_start", (json_int_t) k->l.start, "range_end",
                              k->l.end == LOCKINFO_EOF ? json_null() : json_integer((json_int_t) k->l.end), "type",
                              k->l.write ? "write" : "read", "sqlite_lock", lockinfo_sqlite_lock_name(k->locks, name),
                              "waiting", k->l.waiting, "self", k->self);
                if (!o || json_array_append_new(arr, o) < 0)
                        return json_decref(arr), NULL;
        }
        return arr;
}

static json_t *probe_json(const inspection *in) {
        const lockinfo_facts *f = &in->facts;
        bool frames = in->checkpoint_ran && in->checkpoint_log >= 0;

        /* checkpoint_error stays in the document (always null) for the scripts that read it */
        return json_pack("{s:b,s:b,s:s?,s:o,s:n,s:o,s:o}", "ran", f->probe_ran, "write_ok", f->write_ok,
                         "write_error", in->write_error, "checkpoint_ok",
                         in->checkpoint_ran ? json_boolean(in->checkpoint_ok) : json_null(), "checkpoint_error",
                         "checkpoint_log_frames",
                         frames ? json_integer(in->checkpoint_log) : json_null(), "checkpoint_done_frames",
                         frames ? json_integer(in->checkpoint_done) : json_null());
}

static json_t *blocker_json(const inspection *in) {
        char name[LOCKINFO_NAME_MAX];

        if (!in->blocker)
                return json_null();
        return json_pack("{s:o,s:s?,s:s?,s:b,s:s,s:s?}", "pid",
                         in->blocker->owner > 0 ? json_integer(in->blocker->owner) : json_null(), "command",
                         in->blocker_info.comm, "unit", in->blocker_info.unit, "user_unit", in->blocker_info.user_unit,
                         "file", file_names[in->blocker->file], "sqlite_lock",
                         lockinfo_sqlite_lock_name(in->blocker->locks, name));
}

static json_t *report_json(const inspection *in) {
        const holder *b = &in->blocker_info;
        lockinfo_who who = { .pid = b->pid, .comm = b->comm, .unit = b->unit, .user_unit = b->user_unit };
        _cleanup_free_ char *action = lockinfo_action(in->verdict, &in->facts, in->blocker ? &who : NULL,
                                                      in->n_holders, in->path, in->write_error);

        if (!action)
                return NULL;
        return json_pack("{s:o,s:o,s:{s:b,s:I},s:o,s:o,s:o,s:s,s:s,s:o,s:b}", "database", database_json(in), "wal",
                         wal_json(in), "shm", "present", in->files[HOLDER_FILE_SHM].present, "size",
                         (json_int_t) (in->files[HOLDER_FILE_SHM].present ? in->files[HOLDER_FILE_SHM].st.st_size : 0),
                         "holders", holders_to_json(in->holders, in->n_holders), "locks", locks_json(in), "probe",
                         probe_json(in), "verdict", lockinfo_verdict_to_string(in->verdict), "action", action,
                         "blocker", blocker_json(in), "migration_possible",
                         lockinfo_migration_possible(in->verdict, &in->facts));
}

int lockinfo_inspect(const char *database, json_t **ret_report) {
        _cleanup_(inspection_done) inspection in = { .database = database };
        json_t *report;
        int r;

        if (!database || !*database)
                return -EINVAL;
        r = inspect_files(&in);
        if (r < 0)
                return r;
        r = lockcheck_find_holders(in.path, &in.holders, &in.n_holders);
        if (r < 0)
                return r;
        r = scan_locks(&in);
        if (r < 0)
                return r;
        probe(&in);
        checkpoint_facts(&in);
        decide(&in);
        report = report_json(&in);
        if (!report)
                return -ENOMEM;
        *ret_report = report;
        return 0;
}
