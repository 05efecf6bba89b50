/* SPDX-License-Identifier: MIT */
#pragma once

/* The socket protocol, version 1: one JSON object per line over a Unix stream socket.
 *
 *   request:  {"id": 7, "method": "up", "params": {"to": 5}}
 *   event:    {"id": 7, "event": "migration", ...}            zero or more
 *   result:   {"id": 7, "result": {...}}                      exactly one of these two
 *   error:    {"id": 7, "error": {"code": "busy", "message": "...", ...}}
 *
 * id is an integer in [0, 2^53) or a string of 1..64 bytes; params is an object and may be left
 * out. Decoding is strict: unknown fields, wrong types, duplicate keys, trailing bytes and lines
 * longer than PROTOCOL_LINE_MAX are errors, answered with id null when the id is not known.
 * Bump MIGRATED_PROTOCOL_VERSION on any incompatible change; additions are announced in hello's
 * "capabilities".
 *
 * Version 2 (a request's top-level "protocol": 2) carries versions as the format's string keys
 * ("1.2.10"; "0001" is "1") and the empty schema as null, in params ("to", "version") and in
 * every reply of the request's connection; version 1 (no "protocol" field) carries integers and is
 * refused by a daemon whose format's versions are not integers (Flyway's). */

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#define MIGRATED_PROTOCOL_VERSION 2 /* the newest this build speaks */
#define PROTOCOL_VERSION_MIN 1
#define PROTOCOL_LINE_MAX (64 * 1024)
#define PROTOCOL_ID_STRING_MAX 64
#define PROTOCOL_ID_INT_MAX ((json_int_t) 1 << 53)
#define PROTOCOL_DEFAULT_SOCKET "/run/migrated/migrated.sock"
/* migrated --one-shot's exit status when a daemon holds the database: migratectl exits 6 (busy) */
#define PROTOCOL_ONE_SHOT_EXIT_LOCKED 75

/* Stable machine-readable error codes. Append only: clients map them to exit codes. */
typedef enum protocol_error_code {
        PROTOCOL_ERROR_INVALID_JSON,      /* the line is not valid JSON */
        PROTOCOL_ERROR_INVALID_REQUEST,   /* not an object, or a missing/unknown/mistyped top-level field */
        PROTOCOL_ERROR_LINE_TOO_LONG,     /* line longer than PROTOCOL_LINE_MAX */
        PROTOCOL_ERROR_UNKNOWN_METHOD,
        PROTOCOL_ERROR_INVALID_PARAMS,    /* a parameter is unknown, mistyped or out of range */
        PROTOCOL_ERROR_UNKNOWN_VERSION,   /* --to names a version that does not exist */
        PROTOCOL_ERROR_IRREVERSIBLE,      /* down across a migration without a down file */
        PROTOCOL_ERROR_CHECKSUM_MISMATCH, /* an applied migration's file was edited */
        PROTOCOL_ERROR_MISSING_MIGRATION, /* an applied version has no file any more */
        PROTOCOL_ERROR_DIRECTORY_INVALID, /* the migrations directory has problems */
        PROTOCOL_ERROR_MIGRATION_FAILED,  /* a statement failed; rolled back */
        PROTOCOL_ERROR_FOREIGN_KEY_VIOLATION,
        PROTOCOL_ERROR_BUSY,              /* another writer held the database past busy_timeout */
        PROTOCOL_ERROR_QUEUE_FULL,
        PROTOCOL_ERROR_SHUTTING_DOWN,
        PROTOCOL_ERROR_INTERRUPTED,
        PROTOCOL_ERROR_PERMISSION_DENIED,
        PROTOCOL_ERROR_DATABASE,          /* the database could not be read or written */
        PROTOCOL_ERROR_INTERNAL,
        PROTOCOL_ERROR_OUT_OF_ORDER,      /* a pending migration is older than the newest applied one */
        PROTOCOL_ERROR_CANCELLED,         /* migratectl cancel: rolled back, units started again */
        PROTOCOL_ERROR_TIMEOUT,           /* wait: the schema did not become current in time */
        PROTOCOL_ERROR_DATABASE_IN_USE,   /* a process still has the database open after the units stopped */
        PROTOCOL_ERROR_UNITS_FAILED,      /* a dependent unit could not be stopped */
        PROTOCOL_ERROR_BACKUP_FAILED,     /* no backup could be taken (e.g. no space): nothing changed */
        PROTOCOL_ERROR_INTEGRITY,         /* quick_check/integrity_check or foreign_key_check failed */
        PROTOCOL_ERROR_UNKNOWN_BACKUP,    /* restore: no such backup */
        PROTOCOL_ERROR_TOO_MANY_CONNECTIONS, /* connection limit (in all or for this uid) reached */
        PROTOCOL_ERROR_IDLE_TIMEOUT,      /* the connection sent nothing for too long */
        PROTOCOL_ERROR_FAILED_MIGRATION,  /* an earlier run left a failed migration unresolved (Prisma) */
        PROTOCOL_ERROR_BASELINE_NEEDED,   /* the database has tables but no migration history */
        PROTOCOL_ERROR_DATABASE_REPLACED, /* the database file was replaced or removed under the daemon */
        PROTOCOL_ERROR_REQUEST_TIMEOUT,   /* a request line stayed unfinished for too long */
        PROTOCOL_ERROR_BACKUP_SPACE,      /* not enough free space for the backup: refused before anything stopped */
        PROTOCOL_ERROR_DISK_FULL,         /* the database's filesystem is full: refused before anything stopped */
        PROTOCOL_ERROR_NOT_WRITABLE,      /* the database, its directory or the backup directory is not writable */
        PROTOCOL_ERROR_STATE_CONFLICT,    /* well-formed, but the state forbids it (mark applied twice, no job to cancel) */
        PROTOCOL_ERROR_RESET_NOT_ALLOWED, /* reset: this instance's configuration does not allow it ([dev] allow_reset) */
        PROTOCOL_ERROR_ONLINE_TOO_SLOW,   /* an online plan would hold the write lock over online_lock_ms (refused) */
        _PROTOCOL_ERROR_MAX,
} protocol_error_code;

const char *protocol_error_code_to_string(protocol_error_code c);
int protocol_error_code_from_string(const char *s); /* -1 when unknown */

typedef struct protocol_request {
        json_t *id;     /* integer or string; NULL when it could not be recovered */
        const char *method;
        json_t *params; /* always an object */
        int protocol;   /* the request's "protocol": PROTOCOL_VERSION_MIN when absent */
        json_t *root;   /* owns everything above */
} protocol_request;

void protocol_request_done(protocol_request *r);

/* Decodes one request line (without its newline). Returns 0, or a positive protocol_error_code + 1
 * with *ret_message set (malloc'd); ret->id is filled whenever the id could be read, so that the
 * error can be answered on it. */
int protocol_decode_request(const char *line, size_t size, protocol_request *ret, char **ret_message);

/* Parameter checking for a method, strictly: unknown keys and wrong types are refused. */
typedef enum param_type {
        PARAM_INT,
        PARAM_BOOL,
        PARAM_STRING,
} param_type;

typedef struct param_spec {
        const char *name;
        param_type type;
        json_int_t min, max; /* PARAM_INT: inclusive range; PARAM_STRING: max length */
} param_spec;

/* Returns 0, or PROTOCOL_ERROR_INVALID_PARAMS + 1 with *ret_message set. */
int protocol_check_params(json_t *params, const param_spec *specs, size_t n_specs, char **ret_message);

/* A copy of s with every byte that is not part of valid UTF-8 replaced by '?'. */
char *protocol_utf8_sanitize(const char *s);

/* The line to send when a reply cannot be encoded at all, so that every request still gets
 * exactly one final line. */
#define PROTOCOL_FALLBACK_ERROR \
        "{\"id\":null,\"error\":{\"code\":\"internal\",\"message\":\"the reply could not be encoded\"}}\n"

/* Encoders return a malloc'd line ending in '\n', or NULL on OOM. They steal the json_t passed
 * as payload. */
char *protocol_encode_result(json_t *id, json_t *result);
/* The same reply where part of the result is already encoded: fixed is an object's encoding (as
 * protocol_encode_value gives it), more (stolen, may be NULL) an object whose members join it.
 * What a large, unchanged result costs once instead of at every request. */
char *protocol_encode_result_spliced(json_t *id, const char *fixed, size_t fixed_len, json_t *more);
/* v (borrowed) encoded as replies are, without the newline: malloc'd, its length in *ret_len. */
char *protocol_encode_value(json_t *v, size_t *ret_len);
char *protocol_encode_error(json_t *id, protocol_error_code code, const char *message, json_t *extra);
char *protocol_encode_event(json_t *id, const char *event, json_t *fields);
char *protocol_encode_request(json_t *id, const char *method, json_t *params);
/* The same in a given protocol version (a "protocol" field from version 2 on). */
char *protocol_encode_request_version(json_t *id, const char *method, json_t *params, int protocol);

typedef enum protocol_reply_kind {
        PROTOCOL_REPLY_EVENT,
        PROTOCOL_REPLY_RESULT,
        PROTOCOL_REPLY_ERROR,
} protocol_reply_kind;

/* Client side: classifies one reply line. *ret_root owns the document; *ret_body points at the
 * result object, the error object, or the event line itself. Returns 0 or -EBADMSG. */
int protocol_decode_reply(const char *line, size_t size, protocol_reply_kind *ret_kind, json_t **ret_root,
                          json_t **ret_body);
