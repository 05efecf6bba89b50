/* SPDX-License-Identifier: MIT */
/* goose's bookkeeping (pressly/goose v3), read and written as goose does on SQLite, so that
 * "goose status" and "goose up" agree with migrated afterwards: goose_db_version with goose's own
 * DDL and its initial version-0 row; an applied migration adds a row (version_id, is_applied = 1),
 * a reverted one deletes the version's rows. A version is applied when its newest row (highest id)
 * has is_applied set, which also reads the is_applied = 0 rows older goose versions wrote on down.
 * goose records no checksum and no name. On PostgreSQL the table is goose's PostgreSQL one
 * (serial id, boolean is_applied, timestamp tstamp). */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "history.h"
#include "macro.h"

/* internal/dialects/sqlite3.go's CreateTable, byte for byte (sqlite_master keeps this text). */
static const char goose_table_sql[] =
        "CREATE TABLE goose_db_version (\n"
        "\t\tid INTEGER PRIMARY KEY AUTOINCREMENT,\n"
        "\t\tversion_id INTEGER NOT NULL,\n"
        "\t\tis_applied INTEGER NOT NULL,\n"
        "\t\ttstamp TIMESTAMP DEFAULT (datetime('now'))\n"
        "\t)";

/* internal/dialect/dialectquery/postgres.go's CreateTable. */
static const char goose_table_pg_sql[] =
        "CREATE TABLE goose_db_version (\n"
        "\t\tid serial NOT NULL,\n"
        "\t\tversion_id bigint NOT NULL,\n"
        "\t\tis_applied boolean NOT NULL,\n"
        "\t\ttstamp timestamp NULL default now(),\n"
        "\t\tPRIMARY KEY(id)\n"
        "\t)";

/* goose's InsertVersion; TRUE is 1 on SQLite and a boolean on PostgreSQL. */
static const char goose_insert_sql[] = "INSERT INTO goose_db_version (version_id, is_applied) VALUES (?1, TRUE)";

/* The table, and the version-0 row goose inserts with it (createVersionTable). */
static int goose_ensure(db *d, db_failure *f) {
        bool exists;
        int r;

        r = db_table_exists(d, "goose_db_version", &exists, f);
        if (r != 0 || exists)
                return r;
        r = db_query(d, db_dialect_postgres(d) ? goose_table_pg_sql : goose_table_sql, NULL, 0, NULL, NULL, NULL, f,
                     "cannot create goose_db_version");
        if (r != 0)
                return r;
        return db_query(d, goose_insert_sql, (db_value[]) { DB_INT(0) }, 1, NULL, NULL, NULL, f,
                        "cannot create goose_db_version");
}

typedef struct load_state {
        applied_set *a;
        int64_t *seen; /* versions whose newest row was read already */
        size_t n_seen;
} load_state;

/* goose's tstamp, "YYYY-MM-DD HH:MM:SS" in UTC (PostgreSQL adds ".ffffff"), as ISO 8601 to the second. */
static char *applied_at(const db_value *v) {
        const char *s = v->s ?: "";
        char buf[64];

        if (strlen(s) >= 19 && s[10] == ' ') {
                snprintf(buf, sizeof(buf), "%.10sT%.8sZ", s, s + 11);
                return strdup(buf);
        }
        return strdup(s);
}

/* Rows newest first (version_id, is_applied, tstamp): the first row of a version decides. */
static int load_row(const db_value *c, size_t n, void *userdata) {
        load_state *st = userdata;
        applied_set *a = st->a;
        int64_t version = c[0].i, *seen;
        applied_migration *m;

        for (size_t i = 0; i < st->n_seen; i++)
                if (st->seen[i] == version)
                        return 0;
        seen = realloc(st->seen, (st->n_seen + 1) * sizeof(int64_t));
        if (!seen)
                return -ENOMEM;
        st->seen = seen;
        st->seen[st->n_seen++] = version;
        if (version == 0 || c[1].i == 0)
                return 0; /* the table's own row; a version reverted by an older goose */
        m = history_add_applied(a);
        if (!m)
                return -ENOMEM;
        m->version = version;
        m->name = strdup("");
        m->applied_at = applied_at(&c[2]);
        return m->name && m->applied_at ? 0 : -ENOMEM;
}

static int goose_load_applied(db *d, applied_set *ret, db_failure *f) {
        applied_set a = {};
        load_state st = { .a = &a };
        bool exists;
        int r;

        r = db_table_exists(d, "goose_db_version", &exists, f);
        if (r == 0 && exists)
                r = db_query(d, "SELECT version_id, is_applied, tstamp FROM goose_db_version ORDER BY id DESC", NULL, 0,
                             load_row, &st, NULL, f, "cannot read goose_db_version");
        free(st.seen);
        if (r != 0) {
                applied_set_clear(&a);
                return r;
        }
        history_sort_applied(&a);
        *ret = a;
        return 0;
}

/* goose's InsertVersion after a migration's up: tstamp is the column's default. */
static int goose_record_applied(db *d, const migration *m, int64_t duration_ms, db_failure *f) {
        return db_query(d, goose_insert_sql, (db_value[]) { DB_INT(m->version) }, 1, NULL, NULL, NULL, f,
                        "cannot record the applied migration");
}

/* goose's DeleteVersion after a down: every row of the version goes. */
static int delete_version(db *d, const migration *m, int64_t *ret_changes, db_failure *f, const char *what) {
        return db_query(d, "DELETE FROM goose_db_version WHERE version_id=?1", (db_value[]) { DB_INT(m->version) }, 1,
                        NULL, NULL, ret_changes, f, what);
}

static int goose_remove_applied(db *d, const migration *m, db_failure *f) {
        return delete_version(d, m, NULL, f, "cannot record the reverted migration");
}

const history_format history_goose = {
        .format = MIGDIR_GOOSE,
        .table = "goose_db_version",
        .ensure = goose_ensure,
        .load_applied = goose_load_applied,
        .record_applied = goose_record_applied,
        .remove_applied = goose_remove_applied,
};
