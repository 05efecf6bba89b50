/* SPDX-License-Identifier: MIT */
/* Unit tests for daemon/plan.c: migration sets and applied sets built in memory, and the plans
 * (or refusals) the planner makes of them, including versions, order and transactions. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plan.h"

/* ---- fixtures ---- */

enum {
        IRREVERSIBLE = 1u << 0,  /* no down file */
        UP_NO_TX = 1u << 1,      /* -- migrated: no-transaction in the up file */
        DOWN_NO_TX = 1u << 2,    /* ... in the down file */
};

typedef struct spec {
        int64_t version;
        unsigned flags;
} spec;

static char *xstrdup(const char *s) {
        char *c = strdup(s);

        assert_non_null(c);
        return c;
}

/* A deterministic, per-version checksum: 64 hex digits. */
static void checksum_of(int64_t version, char ret[SHA256_HEX_SIZE]) {
        snprintf(ret, SHA256_HEX_SIZE, "%016" PRIx64 "%016" PRIx64 "%016" PRIx64 "%016" PRIx64,
                 (uint64_t) version * 0x9e3779b97f4a7c15u, (uint64_t) version, ~(uint64_t) version,
                 (uint64_t) version << 7);
}

static char *file_name(int64_t version, const char *suffix) {
        char *f;

        assert_true(asprintf(&f, "%04" PRId64 "_m%" PRId64 ".%s.sql", version, version, suffix) > 0);
        return f;
}

/* A migration_set as migdir_load would return it, without files; freed with migration_set_free. */
static migration_set *make_set(const spec *specs, size_t n) {
        migration_set *s = calloc(1, sizeof(*s));

        assert_non_null(s);
        s->dir = xstrdup("/var/lib/pod/migrations");
        s->items = calloc(n ? n : 1, sizeof(migration));
        assert_non_null(s->items);
        for (size_t i = 0; i < n; i++) {
                migration *m = &s->items[i];
                char name[32];

                if (i > 0)
                        assert_true(specs[i].version > specs[i - 1].version); /* fixture sanity */
                snprintf(name, sizeof(name), "m%" PRId64, specs[i].version);
                m->version = specs[i].version;
                m->name = xstrdup(name);
                m->up.file = file_name(m->version, "up");
                m->up.sql = xstrdup("SELECT 1;\n");
                m->up.size = strlen(m->up.sql);
                m->up.flags = specs[i].flags & UP_NO_TX ? MIGRATION_NO_TRANSACTION : 0;
                if (!(specs[i].flags & IRREVERSIBLE)) {
                        m->down.file = file_name(m->version, "down");
                        m->down.sql = xstrdup("SELECT 2;\n");
                        m->down.size = strlen(m->down.sql);
                        m->down.flags = specs[i].flags & DOWN_NO_TX ? MIGRATION_NO_TRANSACTION : 0;
                }
                checksum_of(m->version, m->checksum);
                s->n++;
        }
        return s;
}

/* What the database says is applied: these versions, with the checksums of make_set. */
static applied_set make_applied(const int64_t *versions, size_t n) {
        applied_set a = {};

        a.items = calloc(n ? n : 1, sizeof(applied_migration));
        assert_non_null(a.items);
        for (size_t i = 0; i < n; i++) {
                applied_migration *m = &a.items[i];
                char name[32];

                snprintf(name, sizeof(name), "m%" PRId64, versions[i]);
                m->version = versions[i];
                m->name = xstrdup(name);
                m->applied_at = xstrdup("2024-03-01T12:00:00Z");
                m->duration_ms = 3;
                checksum_of(versions[i], m->checksum);
                a.n++;
        }
        return a;
}

#define SET(...) make_set((const spec[]){ __VA_ARGS__ }, sizeof((const spec[]){ __VA_ARGS__ }) / sizeof(spec))
#define APPLIED(...) \
        make_applied((const int64_t[]){ __VA_ARGS__ }, sizeof((const int64_t[]){ __VA_ARGS__ }) / sizeof(int64_t))
#define NONE_APPLIED make_applied(NULL, 0)

/* The usual set: 1 2 3 4 5 6, where 3 is irreversible. */
static migration_set *standard_set(void) {
        return SET({ 1, 0 }, { 2, 0 }, { 3, IRREVERSIBLE }, { 4, 0 }, { 5, 0 }, { 6, 0 });
}

static plan_request up_req(int64_t to) {
        return (plan_request){ .direction = PLAN_UP, .to = to, .steps = 0 };
}

static plan_request down_req(int64_t to, int64_t steps) {
        return (plan_request){ .direction = PLAN_DOWN, .to = to, .steps = steps };
}

/* Builds a plan that must succeed and checks from/to and the versions of its steps, in order. */
static plan *expect_plan(const migration_set *set, const applied_set *applied, plan_request req, int64_t from,
                         int64_t to, const int64_t *versions, size_t n) {
        plan_error e = {};
        plan *p = NULL;
        int r;

        r = plan_build(set, applied, &req, &p, &e);
        if (r != 0)
                print_message("refused: %s\n", e.message ?: "(no message)");
        assert_int_equal(r, 0);
        assert_non_null(p);
        assert_null(e.message);
        assert_int_equal(p->direction, req.direction);
        assert_int_equal(p->from_version, from);
        assert_int_equal(p->to_version, to);
        assert_int_equal(p->n, n);
        for (size_t i = 0; i < n; i++) {
                const migration *m = migration_set_find(set, versions[i]);

                assert_non_null(m);
                assert_ptr_equal(p->steps[i].migration, m);
                assert_int_equal(p->steps[i].migration->version, versions[i]);
                /* up runs the up script, down the down script */
                assert_ptr_equal(p->steps[i].script, req.direction == PLAN_UP ? &m->up : &m->down);
                assert_non_null(p->steps[i].script->file);
                assert_int_equal(p->steps[i].transaction, !(p->steps[i].script->flags & MIGRATION_NO_TRANSACTION));
        }
        return p;
}

#define EXPECT_PLAN(set, applied, req, from, to, ...)                                                          \
        expect_plan(set, applied, req, from, to, (const int64_t[]){ __VA_ARGS__ },                              \
                    sizeof((const int64_t[]){ __VA_ARGS__ }) / sizeof(int64_t))
#define EXPECT_EMPTY_PLAN(set, applied, req, from) expect_plan(set, applied, req, from, from, NULL, 0)

/* Builds a plan that must be refused with code; *ret_error is filled for further checks and
 * must be cleared by the caller. Nothing may be planned. */
static void expect_refusal(const migration_set *set, const applied_set *applied, plan_request req,
                           protocol_error_code code, plan_error *ret_error) {
        plan *sentinel = (plan *) &sentinel, *p = sentinel;
        int r;

        memset(ret_error, 0, sizeof(*ret_error));
        r = plan_build(set, applied, &req, &p, ret_error);
        assert_int_equal(r, PLAN_REFUSED);
        assert_ptr_equal(p, sentinel); /* nothing planned, *ret untouched */
        if (ret_error->code != code)
                print_message("refused with %s: %s\n", protocol_error_code_to_string(ret_error->code),
                              ret_error->message ?: "(no message)");
        assert_int_equal(ret_error->code, code);
        assert_non_null(ret_error->message);
        assert_true(strlen(ret_error->message) > 0);

        /* the verdict does not depend on whether the caller wants the details */
        r = plan_build(set, applied, &req, &p, NULL);
        assert_int_equal(r, PLAN_REFUSED);
        assert_ptr_equal(p, sentinel);
}

static void assert_mentions(const char *message, const char *what) {
        if (!strstr(message, what))
                fail_msg("message \"%s\" does not mention %s", message, what);
}

/* ---- up ---- */

static void test_up_all_pending(void **state) {
        migration_set *s = standard_set();
        applied_set a = APPLIED(1, 2);
        plan *p = EXPECT_PLAN(s, &a, up_req(PLAN_NO_TARGET), 2, 6, 3, 4, 5, 6);

        assert_true(p->atomic);
        for (size_t i = 0; i < p->n; i++)
                assert_true(p->steps[i].transaction);
        plan_free(p);

        /* from the empty database */
        applied_set_clear(&a);
        a = NONE_APPLIED;
        p = EXPECT_PLAN(s, &a, up_req(PLAN_NO_TARGET), 0, 6, 1, 2, 3, 4, 5, 6);
        assert_true(p->atomic);
        plan_free(p);
        applied_set_clear(&a);
        migration_set_free(s);
}

static void test_up_to(void **state) {
        migration_set *s = standard_set();
        applied_set a = APPLIED(1, 2);
        plan *p;

        p = EXPECT_PLAN(s, &a, up_req(4), 2, 4, 3, 4);
        plan_free(p);
        p = EXPECT_PLAN(s, &a, up_req(3), 2, 3, 3);
        plan_free(p);
        p = EXPECT_PLAN(s, &a, up_req(6), 2, 6, 3, 4, 5, 6);
        plan_free(p);
        /* to the current version: nothing to do */
        p = EXPECT_EMPTY_PLAN(s, &a, up_req(2), 2);
        plan_free(p);
        applied_set_clear(&a);
        migration_set_free(s);
}

static void test_up_sparse_versions(void **state) {
        /* timestamps: numeric order, and --to picks exactly the versions up to the target */
        migration_set *s = SET({ 20240101000000, 0 }, { 20240215093000, 0 }, { 20240301120000, 0 },
                               { 20250101000000, 0 });
        applied_set a = APPLIED(20240101000000);
        plan *p = EXPECT_PLAN(s, &a, up_req(20240301120000), 20240101000000, 20240301120000, 20240215093000,
                              20240301120000);

        plan_free(p);
        applied_set_clear(&a);
        migration_set_free(s);
}

static void test_up_current(void **state) {
        migration_set *s = standard_set();
        applied_set a = APPLIED(1, 2, 3, 4, 5, 6);
        plan *p;

        p = EXPECT_EMPTY_PLAN(s, &a, up_req(PLAN_NO_TARGET), 6);
        assert_true(p->atomic);
        plan_free(p);
        p = EXPECT_EMPTY_PLAN(s, &a, up_req(6), 6);
        plan_free(p);
        applied_set_clear(&a);
        migration_set_free(s);

        /* nothing at all */
        s = make_set(NULL, 0);
        a = NONE_APPLIED;
        p = EXPECT_EMPTY_PLAN(s, &a, up_req(PLAN_NO_TARGET), 0);
        plan_free(p);
        p = EXPECT_EMPTY_PLAN(s, &a, up_req(0), 0);
        plan_free(p);
        applied_set_clear(&a);
        migration_set_free(s);
}

static void test_up_unknown_version(void **state) {
        migration_set *s = standard_set();
        applied_set a = APPLIED(1, 2);
        plan_error e;

        expect_refusal(s, &a, up_req(99), PROTOCOL_ERROR_UNKNOWN_VERSION, &e);
        assert_mentions(e.message, "99");
        plan_error_clear(&e);
        assert_null(e.message);
        migration_set_free(s);

        /* between two existing versions */
        s = SET({ 1, 0 }, { 2, 0 }, { 4, 0 });
        expect_refusal(s, &a, up_req(3), PROTOCOL_ERROR_UNKNOWN_VERSION, &e);
        assert_mentions(e.message, "3");
        plan_error_clear(&e);
        applied_set_clear(&a);
        migration_set_free(s);
}

static void test_up_to_older_than_current(void **state) {
        migration_set *s = standard_set();
        applied_set a = APPLIED(1, 2, 3, 4);
        plan_error e;

        /* refused, pointing at down; the plan must not silently be empty */
        expect_refusal(s, &a, up_req(2), PROTOCOL_ERROR_UNKNOWN_VERSION, &e);
        assert_mentions(e.message, "down");
        plan_error_clear(&e);
        expect_refusal(s, &a, up_req(0), PROTOCOL_ERROR_UNKNOWN_VERSION, &e);
        plan_error_clear(&e);
        applied_set_clear(&a);
        migration_set_free(s);
}

static void test_up_out_of_order(void **state) {
        /* 2 appeared after 3 was applied (a merge of two branches) */
        migration_set *s = SET({ 1, 0 }, { 2, 0 }, { 3, 0 }, { 4, 0 });
        applied_set a = APPLIED(1, 3);
        plan_error e;

        expect_refusal(s, &a, up_req(PLAN_NO_TARGET), PROTOCOL_ERROR_OUT_OF_ORDER, &e);
        assert_int_equal(e.version, 2);
        assert_string_equal(e.file, "0002_m2.up.sql");
        assert_mentions(e.message, "0002_m2.up.sql");
        plan_error_clear(&e);
        expect_refusal(s, &a, up_req(4), PROTOCOL_ERROR_OUT_OF_ORDER, &e);
        assert_int_equal(e.version, 2);
        plan_error_clear(&e);
        applied_set_clear(&a);
        migration_set_free(s);
}

static void test_up_steps_refused(void **state) {
        migration_set *s = standard_set();
        applied_set a = APPLIED(1);
        plan_error e;
        plan_request req = up_req(PLAN_NO_TARGET);

        req.steps = 2;
        expect_refusal(s, &a, req, PROTOCOL_ERROR_INVALID_PARAMS, &e);
        plan_error_clear(&e);
        applied_set_clear(&a);
        migration_set_free(s);
}

static void test_up_no_transaction(void **state) {
        migration_set *s = SET({ 1, 0 }, { 2, 0 }, { 3, UP_NO_TX }, { 4, 0 }, { 5, 0 });
        applied_set a = APPLIED(1);
        plan *p;

        p = EXPECT_PLAN(s, &a, up_req(PLAN_NO_TARGET), 1, 5, 2, 3, 4, 5);
        assert_false(p->atomic);
        assert_true(p->steps[0].transaction);
        assert_false(p->steps[1].transaction);
        assert_true(p->steps[2].transaction);
        assert_true(p->steps[3].transaction);
        plan_free(p);

        /* a plan that stops before it stays atomic */
        p = EXPECT_PLAN(s, &a, up_req(2), 1, 2, 2);
        assert_true(p->atomic);
        plan_free(p);
        applied_set_clear(&a);

        /* and one that starts after it too */
        a = APPLIED(1, 2, 3);
        p = EXPECT_PLAN(s, &a, up_req(PLAN_NO_TARGET), 3, 5, 4, 5);
        assert_true(p->atomic);
        plan_free(p);
        applied_set_clear(&a);
        migration_set_free(s);
}

/* ---- down ---- */

static void test_down_default_one_step(void **state) {
        migration_set *s = standard_set();
        applied_set a = APPLIED(1, 2, 3, 4, 5, 6);
        plan *p;

        p = EXPECT_PLAN(s, &a, down_req(PLAN_NO_TARGET, 0), 6, 5, 6);
        assert_true(p->atomic);
        assert_true(p->steps[0].transaction);
        plan_free(p);
        p = EXPECT_PLAN(s, &a, down_req(PLAN_NO_TARGET, 1), 6, 5, 6);
        plan_free(p);
        applied_set_clear(&a);

        /* down to nothing */
        a = APPLIED(1);
        p = EXPECT_PLAN(s, &a, down_req(PLAN_NO_TARGET, 0), 1, 0, 1);
        plan_free(p);
        applied_set_clear(&a);
        migration_set_free(s);
}

static void test_down_steps(void **state) {
        migration_set *s = standard_set();
        applied_set a = APPLIED(1, 2, 3, 4, 5, 6);
        plan *p;

        /* descending */
        p = EXPECT_PLAN(s, &a, down_req(PLAN_NO_TARGET, 2), 6, 4, 6, 5);
        plan_free(p);
        p = EXPECT_PLAN(s, &a, down_req(PLAN_NO_TARGET, 3), 6, 3, 6, 5, 4);
        plan_free(p);
        applied_set_clear(&a);

        /* every applied one, to 0 */
        a = APPLIED(1, 2);
        p = EXPECT_PLAN(s, &a, down_req(PLAN_NO_TARGET, 2), 2, 0, 2, 1);
        plan_free(p);
        applied_set_clear(&a);
        migration_set_free(s);
}

static void test_down_steps_too_many(void **state) {
        migration_set *s = standard_set();
        applied_set a = APPLIED(1, 2);
        plan_error e;

        expect_refusal(s, &a, down_req(PLAN_NO_TARGET, 3), PROTOCOL_ERROR_STATE_CONFLICT, &e);
        plan_error_clear(&e);
        expect_refusal(s, &a, down_req(PLAN_NO_TARGET, INT64_MAX), PROTOCOL_ERROR_STATE_CONFLICT, &e);
        plan_error_clear(&e);
        expect_refusal(s, &a, down_req(PLAN_NO_TARGET, -1), PROTOCOL_ERROR_INVALID_PARAMS, &e);
        plan_error_clear(&e);
        applied_set_clear(&a);
        migration_set_free(s);
}

static void test_down_to(void **state) {
        migration_set *s = standard_set();
        applied_set a = APPLIED(1, 2, 3, 4, 5, 6);
        plan *p;

        p = EXPECT_PLAN(s, &a, down_req(4, 0), 6, 4, 6, 5);
        plan_free(p);
        /* down to 3 reverts 6 5 4, stopping at the irreversible 3 without crossing it */
        p = EXPECT_PLAN(s, &a, down_req(3, 0), 6, 3, 6, 5, 4);
        plan_free(p);
        p = EXPECT_PLAN(s, &a, down_req(5, 0), 6, 5, 6);
        plan_free(p);
        /* to the current version: nothing to do */
        p = EXPECT_EMPTY_PLAN(s, &a, down_req(6, 0), 6);
        plan_free(p);
        applied_set_clear(&a);
        migration_set_free(s);
}

static void test_down_to_zero(void **state) {
        migration_set *s = SET({ 1, 0 }, { 2, 0 }, { 5, 0 }, { 7, 0 });
        applied_set a = APPLIED(1, 2, 5);
        plan *p;

        p = EXPECT_PLAN(s, &a, down_req(0, 0), 5, 0, 5, 2, 1);
        assert_true(p->atomic);
        plan_free(p);
        applied_set_clear(&a);
        migration_set_free(s);
}

static void test_down_to_unknown(void **state) {
        migration_set *s = SET({ 1, 0 }, { 2, 0 }, { 3, 0 }, { 4, 0 }, { 6, 0 });
        applied_set a = APPLIED(1, 2, 4, 6); /* 3 is in the directory but not applied */
        plan_error e;

        expect_refusal(s, &a, down_req(3, 0), PROTOCOL_ERROR_UNKNOWN_VERSION, &e);
        assert_mentions(e.message, "3");
        plan_error_clear(&e);
        /* in no list at all */
        expect_refusal(s, &a, down_req(5, 0), PROTOCOL_ERROR_UNKNOWN_VERSION, &e);
        plan_error_clear(&e);
        /* newer than the current version */
        expect_refusal(s, &a, down_req(99, 0), PROTOCOL_ERROR_UNKNOWN_VERSION, &e);
        assert_mentions(e.message, "99");
        plan_error_clear(&e);
        applied_set_clear(&a);
        migration_set_free(s);
}

static void test_down_irreversible(void **state) {
        migration_set *s = standard_set();
        applied_set a = APPLIED(1, 2, 3, 4, 5, 6);
        plan_error e;

        expect_refusal(s, &a, down_req(2, 0), PROTOCOL_ERROR_IRREVERSIBLE, &e);
        assert_int_equal(e.version, 3);
        assert_string_equal(e.file, "0003_m3.up.sql");
        assert_mentions(e.message, "0003_m3.up.sql");
        plan_error_clear(&e);

        expect_refusal(s, &a, down_req(0, 0), PROTOCOL_ERROR_IRREVERSIBLE, &e);
        assert_int_equal(e.version, 3);
        plan_error_clear(&e);

        expect_refusal(s, &a, down_req(PLAN_NO_TARGET, 4), PROTOCOL_ERROR_IRREVERSIBLE, &e);
        assert_int_equal(e.version, 3);
        assert_string_equal(e.file, "0003_m3.up.sql");
        plan_error_clear(&e);
        applied_set_clear(&a);

        /* the irreversible one on top */
        a = APPLIED(1, 2, 3);
        expect_refusal(s, &a, down_req(PLAN_NO_TARGET, 0), PROTOCOL_ERROR_IRREVERSIBLE, &e);
        assert_int_equal(e.version, 3);
        plan_error_clear(&e);
        applied_set_clear(&a);
        migration_set_free(s);
}

static void test_down_to_and_steps(void **state) {
        migration_set *s = standard_set();
        applied_set a = APPLIED(1, 2, 3, 4, 5, 6);
        plan_error e;

        expect_refusal(s, &a, down_req(4, 2), PROTOCOL_ERROR_INVALID_PARAMS, &e);
        assert_mentions(e.message, "steps");
        plan_error_clear(&e);
        /* even when they agree */
        expect_refusal(s, &a, down_req(5, 1), PROTOCOL_ERROR_INVALID_PARAMS, &e);
        plan_error_clear(&e);
        applied_set_clear(&a);
        migration_set_free(s);
}

static void test_down_no_transaction(void **state) {
        migration_set *s = SET({ 1, 0 }, { 2, DOWN_NO_TX }, { 3, UP_NO_TX }, { 4, 0 });
        applied_set a = APPLIED(1, 2, 3, 4);
        plan *p;

        /* 3's up file is outside a transaction, but its down file is not */
        p = EXPECT_PLAN(s, &a, down_req(2, 0), 4, 2, 4, 3);
        assert_true(p->atomic);
        plan_free(p);
        p = EXPECT_PLAN(s, &a, down_req(1, 0), 4, 1, 4, 3, 2);
        assert_false(p->atomic);
        assert_true(p->steps[0].transaction);
        assert_true(p->steps[1].transaction);
        assert_false(p->steps[2].transaction);
        plan_free(p);
        applied_set_clear(&a);
        migration_set_free(s);
}

/* ---- edited and missing applied migrations ---- */

static void test_checksum_mismatch(void **state) {
        migration_set *s = standard_set();
        applied_set a = APPLIED(1, 2, 3, 4, 5);
        char recorded[SHA256_HEX_SIZE];
        plan_error e;

        /* 2's file was edited after it was applied */
        memcpy(recorded, "0000000000000000000000000000000000000000000000000000000000000bad", SHA256_HEX_SIZE);
        memcpy(a.items[1].checksum, recorded, SHA256_HEX_SIZE);

        expect_refusal(s, &a, up_req(PLAN_NO_TARGET), PROTOCOL_ERROR_CHECKSUM_MISMATCH, &e);
        assert_int_equal(e.version, 2);
        assert_string_equal(e.file, "0002_m2.up.sql");
        assert_string_equal(e.expected, recorded);
        assert_string_equal(e.actual, s->items[1].checksum);
        assert_mentions(e.message, "0002_m2.up.sql");
        plan_error_clear(&e);
        assert_null(e.file);

        /* down refuses too, although it would revert only 5 */
        expect_refusal(s, &a, down_req(PLAN_NO_TARGET, 0), PROTOCOL_ERROR_CHECKSUM_MISMATCH, &e);
        assert_int_equal(e.version, 2);
        assert_string_equal(e.file, "0002_m2.up.sql");
        assert_string_equal(e.expected, recorded);
        assert_string_equal(e.actual, s->items[1].checksum);
        plan_error_clear(&e);

        expect_refusal(s, &a, down_req(4, 0), PROTOCOL_ERROR_CHECKSUM_MISMATCH, &e);
        plan_error_clear(&e);
        applied_set_clear(&a);
        migration_set_free(s);
}

static void test_missing_migration(void **state) {
        migration_set *s = SET({ 1, 0 }, { 3, 0 }, { 4, 0 });
        applied_set a = APPLIED(1, 2, 3); /* 2's files are gone */
        plan_error e;

        expect_refusal(s, &a, up_req(PLAN_NO_TARGET), PROTOCOL_ERROR_MISSING_MIGRATION, &e);
        assert_int_equal(e.version, 2);
        assert_mentions(e.message, "2");
        plan_error_clear(&e);
        expect_refusal(s, &a, down_req(PLAN_NO_TARGET, 0), PROTOCOL_ERROR_MISSING_MIGRATION, &e);
        assert_int_equal(e.version, 2);
        plan_error_clear(&e);
        expect_refusal(s, &a, down_req(0, 0), PROTOCOL_ERROR_MISSING_MIGRATION, &e);
        assert_int_equal(e.version, 2);
        plan_error_clear(&e);
        applied_set_clear(&a);
        migration_set_free(s);
}

static void test_check_applied(void **state) {
        migration_set *s = SET({ 1, 0 }, { 3, 0 }, { 4, 0 }, { 5, 0 });
        applied_set a = APPLIED(1, 3, 4, 5);
        plan_error e = {};

        assert_int_equal(plan_check_applied(s, &a, &e), 0);
        assert_null(e.message);
        assert_int_equal(plan_check_applied(s, &a, NULL), 0);
        applied_set_clear(&a);

        /* 2 missing, 4 and 5 edited: three problems, the first (2) described */
        a = APPLIED(1, 2, 3, 4, 5);
        a.items[3].checksum[0] = a.items[3].checksum[0] == 'f' ? 'e' : 'f';
        a.items[4].checksum[63] = a.items[4].checksum[63] == '0' ? '1' : '0';
        assert_int_equal(plan_check_applied(s, &a, &e), 3);
        assert_int_equal(e.code, PROTOCOL_ERROR_MISSING_MIGRATION);
        assert_int_equal(e.version, 2);
        assert_non_null(e.message);
        plan_error_clear(&e);
        assert_int_equal(plan_check_applied(s, &a, NULL), 3);

        /* only edits: the first edited one is described with both checksums */
        applied_set_clear(&a);
        a = APPLIED(1, 3, 4, 5);
        a.items[2].checksum[5] = a.items[2].checksum[5] == 'a' ? 'b' : 'a';
        a.items[3].checksum[5] = a.items[3].checksum[5] == 'a' ? 'b' : 'a';
        assert_int_equal(plan_check_applied(s, &a, &e), 2);
        assert_int_equal(e.code, PROTOCOL_ERROR_CHECKSUM_MISMATCH);
        assert_int_equal(e.version, 4);
        assert_string_equal(e.file, "0004_m4.up.sql");
        assert_string_equal(e.expected, a.items[2].checksum);
        assert_string_equal(e.actual, s->items[2].checksum);
        plan_error_clear(&e);
        applied_set_clear(&a);

        /* pending migrations are not problems */
        a = APPLIED(1);
        assert_int_equal(plan_check_applied(s, &a, NULL), 0);
        applied_set_clear(&a);
        migration_set_free(s);
}

static void test_applied_set_helpers(void **state) {
        applied_set a = APPLIED(1, 3, 20240301120000);
        applied_set none = NONE_APPLIED;

        assert_int_equal(applied_set_current(&a), 20240301120000);
        assert_int_equal(applied_set_current(&none), 0);
        assert_int_equal(applied_set_current(NULL), 0);
        assert_ptr_equal(applied_set_find(&a, 3), &a.items[1]);
        assert_ptr_equal(applied_set_find(&a, 20240301120000), &a.items[2]);
        assert_null(applied_set_find(&a, 2));
        assert_null(applied_set_find(&none, 1));
        applied_set_clear(&a);
        assert_int_equal(a.n, 0);
        assert_null(a.items);
        applied_set_clear(&none);
}

/* ---- a set starting at version 0 (golang-migrate), a history of the newest version only ---- */

static void test_version_zero(void **state) {
        migration_set *s = SET({ 0, 0 }, { 1, 0 }, { 2, 0 });
        applied_set none = NONE_APPLIED, zero = APPLIED(0), all = APPLIED(0, 1, 2);
        plan *p;

        /* nothing applied: 0 is pending like the others */
        p = EXPECT_PLAN(s, &none, up_req(PLAN_NO_TARGET), 0, 2, 0, 1, 2);
        plan_free(p);
        p = EXPECT_PLAN(s, &none, up_req(0), 0, 0, 0);
        plan_free(p);
        /* 0 applied: it is not applied again */
        p = EXPECT_PLAN(s, &zero, up_req(PLAN_NO_TARGET), 0, 2, 1, 2);
        plan_free(p);
        p = EXPECT_EMPTY_PLAN(s, &zero, up_req(0), 0);
        plan_free(p);
        /* down --to 0 is the empty schema (protocol 1): 0 is reverted too */
        p = EXPECT_PLAN(s, &all, down_req(0, 0), 2, 0, 2, 1, 0);
        plan_free(p);
        /* stopping at 0 takes --steps */
        p = EXPECT_PLAN(s, &all, down_req(PLAN_NO_TARGET, 2), 2, 0, 2, 1);
        plan_free(p);
        applied_set_clear(&none);
        applied_set_clear(&zero);
        applied_set_clear(&all);
        migration_set_free(s);
}

static void test_fill_through(void **state) {
        migration_set *s = SET({ 0, 0 }, { 1, 0 }, { 5, 0 }, { 7, 0 });
        applied_set a = APPLIED(5), gone = APPLIED(6), plain = APPLIED(1);

        /* the recorded version and every migration before it, with the files' checksums */
        a.through = true;
        assert_int_equal(applied_set_fill_through(&a, s), 0);
        assert_int_equal(a.n, 3);
        assert_int_equal(a.items[0].version, 0);
        assert_int_equal(a.items[2].version, 5);
        assert_string_equal(a.items[1].checksum, s->items[1].checksum);
        assert_string_equal(a.items[1].name, "m1");
        assert_int_equal(plan_check_applied(s, &a, NULL), 0);
        /* a recorded version without its file stays, so that it is reported missing */
        gone.through = true;
        assert_int_equal(applied_set_fill_through(&gone, s), 0);
        assert_int_equal(gone.n, 4);
        assert_int_equal(gone.items[3].version, 6);
        assert_int_equal(plan_check_applied(s, &gone, NULL), 1);
        /* a history that records every migration is left alone */
        assert_int_equal(applied_set_fill_through(&plain, s), 0);
        assert_int_equal(plain.n, 1);
        applied_set_clear(&a);
        applied_set_clear(&gone);
        applied_set_clear(&plain);
        migration_set_free(s);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_up_all_pending),
                cmocka_unit_test(test_up_to),
                cmocka_unit_test(test_up_sparse_versions),
                cmocka_unit_test(test_up_current),
                cmocka_unit_test(test_up_unknown_version),
                cmocka_unit_test(test_up_to_older_than_current),
                cmocka_unit_test(test_up_out_of_order),
                cmocka_unit_test(test_up_steps_refused),
                cmocka_unit_test(test_up_no_transaction),
                cmocka_unit_test(test_down_default_one_step),
                cmocka_unit_test(test_down_steps),
                cmocka_unit_test(test_down_steps_too_many),
                cmocka_unit_test(test_down_to),
                cmocka_unit_test(test_down_to_zero),
                cmocka_unit_test(test_down_to_unknown),
                cmocka_unit_test(test_down_irreversible),
                cmocka_unit_test(test_down_to_and_steps),
                cmocka_unit_test(test_down_no_transaction),
                cmocka_unit_test(test_checksum_mismatch),
                cmocka_unit_test(test_missing_migration),
                cmocka_unit_test(test_check_applied),
                cmocka_unit_test(test_applied_set_helpers),
                cmocka_unit_test(test_version_zero),
                cmocka_unit_test(test_fill_through),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
