/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "dblock.h"
#include "lockinfo.h"
#include "macro.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(FILE *, fclose);

pid_t dblock_find_holder(dev_t dev, ino_t ino) {
        _cleanup_(fclosep) FILE *f = NULL;
        _cleanup_free_ char *line = NULL;
        size_t size = 0;

        f = fopen("/proc/locks", "re");
        if (!f)
                return 0;
        while (getline(&line, &size, f) > 0) {
                proc_lock l;

                if (lockinfo_parse_lock_line(line, &l) < 0 || !streq(l.kind, "FLOCK") || !l.write || l.waiting)
                        continue;
                if (l.inode == (uint64_t) ino && l.major == major(dev) && l.minor == minor(dev) && l.pid > 0)
                        return l.pid;
        }
        return 0;
}

/* An existing database is opened as it is (through a symlink too: the lock is on the file it
 * names). A missing one is created here, exclusively and never through a symlink, so that its
 * owner, group and mode are ours to set before SQLite creates -wal and -shm with the same ones. */
static int open_or_create(const char *database, const dblock_create *create, bool *ret_created) {
        for (unsigned attempt = 0; attempt < 3; attempt++) {
                _cleanup_close_ int fd = open(database, O_RDONLY | O_CLOEXEC | O_NOCTTY);

                if (fd >= 0) {
                        *ret_created = false;
                        return TAKE_FD(fd);
                }
                if (errno != ENOENT)
                        return -errno;
                fd = open(database, O_RDONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
                if (fd < 0) {
                        if (errno == EEXIST)
                                continue; /* someone else made it in between: open theirs */
                        return -errno;
                }
                if ((create->owner != (uid_t) -1 || create->group != (gid_t) -1) &&
                    fchown(fd, create->owner, create->group) < 0) {
                        int r = -errno;
                        (void) unlink(database);
                        return r;
                }
                if (fchmod(fd, create->mode) < 0) {
                        int r = -errno;
                        (void) unlink(database);
                        return r;
                }
                *ret_created = true;
                return TAKE_FD(fd);
        }
        return -EBUSY;
}

int dblock_acquire(const char *database, const dblock_create *create, int *ret_fd, db_file_identity *ret_identity,
                   bool *ret_created, pid_t *ret_holder) {
        _cleanup_close_ int fd = -1;
        bool created = false;
        struct stat st;

        fd = open_or_create(database, create, &created);
        if (fd < 0)
                return fd;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EINVAL;
        if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
                if (errno != EWOULDBLOCK)
                        return -errno;
                *ret_holder = dblock_find_holder(st.st_dev, st.st_ino);
                return DBLOCK_HELD;
        }
        *ret_identity = (db_file_identity) { .known = true, .dev = st.st_dev, .ino = st.st_ino };
        *ret_created = created;
        *ret_fd = TAKE_FD(fd);
        return 0;
}
