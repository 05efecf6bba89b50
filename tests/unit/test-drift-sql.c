/* SPDX-License-Identifier: MIT */
/* Unit tests for daemon/drift-sql.c: the normalized SQL text drift compares (layout, comments
 * and keyword case do not count, quoted text does), and the CHECK and partial-index WHERE
 * expressions read from CREATE statements. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "drift-sql.h"
#include "macro.h"

static void assert_normalized(const char *sql, const char *want) {
        _cleanup_free_ char *got = drift_sql_normalize(sql);

        assert_non_null(got);
        assert_string_equal(got, want);
}

static void test_normalize(void **state) {
        assert_normalized("CREATE VIEW v AS\n  SELECT a,  b -- why\n  FROM t /* c */ WHERE x = 1;\n",
                          "create view v as select a,b from t where x=1");
        assert_normalized("create view v as select a, b from t where x=1",
                          "create view v as select a,b from t where x=1");
        /* quoted text keeps its case, spaces and comment-like content */
        assert_normalized("SELECT 'A  -- B', \"Mixed Col\" FROM [T 1]", "select 'A  -- B',\"Mixed Col\" from [T 1]");
        assert_normalized("SELECT 'it''s  X'", "select 'it''s  X'");
        assert_normalized("  ;; ", "");
}

static void test_check(void **state) {
        const char *norm = "create table t(a int check(a>0),b text,constraint c check (b in('x','y)')))";
        _cleanup_free_ char *first = drift_sql_check(norm, 0), *second = drift_sql_check(norm, 1),
                            *third = drift_sql_check(norm, 2), *none = drift_sql_check("create table checks(x)", 0),
                            *quoted = drift_sql_check("create table t(a default 'check(1)')", 0);

        assert_string_equal(first, "a>0");
        assert_string_equal(second, "b in('x','y)')");
        assert_null(third);
        assert_null(none);
        assert_null(quoted);
}

static void test_where(void **state) {
        _cleanup_free_ char *w = drift_sql_where("create index i on t(a) where a>0 and b='where'"),
                            *none = drift_sql_where("create index i on t(a)"),
                            *nested = drift_sql_where("create index i on t((select 1 where 1)) where x");

        assert_string_equal(w, "a>0 and b='where'");
        assert_null(none);
        assert_string_equal(nested, "x");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_normalize),
                cmocka_unit_test(test_check),
                cmocka_unit_test(test_where),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
