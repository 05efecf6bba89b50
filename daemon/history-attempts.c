/* SPDX-License-Identifier: MIT */
/* migrated's own tables, the same in every format and on every backend: migrated_attempts (every
 * attempt: Prisma's table has no room for them) and migrated_meta (the layout version, so that
 * the daemon upgrades an older layout in place instead of being blocked by it). */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "history.h"
#include "macro.h"

/* Layout 2. Layout 1 (before migrated_meta existed) had CHECK constraints on direction and
 * status, which would have refused every new kind of attempt; the code is the only writer and
 * writes known values only. */
const char history_attempts_columns[] =
        "(\n"
        "        id INTEGER PRIMARY KEY,\n"
        "        job_id INTEGER NOT NULL,\n"
        "        direction TEXT NOT NULL,\n"
        "        status TEXT NOT NULL,\n"
        "        from_version INTEGER NOT NULL,\n"
        "        to_version INTEGER NOT NULL,\n"
        "        versions TEXT NOT NULL,\n"
        "        error TEXT,\n"
        "        error_file TEXT,\n"
        "        error_line INTEGER,\n"
        "        started_at TEXT NOT NULL,\n"
        "        finished_at TEXT,\n"
        "        requested_by TEXT,\n"
        "        detail TEXT\n"
        ")";

static const char recover_sql[] =
        "UPDATE migrated_attempts SET status = 'interrupted', finished_at = ?1, "
        "error = 'migrated stopped during this attempt; SQLite rolled back its open transaction' "
        "WHERE status = 'running'";

static int run(db *d, const char *sql, db_failure *f, const char *what) {
        return db_query(d, sql, NULL, 0, NULL, NULL, NULL, f, what);
}

static int int_row(const db_value *c, size_t n, void *userdata) {
        int64_t *v = userdata;

        *v = c[0].type == DB_VALUE_TEXT ? strtoll(c[0].s, NULL, 10) : c[0].i;
        return 0;
}

int history_schema_version(db *d, int64_t *ret, db_failure *f) {
        bool meta, attempts;
        int64_t v = -1;
        int r;

        r = db_table_exists(d, "migrated_meta", &meta, f);
        if (r == 0 && meta)
                r = db_query(d, "SELECT value FROM migrated_meta WHERE key = 'schema_version'", NULL, 0, int_row, &v,
                             NULL, f, "cannot read migrated_meta");
        if (r == 0 && v < 0)
                r = db_table_exists(d, "migrated_attempts", &attempts, f);
        if (r != 0)
                return r;
        *ret = v >= 0 ? v : attempts ? 1 : 0;
        return 0;
}

/* 1 → 2: migrated_attempts rebuilt without its CHECK constraints, every row and id kept. */
static int upgrade_to_2(db *d, db_failure *f) {
        _cleanup_free_ char *create = NULL;
        int r;

        if (asprintf(&create, "CREATE TABLE migrated_attempts_new %s", history_attempts_columns) < 0)
                return -ENOMEM;
        r = run(d, create, f, "cannot upgrade migrated_attempts");
        if (r == 0)
                r = run(d, "INSERT INTO migrated_attempts_new (" HISTORY_ATTEMPT_COLUMNS ") SELECT "
                        HISTORY_ATTEMPT_COLUMNS " FROM migrated_attempts", f, "cannot upgrade migrated_attempts");
        if (r == 0)
                r = run(d, "DROP TABLE migrated_attempts", f, "cannot upgrade migrated_attempts");
        if (r == 0)
                r = run(d, "ALTER TABLE migrated_attempts_new RENAME TO migrated_attempts", f,
                        "cannot upgrade migrated_attempts");
        return r;
}

/* Step i turns layout i + 1 into layout i + 2; a new layout appends one step. */
static int (*const upgrades[])(db *d, db_failure *f) = {
        upgrade_to_2,
};

_Static_assert(ELEMENTSOF(upgrades) == HISTORY_SCHEMA_VERSION - 1, "one upgrade step per layout");

/* The attempts and meta tables at the current layout; the caller holds a write transaction. */
static int ensure_own(db *d, db_failure *f) {
        _cleanup_free_ char *create = NULL;
        int64_t v;
        int r;

        r = history_schema_version(d, &v, f);
        if (r != 0 || v == HISTORY_SCHEMA_VERSION)
                return r;
        if (v > HISTORY_SCHEMA_VERSION)
                return 0; /* a newer migrated's layout: it stays as it is */
        if (v == 0) {
                if (asprintf(&create, "CREATE TABLE IF NOT EXISTS migrated_attempts %s", history_attempts_columns) < 0)
                        return -ENOMEM;
                r = run(d, create, f, "cannot create migrated_attempts");
        }
        for (int64_t i = v; r == 0 && i >= 1 && i < HISTORY_SCHEMA_VERSION; i++)
                r = upgrades[i - 1](d, f);
        if (r == 0)
                r = run(d, "CREATE TABLE IF NOT EXISTS migrated_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)", f,
                        "cannot create migrated_meta");
        if (r == 0)
                r = db_query(d,
                             "INSERT INTO migrated_meta (key, value) VALUES ('schema_version', ?1) "
                             "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                             (db_value[]) { DB_INT(HISTORY_SCHEMA_VERSION) }, 1, NULL, NULL, NULL, f,
                             "cannot record the layout of migrated's tables");
        return r;
}

int history_ensure(db *d, db_failure *f) {
        int r = d->history->ensure(d, f);

        return r != 0 || history_own(d) != d ? r : ensure_own(d, f);
}

/* The format's table in the application database, in a transaction of its own, for when
 * migrated's tables live apart (a Prisma database gets _prisma_migrations as Prisma makes it). */
static int ensure_format_table(db *d, db_failure *f) {
        int r;

        r = db_begin(d, f);
        if (r == 0)
                r = d->history->ensure(d, f);
        if (r == 0)
                r = db_commit(d, f);
        if (r != 0)
                db_rollback(d);
        return r;
}

typedef struct move_ctx {
        db *own;
        db_failure *f;
} move_ctx;

/* One attempt row of the application database into the state database: skipped when it is
 * already there (a move interrupted between its two commits runs again), its id kept when free. */
static int move_row(const db_value *c, size_t n, void *userdata) {
        move_ctx *m = userdata;

        if (n != 14)
                return -EINVAL;
        return db_query(m->own,
                        "INSERT INTO migrated_attempts (" HISTORY_ATTEMPT_COLUMNS ") SELECT CASE WHEN EXISTS "
                        "(SELECT 1 FROM migrated_attempts WHERE id = ?1) THEN NULL ELSE ?1 END, ?2, ?3, ?4, ?5, ?6, "
                        "?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14 WHERE NOT EXISTS (SELECT 1 FROM migrated_attempts "
                        "WHERE job_id = ?2 AND direction = ?3 AND started_at = ?11)",
                        c, n, NULL, NULL, NULL, m->f, "cannot move migrated_attempts to the state directory");
}

/* Crash-safe in this order: the rows are copied and committed in the state database first, and
 * only then are the tables dropped from the application database; a crash in between copies
 * again at the next start, finding every row already there. */
int history_move_own(db *app, db *own, db_failure *f) {
        move_ctx m = { .own = own, .f = f };
        bool attempts, meta;
        int64_t v;
        int r;

        r = db_table_exists(app, "migrated_attempts", &attempts, f);
        if (r == 0)
                r = db_table_exists(app, "migrated_meta", &meta, f);
        if (r != 0 || (!attempts && !meta))
                return r;
        r = history_schema_version(app, &v, f);
        if (r != 0)
                return r;
        if (v > HISTORY_SCHEMA_VERSION)
                return history_refuse(f,
                                      "the database holds migrated_attempts at layout %" PRIi64 ", newer than this "
                                      "migrated's %d: they stay where they are",
                                      v, HISTORY_SCHEMA_VERSION);
        r = db_begin(own, f);
        if (r != 0)
                return r;
        r = ensure_own(own, f);
        if (r == 0 && attempts)
                r = db_query(app, "SELECT " HISTORY_ATTEMPT_COLUMNS " FROM migrated_attempts ORDER BY id", NULL, 0,
                             move_row, &m, NULL, f, "cannot read migrated_attempts");
        if (r == 0)
                r = db_commit(own, f);
        if (r != 0) {
                db_rollback(own);
                return r;
        }
        r = db_begin(app, f);
        if (r == 0)
                r = run(app, "DROP TABLE IF EXISTS migrated_attempts", f, "cannot drop the moved migrated_attempts");
        if (r == 0)
                r = run(app, "DROP TABLE IF EXISTS migrated_meta", f, "cannot drop the moved migrated_meta");
        if (r == 0)
                r = db_commit(app, f);
        if (r != 0)
                db_rollback(app);
        return r;
}

/* At start-up: an older layout left by an earlier migrated is upgraded before anything reads it. */
int history_upgrade(db *d, db_failure *f) {
        int64_t v;
        int r;

        r = history_schema_version(d, &v, f);
        if (r != 0 || v == 0 || v >= HISTORY_SCHEMA_VERSION)
                return r;
        r = db_begin(d, f);
        if (r == 0)
                r = ensure_own(d, f);
        if (r == 0)
                r = db_commit(d, f);
        if (r != 0)
                db_rollback(d);
        return r;
}

static int id_row(const db_value *c, size_t n, void *userdata) {
        *(int64_t *) userdata = c[0].i;
        return 0;
}

/* Records the attempt as running in a transaction of its own, committed before the migration
 * starts, so that a crash leaves a trace that the next start turns into "interrupted". In the
 * database itself (native format) that commit is not synced: it survives a crash of the daemon,
 * and every way the job goes on ends in a synced commit on the same database (the plan's, or the
 * failed attempt's record) that makes it durable too; only a power cut before any of them can lose
 * it, and then the database is unchanged. One fsync per job fewer, nothing acknowledged weaker. */
int history_attempt_begin(db *app, const db_attempt *a, int64_t *ret_id, db_failure *f) {
        db *d = history_own(app);
        char now[32];
        int64_t id = 0;
        int r;

        if (d != app) {
                r = ensure_format_table(app, f);
                if (r != 0)
                        return r;
        }
        r = d == app ? db_begin_unsynced(d, f) : db_begin(d, f);
        if (r != 0)
                return r;
        db_timestamp(now);
        r = d == app ? history_ensure(d, f) : ensure_own(d, f);
        if (r == 0)
                r = db_query(d, recover_sql, (db_value[]) { DB_TEXT(now) }, 1, NULL, NULL, NULL, f,
                             "cannot record the attempt");
        if (r == 0)
                r = db_query(d,
                             "INSERT INTO migrated_attempts (job_id, direction, status, from_version, "
                             "to_version, versions, started_at, requested_by) "
                             "VALUES (?1, ?2, 'running', ?3, ?4, ?5, ?6, ?7) RETURNING id",
                             (db_value[]) { DB_INT((int64_t) a->job_id), DB_TEXT(a->direction), DB_INT(a->from_version),
                                            DB_INT(a->to_version), DB_TEXT(a->versions), DB_TEXT(now),
                                            DB_TEXT(a->requested_by) }, 7,
                             id_row, &id, NULL, f, "cannot record the attempt");
        if (r == 0)
                r = db_commit(d, f);
        if (r != 0) {
                db_rollback(d);
                return r;
        }
        *ret_id = id;
        return 0;
}

int history_attempt_finish(db *app, int64_t id, const char *status, const char *error, const char *error_file,
                           unsigned error_line, db_failure *f) {
        char now[32];

        db_timestamp(now);
        return db_query(history_own(app),
                        "UPDATE migrated_attempts SET status = ?2, error = ?3, error_file = ?4, "
                        "error_line = ?5, finished_at = ?6 WHERE id = ?1",
                        (db_value[]) { DB_INT(id), DB_TEXT(status), DB_TEXT(error), DB_TEXT(error_file),
                                       error_line > 0 ? DB_INT(error_line) : DB_NULL, DB_TEXT(now) }, 6,
                        NULL, NULL, NULL, f, "cannot record the attempt's outcome");
}

static int attempt_row(const db_value *c, size_t n, void *userdata) {
        static const char *const cols[] = { "id", "job_id", "direction", "status", "from_version", "to_version",
                                            "versions", "error", "error_file", "error_line", "started_at",
                                            "finished_at", "requested_by", "detail" };
        json_t *arr = userdata, *row = json_object(), *versions;

        if (!row || json_array_append_new(arr, row) < 0)
                return -ENOMEM;
        for (size_t i = 0; i < ELEMENTSOF(cols) && i < n; i++)
                json_object_set_new(row, cols[i], c[i].type == DB_VALUE_INT    ? json_integer(c[i].i)
                                                  : c[i].type == DB_VALUE_NULL ? json_null()
                                                                               : json_string(c[i].s));
        /* versions is stored as JSON array text; hand it out as an array */
        versions = json_loads(c[6].s ?: "[]", 0, NULL);
        json_object_set_new(row, "versions", versions ?: json_array());
        return 0;
}

int history_attempts(db *app, unsigned limit, json_t **ret, db_failure *f) {
        db *d = history_own(app);
        json_t *arr = json_array();
        bool exists;
        int r;

        if (!arr)
                return -ENOMEM;
        r = db_table_exists(d, "migrated_attempts", &exists, f);
        if (r == 0 && exists)
                r = db_query(d, "SELECT " HISTORY_ATTEMPT_COLUMNS " FROM migrated_attempts ORDER BY id DESC LIMIT ?1",
                             (db_value[]) { DB_INT(limit) }, 1,
                             attempt_row, arr, NULL, f, "cannot read the history");
        if (r != 0) {
                json_decref(arr);
                return r;
        }
        *ret = arr;
        return 0;
}

static int applied_by_row(const db_value *c, size_t n, void *userdata) {
        json_t **ret = userdata;

        *ret = json_pack("{s:s?,s:s?}", "requested_by", c[0].type == DB_VALUE_TEXT ? c[0].s : NULL, "at",
                         c[1].type == DB_VALUE_TEXT ? c[1].s : NULL);
        return *ret ? 0 : -ENOMEM;
}

int history_applied_by(db *app, int64_t version, json_t **ret, db_failure *f) {
        db *d = history_own(app);
        bool exists;
        int r;

        *ret = NULL;
        r = db_table_exists(d, "migrated_attempts", &exists, f);
        if (r == 0 && exists)
                r = db_query(d,
                             "SELECT requested_by, finished_at FROM migrated_attempts WHERE status = 'succeeded' "
                             "AND direction = 'up' AND to_version = ?1 ORDER BY id DESC LIMIT 1",
                             (db_value[]) { DB_INT(version) }, 1, applied_by_row, ret, NULL, f,
                             "cannot read the history");
        return r;
}

int history_recover_interrupted(db *app, unsigned *ret_count, db_failure *f) {
        db *d = history_own(app);
        int64_t changes = 0;
        bool exists;
        char now[32];
        int r;

        *ret_count = 0;
        r = d != app ? history_move_own(app, d, f) : 0;
        if (r == 0)
                r = history_upgrade(d, f);
        if (r == 0)
                r = db_table_exists(d, "migrated_attempts", &exists, f);
        if (r != 0 || !exists)
                return r;
        db_timestamp(now);
        r = db_query(d, recover_sql, (db_value[]) { DB_TEXT(now) }, 1, NULL, NULL, &changes, f,
                     "cannot mark interrupted attempts");
        if (r == 0)
                *ret_count = (unsigned) changes;
        return r;
}

int history_record_event(db *app, const db_event *ev, db_failure *f) {
        db *d = history_own(app);
        char now[32];
        int r;

        r = d == app ? history_ensure(d, f) : ensure_own(d, f);
        if (r != 0)
                return r;
        db_timestamp(now);
        return db_query(d,
                        "INSERT INTO migrated_attempts (job_id, direction, status, from_version, "
                        "to_version, versions, detail, started_at, finished_at, requested_by) "
                        "VALUES (?1, ?2, 'succeeded', ?3, ?4, '[]', ?5, ?6, ?6, ?7)",
                        (db_value[]) { DB_INT((int64_t) ev->job_id), DB_TEXT(ev->direction), DB_INT(ev->from_version),
                                       DB_INT(ev->to_version), DB_TEXT(ev->detail), DB_TEXT(now),
                                       DB_TEXT(ev->requested_by) }, 7,
                        NULL, NULL, NULL, f, "cannot record the job in the history");
}

int history_max_job_id(db *app, uint64_t *ret, db_failure *f) {
        db *d = history_own(app);
        int64_t max = 0;
        bool exists;
        int r;

        *ret = 0;
        r = db_table_exists(d, "migrated_attempts", &exists, f);
        if (r == 0 && exists)
                r = db_query(d, "SELECT coalesce(max(job_id), 0) FROM migrated_attempts", NULL, 0, id_row, &max, NULL,
                             f, "cannot read the history");
        if (r == 0)
                *ret = (uint64_t) max;
        return r;
}
