/* SPDX-License-Identifier: MIT */
#pragma once

/* The backup directory: file names that carry what a backup is ("<db>-<UTC time>-v<version>-
 * job<id>.sqlite"), so that listing needs no index file; retention; the free-space check made
 * before a backup is attempted. */

#include <jansson.h>
#include <stdint.h>

typedef struct backup_info {
        char *file; /* base name */
        char *path;
        char *time; /* ISO 8601 UTC, from the name */
        int64_t version;
        uint64_t job_id;
        uint64_t size;
} backup_info;

void backup_infos_free(backup_info *b, size_t n);
void backup_info_clear(backup_info *b);

/* Creates dir (0700) if needed. */
int backups_prepare_dir(const char *dir);

/* The name for a new backup of database at version, made by job_id. */
char *backups_new_name(const char *database, int64_t version, uint64_t job_id);

/* Parses a name made by backups_new_name; -EINVAL for other files. */
int backups_parse_name(const char *database, const char *file, backup_info *ret);

/* The backups of database in dir, newest first. */
int backups_list(const char *dir, const char *database, backup_info **ret, size_t *ret_n);

/* Deletes the oldest backups beyond keep. Returns how many were removed, or -errno. */
int backups_prune(const char *dir, const char *database, unsigned keep);

/* 0 when dir's filesystem has room for bytes plus a margin; -ENOSPC (with the free bytes in
 * *ret_free) when it has not. */
int backups_check_space(const char *dir, uint64_t bytes, uint64_t *ret_free);

json_t *backup_info_to_json(const backup_info *b);
