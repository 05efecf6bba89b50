/* SPDX-License-Identifier: MIT */
/* Flyway's bookkeeping, read and written as Flyway does on SQLite, so that "flyway info" and
 * "flyway migrate" agree with migrated afterwards: flyway_schema_history with Flyway's DDL, one
 * row per applied migration (type 'SQL', the version's display text, the description, the script's
 * file name, the CRC-32 checksum as a signed INT, execution_time in ms, success 1) at the next
 * installed_rank. A failed migration leaves no row, as Flyway's on SQLite, whose DDL is
 * transactional. A 'BASELINE' row stands for every version up to its own. A down deletes the
 * migration's 'SQL' row, as Flyway Community's users do by hand (Flyway Teams' undo instead
 * appends an 'UNDO_SQL' row, which this history reads too). On PostgreSQL the table is Flyway's
 * PostgreSQL one (timestamp installed_on, boolean success, the connection's user as installed_by). */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "history.h"
#include "macro.h"

#define FLYWAY_TABLE "flyway_schema_history"

/* Flyway's createMetaDataTable.sql for SQLite with its schema "main", statement by statement. */
static const char *const flyway_table_sql[] = {
        "CREATE TABLE \"main\".\"flyway_schema_history\" (\n"
        "    \"installed_rank\" INT NOT NULL PRIMARY KEY,\n"
        "    \"version\" VARCHAR(50),\n"
        "    \"description\" VARCHAR(200) NOT NULL,\n"
        "    \"type\" VARCHAR(20) NOT NULL,\n"
        "    \"script\" VARCHAR(1000) NOT NULL,\n"
        "    \"checksum\" INT,\n"
        "    \"installed_by\" VARCHAR(100) NOT NULL,\n"
        "    \"installed_on\" TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f','now')),\n"
        "    \"execution_time\" INT NOT NULL,\n"
        "    \"success\" BOOLEAN NOT NULL\n"
        ")",
        "CREATE INDEX \"main\".\"flyway_schema_history_s_idx\" ON \"flyway_schema_history\" (\"success\")",
};

/* Flyway's createMetaDataTable.sql for PostgreSQL, in the connection's current schema; "integer"
 * in lower case, which the backend's translation of SQLite's 64-bit INTEGER leaves at 32 bits. */
static const char *const flyway_table_pg_sql[] = {
        "CREATE TABLE \"flyway_schema_history\" (\n"
        "    \"installed_rank\" INT NOT NULL,\n"
        "    \"version\" VARCHAR(50),\n"
        "    \"description\" VARCHAR(200) NOT NULL,\n"
        "    \"type\" VARCHAR(20) NOT NULL,\n"
        "    \"script\" VARCHAR(1000) NOT NULL,\n"
        "    \"checksum\" integer,\n"
        "    \"installed_by\" VARCHAR(100) NOT NULL,\n"
        "    \"installed_on\" TIMESTAMP NOT NULL DEFAULT now(),\n"
        "    \"execution_time\" integer NOT NULL,\n"
        "    \"success\" BOOLEAN NOT NULL\n"
        ")",
        "ALTER TABLE \"flyway_schema_history\" ADD CONSTRAINT \"flyway_schema_history_pk\" PRIMARY KEY "
        "(\"installed_rank\")",
        "CREATE INDEX \"flyway_schema_history_s_idx\" ON \"flyway_schema_history\" (\"success\")",
};

static int flyway_ensure(db *d, db_failure *f) {
        bool pg = db_dialect_postgres(d), exists;
        size_t n = pg ? ELEMENTSOF(flyway_table_pg_sql) : ELEMENTSOF(flyway_table_sql);
        int r;

        r = db_table_exists(d, FLYWAY_TABLE, &exists, f);
        for (size_t i = 0; r == 0 && !exists && i < n; i++)
                r = db_query(d, pg ? flyway_table_pg_sql[i] : flyway_table_sql[i], NULL, 0, NULL, NULL, NULL, f,
                             "cannot create " FLYWAY_TABLE);
        return r;
}

/* The checksum (Flyway's INT, as decimal text), time and duration of a row. */
static void set_row(applied_migration *m, const db_value *c) {
        if (c[3].type == DB_VALUE_INT)
                snprintf(m->checksum, sizeof(m->checksum), "%" PRId32, (int32_t) c[3].i);
        else
                snprintf(m->checksum, sizeof(m->checksum), "%s", c[3].s ?: "");
        free(m->applied_at);
        m->applied_at = strdup(c[4].s ?: "");
        m->duration_ms = c[5].i;
}

static void drop_version(applied_set *a, int64_t version) {
        for (size_t i = 0; i < a->n; i++)
                if (a->items[i].version == version) {
                        free(a->items[i].name);
                        free(a->items[i].applied_at);
                        memmove(&a->items[i], &a->items[i + 1], (a->n - i - 1) * sizeof(*a->items));
                        a->n--;
                        return;
                }
}

/* The application of a repeatable migration (a row without a version): the latest per
 * description counts. */
static int add_repeatable(applied_set *a, const db_value *c) {
        const char *desc = c[1].s ?: "";
        applied_migration *m = NULL, *v;

        for (size_t i = 0; i < a->n_repeatables && !m; i++)
                if (streq(a->repeatables[i].name, desc))
                        m = &a->repeatables[i];
        if (!m) {
                v = realloc(a->repeatables, (a->n_repeatables + 1) * sizeof(*v));
                if (!v)
                        return -ENOMEM;
                a->repeatables = v;
                m = &a->repeatables[a->n_repeatables++];
                memset(m, 0, sizeof(*m));
                if (!(m->name = strdup(desc)))
                        return -ENOMEM;
        }
        set_row(m, c);
        return m->applied_at ? 0 : -ENOMEM;
}

/* Rows in installed_rank order. Columns: version, description, type, checksum, installed_on,
 * execution_time, success. A row whose version Flyway's rules cannot read is not ours to judge:
 * it is skipped. */
static int load_row(const db_value *c, size_t n, void *userdata) {
        applied_set *a = userdata;
        const char *key = c[0].s, *type = c[2].s ?: "";
        bool success = c[6].type == DB_VALUE_INT ? c[6].i != 0 : (c[6].s && streq(c[6].s, "1"));
        applied_migration *m;
        int64_t version;

        if (!key && streq(type, "SQL"))
                return success ? add_repeatable(a, c) : 0;
        if (!key || migration_flyway_version(key, strlen(key), &version, NULL, NULL) < 0)
                return 0; /* schema markers, versions Flyway's rules cannot read */
        if (streq(type, "BASELINE")) {
                if (success && version > a->baseline)
                        a->baseline = version;
                return 0;
        }
        if (streq(type, "UNDO_SQL")) {
                if (success)
                        drop_version(a, version);
                return 0;
        }
        if (!streq(type, "SQL"))
                return 0;
        if (!success)
                return history_add_failed(a, key);
        drop_version(a, version); /* the latest row of a version counts */
        m = history_add_applied(a);
        if (!m)
                return -ENOMEM;
        m->version = version;
        m->name = strdup(c[1].s ?: "");
        set_row(m, c);
        return m->name && m->applied_at ? 0 : -ENOMEM;
}

static int flyway_load_applied(db *d, applied_set *ret, db_failure *f) {
        int r;

        r = history_load(d, FLYWAY_TABLE,
                         "SELECT \"version\", \"description\", \"type\", \"checksum\", \"installed_on\", "
                         "\"execution_time\", \"success\" FROM \"" FLYWAY_TABLE "\" ORDER BY \"installed_rank\"",
                         load_row, ret, f, "cannot read " FLYWAY_TABLE);
        if (r == 0)
                history_sort_applied(ret);
        return r;
}

#define INSERT_ROW_SQL(installed_by)                                                                                \
        "INSERT INTO \"" FLYWAY_TABLE "\" (\"installed_rank\", \"version\", \"description\", \"type\", "          \
        "\"script\", \"checksum\", \"installed_by\", \"execution_time\", \"success\") "                            \
        "VALUES ((SELECT COALESCE(MAX(\"installed_rank\"), 0) + 1 FROM \"" FLYWAY_TABLE "\"), "                     \
        "?1, ?2, 'SQL', ?3, ?4, " installed_by ", ?5, TRUE)"

static int insert_row(db *d, const migration *m, int64_t duration_ms, db_failure *f, const char *what) {
        /* SQLite has no user: Flyway records an empty installed_by there, the user on PostgreSQL;
         * TRUE is 1 on SQLite */
        return db_query(d, db_dialect_postgres(d) ? INSERT_ROW_SQL("current_user") : INSERT_ROW_SQL("''"),
                        (db_value[]) { DB_TEXT(m->version_key), DB_TEXT(m->name), DB_TEXT(m->up.file),
                                       DB_INT(strtoll(m->checksum, NULL, 10)), DB_INT(duration_ms) }, 5,
                        NULL, NULL, NULL, f, what);
}

static int flyway_record_applied(db *d, const migration *m, int64_t duration_ms, db_failure *f) {
        return insert_row(d, m, duration_ms, f, "cannot record the applied migration");
}

typedef struct rank_match {
        int64_t version;
        int64_t rank; /* the newest matching row's, 0 when none */
} rank_match;

static int rank_row(const db_value *c, size_t n, void *userdata) {
        rank_match *rm = userdata;
        int64_t version;

        if (c[1].s && migration_flyway_version(c[1].s, strlen(c[1].s), &version, NULL, NULL) == 0 &&
            version == rm->version)
                rm->rank = c[0].i;
        return 0;
}

/* Deletes the newest 'SQL' row of m's version with the given success; *ret_deleted says whether
 * there was one. Versions are compared as Flyway compares them ("1.0" is "1"). */
static int delete_row(db *d, const migration *m, bool success, bool *ret_deleted, db_failure *f, const char *what) {
        rank_match rm = { .version = m->version };
        int r;

        /* TRUE and FALSE: 1 and 0 on SQLite, booleans on PostgreSQL */
        r = db_query(d,
                     success ? "SELECT \"installed_rank\", \"version\" FROM \"" FLYWAY_TABLE "\" WHERE \"type\" = 'SQL' "
                               "AND \"success\" = TRUE ORDER BY \"installed_rank\""
                             : "SELECT \"installed_rank\", \"version\" FROM \"" FLYWAY_TABLE "\" WHERE \"type\" = 'SQL' "
                               "AND \"success\" = FALSE ORDER BY \"installed_rank\"",
                     NULL, 0, rank_row, &rm, NULL, f, what);
        if (r == 0 && rm.rank > 0)
                r = db_query(d, "DELETE FROM \"" FLYWAY_TABLE "\" WHERE \"installed_rank\" = ?1",
                             (db_value[]) { DB_INT(rm.rank) }, 1, NULL, NULL, NULL, f, what);
        *ret_deleted = rm.rank > 0;
        return r;
}

static int flyway_remove_applied(db *d, const migration *m, db_failure *f) {
        bool deleted;

        return delete_row(d, m, true, &deleted, f, "cannot record the reverted migration");
}

/* A failed row goes, as "flyway repair" removes it; without one, the applied row is forgotten
 * (a migration reverted by hand). */
static int flyway_mark_rolled_back(db *d, const migration *m, db_failure *f) {
        bool deleted = false;
        int r;

        r = delete_row(d, m, false, &deleted, f, "cannot mark the migration rolled back");
        if (r == 0 && !deleted)
                r = delete_row(d, m, true, &deleted, f, "cannot mark the migration rolled back");
        if (r != 0)
                return r;
        if (!deleted)
                return history_refuse(f, "%s is not applied, so it cannot be marked rolled back", m->up.file);
        return 0;
}

const history_format history_flyway = {
        .format = MIGDIR_FLYWAY,
        .table = FLYWAY_TABLE,
        .ensure = flyway_ensure,
        .load_applied = flyway_load_applied,
        .record_applied = flyway_record_applied,
        .remove_applied = flyway_remove_applied,
        .mark_rolled_back = flyway_mark_rolled_back,
};
