/* SPDX-License-Identifier: MIT */
#pragma once

/* The daemon's own state directory (DESIGN.md §9): documents only the daemon may write, such as the
 * units a job stopped and the hold and failed plan behind the wait gate. The directory is created
 * 0700 and refused when someone else could plant or swap a file in it; documents are written
 * atomically without following symlinks and validated when read. */

#include <jansson.h>
#include <stdbool.h>
#include <sys/stat.h>

/* migrated's own history tables for every format that keeps them out of the database. */
#define STATEDIR_HISTORY_NAME "history.sqlite"

/* The default for a database: the first path of $STATE_DIRECTORY when systemd set it; otherwise
 * /var/lib/migrated/db-<escaped path> for root and ${XDG_STATE_HOME:-~/.local/state}/migrated/db-…
 * for everyone else. database must be absolute. Returns NULL on OOM or without a home. */
char *statedir_default_path(const char *database);

/* "/var/lib/x.db" → "var-lib-x.db", as systemd-escape --path does. */
char *statedir_escape_path(const char *path);

/* Creates path (0700, parents as needed) and opens it. Refuses, with *ret_message saying what to fix,
 * a symlink, a directory not owned by the effective uid, or one writable by group or others.
 * Returns an O_DIRECTORY fd, or -errno (*ret_message set for refusals, may be NULL on OOM). */
int statedir_open(const char *path, char **ret_message);

/* Writes name atomically: a new temporary file (O_EXCL|O_NOFOLLOW, 0600), fsync, renameat, fsync of
 * the directory. */
int statedir_write(int dirfd, const char *name, json_t *doc);

/* Reads name as a JSON object: -ENOENT when absent; -EBADMSG when it is not a regular file owned by
 * us, is writable by others, too large or not a JSON object. */
int statedir_read(int dirfd, const char *name, json_t **ret);

/* Creates name when absent (0600, never through a symlink) and checks it as statedir_read() does:
 * a regular file owned by us and not writable by others, else -EBADMSG. Fills *ret_st. For a file
 * another program opens by path (SQLite), which then checks that it opened this very file. */
int statedir_create_file(int dirfd, const char *name, struct stat *ret_st);

/* Removes name; absent is fine. */
int statedir_remove(int dirfd, const char *name);
