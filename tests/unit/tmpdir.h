/* SPDX-License-Identifier: MIT */
#pragma once

/* Temporary directories and files for the unit tests that read real directories: a cmocka setup
 * and teardown (the directory is the test's *state) and file writers that assert as they go. */

#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int tmpdir_remove_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        return remove(path);
}

static int dir_setup(void **state) {
        char *p = strdup("/tmp/test-migrated-unit-XXXXXX");

        if (!p || !mkdtemp(p)) {
                free(p);
                return -1;
        }
        *state = p;
        return 0;
}

/* Removes the whole tree, also after a test took the write bit off the directory. */
static int dir_teardown(void **state) {
        char *p = *state;

        chmod(p, 0700);
        nftw(p, tmpdir_remove_cb, 16, FTW_DEPTH | FTW_PHYS);
        free(p);
        return 0;
}

static char *path_of(const char *dir, const char *name) {
        char *p;

        assert_true(asprintf(&p, "%s/%s", dir, name) > 0);
        return p;
}

static void write_bytes(const char *dir, const char *name, const void *data, size_t size) {
        char *p = path_of(dir, name);
        int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

        assert_true(fd >= 0);
        assert_int_equal(write(fd, data, size), (ssize_t) size);
        assert_int_equal(close(fd), 0);
        free(p);
}

static void put(const char *dir, const char *name, const char *text) {
        write_bytes(dir, name, text, strlen(text));
}
