/* SPDX-License-Identifier: MIT */
/* Unit tests for daemon/sql-wrapper.c: which scripts are wrapped whole in their own
 * BEGIN; … COMMIT;, with statement boundaries from SQLite's tokenizer (trigger bodies, strings
 * and comments holding ';' or the keywords do not count). */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "macro.h"
#include "sql-wrapper.h"

static int find(const char *sql, const char **ret_body, size_t *ret_len) {
        size_t b = 0, e = 0;
        int r = sql_find_wrapper(sql, strlen(sql), &b, &e);

        if (r > 0) {
                assert_true(b <= e);
                *ret_body = sql + b;
                *ret_len = e - b;
        }
        return r;
}

static void test_wrapped(void **state) {
        static const struct {
                const char *sql, *body;
        } cases[] = {
                { "BEGIN;\nCREATE TABLE a (x);\nCOMMIT;\n", "\nCREATE TABLE a (x);" },
                { "-- header\nbegin transaction;\nCREATE TABLE a (x);\nend transaction; -- done\n",
                  "\nCREATE TABLE a (x);" },
                { "BEGIN IMMEDIATE TRANSACTION;CREATE TABLE a (x);COMMIT TRANSACTION;", "CREATE TABLE a (x);" },
                { "BEGIN EXCLUSIVE;\n/* ; BEGIN; */ INSERT INTO a VALUES ('COMMIT;');\nCOMMIT;",
                  "\n/* ; BEGIN; */ INSERT INTO a VALUES ('COMMIT;');" },
                /* a trigger's BEGIN … END; inside is one statement */
                { "BEGIN;\nCREATE TRIGGER t AFTER INSERT ON a BEGIN\n  UPDATE a SET x = 1;\nEND;\nCOMMIT;\n",
                  "\nCREATE TRIGGER t AFTER INSERT ON a BEGIN\n  UPDATE a SET x = 1;\nEND;" },
                { "BEGIN;\nCOMMIT;\n", "" },
                /* ';' in a trailing comment, in doubled quotes, in quoted identifiers */
                { "BEGIN;\nSELECT 1;\nCOMMIT; -- done; really\n", "\nSELECT 1;" },
                { "BEGIN;\nINSERT INTO \"a;b\" VALUES ('x'';COMMIT;y', [c;d], `e;f`);\nEND;",
                  "\nINSERT INTO \"a;b\" VALUES ('x'';COMMIT;y', [c;d], `e;f`);" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                const char *body = NULL;
                size_t len = 0;

                assert_int_equal(find(cases[i].sql, &body, &len), 1);
                assert_int_equal(len, strlen(cases[i].body));
                assert_memory_equal(body, cases[i].body, len);
        }
}

static void test_not_wrapped(void **state) {
        static const char *const cases[] = {
                "CREATE TABLE a (x);\n",
                "BEGIN;\nCREATE TABLE a (x);\n",                      /* no COMMIT */
                "CREATE TABLE a (x);\nCOMMIT;\n",                     /* no BEGIN */
                "BEGIN;\nCREATE TABLE a (x);\nCOMMIT;\nSELECT 1;\n", /* a statement after COMMIT */
                "BEGIN;\nCREATE TABLE a (x);\nROLLBACK;\n",
                "BEGIN;\nCREATE TABLE a (x);\nCOMMIT\n",              /* no ';': not a statement we may drop */
                /* a trigger ending the file: its END is not a COMMIT */
                "BEGIN;\nCREATE TRIGGER t AFTER INSERT ON a BEGIN\n  UPDATE a SET x = 1;\nEND;\n",
                "CREATE TRIGGER t AFTER INSERT ON a BEGIN UPDATE a SET x = 1; END;\n",
                "BEGINNING;\nSELECT 1;\nCOMMIT;\n",
                "BEGIN;\nSELECT 'unterminated;\nCOMMIT;\n",
                "BEGIN;\nSELECT 1; /* COMMIT; */\n",
                "",
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                const char *body = NULL;
                size_t len = 0;

                assert_int_equal(find(cases[i], &body, &len), 0);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_wrapped),
                cmocka_unit_test(test_not_wrapped),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
