/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "macro.h"
#include "statedir.h"

#define STATEDIR_DOC_MAX (1024 * 1024)

char *statedir_escape_path(const char *path) {
        size_t n = strlen(path);
        char *out = malloc(n * 4 + 2), *o = out;
        bool first = true;

        if (!out)
                return NULL;
        for (const char *p = path; *p;) {
                const char *end;
                while (*p == '/')
                        p++;
                if (!*p)
                        break;
                end = strchrnul(p, '/');
                if (!first)
                        *o++ = '-';
                for (const char *c = p; c < end; c++) {
                        bool plain = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
                                     *c == ':' || *c == '_' || (*c == '.' && !(first && c == p));
                        if (plain)
                                *o++ = *c;
                        else
                                o += sprintf(o, "\\x%02x", (unsigned char) *c);
                }
                first = false;
                p = end;
        }
        if (first)
                *o++ = '-';
        *o = '\0';
        return out;
}

char *statedir_default_path(const char *database) {
        _cleanup_free_ char *escaped = statedir_escape_path(database);
        const char *env = getenv("STATE_DIRECTORY"), *base;
        char *p = NULL;

        if (!escaped)
                return NULL;
        if (env && *env) {
                size_t len = strcspn(env, ":");
                return strndup(env, len);
        }
        if (geteuid() == 0) {
                if (asprintf(&p, "/var/lib/migrated/db-%s", escaped) < 0)
                        return NULL;
                return p;
        }
        base = getenv("XDG_STATE_HOME");
        if (base && base[0] == '/') {
                if (asprintf(&p, "%s/migrated/db-%s", base, escaped) < 0)
                        return NULL;
                return p;
        }
        base = getenv("HOME");
        if (!base || base[0] != '/')
                return NULL;
        if (asprintf(&p, "%s/.local/state/migrated/db-%s", base, escaped) < 0)
                return NULL;
        return p;
}

/* mkdir -p, the last component 0700; parents that exist are left as they are. */
static int mkdir_parents(const char *path) {
        _cleanup_free_ char *copy = strdup(path);

        if (!copy)
                return -ENOMEM;
        for (char *p = copy + 1; *p; p++) {
                if (*p != '/')
                        continue;
                *p = '\0';
                if (mkdir(copy, 0755) < 0 && errno != EEXIST)
                        return -errno;
                *p = '/';
        }
        if (mkdir(copy, 0700) < 0 && errno != EEXIST)
                return -errno;
        return 0;
}

static int refuse(char **ret_message, int r, const char *fmt, ...) _printf_(3, 4);
static int refuse(char **ret_message, int r, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        if (vasprintf(ret_message, fmt, ap) < 0)
                *ret_message = NULL;
        va_end(ap);
        return r;
}

int statedir_open(const char *path, char **ret_message) {
        _cleanup_close_ int fd = -1;
        struct stat st;
        int r;

        *ret_message = NULL;
        if (path[0] != '/')
                return refuse(ret_message, -EINVAL, "the state directory %s is not an absolute path", path);
        r = mkdir_parents(path);
        if (r < 0)
                return r;
        fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
                if (errno == ELOOP || errno == ENOTDIR)
                        return refuse(ret_message, -ELOOP,
                                      "the state directory %s is a symlink or not a directory; remove it and "
                                      "let migrated create it", path);
                return -errno;
        }
        if (fstat(fd, &st) < 0)
                return -errno;
        if (st.st_uid != geteuid())
                return refuse(ret_message, -EPERM,
                              "the state directory %s is owned by another user; it must belong to the user "
                              "migrated runs as (chown it, or remove it and let migrated create it)", path);
        if (st.st_mode & (S_IWGRP | S_IWOTH))
                return refuse(ret_message, -EPERM,
                              "the state directory %s is writable by group or others; chmod 0700 it", path);
        return TAKE_FD(fd);
}

static int write_all(int fd, const char *text, size_t len) {
        while (len > 0) {
                ssize_t k = write(fd, text, len);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                text += k;
                len -= (size_t) k;
        }
        return 0;
}

int statedir_write(int dirfd, const char *name, json_t *doc) {
        _cleanup_free_ char *text = json_dumps(doc, JSON_COMPACT), *tmp = NULL;
        _cleanup_close_ int fd = -1;
        int r;

        if (!text || asprintf(&tmp, ".#%s.%d", name, (int) getpid()) < 0)
                return -ENOMEM;
        /* a leftover of ours from a crash is ours to remove; anything else at that name fails below */
        (void) unlinkat(dirfd, tmp, 0);
        fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0)
                return -errno;
        r = write_all(fd, text, strlen(text));
        if (r == 0 && write_all(fd, "\n", 1) == 0 && fsync(fd) < 0)
                r = -errno;
        if (r == 0 && renameat(dirfd, tmp, dirfd, name) < 0)
                r = -errno;
        if (r < 0) {
                (void) unlinkat(dirfd, tmp, 0);
                return r;
        }
        return fsync(dirfd) < 0 ? -errno : 0;
}

/* The checks every state file gets: ours, regular, and writable by us alone. */
static bool state_file_ok(const struct stat *st) {
        return S_ISREG(st->st_mode) && st->st_uid == geteuid() && !(st->st_mode & (S_IWGRP | S_IWOTH));
}

int statedir_create_file(int dirfd, const char *name, struct stat *ret_st) {
        _cleanup_close_ int fd = -1;

        fd = openat(dirfd, name, O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY, 0600);
        if (fd < 0)
                return errno == ELOOP ? -EBADMSG : -errno;
        if (fstat(fd, ret_st) < 0)
                return -errno;
        return state_file_ok(ret_st) ? 0 : -EBADMSG;
}

int statedir_read(int dirfd, const char *name, json_t **ret) {
        _cleanup_close_ int fd = -1;
        _cleanup_free_ char *buf = NULL;
        json_error_t err;
        struct stat st;
        size_t have = 0;
        json_t *doc;

        fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0)
                return errno == ELOOP ? -EBADMSG : -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!state_file_ok(&st) || st.st_size > STATEDIR_DOC_MAX)
                return -EBADMSG;
        buf = malloc((size_t) st.st_size + 1);
        if (!buf)
                return -ENOMEM;
        while (have < (size_t) st.st_size) {
                ssize_t k = read(fd, buf + have, (size_t) st.st_size - have);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                if (k == 0)
                        break;
                have += (size_t) k;
        }
        doc = json_loadb(buf, have, JSON_REJECT_DUPLICATES, &err);
        if (!json_is_object(doc)) {
                json_decref(doc);
                return -EBADMSG;
        }
        *ret = doc;
        return 0;
}

int statedir_remove(int dirfd, const char *name) {
        if (unlinkat(dirfd, name, 0) < 0 && errno != ENOENT)
                return -errno;
        return fsync(dirfd) < 0 ? -errno : 0;
}
