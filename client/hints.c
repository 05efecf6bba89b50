/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "exit-codes.h"
#include "hints.h"
#include "macro.h"

/* "NAME" of /run/migrated/NAME.sock, the socket of migrated@NAME.socket; NULL for other paths. */
static char *instance_of(const char *path) {
        size_t dir = strlen(INSTANCE_SOCKET_DIR), len = strlen(path);

        if (len <= dir + 6 || !strneq(path, INSTANCE_SOCKET_DIR "/", dir + 1) || !streq(path + len - 5, ".sock") ||
            strchr(path + dir + 1, '/'))
                return NULL;
        return strndup(path + dir + 1, len - dir - 6);
}

/* systemd accepted the connection for a service that then failed: say which unit to look at. */
int hint_activation_failed(const char *path) {
        _cleanup_free_ char *name = instance_of(path);

        fprintf(stderr, "migratectl: error: %s closed the connection before answering: the daemon behind it did not "
                "start\n", path);
        if (name)
                fprintf(stderr, "  see why with: systemctl status migrated@%s.service (and journalctl -u "
                        "migrated@%s.service)\n", name, name);
        else
                fprintf(stderr, "  if the socket is socket-activated, see its service with systemctl status\n");
        return EXIT_UNREACHABLE;
}

/* The socket is 0660 root:socket_group: name the group and the command that adds the user. */
int hint_permission_denied(const char *path) {
        fprintf(stderr, "migratectl: error: cannot connect to %s: permission denied\n"
                "  only root and members of the socket's group (socket_group, SocketGroup=; \"migrated\" for "
                "the shipped units) may connect\n"
                "  ask an administrator to run: usermod -aG migrated %s (then log in again), or use sudo\n",
                path, getenv("USER") ?: "$USER");
        return EXIT_UNREACHABLE;
}
