/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "dirwatch.h"
#include "macro.h"

/* More subdirectories than this and the directory is rescanned on every request instead. */
#define DIRWATCH_SUBDIRS_MAX 4096u
#define ZFS_SUPER_MAGIC 0x2fc12fc1

#define DIRWATCH_EVENTS                                                                                  \
        (IN_CREATE | IN_DELETE | IN_MODIFY | IN_CLOSE_WRITE | IN_ATTRIB | IN_MOVED_FROM | IN_MOVED_TO | \
         IN_DELETE_SELF | IN_MOVE_SELF)

typedef struct watched {
        int wd;
        char *name; /* "" for the directory itself */
        bool seen;
} watched;

struct dirwatch {
        char *dir;
        int fd;           /* the inotify instance, -1: none (every check rescans) */
        dev_t dev;        /* the directory the watches are on */
        ino_t ino;
        bool armed;       /* watches are in place on dev/ino */
        bool cacheable;   /* inotify sees every change there: no symlink, a local file system */
        bool valid;       /* the last scan succeeded and nothing changed since */
        watched *subs;
        size_t n_subs;
        atomic_bool forced;
};

static void subs_clear(dirwatch *w) {
        for (size_t i = 0; i < w->n_subs; i++)
                free(w->subs[i].name);
        w->subs = mfree(w->subs);
        w->n_subs = 0;
}

/* Starts over with a new inotify instance: the directory's identity changed. */
static void reset(dirwatch *w) {
        if (w->fd >= 0)
                close(w->fd);
        subs_clear(w);
        w->armed = false;
        w->valid = false;
        w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
}

int dirwatch_new(const char *dir, dirwatch **ret) {
        dirwatch *w = calloc(1, sizeof(*w));

        if (!w || !(w->dir = strdup(dir))) {
                free(w);
                return -ENOMEM;
        }
        w->fd = -1;
        reset(w);
        *ret = w;
        return 0;
}

dirwatch *dirwatch_free(dirwatch *w) {
        if (!w)
                return NULL;
        if (w->fd >= 0)
                close(w->fd);
        subs_clear(w);
        free(w->dir);
        free(w);
        return NULL;
}

void dirwatch_force(dirwatch *w) {
        if (w)
                atomic_store(&w->forced, true);
}

static watched *find_wd(dirwatch *w, int wd) {
        for (size_t i = 0; i < w->n_subs; i++)
                if (w->subs[i].wd == wd)
                        return &w->subs[i];
        return NULL;
}

/* Adds (or finds) the watch on one directory, "" being the top one. */
static int watch(dirwatch *w, const char *name) {
        _cleanup_free_ char *path = NULL;
        watched *s, *n;
        int wd;

        if (asprintf(&path, "%s%s%s", w->dir, *name ? "/" : "", name) < 0)
                return -ENOMEM;
        wd = inotify_add_watch(w->fd, path, DIRWATCH_EVENTS | IN_ONLYDIR);
        if (wd < 0)
                return -errno;
        s = find_wd(w, wd);
        if (!s) {
                if (w->n_subs >= DIRWATCH_SUBDIRS_MAX + 1)
                        return -ENOSPC;
                n = realloc(w->subs, (w->n_subs + 1) * sizeof(*n));
                if (!n)
                        return -ENOMEM;
                w->subs = n;
                s = &w->subs[w->n_subs++];
                *s = (watched) { .wd = wd };
        }
        if (!s->name || !streq(s->name, name)) {
                char *copy = strdup(name);
                if (!copy)
                        return -ENOMEM;
                free(s->name);
                s->name = copy;
        }
        s->seen = true;
        return 0;
}

/* Whether an entry is a symlink (whose target inotify does not watch) or a subdirectory. */
static int entry_kind(DIR *d, const struct dirent *de, bool *ret_link, bool *ret_dir) {
        struct stat st;

        if (de->d_type != DT_UNKNOWN) {
                *ret_link = de->d_type == DT_LNK;
                *ret_dir = de->d_type == DT_DIR;
                return 0;
        }
        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return errno == ENOENT ? 0 : -errno;
        *ret_link = S_ISLNK(st.st_mode);
        *ret_dir = S_ISDIR(st.st_mode);
        return 0;
}

static bool dot_name(const char *n) {
        return streq(n, ".") || streq(n, "..");
}

/* Whether a directory holds a symlink; its subdirectories are listed in ret_dirs when asked. */
static int list_dir(const char *path, bool *ret_link, char ***ret_dirs, size_t *ret_n) {
        DIR *d = opendir(path);
        struct dirent *de;
        int r = 0;

        if (!d)
                return -errno;
        while ((de = readdir(d))) {
                bool link = false, dir = false;

                if (dot_name(de->d_name))
                        continue;
                r = entry_kind(d, de, &link, &dir);
                if (r < 0)
                        break;
                if (link)
                        *ret_link = true;
                if (dir && ret_dirs) {
                        char **n;
                        if (*ret_n >= DIRWATCH_SUBDIRS_MAX) {
                                r = -ENOSPC;
                                break;
                        }
                        n = realloc(*ret_dirs, (*ret_n + 1) * sizeof(char *));
                        if (!n || !(n[*ret_n] = strdup(de->d_name))) {
                                if (n)
                                        *ret_dirs = n;
                                r = -ENOMEM;
                                break;
                        }
                        *ret_dirs = n;
                        (*ret_n)++;
                }
        }
        closedir(d);
        return r;
}

static bool local_file_system(const char *path) {
        struct statfs sf;

        if (statfs(path, &sf) < 0)
                return false;
        switch ((unsigned long) sf.f_type) {
        case EXT4_SUPER_MAGIC: /* also ext2 and ext3 */
        case XFS_SUPER_MAGIC:
        case BTRFS_SUPER_MAGIC:
        case TMPFS_MAGIC:
        case RAMFS_MAGIC:
        case OVERLAYFS_SUPER_MAGIC:
        case F2FS_SUPER_MAGIC:
        case SQUASHFS_MAGIC:
        case ZFS_SUPER_MAGIC:
                return true;
        default:
                return false; /* network and FUSE file systems change without telling inotify */
        }
}

/* Puts the watches in place for the scan to come: the directory and every subdirectory (Prisma's
 * folders), the watches of vanished subdirectories removed. Sets cacheable. */
static int arm(dirwatch *w) {
        char **dirs = NULL;
        size_t n = 0;
        bool link = false;
        int r;

        w->cacheable = false;
        for (size_t i = 0; i < w->n_subs; i++)
                w->subs[i].seen = false;
        r = watch(w, "");
        if (r < 0)
                return r;
        r = list_dir(w->dir, &link, &dirs, &n);
        for (size_t i = 0; r >= 0 && i < n; i++) {
                _cleanup_free_ char *sub = NULL;

                r = watch(w, dirs[i]);
                if (r >= 0 && asprintf(&sub, "%s/%s", w->dir, dirs[i]) < 0)
                        r = -ENOMEM;
                if (r >= 0)
                        r = list_dir(sub, &link, NULL, NULL);
                if (r == -ENOENT)
                        r = 0; /* gone meanwhile: the scan sees that */
        }
        for (size_t i = 0; i < n; i++)
                free(dirs[i]);
        free(dirs);
        if (r < 0)
                return r;
        for (size_t i = 0; i < w->n_subs;)
                if (!w->subs[i].seen) {
                        (void) inotify_rm_watch(w->fd, w->subs[i].wd);
                        free(w->subs[i].name);
                        w->subs[i] = w->subs[--w->n_subs];
                } else
                        i++;
        w->armed = true;
        w->cacheable = !link && local_file_system(w->dir);
        return 0;
}

/* Reads every queued event; returns whether any was about the directory's content. */
static int drain(dirwatch *w, dirwatch_changed_fn changed, void *userdata) {
        char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
        bool any = false;

        for (;;) {
                ssize_t n = read(w->fd, buf, sizeof(buf));

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        return any;
                if (n <= 0)
                        return n < 0 ? -errno : -EIO;
                for (char *p = buf; p < buf + n;) {
                        const struct inotify_event *ev = (const struct inotify_event *) p;
                        watched *s = find_wd(w, ev->wd);

                        p += sizeof(*ev) + ev->len;
                        if (ev->mask & IN_Q_OVERFLOW) {
                                changed(NULL, userdata);
                                any = true;
                                continue;
                        }
                        if (ev->mask & IN_IGNORED) {
                                if (s) {
                                        free(s->name);
                                        *s = w->subs[--w->n_subs];
                                }
                                any = true;
                                continue;
                        }
                        any = true;
                        if (ev->len > 0 && ev->name[0]) {
                                _cleanup_free_ char *rel = NULL;

                                if (!s || !*s->name)
                                        changed(ev->name, userdata);
                                else if (asprintf(&rel, "%s/%s", s->name, ev->name) >= 0)
                                        changed(rel, userdata);
                                else
                                        changed(NULL, userdata);
                        }
                }
        }
}

int dirwatch_check(dirwatch *w, dirwatch_changed_fn changed, void *userdata) {
        struct stat st;
        int r;

        if (atomic_exchange(&w->forced, false)) {
                changed(NULL, userdata);
                w->valid = false;
        }
        if (stat(w->dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
                reset(w);
                return 1;
        }
        if (w->armed && (st.st_dev != w->dev || st.st_ino != w->ino))
                reset(w);
        if (w->fd < 0)
                return 1;
        w->dev = st.st_dev;
        w->ino = st.st_ino;
        if (w->armed) {
                r = drain(w, changed, userdata);
                if (r < 0) {
                        changed(NULL, userdata);
                        reset(w);
                        return 1;
                }
                if (r == 0 && w->valid)
                        return 0;
        }
        w->valid = false;
        r = arm(w);
        if (r == -ENOENT) {
                reset(w); /* removed meanwhile: the scan reports it, the next check starts over */
                return 1;
        }
        if (r < 0) {
                /* too many subdirectories, no watch left: rescan on every check from now on */
                close(w->fd);
                w->fd = -1;
                subs_clear(w);
                w->armed = false;
                return 1;
        }
        /* what changed while arming is part of this scan */
        if (drain(w, changed, userdata) < 0) {
                changed(NULL, userdata);
                reset(w);
        }
        return 1;
}

void dirwatch_scanned(dirwatch *w, bool ok) {
        w->valid = ok && w->armed && w->cacheable && w->fd >= 0;
}
