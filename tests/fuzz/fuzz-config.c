/* SPDX-License-Identifier: MIT */
/* libFuzzer target: the daemon's INI configuration file (config_parse_file() in daemon/settings.c).
 * The input is the file's contents, written to the same temporary file every time. It is parsed
 * twice into the same config, as a second file would override the first, so that replacing and
 * freeing earlier values is exercised too, then config_clear(). */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "settings.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *file_path;

static void fatal(const char *what, const char *detail) {
        fprintf(stderr, "fuzz-config: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
        abort();
}

static void remove_file(void) {
        if (file_path)
                unlink(file_path);
        free(file_path);
}

static void setup_file(void) {
        const char *tmp = getenv("TMPDIR");
        int fd;

        if (file_path)
                return;
        if (asprintf(&file_path, "%s/fuzz-config.XXXXXX", tmp && *tmp ? tmp : "/tmp") < 0)
                fatal("out of memory", NULL);
        fd = mkstemp(file_path);
        if (fd < 0)
                fatal("cannot create the temporary file", strerror(errno));
        close(fd);
        atexit(remove_file);
}

static void write_file(const uint8_t *data, size_t size) {
        int fd = open(file_path, O_WRONLY | O_TRUNC | O_CLOEXEC);

        if (fd < 0)
                fatal("cannot open the temporary file", strerror(errno));
        while (size > 0) {
                ssize_t n = write(fd, data, size);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        fatal("cannot write the temporary file", strerror(errno));
                data += n;
                size -= (size_t) n;
        }
        close(fd);
}

static void parse_once(config *c) {
        char *message = NULL;
        int r;

        r = config_parse_file(file_path, c, &message);
        if (r == -EINVAL) {
                /* the message names the file and the line */
                if (message && strncmp(message, file_path, strlen(file_path)) != 0)
                        fatal("error message does not name the file", message);
        } else if (r != 0)
                fatal("config_parse_file failed on a readable file", strerror(-r));
        else if (message)
                fatal("message set on success", message);
        free(message);
        for (size_t i = 0; i < c->n_units; i++)
                if (!c->units[i] || !strchr(c->units[i], '.'))
                        fatal("accepted a unit name without a dot", c->units[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        config c = {};

        setup_file();
        write_file(data, size);
        parse_once(&c);
        parse_once(&c);
        config_clear(&c);
        return 0;
}
