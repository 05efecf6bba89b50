/* SPDX-License-Identifier: MIT */
/* The pure half of lock-check: /proc/locks lines, SQLite's names for lock bytes, the wal-index
 * header, the verdict and the action's words. lockinfo-inspect.c gathers the facts. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lockinfo.h"
#include "macro.h"

#define WAL_INDEX_VERSION 3007000u

/* ---- /proc/locks ---- */

/* The next blank-separated token of *p into buf; false at the end or when it does not fit. */
static bool next_token(const char **p, char *buf, size_t size) {
        const char *s = *p + strspn(*p, " \t");
        size_t n = strcspn(s, " \t\n");

        if (n == 0 || n >= size)
                return false;
        memcpy(buf, s, n);
        buf[n] = '\0';
        *p = s + n;
        return true;
}

/* A whole token as an unsigned number; no sign, no trailing bytes. */
static bool parse_u64(const char *s, int base, uint64_t *ret) {
        unsigned long long v;
        char *end;

        if (!isxdigit((unsigned char) s[0]))
                return false;
        errno = 0;
        v = strtoull(s, &end, base);
        if (errno != 0 || end == s || *end)
                return false;
        *ret = v;
        return true;
}

/* "MAJ:MIN:INODE": the device's major and minor in hex, the inode in decimal. */
static bool parse_device_inode(char *s, proc_lock *l) {
        char *minor = strchr(s, ':'), *inode = minor ? strchr(minor + 1, ':') : NULL;
        uint64_t maj, min;

        if (!inode)
                return false;
        *minor++ = '\0';
        *inode++ = '\0';
        if (!parse_u64(s, 16, &maj) || !parse_u64(minor, 16, &min) || !parse_u64(inode, 10, &l->inode) ||
            maj > UINT_MAX || min > UINT_MAX)
                return false;
        l->major = (unsigned) maj;
        l->minor = (unsigned) min;
        return true;
}

int lockinfo_parse_lock_line(const char *line, proc_lock *ret) {
        proc_lock l = {};
        char tok[64];
        const char *p = line;
        uint64_t v;
        char *end;
        long pid;

        /* "12:" or "12: ->" (a blocked request, indented under the lock it waits for) */
        if (!next_token(&p, tok, sizeof(tok)) || strlen(tok) < 2 || tok[strlen(tok) - 1] != ':' ||
            strspn(tok, "0123456789") != strlen(tok) - 1)
                return -EINVAL;
        if (!next_token(&p, tok, sizeof(tok)))
                return -EINVAL;
        if (streq(tok, "->")) {
                l.waiting = true;
                if (!next_token(&p, tok, sizeof(tok)))
                        return -EINVAL;
        }
        if (strlen(tok) >= sizeof(l.kind))
                return -EINVAL;
        strcpy(l.kind, tok);
        if (!next_token(&p, tok, sizeof(tok))) /* ADVISORY, or a lease's ACTIVE/BREAKING */
                return -EINVAL;
        if (!next_token(&p, tok, sizeof(tok)) || !(streq(tok, "READ") || streq(tok, "WRITE")))
                return -EINVAL;
        l.write = streq(tok, "WRITE");
        if (!next_token(&p, tok, sizeof(tok)))
                return -EINVAL;
        errno = 0;
        pid = strtol(tok, &end, 10);
        if (errno != 0 || end == tok || *end || pid < -1 || pid > INT_MAX)
                return -EINVAL;
        l.pid = (pid_t) pid;
        if (!next_token(&p, tok, sizeof(tok)) || !parse_device_inode(tok, &l))
                return -EINVAL;
        if (!next_token(&p, tok, sizeof(tok)) || !parse_u64(tok, 10, &l.start))
                return -EINVAL;
        if (!next_token(&p, tok, sizeof(tok)))
                return -EINVAL;
        if (streq(tok, "EOF"))
                l.end = LOCKINFO_EOF;
        else if (parse_u64(tok, 10, &v) && v >= l.start)
                l.end = v;
        else
                return -EINVAL;
        if (p[strspn(p, " \t\n")] != '\0')
                return -EINVAL;
        *ret = l;
        return 0;
}

/* ---- SQLite's names for lock bytes ---- */

static bool overlaps(uint64_t start, uint64_t end, uint64_t first, uint64_t last) {
        return start <= last && first <= end;
}

unsigned lockinfo_sqlite_locks(unsigned file, uint64_t start, uint64_t end, bool write) {
        unsigned locks = 0;

        if (end < start)
                return 0;
        if (file == HOLDER_FILE_DB) {
                if (overlaps(start, end, LOCKINFO_SHARED_FIRST, LOCKINFO_SHARED_FIRST + LOCKINFO_SHARED_SIZE - 1))
                        locks |= write ? LOCKINFO_EXCLUSIVE : LOCKINFO_SHARED;
                if (write && overlaps(start, end, LOCKINFO_RESERVED_BYTE, LOCKINFO_RESERVED_BYTE))
                        locks |= LOCKINFO_RESERVED;
                if (overlaps(start, end, LOCKINFO_PENDING_BYTE, LOCKINFO_PENDING_BYTE))
                        locks |= write ? LOCKINFO_PENDING : LOCKINFO_SHARED;
        } else if (file == HOLDER_FILE_SHM) {
                /* slots 0..7 are WAL_WRITE .. WAL_READ4, slot 8 is the DMS byte: bits 4..12 */
                for (unsigned slot = 0; slot <= LOCKINFO_SHM_DMS - LOCKINFO_SHM_LOCK_BASE; slot++)
                        if (overlaps(start, end, LOCKINFO_SHM_LOCK_BASE + slot, LOCKINFO_SHM_LOCK_BASE + slot))
                                locks |= LOCKINFO_WAL_WRITE << slot;
        }
        return locks;
}

const char *lockinfo_sqlite_lock_name(unsigned locks, char buf[static LOCKINFO_NAME_MAX]) {
        static const char *const shm_names[] = { "WAL_WRITE", "WAL_CKPT",  "WAL_READ0", "WAL_READ1", "WAL_READ2",
                                                 "WAL_READ3", "WAL_READ4", "WAL_DMS" };
        static const unsigned shm_bits[] = { LOCKINFO_WAL_WRITE,   LOCKINFO_WAL_CKPT,    LOCKINFO_WAL_READ(0),
                                             LOCKINFO_WAL_READ(1), LOCKINFO_WAL_READ(2), LOCKINFO_WAL_READ(3),
                                             LOCKINFO_WAL_READ(4), LOCKINFO_WAL_DMS };
        size_t n = 0;

        buf[0] = '\0';
        if (locks & LOCKINFO_EXCLUSIVE)
                n = (size_t) snprintf(buf, LOCKINFO_NAME_MAX, "EXCLUSIVE");
        else if (locks & LOCKINFO_PENDING)
                n = (size_t) snprintf(buf, LOCKINFO_NAME_MAX, "PENDING");
        else if (locks & LOCKINFO_RESERVED)
                n = (size_t) snprintf(buf, LOCKINFO_NAME_MAX, "RESERVED");
        else if (locks & LOCKINFO_SHARED)
                n = (size_t) snprintf(buf, LOCKINFO_NAME_MAX, "SHARED");
        /* the recovery lock between the checkpointer and the read marks, as in the -shm */
        for (size_t i = 0; i < ELEMENTSOF(shm_bits); i++) {
                if (i == 2 && (locks & LOCKINFO_WAL_RECOVER))
                        n += (size_t) snprintf(buf + n, LOCKINFO_NAME_MAX - n, "%sWAL_RECOVER", n ? "+" : "");
                if (locks & shm_bits[i])
                        n += (size_t) snprintf(buf + n, LOCKINFO_NAME_MAX - n, "%s%s", n ? "+" : "", shm_names[i]);
        }
        return n > 0 ? buf : NULL;
}

/* ---- the wal-index header ---- */

static uint32_t u32_at(const uint8_t *b, size_t offset) {
        uint32_t v;

        memcpy(&v, b + offset, sizeof(v));
        return v;
}

int lockinfo_parse_wal_index(const void *buf, size_t size, wal_index *ret) {
        const uint8_t *b = buf;
        uint32_t s1 = 0, s2 = 0;
        uint16_t sz;

        if (size < LOCKINFO_WAL_INDEX_HDR_SIZE)
                return -EINVAL;
        /* WalIndexHdr: iVersion, unused, iChange, isInit (u8), bigEndCksum (u8), szPage (u16),
         * mxFrame, nPage, aFrameCksum[2], aSalt[2], aCksum[2]; twice; then WalCkptInfo whose
         * first field is nBackfill. The checksum covers the first 40 bytes, in native order. */
        for (size_t i = 0; i < 40; i += 8) {
                s1 += u32_at(b, i) + s2;
                s2 += u32_at(b, i + 4) + s1;
        }
        memcpy(&sz, b + 14, sizeof(sz));
        *ret = (wal_index) {
                .valid = b[12] != 0 && u32_at(b, 0) == WAL_INDEX_VERSION && memcmp(b, b + 48, 48) == 0 &&
                         s1 == u32_at(b, 40) && s2 == u32_at(b, 44),
                .mx_frame = u32_at(b, 16),
                .n_backfill = u32_at(b, 96),
                .page_size = (sz & 0xfe00u) + ((uint32_t) (sz & 1u) << 16),
        };
        return 0;
}

/* ---- verdict and action ---- */

static const char *const verdict_names[_LOCKINFO_VERDICT_MAX] = {
        [LOCKINFO_FREE] = "free",
        [LOCKINFO_READERS_ONLY] = "readers_only",
        [LOCKINFO_WRITER_ACTIVE] = "writer_active",
        [LOCKINFO_EXCLUSIVE_LOCK_HELD] = "exclusive_lock_held",
        [LOCKINFO_WAL_NEEDS_RECOVERY] = "wal_needs_recovery",
};

const char *lockinfo_verdict_to_string(lockinfo_verdict v) {
        return (unsigned) v < _LOCKINFO_VERDICT_MAX ? verdict_names[v] : NULL;
}

/* The order is the order of what to deal with first: an exclusive lock blocks everything, a WAL
 * in recovery blocks readers and writers, a writer blocks writers; readers block nobody. */
lockinfo_verdict lockinfo_verdict_from_facts(const lockinfo_facts *f) {
        if (f->held_write & LOCKINFO_EXCLUSIVE)
                return LOCKINFO_EXCLUSIVE_LOCK_HELD;
        if (f->wal && ((f->held_write & LOCKINFO_WAL_RECOVER) || f->wal_index_invalid || f->busy_recovery))
                return LOCKINFO_WAL_NEEDS_RECOVERY;
        if ((f->held_write & (LOCKINFO_RESERVED | LOCKINFO_PENDING | LOCKINFO_WAL_WRITE)) ||
            (f->held_read & LOCKINFO_WAL_WRITE))
                return LOCKINFO_WRITER_ACTIVE;
        if (f->probe_ran && f->write_busy)
                return LOCKINFO_WRITER_ACTIVE; /* a lock /proc/locks does not show us */
        if (f->held_read || f->held_write)
                return LOCKINFO_READERS_ONLY;
        return LOCKINFO_FREE;
}

bool lockinfo_migration_possible(lockinfo_verdict v, const lockinfo_facts *f) {
        return (v == LOCKINFO_FREE || v == LOCKINFO_READERS_ONLY) && f->probe_ran && f->write_ok;
}

static bool who_known(const lockinfo_who *who) {
        return who && who->pid > 0;
}

/* "free-sleep.service (pid 812)", "python3 (pid 812)", "pid 812". */
static char *who_text(const lockinfo_who *who) {
        char *s;

        if (!who_known(who))
                return strdup("a process this scan cannot see");
        if (asprintf(&s, "%s%s(pid %d)", who->unit ?: who->comm ?: "", who->unit || who->comm ? " " : "",
                     (int) who->pid) < 0)
                return NULL;
        return s;
}

/* How to make it let go: a service, a pm2 process or a container is stopped through its manager (killing it
 * would only get it restarted), anything else (a scope is a login session or a container) by its pid. */
static char *stop_text(const lockinfo_who *who, const char *database) {
        size_t n = who && who->unit ? strlen(who->unit) : 0;
        char *s;
        int r;

        if (who && who->unit && strneq(who->unit, "pm2:", 4))
                /* pm2 would start a killed process again */
                r = asprintf(&s, "stop it with pm2 stop %s (as its owner, with its PM2_HOME)", who->unit + 4);
        else if (who && who->unit && strneq(who->unit, "container:", 10))
                r = asprintf(&s, "stop it with docker stop %s (or podman stop)", who->unit + 10);
        else if (n > 8 && streq(who->unit + n - 8, ".service"))
                r = asprintf(&s, "stop it with systemctl%s stop %s", who->user_unit ? " --user" : "", who->unit);
        else if (who_known(who))
                r = asprintf(&s, "end that process (kill %d)", (int) who->pid);
        else
                r = asprintf(&s, "find it with fuser -v %s", database ?: "DATABASE");
        return r < 0 ? NULL : s;
}

static char *action_free(const lockinfo_facts *f, size_t n_holders, const char *write_error, bool readers) {
        char *s;
        int r;

        if (!f->write_ok)
                r = asprintf(&s, "%s, but the write probe failed (%s): a migration cannot run until that is fixed.",
                             readers ? "Only readers hold the database" : "No process holds a lock on the database",
                             write_error ?: "the database could not be opened");
        else if (readers)
                r = asprintf(&s, "Only readers hold the database: a migration can run now%s.",
                             f->wal ? "; readers keep their snapshot until their transaction ends"
                                    : "; its commit waits for their read transactions to end, up to the busy timeout");
        else if (n_holders > 0)
                r = asprintf(&s, "No process holds a lock on the database; %zu %s it open without a lock: a migration "
                             "can run now.", n_holders, n_holders == 1 ? "process has" : "processes have");
        else
                r = asprintf(&s, "Nothing holds the database: a migration can run now.");
        return r < 0 ? NULL : s;
}

char *lockinfo_action(lockinfo_verdict v, const lockinfo_facts *f, const lockinfo_who *who, size_t n_holders,
                      const char *database, const char *write_error) {
        _cleanup_free_ char *name = NULL, *stop = NULL;
        char *s = NULL;
        int r = 0;

        if (v == LOCKINFO_FREE || v == LOCKINFO_READERS_ONLY)
                return action_free(f, n_holders, write_error, v == LOCKINFO_READERS_ONLY);
        name = who_text(who);
        stop = stop_text(who, database);
        if (!name || !stop)
                return NULL;
        if (v == LOCKINFO_EXCLUSIVE_LOCK_HELD)
                r = asprintf(&s, "%s holds an EXCLUSIVE lock on the database (it is committing, or keeps the database "
                             "with locking_mode=EXCLUSIVE until it closes it): %s, or wait for it to let go.", name, stop);
        else if (v == LOCKINFO_WAL_NEEDS_RECOVERY && who_known(who))
                r = asprintf(&s, "%s is rebuilding the WAL index (it holds the recovery lock): wait for it to finish; "
                             "if it is stuck, %s.", name, stop);
        else if (v == LOCKINFO_WAL_NEEDS_RECOVERY)
                r = asprintf(&s, "The WAL index in the -shm file is not valid while connections are open: the next "
                             "connection rebuilds it; retry in a moment, and if this persists restart the %s that "
                             "have the database open.", n_holders == 1 ? "process" : "processes");
        else if (who_known(who))
                r = asprintf(&s, "%s holds the write lock: %s, or wait for its transaction to finish.", name, stop);
        else
                r = asprintf(&s, "Another connection holds the write lock (%s) but no lock in /proc/locks names it "
                             "(a process in another PID namespace, or on another host): %s, or retry later.",
                             write_error ?: "database is locked", stop);
        return r < 0 ? NULL : s;
}
