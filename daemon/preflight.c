/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "backups.h"
#include "macro.h"
#include "preflight.h"

/* A migration writes its changes to the WAL first: below this, the database's filesystem is full. */
#define PREFLIGHT_DB_FREE_MIN (1024 * 1024)

static int fail(engine_error *err, protocol_error_code code, json_t *extra, const char *fmt, ...) _printf_(4, 5);
static int fail(engine_error *err, protocol_error_code code, json_t *extra, const char *fmt, ...) {
        va_list ap;
        int r;

        engine_error_clear(err);
        va_start(ap, fmt);
        r = vasprintf(&err->message, fmt, ap);
        va_end(ap);
        if (r < 0) {
                err->message = NULL;
                json_decref(extra);
                return -ENOMEM;
        }
        err->code = code;
        err->extra = extra;
        return ENGINE_FAILED;
}

/* The directory itself, or the nearest existing parent that will hold it once created. */
static char *existing_dir(const char *path) {
        char *p = strdup(path);
        struct stat st;

        while (p && stat(p, &st) < 0 && strcmp(p, "/") != 0) {
                char *parent = strdup(dirname(p));
                free(p);
                p = parent;
        }
        return p;
}

/* path must be writable; at is path or the existing parent it will be created in. */
static int check_writable(const char *path, const char *at, const char *what, engine_error *err) {
        struct stat st;

        if (stat(at, &st) == 0 && !S_ISDIR(st.st_mode) && !streq(at, path))
                errno = ENOTDIR;
        else if (access(at, W_OK) == 0 || errno == ENOENT)
                return 0;
        return fail(err, PROTOCOL_ERROR_NOT_WRITABLE,
                    json_pack("{s:s,s:s,s:s}", "path", path, "at", at, "errno", strerror(errno)),
                    "%s %s is not writable by migrated (%s%s%s); fix its owner or mode (or the unit's "
                    "ReadWritePaths=); nothing was stopped or changed",
                    what, path, strerror(errno), streq(at, path) ? "" : " at ", streq(at, path) ? "" : at);
}

int preflight_check(const config *cfg, const db_backend *backend, const engine_job *job, engine_error *err) {
        _cleanup_free_ char *copy = strdup(cfg->database), *backup_at = NULL;
        const char *dir;
        struct statvfs sv;
        uint64_t need = 0, avail;
        int r;

        if (!copy)
                return -ENOMEM;
        dir = dirname(copy);
        /* a server's database is no file of ours: only the backup directory is */
        r = config_is_server(cfg) ? 0 : check_writable(dir, dir, "the database's directory", err);
        if (r == 0 && !config_is_server(cfg))
                r = check_writable(cfg->database, cfg->database, "the database", err);
        if (r != 0)
                return r;
        if (!config_is_server(cfg) && statvfs(dir, &sv) == 0 && (uint64_t) sv.f_bavail * sv.f_frsize < PREFLIGHT_DB_FREE_MIN)
                return fail(err, PROTOCOL_ERROR_DISK_FULL,
                            json_pack("{s:s,s:I}", "path", dir, "free_bytes",
                                      (json_int_t) ((uint64_t) sv.f_bavail * sv.f_frsize)),
                            "the filesystem of %s is full (%" PRIu64 " KiB free); free some space; nothing was "
                            "stopped or changed", dir, (uint64_t) sv.f_bavail * sv.f_frsize / 1024);
        if (!cfg->backup_dir || job->kind == ENGINE_JOB_MARK_APPLIED || job->kind == ENGINE_JOB_MARK_ROLLED_BACK ||
            job->kind == ENGINE_JOB_BASELINE || job->kind == ENGINE_JOB_REPAIR)
                return 0;
        backup_at = existing_dir(cfg->backup_dir);
        if (!backup_at)
                return -ENOMEM;
        r = check_writable(cfg->backup_dir, backup_at, "the backup directory", err);
        if (r != 0)
                return r;
        /* a backend that cannot tell needs only the margin */
        (void) db_disk_size(backend, cfg->database, &need);
        r = backups_check_space(backup_at, need, &avail);
        if (r == -ENOSPC)
                return fail(err, PROTOCOL_ERROR_BACKUP_SPACE,
                            json_pack("{s:s,s:I,s:I}", "backup_dir", cfg->backup_dir, "needed_bytes", (json_int_t) need,
                                      "free_bytes", (json_int_t) avail),
                            "not enough space for the backup in %s: %" PRIu64 " MiB free, about %" PRIu64
                            " MiB needed; free some space or set [backup] dir; nothing was stopped or changed",
                            cfg->backup_dir, avail >> 20, (need >> 20) + 16);
        return 0;
}
