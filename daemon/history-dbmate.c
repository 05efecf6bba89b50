/* SPDX-License-Identifier: MIT */
/* dbmate's bookkeeping, read and written exactly as its SQLite driver does, so that "dbmate
 * status" and "dbmate up" agree with migrated afterwards: schema_migrations holds one row per
 * applied migration, its version as the text of the file name's leading digits; applying inserts
 * the row, reverting deletes it. No checksum, time or failed state is recorded. */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "history.h"
#include "macro.h"

/* dbmate's own statement (pkg/driver/sqlite: CreateMigrationsTable), byte for byte. */
static const char dbmate_table_sql[] = "create table if not exists \"schema_migrations\" (version varchar(128) primary key)";

/* golang-migrate names its table schema_migrations too; its has a dirty column, dbmate's has
 * version and no dirty. */
static int dbmate_claims(db *d, bool *ret, db_failure *f) {
        bool version = false, dirty = false;
        int r;

        r = history_has_column(d, "schema_migrations", "version", &version, f);
        if (r == 0 && version)
                r = history_has_column(d, "schema_migrations", "dirty", &dirty, f);
        *ret = version && !dirty;
        return r;
}

/* A schema_migrations that is not dbmate's is refused rather than written into. */
static int check_claimed(db *d, bool *ret_exists, db_failure *f) {
        bool exists, claimed;
        int r;

        r = db_table_exists(d, "schema_migrations", &exists, f);
        if (r != 0)
                return r;
        *ret_exists = exists;
        if (!exists)
                return 0;
        r = dbmate_claims(d, &claimed, f);
        if (r != 0)
                return r;
        if (!claimed) {
                db_failure_clear(f);
                f->code = PROTOCOL_ERROR_DATABASE;
                f->message = strdup("the database's schema_migrations table is not dbmate's (it lacks a version "
                                    "column or has golang-migrate's dirty column); set the format that wrote it");
                return f->message ? DB_FAILED : -ENOMEM;
        }
        return 0;
}

static int dbmate_ensure(db *d, db_failure *f) {
        bool exists;
        int r;

        r = check_claimed(d, &exists, f);
        if (r != 0 || exists)
                return r;
        return db_query(d, dbmate_table_sql, NULL, 0, NULL, NULL, NULL, f, "cannot create schema_migrations");
}

/* One row: the version text. A row whose version is not all digits is no migration of ours: it
 * keeps its place as a missing file (version by its leading digits). */
static int load_row(const db_value *c, size_t n, void *userdata) {
        applied_set *a = userdata;
        const char *text = c[0].s;
        char buf[32];
        applied_migration *m;
        int64_t version;

        if (c[0].type == DB_VALUE_INT) {
                snprintf(buf, sizeof(buf), "%" PRId64, c[0].i);
                text = buf;
        }
        version = strtoll(text ?: "", NULL, 10);
        for (size_t i = 0; i < a->n; i++)
                if (a->items[i].version == version)
                        return 0; /* "01" and "1": the same number, recorded once */
        m = history_add_applied(a);
        if (!m)
                return -ENOMEM;
        m->version = version;
        m->name = strdup(text ?: "");
        m->applied_at = strdup("");
        return m->name && m->applied_at ? 0 : -ENOMEM;
}

static int dbmate_load_applied(db *d, applied_set *ret, db_failure *f) {
        applied_set a = {};
        bool exists;
        int r;

        r = check_claimed(d, &exists, f);
        if (r != 0)
                return r;
        r = history_load(d, "schema_migrations", "SELECT version FROM \"schema_migrations\" ORDER BY version ASC",
                         load_row, &a, f, "cannot read schema_migrations");
        if (r != 0)
                return r;
        history_sort_applied(&a);
        *ret = a;
        return 0;
}

/* dbmate's InsertMigration. */
static int dbmate_record_applied(db *d, const migration *m, int64_t duration_ms, db_failure *f) {
        return db_query(d, "insert into \"schema_migrations\" (version) values (?1)",
                        (db_value[]) { DB_TEXT(m->version_key) }, 1, NULL, NULL, NULL, f,
                        "cannot record the applied migration");
}

/* dbmate's DeleteMigration. */
static int dbmate_remove_applied(db *d, const migration *m, db_failure *f) {
        return db_query(d, "delete from \"schema_migrations\" where version = ?1",
                        (db_value[]) { DB_TEXT(m->version_key) }, 1, NULL, NULL, NULL, f,
                        "cannot record the reverted migration");
}

const history_format history_dbmate = {
        .format = MIGDIR_DBMATE,
        .table = "schema_migrations",
        .ensure = dbmate_ensure,
        .load_applied = dbmate_load_applied,
        .record_applied = dbmate_record_applied,
        .remove_applied = dbmate_remove_applied,
        .claims = dbmate_claims,
};
