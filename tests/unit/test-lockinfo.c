/* SPDX-License-Identifier: MIT */
/* Unit tests for common/lockinfo.c: /proc/locks lines (POSIX, OFD with pid -1, hex devices,
 * blocked requests, fdinfo's form), the translation of lock ranges into SQLite's lock names for
 * rollback-journal databases and for the -shm of WAL databases, the wal-index header, the verdict
 * rules and the action's words; then lockinfo_inspect on real files (never creating one). */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lockinfo.h"
#include "macro.h"

/* ---- /proc/locks lines ---- */

static proc_lock parse_ok(const char *line) {
        proc_lock l;

        memset(&l, 0xaa, sizeof(l));
        if (lockinfo_parse_lock_line(line, &l) != 0)
                fail_msg("could not parse: %s", line);
        return l;
}

static void test_parse_posix(void **state) {
        proc_lock l = parse_ok("1: POSIX  ADVISORY  READ 15136 fe:00:10955390 124 124\n");

        assert_string_equal(l.kind, "POSIX");
        assert_false(l.write);
        assert_false(l.waiting);
        assert_int_equal(l.pid, 15136);
        assert_int_equal(l.major, 0xfe);
        assert_int_equal(l.minor, 0);
        assert_int_equal(l.inode, 10955390);
        assert_int_equal(l.start, 124);
        assert_int_equal(l.end, 124);

        l = parse_ok("12: POSIX  ADVISORY  WRITE 812 08:01:131090 1073741824 1073742335");
        assert_true(l.write);
        assert_int_equal(l.major, 8);
        assert_int_equal(l.minor, 1);
        assert_int_equal(l.start, LOCKINFO_PENDING_BYTE);
        assert_int_equal(l.end, LOCKINFO_SHARED_FIRST + LOCKINFO_SHARED_SIZE - 1);
}

static void test_parse_ofd(void **state) {
        /* OFD locks belong to an open file description, not a process: pid -1 */
        proc_lock l = parse_ok("3: OFDLCK ADVISORY  WRITE -1 00:2f:4711 120 120");

        assert_string_equal(l.kind, "OFDLCK");
        assert_true(l.write);
        assert_int_equal(l.pid, -1);
        assert_int_equal(l.major, 0);
        assert_int_equal(l.minor, 0x2f);
        assert_int_equal(l.inode, 4711);

        /* an owner outside our PID namespace shows 0 */
        l = parse_ok("4: POSIX  ADVISORY  READ 0 fe:00:1 128 128");
        assert_int_equal(l.pid, 0);
}

static void test_parse_hex_devices(void **state) {
        /* major and minor are hex, and wider than two digits on NVMe or with many minors */
        proc_lock l = parse_ok("5: POSIX  ADVISORY  WRITE 99 103:0a:77 0 EOF");

        assert_int_equal(l.major, 259);
        assert_int_equal(l.minor, 10);
        assert_int_equal(l.inode, 77);
        assert_int_equal(l.start, 0);
        assert_true(l.end == LOCKINFO_EOF);

        l = parse_ok("6: POSIX  ADVISORY  READ 1 fd:1ab:18446744073709551615 5 6");
        assert_int_equal(l.major, 0xfd);
        assert_int_equal(l.minor, 0x1ab);
        assert_true(l.inode == UINT64_MAX);
}

static void test_parse_other_kinds(void **state) {
        proc_lock l = parse_ok("7: FLOCK  ADVISORY  WRITE 29428 fe:00:10953993 0 EOF");

        assert_string_equal(l.kind, "FLOCK");
        assert_true(l.end == LOCKINFO_EOF);

        l = parse_ok("8: LEASE  ACTIVE    READ  77 fe:00:12 0 EOF");
        assert_string_equal(l.kind, "LEASE");
        assert_false(l.write);
}

static void test_parse_waiting(void **state) {
        /* blocked requests follow the lock they wait for, "->" first, indented per level */
        proc_lock l = parse_ok("9: -> POSIX  ADVISORY  WRITE 100 fe:00:5 120 120");

        assert_true(l.waiting);
        assert_int_equal(l.pid, 100);
        l = parse_ok("9:  -> POSIX  ADVISORY  WRITE 101 fe:00:5 120 120");
        assert_true(l.waiting);
        assert_int_equal(l.pid, 101);
}

static void test_parse_fdinfo_form(void **state) {
        /* /proc/PID/fdinfo/FD prints "lock:\t" and then the same line */
        proc_lock l = parse_ok("\t1: POSIX  ADVISORY  READ 15136 fe:00:10952850 1073741826 1073742335");

        assert_int_equal(l.inode, 10952850);
        assert_int_equal(l.start, LOCKINFO_SHARED_FIRST);
}

static void test_parse_bad(void **state) {
        static const char *const bad[] = {
                "",
                "\n",
                "garbage",
                "1:",
                "POSIX  ADVISORY  READ 1 fe:00:1 0 EOF",                /* no ordinal */
                "x: POSIX  ADVISORY  READ 1 fe:00:1 0 EOF",             /* not a number */
                "1: POSIX  ADVISORY  READ 1 <none>:0 0 EOF",            /* no inode */
                "1: LEASE  BREAKING  UNLCK 1 fe:00:1 0 EOF",            /* not READ or WRITE */
                "1: POSIX  ADVISORY  READ 1 fe:00:1 0",                 /* no end */
                "1: POSIX  ADVISORY  READ 1 fe:00:1 0 EOF x",           /* trailing garbage */
                "1: POSIX  ADVISORY  READ 1 fe:00:1 9 8",               /* end before start */
                "1: POSIX  ADVISORY  READ -2 fe:00:1 0 EOF",            /* no such pid */
                "1: POSIX  ADVISORY  READ 1x fe:00:1 0 EOF",
                "1: POSIX  ADVISORY  READ 1 zz:00:1 0 EOF",             /* not hex */
                "1: POSIX  ADVISORY  READ 1 fe:00:1a 0 EOF",            /* the inode is decimal */
                "1: POSIX  ADVISORY  READ 1 fe:00 0 EOF",
                "1: POSIX  ADVISORY  READ 1 fe:00:1 -1 EOF",
                "1: POSIX  ADVISORY  READ 1 fe:00:1 EOF EOF",
                "1: POSIX  ADVISORY  READ 1 fe:00:1 0 18446744073709551616", /* overflows */
                "1: AVERYLONGKINDNAMEOFLOCK ADVISORY READ 1 fe:00:1 0 EOF",
        };

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                proc_lock l;
                if (lockinfo_parse_lock_line(bad[i], &l) != -EINVAL)
                        fail_msg("accepted: \"%s\"", bad[i]);
        }
}

/* ---- SQLite's names ---- */

static const char *name_of(unsigned file, uint64_t start, uint64_t end, bool write, char buf[static LOCKINFO_NAME_MAX]) {
        return lockinfo_sqlite_lock_name(lockinfo_sqlite_locks(file, start, end, write), buf);
}

#define assert_lock_name(file, start, end, write, expected)                                           \
        do {                                                                                          \
                char _b[LOCKINFO_NAME_MAX];                                                           \
                const char *_n = name_of((file), (start), (end), (write), _b);                        \
                if (!(expected))                                                                      \
                        assert_null(_n);                                                              \
                else {                                                                                \
                        assert_non_null(_n);                                                          \
                        assert_string_equal(_n, (expected));                                          \
                }                                                                                     \
        } while (0)

static void test_rollback_journal_locks(void **state) {
        const uint64_t pending = LOCKINFO_PENDING_BYTE, reserved = pending + 1, first = pending + 2;
        const uint64_t last = first + LOCKINFO_SHARED_SIZE - 1;

        assert_int_equal(pending, 0x40000000);
        assert_int_equal(last, 0x400001ff);
        /* SHARED: a read lock over the shared range; for a moment a read lock on PENDING */
        assert_lock_name(HOLDER_FILE_DB, first, last, false, "SHARED");
        assert_lock_name(HOLDER_FILE_DB, pending, pending, false, "SHARED");
        /* RESERVED, PENDING: write locks on their bytes */
        assert_lock_name(HOLDER_FILE_DB, reserved, reserved, true, "RESERVED");
        assert_lock_name(HOLDER_FILE_DB, pending, pending, true, "PENDING");
        /* the kernel merges adjacent ranges of one type: PENDING+RESERVED is one range */
        assert_lock_name(HOLDER_FILE_DB, pending, reserved, true, "PENDING");
        assert_int_equal(lockinfo_sqlite_locks(HOLDER_FILE_DB, pending, reserved, true),
                         LOCKINFO_PENDING | LOCKINFO_RESERVED);
        /* EXCLUSIVE: a write lock over the shared range, merged with PENDING and RESERVED */
        assert_lock_name(HOLDER_FILE_DB, first, last, true, "EXCLUSIVE");
        assert_lock_name(HOLDER_FILE_DB, pending, last, true, "EXCLUSIVE");
        assert_int_equal(lockinfo_sqlite_locks(HOLDER_FILE_DB, pending, last, true),
                         LOCKINFO_PENDING | LOCKINFO_RESERVED | LOCKINFO_EXCLUSIVE);
        /* any part of the shared range counts; a whole-file lock covers everything */
        assert_lock_name(HOLDER_FILE_DB, last, last, true, "EXCLUSIVE");
        assert_lock_name(HOLDER_FILE_DB, 0, LOCKINFO_EOF, true, "EXCLUSIVE");
        assert_lock_name(HOLDER_FILE_DB, 0, LOCKINFO_EOF, false, "SHARED");
        /* bytes SQLite never locks */
        assert_lock_name(HOLDER_FILE_DB, 0, 100, true, NULL);
        assert_lock_name(HOLDER_FILE_DB, last + 1, LOCKINFO_EOF, true, NULL);
        assert_lock_name(HOLDER_FILE_DB, 0, pending - 1, false, NULL);
        assert_lock_name(HOLDER_FILE_DB, reserved, reserved, false, NULL);
        /* the -wal is never locked by SQLite */
        assert_lock_name(HOLDER_FILE_WAL, 0, LOCKINFO_EOF, true, NULL);
        /* end before start is nothing */
        assert_int_equal(lockinfo_sqlite_locks(HOLDER_FILE_DB, last, first, true), 0);
}

static void test_wal_locks(void **state) {
        static const char *const reads[] = { "WAL_READ0", "WAL_READ1", "WAL_READ2", "WAL_READ3", "WAL_READ4" };

        /* every connection of a WAL database also holds SHARED on the database file */
        assert_lock_name(HOLDER_FILE_DB, LOCKINFO_SHARED_FIRST, LOCKINFO_SHARED_FIRST + 509, false, "SHARED");
        assert_lock_name(HOLDER_FILE_SHM, 120, 120, true, "WAL_WRITE");
        assert_lock_name(HOLDER_FILE_SHM, 121, 121, true, "WAL_CKPT");
        assert_lock_name(HOLDER_FILE_SHM, 122, 122, true, "WAL_RECOVER");
        for (unsigned i = 0; i < 5; i++) {
                assert_lock_name(HOLDER_FILE_SHM, 123 + i, 123 + i, false, reads[i]);
                assert_lock_name(HOLDER_FILE_SHM, 123 + i, 123 + i, true, reads[i]);
                assert_int_equal(lockinfo_sqlite_locks(HOLDER_FILE_SHM, 123 + i, 123 + i, false), LOCKINFO_WAL_READ(i));
        }
        assert_lock_name(HOLDER_FILE_SHM, 128, 128, false, "WAL_DMS");
        /* merged ranges name every slot, in -shm order */
        assert_lock_name(HOLDER_FILE_SHM, 120, 121, true, "WAL_WRITE+WAL_CKPT");
        assert_lock_name(HOLDER_FILE_SHM, 121, 127, true,
                         "WAL_CKPT+WAL_RECOVER+WAL_READ0+WAL_READ1+WAL_READ2+WAL_READ3+WAL_READ4");
        assert_lock_name(HOLDER_FILE_SHM, 124, 128, false, "WAL_READ1+WAL_READ2+WAL_READ3+WAL_READ4+WAL_DMS");
        assert_int_equal(lockinfo_sqlite_locks(HOLDER_FILE_SHM, 0, LOCKINFO_EOF, true),
                         LOCKINFO_WAL_WRITE | LOCKINFO_WAL_CKPT | LOCKINFO_WAL_RECOVER | LOCKINFO_WAL_READ_ALL |
                                 LOCKINFO_WAL_DMS);
        /* the wal-index itself and what follows the locks are no lock */
        assert_lock_name(HOLDER_FILE_SHM, 0, 119, true, NULL);
        assert_lock_name(HOLDER_FILE_SHM, 129, 32767, true, NULL);
        /* the database's lock offsets mean nothing in -shm, and the other way round */
        assert_lock_name(HOLDER_FILE_SHM, LOCKINFO_PENDING_BYTE, LOCKINFO_PENDING_BYTE, true, NULL);
        assert_lock_name(HOLDER_FILE_DB, 120, 128, true, NULL);
        assert_null(lockinfo_sqlite_lock_name(0, (char[LOCKINFO_NAME_MAX]) {}));
}

/* ---- the wal-index header ---- */

/* A header as SQLite writes it: two equal copies with a native-order checksum, then nBackfill. */
static void make_wal_index(uint8_t buf[static LOCKINFO_WAL_INDEX_HDR_SIZE], uint32_t mx_frame, uint32_t n_backfill,
                           uint32_t page_size) {
        uint32_t w[12] = { 3007000, 0, 7, 0, mx_frame, 3, 11, 12, 0x1234, 0x5678, 0, 0 }, s1 = 0, s2 = 0;
        uint16_t sz = (uint16_t) ((page_size & 0xff00) | (page_size >> 16));

        memset(buf, 0, LOCKINFO_WAL_INDEX_HDR_SIZE);
        memcpy(&w[3], (uint8_t[4]) { 1, 0, 0, 0 }, 4); /* isInit, bigEndCksum, szPage below */
        memcpy((uint8_t *) &w[3] + 2, &sz, 2);
        for (int i = 0; i < 10; i += 2) {
                s1 += w[i] + s2;
                s2 += w[i + 1] + s1;
        }
        w[10] = s1;
        w[11] = s2;
        memcpy(buf, w, 48);
        memcpy(buf + 48, w, 48);
        memcpy(buf + 96, &n_backfill, 4);
}

static void test_wal_index(void **state) {
        uint8_t buf[LOCKINFO_WAL_INDEX_HDR_SIZE];
        wal_index ix;

        make_wal_index(buf, 37, 30, 4096);
        assert_int_equal(lockinfo_parse_wal_index(buf, sizeof(buf), &ix), 0);
        assert_true(ix.valid);
        assert_int_equal(ix.mx_frame, 37);
        assert_int_equal(ix.n_backfill, 30);
        assert_int_equal(ix.page_size, 4096);

        make_wal_index(buf, 0, 0, 65536);
        assert_int_equal(lockinfo_parse_wal_index(buf, sizeof(buf), &ix), 0);
        assert_true(ix.valid);
        assert_int_equal(ix.page_size, 65536);

        /* the copies differ: a writer was between them, or died there */
        make_wal_index(buf, 37, 30, 4096);
        buf[48 + 16] ^= 1;
        assert_int_equal(lockinfo_parse_wal_index(buf, sizeof(buf), &ix), 0);
        assert_false(ix.valid);

        /* a wrong checksum, in both copies */
        make_wal_index(buf, 37, 30, 4096);
        buf[40] ^= 1;
        buf[88] ^= 1;
        assert_int_equal(lockinfo_parse_wal_index(buf, sizeof(buf), &ix), 0);
        assert_false(ix.valid);

        /* not initialized (isInit 0) */
        make_wal_index(buf, 37, 30, 4096);
        buf[12] = 0;
        buf[60] = 0;
        assert_int_equal(lockinfo_parse_wal_index(buf, sizeof(buf), &ix), 0);
        assert_false(ix.valid);

        /* zeroes: a fresh -shm */
        memset(buf, 0, sizeof(buf));
        assert_int_equal(lockinfo_parse_wal_index(buf, sizeof(buf), &ix), 0);
        assert_false(ix.valid);

        assert_int_equal(lockinfo_parse_wal_index(buf, LOCKINFO_WAL_INDEX_HDR_SIZE - 1, &ix), -EINVAL);
}

/* ---- verdict ---- */

typedef struct verdict_case {
        const char *what;
        lockinfo_facts facts;
        lockinfo_verdict verdict;
        bool possible;
} verdict_case;

#define PROBE_OK .probe_ran = true, .write_ok = true
#define PROBE_BUSY .probe_ran = true, .write_busy = true

static void test_verdict_rules(void **state) {
        static const verdict_case cases[] = {
                { "nothing at all", { PROBE_OK }, LOCKINFO_FREE, true },
                { "WAL, nothing", { .wal = true, PROBE_OK }, LOCKINFO_FREE, true },
                { "free, but the probe could not write", { .probe_ran = true }, LOCKINFO_FREE, false },
                { "free, but the probe could not open", {}, LOCKINFO_FREE, false },
                { "rollback reader", { .held_read = LOCKINFO_SHARED, PROBE_OK }, LOCKINFO_READERS_ONLY, true },
                { "WAL reader", { .wal = true, .held_read = LOCKINFO_SHARED | LOCKINFO_WAL_READ(1) | LOCKINFO_WAL_DMS,
                                  PROBE_OK }, LOCKINFO_READERS_ONLY, true },
                { "WAL idle connection", { .wal = true, .held_read = LOCKINFO_SHARED | LOCKINFO_WAL_DMS, PROBE_OK },
                  LOCKINFO_READERS_ONLY, true },
                { "a checkpointer", { .wal = true, .held_write = LOCKINFO_WAL_CKPT | LOCKINFO_WAL_READ(1), PROBE_OK },
                  LOCKINFO_READERS_ONLY, true },
                { "readers, read-only file", { .held_read = LOCKINFO_SHARED, .probe_ran = true },
                  LOCKINFO_READERS_ONLY, false },
                { "rollback RESERVED", { .held_read = LOCKINFO_SHARED, .held_write = LOCKINFO_RESERVED, PROBE_BUSY },
                  LOCKINFO_WRITER_ACTIVE, false },
                { "rollback PENDING", { .held_write = LOCKINFO_PENDING | LOCKINFO_RESERVED, PROBE_BUSY },
                  LOCKINFO_WRITER_ACTIVE, false },
                { "WAL writer", { .wal = true, .held_read = LOCKINFO_SHARED, .held_write = LOCKINFO_WAL_WRITE, PROBE_BUSY },
                  LOCKINFO_WRITER_ACTIVE, false },
                { "WAL write lock held shared", { .wal = true, .held_read = LOCKINFO_WAL_WRITE, PROBE_BUSY },
                  LOCKINFO_WRITER_ACTIVE, false },
                { "a writer the locks do not show", { PROBE_BUSY }, LOCKINFO_WRITER_ACTIVE, false },
                { "a writer seen, the probe lucky", { .held_write = LOCKINFO_RESERVED, PROBE_OK },
                  LOCKINFO_WRITER_ACTIVE, false },
                { "EXCLUSIVE", { .held_write = LOCKINFO_EXCLUSIVE | LOCKINFO_PENDING | LOCKINFO_RESERVED, PROBE_BUSY },
                  LOCKINFO_EXCLUSIVE_LOCK_HELD, false },
                { "EXCLUSIVE on a WAL database", { .wal = true, .held_write = LOCKINFO_EXCLUSIVE, PROBE_BUSY },
                  LOCKINFO_EXCLUSIVE_LOCK_HELD, false },
                { "EXCLUSIVE beats recovery", { .wal = true, .wal_index_invalid = true, .held_write = LOCKINFO_EXCLUSIVE },
                  LOCKINFO_EXCLUSIVE_LOCK_HELD, false },
                { "recovering", { .wal = true, .held_write = LOCKINFO_WAL_RECOVER | LOCKINFO_WAL_READ_ALL, PROBE_BUSY },
                  LOCKINFO_WAL_NEEDS_RECOVERY, false },
                { "recovery beats a writer", { .wal = true, .held_write = LOCKINFO_WAL_WRITE | LOCKINFO_WAL_RECOVER },
                  LOCKINFO_WAL_NEEDS_RECOVERY, false },
                { "invalid wal-index", { .wal = true, .wal_index_invalid = true, .held_read = LOCKINFO_WAL_DMS, PROBE_OK },
                  LOCKINFO_WAL_NEEDS_RECOVERY, false },
                { "probe: SQLITE_BUSY_RECOVERY", { .wal = true, .busy_recovery = true, PROBE_BUSY },
                  LOCKINFO_WAL_NEEDS_RECOVERY, false },
                { "no WAL, no recovery", { .wal_index_invalid = true, PROBE_OK }, LOCKINFO_FREE, true },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                lockinfo_verdict v = lockinfo_verdict_from_facts(&cases[i].facts);
                if (v != cases[i].verdict || lockinfo_migration_possible(v, &cases[i].facts) != cases[i].possible)
                        fail_msg("%s: got %s (%s), expected %s (%s)", cases[i].what, lockinfo_verdict_to_string(v),
                                 lockinfo_migration_possible(v, &cases[i].facts) ? "possible" : "not possible",
                                 lockinfo_verdict_to_string(cases[i].verdict),
                                 cases[i].possible ? "possible" : "not possible");
        }
}

static void test_verdict_names(void **state) {
        assert_string_equal(lockinfo_verdict_to_string(LOCKINFO_FREE), "free");
        assert_string_equal(lockinfo_verdict_to_string(LOCKINFO_READERS_ONLY), "readers_only");
        assert_string_equal(lockinfo_verdict_to_string(LOCKINFO_WRITER_ACTIVE), "writer_active");
        assert_string_equal(lockinfo_verdict_to_string(LOCKINFO_EXCLUSIVE_LOCK_HELD), "exclusive_lock_held");
        assert_string_equal(lockinfo_verdict_to_string(LOCKINFO_WAL_NEEDS_RECOVERY), "wal_needs_recovery");
        assert_null(lockinfo_verdict_to_string(_LOCKINFO_VERDICT_MAX));
        assert_null(lockinfo_verdict_to_string((lockinfo_verdict) -1));
}

/* ---- action ---- */

static void assert_contains(const char *s, const char *part) {
        assert_non_null(s);
        if (!strstr(s, part))
                fail_msg("\"%s\" does not contain \"%s\"", s, part);
}

static void test_action_names_the_unit(void **state) {
        lockinfo_facts f = { .wal = true, .held_write = LOCKINFO_WAL_WRITE, PROBE_BUSY };
        lockinfo_who who = { .pid = 812, .comm = "node", .unit = "free-sleep.service" };
        _cleanup_free_ char *a = NULL, *b = NULL, *c = NULL, *d = NULL;

        a = lockinfo_action(LOCKINFO_WRITER_ACTIVE, &f, &who, 2, "/var/lib/fs.db", "database is locked");
        assert_non_null(a);
        assert_string_equal(a, "free-sleep.service (pid 812) holds the write lock: stop it with systemctl stop "
                               "free-sleep.service, or wait for its transaction to finish.");

        who.user_unit = true;
        b = lockinfo_action(LOCKINFO_WRITER_ACTIVE, &f, &who, 2, "/var/lib/fs.db", NULL);
        assert_contains(b, "systemctl --user stop free-sleep.service");

        /* a scope is a login session or a container: never suggest stopping it, name the pid */
        who = (lockinfo_who) { .pid = 4242, .comm = "sqlite3", .unit = "session-3.scope" };
        c = lockinfo_action(LOCKINFO_WRITER_ACTIVE, &f, &who, 1, "/var/lib/fs.db", NULL);
        assert_contains(c, "session-3.scope (pid 4242)");
        assert_contains(c, "kill 4242");
        assert_null(strstr(c, "systemctl"));

        /* no unit: the command and pid */
        who = (lockinfo_who) { .pid = 77, .comm = "python3" };
        d = lockinfo_action(LOCKINFO_WRITER_ACTIVE, &f, &who, 1, "/var/lib/fs.db", NULL);
        assert_contains(d, "python3 (pid 77) holds the write lock");
        assert_contains(d, "kill 77");
}

/* A pm2 process is stopped through pm2: killed, pm2 would start it again. */
static void test_action_names_the_pm2_process(void **state) {
        lockinfo_facts f = { .wal = true, .held_write = LOCKINFO_WAL_WRITE, PROBE_BUSY };
        lockinfo_who who = { .pid = 901, .comm = "node", .unit = "pm2:api" };
        _cleanup_free_ char *a = lockinfo_action(LOCKINFO_WRITER_ACTIVE, &f, &who, 1, "/srv/app.db", NULL);

        assert_contains(a, "pm2:api (pid 901) holds the write lock");
        assert_contains(a, "stop it with pm2 stop api (as its owner, with its PM2_HOME)");
        assert_null(strstr(a, "kill"));
}

/* A container is stopped through its engine, by the id lock-check found in its cgroup. */
static void test_action_names_the_container(void **state) {
        lockinfo_facts f = { .wal = true, .held_write = LOCKINFO_WAL_WRITE, PROBE_BUSY };
        lockinfo_who who = { .pid = 902, .comm = "python3", .unit = "container:14a0b28cb233" };
        _cleanup_free_ char *a = lockinfo_action(LOCKINFO_WRITER_ACTIVE, &f, &who, 1, "/srv/app.db", NULL);

        assert_contains(a, "container:14a0b28cb233 (pid 902) holds the write lock");
        assert_contains(a, "stop it with docker stop 14a0b28cb233");
        assert_null(strstr(a, "kill"));
}

static void test_action_other_verdicts(void **state) {
        lockinfo_facts f = { .held_write = LOCKINFO_EXCLUSIVE, PROBE_BUSY };
        lockinfo_who who = { .pid = 9, .comm = "app", .unit = "app.service" };
        lockinfo_who unknown = { .pid = -1 };
        _cleanup_free_ char *a = NULL, *b = NULL, *c = NULL, *d = NULL, *e = NULL, *g = NULL, *h = NULL;

        a = lockinfo_action(LOCKINFO_EXCLUSIVE_LOCK_HELD, &f, &who, 1, "/db", NULL);
        assert_contains(a, "app.service (pid 9) holds an EXCLUSIVE lock");
        assert_contains(a, "systemctl stop app.service");

        /* an OFD lock whose owner could not be found: say how to find it */
        b = lockinfo_action(LOCKINFO_EXCLUSIVE_LOCK_HELD, &f, &unknown, 0, "/db", NULL);
        assert_contains(b, "fuser -v /db");
        c = lockinfo_action(LOCKINFO_WRITER_ACTIVE, &(lockinfo_facts) { PROBE_BUSY }, NULL, 0, "/db",
                            "database is locked");
        assert_contains(c, "database is locked");
        assert_contains(c, "fuser -v /db");

        d = lockinfo_action(LOCKINFO_FREE, &(lockinfo_facts) { PROBE_OK }, NULL, 0, "/db", NULL);
        assert_contains(d, "a migration can run now");
        e = lockinfo_action(LOCKINFO_FREE, &(lockinfo_facts) { PROBE_OK }, NULL, 1, "/db", NULL);
        assert_contains(e, "1 process has it open without a lock");
        g = lockinfo_action(LOCKINFO_READERS_ONLY, &(lockinfo_facts) { .probe_ran = true }, NULL, 1, "/db",
                            "attempt to write a readonly database");
        assert_contains(g, "attempt to write a readonly database");
        assert_contains(g, "cannot run");
        h = lockinfo_action(LOCKINFO_WAL_NEEDS_RECOVERY, &(lockinfo_facts) { .wal = true, .held_write = LOCKINFO_WAL_RECOVER },
                            &who, 1, "/db", NULL);
        assert_contains(h, "app.service (pid 9) is rebuilding the WAL index");
}

/* ---- lockinfo_inspect on real files ---- */

static char dir[] = "/tmp/test-lockinfo-XXXXXX";

static int dir_setup(void **state) {
        return mkdtemp(dir) ? 0 : -1;
}

static int dir_teardown(void **state) {
        _cleanup_free_ char *cmd = NULL;

        if (asprintf(&cmd, "rm -rf '%s'", dir) < 0)
                return -1;
        return system(cmd) == 0 ? 0 : -1;
}

static char *path_in_dir(const char *name) {
        char *p;

        assert_true(asprintf(&p, "%s/%s", dir, name) > 0);
        return p;
}

static bool exists(const char *path, const char *suffix) {
        _cleanup_free_ char *p = NULL;

        assert_true(asprintf(&p, "%s%s", path, suffix) > 0);
        return access(p, F_OK) == 0;
}

static void make_db(const char *path, const char *journal_mode) {
        sqlite3 *db;
        _cleanup_free_ char *sql = NULL;

        assert_true(asprintf(&sql, "PRAGMA journal_mode=%s; CREATE TABLE t (x); INSERT INTO t VALUES (1);",
                             journal_mode) > 0);
        assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
        assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

static void test_inspect_missing(void **state) {
        _cleanup_free_ char *p = path_in_dir("missing.db");
        json_t *report = NULL;

        assert_int_equal(lockinfo_inspect(p, &report), -ENOENT);
        assert_null(report);
        /* never created, neither the database nor its -wal or -shm */
        assert_false(exists(p, ""));
        assert_false(exists(p, "-wal"));
        assert_false(exists(p, "-shm"));
        assert_int_equal(lockinfo_inspect(dir, &report), -EISDIR);
        assert_int_equal(lockinfo_inspect("", &report), -EINVAL);
}

static void test_inspect_not_sqlite(void **state) {
        _cleanup_free_ char *p = path_in_dir("text.db");
        json_t *report = NULL;
        FILE *f = fopen(p, "we");

        assert_non_null(f);
        fputs("this is not a database, but it is longer than the hundred bytes of a SQLite header ......"
              "..........................................................................\n", f);
        assert_int_equal(fclose(f), 0);
        assert_int_equal(lockinfo_inspect(p, &report), -EBADMSG);
        assert_null(report);
}

static void check_inspect_free(const char *name, const char *mode) {
        _cleanup_free_ char *p = path_in_dir(name);
        json_t *report = NULL, *db, *probe;

        make_db(p, mode);
        assert_int_equal(lockinfo_inspect(p, &report), 0);
        db = json_object_get(report, "database");
        assert_string_equal(json_string_value(json_object_get(db, "journal_mode")), streq(mode, "wal") ? "wal" : "delete");
        assert_int_equal(json_integer_value(json_object_get(db, "page_size")), 4096);
        assert_string_equal(json_string_value(json_object_get(report, "verdict")), "free");
        assert_true(json_is_true(json_object_get(report, "migration_possible")));
        assert_int_equal(json_array_size(json_object_get(report, "holders")), 0);
        assert_int_equal(json_array_size(json_object_get(report, "locks")), 0);
        probe = json_object_get(report, "probe");
        assert_true(json_is_true(json_object_get(probe, "write_ok")));
        assert_true(json_is_null(json_object_get(probe, "write_error")));
        if (streq(mode, "wal"))
                assert_true(json_is_true(json_object_get(probe, "checkpoint_ok")));
        else
                assert_true(json_is_null(json_object_get(probe, "checkpoint_ok")));
        assert_true(json_is_null(json_object_get(report, "blocker")));
        json_decref(report);
        /* the probe leaves no -wal or -shm behind where there was none */
        assert_false(exists(p, "-wal"));
        assert_false(exists(p, "-shm"));
        assert_false(exists(p, "-journal"));
}

static void test_inspect_free_wal(void **state) {
        check_inspect_free("wal.db", "wal");
}

static void test_inspect_free_rollback(void **state) {
        check_inspect_free("delete.db", "delete");
}

/* True when the report shows a lock of our own with that SQLite name. */
static bool has_own_lock(json_t *report, const char *sqlite_lock) {
        json_t *locks = json_object_get(report, "locks"), *l;
        size_t i;

        json_array_foreach(locks, i, l) {
                const char *name = json_string_value(json_object_get(l, "sqlite_lock"));
                if (json_is_true(json_object_get(l, "self")) && name && streq(name, sqlite_lock) &&
                    json_integer_value(json_object_get(l, "pid")) == getpid())
                        return true;
        }
        return false;
}

/* Our own readers (the daemon's idle connections) do not make the database busy, our locks survive
 * the inspection (POSIX locks die with any close() of the file in this process), and the probe
 * keeps the -wal and -shm that were there (no checkpoint-and-delete on close). */
static void test_inspect_own_reader(void **state) {
        _cleanup_free_ char *p = path_in_dir("own.db");
        json_t *report = NULL, *wal;
        sqlite3 *db;

        make_db(p, "wal");
        assert_int_equal(sqlite3_open(p, &db), SQLITE_OK);
        assert_int_equal(sqlite3_exec(db, "INSERT INTO t VALUES (2); BEGIN; SELECT * FROM t;", NULL, NULL, NULL), SQLITE_OK);
        assert_true(exists(p, "-wal"));
        for (int round = 0; round < 2; round++) {
                assert_int_equal(lockinfo_inspect(p, &report), 0);
                assert_string_equal(json_string_value(json_object_get(report, "verdict")), "free");
                assert_true(has_own_lock(report, "SHARED"));
                assert_true(has_own_lock(report, "WAL_DMS"));
                wal = json_object_get(report, "wal");
                assert_true(json_is_true(json_object_get(wal, "present")));
                assert_true(json_is_true(json_object_get(wal, "index_valid")));
                if (round == 0) /* the probe's PASSIVE checkpoint then copies it back */
                        assert_int_equal(json_integer_value(json_object_get(wal, "frames_not_checkpointed")), 1);
                json_decref(report);
        }
        assert_int_equal(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
        assert_true(exists(p, "-wal"));
        assert_true(exists(p, "-shm"));
        assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

/* Our own writer (a running migration job) counts: writer_active, naming us, twice in a row. */
static void test_inspect_own_writer(void **state) {
        _cleanup_free_ char *p = path_in_dir("own-writer.db");
        json_t *report = NULL, *blocker;
        sqlite3 *db;

        make_db(p, "wal");
        assert_int_equal(sqlite3_open(p, &db), SQLITE_OK);
        assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE; INSERT INTO t VALUES (3);", NULL, NULL, NULL), SQLITE_OK);
        for (int round = 0; round < 2; round++) {
                assert_int_equal(lockinfo_inspect(p, &report), 0);
                assert_string_equal(json_string_value(json_object_get(report, "verdict")), "writer_active");
                assert_true(json_is_false(json_object_get(report, "migration_possible")));
                assert_true(has_own_lock(report, "WAL_WRITE"));
                blocker = json_object_get(report, "blocker");
                assert_int_equal(json_integer_value(json_object_get(blocker, "pid")), getpid());
                assert_string_equal(json_string_value(json_object_get(blocker, "sqlite_lock")), "WAL_WRITE");
                assert_string_equal(json_string_value(json_object_get(json_object_get(report, "probe"), "write_error")),
                                    "database is locked");
                json_decref(report);
        }
        assert_int_equal(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse_posix),
                cmocka_unit_test(test_parse_ofd),
                cmocka_unit_test(test_parse_hex_devices),
                cmocka_unit_test(test_parse_other_kinds),
                cmocka_unit_test(test_parse_waiting),
                cmocka_unit_test(test_parse_fdinfo_form),
                cmocka_unit_test(test_parse_bad),
                cmocka_unit_test(test_rollback_journal_locks),
                cmocka_unit_test(test_wal_locks),
                cmocka_unit_test(test_wal_index),
                cmocka_unit_test(test_verdict_rules),
                cmocka_unit_test(test_verdict_names),
                cmocka_unit_test(test_action_names_the_unit),
                cmocka_unit_test(test_action_names_the_pm2_process),
                cmocka_unit_test(test_action_names_the_container),
                cmocka_unit_test(test_action_other_verdicts),
                cmocka_unit_test(test_inspect_missing),
                cmocka_unit_test(test_inspect_not_sqlite),
                cmocka_unit_test(test_inspect_free_wal),
                cmocka_unit_test(test_inspect_free_rollback),
                cmocka_unit_test(test_inspect_own_reader),
                cmocka_unit_test(test_inspect_own_writer),
        };

        return cmocka_run_group_tests(tests, dir_setup, dir_teardown);
}
