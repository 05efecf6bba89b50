/* SPDX-License-Identifier: MIT */
/* A PostgreSQL database's identity: the state directory and the daemon's memory of jobs are
 * keyed by the server (its system identifier) and the database (its oid), not by how the
 * connection string spells them. */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db-postgres-internal.h"
#include "db-postgres.h"

int db_postgres_identify(const char *target, const char *password_file, char **ret_key, char **ret_display,
                         char **ret_error) {
        db_options o = { .backend = "postgresql", .target = target, .password_file = password_file,
                         .read_only = true };
        _cleanup_pgresult_ PGresult *res = NULL;
        db_failure f = {};
        db *d = NULL;
        int r;

        *ret_error = NULL;
        *ret_display = pg_conninfo_split(target, NULL);
        r = db_postgres_backend.open(&o, &d, &f);
        if (r != 0) {
                *ret_error = TAKE_PTR(f.message);
                db_failure_clear(&f);
                return r < 0 ? r : -EIO;
        }
        res = PQexec(to_pg(d)->conn, "SELECT (SELECT system_identifier FROM pg_catalog.pg_control_system()), "
                                     "(SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())");
        if (!pg_result_ok(res) || PQntuples(res) != 1) {
                *ret_error = strdup(PQresultErrorMessage(res) ?: "cannot read the server's identity");
                db_postgres_backend.close(d);
                return -EIO;
        }
        r = asprintf(ret_key, "pg-%s-%s", PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1)) < 0 ? -ENOMEM : 0;
        db_postgres_backend.close(d);
        return r;
}
