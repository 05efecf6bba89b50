/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "lockfile.h"
#include "macro.h"

char *lockfile_path(const char *database) {
        char *p;

        if (asprintf(&p, "%s-migrated.lock", database) < 0)
                return NULL;
        return p;
}

int lockfile_acquire(const char *database, int *ret_fd, pid_t *ret_holder) {
        _cleanup_free_ char *path = lockfile_path(database);
        _cleanup_close_ int fd = -1;
        char buf[32];
        ssize_t n;
        int len;

        if (!path)
                return -ENOMEM;
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
                return -errno;
        if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
                if (errno != EWOULDBLOCK)
                        return -errno;
                n = pread(fd, buf, sizeof(buf) - 1, 0);
                buf[n > 0 ? n : 0] = '\0';
                *ret_holder = (pid_t) strtol(buf, NULL, 10);
                return LOCKFILE_HELD;
        }
        len = snprintf(buf, sizeof(buf), "%d\n", (int) getpid());
        if (ftruncate(fd, 0) < 0 || pwrite(fd, buf, (size_t) len, 0) != len)
                return -errno;
        *ret_fd = TAKE_FD(fd);
        return 0;
}
