/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "backups.h"
#include "macro.h"

/* Room to spare beyond the copy itself: filesystems misbehave when completely full. */
#define SPACE_MARGIN (16u * 1024u * 1024u)

static const char *db_base(const char *database) {
        const char *slash = strrchr(database, '/');

        return slash ? slash + 1 : database;
}

void backup_info_clear(backup_info *b) {
        free(b->file);
        free(b->path);
        free(b->time);
        memset(b, 0, sizeof(*b));
}

void backup_infos_free(backup_info *b, size_t n) {
        for (size_t i = 0; b && i < n; i++)
                backup_info_clear(&b[i]);
        free(b);
}

int backups_prepare_dir(const char *dir) {
        struct stat st;

        if (mkdir(dir, 0700) < 0 && errno != EEXIST)
                return -errno;
        if (stat(dir, &st) < 0)
                return -errno;
        if (!S_ISDIR(st.st_mode))
                return -ENOTDIR;
        /* backups hold all the data: nobody else may read them */
        if ((st.st_mode & 0077) && chmod(dir, 0700) < 0)
                return -errno;
        return 0;
}

char *backups_new_name(const char *database, int64_t version, uint64_t job_id) {
        struct timespec ts;
        struct tm tm;
        char stamp[32], *name;

        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%S", &tm);
        if (asprintf(&name, "%s-%s.%03ldZ-v%" PRId64 "-job%" PRIu64 ".sqlite", db_base(database), stamp,
                     ts.tv_nsec / 1000000, version, job_id) < 0)
                return NULL;
        return name;
}

int backups_parse_name(const char *database, const char *file, backup_info *ret) {
        const char *base = db_base(database), *p;
        int Y, M, D, h, m, s, ms, n = 0;
        int64_t version;
        uint64_t job;
        size_t bl = strlen(base);

        if (strncmp(file, base, bl) != 0 || file[bl] != '-')
                return -EINVAL;
        p = file + bl + 1;
        if (sscanf(p, "%4d%2d%2dT%2d%2d%2d.%3dZ-v%" SCNd64 "-job%" SCNu64 ".sqlite%n", &Y, &M, &D, &h, &m, &s, &ms,
                   &version, &job, &n) != 9 || p[n] != '\0')
                return -EINVAL;
        memset(ret, 0, sizeof(*ret));
        if (asprintf(&ret->time, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", Y, M, D, h, m, s, ms) < 0)
                return -ENOMEM;
        ret->version = version;
        ret->job_id = job;
        return 0;
}

/* Newest first; within one millisecond, the later job first. */
static int newest_first(const void *a, const void *b) {
        const backup_info *x = a, *y = b;
        int c = strcmp(y->time, x->time);

        if (c != 0)
                return c;
        return y->job_id > x->job_id ? 1 : y->job_id < x->job_id ? -1 : 0;
}

int backups_list(const char *dir, const char *database, backup_info **ret, size_t *ret_n) {
        backup_info *list = NULL;
        size_t n = 0;
        struct dirent *de;
        DIR *d;

        d = opendir(dir);
        if (!d) {
                if (errno != ENOENT)
                        return -errno;
                *ret = NULL; /* no directory yet: no backups */
                *ret_n = 0;
                return 0;
        }
        while ((de = readdir(d))) {
                backup_info b, *m;
                struct stat st;

                if (backups_parse_name(database, de->d_name, &b) < 0)
                        continue;
                if (fstatat(dirfd(d), de->d_name, &st, 0) < 0 || !S_ISREG(st.st_mode)) {
                        free(b.time);
                        continue;
                }
                b.size = (uint64_t) st.st_size;
                b.file = strdup(de->d_name);
                if (asprintf(&b.path, "%s/%s", dir, de->d_name) < 0)
                        b.path = NULL;
                m = realloc(list, (n + 1) * sizeof(*m));
                if (!m || !b.file || !b.path) {
                        free(b.file);
                        free(b.path);
                        free(b.time);
                        free(m ? m : list);
                        closedir(d);
                        return -ENOMEM;
                }
                list = m;
                list[n++] = b;
        }
        closedir(d);
        if (n > 1)
                qsort(list, n, sizeof(*list), newest_first);
        *ret = list;
        *ret_n = n;
        return 0;
}

int backups_prune(const char *dir, const char *database, unsigned keep) {
        backup_info *list = NULL;
        size_t n = 0;
        int removed = 0, r;

        r = backups_list(dir, database, &list, &n);
        if (r < 0)
                return r;
        for (size_t i = keep; i < n; i++)
                if (unlink(list[i].path) == 0)
                        removed++;
        backup_infos_free(list, n);
        return removed;
}

int backups_check_space(const char *dir, uint64_t bytes, uint64_t *ret_free) {
        struct statvfs sv;
        uint64_t avail;

        if (statvfs(dir, &sv) < 0)
                return -errno;
        avail = (uint64_t) sv.f_bavail * (uint64_t) sv.f_frsize;
        *ret_free = avail;
        return avail >= bytes + SPACE_MARGIN ? 0 : -ENOSPC;
}

json_t *backup_info_to_json(const backup_info *b) {
        return json_pack("{s:s,s:s,s:s,s:I,s:I,s:I}", "file", b->file, "path", b->path, "time", b->time, "version",
                         (json_int_t) b->version, "job_id", (json_int_t) b->job_id, "size", (json_int_t) b->size);
}
