/* SPDX-License-Identifier: MIT */
#pragma once

/* The backup directory: file names that carry what a backup is ("<db>-<UTC time>-v<version>-
 * job<id>[-manual]<backend suffix>"), so that listing needs no index file; its trust checks; the
 * exclusive creation of a backup under a temporary name and its atomic publication; retention;
 * the free-space check made before a backup is attempted. */

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "db.h"

typedef enum backup_kind {
        BACKUP_AUTO,   /* taken by a job before a change: rotated by keep */
        BACKUP_MANUAL, /* migratectl backup: never pruned by the daemon */
        BACKUP_RESET,  /* taken by migratectl reset before it drops everything: never pruned either */
} backup_kind;

typedef struct backup_info {
        char *file; /* base name */
        char *path;
        char *time; /* ISO 8601 UTC, from the name */
        int64_t version;
        uint64_t job_id;
        uint64_t size;
        backup_kind kind;
} backup_info;

void backup_infos_free(backup_info *b, size_t n);
void backup_info_clear(backup_info *b);

/* Opens the backup directory (creating it 0700 when create is set) after checking that only we
 * control it: not a symlink, owned by our euid, not writable by group or others. *ret_problem
 * says what to fix when it returns -EPERM. -ENOENT when it does not exist and create is unset. */
int backups_open_dir(const char *dir, bool create, int *ret_fd, char **ret_problem);

/* The name for a new backup of database at version, made by job_id. */
char *backups_new_name(const db_backend *be, const char *database, int64_t version, uint64_t job_id,
                       backup_kind kind);

/* Parses a name made by backups_new_name; -EINVAL for other files. */
int backups_parse_name(const db_backend *be, const char *database, const char *file, backup_info *ret);

/* The complete backups of database in dir, newest first: regular files owned by us (never
 * symlinks) that the backend calls complete. An untrusted directory is -EPERM. */
int backups_list(const db_backend *be, const char *dir, const char *database, backup_info **ret, size_t *ret_n);

/* The highest job id any backup of database in dir was made by (0 when none). */
uint64_t backups_max_job_id(const db_backend *be, const char *dir, const char *database);

/* Creates name in dirfd exclusively (never through a symlink, never a file someone else made),
 * mode 0600. Returns the open file descriptor or -errno. */
int backups_create_file(int dirfd, const char *name);

/* The temporary name a backup is written under until it is complete: hidden, never listed. */
char *backups_temp_name(const char *final_name);

/* Makes the completed temporary file durable and gives it its final name (never replacing a
 * file), then makes the rename durable. */
int backups_publish(int dirfd, int fd, const char *temp_name, const char *final_name);

/* Removes temporaries a killed daemon left in dir. Returns how many, or -errno. */
int backups_remove_temporaries(const char *dir, const char *database);

/* Deletes the oldest automatic backups beyond keep, except those named in protect (the restore
 * points of applied irreversible migrations). Manual backups are never pruned. Returns how many
 * were removed, or -errno. */
int backups_prune(const db_backend *be, const char *dir, const char *database, unsigned keep,
                  char *const *protect, size_t n_protect);

/* 0 when dir's filesystem has room for bytes plus a margin; -ENOSPC (with the free bytes in
 * *ret_free) when it has not. */
int backups_check_space(const char *dir, uint64_t bytes, uint64_t *ret_free);

json_t *backup_info_to_json(const backup_info *b);
