/* SPDX-License-Identifier: MIT */
#pragma once

/* The migrations directory, in one of the formats of the table (migdir-format.h): ours,
 * NNNN_name.up.sql with an optional NNNN_name.down.sql, or Prisma's. Parsing reads every file,
 * validates the set as a whole and reports every problem at once, each naming its file, so that a
 * user fixes the directory in one pass. */

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
        /* Flyway's R__ scripts: no version of their own, after every versioned migration, applied
         * again whenever their checksum changes */
        MIGRATION_REPEATABLE = 1u << 1,
        /* -- migrated: online / -- migrated: breaking: the author's classification overrides
         * migrated's (daemon/classify.h) */
        MIGRATION_ONLINE = 1u << 2,
        MIGRATION_BREAKING = 1u << 3,
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
        unsigned line_offset; /* lines of the file before sql (a section of a one-file format) */
        /* identity of the file when read, so that a rescan can reuse unchanged contents */
        ino_t ino;
        int64_t mtime_ns;
} migration_script;

/* The table of migration formats, one line per format: its migdir_format value (what the
 * daemon's configuration and bookkeeping carry) and the name of its row, migration_format_<name>,
 * defined in common/migdir-<name>.c (see migdir-format.h). Detection tries them in this order;
 * the first is the fallback. A new format appends one line. */
#define MIGDIR_FORMATS(X)                                                                          \
        X(MIGDIR_NATIVE, native) /* NNNN_name.up.sql / NNNN_name.down.sql */                      \
        X(MIGDIR_PRISMA, prisma) /* <timestamp>_<name>/migration.sql (+ down.sql), migration_lock.toml */ \
        X(MIGDIR_GOOSE, goose)   /* {version}_{name}.sql with -- +goose Up / Down sections */ \
        X(MIGDIR_GOLANG_MIGRATE, golang_migrate) /* {version}_{title}.up.sql / .down.sql */ \
        X(MIGDIR_FLYWAY, flyway) /* V<version>__<description>.sql (+ U<version>__<description>.sql) */ \
        X(MIGDIR_DBMATE, dbmate) /* <version>_<name>.sql with -- migrate:up / -- migrate:down blocks */

typedef enum migdir_format {
#define MIGDIR_FORMAT_ENUM(id, name) id,
        MIGDIR_FORMATS(MIGDIR_FORMAT_ENUM)
#undef MIGDIR_FORMAT_ENUM
        _MIGDIR_FORMAT_MAX,
} migdir_format;

typedef struct migration_format migration_format;

typedef struct migration {
        /* The version as a number, as the protocol and the history carry it; the format orders
         * migrations (migration_format.compare), so a format whose versions are not integers
         * orders by version_key instead. */
        int64_t version;
        char *version_key; /* the version as written in the file or folder name ("0001", "1.2.10") */
        char *name;
        char *key; /* the name the format records, when it differs from name (Prisma: the folder name) */
        migration_script up;
        migration_script down; /* down.file == NULL: irreversible */
        char checksum[SHA256_HEX_SIZE]; /* of the up file's bytes */
        const migration_format *format;
        void *format_data; /* the format's own state (Prisma: the line-ending variants' digests) */
} migration;

typedef struct migration_set {
        char *dir;
        migdir_format format;
        migration *items; /* ascending in the format's order */
        size_t n;
} migration_set;

typedef struct migdir_errors {
        char **messages;
        size_t n;
        /* Per message, once a format tagged it (migdir_errors_tag): the version of the one item
         * it is about, 0 when the item's version is unknown, -1 when it is not about one item. */
        int64_t *versions;
        size_t n_versions;
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

/* The same, except that an item with problems hides none of the others: when every problem is
 * about one item (tagged by the format), returns 0 with the good items in *ret and those problems
 * in *ret_errors, so that they are reported and the rest stays usable. Problems of the directory
 * as a whole (its lock file, a duplicate version) still give MIGDIR_INVALID. */
int migdir_load_format_items(const char *dir, migdir_format format, const migration_set *previous,
                             migration_set **ret, migdir_errors *ret_errors);

/* The version of the item errors->messages[i] is about: 0 unknown, -1 not about one item. */
int64_t migdir_error_version(const migdir_errors *e, size_t i);

/* The first format of the table that recognises dir (Prisma: migration_lock.toml), else
 * MIGDIR_NATIVE. *ret_reason, if given, says why in a phrase ("migration_lock.toml is present"). */
migdir_format migdir_detect_format_reason(const char *dir, const char **ret_reason);
migdir_format migdir_detect_format(const char *dir);
const char *migdir_format_to_string(migdir_format f);
int migdir_format_from_string(const char *s, migdir_format *ret);
/* The provider Prisma's migration_lock.toml must name, the backend's: "sqlite" (the default) or
 * "postgresql"; set once at startup, before any directory is read. */
void migdir_set_prisma_provider(const char *provider);
/* The accepted values of the "format" setting, for messages: "auto, native or prisma". */
const char *migdir_format_choices(void);

/* Whether a recorded checksum is this migration's: exact, or by its format's own rule (Prisma's:
 * any of the line-ending variants, and the old unpadded form). */
bool migration_checksum_matches(const migration *m, const char *recorded);

/* The name a migration is recorded under: its key where the format sets one (Prisma's folder
 * name), else its name. */
const char *migration_record_name(const migration *m);

migration_set *migration_set_free(migration_set *s);
void migration_set_freep(migration_set **s);
void migdir_errors_clear(migdir_errors *e);

/* The member with this version number, or NULL. */
const migration *migration_set_find(const migration_set *s, int64_t version);
int64_t migration_set_latest(const migration_set *s); /* the newest versioned one; 0 when none */

/* The native format's rules (migdir-native.c), which migratectl and the other formats reuse. */

/* Parses "NNNN_name.up.sql" / "NNNN_name.down.sql". Returns 0, or -EINVAL with a static reason. */
int migration_parse_filename(const char *file, int64_t *ret_version, char **ret_name, bool *ret_up,
                             const char **ret_reason);

/* Reads the leading comment block of a script for "-- migrated: <directive>" lines. Returns 0 or
 * -EINVAL with *ret_bad set to a malloc'd copy of the offending directive. */
int migration_parse_directives(const char *sql, size_t size, unsigned *ret_flags, char **ret_bad);
/* Whether the script's leading comments accept the lint rule: "-- migrated: accept RULE". */
bool migration_accepts_rule(const char *sql, size_t size, const char *rule);

bool migration_name_is_valid(const char *name);


/* Number of digits in the widest version of the set (at least 4), for naming new files. */
int migration_set_version_width(const migration_set *s);

/* Flyway's rules (migdir-flyway.c), which its history reuses. */

/* Parses a Flyway version ("1.2.10", "1_2") of len bytes into the int64 that orders as Flyway
 * orders versions (at most three parts); *ret_key, if given, gets Flyway's display text ('_' as
 * '.'). Returns 0, -EINVAL with a static reason, or -ENOMEM. */
int migration_flyway_version(const char *text, size_t len, int64_t *ret, char **ret_key, const char **ret_reason);
/* Flyway's checksum of a script: CRC-32 of its lines without line breaks or a leading BOM. */
int32_t migration_flyway_checksum(const char *sql, size_t size);
