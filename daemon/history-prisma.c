/* SPDX-License-Identifier: MIT */
/* Prisma Migrate's bookkeeping, read and written exactly as Prisma does, so that "prisma migrate
 * status" and "prisma migrate deploy" agree with migrated afterwards: the same table DDL, a random
 * UUIDv4 id, the lowercase hex SHA-256 of migration.sql, times as integer Unix milliseconds,
 * applied_steps_count, logs, rolled_back_at. On PostgreSQL the table is Prisma's PostgreSQL one
 * (varchar ids and checksums, timestamptz times): times are written and read there as the same
 * Unix milliseconds converted by the server. */

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "history.h"
#include "macro.h"

/* Prisma's own statement on SQLite, byte for byte (sqlite_master keeps this text). */
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

/* Prisma's own statement on PostgreSQL (schema-engine's postgres flavour); "integer" in lower case,
 * which the backend's translation of SQLite's 64-bit INTEGER leaves at 32 bits, as Prisma's is. */
static const char prisma_table_pg_sql[] =
        "CREATE TABLE \"_prisma_migrations\" (\n"
        "    \"id\"                    VARCHAR(36) PRIMARY KEY NOT NULL,\n"
        "    \"checksum\"              VARCHAR(64) NOT NULL,\n"
        "    \"finished_at\"           TIMESTAMPTZ,\n"
        "    \"migration_name\"        VARCHAR(255) NOT NULL,\n"
        "    \"logs\"                  TEXT,\n"
        "    \"rolled_back_at\"        TIMESTAMPTZ,\n"
        "    \"started_at\"            TIMESTAMPTZ NOT NULL DEFAULT now(),\n"
        "    \"applied_steps_count\"   integer NOT NULL DEFAULT 0\n"
        ")";

/* Runs sql, whose time parameters are written TS(?N) (Unix milliseconds): bare on SQLite, where
 * Prisma stores the integer, converted to timestamptz on PostgreSQL. */
static int prisma_query(db *d, const char *sql, const db_value *params, size_t n_params, db_row_fn row,
                        void *userdata, int64_t *ret_changes, db_failure *f, const char *what) {
        bool pg = db_dialect_postgres(d);
        _cleanup_free_ char *text = NULL;
        size_t n_ts = 0;
        char *o;

        for (const char *s = strstr(sql, "TS(?"); s; s = strstr(s + 1, "TS(?"))
                n_ts++;
        /* each TS(?N) grows by the conversion's text at most */
        o = text = malloc(strlen(sql) + n_ts * (sizeof("to_timestamp( / 1000.0)") - 1) + 1);
        if (!text)
                return -ENOMEM;
        for (const char *s = sql; *s;) {
                if (strncmp(s, "TS(?", 4) == 0) {
                        const char *e = strchr(s, ')');
                        assert(e);
                        o += sprintf(o, pg ? "to_timestamp(%.*s / 1000.0)" : "%.*s", (int) (e - s - 3), s + 3);
                        s = e + 1;
                } else
                        *o++ = *s++;
        }
        *o = '\0';
        return db_query(d, text, params, n_params, row, userdata, ret_changes, f, what);
}

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

static int prisma_ensure(db *d, db_failure *f) {
        bool exists;
        int r;

        r = db_table_exists(d, "_prisma_migrations", &exists, f);
        if (r != 0 || exists)
                return r;
        return db_query(d, db_dialect_postgres(d) ? prisma_table_pg_sql : prisma_table_sql, NULL, 0, NULL, NULL, NULL, f, "cannot create _prisma_migrations");
}

/* Prisma times are integer milliseconds; other tools may have written text. */
static char *column_time(const db_value *v) {
        char buf[40];
        time_t t;
        struct tm tm;

        if (v->type != DB_VALUE_INT)
                return strdup(v->s ?: "");
        t = (time_t) (v->i / 1000);
        gmtime_r(&t, &tm);
        strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf), ".%03dZ", (int) (v->i % 1000));
        return strdup(buf);
}

/* Applied: finished and not rolled back. Failed: neither finished nor rolled back (Prisma's
 * "failed migration" that blocks deploy). Rolled back rows are history only. Columns:
 * migration_name, checksum, finished_at, started_at, rolled_back_at. */
static int load_row(const db_value *c, size_t n, void *userdata) {
        applied_set *a = userdata;
        const char *name = c[0].s ?: "";
        bool finished = c[2].type != DB_VALUE_NULL;
        bool rolled_back = c[4].type != DB_VALUE_NULL;
        int64_t version = strtoll(name, NULL, 10);
        applied_migration *m;

        if (rolled_back)
                return 0;
        if (!finished)
                return history_add_failed(a, name);
        for (size_t i = 0; i < a->n; i++)
                if (a->items[i].version == version)
                        return 0; /* the earliest successful row counts; a later one is a duplicate */
        m = history_add_applied(a);
        if (!m)
                return -ENOMEM;
        m->version = version;
        m->name = strdup(name);
        snprintf(m->checksum, sizeof(m->checksum), "%s", c[1].s ?: "");
        m->applied_at = column_time(&c[2]);
        if (c[2].type == DB_VALUE_INT && c[3].type == DB_VALUE_INT)
                m->duration_ms = c[2].i - c[3].i;
        return m->name && m->applied_at ? 0 : -ENOMEM;
}

static int prisma_load_applied(db *d, applied_set *ret, db_failure *f) {
        applied_set a = {};
        int r;

        /* PostgreSQL's timestamptz read as the milliseconds SQLite's table holds */
        r = history_load(d, "_prisma_migrations",
                         db_dialect_postgres(d)
                                 ? "SELECT migration_name, checksum, "
                                   "CAST(floor(extract(epoch FROM finished_at) * 1000) AS bigint), "
                                   "CAST(floor(extract(epoch FROM started_at) * 1000) AS bigint), rolled_back_at "
                                   "FROM \"_prisma_migrations\" ORDER BY started_at, migration_name"
                                 : "SELECT migration_name, checksum, finished_at, started_at, rolled_back_at "
                                   "FROM \"_prisma_migrations\" ORDER BY started_at, migration_name",
                         load_row, &a, f, "cannot read _prisma_migrations");
        if (r != 0)
                return r;
        history_sort_applied(&a);
        *ret = a;
        return 0;
}

static int make_id(char id[37], db_failure *f) {
        if (uuid4(id) == 0)
                return 0;
        db_failure_clear(f);
        f->code = PROTOCOL_ERROR_DATABASE;
        f->message = strdup("cannot make an id: no random bytes");
        return f->message ? DB_FAILED : -ENOMEM;
}

/* A migration applied by migrated: one row, as "prisma migrate deploy" leaves it. */
static int prisma_record_applied(db *d, const migration *m, int64_t duration_ms, db_failure *f) {
        int64_t now = now_unix_ms();
        char id[37];
        int r;

        r = make_id(id, f);
        if (r != 0)
                return r;
        return prisma_query(d,
                        "INSERT INTO \"_prisma_migrations\" (\"id\", \"checksum\", \"finished_at\", "
                        "\"migration_name\", \"logs\", \"rolled_back_at\", \"started_at\", "
                        "\"applied_steps_count\") VALUES (?1, ?2, TS(?3), ?4, NULL, NULL, TS(?5), 1)",
                        (db_value[]) { DB_TEXT(id), DB_TEXT(m->checksum), DB_INT(now),
                                       DB_TEXT(migration_record_name(m)), DB_INT(now - duration_ms) }, 5,
                        NULL, NULL, NULL, f, "cannot record the applied migration");
}

/* Sets rolled_back_at of the named migration's rows that sql selects. */
static int exec_named(db *d, const char *sql, const char *name, int64_t *ret_changes, db_failure *f,
                      const char *what) {
        return prisma_query(d, sql, (db_value[]) { DB_TEXT(name), DB_INT(now_unix_ms()) }, 2, NULL, NULL, ret_changes, f,
                        what);
}

/* A down deletes the migration's applied row, as Prisma users do for a rollback by hand: "prisma
 * migrate status" then lists it as pending (it counts a row with rolled_back_at set as recorded)
 * and "migrate deploy" applies it again. Rows Prisma itself rolled back (a failed run resolved)
 * are its history and stay. */
static int prisma_remove_applied(db *d, const migration *m, db_failure *f) {
        return db_query(d,
                        "DELETE FROM \"_prisma_migrations\" WHERE \"migration_name\" = ?1 "
                        "AND \"finished_at\" IS NOT NULL AND \"rolled_back_at\" IS NULL",
                        (db_value[]) { DB_TEXT(migration_record_name(m)) }, 1, NULL, NULL, NULL, f,
                        "cannot record the reverted migration");
}

static int count_row(const db_value *c, size_t n, void *userdata) {
        *(int64_t *) userdata = c[0].i;
        return 0;
}

/* migrate resolve --applied: failed rows of the migration are rolled back, and a row with
 * started_at = finished_at, logs '' and no steps says it is applied. */
static int prisma_mark_applied(db *d, const migration *m, db_failure *f) {
        const char *name = migration_record_name(m);
        int64_t now = now_unix_ms(), applied = 0;
        char id[37];
        int r;

        r = db_query(d,
                     "SELECT count(*) FROM \"_prisma_migrations\" WHERE \"migration_name\" = ?1 AND "
                     "\"finished_at\" IS NOT NULL AND \"rolled_back_at\" IS NULL",
                     (db_value[]) { DB_TEXT(name) }, 1, count_row, &applied, NULL, f, "cannot read _prisma_migrations");
        if (r != 0)
                return r;
        if (applied > 0)
                return history_refuse(f, "%s is already recorded as applied", name);
        r = exec_named(d,
                       "UPDATE \"_prisma_migrations\" SET \"rolled_back_at\" = TS(?2) WHERE \"migration_name\" = ?1 AND "
                       "\"finished_at\" IS NULL AND \"rolled_back_at\" IS NULL",
                       name, NULL, f, "cannot resolve the failed migration");
        if (r == 0)
                r = make_id(id, f);
        if (r != 0)
                return r;
        return prisma_query(d,
                        "INSERT INTO \"_prisma_migrations\" (\"id\", \"checksum\", \"logs\", \"started_at\", "
                        "\"finished_at\", \"migration_name\") VALUES (?1, ?2, '', TS(?3), TS(?3), ?4)",
                        (db_value[]) { DB_TEXT(id), DB_TEXT(m->checksum), DB_INT(now), DB_TEXT(name) }, 4,
                        NULL, NULL, NULL, f, "cannot mark the migration applied");
}

/* migrate resolve --rolled-back: only a failed migration can be marked rolled back. */
static int prisma_mark_rolled_back(db *d, const migration *m, db_failure *f) {
        const char *name = migration_record_name(m);
        int64_t changes = 0;
        int r;

        r = exec_named(d,
                       "UPDATE \"_prisma_migrations\" SET \"rolled_back_at\" = TS(?2) WHERE \"migration_name\" = ?1 AND "
                       "\"finished_at\" IS NULL AND \"rolled_back_at\" IS NULL",
                       name, &changes, f, "cannot mark the migration rolled back");
        if (r != 0)
                return r;
        if (changes == 0)
                return history_refuse(f,
                                      "%s is not in a failed state, so it cannot be marked rolled back (use down to "
                                      "revert an applied migration)", name);
        return 0;
}

const history_format history_prisma = {
        .format = MIGDIR_PRISMA,
        .table = "_prisma_migrations",
        .ensure = prisma_ensure,
        .load_applied = prisma_load_applied,
        .record_applied = prisma_record_applied,
        .remove_applied = prisma_remove_applied,
        .mark_applied = prisma_mark_applied,
        .mark_rolled_back = prisma_mark_rolled_back,
};
