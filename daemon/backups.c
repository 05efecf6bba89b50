/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
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
#define TEMP_SUFFIX ".partial"

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

static void closedirp(DIR **d) {
        if (*d)
                closedir(*d);
}

/* Whoever controls the backup directory controls what restore installs: refuse any directory
 * another user could have written to, and say what to fix. */
int backups_open_dir(const char *dir, bool create, int *ret_fd, char **ret_problem) {
        _cleanup_close_ int fd = -EBADF;
        struct stat st;

        *ret_problem = NULL;
        if (create && mkdir(dir, 0700) < 0 && errno != EEXIST)
                return -errno;
        fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
                if (errno == ELOOP || errno == ENOTDIR) {
                        struct stat lst;
                        bool link = lstat(dir, &lst) == 0 && S_ISLNK(lst.st_mode);
                        if (asprintf(ret_problem, "the backup directory %s is %s; make it a real directory owned by "
                                     "migrated's user (mode 0700) or configure another one", dir,
                                     link ? "a symbolic link" : "not a directory") < 0)
                                return -ENOMEM;
                        return -EPERM;
                }
                return -errno;
        }
        if (fstat(fd, &st) < 0)
                return -errno;
        if (st.st_uid != geteuid()) {
                if (asprintf(ret_problem, "the backup directory %s is owned by uid %u, not by migrated's user (uid %u); "
                             "chown it to uid %u (mode 0700) or configure another one", dir, (unsigned) st.st_uid,
                             (unsigned) geteuid(), (unsigned) geteuid()) < 0)
                        return -ENOMEM;
                return -EPERM;
        }
        if (st.st_mode & 0022) {
                if (asprintf(ret_problem, "the backup directory %s is writable by %s (mode %04o), so its files cannot "
                             "be trusted; check its content, then chmod 0700 it", dir,
                             (st.st_mode & 0002) ? "everyone" : "its group", (unsigned) (st.st_mode & 07777)) < 0)
                        return -ENOMEM;
                return -EPERM;
        }
        /* backups hold all the data: nobody else may read them */
        if ((st.st_mode & 0077) && fchmod(fd, 0700) < 0)
                return -errno;
        *ret_fd = TAKE_FD(fd);
        return 0;
}

/* The name's mark of a kind: none for the daemon's own (rotated) backups. */
static const char *backup_kind_suffix(backup_kind kind) {
        return kind == BACKUP_MANUAL ? "-manual" : kind == BACKUP_RESET ? "-reset" : "";
}

char *backups_new_name(const db_backend *be, const char *database, int64_t version, uint64_t job_id,
                       backup_kind kind) {
        struct timespec ts;
        struct tm tm;
        char stamp[32], *name;

        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%S", &tm);
        if (asprintf(&name, "%s-%s.%03ldZ-v%" PRId64 "-job%" PRIu64 "%s%s", db_base(database), stamp,
                     ts.tv_nsec / 1000000, version, job_id, backup_kind_suffix(kind),
                     be->backup_suffix) < 0)
                return NULL;
        return name;
}

int backups_parse_name(const db_backend *be, const char *database, const char *file, backup_info *ret) {
        const char *base = db_base(database), *p;
        int Y, M, D, h, m, s, ms, n = 0;
        backup_kind kind = BACKUP_AUTO;
        int64_t version;
        uint64_t job;
        size_t bl = strlen(base);

        if (strncmp(file, base, bl) != 0 || file[bl] != '-')
                return -EINVAL;
        p = file + bl + 1;
        if (sscanf(p, "%4d%2d%2dT%2d%2d%2d.%3dZ-v%" SCNd64 "-job%" SCNu64 "%n", &Y, &M, &D, &h, &m, &s, &ms, &version,
                   &job, &n) != 9)
                return -EINVAL;
        p += n;
        if (strncmp(p, "-manual", 7) == 0) {
                kind = BACKUP_MANUAL;
                p += 7;
        } else if (strncmp(p, "-reset", 6) == 0) {
                kind = BACKUP_RESET;
                p += 6;
        }
        if (!streq(p, be->backup_suffix))
                return -EINVAL;
        memset(ret, 0, sizeof(*ret));
        if (asprintf(&ret->time, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", Y, M, D, h, m, s, ms) < 0)
                return -ENOMEM;
        ret->version = version;
        ret->job_id = job;
        ret->kind = kind;
        return 0;
}

/* A backup is listed only when it is a regular file of ours that the backend calls complete:
 * a file cut short by a crash (or empty) is never offered as a backup. */
static bool entry_is_complete(const db_backend *be, int dirfd, const char *name, uint64_t *ret_size) {
        _cleanup_close_ int fd = -EBADF;
        struct stat st;

        fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
        if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid())
                return false;
        if (!be->backup_complete(fd, (uint64_t) st.st_size))
                return false;
        *ret_size = (uint64_t) st.st_size;
        return true;
}

/* The backup directory as a stream, once it is trusted; *ret NULL when it does not exist yet. */
static int open_trusted_dir(const char *dir, DIR **ret) {
        _cleanup_free_ char *problem = NULL;
        int fd, r;

        *ret = NULL;
        r = backups_open_dir(dir, false, &fd, &problem);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        *ret = fdopendir(fd);
        if (!*ret) {
                r = -errno;
                close(fd);
                return r;
        }
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

static int list_append(backup_info **list, size_t *n, backup_info *b, const char *dir, const char *name) {
        backup_info *m;

        b->file = strdup(name);
        if (asprintf(&b->path, "%s/%s", dir, name) < 0)
                b->path = NULL;
        m = realloc(*list, (*n + 1) * sizeof(*m));
        if (!m || !b->file || !b->path) {
                if (m)
                        *list = m;
                backup_info_clear(b);
                return -ENOMEM;
        }
        *list = m;
        m[(*n)++] = *b;
        return 0;
}

int backups_list(const db_backend *be, const char *dir, const char *database, backup_info **ret,
                 size_t *ret_n) {
        _cleanup_(closedirp) DIR *d = NULL;
        backup_info *list = NULL;
        struct dirent *de;
        size_t n = 0;
        int r;

        r = open_trusted_dir(dir, &d);
        if (r < 0)
                return r;
        while (d && (de = readdir(d))) {
                backup_info b;
                uint64_t size;

                if (backups_parse_name(be, database, de->d_name, &b) < 0)
                        continue;
                if (!entry_is_complete(be, dirfd(d), de->d_name, &size)) {
                        free(b.time);
                        continue;
                }
                b.size = size;
                if (list_append(&list, &n, &b, dir, de->d_name) < 0) {
                        backup_infos_free(list, n);
                        return -ENOMEM;
                }
        }
        if (n > 1)
                qsort(list, n, sizeof(*list), newest_first);
        *ret = list;
        *ret_n = n;
        return 0;
}

uint64_t backups_max_job_id(const db_backend *be, const char *dir, const char *database) {
        backup_info *list = NULL;
        uint64_t max = 0;
        size_t n = 0;

        if (backups_list(be, dir, database, &list, &n) < 0)
                return 0;
        for (size_t i = 0; i < n; i++)
                if (list[i].job_id > max)
                        max = list[i].job_id;
        backup_infos_free(list, n);
        return max;
}

int backups_create_file(int dirfd, const char *name) {
        int fd = openat(dirfd, name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);

        if (fd < 0)
                return -errno;
        /* the umask may only have narrowed it; never rely on a path for the mode */
        if (fchmod(fd, 0600) < 0) {
                int r = -errno;
                close(fd);
                (void) unlinkat(dirfd, name, 0);
                return r;
        }
        return fd;
}

char *backups_temp_name(const char *final_name) {
        char *t;

        return asprintf(&t, ".%s" TEMP_SUFFIX, final_name) < 0 ? NULL : t;
}

int backups_publish(int dirfd, int fd, const char *temp_name, const char *final_name) {
        if (fsync(fd) < 0)
                return -errno;
        /* link + unlink instead of rename: never replaces a file of that name */
        if (linkat(dirfd, temp_name, dirfd, final_name, 0) < 0)
                return -errno;
        (void) unlinkat(dirfd, temp_name, 0);
        return fsync(dirfd) < 0 ? -errno : 0;
}

/* Whether name is one of our temporaries for database: ".<db>-...partial" (a backup being
 * written, a restore's scratch copy) or a rehearsal clone and the files its backend kept beside it. */
static bool is_temporary(const char *database, const char *name) {
        const char *base = db_base(database);
        size_t bl = strlen(base), nl = strlen(name);

        if (name[0] != '.')
                return false;
        if (strncmp(name + 1, base, bl) == 0 && name[1 + bl] == '-') {
                for (const char *s = name + 1 + bl; *s; s++)
                        if (strncmp(s, TEMP_SUFFIX, strlen(TEMP_SUFFIX)) == 0)
                                return true;
                return false;
        }
        return strncmp(name, ".rehearsal-", 11) == 0 && nl > 11;
}

int backups_remove_temporaries(const char *dir, const char *database) {
        _cleanup_(closedirp) DIR *d = NULL;
        struct dirent *de;
        int r, removed = 0;

        r = open_trusted_dir(dir, &d);
        if (r < 0)
                return r;
        while (d && (de = readdir(d))) {
                struct stat st;

                if (!is_temporary(database, de->d_name))
                        continue;
                if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode) ||
                    st.st_uid != geteuid())
                        continue;
                if (unlinkat(dirfd(d), de->d_name, 0) == 0)
                        removed++;
        }
        return removed;
}

static bool is_protected(const backup_info *b, char *const *protect, size_t n_protect) {
        for (size_t i = 0; i < n_protect; i++)
                if (protect[i] && streq(protect[i], b->file))
                        return true;
        return false;
}

int backups_prune(const db_backend *be, const char *dir, const char *database, unsigned keep,
                  char *const *protect, size_t n_protect) {
        backup_info *list = NULL;
        size_t n = 0, kept = 0;
        int removed = 0, r;

        r = backups_list(be, dir, database, &list, &n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                if (list[i].kind != BACKUP_AUTO || is_protected(&list[i], protect, n_protect))
                        continue;
                if (kept < keep) {
                        kept++;
                        continue;
                }
                if (unlink(list[i].path) == 0)
                        removed++;
        }
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
        return json_pack("{s:s,s:s,s:s,s:I,s:I,s:I,s:s}", "file", b->file, "path", b->path, "time", b->time, "version",
                         (json_int_t) b->version, "job_id", (json_int_t) b->job_id, "size", (json_int_t) b->size,
                         "kind", b->kind == BACKUP_MANUAL ? "manual" : b->kind == BACKUP_RESET ? "reset" : "auto");
}
