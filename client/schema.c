/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "args.h"
#include "exit-codes.h"
#include "output.h"
#include "schema.h"

int render_schema(json_t *result) {
        const char *sql = json_string_value(json_object_get(result, "schema"));

        if (!sql)
                return -EBADMSG;
        return fputs(sql, stdout) < 0 ? -EIO : 0;
}

static int write_all(int fd, const char *p, size_t n) {
        while (n > 0) {
                ssize_t k = write(fd, p, n);

                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                p += k;
                n -= (size_t) k;
        }
        return 0;
}

/* The temporary file is created exclusively in the target's directory (rename stays within one
 * file system) with the mode a new file gets; it is removed on every failure. */
int schema_write_file(const char *path, json_t *result) {
        const char *sql = json_string_value(json_object_get(result, "schema"));
        _cleanup_free_ char *tmp = NULL, *copy = strdup(path);
        struct stat st;
        int fd, r;

        if (!sql || !copy || asprintf(&tmp, "%s/.%s.XXXXXX", dirname(copy), basename((char *) path)) < 0) {
                fprintf(stderr, "migratectl: error: %s\n", sql ? strerror(ENOMEM) : "the reply has no schema");
                return EXIT_FAILED;
        }
        fd = mkstemp(tmp);
        if (fd < 0) {
                fprintf(stderr, "migratectl: error: cannot create a file beside %s: %m\n", path);
                return EXIT_FAILED;
        }
        /* mkstemp makes 0600; keep an existing file's mode, else what the umask allows */
        if (stat(path, &st) == 0)
                (void) fchmod(fd, st.st_mode & 07777);
        else {
                mode_t mask = umask(0);

                umask(mask);
                (void) fchmod(fd, 0666 & ~mask);
        }
        r = write_all(fd, sql, strlen(sql));
        if (r == 0 && fsync(fd) < 0)
                r = -errno;
        if (close(fd) < 0 && r == 0)
                r = -errno;
        if (r == 0 && rename(tmp, path) < 0)
                r = -errno;
        if (r == 0) {
                /* the rename itself made durable: the directory's entry */
                _cleanup_free_ char *dir_copy = strdup(path);
                int dfd = dir_copy ? open(dirname(dir_copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;

                if (dfd >= 0) {
                        (void) fsync(dfd);
                        close(dfd);
                }
        }
        if (r < 0) {
                (void) unlink(tmp);
                fprintf(stderr, "migratectl: error: cannot write %s: %s\n", path, strerror(-r));
                return EXIT_FAILED;
        }
        if (arg_json)
                return output_json(result) < 0 ? EXIT_FAILED : EXIT_OK;
        return EXIT_OK;
}
