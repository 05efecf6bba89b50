/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "protocol.h"

static const char *const error_codes[_PROTOCOL_ERROR_MAX] = {
        [PROTOCOL_ERROR_INVALID_JSON] = "invalid_json",
        [PROTOCOL_ERROR_INVALID_REQUEST] = "invalid_request",
        [PROTOCOL_ERROR_LINE_TOO_LONG] = "line_too_long",
        [PROTOCOL_ERROR_UNKNOWN_METHOD] = "unknown_method",
        [PROTOCOL_ERROR_INVALID_PARAMS] = "invalid_params",
        [PROTOCOL_ERROR_UNKNOWN_VERSION] = "unknown_version",
        [PROTOCOL_ERROR_IRREVERSIBLE] = "irreversible",
        [PROTOCOL_ERROR_CHECKSUM_MISMATCH] = "checksum_mismatch",
        [PROTOCOL_ERROR_MISSING_MIGRATION] = "missing_migration",
        [PROTOCOL_ERROR_DIRECTORY_INVALID] = "directory_invalid",
        [PROTOCOL_ERROR_MIGRATION_FAILED] = "migration_failed",
        [PROTOCOL_ERROR_FOREIGN_KEY_VIOLATION] = "foreign_key_violation",
        [PROTOCOL_ERROR_BUSY] = "busy",
        [PROTOCOL_ERROR_QUEUE_FULL] = "queue_full",
        [PROTOCOL_ERROR_SHUTTING_DOWN] = "shutting_down",
        [PROTOCOL_ERROR_INTERRUPTED] = "interrupted",
        [PROTOCOL_ERROR_PERMISSION_DENIED] = "permission_denied",
        [PROTOCOL_ERROR_DATABASE] = "database_error",
        [PROTOCOL_ERROR_INTERNAL] = "internal",
        [PROTOCOL_ERROR_OUT_OF_ORDER] = "out_of_order",
        [PROTOCOL_ERROR_CANCELLED] = "cancelled",
        [PROTOCOL_ERROR_TIMEOUT] = "timeout",
        [PROTOCOL_ERROR_DATABASE_IN_USE] = "database_in_use",
        [PROTOCOL_ERROR_UNITS_FAILED] = "units_failed",
        [PROTOCOL_ERROR_BACKUP_FAILED] = "backup_failed",
        [PROTOCOL_ERROR_INTEGRITY] = "integrity_failed",
        [PROTOCOL_ERROR_UNKNOWN_BACKUP] = "unknown_backup",
        [PROTOCOL_ERROR_TOO_MANY_CONNECTIONS] = "too_many_connections",
        [PROTOCOL_ERROR_IDLE_TIMEOUT] = "idle_timeout",
        [PROTOCOL_ERROR_FAILED_MIGRATION] = "failed_migration",
        [PROTOCOL_ERROR_BASELINE_NEEDED] = "baseline_needed",
        [PROTOCOL_ERROR_DATABASE_REPLACED] = "database_replaced",
        [PROTOCOL_ERROR_REQUEST_TIMEOUT] = "request_timeout",
        [PROTOCOL_ERROR_BACKUP_SPACE] = "backup_space",
        [PROTOCOL_ERROR_DISK_FULL] = "disk_full",
        [PROTOCOL_ERROR_NOT_WRITABLE] = "not_writable",
        [PROTOCOL_ERROR_STATE_CONFLICT] = "state_conflict",
        [PROTOCOL_ERROR_RESET_NOT_ALLOWED] = "reset_not_allowed",
        [PROTOCOL_ERROR_ONLINE_TOO_SLOW] = "online_too_slow",
};

const char *protocol_error_code_to_string(protocol_error_code c) {
        if ((unsigned) c >= _PROTOCOL_ERROR_MAX)
                return "internal";
        return error_codes[c];
}

int protocol_error_code_from_string(const char *s) {
        for (int i = 0; i < _PROTOCOL_ERROR_MAX; i++)
                if (s && streq(error_codes[i], s))
                        return i;
        return -1;
}

void protocol_request_done(protocol_request *r) {
        json_decref(r->root);
        memset(r, 0, sizeof(*r));
}

static int fail(protocol_error_code code, char **ret_message, const char *fmt, ...) _printf_(3, 4);
static int fail(protocol_error_code code, char **ret_message, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        if (vasprintf(ret_message, fmt, ap) < 0)
                *ret_message = NULL;
        va_end(ap);
        return (int) code + 1;
}

static bool id_is_valid(json_t *id) {
        if (json_is_integer(id))
                return json_integer_value(id) >= 0 && json_integer_value(id) < PROTOCOL_ID_INT_MAX;
        if (json_is_string(id))
                return json_string_length(id) >= 1 && json_string_length(id) <= PROTOCOL_ID_STRING_MAX;
        return false;
}

int protocol_decode_request(const char *line, size_t size, protocol_request *ret, char **ret_message) {
        json_error_t jerr;
        json_t *root, *id, *method, *params;
        const char *key;
        json_t *value;

        memset(ret, 0, sizeof(*ret));
        if (size > PROTOCOL_LINE_MAX)
                return fail(PROTOCOL_ERROR_LINE_TOO_LONG, ret_message, "request longer than %d bytes",
                            PROTOCOL_LINE_MAX);
        /* JSON_REJECT_DUPLICATES: {"id":1,"id":2} is ambiguous, refuse it. NUL bytes in the line or
         * in strings, trailing garbage and nesting deeper than jansson's limit are errors too. */
        root = json_loadb(line, size, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
        if (!root)
                return fail(PROTOCOL_ERROR_INVALID_JSON, ret_message, "invalid JSON at column %d: %s", jerr.column,
                            jerr.text);
        ret->root = root;
        if (!json_is_object(root))
                return fail(PROTOCOL_ERROR_INVALID_REQUEST, ret_message, "a request must be a JSON object");

        id = json_object_get(root, "id");
        if (id && id_is_valid(id))
                ret->id = id;

        json_object_foreach(root, key, value)
                if (!streq(key, "id") && !streq(key, "method") && !streq(key, "params") && !streq(key, "protocol"))
                        return fail(PROTOCOL_ERROR_INVALID_REQUEST, ret_message, "unknown field \"%s\"", key);
        if (!id)
                return fail(PROTOCOL_ERROR_INVALID_REQUEST, ret_message, "missing field \"id\"");
        if (!ret->id)
                return fail(PROTOCOL_ERROR_INVALID_REQUEST, ret_message,
                            "\"id\" must be an integer in [0, 2^53) or a string of 1..%d bytes",
                            PROTOCOL_ID_STRING_MAX);
        method = json_object_get(root, "method");
        if (!method)
                return fail(PROTOCOL_ERROR_INVALID_REQUEST, ret_message, "missing field \"method\"");
        if (!json_is_string(method) || json_string_length(method) == 0)
                return fail(PROTOCOL_ERROR_INVALID_REQUEST, ret_message, "\"method\" must be a non-empty string");
        params = json_object_get(root, "params");
        if (params && !json_is_object(params))
                return fail(PROTOCOL_ERROR_INVALID_REQUEST, ret_message, "\"params\" must be an object");
        if (!params) {
                params = json_object();
                if (!params || json_object_set_new(root, "params", params) < 0)
                        return fail(PROTOCOL_ERROR_INTERNAL, ret_message, "out of memory");
        }
        value = json_object_get(root, "protocol");
        if (value && (!json_is_integer(value) || json_integer_value(value) < PROTOCOL_VERSION_MIN ||
                      json_integer_value(value) > MIGRATED_PROTOCOL_VERSION))
                return fail(PROTOCOL_ERROR_INVALID_REQUEST, ret_message, "\"protocol\" must be an integer from %d to %d",
                            PROTOCOL_VERSION_MIN, MIGRATED_PROTOCOL_VERSION);
        ret->protocol = value ? (int) json_integer_value(value) : PROTOCOL_VERSION_MIN;
        ret->method = json_string_value(method);
        ret->params = params;
        return 0;
}

static const char *param_type_name(param_type t) {
        switch (t) {
        case PARAM_INT: return "an integer";
        case PARAM_BOOL: return "a boolean";
        default: return "a string";
        }
}

int protocol_check_params(json_t *params, const param_spec *specs, size_t n_specs, char **ret_message) {
        const char *key;
        json_t *value;

        json_object_foreach(params, key, value) {
                const param_spec *s = NULL;
                for (size_t i = 0; i < n_specs; i++)
                        if (streq(specs[i].name, key))
                                s = &specs[i];
                if (!s)
                        return fail(PROTOCOL_ERROR_INVALID_PARAMS, ret_message, "unknown parameter \"%s\"", key);
                switch (s->type) {
                case PARAM_INT:
                        if (!json_is_integer(value))
                                break;
                        if (json_integer_value(value) < s->min || json_integer_value(value) > s->max)
                                return fail(PROTOCOL_ERROR_INVALID_PARAMS, ret_message,
                                            "parameter \"%s\" must be between %lld and %lld", key,
                                            (long long) s->min, (long long) s->max);
                        continue;
                case PARAM_BOOL:
                        if (json_is_boolean(value))
                                continue;
                        break;
                case PARAM_STRING:
                        if (!json_is_string(value))
                                break;
                        if ((json_int_t) json_string_length(value) > s->max)
                                return fail(PROTOCOL_ERROR_INVALID_PARAMS, ret_message,
                                            "parameter \"%s\" is longer than %lld bytes", key, (long long) s->max);
                        continue;
                }
                return fail(PROTOCOL_ERROR_INVALID_PARAMS, ret_message, "parameter \"%s\" must be %s", key,
                            param_type_name(s->type));
        }
        return 0;
}

typedef struct line_buffer {
        char *data;
        size_t size, allocated;
} line_buffer;

static int line_append(const char *buffer, size_t size, void *userdata) {
        line_buffer *b = userdata;

        if (b->size + size + 2 > b->allocated) {
                size_t n = (b->size + size + 2) * 2;
                char *d = realloc(b->data, n);
                if (!d)
                        return -1;
                b->data = d;
                b->allocated = n;
        }
        memcpy(b->data + b->size, buffer, size);
        b->size += size;
        return 0;
}

/* Serializes a reply object compactly, on one line, in one pass into a malloc'd buffer of our own
 * (never one from jansson's allocator, which may be replaced). Steals obj. */
static char *encode_line(json_t *obj) {
        line_buffer b = {};

        if (!obj)
                return NULL;
        if (json_dump_callback(obj, line_append, &b, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_PRESERVE_ORDER) < 0 ||
            !b.data) {
                free(b.data);
                json_decref(obj);
                return NULL;
        }
        json_decref(obj);
        b.data[b.size] = '\n';
        b.data[b.size + 1] = '\0';
        return b.data;
}

/* v encoded as encode_line encodes (without the newline), into a buffer of our own. Borrows v. */
char *protocol_encode_value(json_t *v, size_t *ret_len) {
        line_buffer b = {};

        if (!v || json_dump_callback(v, line_append, &b,
                                     JSON_COMPACT | JSON_ENSURE_ASCII | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY) < 0 ||
            !b.data) {
                free(b.data);
                return NULL;
        }
        b.data[b.size] = '\0';
        *ret_len = b.size;
        return b.data;
}

char *protocol_encode_result_spliced(json_t *id, const char *fixed, size_t fixed_len, json_t *more) {
        _cleanup_free_ char *id_text = NULL, *more_text = NULL;
        size_t id_len = 0, more_len = 0;
        line_buffer b = {};
        bool fixed_empty, more_empty;

        if (fixed_len < 2 || fixed[0] != '{' || fixed[fixed_len - 1] != '}')
                goto fail;
        id_text = protocol_encode_value(id ?: json_null(), &id_len);
        if (more)
                more_text = protocol_encode_value(more, &more_len);
        else {
                more_text = strdup("{}");
                more_len = 2;
        }
        if (!id_text || !more_text || more_text[0] != '{')
                goto fail;
        fixed_empty = fixed_len == 2;
        more_empty = more_len == 2;
        /* {"id":ID,"result":{FIXED-MEMBERS,MORE-MEMBERS}}\n */
        if (line_append("{\"id\":", 6, &b) < 0 || line_append(id_text, id_len, &b) < 0 ||
            line_append(",\"result\":", 10, &b) < 0 || line_append(fixed, fixed_len - 1, &b) < 0 ||
            (!fixed_empty && !more_empty && line_append(",", 1, &b) < 0) ||
            line_append(more_text + 1, more_len - 1, &b) < 0 || line_append("}", 1, &b) < 0)
                goto fail;
        json_decref(more);
        b.data[b.size] = '\n';
        b.data[b.size + 1] = '\0';
        return b.data;
fail:
        json_decref(more);
        free(b.data);
        return NULL;
}

static json_t *reply_base(json_t *id) {
        json_t *o = json_object();

        if (o && json_object_set(o, "id", id ?: json_null()) < 0)
                o = (json_decref(o), NULL);
        return o;
}

char *protocol_encode_result(json_t *id, json_t *result) {
        json_t *o = reply_base(id);

        if (!result)
                result = json_object();
        /* json_object_set_new() consumes result even when it fails */
        if (!o || !result || json_object_set_new(o, "result", result) < 0) {
                if (!o)
                        json_decref(result);
                json_decref(o);
                return NULL;
        }
        return encode_line(o);
}

/* The length of the valid UTF-8 sequence at p (1..4), or 0 when it is not one. */
static size_t utf8_sequence(const unsigned char *p, size_t left) {
        size_t n;
        uint32_t c;

        if (p[0] < 0x80)
                return 1;
        if ((p[0] & 0xe0) == 0xc0)
                n = 2, c = p[0] & 0x1f;
        else if ((p[0] & 0xf0) == 0xe0)
                n = 3, c = p[0] & 0x0f;
        else if ((p[0] & 0xf8) == 0xf0)
                n = 4, c = p[0] & 0x07;
        else
                return 0;
        if (n > left)
                return 0;
        for (size_t i = 1; i < n; i++) {
                if ((p[i] & 0xc0) != 0x80)
                        return 0;
                c = (c << 6) | (p[i] & 0x3f);
        }
        /* overlong forms, surrogates and values past U+10FFFF are not valid UTF-8 */
        if ((n == 2 && c < 0x80) || (n == 3 && c < 0x800) || (n == 4 && c < 0x10000) || c > 0x10ffff ||
            (c >= 0xd800 && c <= 0xdfff))
                return 0;
        return n;
}

char *protocol_utf8_sanitize(const char *s) {
        size_t len = strlen(s), k = 0;
        char *out = malloc(len + 1);

        if (!out)
                return NULL;
        for (size_t i = 0; i < len;) {
                size_t n = utf8_sequence((const unsigned char *) s + i, len - i);
                if (n == 0) {
                        out[k++] = '?'; /* a message quoting raw input may cut a character */
                        i++;
                        continue;
                }
                memcpy(out + k, s + i, n);
                k += n;
                i += n;
        }
        out[k] = '\0';
        return out;
}

char *protocol_encode_error(json_t *id, protocol_error_code code, const char *message, json_t *extra) {
        json_t *o = reply_base(id), *e = json_object();
        _cleanup_free_ char *clean = protocol_utf8_sanitize(message ?: "");

        /* code and message first; the details for scripts after them */
        if (!o || !e || !clean ||
            json_object_set_new(e, "code", json_string(protocol_error_code_to_string(code))) < 0 ||
            json_object_set_new(e, "message", json_string(clean)) < 0 ||
            (extra && json_object_update_missing(e, extra) < 0)) {
                json_decref(o);
                json_decref(e);
                json_decref(extra);
                return NULL;
        }
        json_decref(extra);
        if (json_object_set_new(o, "error", e) < 0) { /* consumed e */
                json_decref(o);
                return NULL;
        }
        return encode_line(o);
}

char *protocol_encode_event(json_t *id, const char *event, json_t *fields) {
        json_t *o = reply_base(id);

        /* id and event first, so a person reading the stream sees what a line is at once */
        if (!o || json_object_set_new(o, "event", json_string(event)) < 0 ||
            (fields && json_object_update(o, fields) < 0)) {
                json_decref(o);
                json_decref(fields);
                return NULL;
        }
        json_decref(fields);
        return encode_line(o);
}

char *protocol_encode_request(json_t *id, const char *method, json_t *params) {
        return protocol_encode_request_version(id, method, params, PROTOCOL_VERSION_MIN);
}

char *protocol_encode_request_version(json_t *id, const char *method, json_t *params, int protocol) {
        json_t *o = reply_base(id);

        if (o && protocol > PROTOCOL_VERSION_MIN && json_object_set_new(o, "protocol", json_integer(protocol)) < 0) {
                json_decref(o);
                o = NULL;
        }

        if (!params)
                params = json_object();
        if (!o || !params) {
                json_decref(o);
                json_decref(params);
                return NULL;
        }
        if (json_object_set_new(o, "method", json_string(method)) < 0) {
                json_decref(o);
                json_decref(params);
                return NULL;
        }
        if (json_object_set_new(o, "params", params) < 0) { /* consumed params */
                json_decref(o);
                return NULL;
        }
        return encode_line(o);
}

int protocol_decode_reply(const char *line, size_t size, protocol_reply_kind *ret_kind, json_t **ret_root,
                          json_t **ret_body) {
        json_t *root, *body;

        root = json_loadb(line, size, 0, NULL);
        if (!json_is_object(root)) {
                json_decref(root);
                return -EBADMSG;
        }
        if ((body = json_object_get(root, "result")) && json_is_object(body))
                *ret_kind = PROTOCOL_REPLY_RESULT;
        else if ((body = json_object_get(root, "error")) && json_is_object(body))
                *ret_kind = PROTOCOL_REPLY_ERROR;
        else if (json_is_string(json_object_get(root, "event"))) {
                *ret_kind = PROTOCOL_REPLY_EVENT;
                body = root;
        } else {
                json_decref(root);
                return -EBADMSG;
        }
        *ret_root = root;
        *ret_body = body;
        return 0;
}
