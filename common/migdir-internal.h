/* SPDX-License-Identifier: MIT */
#pragma once

/* Shared by the directory formats' parsers (migdir.c: ours, migdir-prisma.c: Prisma's). */

#include "macro.h"
#include "migdir.h"

int migdir_error_add(migdir_errors *e, const char *fmt, ...) _printf_(2, 3);

/* Reads a script at file (relative to dir_fd); an unusable file becomes an error naming it
 * (returns 1); returns 0 or -errno. */
int migdir_read_script(int dir_fd, const char *file, const migration_set *previous, int64_t version, bool up,
                       migration_script *ret, char ret_checksum[SHA256_HEX_SIZE], migdir_errors *errors);

void migdir_migration_done(migration *m);

int migdir_load_prisma(const char *dir, const migration_set *previous, migration_set **ret, migdir_errors *ret_errors);
