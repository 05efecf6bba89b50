/* SPDX-License-Identifier: MIT */
/* Unit tests for daemon/drift-compare.c: the differences between two schemas as every backend
 * reports them (added, removed, changed with what changed, sorted by object), an object of a
 * table that is only on one side reported with its table alone, and the skip list. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "drift.h"
#include "macro.h"

/* live and want from the same few objects, then their differences. */
static json_t *differences(json_t *live, json_t *want) {
        json_t *out = NULL;

        assert_int_equal(drift_compare(live, want, &out), 0);
        json_decref(live);
        json_decref(want);
        return out;
}

static json_t *schema(void) {
        json_t *s = json_object();

        assert_int_equal(drift_put(s, "table posts", NULL, json_object()), 0);
        assert_int_equal(drift_put(s, "column posts.score", "posts",
                                   json_pack("{s:s,s:s}", "type", "integer", "default", "0")), 0);
        assert_int_equal(drift_put(s, "index posts_user", "posts", json_pack("{s:s}", "columns", "user_id")), 0);
        return s;
}

static void assert_difference(json_t *d, size_t i, const char *kind, const char *object, const char *detail) {
        json_t *x = json_array_get(d, i);

        assert_non_null(x);
        assert_string_equal(json_string_value(json_object_get(x, "kind")), kind);
        assert_string_equal(json_string_value(json_object_get(x, "object")), object);
        assert_string_equal(json_string_value(json_object_get(x, "detail")), detail);
}

static void test_same_schema_has_no_differences(void **state) {
        json_t *d = differences(schema(), schema());

        assert_int_equal(json_array_size(d), 0);
        json_decref(d);
}

static void test_added_removed_changed_sorted(void **state) {
        json_t *live = schema(), *want = schema(), *d;

        assert_int_equal(drift_put(live, "column posts.body", "posts", json_pack("{s:s}", "type", "text")), 0);
        assert_int_equal(json_object_del(live, "index posts_user"), 0);
        assert_int_equal(drift_put(live, "column posts.score", "posts",
                                   json_pack("{s:s,s:s}", "type", "integer", "default", "5")), 0);
        d = differences(live, want);
        assert_int_equal(json_array_size(d), 3);
        assert_difference(d, 0, "added", "column posts.body", "type text");
        assert_difference(d, 1, "changed", "column posts.score", "default 0 → 5");
        assert_difference(d, 2, "removed", "index posts_user", "columns user_id");
        json_decref(d);
}

static void test_a_table_on_one_side_is_one_difference(void **state) {
        json_t *live = schema(), *want = json_object(), *d;

        d = differences(live, want);
        assert_int_equal(json_array_size(d), 1);
        assert_difference(d, 0, "added", "table posts", "");
        json_decref(d);
}

static void test_skipped(void **state) {
        const char *const skip[] = { "migrated_schema", "schema_migrations", NULL };

        assert_true(drift_skipped(skip, "SCHEMA_MIGRATIONS"));
        assert_false(drift_skipped(skip, "schema_migrations2"));
        assert_false(drift_skipped(NULL, "users"));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_same_schema_has_no_differences),
                cmocka_unit_test(test_added_removed_changed_sorted),
                cmocka_unit_test(test_a_table_on_one_side_is_one_difference),
                cmocka_unit_test(test_skipped),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
