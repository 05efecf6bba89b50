/* SPDX-License-Identifier: MIT */
#pragma once

/* lock-check: who holds a SQLite database, and how, in SQLite's own terms. One report gathers the
 * files (stat, the database header, the wal-index header in -shm), the processes that have them
 * open (lockcheck.h), every byte-range lock on them (/proc/locks) translated into SQLite's lock
 * names, a live probe that never blocks and never changes the database (BEGIN IMMEDIATE rolled
 * back at once; whether a checkpoint could run is read from the locks, none is run), a verdict and an action in plain words. It runs without the
 * daemon (migratectl lock-check --database) and on the daemon's worker thread alike. The pure
 * helpers below are what the unit tests check. */

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "lockcheck.h"

/* A range_end of "EOF" in /proc/locks: the lock runs to the end of any file size. */
#define LOCKINFO_EOF UINT64_MAX

/* SQLite's lock bytes (sqlite's os.h and wal.c). */
#define LOCKINFO_PENDING_BYTE UINT64_C(0x40000000)
#define LOCKINFO_RESERVED_BYTE (LOCKINFO_PENDING_BYTE + 1)
#define LOCKINFO_SHARED_FIRST (LOCKINFO_PENDING_BYTE + 2)
#define LOCKINFO_SHARED_SIZE 510
#define LOCKINFO_SHM_LOCK_BASE 120 /* -shm: WAL_WRITE_LOCK is byte 120 + 0 */
#define LOCKINFO_SHM_DMS 128       /* -shm: the "dead man switch" byte */

/* One line of /proc/locks, or the part after "lock:" of a line of /proc/PID/fdinfo/FD. */
typedef struct proc_lock {
        char kind[16];         /* "POSIX", "OFDLCK", "FLOCK", "LEASE", ... */
        bool write;            /* WRITE; else READ */
        bool waiting;          /* "->": a blocked request waiting for a lock, not a held lock */
        pid_t pid;             /* -1 for OFD locks; 0 for an owner outside our PID namespace */
        unsigned major, minor; /* of the file system's device; /proc/locks prints them in hex */
        uint64_t inode;
        uint64_t start, end; /* inclusive; end is LOCKINFO_EOF for "EOF" */
} proc_lock;

/* Parses one line. Returns 0, or -EINVAL for a line that is not a READ or WRITE lock on an inode
 * (a "<none>" device, an UNLCK lease, garbage). */
int lockinfo_parse_lock_line(const char *line, proc_lock *ret);

/* SQLite's locks as bits, so that one byte range (the kernel merges a process's adjacent ranges
 * of one type) can stand for several. */
enum {
        LOCKINFO_SHARED = 1u << 0,      /* db: a read lock on the shared range, or on PENDING_BYTE
                                         * for the moment a connection takes SHARED */
        LOCKINFO_RESERVED = 1u << 1,    /* db: a write lock on RESERVED_BYTE */
        LOCKINFO_PENDING = 1u << 2,     /* db: a write lock on PENDING_BYTE */
        LOCKINFO_EXCLUSIVE = 1u << 3,   /* db: a write lock on the shared range */
        LOCKINFO_WAL_WRITE = 1u << 4,   /* -shm byte 120 */
        LOCKINFO_WAL_CKPT = 1u << 5,    /* -shm byte 121 */
        LOCKINFO_WAL_RECOVER = 1u << 6, /* -shm byte 122 */
        LOCKINFO_WAL_READ0 = 1u << 7,   /* -shm byte 123 + i: read mark i, i in 0..4 */
        LOCKINFO_WAL_DMS = 1u << 12,    /* -shm byte 128, read-locked by every open connection */
};
#define LOCKINFO_WAL_READ(i) (LOCKINFO_WAL_READ0 << (i))
#define LOCKINFO_WAL_READ_ALL (LOCKINFO_WAL_READ(0) * 31u)
#define LOCKINFO_DB_LOCKS (LOCKINFO_SHARED | LOCKINFO_RESERVED | LOCKINFO_PENDING | LOCKINFO_EXCLUSIVE)

/* The SQLite locks a lock on [start, end] of the file (HOLDER_FILE_*) stands for; 0 for none of
 * SQLite's (any lock on -wal, bytes SQLite never locks). */
unsigned lockinfo_sqlite_locks(unsigned file, uint64_t start, uint64_t end, bool write);

/* The name of those locks: the strongest of the database's (EXCLUSIVE implies PENDING and
 * RESERVED), or every -shm slot joined by "+" ("WAL_WRITE+WAL_CKPT", "WAL_READ1"). Returns buf,
 * or NULL when locks is 0. */
#define LOCKINFO_NAME_MAX 128
const char *lockinfo_sqlite_lock_name(unsigned locks, char buf[static LOCKINFO_NAME_MAX]);

/* The wal-index header: the first 136 bytes of -shm, in native byte order (sqlite's walformat). */
#define LOCKINFO_WAL_INDEX_HDR_SIZE 136
typedef struct wal_index {
        bool valid; /* initialized, both copies equal, checksum right */
        uint32_t mx_frame;   /* frames in the WAL that are committed */
        uint32_t n_backfill; /* of those, copied back into the database */
        uint32_t page_size;
} wal_index;

/* Returns 0 (ret->valid tells whether the header can be trusted), or -EINVAL when size is short
 * of a header. */
int lockinfo_parse_wal_index(const void *buf, size_t size, wal_index *ret);

typedef enum lockinfo_verdict {
        LOCKINFO_FREE,
        LOCKINFO_READERS_ONLY,
        LOCKINFO_WRITER_ACTIVE,
        LOCKINFO_EXCLUSIVE_LOCK_HELD,
        LOCKINFO_WAL_NEEDS_RECOVERY,
        _LOCKINFO_VERDICT_MAX,
} lockinfo_verdict;

const char *lockinfo_verdict_to_string(lockinfo_verdict v);

/* What the verdict is decided from. */
typedef struct lockinfo_facts {
        bool wal;                /* the database is in WAL mode */
        bool wal_index_invalid;  /* -wal has frames, connections are open, and the wal-index
                                  * header is missing or not valid: the next reader must recover */
        unsigned held_read;      /* LOCKINFO_* read-locked by other processes (held, not waiting) */
        unsigned held_write;     /* LOCKINFO_* write-locked by any process, ourselves included */
        bool probe_ran;          /* the database could be opened for the probe */
        bool write_ok;           /* BEGIN IMMEDIATE succeeded */
        bool write_busy;         /* ... failed with SQLITE_BUSY */
        bool busy_recovery;      /* ... failed with SQLITE_BUSY_RECOVERY */
} lockinfo_facts;

lockinfo_verdict lockinfo_verdict_from_facts(const lockinfo_facts *f);

/* A migration could start now: nobody writes and the write probe got the write lock. */
bool lockinfo_migration_possible(lockinfo_verdict v, const lockinfo_facts *f);

/* The process a verdict is about: the lock owner to deal with. */
typedef struct lockinfo_who {
        pid_t pid;        /* <= 0: unknown */
        const char *comm; /* NULL: unknown */
        const char *unit; /* NULL: none */
        bool user_unit;   /* a unit of a user manager */
} lockinfo_who;

/* The recommended action, one or two sentences that name the unit or pid to deal with. who may
 * be NULL; n_holders counts the other processes that have the files open. Returns a malloc'd
 * string, or NULL on OOM. */
char *lockinfo_action(lockinfo_verdict v, const lockinfo_facts *f, const lockinfo_who *who, size_t n_holders,
                      const char *database, const char *write_error);

/* The whole report (README "lock-check"): database, wal, shm, holders, locks, probe, verdict,
 * action, blocker, migration_possible. Returns 0, -ENOENT when the database does not exist (it is
 * never created), -EISDIR/-EINVAL when it is not a regular file, -EBADMSG when it is not an
 * SQLite database, other -errno when /proc cannot be read or memory runs out. */
int lockinfo_inspect(const char *database, json_t **ret_report);
