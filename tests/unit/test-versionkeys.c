/* SPDX-License-Identifier: MIT */
/* Protocol version 2's versions (daemon/versionkeys.c): params in, replies out, for an integer
 * format and for Flyway's dotted versions. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "versionkeys.h"

static int64_t flyway(const char *key) {
        int64_t v = 0;

        assert_int_equal(migration_format_flyway.version_of_key(key, &v), 0);
        return v;
}

static void test_params(void **state) {
        json_t *p = json_pack("{s:s,s:I}", "to", "1_2_10", "steps", (json_int_t) 2);
        char *msg = NULL;

        assert_int_equal(versionkeys_params(&migration_format_flyway, p, &msg), 0);
        assert_int_equal(json_integer_value(json_object_get(p, "to")), flyway("1.2.10"));
        assert_int_equal(json_integer_value(json_object_get(p, "steps")), 2); /* not a version */
        json_decref(p);

        p = json_pack("{s:n}", "to");
        assert_int_equal(versionkeys_params(&migration_format_native, p, &msg), 0);
        assert_int_equal(json_integer_value(json_object_get(p, "to")), 0); /* null: the empty schema */
        json_decref(p);

        p = json_pack("{s:s}", "version", "0007");
        assert_int_equal(versionkeys_params(&migration_format_native, p, &msg), 0);
        assert_int_equal(json_integer_value(json_object_get(p, "version")), 7);
        json_decref(p);

        for (int i = 0; i < 3; i++) {
                p = i == 0 ? json_pack("{s:i}", "to", 3) : json_pack("{s:s}", "to", i == 1 ? "1.x" : "1.2");
                assert_int_equal(versionkeys_params(i == 2 ? &migration_format_native : &migration_format_flyway, p,
                                                    &msg), -EINVAL);
                assert_non_null(msg);
                free(msg);
                msg = NULL;
                json_decref(p);
        }
}

static void test_reply(void **state) {
        json_t *shared = json_pack("{s:I,s:I,s:[{s:I,s:s}],s:{s:I,s:n},s:[I,I],s:s,s:I}", "from_version", (json_int_t) 0,
                                   "to_version", (json_int_t) flyway("1.2.10"), "applied", "version",
                                   (json_int_t) flyway("1.1"), "name", "add email", "gate", "target",
                                   (json_int_t) flyway("2"), "hold", "versions", (json_int_t) flyway("1"),
                                   (json_int_t) flyway("1.2.9"), "version", "0.1.0", "job_id", (json_int_t) 7);
        json_t *out;

        /* a job's result is shared by every request that joined it */
        out = versionkeys_reply(&migration_format_flyway, json_incref(shared));
        assert_non_null(out);
        assert_true(json_is_null(json_object_get(out, "from_version")));
        assert_string_equal(json_string_value(json_object_get(out, "to_version")), "1.2.10");
        assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(out, "applied"), 0),
                                                              "version")), "1.1");
        assert_string_equal(json_string_value(json_object_get(json_object_get(out, "gate"), "target")), "2");
        assert_string_equal(json_string_value(json_array_get(json_object_get(out, "versions"), 1)), "1.2.9");
        assert_string_equal(json_string_value(json_object_get(out, "version")), "0.1.0"); /* a string stays */
        assert_int_equal(json_integer_value(json_object_get(out, "job_id")), 7);
        /* the version-1 subscriber's copy is untouched */
        assert_int_equal(json_integer_value(json_object_get(shared, "to_version")), flyway("1.2.10"));
        json_decref(out);

        out = versionkeys_reply(&migration_format_native, shared);
        assert_string_equal(json_string_value(json_object_get(out, "to_version")), "102010");
        json_decref(out);
        assert_null(versionkeys_reply(&migration_format_native, NULL));
        assert_false(versionkeys_v1_refused(&migration_format_native));
        assert_true(versionkeys_v1_refused(&migration_format_flyway));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_params),
                cmocka_unit_test(test_reply),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
