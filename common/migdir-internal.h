/* SPDX-License-Identifier: MIT */
#pragma once

/* Shared by the driver (migdir.c) and the formats' parsers (migdir-native.c, migdir-prisma.c). */

#include <dirent.h>

#include "macro.h"
#include "migdir-format.h"
#include "migdir.h"

int migdir_error_add(migdir_errors *e, const char *fmt, ...) _printf_(2, 3);

/* Says that the messages from index from on are about the one item of that version (0: its
 * version is unknown), so that migdir_load_format_items() can keep the other items. */
int migdir_errors_tag(migdir_errors *e, size_t from, int64_t version);

/* asprintf() that leaves *ret NULL on failure (glibc leaves it undefined). Returns 0 or -ENOMEM. */
int migdir_asprintf(char **ret, const char *fmt, ...) _printf_(2, 3);

/* asprintf() returning the string: NULL on failure. */
char *migdir_strdupf(const char *fmt, ...) _printf_(1, 2);

/* Adds a file of `migratectl new` to ret, of version: path and content, both taken over (NULL:
 * out of memory). Returns 0 or -ENOMEM. */
int migdir_new_add(migration_new *ret, int64_t version, char *path, char *content);

/* The current UTC time for a new file's header, "YYYY-MM-DD HH:MM:SS UTC", or "-". */
#define MIGDIR_NOW_TEXT_MAX 32
void migdir_now_text(char buf[static MIGDIR_NOW_TEXT_MAX]);

/* Reads a script at file (relative to dir_fd), with the directives of format f; an unusable file
 * becomes an error naming it (returns 1); returns 0 or -errno. */
int migdir_read_script(int dir_fd, const char *file, const migration_format *f, const migration_set *previous,
                       int64_t version, bool up, migration_script *ret, char ret_checksum[SHA256_HEX_SIZE],
                       migdir_errors *errors);

/* Reads one file holding both directions and splits it with f->split into m->up and m->down
 * (both named file); the checksum is of the whole file. Returns 0, 1 (recorded) or -errno. */
int migdir_read_split(int dir_fd, const char *file, const migration_format *f, const migration_set *previous,
                      migration *m, migdir_errors *errors);

/* A DIR over the directory dir_fd for readdir(), leaving dir_fd open; NULL with errno set. */
DIR *migdir_opendir(int dir_fd);

/* The loop of a format's load_items: load_one (0, 1 recorded, -errno) for every entry of dir_fd
 * that want accepts, keeping the good items. With version_of, the messages of a bad entry are
 * tagged with the version it names (migdir_errors_tag), so that the other items stay usable.
 * Returns 0, 1 when some items had problems, -errno. */
int migdir_load_entries(int dir_fd, const migration_set *previous, migration_set *s, migdir_errors *errors,
                        bool (*want)(int dir_fd, const char *name),
                        int (*load_one)(int dir_fd, const char *name, const migration_set *previous, migration *m,
                                        migdir_errors *errors),
                        int64_t (*version_of)(const char *name));

/* Appends a zeroed migration to s and returns it, or NULL. */
migration *migdir_set_add(migration_set *s);
/* Drops the last migration of s (one whose item had problems). */
void migdir_set_drop_last(migration_set *s);

/* Loads one item of the directory (a file, a folder) into m: 0, 1 with its problems recorded, or
 * -errno. */
typedef int (*migdir_item_loader)(int dir_fd, const char *file, const migration_set *previous, migration *m,
                                  migdir_errors *errors);
/* Appends the item load reads from file to s, or nothing when it has problems (1, recorded);
 * returns 0, 1 or -errno. */
int migdir_load_item(migration_set *s, migdir_item_loader load, int dir_fd, const char *file,
                     const migration_set *previous, migdir_errors *errors);

void migdir_migration_done(migration *m);

/* Orders by the integer version: the rule of every format whose versions are integers. */
int migdir_compare_integer(const migration *a, const migration *b);

/* The version `new` gives the next migration of an integer-versioned set: the current UTC
 * YYYYMMDDHHMMSS when the set is numbered by timestamps, else the latest plus one. Returns 0 or
 * -EOVERFLOW. */
int migdir_next_version(const migration_set *s, int64_t *ret);
/* The current UTC time as a YYYYMMDDHHMMSS version. */
int64_t migdir_timestamp_version_now(void);
