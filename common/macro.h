/* SPDX-License-Identifier: MIT */
#pragma once

/* Cleanup helpers in the systemd style: _cleanup_(fn) runs fn(&var) when var leaves scope. */

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _noreturn_ __attribute__((noreturn))
#define _pure_ __attribute__((pure))

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))

/* Hand ownership out of a _cleanup_ variable. */
#define TAKE_PTR(p)                              \
        ({                                       \
                __typeof__(p) _tp_ = (p);        \
                (p) = NULL;                      \
                _tp_;                            \
        })
#define TAKE_FD(fd)                              \
        ({                                       \
                int _tf_ = (fd);                 \
                (fd) = -1;                       \
                _tf_;                            \
        })

#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func)  \
        static inline void func##p(type *p) {    \
                if (*p)                          \
                        func(*p);                \
        }

static inline void freep(void *p) {
        free(*(void **) p);
}
#define _cleanup_free_ _cleanup_(freep)

static inline void closep(int *fd) {
        if (*fd >= 0) {
                int saved = errno;
                close(*fd);
                errno = saved;
        }
}
#define _cleanup_close_ _cleanup_(closep)

static inline void *mfree(void *p) {
        free(p);
        return NULL;
}

/* Copy of size bytes plus a terminating NUL. */
static inline char *memdup_nul(const void *p, size_t size) {
        char *c = malloc(size + 1);
        if (!c)
                return NULL;
        memcpy(c, p, size);
        c[size] = '\0';
        return c;
}

static inline int negative_errno(void) {
        return errno > 0 ? -errno : -EIO;
}

#define streq(a, b) (strcmp((a), (b)) == 0)
#define strneq(a, b, n) (strncmp((a), (b), (n)) == 0)
