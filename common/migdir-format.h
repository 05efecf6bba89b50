/* SPDX-License-Identifier: MIT */
#pragma once

/* The table of migration formats: one row per layout of a migrations directory, holding
 * everything that differs between formats. The shared driver (migdir.c) opens the directory,
 * lets the row load its items, then sorts them in the row's order and refuses duplicates; the
 * daemon's settings, hello's capabilities and `migratectl new` read the table rather than naming
 * formats. A new format is a migdir-<name>.c defining its row, one line in MIGDIR_FORMATS
 * (migdir.h) and its file in common/meson.build. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "migdir.h"

/* One file a format's `migratectl new` writes, relative to the migrations directory. */
typedef struct migration_new_file {
        char *path;    /* "0004_add_users.up.sql", "20260306120000_add_users/migration.sql" */
        char *content; /* the comment header */
} migration_new_file;

#define MIGRATION_NEW_FILES_MAX 2

typedef struct migration_new {
        char *dir; /* a folder to create first (relative), or NULL */
        migration_new_file files[MIGRATION_NEW_FILES_MAX];
        size_t n;
        int64_t version;
} migration_new;

void migration_new_clear(migration_new *n);

struct migration_format {
        const char *name;       /* the "format" setting's value and status' "format" */
        const char *capability; /* announced in hello's capabilities, or NULL */
        const char *layout;     /* its file names, for people */
        const char *version_word; /* "version", "timestamp": for duplicate messages */
        const char *directive_prefix; /* how a directive line starts, for messages: "-- migrated: " */
        const char *directives;       /* the directives it knows, for messages */
        /* A database with tables but none of this format's history needs a baseline first (its
         * tool's users adopt existing databases that way) rather than every migration from 1. */
        bool baseline_untracked_tables;

        /* Whether the directory (dir_fd) is in this layout; *ret_reason says why. NULL: never
         * detected (the fallback format). */
        bool (*detect)(int dir_fd, const char **ret_reason);
        /* Checks the directory as a whole (Prisma's provider). Returns 0, 1 with the problems
         * recorded, or -errno. NULL: nothing to check. */
        int (*check_dir)(int dir_fd, migdir_errors *errors);
        /* Adds every item of the directory to s (migdir_set_add). Returns 0, 1 when some items had
         * problems (recorded; the good ones are kept), or -errno. */
        int (*load_items)(int dir_fd, const migration_set *previous, migration_set *s, migdir_errors *errors);
        /* Splits one file's text into its up and down sections ([off, off + len) each; a down
         * length of SIZE_MAX: no down section). Returns 0 or -EINVAL with *ret_reason set. NULL:
         * up and down are separate files. */
        int (*split)(const char *sql, size_t size, size_t *ret_up_off, size_t *ret_up_len, size_t *ret_down_off,
                     size_t *ret_down_len, const char **ret_reason);
        /* Reads a script's directives into MIGRATION_* flags; -EINVAL with *ret_bad (malloc'd)
         * naming an unknown one. */
        int (*parse_directives)(const char *sql, size_t size, unsigned *ret_flags, char **ret_bad);
        /* The format's order of versions: <0, 0 (the same version: a duplicate), >0. */
        int (*compare)(const migration *a, const migration *b);
        /* Fills m->format_data once its up script is read. NULL: no state of its own. */
        int (*prepare)(migration *m);
        void (*free_data)(void *data);
        /* Whether a recorded checksum (other than m->checksum itself) is this migration's. NULL:
         * only the exact SHA-256 hex. */
        bool (*checksum_also_matches)(const migration *m, const char *recorded);
        /* The file names and headers `migratectl new NAME` writes after the set s. Returns 0,
         * -EOVERFLOW when no version is left, -ENOMEM. NULL: this format's files are written by
         * its own tool. */
        int (*new_files)(const migration_set *s, const char *name, migration_new *ret);
        /* A version as its string key (protocol version 2), into buf. NULL: the integer in decimal. */
        void (*key_of)(int64_t version, char *buf, size_t size);
        /* The version a string key names; -EINVAL when key is not one. NULL: a decimal integer. */
        int (*version_of_key)(const char *key, int64_t *ret);
};

#define MIGRATION_KEY_MAX 32

/* A version's string key by f's rule (version 0, the empty schema, has none: ""). */
void migration_format_key(const migration_format *f, int64_t version, char buf[static MIGRATION_KEY_MAX]);
/* The version a string key names by f's rule: 0, or -EINVAL. */
int migration_format_parse_key(const migration_format *f, const char *key, int64_t *ret);

/* migration_format_native, migration_format_prisma, ...: each defined in its migdir-<name>.c */
#define MIGDIR_FORMAT_DECLARE(id, name) extern const migration_format migration_format_##name;
MIGDIR_FORMATS(MIGDIR_FORMAT_DECLARE)
#undef MIGDIR_FORMAT_DECLARE

/* The row of a format, or NULL for a value outside the table. */
const migration_format *migration_format_get(migdir_format f);
/* The row named name ("native", "prisma"), or NULL. */
const migration_format *migration_format_from_name(const char *name);
/* The rows in table order, for listing (hello's capabilities, messages). */
const migration_format *migration_format_at(size_t i);
size_t migration_format_count(void);

/* Loads dir with a row that may be outside the table (tests plug a format in this way). */
int migdir_load_with(const char *dir, const migration_format *f, const migration_set *previous, migration_set **ret,
                     migdir_errors *ret_errors);
