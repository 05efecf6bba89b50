/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db.h"
#include "macro.h"
#include "statefile.h"

char *statefile_path(const char *database) {
        char *p;

        if (asprintf(&p, "%s-migrated.state", database) < 0)
                return NULL;
        return p;
}

void strv_free_n(char **v, size_t n) {
        for (size_t i = 0; v && i < n; i++)
                free(v[i]);
        free(v);
}

static int fsync_parent(const char *path) {
        _cleanup_free_ char *copy = strdup(path);
        _cleanup_close_ int fd = -1;

        if (!copy)
                return -ENOMEM;
        fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0 || fsync(fd) < 0)
                return -errno;
        return 0;
}

int statefile_write(const char *database, uint64_t job_id, char *const *units, size_t n) {
        _cleanup_free_ char *path = statefile_path(database), *tmp = NULL, *text = NULL;
        _cleanup_close_ int fd = -1;
        json_t *doc, *arr = json_array();
        char now[32];
        size_t len;

        if (!path || !arr || asprintf(&tmp, "%s.tmp", path) < 0) {
                json_decref(arr);
                return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++)
                json_array_append_new(arr, json_string(units[i]));
        db_timestamp(now);
        doc = json_pack("{s:I,s:o,s:s,s:i}", "job_id", (json_int_t) job_id, "units", arr, "since", now, "pid",
                        (int) getpid());
        text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
        json_decref(doc);
        if (!text)
                return -ENOMEM;
        len = strlen(text);
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0)
                return -errno;
        if (write(fd, text, len) != (ssize_t) len || fsync(fd) < 0) {
                int r = errno ? -errno : -EIO;
                (void) unlink(tmp);
                return r;
        }
        if (rename(tmp, path) < 0) {
                int r = -errno;
                (void) unlink(tmp);
                return r;
        }
        return fsync_parent(path);
}

int statefile_read(const char *database, char ***ret_units, size_t *ret_n) {
        _cleanup_free_ char *path = statefile_path(database);
        json_error_t err;
        json_t *doc, *arr;
        char **v;
        size_t n;

        if (!path)
                return -ENOMEM;
        if (access(path, F_OK) < 0)
                return -errno;
        doc = json_load_file(path, 0, &err);
        arr = doc ? json_object_get(doc, "units") : NULL;
        if (!json_is_array(arr)) {
                json_decref(doc);
                return -EBADMSG;
        }
        n = json_array_size(arr);
        v = calloc(n + 1, sizeof(char *));
        for (size_t i = 0; v && i < n; i++)
                v[i] = strdup(json_string_value(json_array_get(arr, i)) ?: "");
        json_decref(doc);
        if (!v)
                return -ENOMEM;
        *ret_units = v;
        *ret_n = n;
        return 0;
}

int statefile_remove(const char *database) {
        _cleanup_free_ char *path = statefile_path(database);

        if (!path)
                return -ENOMEM;
        if (unlink(path) < 0 && errno != ENOENT)
                return -errno;
        return fsync_parent(path);
}
