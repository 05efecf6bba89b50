/* SPDX-License-Identifier: MIT */
/* libFuzzer target: the protocol codec (common/protocol.c), the way the daemon and the client use
 * it. The input is one line as read from the socket, without its newline:
 *   - decoded as a request; a decoded request's params are checked against the daemon's spec for
 *     its method (a copy of daemon/commands.c's tables, which are static there; keep them in step),
 *     as commands_dispatch() does;
 *   - every outcome is answered the way the daemon answers it (encode_error on a decode, unknown
 *     method or params error; encode_result, encode_event and encode_request with the decoded
 *     params otherwise),
 *     and each answer must be exactly one line ending in '\n', decoding back as a reply of the
 *     expected kind;
 *   - decoded as a reply, as migratectl does with each line it reads; a decoded reply's body is
 *     re-encoded too.
 * A NULL from an encoder is only allowed for out-of-memory, which does not happen here: the daemon
 * would leave the client without its final line. */
#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "protocol-methods.h"
#include "protocol.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fatal(const char *what, const char *line) {
        fprintf(stderr, "fuzz-protocol: %s: %s\n", what, line ? line : "(NULL)");
        abort();
}

/* One encoded line: non-NULL, ends in '\n', no other newline (JSON_COMPACT never emits one and
 * strings escape theirs), and it reads back as a reply of the expected kind. Frees line. */
static void check_line(char *line, const char *what, protocol_reply_kind expected) {
        protocol_reply_kind kind;
        json_t *root, *body;
        size_t n;

        if (!line)
                fatal(what, "encoder returned NULL");
        n = strlen(line);
        if (n < 2 || line[n - 1] != '\n')
                fatal("line does not end in a newline", line);
        if (memchr(line, '\n', n - 1))
                fatal("line has an inner newline", line);
        if (protocol_decode_reply(line, n - 1, &kind, &root, &body) < 0)
                fatal("own reply does not decode", line);
        if (kind != expected)
                fatal("own reply decodes as another kind", line);
        json_decref(root);
        free(line);
}

static void answer_error(json_t *id, protocol_error_code code, const char *message) {
        check_line(protocol_encode_error(id, code, message, NULL), "encode_error", PROTOCOL_REPLY_ERROR);
}

static void fuzz_request(const uint8_t *data, size_t size) {
        protocol_request req;
        char *msg = NULL;
        protocol_method_id id;
        int r;

        r = protocol_decode_request((const char *) data, size, &req, &msg);
        if (r > 0) {
                if (r - 1 >= _PROTOCOL_ERROR_MAX)
                        fatal("decode_request returned an unknown code", msg);
                answer_error(req.id, (protocol_error_code) (r - 1), msg);
                free(msg);
                protocol_request_done(&req);
                return;
        }
        if (r < 0 || !req.root || !req.id || !req.method || !json_is_object(req.params))
                fatal("decode_request succeeded without a complete request", msg);

        id = protocol_method_from_name(req.method);
        if (id < 0) {
                /* as commands_dispatch() words it */
                if (asprintf(&msg, "unknown method \"%.64s\"", req.method) < 0)
                        msg = NULL;
                answer_error(req.id, PROTOCOL_ERROR_UNKNOWN_METHOD, msg);
                free(msg);
                protocol_request_done(&req);
                return;
        }

        r = protocol_check_params(req.params, protocol_methods[id].params, protocol_methods[id].n_params, &msg);
        if (r > 0) {
                if (r - 1 != PROTOCOL_ERROR_INVALID_PARAMS)
                        fatal("check_params returned another code than invalid_params", msg);
                answer_error(req.id, PROTOCOL_ERROR_INVALID_PARAMS, msg);
                free(msg);
        } else {
                if (r != 0)
                        fatal("check_params returned a negative value", NULL);
                /* everything that was decoded goes back out, as a result, an event and an error
                 * whose details are the params */
                check_line(protocol_encode_result(req.id, json_deep_copy(req.params)), "encode_result",
                           PROTOCOL_REPLY_RESULT);
                check_line(protocol_encode_event(req.id, req.method, json_pack("{s:O}", "params", req.params)),
                           "encode_event", PROTOCOL_REPLY_EVENT);
                check_line(protocol_encode_error(req.id, PROTOCOL_ERROR_INTERNAL, req.method,
                                                 json_deep_copy(req.params)),
                           "encode_error", PROTOCOL_REPLY_ERROR);
                /* a client re-sending the request */
                char *line = protocol_encode_request(req.id, req.method, json_deep_copy(req.params));
                if (!line || !strchr(line, '\n') || strchr(line, '\n')[1] != '\0')
                        fatal("encode_request did not give one line", line);
                free(line);
        }
        protocol_request_done(&req);
}

static void fuzz_reply(const uint8_t *data, size_t size) {
        protocol_reply_kind kind;
        json_t *root, *body;

        if (protocol_decode_reply((const char *) data, size, &kind, &root, &body) < 0)
                return;
        if (!json_is_object(root) || !json_is_object(body))
                fatal("decode_reply gave no object", NULL);
        switch (kind) {
        case PROTOCOL_REPLY_RESULT:
                check_line(protocol_encode_result(json_object_get(root, "id"), json_deep_copy(body)), "encode_result",
                           PROTOCOL_REPLY_RESULT);
                break;
        case PROTOCOL_REPLY_ERROR: {
                int code = protocol_error_code_from_string(json_string_value(json_object_get(body, "code")));
                check_line(protocol_encode_error(json_object_get(root, "id"),
                                                 code < 0 ? PROTOCOL_ERROR_INTERNAL : (protocol_error_code) code,
                                                 json_string_value(json_object_get(body, "message")),
                                                 json_deep_copy(body)),
                           "encode_error", PROTOCOL_REPLY_ERROR);
                break;
        }
        case PROTOCOL_REPLY_EVENT: {
                json_t *fields = json_deep_copy(body);
                /* the event's own fields, as the daemon builds them: no id, no event key */
                json_object_del(fields, "id");
                json_object_del(fields, "event");
                check_line(protocol_encode_event(json_object_get(root, "id"),
                                                 json_string_value(json_object_get(root, "event")), fields),
                           "encode_event", PROTOCOL_REPLY_EVENT);
                break;
        }
        default:
                fatal("decode_reply returned an unknown kind", NULL);
        }
        json_decref(root);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        /* the daemon hands over lines without '\n' and with a trailing '\r' removed */
        if (memchr(data, '\n', size))
                return -1; /* not a line the socket layer would pass on: not kept in the corpus */
        fuzz_request(data, size);
        fuzz_reply(data, size);
        return 0;
}
