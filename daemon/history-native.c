/* SPDX-License-Identifier: MIT */
/* migrated's own applied-set table, migrated_schema, and the registry of history formats. */

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "history.h"
#include "macro.h"

static const history_format *const formats[] = {
        &history_native,
        &history_prisma,
        &history_goose,
        &history_golang_migrate,
        &history_flyway,
        &history_dbmate,
};

const char *const history_tables[] = {
        "migrated_schema",
        "_prisma_migrations",
        "migrated_attempts",
        "migrated_meta",
        "goose_db_version",
        "schema_migrations",
        "flyway_schema_history",
        "migrated_hosts", /* PostgreSQL's hosts (hosts-pg.c) */
        "migrated_seeds", /* the applied seeds (engine-seed.c) */
        NULL,
};

const char *const history_own_tables[] = {
        "migrated_attempts",
        "migrated_meta",
        "migrated_hosts",
        "migrated_seeds",
        NULL,
};

const history_format *history_find(migdir_format format) {
        for (size_t i = 0; i < ELEMENTSOF(formats); i++)
                if (formats[i]->format == format)
                        return formats[i];
        return NULL;
}

int history_claimed(db *d, const history_format **ret, db_failure *f) {
        *ret = NULL;
        for (size_t i = 0; i < ELEMENTSOF(formats); i++) {
                bool mine = false;
                int r;

                /* dbmate's directory carries its own marker (a '-- migrate:up' line), so one
                 * without it is not dbmate's; and its table is also Rails' and others' */
                if (!formats[i]->claims || formats[i]->format == MIGDIR_DBMATE)
                        continue;
                r = formats[i]->claims(d, &mine, f);
                if (r != 0)
                        return r;
                if (mine) {
                        *ret = formats[i];
                        return 0;
                }
        }
        return 0;
}

int history_version_of(db *d, int64_t *ret, db_failure *f) {
        for (size_t i = 0; i < ELEMENTSOF(formats); i++) {
                applied_set a = {};
                bool exists;
                int r;

                r = db_table_exists(d, formats[i]->table, &exists, f);
                if (r != 0)
                        return r;
                if (!exists)
                        continue;
                if (formats[i]->claims) {
                        r = formats[i]->claims(d, &exists, f);
                        if (r != 0)
                                return r;
                        if (!exists)
                                continue;
                }
                r = formats[i]->load_applied(d, &a, f);
                if (r != 0)
                        return r;
                *ret = applied_set_current(&a);
                applied_set_clear(&a);
                return 0;
        }
        *ret = 0;
        return 0;
}

int history_has_column(db *d, const char *table, const char *column, bool *ret, db_failure *f) {
        _cleanup_free_ char *sql = NULL;
        db_failure ignored = {};
        bool savepoint;

        /* unquoted: SQLite reads an unknown "quoted" name as a string literal */
        if (asprintf(&sql, "SELECT %s FROM %s LIMIT 0", column, table) < 0)
                return -ENOMEM;
        savepoint = db_query(d, "SAVEPOINT migrated_probe", NULL, 0, NULL, NULL, NULL, &ignored, "probe") == 0;
        db_failure_clear(&ignored);
        *ret = db_query(d, sql, NULL, 0, NULL, NULL, NULL, &ignored, "probe") == 0;
        db_failure_clear(&ignored);
        if (savepoint) {
                (void) db_query(d, "ROLLBACK TO migrated_probe", NULL, 0, NULL, NULL, NULL, &ignored, "probe");
                db_failure_clear(&ignored);
                (void) db_query(d, "RELEASE migrated_probe", NULL, 0, NULL, NULL, NULL, &ignored, "probe");
                db_failure_clear(&ignored);
        }
        return 0;
}

int history_refuse(db_failure *f, const char *fmt, ...) {
        va_list ap;
        int r;

        db_failure_clear(f);
        f->code = PROTOCOL_ERROR_STATE_CONFLICT;
        va_start(ap, fmt);
        r = vasprintf(&f->message, fmt, ap);
        va_end(ap);
        return r < 0 ? -ENOMEM : DB_FAILED;
}

static const char schema_sql[] =
        "CREATE TABLE IF NOT EXISTS migrated_schema (\n"
        "        version INTEGER PRIMARY KEY,\n"
        "        name TEXT NOT NULL,\n"
        "        checksum TEXT NOT NULL,\n"
        "        applied_at TEXT NOT NULL,\n"
        "        duration_ms INTEGER NOT NULL\n"
        ");\n";

static int native_ensure(db *d, db_failure *f) {
        return db_query(d, schema_sql, NULL, 0, NULL, NULL, NULL, f, "cannot create migrated_schema");
}

applied_migration *history_add_applied(applied_set *a) {
        applied_migration *m;

        m = realloc(a->items, (a->n + 1) * sizeof(*m));
        if (!m)
                return NULL;
        a->items = m;
        m = &a->items[a->n++];
        memset(m, 0, sizeof(*m));
        return m;
}

static int by_version(const void *x, const void *y) {
        const applied_migration *a = x, *b = y;

        return a->version < b->version ? -1 : a->version > b->version;
}

void history_sort_applied(applied_set *a) {
        if (a->n > 1)
                qsort(a->items, a->n, sizeof(*a->items), by_version);
}

static int load_row(const db_value *c, size_t n, void *userdata) {
        applied_set *a = userdata;
        applied_migration *m;

        m = history_add_applied(a);
        if (!m)
                return -ENOMEM;
        m->version = c[0].i;
        m->name = strdup(c[1].s ?: "");
        snprintf(m->checksum, sizeof(m->checksum), "%s", c[2].s ?: "");
        m->applied_at = strdup(c[3].s ?: "");
        m->duration_ms = c[4].i;
        return m->name && m->applied_at ? 0 : -ENOMEM;
}

int history_load(db *d, const char *table, const char *sql, db_row_fn row, applied_set *ret, db_failure *f,
                 const char *what) {
        applied_set a = {};
        bool exists;
        int r;

        r = db_table_exists(d, table, &exists, f);
        if (r == 0 && exists)
                r = db_query(d, sql, NULL, 0, row, &a, NULL, f, what);
        if (r != 0) {
                applied_set_clear(&a);
                return r;
        }
        *ret = a;
        return 0;
}

static int native_load_applied(db *d, applied_set *ret, db_failure *f) {
        return history_load(d, "migrated_schema",
                            "SELECT version, name, checksum, applied_at, duration_ms FROM migrated_schema "
                            "ORDER BY version", load_row, ret, f, "cannot read the applied migrations");
}

static int native_record_applied(db *d, const migration *m, int64_t duration_ms, db_failure *f) {
        char now[32];

        db_timestamp(now);
        return db_query(d,
                        "INSERT INTO migrated_schema (version, name, checksum, applied_at, duration_ms) "
                        "VALUES (?1, ?2, ?3, ?4, ?5)",
                        (db_value[]) { DB_INT(m->version), DB_TEXT(m->name), DB_TEXT(m->checksum), DB_TEXT(now),
                                       DB_INT(duration_ms) }, 5,
                        NULL, NULL, NULL, f, "cannot record the applied migration");
}

static int delete_version(db *d, const migration *m, int64_t *ret_changes, db_failure *f, const char *what) {
        return db_query(d, "DELETE FROM migrated_schema WHERE version = ?1", (db_value[]) { DB_INT(m->version) }, 1,
                        NULL, NULL, ret_changes, f, what);
}

static int native_remove_applied(db *d, const migration *m, db_failure *f) {
        return delete_version(d, m, NULL, f, "cannot record the reverted migration");
}

int history_is_applied(db *d, const history_format *h, int64_t version, bool *ret, db_failure *f) {
        applied_set a = {};
        int r;

        r = h->load_applied(d, &a, f);
        if (r != 0)
                return r;
        *ret = applied_set_find(&a, version) != NULL;
        applied_set_clear(&a);
        return 0;
}

int history_mark_applied_once(db *d, const history_format *h, const migration *m, db_failure *f) {
        bool already;
        int r;

        r = history_is_applied(d, h, m->version, &already, f);
        if (r != 0)
                return r;
        if (already)
                return history_refuse(f, "%s is already recorded as applied", m->up.file);
        return h->record_applied(d, m, 0, f);
}

int history_mark_rolled_back_once(db *d, const history_format *h, const migration *m, db_failure *f) {
        bool applied;
        int r;

        r = history_is_applied(d, h, m->version, &applied, f);
        if (r != 0)
                return r;
        if (!applied)
                return history_refuse(f, "%s is not applied, so it cannot be marked rolled back", m->up.file);
        return h->remove_applied(d, m, f);
}

int history_add_failed(applied_set *a, const char *name) {
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

/* Ours has no failed state: marking rolled back forgets an applied migration reverted by hand. */
static int native_mark_rolled_back(db *d, const migration *m, db_failure *f) {
        int64_t changes = 0;
        int r;

        r = delete_version(d, m, &changes, f, "cannot mark the migration rolled back");
        if (r != 0)
                return r;
        if (changes == 0)
                return history_refuse(f, "%s is not applied, so it cannot be marked rolled back", m->up.file);
        return 0;
}

static int native_repair_checksum(db *d, const migration *m, db_failure *f) {
        int64_t changes = 0;
        int r;

        r = db_query(d, "UPDATE migrated_schema SET checksum = ?2 WHERE version = ?1",
                     (db_value[]) { DB_INT(m->version), DB_TEXT(m->checksum) }, 2, NULL, NULL, &changes, f,
                     "cannot record the new checksum");
        if (r != 0)
                return r;
        if (changes == 0)
                return history_refuse(f, "%s is not applied: there is no recorded checksum to repair", m->up.file);
        return 0;
}

const history_format history_native = {
        .format = MIGDIR_NATIVE,
        .table = "migrated_schema",
        .ensure = native_ensure,
        .load_applied = native_load_applied,
        .record_applied = native_record_applied,
        .remove_applied = native_remove_applied,
        .mark_rolled_back = native_mark_rolled_back,
        .own_tables_in_database = true,
        .repair_checksum = native_repair_checksum,
};
