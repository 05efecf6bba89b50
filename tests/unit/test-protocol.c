/* SPDX-License-Identifier: MIT */
/* Unit tests for common/protocol.c: the strict request decoder (every malformed line gets its
 * error code, and the id back whenever it could be read), parameter checking, the encoders and
 * the stable error code strings. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "protocol-methods.h"
#include "protocol.h"

#define CODE(c) ((int) (c) + 1) /* what protocol_decode_request returns for code c */

/* ---- request decoding ---- */

/* Decodes size bytes of line, expecting code (CODE(x), or 0 for success). Returns the request,
 * which the caller passes to protocol_request_done. */
static protocol_request decode_n(const char *line, size_t size, int expected) {
        protocol_request req;
        char *message = NULL;
        int r;

        memset(&req, 0xaa, sizeof(req)); /* the decoder must initialize everything */
        r = protocol_decode_request(line, size, &req, &message);
        if (r != expected) {
                print_message("line %.80s%s: got %d (%s), expected %d\n", line, size > 80 ? "..." : "", r,
                              message ?: "no message", expected);
                free(message); /* no leak reports on top of the failure */
                protocol_request_done(&req);
                fail_msg("protocol_decode_request returned %d (%s), expected %d (%s)", r,
                         r > 0 ? protocol_error_code_to_string((protocol_error_code) (r - 1)) : "ok", expected,
                         expected > 0 ? protocol_error_code_to_string((protocol_error_code) (expected - 1)) : "ok");
        }
        if (r == 0) {
                assert_null(message);
                assert_non_null(req.root);
                assert_non_null(req.id);
                assert_non_null(req.method);
                assert_true(json_is_object(req.params));
        } else {
                assert_non_null(message);
                assert_true(strlen(message) > 0);
                free(message);
        }
        return req;
}

static protocol_request decode(const char *line, int expected) {
        return decode_n(line, strlen(line), expected);
}

/* A refused line whose id cannot be known: the error is answered with id null. */
static void refused_without_id(const char *line, int expected) {
        protocol_request req = decode(line, expected);

        assert_null(req.id);
        protocol_request_done(&req);
}

/* A refused line whose integer id was readable: the error is answered on it. */
static void refused_with_id(const char *line, int expected, json_int_t id) {
        protocol_request req = decode(line, expected);

        assert_non_null(req.id);
        assert_true(json_is_integer(req.id));
        assert_int_equal(json_integer_value(req.id), id);
        protocol_request_done(&req);
}

static void test_valid_int_id(void **state) {
        protocol_request req = decode("{\"id\": 7, \"method\": \"up\", \"params\": {\"to\": 5}}", 0);

        assert_true(json_is_integer(req.id));
        assert_int_equal(json_integer_value(req.id), 7);
        assert_string_equal(req.method, "up");
        assert_int_equal(json_object_size(req.params), 1);
        assert_int_equal(json_integer_value(json_object_get(req.params, "to")), 5);
        protocol_request_done(&req);
        assert_null(req.root);
        assert_null(req.id);

        /* the bounds of the integer range */
        req = decode("{\"id\":0,\"method\":\"status\"}", 0);
        assert_int_equal(json_integer_value(req.id), 0);
        protocol_request_done(&req);
        req = decode("{\"id\":9007199254740991,\"method\":\"status\"}", 0);
        assert_int_equal(json_integer_value(req.id), INT64_C(9007199254740991));
        protocol_request_done(&req);
}

static void test_valid_string_id(void **state) {
        char line[256];
        protocol_request req = decode("{\"method\":\"hello\",\"id\":\"install-1\",\"params\":{}}", 0);

        assert_true(json_is_string(req.id));
        assert_string_equal(json_string_value(req.id), "install-1");
        assert_string_equal(req.method, "hello");
        assert_int_equal(json_object_size(req.params), 0);
        protocol_request_done(&req);

        /* 1 and 64 bytes are the bounds */
        req = decode("{\"id\":\"x\",\"method\":\"hello\"}", 0);
        assert_string_equal(json_string_value(req.id), "x");
        protocol_request_done(&req);
        snprintf(line, sizeof(line), "{\"id\":\"%064d\",\"method\":\"hello\"}", 0);
        req = decode(line, 0);
        assert_int_equal(json_string_length(req.id), 64);
        protocol_request_done(&req);
}

static void test_valid_no_params(void **state) {
        protocol_request req = decode("{\"id\":1,\"method\":\"status\"}", 0);

        assert_string_equal(req.method, "status");
        /* params is always an object, empty when left out */
        assert_true(json_is_object(req.params));
        assert_int_equal(json_object_size(req.params), 0);
        protocol_request_done(&req);

        /* surrounding whitespace and a trailing CR are not garbage */
        req = decode(" \t{\"id\":1,\"method\":\"status\"}  \r", 0);
        protocol_request_done(&req);
}

static void test_not_json(void **state) {
        refused_without_id("hello", CODE(PROTOCOL_ERROR_INVALID_JSON));
        refused_without_id("", CODE(PROTOCOL_ERROR_INVALID_JSON));
        refused_without_id("{\"id\":1,\"method\":\"status\"", CODE(PROTOCOL_ERROR_INVALID_JSON));
        refused_without_id("{'id':1,'method':'status'}", CODE(PROTOCOL_ERROR_INVALID_JSON));
        refused_without_id("{\"id\":1,\"method\":\"status\",}", CODE(PROTOCOL_ERROR_INVALID_JSON));
}

/* protocol.h: invalid_json is "the line is not valid JSON", invalid_request "not an object, or a
 * missing/unknown/mistyped top-level field". A string, a number, null or an array is valid JSON of
 * the wrong shape. */
static void test_json_string(void **state) {
        refused_without_id("\"status\"", CODE(PROTOCOL_ERROR_INVALID_REQUEST));
        refused_without_id("\"{\\\"id\\\":1,\\\"method\\\":\\\"status\\\"}\"", CODE(PROTOCOL_ERROR_INVALID_REQUEST));
        refused_without_id("42", CODE(PROTOCOL_ERROR_INVALID_REQUEST));
        refused_without_id("true", CODE(PROTOCOL_ERROR_INVALID_REQUEST));
        refused_without_id("null", CODE(PROTOCOL_ERROR_INVALID_REQUEST));
        /* but a bare word is not JSON */
        refused_without_id("status", CODE(PROTOCOL_ERROR_INVALID_JSON));
}

/* Error messages may quote raw input (jansson's error text, an unknown method's name cut at 64
 * bytes): they must become valid UTF-8, or the reply could not be encoded at all. */
static void test_utf8_sanitize(void **state) {
        static const struct {
                const char *in, *out;
        } cases[] = {
                { "plain ascii", "plain ascii" },
                { "caf\xc3\xa9 ok", "caf\xc3\xa9 ok" },
                { "cut \xc3", "cut ?" },
                { "stray \x80\xbf end", "stray ?? end" },
                { "overlong \xc0\xaf", "overlong ??" },
                { "surrogate \xed\xa0\x80", "surrogate ???" },
                { "too big \xf4\x90\x80\x80", "too big ????" },
                { "emoji \xf0\x9f\x98\x80", "emoji \xf0\x9f\x98\x80" },
                { "", "" },
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                char *out = protocol_utf8_sanitize(cases[i].in);
                assert_non_null(out);
                assert_string_equal(out, cases[i].out);
                free(out);
        }
}

static void test_error_with_broken_utf8_is_encoded(void **state) {
        json_t *id = json_integer(3);
        char *line = protocol_encode_error(id, PROTOCOL_ERROR_UNKNOWN_METHOD, "unknown method \"a\xc3\"", NULL);

        assert_non_null(line);
        assert_non_null(strstr(line, "unknown method \\\"a?\\\""));
        assert_int_equal(line[strlen(line) - 1], '\n');
        free(line);
        json_decref(id);
}

static void test_json_array(void **state) {
        refused_without_id("[{\"id\":1,\"method\":\"status\"}]", CODE(PROTOCOL_ERROR_INVALID_REQUEST));
        refused_without_id("[]", CODE(PROTOCOL_ERROR_INVALID_REQUEST));
        refused_without_id("[1,2,3]", CODE(PROTOCOL_ERROR_INVALID_REQUEST));
}

static void test_trailing_garbage(void **state) {
        refused_without_id("{\"id\":1,\"method\":\"status\"} x", CODE(PROTOCOL_ERROR_INVALID_JSON));
        refused_without_id("{\"id\":1,\"method\":\"status\"}}", CODE(PROTOCOL_ERROR_INVALID_JSON));
        refused_without_id("{\"id\":1,\"method\":\"status\"} {", CODE(PROTOCOL_ERROR_INVALID_JSON));
        refused_without_id("{\"id\":1,\"method\":\"status\"} // comment", CODE(PROTOCOL_ERROR_INVALID_JSON));
}

static void test_two_objects(void **state) {
        refused_without_id("{\"id\":1,\"method\":\"status\"}{\"id\":2,\"method\":\"status\"}",
                           CODE(PROTOCOL_ERROR_INVALID_JSON));
        refused_without_id("{\"id\":1,\"method\":\"status\"} {\"id\":2,\"method\":\"up\"}",
                           CODE(PROTOCOL_ERROR_INVALID_JSON));
}

static void test_duplicate_keys(void **state) {
        refused_without_id("{\"id\":1,\"id\":2,\"method\":\"status\"}", CODE(PROTOCOL_ERROR_INVALID_JSON));
        refused_without_id("{\"id\":1,\"method\":\"status\",\"method\":\"up\"}", CODE(PROTOCOL_ERROR_INVALID_JSON));
        /* inside params too */
        refused_without_id("{\"id\":1,\"method\":\"up\",\"params\":{\"to\":1,\"to\":9}}",
                           CODE(PROTOCOL_ERROR_INVALID_JSON));
}

static void test_unknown_field(void **state) {
        refused_with_id("{\"id\":3,\"method\":\"status\",\"jsonrpc\":\"2.0\"}", CODE(PROTOCOL_ERROR_INVALID_REQUEST), 3);
        refused_with_id("{\"id\":4,\"method\":\"status\",\"params\":{},\"Params\":{}}",
                        CODE(PROTOCOL_ERROR_INVALID_REQUEST), 4);
        refused_without_id("{\"method\":\"status\",\"extra\":1}", CODE(PROTOCOL_ERROR_INVALID_REQUEST));
}

static void test_missing_id(void **state) {
        refused_without_id("{\"method\":\"status\"}", CODE(PROTOCOL_ERROR_INVALID_REQUEST));
        refused_without_id("{}", CODE(PROTOCOL_ERROR_INVALID_REQUEST));
}

static void test_bad_ids(void **state) {
        char line[256];

        refused_without_id("{\"id\":-1,\"method\":\"status\"}", CODE(PROTOCOL_ERROR_INVALID_REQUEST));
        /* 2^53 is one too many */
        refused_without_id("{\"id\":9007199254740992,\"method\":\"status\"}", CODE(PROTOCOL_ERROR_INVALID_REQUEST));
        refused_without_id("{\"id\":9223372036854775807,\"method\":\"status\"}", CODE(PROTOCOL_ERROR_INVALID_REQUEST));
        refused_without_id("{\"id\":1.5,\"method\":\"status\"}", CODE(PROTOCOL_ERROR_INVALID_REQUEST));
        refused_without_id("{\"id\":1.0,\"method\":\"status\"}", CODE(PROTOCOL_ERROR_INVALID_REQUEST));
        refused_without_id("{\"id\":1e3,\"method\":\"status\"}", CODE(PROTOCOL_ERROR_INVALID_REQUEST));
        refused_without_id("{\"id\":true,\"method\":\"status\"}", CODE(PROTOCOL_ERROR_INVALID_REQUEST));
        refused_without_id("{\"id\":null,\"method\":\"status\"}", CODE(PROTOCOL_ERROR_INVALID_REQUEST));
        refused_without_id("{\"id\":[1],\"method\":\"status\"}", CODE(PROTOCOL_ERROR_INVALID_REQUEST));
        refused_without_id("{\"id\":{},\"method\":\"status\"}", CODE(PROTOCOL_ERROR_INVALID_REQUEST));
        refused_without_id("{\"id\":\"\",\"method\":\"status\"}", CODE(PROTOCOL_ERROR_INVALID_REQUEST));
        snprintf(line, sizeof(line), "{\"id\":\"%065d\",\"method\":\"status\"}", 0);
        refused_without_id(line, CODE(PROTOCOL_ERROR_INVALID_REQUEST));
}

static void test_bad_method(void **state) {
        protocol_request req;

        refused_with_id("{\"id\":5}", CODE(PROTOCOL_ERROR_INVALID_REQUEST), 5);
        refused_with_id("{\"id\":5,\"params\":{}}", CODE(PROTOCOL_ERROR_INVALID_REQUEST), 5);
        refused_with_id("{\"id\":6,\"method\":42}", CODE(PROTOCOL_ERROR_INVALID_REQUEST), 6);
        refused_with_id("{\"id\":6,\"method\":null}", CODE(PROTOCOL_ERROR_INVALID_REQUEST), 6);
        refused_with_id("{\"id\":6,\"method\":[\"up\"]}", CODE(PROTOCOL_ERROR_INVALID_REQUEST), 6);
        refused_with_id("{\"id\":7,\"method\":\"\"}", CODE(PROTOCOL_ERROR_INVALID_REQUEST), 7);

        /* a string id is recovered too */
        req = decode("{\"id\":\"abc\",\"method\":false}", CODE(PROTOCOL_ERROR_INVALID_REQUEST));
        assert_true(json_is_string(req.id));
        assert_string_equal(json_string_value(req.id), "abc");
        protocol_request_done(&req);
}

static void test_bad_params(void **state) {
        refused_with_id("{\"id\":8,\"method\":\"up\",\"params\":[]}", CODE(PROTOCOL_ERROR_INVALID_REQUEST), 8);
        refused_with_id("{\"id\":8,\"method\":\"up\",\"params\":\"to=5\"}", CODE(PROTOCOL_ERROR_INVALID_REQUEST), 8);
        refused_with_id("{\"id\":8,\"method\":\"up\",\"params\":null}", CODE(PROTOCOL_ERROR_INVALID_REQUEST), 8);
        refused_with_id("{\"id\":8,\"method\":\"up\",\"params\":5}", CODE(PROTOCOL_ERROR_INVALID_REQUEST), 8);
}

static void test_nul_byte_in_line(void **state) {
        static const char after[] = "{\"id\":1,\"method\":\"status\"}\0";
        static const char inside[] = "{\"id\":1,\"method\":\"sta\0tus\"}";
        static const char between[] = "{\"id\":1,\0\"method\":\"status\"}";
        protocol_request req;

        /* the size includes the NUL byte: it is part of the line, not its end */
        req = decode_n(after, sizeof(after) - 1, CODE(PROTOCOL_ERROR_INVALID_JSON));
        assert_null(req.id);
        protocol_request_done(&req);
        req = decode_n(inside, sizeof(inside) - 1, CODE(PROTOCOL_ERROR_INVALID_JSON));
        protocol_request_done(&req);
        req = decode_n(between, sizeof(between) - 1, CODE(PROTOCOL_ERROR_INVALID_JSON));
        protocol_request_done(&req);
}

static void test_escaped_nul(void **state) {
        refused_without_id("{\"id\":1,\"method\":\"sta\\u0000tus\"}", CODE(PROTOCOL_ERROR_INVALID_JSON));
        refused_without_id("{\"id\":\"a\\u0000b\",\"method\":\"status\"}", CODE(PROTOCOL_ERROR_INVALID_JSON));
        refused_without_id("{\"id\":1,\"method\":\"up\",\"params\":{\"x\\u0000\":1}}",
                           CODE(PROTOCOL_ERROR_INVALID_JSON));
}

static void test_line_too_long(void **state) {
        static const char head[] = "{\"id\":9,\"method\":\"status\"";
        char *line = malloc(PROTOCOL_LINE_MAX + 2);
        protocol_request req;

        /* a valid request padded with spaces to exactly PROTOCOL_LINE_MAX bytes is accepted */
        assert_non_null(line);
        memset(line, ' ', PROTOCOL_LINE_MAX + 1);
        memcpy(line, head, strlen(head));
        line[PROTOCOL_LINE_MAX - 1] = '}';
        req = decode_n(line, PROTOCOL_LINE_MAX, 0);
        assert_int_equal(json_integer_value(req.id), 9);
        protocol_request_done(&req);

        /* one byte more is refused as too long, whatever it contains */
        line[PROTOCOL_LINE_MAX - 1] = ' ';
        line[PROTOCOL_LINE_MAX] = '}';
        req = decode_n(line, PROTOCOL_LINE_MAX + 1, CODE(PROTOCOL_ERROR_LINE_TOO_LONG));
        assert_null(req.id);
        protocol_request_done(&req);
        free(line);
}

static void test_deep_nesting(void **state) {
        enum { DEPTH = 100000 };
        static const char head[] = "{\"id\":1,\"method\":\"up\",\"params\":{\"to\":";
        char *line = malloc(sizeof(head) + DEPTH);
        protocol_request req;

        /* 100000 '[' alone: no crash, invalid_json (the line-length limit must not be what saves
         * us, so stay below it) */
        assert_non_null(line);
        memset(line, '[', DEPTH);
        req = decode_n(line, PROTOCOL_LINE_MAX, CODE(PROTOCOL_ERROR_INVALID_JSON));
        protocol_request_done(&req);
        /* and over the limit it is simply too long */
        req = decode_n(line, DEPTH, CODE(PROTOCOL_ERROR_LINE_TOO_LONG));
        protocol_request_done(&req);

        /* deep nesting inside a well-formed request */
        memcpy(line, head, strlen(head));
        memset(line + strlen(head), '[', DEPTH);
        req = decode_n(line, PROTOCOL_LINE_MAX, CODE(PROTOCOL_ERROR_INVALID_JSON));
        protocol_request_done(&req);

        /* objects too */
        for (size_t i = 0; i + 5 <= PROTOCOL_LINE_MAX; i += 5)
                memcpy(line + i, "{\"a\":", 5);
        req = decode_n(line, PROTOCOL_LINE_MAX / 5 * 5, CODE(PROTOCOL_ERROR_INVALID_JSON));
        protocol_request_done(&req);
        free(line);
}

static void test_huge_numbers(void **state) {
        char line[1024];
        int n;

        /* a 400-digit integer */
        n = snprintf(line, sizeof(line), "{\"id\":");
        memset(line + n, '9', 400);
        strcpy(line + n + 400, ",\"method\":\"status\"}");
        refused_without_id(line, CODE(PROTOCOL_ERROR_INVALID_JSON));
        line[n] = '-';
        refused_without_id(line, CODE(PROTOCOL_ERROR_INVALID_JSON));

        /* 1e400 overflows a double */
        refused_without_id("{\"id\":1e400,\"method\":\"status\"}", CODE(PROTOCOL_ERROR_INVALID_JSON));
        refused_without_id("{\"id\":1,\"method\":\"up\",\"params\":{\"to\":1e400}}", CODE(PROTOCOL_ERROR_INVALID_JSON));
        refused_without_id("{\"id\":1,\"method\":\"up\",\"params\":{\"to\":-1e400}}", CODE(PROTOCOL_ERROR_INVALID_JSON));
        refused_without_id("{\"id\":1,\"method\":\"up\",\"params\":{\"to\":99999999999999999999}}",
                           CODE(PROTOCOL_ERROR_INVALID_JSON));
}

static void test_invalid_utf8(void **state) {
        refused_without_id("{\"id\":1,\"method\":\"st\xff" "atus\"}", CODE(PROTOCOL_ERROR_INVALID_JSON));
        /* overlong encoding of '/' */
        refused_without_id("{\"id\":1,\"method\":\"\xc0\xaf\"}", CODE(PROTOCOL_ERROR_INVALID_JSON));
        /* truncated sequence */
        refused_without_id("{\"id\":\"\xe2\x82\",\"method\":\"status\"}", CODE(PROTOCOL_ERROR_INVALID_JSON));
        /* UTF-16 surrogate encoded in UTF-8 */
        refused_without_id("{\"id\":1,\"method\":\"\xed\xa0\x80\"}", CODE(PROTOCOL_ERROR_INVALID_JSON));
        /* lone surrogate escape */
        refused_without_id("{\"id\":1,\"method\":\"\\ud800\"}", CODE(PROTOCOL_ERROR_INVALID_JSON));
        /* outside a string */
        refused_without_id("{\"id\":1,\"method\":\"status\"}\xff", CODE(PROTOCOL_ERROR_INVALID_JSON));
}

static void test_valid_utf8(void **state) {
        protocol_request req = decode("{\"id\":\"nuit-\xc3\xa9t\xc3\xa9\",\"method\":\"status\"}", 0);

        assert_string_equal(json_string_value(req.id), "nuit-\xc3\xa9t\xc3\xa9");
        protocol_request_done(&req);
}

/* ---- parameters ---- */

static const param_spec up_specs[] = {
        { "to", PARAM_INT, 0, INT64_C(9223372036854775807) },
        { "steps", PARAM_INT, 1, 1000 },
        { "dry_run", PARAM_BOOL, 0, 0 },
        { "name", PARAM_STRING, 0, 8 },
};

/* Checks the params object given as JSON text; expected is 0 or CODE(INVALID_PARAMS). When
 * refused, the message must name mention. */
static void check_params(const char *json, int expected, const char *mention) {
        json_t *params = json_loads(json, JSON_REJECT_DUPLICATES, NULL);
        char *message = NULL;
        int r;

        assert_non_null(params);
        r = protocol_check_params(params, up_specs, sizeof(up_specs) / sizeof(up_specs[0]), &message);
        if (r != expected)
                print_message("params %s: got %d (%s), expected %d\n", json, r, message ?: "-", expected);
        assert_int_equal(r, expected);
        if (expected) {
                assert_non_null(message);
                if (!strstr(message, mention))
                        fail_msg("message \"%s\" does not mention %s", message, mention);
                free(message);
        } else
                assert_null(message);
        json_decref(params);
}

static void test_check_params(void **state) {
        const int bad = CODE(PROTOCOL_ERROR_INVALID_PARAMS);

        /* valid */
        check_params("{}", 0, NULL);
        check_params("{\"to\":5,\"dry_run\":true,\"name\":\"abc\"}", 0, NULL);
        check_params("{\"to\":0}", 0, NULL);
        check_params("{\"steps\":1}", 0, NULL);
        check_params("{\"steps\":1000}", 0, NULL);
        check_params("{\"dry_run\":false}", 0, NULL);
        check_params("{\"name\":\"\"}", 0, NULL);
        check_params("{\"name\":\"12345678\"}", 0, NULL);

        /* unknown parameter */
        check_params("{\"bogus\":1}", bad, "bogus");
        check_params("{\"to\":5,\"To\":5}", bad, "To");
        check_params("{\"dry-run\":true}", bad, "dry-run");

        /* wrong type */
        check_params("{\"to\":\"5\"}", bad, "to");
        check_params("{\"to\":5.0}", bad, "to");
        check_params("{\"to\":true}", bad, "to");
        check_params("{\"to\":null}", bad, "to");
        check_params("{\"dry_run\":1}", bad, "dry_run");
        check_params("{\"dry_run\":\"true\"}", bad, "dry_run");
        check_params("{\"name\":5}", bad, "name");
        check_params("{\"name\":[\"a\"]}", bad, "name");

        /* out of range */
        check_params("{\"to\":-1}", bad, "to");
        check_params("{\"steps\":0}", bad, "steps");
        check_params("{\"steps\":1001}", bad, "steps");
        check_params("{\"steps\":-5}", bad, "steps");

        /* string too long */
        check_params("{\"name\":\"123456789\"}", bad, "name");
}

/* ---- encoders ---- */

/* The line ends in exactly one '\n' and holds no other newline. */
static void assert_one_line(const char *line) {
        size_t n;

        assert_non_null(line);
        n = strlen(line);
        assert_true(n >= 2);
        assert_int_equal(line[n - 1], '\n');
        assert_ptr_equal(strchr(line, '\n'), line + n - 1);
        assert_null(strchr(line, '\r'));
}

static void test_encode_result(void **state) {
        json_t *id = json_integer(7), *root, *body;
        protocol_reply_kind kind = PROTOCOL_REPLY_ERROR;
        char *line;

        line = protocol_encode_result(id, json_pack("{s:s,s:i}", "note", "two\nlines", "current_version", 3));
        assert_one_line(line);
        assert_int_equal(protocol_decode_reply(line, strlen(line), &kind, &root, &body), 0);
        assert_int_equal(kind, PROTOCOL_REPLY_RESULT);
        assert_ptr_equal(body, json_object_get(root, "result"));
        assert_string_equal(json_string_value(json_object_get(body, "note")), "two\nlines");
        assert_int_equal(json_integer_value(json_object_get(body, "current_version")), 3);
        assert_int_equal(json_integer_value(json_object_get(root, "id")), 7);
        json_decref(root);
        free(line);

        /* no result given: an empty object; the id was not stolen */
        line = protocol_encode_result(id, NULL);
        assert_one_line(line);
        assert_int_equal(protocol_decode_reply(line, strlen(line) - 1, &kind, &root, &body), 0);
        assert_int_equal(kind, PROTOCOL_REPLY_RESULT);
        assert_int_equal(json_object_size(body), 0);
        json_decref(root);
        free(line);
        json_decref(id);
}

/* A result spliced from an encoded part and live members is the line protocol_encode_result
 * writes for the same members, whichever part is empty. */
static void test_encode_result_spliced(void **state) {
        static const char *const fixed_docs[] = { "{\"applied\":[1,2],\"note\":\"caf\\u00e9\"}", "{}" };
        json_t *ids[] = { json_integer(7), json_string("a\"b") };

        for (size_t i = 0; i < ELEMENTSOF(fixed_docs); i++)
                for (size_t k = 0; k < ELEMENTSOF(ids); k++)
                        for (int with_more = 0; with_more < 2; with_more++) {
                                json_t *fixed = json_loads(fixed_docs[i], 0, NULL);
                                json_t *more = with_more ? json_pack("{s:s,s:n}", "state", "idle", "job") : NULL;
                                json_t *whole = json_deep_copy(fixed);
                                size_t len;
                                char *text, *spliced, *expected;

                                assert_non_null(fixed);
                                if (more)
                                        assert_int_equal(json_object_update(whole, more), 0);
                                text = protocol_encode_value(fixed, &len);
                                assert_non_null(text);
                                assert_int_equal(len, strlen(text));
                                spliced = protocol_encode_result_spliced(ids[k], text, len, more);
                                expected = protocol_encode_result(ids[k], whole);
                                assert_one_line(spliced);
                                assert_string_equal(spliced, expected);
                                free(spliced);
                                free(expected);
                                free(text);
                                json_decref(fixed);
                        }
        /* what is not an object's encoding is refused, and more is still consumed */
        assert_null(protocol_encode_result_spliced(ids[0], "[1]", 3, json_object()));
        assert_null(protocol_encode_result_spliced(ids[0], "{", 1, NULL));
        for (size_t k = 0; k < ELEMENTSOF(ids); k++)
                json_decref(ids[k]);
}

static void test_encode_error(void **state) {
        json_t *id = json_string("install-1"), *root, *body;
        protocol_reply_kind kind = PROTOCOL_REPLY_RESULT;
        char *line;

        line = protocol_encode_error(id, PROTOCOL_ERROR_CHECKSUM_MISMATCH,
                                     "0003_add_water_tank.up.sql was edited\nrestore it",
                                     json_pack("{s:s,s:I}", "file", "0003_add_water_tank.up.sql", "version",
                                               (json_int_t) 3));
        assert_one_line(line);
        assert_int_equal(protocol_decode_reply(line, strlen(line), &kind, &root, &body), 0);
        assert_int_equal(kind, PROTOCOL_REPLY_ERROR);
        assert_ptr_equal(body, json_object_get(root, "error"));
        assert_string_equal(json_string_value(json_object_get(body, "code")), "checksum_mismatch");
        assert_string_equal(json_string_value(json_object_get(body, "message")),
                            "0003_add_water_tank.up.sql was edited\nrestore it");
        assert_string_equal(json_string_value(json_object_get(body, "file")), "0003_add_water_tank.up.sql");
        assert_int_equal(json_integer_value(json_object_get(body, "version")), 3);
        assert_string_equal(json_string_value(json_object_get(root, "id")), "install-1");
        json_decref(root);
        free(line);
        json_decref(id);

        /* unknown id: answered with id null */
        line = protocol_encode_error(NULL, PROTOCOL_ERROR_INVALID_JSON, "invalid JSON", NULL);
        assert_one_line(line);
        assert_int_equal(protocol_decode_reply(line, strlen(line), &kind, &root, &body), 0);
        assert_int_equal(kind, PROTOCOL_REPLY_ERROR);
        assert_true(json_is_null(json_object_get(root, "id")));
        assert_string_equal(json_string_value(json_object_get(body, "code")), "invalid_json");
        json_decref(root);
        free(line);
}

static void test_encode_event(void **state) {
        json_t *id = json_integer(1), *root, *body;
        protocol_reply_kind kind = PROTOCOL_REPLY_RESULT;
        char *line;

        line = protocol_encode_event(id, "migration",
                                     json_pack("{s:s,s:i,s:s}", "phase", "applied", "version", 3, "name",
                                               "temp\xc2\xb0\x43\n"));
        assert_one_line(line);
        /* non-ASCII is escaped, so the line is plain ASCII */
        for (const char *p = line; *p; p++)
                assert_true((unsigned char) *p < 0x80);
        assert_int_equal(protocol_decode_reply(line, strlen(line), &kind, &root, &body), 0);
        assert_int_equal(kind, PROTOCOL_REPLY_EVENT);
        assert_ptr_equal(body, root);
        assert_string_equal(json_string_value(json_object_get(body, "event")), "migration");
        assert_string_equal(json_string_value(json_object_get(body, "phase")), "applied");
        assert_string_equal(json_string_value(json_object_get(body, "name")), "temp\xc2\xb0\x43\n");
        assert_int_equal(json_integer_value(json_object_get(body, "version")), 3);
        assert_int_equal(json_integer_value(json_object_get(root, "id")), 1);
        json_decref(root);
        free(line);

        line = protocol_encode_event(id, "queued", NULL);
        assert_one_line(line);
        assert_int_equal(protocol_decode_reply(line, strlen(line), &kind, &root, &body), 0);
        assert_int_equal(kind, PROTOCOL_REPLY_EVENT);
        assert_string_equal(json_string_value(json_object_get(body, "event")), "queued");
        json_decref(root);
        free(line);
        json_decref(id);
}

static void test_encode_request_roundtrip(void **state) {
        json_t *id = json_integer(12);
        protocol_request req;
        char *line, *message = NULL;

        line = protocol_encode_request(id, "down", json_pack("{s:i,s:b}", "steps", 2, "dry_run", 1));
        assert_one_line(line);
        assert_int_equal(protocol_decode_request(line, strlen(line) - 1, &req, &message), 0);
        assert_null(message);
        assert_int_equal(json_integer_value(req.id), 12);
        assert_string_equal(req.method, "down");
        assert_int_equal(json_integer_value(json_object_get(req.params, "steps")), 2);
        assert_true(json_is_true(json_object_get(req.params, "dry_run")));
        protocol_request_done(&req);
        free(line);
        json_decref(id);
}

static void test_decode_reply_bad(void **state) {
        static const char *const bad[] = {
                "", "nope", "[]", "{}", "{\"id\":1}", "{\"id\":1,\"result\":5}", "{\"id\":1,\"error\":\"busy\"}",
                "{\"id\":1,\"event\":7}", "{\"id\":1,\"result\":{}} x",
        };
        protocol_reply_kind kind;
        json_t *root = NULL, *body = NULL;

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                if (protocol_decode_reply(bad[i], strlen(bad[i]), &kind, &root, &body) != -EBADMSG)
                        fail_msg("reply '%s' was accepted", bad[i]);
                assert_null(root);
                assert_null(body);
        }
}

/* The method table: every protocol_method_id has its row, names and verbs are unique, and the
 * privilege column is what decides (a dry run of a changing method reads). */
static void test_method_table(void **state) {
        json_t *dry = json_pack("{s:b}", "dry_run", 1), *wet = json_pack("{s:b}", "dry_run", 0);

        for (protocol_method_id i = 0; i < _METHOD_MAX; i++) {
                assert_non_null(protocol_methods[i].name);
                assert_int_equal(protocol_method_from_name(protocol_methods[i].name), i);
                assert_true(protocol_methods[i].params || protocol_methods[i].n_params == 0);
                for (protocol_method_id j = 0; j < i; j++)
                        if (protocol_methods[i].verb && protocol_methods[j].verb)
                                assert_string_not_equal(protocol_methods[i].verb, protocol_methods[j].verb);
                assert_int_equal(protocol_method_changes(i, wet), protocol_methods[i].privilege == METHOD_CHANGES);
                assert_int_equal(protocol_method_changes(i, NULL), protocol_methods[i].privilege == METHOD_CHANGES);
                assert_false(protocol_method_changes(i, dry));
        }
        assert_int_equal(protocol_method_from_name("nope"), _METHOD_INVALID);
        assert_int_equal(protocol_methods[METHOD_RESTORE].privilege, METHOD_CHANGES);
        assert_int_equal(protocol_methods[METHOD_STATUS].privilege, METHOD_READS);
        json_decref(dry);
        json_decref(wet);
}

/* ---- encoders out of memory ----
 *
 * The encoders steal their payload, also when they fail. jansson's allocations are routed through
 * oom_malloc/oom_free: from the n-th on they fail, and freed blocks are kept poisoned in a
 * quarantine (not returned to libc), so a write to freed memory (a second json_decref) and a
 * payload leaked on a failure path are both seen, with or without sanitizers. */

static struct {
        size_t budget; /* allocations that still succeed; SIZE_MAX: all */
        void **live;
        size_t n_live;
        void **freed;
        size_t n_freed;
        bool bad_free;
} oom;

static void ptrs_push(void ***v, size_t *n, void *p) {
        void **m = realloc(*v, (*n + 1) * sizeof(void *));

        assert_non_null(m);
        m[(*n)++] = p;
        *v = m;
}

static void *oom_malloc(size_t size) {
        void *p;

        if (oom.budget == 0)
                return NULL;
        if (oom.budget != SIZE_MAX)
                oom.budget--;
        p = malloc(size);
        if (p)
                ptrs_push(&oom.live, &oom.n_live, p);
        return p;
}

static void oom_free(void *p) {
        size_t i;

        for (i = 0; i < oom.n_live && oom.live[i] != p; i++)
                ;
        if (i == oom.n_live) {
                oom.bad_free = true; /* freed twice, or never allocated here */
                return;
        }
        oom.live[i] = oom.live[--oom.n_live];
        memset(p, 0xa5, malloc_usable_size(p));
        ptrs_push(&oom.freed, &oom.n_freed, p);
}

static bool oom_quarantine_intact(void) {
        for (size_t i = 0; i < oom.n_freed; i++) {
                const unsigned char *b = oom.freed[i];
                for (size_t k = 0; k < malloc_usable_size(oom.freed[i]); k++)
                        if (b[k] != 0xa5)
                                return false;
        }
        return true;
}

static void oom_reset(void) {
        for (size_t i = 0; i < oom.n_freed; i++)
                free(oom.freed[i]);
        free(oom.freed);
        free(oom.live);
        memset(&oom, 0, sizeof(oom));
        oom.budget = SIZE_MAX;
}

static int oom_setup(void **state) {
        oom_reset();
        json_set_alloc_funcs(oom_malloc, oom_free);
        return 0;
}

static int oom_teardown(void **state) {
        json_set_alloc_funcs(malloc, free);
        oom_reset();
        return 0;
}

typedef char *(*encode_fn)(json_t *id);

static char *enc_result(json_t *id) {
        return protocol_encode_result(id, json_pack("{s:i,s:s}", "current_version", 5, "state", "idle"));
}

static char *enc_error(json_t *id) {
        return protocol_encode_error(id, PROTOCOL_ERROR_BUSY, "the database is busy",
                                     json_pack("{s:s}", "holder", "free-sleep.service"));
}

static char *enc_error_no_extra(json_t *id) {
        return protocol_encode_error(id, PROTOCOL_ERROR_BUSY, "the database is busy", NULL);
}

static char *enc_event(json_t *id) {
        return protocol_encode_event(id, "queued", json_pack("{s:i,s:i}", "job_id", 3, "position", 1));
}

static char *enc_request(json_t *id) {
        return protocol_encode_request(id, "up", json_pack("{s:i}", "to", 5));
}

/* Runs one encoder with allocations failing from the n-th on, for every n until it succeeds. */
static void check_encoder_oom(encode_fn fn, const char *what) {
        for (size_t n = 0; n < 1000; n++) {
                json_t *id;
                char *line;

                oom.budget = SIZE_MAX;
                id = json_integer(42);
                assert_non_null(id);
                oom.budget = n; /* the payload, built inside fn, may fail too: it is NULL then */
                line = fn(id);
                oom.budget = SIZE_MAX;
                json_decref(id);

                if (oom.bad_free)
                        fail_msg("%s: a block was freed twice when allocation %zu failed", what, n);
                if (!oom_quarantine_intact())
                        fail_msg("%s: freed memory was written to when allocation %zu failed", what, n);
                if (line) {
                        assert_one_line(line);
                        free(line); /* json_dumps' string, reallocated by libc */
                        return;
                }
                if (oom.n_live != 0)
                        fail_msg("%s: %zu block(s) leaked when allocation %zu failed", what, oom.n_live, n);
        }
        fail_msg("%s never succeeded", what);
}

static void test_oom_encode_result(void **state) {
        check_encoder_oom(enc_result, "protocol_encode_result");
}

static void test_oom_encode_error(void **state) {
        check_encoder_oom(enc_error_no_extra, "protocol_encode_error without extra");
        check_encoder_oom(enc_error, "protocol_encode_error with extra");
}

static void test_oom_encode_event(void **state) {
        check_encoder_oom(enc_event, "protocol_encode_event");
}

static void test_oom_encode_request(void **state) {
        check_encoder_oom(enc_request, "protocol_encode_request");
}

/* ---- error codes ---- */

static void test_error_codes(void **state) {
        /* The stable strings, in enum order (README, protocol version 1). Codes are append only:
         * these never change; codes appended later must be unique and round-trip too. */
        static const char *const stable[] = {
                "invalid_json", "invalid_request", "line_too_long", "unknown_method", "invalid_params",
                "unknown_version", "irreversible", "checksum_mismatch", "missing_migration",
                "directory_invalid", "migration_failed", "foreign_key_violation", "busy", "queue_full",
                "shutting_down", "interrupted", "permission_denied", "database_error", "internal",
                "out_of_order", "cancelled", "timeout", "database_in_use", "units_failed",
        };
        const size_t n_stable = sizeof(stable) / sizeof(stable[0]);

        assert_true(_PROTOCOL_ERROR_MAX >= n_stable);
        for (int i = 0; i < _PROTOCOL_ERROR_MAX; i++) {
                const char *s = protocol_error_code_to_string((protocol_error_code) i);

                assert_non_null(s);
                if ((size_t) i < n_stable)
                        assert_string_equal(s, stable[i]);
                /* lowercase words joined by '_', as clients expect */
                assert_true(strlen(s) > 0);
                assert_int_equal(strspn(s, "abcdefghijklmnopqrstuvwxyz_"), strlen(s));
                assert_int_equal(protocol_error_code_from_string(s), i);
                for (int j = 0; j < i; j++)
                        assert_string_not_equal(s, protocol_error_code_to_string((protocol_error_code) j));
        }
        assert_int_equal(protocol_error_code_from_string("no_such_code"), -1);
        assert_int_equal(protocol_error_code_from_string(""), -1);
        assert_int_equal(protocol_error_code_from_string("BUSY"), -1);
        assert_int_equal(protocol_error_code_from_string(NULL), -1);
        /* out of range never yields NULL (it would end up in a JSON string) */
        assert_non_null(protocol_error_code_to_string(_PROTOCOL_ERROR_MAX));
        assert_non_null(protocol_error_code_to_string((protocol_error_code) -1));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_valid_int_id),
                cmocka_unit_test(test_valid_string_id),
                cmocka_unit_test(test_valid_no_params),
                cmocka_unit_test(test_not_json),
                cmocka_unit_test(test_json_string),
                cmocka_unit_test(test_utf8_sanitize),
                cmocka_unit_test(test_error_with_broken_utf8_is_encoded),
                cmocka_unit_test(test_json_array),
                cmocka_unit_test(test_trailing_garbage),
                cmocka_unit_test(test_two_objects),
                cmocka_unit_test(test_duplicate_keys),
                cmocka_unit_test(test_unknown_field),
                cmocka_unit_test(test_missing_id),
                cmocka_unit_test(test_bad_ids),
                cmocka_unit_test(test_bad_method),
                cmocka_unit_test(test_bad_params),
                cmocka_unit_test(test_nul_byte_in_line),
                cmocka_unit_test(test_escaped_nul),
                cmocka_unit_test(test_line_too_long),
                cmocka_unit_test(test_deep_nesting),
                cmocka_unit_test(test_huge_numbers),
                cmocka_unit_test(test_invalid_utf8),
                cmocka_unit_test(test_valid_utf8),
                cmocka_unit_test(test_check_params),
                cmocka_unit_test(test_encode_result),
                cmocka_unit_test(test_encode_result_spliced),
                cmocka_unit_test(test_encode_error),
                cmocka_unit_test(test_encode_event),
                cmocka_unit_test(test_encode_request_roundtrip),
                cmocka_unit_test(test_decode_reply_bad),
                cmocka_unit_test(test_method_table),
                cmocka_unit_test_setup_teardown(test_oom_encode_result, oom_setup, oom_teardown),
                cmocka_unit_test_setup_teardown(test_oom_encode_error, oom_setup, oom_teardown),
                cmocka_unit_test_setup_teardown(test_oom_encode_event, oom_setup, oom_teardown),
                cmocka_unit_test_setup_teardown(test_oom_encode_request, oom_setup, oom_teardown),
                cmocka_unit_test(test_error_codes),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
