/* SPDX-License-Identifier: MIT */
#pragma once

/* The migrations directory: NNNN_name.up.sql with an optional NNNN_name.down.sql. Parsing reads
 * every file, validates the set as a whole and reports every problem at once, each naming its
 * file, so that a user fixes the directory in one pass. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "sha256.h"

#define MIGRATION_NAME_MAX 200
#define MIGRATION_FILE_MAX (64u * 1024u * 1024u)

enum {
        /* -- migrated: no-transaction: run outside a transaction, on its own */
        MIGRATION_NO_TRANSACTION = 1u << 0,
};

/* Expected outcomes, positive per the project's error convention. */
enum {
        MIGDIR_INVALID = 1, /* the directory has problems, listed in the migdir_errors */
};

typedef struct migration_script {
        char *file; /* base name inside the directory */
        char *sql;  /* NUL-terminated contents */
        size_t size;
        unsigned flags;
        /* identity of the file when read, so that a rescan can reuse unchanged contents */
        ino_t ino;
        int64_t mtime_ns;
} migration_script;

typedef enum migdir_format {
        MIGDIR_NATIVE, /* NNNN_name.up.sql / NNNN_name.down.sql */
        MIGDIR_PRISMA, /* <timestamp>_<name>/migration.sql (+ down.sql), migration_lock.toml */
} migdir_format;

typedef struct migration {
        int64_t version;
        char *name;
        char *key; /* Prisma: the folder name, the migration's identity in _prisma_migrations */
        migration_script up;
        migration_script down; /* down.file == NULL: irreversible */
        char checksum[SHA256_HEX_SIZE]; /* of the up file's bytes */
        /* Prisma also accepts the checksums of the file with CRLF made LF and LF made CRLF */
        unsigned char digests[3][32];
        bool prisma;
} migration;

typedef struct migration_set {
        char *dir;
        migdir_format format;
        migration *items; /* ascending by version */
        size_t n;
} migration_set;

typedef struct migdir_errors {
        char **messages;
        size_t n;
} migdir_errors;

/* Reads and validates dir. Returns 0 with *ret set, MIGDIR_INVALID with every problem in
 * *ret_errors (if given), or -errno when the directory itself cannot be read. previous, if given,
 * is a set loaded earlier from the same directory whose unchanged files are reused rather than
 * read and hashed again. */
int migdir_load(const char *dir, const migration_set *previous, migration_set **ret,
                migdir_errors *ret_errors);

/* The same for a directory in the given format. */
int migdir_load_format(const char *dir, migdir_format format, const migration_set *previous, migration_set **ret,
                       migdir_errors *ret_errors);

/* MIGDIR_PRISMA when dir holds Prisma's migration_lock.toml, else MIGDIR_NATIVE. */
migdir_format migdir_detect_format(const char *dir);
const char *migdir_format_to_string(migdir_format f);
int migdir_format_from_string(const char *s, migdir_format *ret);

/* Whether a recorded checksum is this migration's: exact for our format; for Prisma's, any of the
 * line-ending variants and the old unpadded form it accepts. */
bool migration_checksum_matches(const migration *m, const char *recorded);

/* The name a migration is recorded under: Prisma's folder name, or our name. */
const char *migration_record_name(const migration *m);

migration_set *migration_set_free(migration_set *s);
void migration_set_freep(migration_set **s);
void migdir_errors_clear(migdir_errors *e);

const migration *migration_set_find(const migration_set *s, int64_t version);
int64_t migration_set_latest(const migration_set *s); /* 0 when empty */

/* Parses "NNNN_name.up.sql" / "NNNN_name.down.sql". Returns 0, or -EINVAL with a static reason. */
int migration_parse_filename(const char *file, int64_t *ret_version, char **ret_name, bool *ret_up,
                             const char **ret_reason);

/* Reads the leading comment block of a script for "-- migrated: <directive>" lines. Returns 0 or
 * -EINVAL with *ret_bad set to a malloc'd copy of the offending directive. */
int migration_parse_directives(const char *sql, size_t size, unsigned *ret_flags, char **ret_bad);

bool migration_name_is_valid(const char *name);

/* Number of digits in the widest version of the set (at least 4), for naming new files. */
int migration_set_version_width(const migration_set *s);
