/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "startcheck.h"

const char *startcheck_remedy(int error, bool socket) {
        switch (error < 0 ? -error : error) {
        case ENOENT:
                return socket ? "its directory does not exist: create it (under systemd, RuntimeDirectory=migrated "
                                "creates /run/migrated)"
                              : "its directory does not exist: create it, or correct database= in the configuration";
        case EACCES:
        case EPERM:
                return "the daemon's user may not write there: fix the owner or mode, and under systemd "
                       "list the directory in ReadWritePaths= (the shipped unit has ProtectSystem=strict)";
        case EROFS:
                return "the filesystem is read-only here: under systemd, list the directory in "
                       "ReadWritePaths= (ProtectSystem=strict makes everything else read-only)";
        default:
                return NULL;
        }
}

int startcheck_migrations_dir(const char *dir) {
        struct stat st;

        if (stat(dir, &st) < 0) {
                int r = -errno;
                if (r == -ENOENT)
                        log_error("The migrations directory %s does not exist: create it and put the migrations "
                                  "there (migratectl new NAME --migrations %s writes the first), or correct "
                                  "migrations= in the configuration (--migrations)", dir, dir);
                else if (r == -EACCES)
                        log_error("Cannot reach the migrations directory %s: permission denied; the daemon's user "
                                  "needs search access to it and its parents (under systemd, check ProtectHome= "
                                  "and InaccessiblePaths=)", dir);
                else
                        log_error_errno(r, "Cannot use the migrations directory %s: %m", dir);
                return r;
        }
        if (!S_ISDIR(st.st_mode)) {
                log_error("The migrations directory %s is not a directory: correct migrations= in the "
                          "configuration (--migrations)", dir);
                return -ENOTDIR;
        }
        if (access(dir, R_OK | X_OK) < 0) {
                int r = -errno;
                log_error_errno(r, "Cannot read the migrations directory %s: %m; the daemon's user needs read and "
                                "search access to it", dir);
                return r;
        }
        return 0;
}
