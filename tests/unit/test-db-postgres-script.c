/* SPDX-License-Identifier: MIT */
/* How the PostgreSQL backend splits a migration into statements (db-postgres-script.c): where
 * psql would end a statement, and nowhere else. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "db-postgres-internal.h"

/* The statements of sql, each without surrounding blanks, joined by "|". */
static void split(const char *sql, char *out, size_t size) {
        const char *s = sql, *end = sql + strlen(sql);

        out[0] = '\0';
        while (s < end) {
                const char *start = pg_skip_blank(s, end), *stop;

                if (start >= end)
                        break;
                stop = pg_statement_end(start, end);
                if (out[0])
                        strncat(out, "|", size - strlen(out) - 1);
                strncat(out, start, (size_t) (stop - start) < size - strlen(out) - 1 ? (size_t) (stop - start)
                                                                                      : size - strlen(out) - 1);
                s = stop;
        }
}

static void test_split(void **state) {
        static const struct {
                const char *sql, *want;
        } cases[] = {
                { "SELECT 1; SELECT 2;", "SELECT 1;|SELECT 2;" },
                { "SELECT 'a;b'; SELECT \"x;y\" FROM t;", "SELECT 'a;b';|SELECT \"x;y\" FROM t;" },
                { "SELECT 'it''s; ok';", "SELECT 'it''s; ok';" },
                { "SELECT E'a\\';b';", "SELECT E'a\\';b';" },
                { "-- a; comment\nSELECT 1;", "SELECT 1;" },
                { "/* a; /* nested; */ still; */ SELECT 1;", "SELECT 1;" },
                { "CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql;",
                  "CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql;" },
                { "DO $body$ BEGIN PERFORM 1; END $body$; SELECT 2;", "DO $body$ BEGIN PERFORM 1; END $body$;|SELECT 2;" },
                { "PREPARE p AS SELECT $1; EXECUTE p(1);", "PREPARE p AS SELECT $1;|EXECUTE p(1);" },
                { "CREATE FUNCTION k(i int) RETURNS text LANGUAGE sql BEGIN ATOMIC SELECT CASE WHEN i > 0 THEN 'a' "
                  "ELSE 'b' END; SELECT 'c'; END; SELECT 3;",
                  "CREATE FUNCTION k(i int) RETURNS text LANGUAGE sql BEGIN ATOMIC SELECT CASE WHEN i > 0 THEN 'a' "
                  "ELSE 'b' END; SELECT 'c'; END;|SELECT 3;" },
                /* CASE outside a routine body does not hold the statement open */
                { "SELECT CASE WHEN true THEN 1 END; SELECT 2;", "SELECT CASE WHEN true THEN 1 END;|SELECT 2;" },
                { "SELECT 1", "SELECT 1" },
                { "SELECT 1; -- trailing\n", "SELECT 1;" },
        };
        char out[512];

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                split(cases[i].sql, out, sizeof(out));
                if (strcmp(out, cases[i].want) != 0)
                        fail_msg("%s\n  split as: %s\n  expected: %s", cases[i].sql, out, cases[i].want);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_split),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
