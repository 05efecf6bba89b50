/* SPDX-License-Identifier: MIT */
/* The bookkeeping tables: which migrations are applied, and every attempt. */

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db-sqlite-internal.h"

static const char schema_sql[] =
        "CREATE TABLE IF NOT EXISTS migrated_schema (\n"
        "        version INTEGER PRIMARY KEY,\n"
        "        name TEXT NOT NULL,\n"
        "        checksum TEXT NOT NULL,\n"
        "        applied_at TEXT NOT NULL,\n"
        "        duration_ms INTEGER NOT NULL\n"
        ");\n";

/* Every attempt, in both formats: Prisma's table has no room for them. Formatted with the schema
 * it goes into: a restore rebuilds it in the attached copy being restored. */
static const char attempts_columns[] =
        "(\n"
        "        id INTEGER PRIMARY KEY,\n"
        "        job_id INTEGER NOT NULL,\n"
        "        direction TEXT NOT NULL CHECK (direction IN ('up', 'down', 'restore', 'mark', 'baseline')),\n"
        "        status TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'interrupted', 'cancelled')),\n"
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

#define ATTEMPT_COLUMNS                                                                                             \
        "id, job_id, direction, status, from_version, to_version, versions, error, error_file, error_line, "     \
        "started_at, finished_at, requested_by, detail"

/* Creates migrated_attempts in schema if absent; with replace, drops what schema had first. */
static int create_attempts(db_sqlite *s, const char *schema, bool replace, db_failure *f) {
        char *sql;
        int r;

        if (replace)
                sql = sqlite3_mprintf("DROP TABLE IF EXISTS \"%w\".migrated_attempts; "
                                      "CREATE TABLE \"%w\".migrated_attempts %s", schema, schema, attempts_columns);
        else
                sql = sqlite3_mprintf("CREATE TABLE IF NOT EXISTS \"%w\".migrated_attempts %s", schema,
                                      attempts_columns);
        if (!sql)
                return -ENOMEM;
        r = sqlite_exec_simple(s, sql, f, "cannot create migrated_attempts");
        sqlite3_free(sql);
        return r;
}

static const char recover_sql[] =
        "UPDATE migrated_attempts SET status = 'interrupted', finished_at = ?1, "
        "error = 'migrated stopped during this attempt; SQLite rolled back its open transaction' "
        "WHERE status = 'running'";

/* The applied-set table of the format, then the attempts table; created only if absent. */
static int ensure_bookkeeping(db_sqlite *s, db_failure *f) {
        int r;

        r = s->format == MIGDIR_PRISMA ? prisma_ensure_table(s, f)
                                       : sqlite_exec_simple(s, schema_sql, f, "cannot create migrated_schema");
        if (r != 0)
                return r;
        return create_attempts(s, "main", false, f);
}

int sqlite_load_applied(db *d, applied_set *ret, db_failure *f) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        db_sqlite *s = to_sqlite(d);
        applied_set a = {};
        int rc;

        if (s->format == MIGDIR_PRISMA)
                return prisma_load_applied(s, ret, f);

        if (!sqlite_table_exists(s, "migrated_schema", &rc)) {
                if (rc != SQLITE_OK)
                        return sqlite_fail(s, rc, f, "cannot read the applied migrations");
                *ret = a;
                return 0;
        }
        rc = sqlite3_prepare_v2(s->conn,
                                "SELECT version, name, checksum, applied_at, duration_ms FROM migrated_schema "
                                "ORDER BY version", -1, &st, NULL);
        if (rc != SQLITE_OK)
                return sqlite_fail(s, rc, f, "cannot read the applied migrations");
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                applied_migration *m = realloc(a.items, (a.n + 1) * sizeof(*m));
                if (!m) {
                        applied_set_clear(&a);
                        return -ENOMEM;
                }
                a.items = m;
                m = &a.items[a.n++];
                memset(m, 0, sizeof(*m));
                m->version = sqlite3_column_int64(st, 0);
                m->name = strdup((const char *) sqlite3_column_text(st, 1) ?: "");
                snprintf(m->checksum, sizeof(m->checksum), "%s", (const char *) sqlite3_column_text(st, 2) ?: "");
                m->applied_at = strdup((const char *) sqlite3_column_text(st, 3) ?: "");
                m->duration_ms = sqlite3_column_int64(st, 4);
                if (!m->name || !m->applied_at) {
                        applied_set_clear(&a);
                        return -ENOMEM;
                }
        }
        if (rc != SQLITE_DONE) {
                applied_set_clear(&a);
                return sqlite_fail(s, rc, f, "cannot read the applied migrations");
        }
        *ret = a;
        return 0;
}

int sqlite_record_applied(db *d, const migration *m, int64_t duration_ms, db_failure *f) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        db_sqlite *s = to_sqlite(d);
        char now[32];
        int rc;

        if (s->format == MIGDIR_PRISMA)
                return prisma_record_applied(s, m, duration_ms, f);

        db_timestamp(now);
        rc = sqlite3_prepare_v2(s->conn,
                                "INSERT INTO migrated_schema (version, name, checksum, applied_at, duration_ms) "
                                "VALUES (?1, ?2, ?3, ?4, ?5)", -1, &st, NULL);
        if (rc == SQLITE_OK) {
                sqlite3_bind_int64(st, 1, m->version);
                sqlite3_bind_text(st, 2, m->name, -1, SQLITE_STATIC);
                sqlite3_bind_text(st, 3, m->checksum, -1, SQLITE_STATIC);
                sqlite3_bind_text(st, 4, now, -1, SQLITE_STATIC);
                sqlite3_bind_int64(st, 5, duration_ms);
                rc = sqlite3_step(st);
        }
        return rc == SQLITE_DONE ? 0 : sqlite_fail(s, rc, f, "cannot record the applied migration");
}

int sqlite_remove_applied(db *d, const migration *m, db_failure *f) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        db_sqlite *s = to_sqlite(d);
        int rc;

        if (s->format == MIGDIR_PRISMA)
                return prisma_remove_applied(s, m, f);
        rc = sqlite3_prepare_v2(s->conn, "DELETE FROM migrated_schema WHERE version = ?1", -1, &st, NULL);
        if (rc == SQLITE_OK) {
                sqlite3_bind_int64(st, 1, m->version);
                rc = sqlite3_step(st);
        }
        return rc == SQLITE_DONE ? 0 : sqlite_fail(s, rc, f, "cannot record the reverted migration");
}

/* Bookkeeping without running the script: the caller holds a write transaction. */
int sqlite_mark_applied(db *d, const migration *m, db_failure *f) {
        db_sqlite *s = to_sqlite(d);
        applied_set a = {};
        bool already;
        int r;

        r = ensure_bookkeeping(s, f);
        if (r != 0)
                return r;
        if (s->format == MIGDIR_PRISMA)
                return prisma_mark_applied(s, m, f);
        r = sqlite_load_applied(d, &a, f);
        if (r != 0)
                return r;
        already = applied_set_find(&a, m->version) != NULL;
        applied_set_clear(&a);
        if (already)
                return sqlite_refuse(f, "%s is already recorded as applied", m->up.file);
        return sqlite_record_applied(d, m, 0, f);
}

/* Ours has no failed state: marking rolled back forgets an applied migration reverted by hand. */
int sqlite_mark_rolled_back(db *d, const migration *m, db_failure *f) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        db_sqlite *s = to_sqlite(d);
        int rc, r;

        r = ensure_bookkeeping(s, f);
        if (r != 0)
                return r;
        if (s->format == MIGDIR_PRISMA)
                return prisma_mark_rolled_back(s, m, f);
        rc = sqlite3_prepare_v2(s->conn, "DELETE FROM migrated_schema WHERE version = ?1", -1, &st, NULL);
        if (rc == SQLITE_OK) {
                sqlite3_bind_int64(st, 1, m->version);
                rc = sqlite3_step(st);
        }
        if (rc != SQLITE_DONE)
                return sqlite_fail(s, rc, f, "cannot mark the migration rolled back");
        if (sqlite3_changes(s->conn) == 0)
                return sqlite_refuse(f, "%s is not applied, so it cannot be marked rolled back", m->up.file);
        return 0;
}

int sqlite_has_user_tables(db *d, bool *ret) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        db_sqlite *s = to_sqlite(d);

        if (sqlite3_prepare_v2(s->conn,
                               "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' "
                               "ESCAPE '\\' AND name NOT IN ('_prisma_migrations', 'migrated_schema', "
                               "'migrated_attempts')", -1, &st, NULL) != SQLITE_OK ||
            sqlite3_step(st) != SQLITE_ROW)
                return -EIO;
        *ret = sqlite3_column_int64(st, 0) > 0;
        return 0;
}

/* Records the attempt as running in a transaction of its own, committed before the migration
 * starts, so that a crash leaves a trace that the next start turns into "interrupted". */
int sqlite_attempt_begin(db *d, const db_attempt *a, int64_t *ret_id, db_failure *f) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL, *rec = NULL;
        db_sqlite *s = to_sqlite(d);
        char now[32];
        int rc, r;

        r = sqlite_exec_simple(s, "BEGIN IMMEDIATE", f, "cannot start a write transaction");
        if (r != 0)
                return r;
        db_timestamp(now);
        r = ensure_bookkeeping(s, f);
        if (r != 0) {
                sqlite_rollback(d);
                return r;
        }
        rc = sqlite3_prepare_v2(s->conn, recover_sql, -1, &rec, NULL);
        if (rc == SQLITE_OK) {
                sqlite3_bind_text(rec, 1, now, -1, SQLITE_STATIC);
                rc = sqlite3_step(rec) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(s->conn);
        }
        if (rc == SQLITE_OK)
                rc = sqlite3_prepare_v2(s->conn,
                                        "INSERT INTO migrated_attempts (job_id, direction, status, from_version, "
                                        "to_version, versions, started_at, requested_by) "
                                        "VALUES (?1, ?2, 'running', ?3, ?4, ?5, ?6, ?7)", -1, &st, NULL);
        if (rc == SQLITE_OK) {
                sqlite3_bind_int64(st, 1, (sqlite3_int64) a->job_id);
                sqlite3_bind_text(st, 2, a->direction, -1, SQLITE_STATIC);
                sqlite3_bind_int64(st, 3, a->from_version);
                sqlite3_bind_int64(st, 4, a->to_version);
                sqlite3_bind_text(st, 5, a->versions, -1, SQLITE_STATIC);
                sqlite3_bind_text(st, 6, now, -1, SQLITE_STATIC);
                sqlite3_bind_text(st, 7, a->requested_by, -1, SQLITE_STATIC);
                rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(s->conn);
        }
        if (rc == SQLITE_OK)
                rc = sqlite3_exec(s->conn, "COMMIT", NULL, NULL, NULL);
        if (rc != SQLITE_OK) {
                r = sqlite_fail(s, rc, f, "cannot record the attempt");
                sqlite_rollback(d);
                return r;
        }
        *ret_id = sqlite3_last_insert_rowid(s->conn);
        return 0;
}

int sqlite_attempt_finish(db *d, int64_t id, const char *status, const char *error, const char *error_file,
                                 unsigned error_line, db_failure *f) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        db_sqlite *s = to_sqlite(d);
        char now[32];
        int rc;

        db_timestamp(now);
        rc = sqlite3_prepare_v2(s->conn,
                                "UPDATE migrated_attempts SET status = ?2, error = ?3, error_file = ?4, "
                                "error_line = ?5, finished_at = ?6 WHERE id = ?1", -1, &st, NULL);
        if (rc == SQLITE_OK) {
                sqlite3_bind_int64(st, 1, id);
                sqlite3_bind_text(st, 2, status, -1, SQLITE_STATIC);
                sqlite3_bind_text(st, 3, error, -1, SQLITE_STATIC);
                sqlite3_bind_text(st, 4, error_file, -1, SQLITE_STATIC);
                if (error_line > 0)
                        sqlite3_bind_int64(st, 5, error_line);
                sqlite3_bind_text(st, 6, now, -1, SQLITE_STATIC);
                rc = sqlite3_step(st);
        }
        return rc == SQLITE_DONE ? 0 : sqlite_fail(s, rc, f, "cannot record the attempt's outcome");
}

static int json_set_column(json_t *o, const char *key, sqlite3_stmt *st, int col) {
        json_t *v;

        switch (sqlite3_column_type(st, col)) {
        case SQLITE_INTEGER:
                v = json_integer(sqlite3_column_int64(st, col));
                break;
        case SQLITE_NULL:
                v = json_null();
                break;
        default:
                v = json_string((const char *) sqlite3_column_text(st, col));
        }
        return json_object_set_new(o, key, v);
}

int sqlite_history(db *d, unsigned limit, json_t **ret, db_failure *f) {
        static const char *const cols[] = { "id", "job_id", "direction", "status", "from_version", "to_version",
                                            "versions", "error", "error_file", "error_line", "started_at",
                                            "finished_at", "requested_by", "detail" };
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        db_sqlite *s = to_sqlite(d);
        json_t *arr = json_array();
        int rc;

        if (!arr)
                return -ENOMEM;
        if (!sqlite_table_exists(s, "migrated_attempts", &rc)) {
                if (rc != SQLITE_OK) {
                        json_decref(arr);
                        return sqlite_fail(s, rc, f, "cannot read the history");
                }
                *ret = arr;
                return 0;
        }
        rc = sqlite3_prepare_v2(s->conn,
                                "SELECT id, job_id, direction, status, from_version, to_version, versions, error, "
                                "error_file, error_line, started_at, finished_at, requested_by, detail "
                                "FROM migrated_attempts ORDER BY id DESC LIMIT ?1", -1, &st, NULL);
        if (rc == SQLITE_OK)
                sqlite3_bind_int64(st, 1, limit);
        while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
                json_t *row = json_object(), *versions;
                if (!row || json_array_append_new(arr, row) < 0) {
                        json_decref(arr);
                        return -ENOMEM;
                }
                for (size_t i = 0; i < ELEMENTSOF(cols); i++)
                        json_set_column(row, cols[i], st, (int) i);
                /* versions is stored as JSON array text; hand it out as an array */
                versions = json_loads((const char *) sqlite3_column_text(st, 6) ?: "[]", 0, NULL);
                json_object_set_new(row, "versions", versions ?: json_array());
                rc = SQLITE_OK;
        }
        if (rc != SQLITE_DONE && rc != SQLITE_OK) {
                json_decref(arr);
                return sqlite_fail(s, rc, f, "cannot read the history");
        }
        *ret = arr;
        return 0;
}

int sqlite_recover_interrupted(db *d, unsigned *ret_count, db_failure *f) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        db_sqlite *s = to_sqlite(d);
        char now[32];
        int rc;

        *ret_count = 0;
        if (!sqlite_table_exists(s, "migrated_attempts", &rc))
                return rc == SQLITE_OK ? 0 : sqlite_fail(s, rc, f, "cannot read the history");
        db_timestamp(now);
        rc = sqlite3_prepare_v2(s->conn, recover_sql, -1, &st, NULL);
        if (rc == SQLITE_OK) {
                sqlite3_bind_text(st, 1, now, -1, SQLITE_STATIC);
                rc = sqlite3_step(st);
        }
        if (rc != SQLITE_DONE)
                return sqlite_fail(s, rc, f, "cannot mark interrupted attempts");
        *ret_count = (unsigned) sqlite3_changes(s->conn);
        return 0;
}

/* Inserts a finished non-migration job into schema's attempts table. */
static int insert_event(db_sqlite *s, const char *schema, const db_event *ev, db_failure *f) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        char now[32], *sql;
        int rc;

        db_timestamp(now);
        sql = sqlite3_mprintf("INSERT INTO \"%w\".migrated_attempts (job_id, direction, status, from_version, "
                              "to_version, versions, detail, started_at, finished_at, requested_by) "
                              "VALUES (?1, ?2, 'succeeded', ?3, ?4, '[]', ?5, ?6, ?6, ?7)", schema);
        if (!sql)
                return -ENOMEM;
        rc = sqlite3_prepare_v2(s->conn, sql, -1, &st, NULL);
        sqlite3_free(sql);
        if (rc == SQLITE_OK) {
                sqlite3_bind_int64(st, 1, (sqlite3_int64) ev->job_id);
                sqlite3_bind_text(st, 2, ev->direction, -1, SQLITE_STATIC);
                sqlite3_bind_int64(st, 3, ev->from_version);
                sqlite3_bind_int64(st, 4, ev->to_version);
                sqlite3_bind_text(st, 5, ev->detail, -1, SQLITE_STATIC);
                sqlite3_bind_text(st, 6, now, -1, SQLITE_STATIC);
                sqlite3_bind_text(st, 7, ev->requested_by, -1, SQLITE_STATIC);
                rc = sqlite3_step(st);
        }
        return rc == SQLITE_DONE ? 0 : sqlite_fail(s, rc, f, "cannot record the job in the history");
}

int sqlite_record_event(db *d, const db_event *ev, db_failure *f) {
        db_sqlite *s = to_sqlite(d);
        int r;

        r = ensure_bookkeeping(s, f);
        if (r != 0)
                return r;
        return insert_event(s, "main", ev, f);
}

/* The history is the live database's, never the backup's: the copy about to be restored (attached
 * as "restored") gets every attempt recorded so far plus the restore itself, in one transaction,
 * so that a restore never forgets an attempt and ids continue where they were. */
int sqlite_carry_history(db *d, const char *scratch, const db_event *ev, db_failure *f) {
        db_sqlite *s = to_sqlite(d);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        bool have;
        int rc, r;

        rc = sqlite3_prepare_v2(s->conn, "ATTACH ?1 AS restored", -1, &st, NULL);
        if (rc == SQLITE_OK) {
                sqlite3_bind_text(st, 1, scratch, -1, SQLITE_STATIC);
                rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(s->conn);
        }
        if (rc != SQLITE_OK)
                return sqlite_fail(s, rc, f, "cannot open the copy being restored");
        have = sqlite_table_exists(s, "migrated_attempts", &rc);
        r = rc == SQLITE_OK ? 0 : sqlite_fail(s, rc, f, "cannot read the history");
        if (r == 0)
                r = sqlite_exec_simple(s, "PRAGMA restored.journal_mode = OFF; PRAGMA restored.synchronous = OFF; BEGIN",
                                       f, "cannot prepare the copy being restored");
        if (r == 0)
                r = create_attempts(s, "restored", true, f);
        if (r == 0 && have)
                r = sqlite_exec_simple(s, "INSERT INTO restored.migrated_attempts (" ATTEMPT_COLUMNS ") SELECT "
                                       ATTEMPT_COLUMNS " FROM main.migrated_attempts", f,
                                       "cannot carry the history into the restored copy");
        if (r == 0)
                r = insert_event(s, "restored", ev, f);
        if (r == 0)
                r = sqlite_exec_simple(s, "COMMIT", f, "cannot carry the history into the restored copy");
        sqlite_rollback(d);
        (void) sqlite3_exec(s->conn, "DETACH restored", NULL, NULL, NULL);
        return r;
}

int sqlite_max_job_id(db *d, uint64_t *ret, db_failure *f) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        db_sqlite *s = to_sqlite(d);
        int rc;

        *ret = 0;
        if (!sqlite_table_exists(s, "migrated_attempts", &rc))
                return rc == SQLITE_OK ? 0 : sqlite_fail(s, rc, f, "cannot read the history");
        rc = sqlite3_prepare_v2(s->conn, "SELECT coalesce(max(job_id), 0) FROM migrated_attempts", -1, &st, NULL);
        if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
                *ret = (uint64_t) sqlite3_column_int64(st, 0);
                return 0;
        }
        return sqlite_fail(s, rc, f, "cannot read the history");
}
