/* SPDX-License-Identifier: MIT */
/* golang-migrate's bookkeeping, read and written as its sqlite3 driver does
 * (database/sqlite3/sqlite3.go), so that `migrate version` and `migrate up` agree with migrated
 * afterwards: schema_migrations holds one row, the current version and whether the run that set
 * it was cut short (dirty); setting a version deletes every row and inserts the new one. Every
 * migration up to the recorded version is applied (the tool has no other record of them). On
 * PostgreSQL the table is its postgres driver's (bigint primary key, boolean dirty). */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "history.h"
#include "macro.h"
#include "migdir-golang-migrate.h"

/* The driver's ensureVersionTable(), statement by statement (database/postgres/postgres.go's
 * on PostgreSQL). */
static int gm_ensure(db *d, db_failure *f) {
        if (db_dialect_postgres(d))
                return db_query(d,
                                "CREATE TABLE IF NOT EXISTS schema_migrations (version bigint not null primary key, "
                                "dirty boolean not null)",
                                NULL, 0, NULL, NULL, NULL, f, "cannot create schema_migrations");
        int r = db_query(d, "CREATE TABLE IF NOT EXISTS schema_migrations (version uint64,dirty bool)", NULL, 0, NULL,
                         NULL, NULL, f, "cannot create schema_migrations");

        return r != 0 ? r
                      : db_query(d, "CREATE UNIQUE INDEX IF NOT EXISTS version_unique ON schema_migrations (version)",
                                 NULL, 0, NULL, NULL, NULL, f, "cannot create schema_migrations' index");
}

/* The table is golang-migrate's when it has the dirty column (dbmate's has only version). */
static int gm_claims(db *d, bool *ret, db_failure *f) {
        bool exists;
        int r;

        r = db_table_exists(d, "schema_migrations", &exists, f);
        if (r != 0)
                return r;
        *ret = false;
        if (!exists)
                return 0;
        return history_has_column(d, "schema_migrations", "dirty", ret, f);
}

static bool value_true(const db_value *v) {
        if (v->type == DB_VALUE_INT)
                return v->i != 0;
        return v->type == DB_VALUE_TEXT && (streq(v->s, "true") || streq(v->s, "t") || streq(v->s, "1"));
}

static int add_failed(applied_set *a, int64_t version) {
        char **v = realloc(a->failed, (a->n_failed + 1) * sizeof(char *));

        if (!v)
                return -ENOMEM;
        a->failed = v;
        if (asprintf(&a->failed[a->n_failed], "%" PRId64, version) < 0)
                return -ENOMEM;
        a->n_failed++;
        free(a->failed_hint);
        if (asprintf(&a->failed_hint,
                     "golang-migrate itself says \"Dirty database version %" PRId64 ". Fix and force version.\": "
                     "its recovery is \"migrate force %" PRId64 "\" once the migration's changes are complete, or "
                     "\"migrate force\" with the version before it to run it again; migratectl mark applied and "
                     "mark rolled-back do the same",
                     version, version) < 0) {
                a->failed_hint = NULL;
                return -ENOMEM;
        }
        return 0;
}

/* Version() reads the first row only (LIMIT 1), as the tool does. */
static int load_row(const db_value *c, size_t n, void *userdata) {
        applied_set *a = userdata;
        applied_migration *m;
        int r;

        if (a->n > 0 || a->n_failed > 0)
                return 0;
        if (value_true(&c[1])) {
                r = add_failed(a, c[0].i);
                if (r < 0)
                        return r;
        }
        if (c[0].type != DB_VALUE_INT || c[0].i < 0)
                return 0; /* NilVersion, written dirty when the first migration's down failed */
        a->items = calloc(1, sizeof(*m));
        if (!a->items)
                return -ENOMEM;
        m = &a->items[a->n++];
        m->version = c[0].i;
        m->name = strdup("");
        m->applied_at = strdup("");
        a->through = true;
        return m->name && m->applied_at ? 0 : -ENOMEM;
}

static int gm_load_applied(db *d, applied_set *ret, db_failure *f) {
        return history_load(d, "schema_migrations", "SELECT version, dirty FROM schema_migrations LIMIT 1", load_row,
                            ret, f, "cannot read schema_migrations");
}

/* SetVersion(): every row deleted, then the new one; NilVersion leaves the table empty. */
static int set_version(db *d, int64_t version, bool dirty, db_failure *f, const char *what) {
        int r = db_query(d, "DELETE FROM schema_migrations", NULL, 0, NULL, NULL, NULL, f, what);

        if (r != 0 || (version < 0 && !dirty))
                return r;
        /* TRUE and FALSE: 1 and 0 on SQLite, booleans on PostgreSQL */
        return db_query(d,
                        dirty ? "INSERT INTO schema_migrations (version, dirty) VALUES (?1, TRUE)"
                              : "INSERT INTO schema_migrations (version, dirty) VALUES (?1, FALSE)",
                        (db_value[]) { DB_INT(version) }, 1, NULL, NULL, NULL, f, what);
}

static int gm_record_applied(db *d, const migration *m, int64_t duration_ms, db_failure *f) {
        return set_version(d, m->version, false, f, "cannot record the applied migration");
}

/* Going down, the version becomes the previous migration's, as the tool's down does. */
static int gm_remove_applied(db *d, const migration *m, db_failure *f) {
        return set_version(d, golang_migrate_previous_version(m), false, f, "cannot record the reverted migration");
}

/* `migrate force V`: the version set, dirty cleared, whatever was recorded before. */
static int gm_mark_applied(db *d, const migration *m, db_failure *f) {
        return set_version(d, m->version, false, f, "cannot mark the migration applied");
}

/* `migrate force` with the version before m: m counts as never run. */
static int gm_mark_rolled_back(db *d, const migration *m, db_failure *f) {
        applied_set a = {};
        bool applied;
        int r;

        r = gm_load_applied(d, &a, f);
        if (r != 0)
                return r;
        applied = a.n_failed > 0 || (a.n > 0 && a.items[0].version >= m->version);
        applied_set_clear(&a);
        if (!applied)
                return history_refuse(f, "%s is not applied, so it cannot be marked rolled back", m->up.file);
        return set_version(d, golang_migrate_previous_version(m), false, f, "cannot mark the migration rolled back");
}

const history_format history_golang_migrate = {
        .format = MIGDIR_GOLANG_MIGRATE,
        .table = "schema_migrations",
        .claims = gm_claims,
        .ensure = gm_ensure,
        .load_applied = gm_load_applied,
        .record_applied = gm_record_applied,
        .remove_applied = gm_remove_applied,
        .mark_applied = gm_mark_applied,
        .mark_rolled_back = gm_mark_rolled_back,
};
