/* SPDX-License-Identifier: MIT */
/* Restoring a pg_dump archive in one transaction on migrated's own connection (under its lock):
 * pg_restore only turns the archive into SQL, which this file runs, so that the database is
 * never half restored and migrated's attempt history survives the restore. */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "db-postgres-internal.h"
#include "history.h"

/* migrated's own tables, which keep the live history (and the live hosts) rather than the
 * archive's */
static bool is_own_entry(const char *line, size_t n) {
        return memmem(line, n, " migrated_attempts", 18) || memmem(line, n, " migrated_meta", 14) ||
               memmem(line, n, " migrated_hosts", 15);
}

/* What a client program writes to stdout, in memory; NULL with *ret_problem when it fails. */
static char *tool_output(char *const argv[], size_t *ret_size, char **ret_problem) {
        _cleanup_close_ int fd = memfd_create("pg_restore", MFD_CLOEXEC);
        struct stat st;
        int status = 0, r;
        char *buf;

        if (fd < 0)
                return NULL;
        r = pg_run_tool(argv, fd, NULL, &status);
        if (r < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                if (asprintf(ret_problem, "cannot be read by pg_restore (%s)",
                             r < 0 ? strerror(-r) : "see the journal for its messages") < 0)
                        *ret_problem = NULL;
                return NULL;
        }
        if (fstat(fd, &st) < 0 || !(buf = malloc((size_t) st.st_size + 1)))
                return NULL;
        if (pread(fd, buf, (size_t) st.st_size, 0) != st.st_size) {
                free(buf);
                return NULL;
        }
        buf[st.st_size] = '\0';
        *ret_size = (size_t) st.st_size;
        return buf;
}

/* The archive's version: the highest in its migrated_schema data (0 when it has none); -1 when
 * the archive has no migrated_schema (a foreign format's, whose version the tool's own table holds
 * by its rules: the version the backup's name records stands). */
int pg_inspect_backup(const char *path, bool full_check, int64_t *ret_version, char **ret_problem) {
        char *argv[] = { (char *) "pg_restore", (char *) "--data-only", (char *) "--table=migrated_schema",
                         (char *) "--file=-", (char *) path, NULL };
        _cleanup_free_ char *out = NULL;
        bool copying = false, found = false;
        size_t size = 0;

        *ret_version = 0;
        out = tool_output(argv, &size, ret_problem);
        if (!out)
                return -EIO;
        for (char *line = out, *nl; line && *line; line = nl ? nl + 1 : NULL) {
                nl = strchr(line, '\n');
                if (copying && strncmp(line, "\\.", 2) == 0)
                        copying = false;
                else if (copying) {
                        int64_t v = strtoll(line, NULL, 10);
                        if (v > *ret_version)
                                *ret_version = v;
                } else if (strncmp(line, "COPY ", 5) == 0 && strstr(line, "migrated_schema"))
                        copying = found = true;
        }
        if (!found)
                *ret_version = -1;
        return 0;
}

/* Runs a script as pg_restore writes it: statements, COPY … FROM stdin followed by its rows up to
 * "\.", and psql's meta-commands (\restrict), which are skipped. */
static int run_restore_script(db_pg *p, const char *sql, size_t size, db_failure *f) {
        const char *s = sql, *end = sql + size;

        while (s < end) {
                _cleanup_free_ char *text = NULL;
                _cleanup_pgresult_ PGresult *res = NULL;
                const char *start = pg_skip_blank(s, end), *stop;

                if (start >= end)
                        break;
                if (*start == '\\') {
                        const char *nl = memchr(start, '\n', (size_t) (end - start));
                        s = nl ? nl + 1 : end;
                        continue;
                }
                stop = pg_statement_end(start, end);
                text = strndup(start, (size_t) (stop - start));
                if (!text)
                        return -ENOMEM;
                res = PQexec(p->conn, text);
                s = stop;
                if (PQresultStatus(res) == PGRES_COPY_IN) {
                        const char *data = memchr(s, '\n', (size_t) (end - s)), *last;
                        data = data ? data + 1 : end;
                        last = memmem(data, (size_t) (end - data), "\n\\.\n", 4);
                        last = last ? last + 1 : data; /* the rows end before "\." (none: empty) */
                        if (strncmp(data, "\\.\n", 3) == 0)
                                last = data;
                        if (PQputCopyData(p->conn, data, (int) (last - data)) != 1 || PQputCopyEnd(p->conn, NULL) != 1)
                                return pg_fail(p, NULL, f, "restoring the backup failed; the database is unchanged");
                        PQclear(res);
                        res = PQgetResult(p->conn);
                        while (PQgetResult(p->conn)) /* drain */
                                ;
                        s = last + 3 <= end ? last + 3 : end;
                }
                if (!pg_result_ok(res))
                        return pg_fail(p, res, f, "restoring the backup failed; the database is unchanged");
        }
        return 0;
}

/* Runs each statement that list_sql lists (one text column). */
static int exec_listed(db_pg *p, const char *list_sql, db_failure *f, const char *what) {
        _cleanup_pgresult_ PGresult *res = PQexec(p->conn, list_sql);
        int r = 0;

        if (!pg_result_ok(res))
                return pg_fail(p, res, f, what);
        for (int i = 0; r == 0 && i < PQntuples(res); i++)
                r = pg_exec_simple(p, PQgetvalue(res, i, 0), f, what);
        return r;
}

/* Drops every object of the schema that is no extension's: what the archive does not hold must
 * not survive the restore either. */
static int drop_schema_objects(db_pg *p, db_failure *f) {
        static const char list_sql[] =
                "SELECT format('DROP %s IF EXISTS %I.%I CASCADE', CASE c.relkind WHEN 'v' THEN 'VIEW' "
                "WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'S' THEN 'SEQUENCE' WHEN 'f' THEN 'FOREIGN TABLE' "
                "ELSE 'TABLE' END, n.nspname, c.relname) FROM pg_catalog.pg_class c "
                "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = current_schema() "
                "AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND NOT c.relispartition "
                "AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.objid = c.oid "
                "AND d.deptype IN ('a', 'i', 'e')) "
                "UNION ALL SELECT format('DROP TYPE IF EXISTS %I.%I CASCADE', n.nspname, t.typname) "
                "FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace "
                "WHERE n.nspname = current_schema() AND (t.typtype IN ('e', 'd', 'r', 'm') OR (t.typtype = 'c' "
                "AND (SELECT relkind FROM pg_catalog.pg_class WHERE oid = t.typrelid) = 'c')) "
                "AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.objid = t.oid AND d.deptype IN ('e', 'i')) "
                "UNION ALL SELECT format('DROP ROUTINE IF EXISTS %s CASCADE', p.oid::regprocedure) "
                "FROM pg_catalog.pg_proc p WHERE p.pronamespace = current_schema()::regnamespace "
                "AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')";

        return exec_listed(p, list_sql, f, "cannot drop the objects to replace");
}

/* Moves migrated's history tables between the schema and a holding schema, quoted names given. */
static int move_own_tables(db_pg *p, const char *from, const char *to, db_failure *f) {
        static const char *const own[] = { "migrated_attempts", "migrated_meta", "migrated_hosts" };
        int r = 0;

        for (size_t i = 0; r == 0 && i < ELEMENTSOF(own); i++) {
                _cleanup_free_ char *sql = NULL;
                if (asprintf(&sql, "DO $m$ BEGIN IF to_regclass('%s.%s') IS NOT NULL THEN "
                                   "ALTER TABLE %s.%s SET SCHEMA %s; END IF; END $m$",
                             from, own[i], from, own[i], to) < 0)
                        return -ENOMEM;
                r = pg_exec_simple(p, sql, f, "cannot keep migrated's history through the restore");
        }
        return r;
}

static int unreadable_backup(db_failure *f, const char *path, const char *problem) {
        db_failure_clear(f);
        f->code = PROTOCOL_ERROR_INTEGRITY;
        if (asprintf(&f->message, "the backup %s %s; nothing was changed", path, problem ?: "cannot be read") < 0)
                return -ENOMEM;
        return DB_FAILED;
}

/* The archive's table of contents without migrated's own tables, into the file at list. */
static int write_restore_list(const char *path, const char *list, db_failure *f) {
        char *argv[] = { (char *) "pg_restore", (char *) "--list", (char *) path, NULL };
        _cleanup_free_ char *toc = NULL, *problem = NULL;
        size_t size = 0;
        FILE *out;

        toc = tool_output(argv, &size, &problem);
        if (!toc)
                return unreadable_backup(f, path, problem);
        out = fopen(list, "we");
        if (!out)
                return -errno;
        for (char *line = toc, *nl; line && *line; line = nl ? nl + 1 : NULL) {
                size_t n;
                nl = strchr(line, '\n');
                n = nl ? (size_t) (nl - line) : strlen(line);
                if (line[0] != ';' && is_own_entry(line, n))
                        continue;
                fwrite(line, 1, n, out);
                fputc('\n', out);
        }
        return fclose(out) == 0 ? 0 : -errno;
}

int pg_restore_from(db *d, const char *path, const char *scratch, const db_event *ev, db_failure *f) {
        db_pg *p = to_pg(d);
        _cleanup_free_ char *list = NULL, *script = NULL, *problem = NULL, *schema = NULL;
        size_t size = 0;
        int r;

        r = write_restore_list(path, scratch, f);
        if (r != 0)
                return r;
        if (asprintf(&list, "--use-list=%s", scratch) < 0)
                return -ENOMEM;
        char *argv[] = { (char *) "pg_restore", (char *) "--no-owner", list, (char *) "--file=-", (char *) path, NULL };
        script = tool_output(argv, &size, &problem);
        if (!script)
                return unreadable_backup(f, path, problem);
        r = db_begin(d, f);
        if (r != 0)
                return r;
        {
                _cleanup_pgresult_ PGresult *res = PQexec(p->conn, "SELECT quote_ident(current_schema())");
                if (!pg_result_ok(res) || PQntuples(res) != 1 || PQgetisnull(res, 0, 0))
                        r = pg_fail(p, res, f, "cannot find the schema to restore");
                else if (!(schema = strdup(PQgetvalue(res, 0, 0))))
                        r = -ENOMEM;
        }
        if (r == 0)
                r = pg_exec_simple(p, "CREATE SCHEMA migrated_restore_keep", f, "cannot prepare the restore");
        if (r == 0)
                r = move_own_tables(p, schema, "migrated_restore_keep", f);
        if (r == 0)
                r = drop_schema_objects(p, f);
        if (r == 0)
                r = run_restore_script(p, script, size, f);
        /* the script empties search_path for the session: back to the connection's own */
        if (r == 0)
                r = pg_restore_search_path(p, f);
        if (r == 0)
                r = move_own_tables(p, "migrated_restore_keep", schema, f);
        if (r == 0)
                r = pg_exec_simple(p, "DROP SCHEMA migrated_restore_keep", f, "cannot finish the restore");
        if (r == 0)
                r = history_ensure(d, f);
        /* ev NULL: migrated's own tables live apart (a foreign format), db_restore_from() records it there */
        if (r == 0 && ev)
                r = db_record_event(d, ev, f);
        if (r == 0)
                r = db_commit(d, f);
        else
                db_rollback(d);
        return r;
}

/* The other schemas the connecting role owns (the ones its migrations created), dropped whole. */
static int drop_own_schemas(db_pg *p, db_failure *f) {
        static const char list_sql[] =
                "SELECT format('DROP SCHEMA %I CASCADE', nspname) FROM pg_catalog.pg_namespace "
                "WHERE nspowner = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = current_user) "
                "AND nspname <> current_schema() AND nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema' "
                "AND nspname NOT IN ('migrated_reset_keep', 'migrated_restore_keep') "
                "AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.objid = oid AND d.deptype = 'e')";

        return exec_listed(p, list_sql, f, "cannot drop the schemas the role owns");
}

/* migratectl reset: every object of the schema, and every other schema the role owns, goes in the
 * caller's transaction, but migrated's history (moved aside and back, as through a restore). */
int pg_reset(db *d, db_failure *f) {
        db_pg *p = to_pg(d);
        _cleanup_free_ char *schema = NULL;
        int r = 0;

        {
                _cleanup_pgresult_ PGresult *res = PQexec(p->conn, "SELECT quote_ident(current_schema())");
                if (!pg_result_ok(res) || PQntuples(res) != 1 || PQgetisnull(res, 0, 0))
                        r = pg_fail(p, res, f, "cannot find the schema to reset");
                else if (!(schema = strdup(PQgetvalue(res, 0, 0))))
                        r = -ENOMEM;
        }
        if (r == 0)
                r = pg_exec_simple(p, "CREATE SCHEMA migrated_reset_keep", f, "cannot prepare the reset");
        if (r == 0)
                r = move_own_tables(p, schema, "migrated_reset_keep", f);
        if (r == 0)
                r = drop_schema_objects(p, f);
        if (r == 0)
                r = drop_own_schemas(p, f);
        if (r == 0)
                r = move_own_tables(p, "migrated_reset_keep", schema, f);
        if (r == 0)
                r = pg_exec_simple(p, "DROP SCHEMA migrated_reset_keep", f, "cannot finish the reset");
        return r;
}
