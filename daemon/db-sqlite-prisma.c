/* SPDX-License-Identifier: MIT */
/* Prisma Migrate's bookkeeping, read and written exactly as Prisma does on SQLite, so that
 * "prisma migrate status" and "prisma migrate deploy" agree with migrated afterwards: the same
 * table DDL, a random UUIDv4 id, the lowercase hex SHA-256 of migration.sql, times as integer
 * Unix milliseconds, applied_steps_count, logs, rolled_back_at. */

#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "db-sqlite-internal.h"

/* Prisma's own statement, byte for byte (sqlite_master keeps this text). */
static const char prisma_table_sql[] =
        "CREATE TABLE \"_prisma_migrations\" (\n"
        "    \"id\"                    TEXT PRIMARY KEY NOT NULL,\n"
        "    \"checksum\"              TEXT NOT NULL,\n"
        "    \"finished_at\"           DATETIME,\n"
        "    \"migration_name\"        TEXT NOT NULL,\n"
        "    \"logs\"                  TEXT,\n"
        "    \"rolled_back_at\"        DATETIME,\n"
        "    \"started_at\"            DATETIME NOT NULL DEFAULT current_timestamp,\n"
        "    \"applied_steps_count\"   INTEGER UNSIGNED NOT NULL DEFAULT 0\n"
        ")";

static int64_t now_unix_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A random (version 4) UUID, as Prisma's ids are. */
static int uuid4(char ret[37]) {
        unsigned char b[16];

        if (getrandom(b, sizeof(b), 0) != (ssize_t) sizeof(b))
                return -EIO;
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        snprintf(ret, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2], b[3],
                 b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
        return 0;
}

int prisma_ensure_table(db_sqlite *s, db_failure *f) {
        int rc;

        if (sqlite_table_exists(s, "_prisma_migrations", &rc))
                return 0;
        if (rc != SQLITE_OK)
                return sqlite_fail(s, rc, f, "cannot read _prisma_migrations");
        return sqlite_exec_simple(s, prisma_table_sql, f, "cannot create _prisma_migrations");
}

/* Prisma times are integer milliseconds; other tools may have written text. */
static char *column_time(sqlite3_stmt *st, int col) {
        char buf[40];
        time_t t;
        struct tm tm;
        int64_t ms;

        if (sqlite3_column_type(st, col) != SQLITE_INTEGER)
                return strdup((const char *) sqlite3_column_text(st, col) ?: "");
        ms = sqlite3_column_int64(st, col);
        t = (time_t) (ms / 1000);
        gmtime_r(&t, &tm);
        strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf), ".%03dZ", (int) (ms % 1000));
        return strdup(buf);
}

static int add_failed(applied_set *a, const char *name) {
        char **v;

        for (size_t i = 0; i < a->n_failed; i++)
                if (streq(a->failed[i], name))
                        return 0;
        v = realloc(a->failed, (a->n_failed + 1) * sizeof(char *));
        if (!v)
                return -ENOMEM;
        a->failed = v;
        if (!(a->failed[a->n_failed] = strdup(name)))
                return -ENOMEM;
        a->n_failed++;
        return 0;
}

static int by_version(const void *x, const void *y) {
        const applied_migration *a = x, *b = y;

        return a->version < b->version ? -1 : a->version > b->version;
}

/* Applied: finished and not rolled back. Failed: neither finished nor rolled back (Prisma's
 * "failed migration" that blocks deploy). Rolled back rows are history only. */
static int load_row(applied_set *a, sqlite3_stmt *st) {
        const char *name = (const char *) sqlite3_column_text(st, 0) ?: "";
        bool finished = sqlite3_column_type(st, 2) != SQLITE_NULL;
        bool rolled_back = sqlite3_column_type(st, 4) != SQLITE_NULL;
        int64_t version = strtoll(name, NULL, 10);
        applied_migration *m;

        if (rolled_back)
                return 0;
        if (!finished)
                return add_failed(a, name);
        for (size_t i = 0; i < a->n; i++)
                if (a->items[i].version == version)
                        return 0; /* the earliest successful row counts; a later one is a duplicate */
        m = realloc(a->items, (a->n + 1) * sizeof(*m));
        if (!m)
                return -ENOMEM;
        a->items = m;
        m = &a->items[a->n++];
        memset(m, 0, sizeof(*m));
        m->version = version;
        m->name = strdup(name);
        snprintf(m->checksum, sizeof(m->checksum), "%s", (const char *) sqlite3_column_text(st, 1) ?: "");
        m->applied_at = column_time(st, 2);
        if (sqlite3_column_type(st, 2) == SQLITE_INTEGER && sqlite3_column_type(st, 3) == SQLITE_INTEGER)
                m->duration_ms = sqlite3_column_int64(st, 2) - sqlite3_column_int64(st, 3);
        return m->name && m->applied_at ? 0 : -ENOMEM;
}

int prisma_load_applied(db_sqlite *s, applied_set *ret, db_failure *f) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        applied_set a = {};
        int rc, r = 0;

        if (!sqlite_table_exists(s, "_prisma_migrations", &rc)) {
                *ret = a;
                return rc == SQLITE_OK ? 0 : sqlite_fail(s, rc, f, "cannot read _prisma_migrations");
        }
        rc = sqlite3_prepare_v2(s->conn,
                                "SELECT migration_name, checksum, finished_at, started_at, rolled_back_at "
                                "FROM \"_prisma_migrations\" ORDER BY started_at, migration_name", -1, &st, NULL);
        if (rc != SQLITE_OK)
                return sqlite_fail(s, rc, f, "cannot read _prisma_migrations");
        while (r == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW)
                r = load_row(&a, st);
        if (r == 0 && rc != SQLITE_DONE)
                r = sqlite_fail(s, rc, f, "cannot read _prisma_migrations");
        if (r != 0) {
                applied_set_clear(&a);
                return r;
        }
        if (a.n > 1)
                qsort(a.items, a.n, sizeof(*a.items), by_version);
        *ret = a;
        return 0;
}

/* A migration applied by migrated: one row, as "prisma migrate deploy" leaves it. */
int prisma_record_applied(db_sqlite *s, const migration *m, int64_t duration_ms, db_failure *f) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int64_t now = now_unix_ms();
        char id[37];
        int rc;

        if (uuid4(id) < 0)
                return sqlite_fail(s, SQLITE_IOERR, f, "cannot make an id");
        rc = sqlite3_prepare_v2(s->conn,
                                "INSERT INTO \"_prisma_migrations\" (\"id\", \"checksum\", \"finished_at\", "
                                "\"migration_name\", \"logs\", \"rolled_back_at\", \"started_at\", "
                                "\"applied_steps_count\") VALUES (?1, ?2, ?3, ?4, NULL, NULL, ?5, 1)", -1, &st, NULL);
        if (rc == SQLITE_OK) {
                sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
                sqlite3_bind_text(st, 2, m->checksum, -1, SQLITE_STATIC);
                sqlite3_bind_int64(st, 3, now);
                sqlite3_bind_text(st, 4, migration_record_name(m), -1, SQLITE_STATIC);
                sqlite3_bind_int64(st, 5, now - duration_ms);
                rc = sqlite3_step(st);
        }
        return rc == SQLITE_DONE ? 0 : sqlite_fail(s, rc, f, "cannot record the applied migration");
}

static int exec_named(db_sqlite *s, const char *sql, const char *name, int *ret_changes, db_failure *f,
                      const char *what) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int rc;

        rc = sqlite3_prepare_v2(s->conn, sql, -1, &st, NULL);
        if (rc == SQLITE_OK) {
                sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
                sqlite3_bind_int64(st, 2, now_unix_ms());
                rc = sqlite3_step(st);
        }
        if (rc != SQLITE_DONE)
                return sqlite_fail(s, rc, f, what);
        if (ret_changes)
                *ret_changes = sqlite3_changes(s->conn);
        return 0;
}

/* A down leaves the row, rolled back: Prisma then sees the migration as not applied. */
int prisma_remove_applied(db_sqlite *s, const migration *m, db_failure *f) {
        return exec_named(s,
                          "UPDATE \"_prisma_migrations\" SET \"rolled_back_at\" = ?2 WHERE \"migration_name\" = ?1 "
                          "AND \"finished_at\" IS NOT NULL AND \"rolled_back_at\" IS NULL",
                          migration_record_name(m), NULL, f, "cannot record the reverted migration");
}

/* migrate resolve --applied: failed rows of the migration are rolled back, and a row with
 * started_at = finished_at, logs '' and no steps says it is applied. */
int prisma_mark_applied(db_sqlite *s, const migration *m, db_failure *f) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        const char *name = migration_record_name(m);
        int64_t now = now_unix_ms();
        int rc, r;
        char id[37];

        rc = sqlite3_prepare_v2(s->conn,
                                "SELECT count(*) FROM \"_prisma_migrations\" WHERE \"migration_name\" = ?1 AND "
                                "\"finished_at\" IS NOT NULL AND \"rolled_back_at\" IS NULL", -1, &st, NULL);
        if (rc == SQLITE_OK) {
                sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
                rc = sqlite3_step(st);
        }
        if (rc != SQLITE_ROW)
                return sqlite_fail(s, rc, f, "cannot read _prisma_migrations");
        if (sqlite3_column_int64(st, 0) > 0)
                return sqlite_refuse(f, "%s is already recorded as applied", name);
        r = exec_named(s,
                       "UPDATE \"_prisma_migrations\" SET \"rolled_back_at\" = ?2 WHERE \"migration_name\" = ?1 AND "
                       "\"finished_at\" IS NULL AND \"rolled_back_at\" IS NULL",
                       name, NULL, f, "cannot resolve the failed migration");
        if (r != 0)
                return r;
        sqlite3_finalize(TAKE_PTR(st));
        if (uuid4(id) < 0)
                return sqlite_fail(s, SQLITE_IOERR, f, "cannot make an id");
        rc = sqlite3_prepare_v2(s->conn,
                                "INSERT INTO \"_prisma_migrations\" (\"id\", \"checksum\", \"logs\", \"started_at\", "
                                "\"finished_at\", \"migration_name\") VALUES (?1, ?2, '', ?3, ?3, ?4)", -1, &st, NULL);
        if (rc == SQLITE_OK) {
                sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
                sqlite3_bind_text(st, 2, m->checksum, -1, SQLITE_STATIC);
                sqlite3_bind_int64(st, 3, now);
                sqlite3_bind_text(st, 4, name, -1, SQLITE_STATIC);
                rc = sqlite3_step(st);
        }
        return rc == SQLITE_DONE ? 0 : sqlite_fail(s, rc, f, "cannot mark the migration applied");
}

/* migrate resolve --rolled-back: only a failed migration can be marked rolled back. */
int prisma_mark_rolled_back(db_sqlite *s, const migration *m, db_failure *f) {
        const char *name = migration_record_name(m);
        int changes = 0, r;

        r = exec_named(s,
                       "UPDATE \"_prisma_migrations\" SET \"rolled_back_at\" = ?2 WHERE \"migration_name\" = ?1 AND "
                       "\"finished_at\" IS NULL AND \"rolled_back_at\" IS NULL",
                       name, &changes, f, "cannot mark the migration rolled back");
        if (r != 0)
                return r;
        if (changes == 0)
                return sqlite_refuse(f,
                              "%s is not in a failed state, so it cannot be marked rolled back (use down to revert "
                              "an applied migration)", name);
        return 0;
}
