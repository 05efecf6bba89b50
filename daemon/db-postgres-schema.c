/* SPDX-License-Identifier: MIT */
/* The schema dump of a PostgreSQL database (migratectl schema): pg_dump --schema-only, run as the
 * backup runs it (the password in its environment only), without the lines that change from one
 * run to the next, and the format's applied versions as INSERT statements when asked. */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "db-postgres-internal.h"

/* Lines whose content differs between two dumps of one schema: the server's and pg_dump's
 * versions, and the random key of the \restrict and \unrestrict lines pg_dump writes since
 * 17.6, 16.10, 15.14 (and 14.19, 13.22). */
static bool unstable(const char *line, size_t n) {
        static const char *const prefixes[] = { "-- Dumped from database version", "-- Dumped by pg_dump version",
                                                "\\restrict ", "\\unrestrict " };

        for (size_t i = 0; i < ELEMENTSOF(prefixes); i++)
                if (n >= strlen(prefixes[i]) && strncmp(line, prefixes[i], strlen(prefixes[i])) == 0)
                        return true;
        return false;
}

/* pg_dump's output (in fd) without its unstable lines, appended to out. */
static int filter_dump(int fd, FILE *out) {
        _cleanup_free_ char *text = NULL;
        struct stat st;
        ssize_t k;

        if (fstat(fd, &st) < 0)
                return -errno;
        text = malloc((size_t) st.st_size + 1);
        if (!text)
                return -ENOMEM;
        k = pread(fd, text, (size_t) st.st_size, 0);
        if (k < 0)
                return -errno;
        text[k] = '\0';
        for (const char *p = text; *p;) {
                const char *nl = strchr(p, '\n');
                size_t n = nl ? (size_t) (nl - p + 1) : strlen(p);

                if (!unstable(p, n))
                        fwrite(p, 1, n, out);
                p += n;
        }
        return 0;
}

static int dump_failed(db_failure *f, int r, int status) {
        db_failure_clear(f);
        f->code = PROTOCOL_ERROR_DATABASE;
        if (r < 0 ? asprintf(&f->message, "the schema dump failed: cannot run pg_dump: %s", strerror(-r))
                  : asprintf(&f->message, "the schema dump failed: pg_dump %s %d (its messages are in the journal)",
                             WIFEXITED(status) ? "exited with" : "was killed by signal",
                             WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status)) < 0)
                f->message = NULL;
        return f->message ? DB_FAILED : -ENOMEM;
}

/* Runs pg_dump --schema-only into a memory file, every table of skip excluded. */
static int run_pg_dump(db_pg *p, const char *const *skip, FILE *out, db_failure *f) {
        _cleanup_free_ char *dbname = NULL, *wait = NULL;
        _cleanup_free_ char **argv = NULL;
        size_t n = 0, n_skip = 0;
        int fd, status = 0, r;

        while (skip && skip[n_skip])
                n_skip++;
        argv = calloc(n_skip * 2 + 10, sizeof(char *));
        if (!argv || asprintf(&dbname, "--dbname=%s", p->conninfo) < 0 ||
            asprintf(&wait, "--lock-wait-timeout=%ums", p->lock_timeout_ms ?: 1) < 0)
                return -ENOMEM;
        argv[n++] = (char *) "pg_dump";
        argv[n++] = (char *) "--schema-only";
        argv[n++] = (char *) "--no-owner";
        argv[n++] = (char *) "--no-privileges";
        argv[n++] = (char *) "--no-password";
        argv[n++] = wait;
        for (size_t i = 0; i < n_skip; i++) {
                argv[n++] = (char *) "--exclude-table";
                argv[n++] = (char *) skip[i];
        }
        argv[n++] = dbname;
        fd = memfd_create("pg_dump", MFD_CLOEXEC);
        if (fd < 0)
                return -errno;
        r = pg_run_tool(argv, fd, p->password, &status);
        if (r == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0)
                r = filter_dump(fd, out);
        else
                r = dump_failed(f, r, status);
        close(fd);
        return r;
}

/* The history table's rows, one INSERT a line, its columns by name, its values as literals
 * the columns' types read back (booleans, timestamps, numbers); qualified with the schema, as
 * pg_dump empties search_path. */
static int dump_history(db_pg *p, const char *table, FILE *out, db_failure *f) {
        _cleanup_pgresult_ PGresult *res = NULL;
        _cleanup_free_ char *sql = NULL;
        char *ident;
        const char *v[1] = { table };
        bool exists = false;
        int r;

        r = db_table_exists(&p->base, table, &exists, f);
        if (r != 0 || !exists)
                return r;
        ident = PQescapeIdentifier(p->conn, table, strlen(table));
        if (!ident)
                return -ENOMEM;
        r = asprintf(&sql,
                     "SELECT format('INSERT INTO %%I.%%I (%%s) VALUES (%%s);', current_schema(), $1::text, "
                     "(SELECT string_agg(quote_ident(key), ', ') FROM json_each_text(row_to_json(t))), "
                     "(SELECT string_agg(quote_nullable(value), ', ') FROM json_each_text(row_to_json(t)))) "
                     "FROM %s t ORDER BY 1",
                     ident);
        PQfreemem(ident);
        if (r < 0)
                return -ENOMEM;
        res = PQexecParams(p->conn, sql, 1, NULL, v, NULL, NULL, 0);
        if (!pg_result_ok(res))
                return pg_fail(p, res, f, "cannot read the history table");
        if (PQntuples(res) > 0)
                fputc('\n', out);
        for (int i = 0; i < PQntuples(res); i++)
                fprintf(out, "%s\n", PQgetvalue(res, i, 0));
        return 0;
}

int pg_schema_dump(db *d, const char *const *skip, const char *history, FILE *out, db_failure *f) {
        int r = run_pg_dump(to_pg(d), skip, out, f);

        return r == 0 && history ? dump_history(to_pg(d), history, out, f) : r;
}
