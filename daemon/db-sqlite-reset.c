/* SPDX-License-Identifier: MIT */
/* migratectl reset on SQLite: every table, view and trigger (their indexes go with the tables)
 * is dropped in the caller's write transaction, but migrated's own history. The connection runs with
 * foreign keys off (db-sqlite.c), so the order of the drops does not matter. */

#include <errno.h>
#include <stdlib.h>

#include "db-sqlite-internal.h"

int sqlite_reset(db *d, db_failure *f) {
        db_sqlite *s = to_sqlite(d);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        char **drops = NULL;
        size_t n = 0;
        int r = 0, rc;

        /* triggers and views first, then the tables: no object names one that is gone */
        rc = sqlite3_prepare_v2(s->conn,
                                "SELECT format('DROP %s IF EXISTS \"%w\"', upper(type), name) FROM sqlite_master "
                                "WHERE type IN ('table', 'view', 'trigger') AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' "
                                "AND name NOT IN ('migrated_attempts', 'migrated_meta') "
                                "ORDER BY CASE type WHEN 'trigger' THEN 0 WHEN 'view' THEN 1 ELSE 2 END, name",
                                -1, &st, NULL);
        while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
                char **more = realloc(drops, (n + 1) * sizeof(*drops));
                if (!more || !(more[n] = strdup((const char *) sqlite3_column_text(st, 0)))) {
                        drops = more ?: drops;
                        r = -ENOMEM;
                        break;
                }
                drops = more;
                n++;
                rc = SQLITE_OK;
        }
        if (r == 0 && rc != SQLITE_DONE)
                r = sqlite_fail(s, rc, f, "cannot list the objects to drop");
        for (size_t i = 0; r == 0 && i < n; i++)
                r = sqlite_exec_simple(s, drops[i], f, "cannot drop an object");
        for (size_t i = 0; i < n; i++)
                free(drops[i]);
        free(drops);
        return r;
}
