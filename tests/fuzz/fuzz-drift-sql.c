/* SPDX-License-Identifier: MIT */
/* libFuzzer target: the SQL text scanners of drift (daemon/drift-sql.c), which read CREATE
 * statements from a migration's replay and from the live database: normalization, then every
 * CHECK expression and the WHERE of the normalized text. The normalized text is normalized again
 * and must not change (normalization is idempotent). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "drift-sql.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char *sql, *norm, *again, *where;

        sql = strndup((const char *) data, size);
        if (!sql)
                return 0;
        norm = drift_sql_normalize(sql);
        if (norm) {
                for (size_t i = 0; i < 64; i++) {
                        char *check = drift_sql_check(norm, i);

                        if (!check)
                                break;
                        free(check);
                }
                where = drift_sql_where(norm);
                free(where);
                again = drift_sql_normalize(norm);
                if (again && strcmp(again, norm) != 0)
                        abort();
                free(again);
        }
        free(norm);
        free(sql);
        return 0;
}
