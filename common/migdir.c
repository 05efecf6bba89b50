/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "macro.h"
#include "migdir-internal.h"

typedef struct dir_entry {
        int64_t version;
        char *name;
        char *file;
        bool up;
} dir_entry;

static void dir_entries_free(dir_entry *e, size_t n) {
        for (size_t i = 0; i < n; i++) {
                free(e[i].name);
                free(e[i].file);
        }
        free(e);
}

int migdir_error_add(migdir_errors *e, const char *fmt, ...) {
        char **m, *s;
        va_list ap;
        int r;

        if (!e)
                return 0;
        va_start(ap, fmt);
        r = vasprintf(&s, fmt, ap);
        va_end(ap);
        if (r < 0)
                return -ENOMEM;
        m = realloc(e->messages, (e->n + 1) * sizeof(char *));
        if (!m) {
                free(s);
                return -ENOMEM;
        }
        m[e->n++] = s;
        e->messages = m;
        return 0;
}

void migdir_errors_clear(migdir_errors *e) {
        if (!e)
                return;
        for (size_t i = 0; i < e->n; i++)
                free(e->messages[i]);
        free(e->messages);
        e->messages = NULL;
        e->n = 0;
}

bool migration_name_is_valid(const char *name) {
        size_t n = 0;

        for (const char *p = name; *p; p++, n++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
                        return false;
        return n > 0 && n <= MIGRATION_NAME_MAX;
}

int migration_parse_filename(const char *file, int64_t *ret_version, char **ret_name, bool *ret_up,
                             const char **ret_reason) {
        const char *p = file, *us, *suffix;
        int64_t version = 0;
        size_t digits = 0, len = strlen(file), name_len;
        bool up;
        char *name;

#define FAIL(reason)                               \
        do {                                       \
                if (ret_reason)                    \
                        *ret_reason = (reason);    \
                return -EINVAL;                    \
        } while (0)

        if (len > 8 && streq(file + len - 7, ".up.sql")) {
                up = true;
                suffix = file + len - 7;
        } else if (len > 10 && streq(file + len - 9, ".down.sql")) {
                up = false;
                suffix = file + len - 9;
        } else
                FAIL("the name must end in .up.sql or .down.sql");

        for (; *p >= '0' && *p <= '9'; p++, digits++) {
                if (version > (INT64_MAX - (*p - '0')) / 10)
                        FAIL("the version number is too large");
                version = version * 10 + (*p - '0');
        }
        if (digits == 0)
                FAIL("the name must start with a version number");
        if (version == 0)
                FAIL("version 0 is reserved for the empty schema");
        if (*p != '_')
                FAIL("the version must be followed by '_' and a name");
        us = p + 1;
        if (us >= suffix)
                FAIL("the name after the version is empty");
        name_len = (size_t) (suffix - us);
        if (name_len > MIGRATION_NAME_MAX)
                FAIL("the name is longer than 200 characters");
        for (const char *q = us; q < suffix; q++)
                if (!((*q >= 'a' && *q <= 'z') || (*q >= '0' && *q <= '9') || *q == '_'))
                        FAIL("the name may contain only a-z, 0-9 and '_'");
#undef FAIL
        name = strndup(us, name_len);
        if (!name)
                return -ENOMEM;
        *ret_version = version;
        *ret_name = name;
        *ret_up = up;
        return 0;
}

int migration_parse_directives(const char *sql, size_t size, unsigned *ret_flags, char **ret_bad) {
        const char *p = sql, *end = sql + size;
        unsigned flags = 0;

        while (p < end) {
                const char *eol = memchr(p, '\n', (size_t) (end - p)), *q = p, *v, *ve;
                if (!eol)
                        eol = end;
                while (q < eol && isspace((unsigned char) *q))
                        q++;
                if (q == eol) { /* blank line */
                        p = eol + 1;
                        continue;
                }
                if (eol - q < 2 || q[0] != '-' || q[1] != '-')
                        break; /* first statement: directives only in the leading comments */
                q += 2;
                while (q < eol && (*q == ' ' || *q == '\t'))
                        q++;
                if ((size_t) (eol - q) >= 9 && strneq(q, "migrated:", 9)) {
                        v = q + 9;
                        while (v < eol && isspace((unsigned char) *v))
                                v++;
                        ve = eol;
                        while (ve > v && isspace((unsigned char) ve[-1]))
                                ve--;
                        if ((size_t) (ve - v) == 14 && strneq(v, "no-transaction", 14))
                                flags |= MIGRATION_NO_TRANSACTION;
                        else {
                                if (ret_bad)
                                        *ret_bad = strndup(v, (size_t) (ve - v));
                                return -EINVAL;
                        }
                }
                p = eol + 1;
        }
        *ret_flags = flags;
        return 0;
}

/* Reads one script; problems with the file itself become directory errors naming it. */
int migdir_read_script(int dir_fd, const char *file, const migration_set *previous, int64_t version,
                       bool up, migration_script *ret, char ret_checksum[SHA256_HEX_SIZE],
                       migdir_errors *errors) {
        _cleanup_close_ int fd = -1;
        _cleanup_free_ char *buf = NULL, *bad = NULL;
        struct stat st;
        size_t got = 0;
        unsigned flags = 0;
        int r;

        /* O_NONBLOCK: a FIFO or device in the directory must not hang the scan; it is refused below. */
        fd = openat(dir_fd, file, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0 || fstat(fd, &st) < 0)
                return migdir_error_add(errors, "%s: cannot read: %s", file, strerror(errno)) ?: 1;
        if (!S_ISREG(st.st_mode))
                return migdir_error_add(errors, "%s: not a regular file", file) ?: 1;
        if ((uint64_t) st.st_size > MIGRATION_FILE_MAX)
                return migdir_error_add(errors, "%s: larger than %u MiB", file, MIGRATION_FILE_MAX >> 20) ?: 1;

        /* Reuse an unchanged file from the previous scan instead of reading and hashing it again. */
        const migration *old = previous ? migration_set_find(previous, version) : NULL;
        const migration_script *os = old ? (up ? &old->up : &old->down) : NULL;
        if (os && os->file && streq(os->file, file) && os->ino == st.st_ino && (off_t) os->size == st.st_size &&
            os->mtime_ns == (int64_t) st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec) {
                ret->sql = memdup_nul(os->sql, os->size);
                if (!ret->sql)
                        return -ENOMEM;
                ret->size = os->size;
                ret->flags = os->flags;
                if (up)
                        memcpy(ret_checksum, old->checksum, SHA256_HEX_SIZE);
                goto identity;
        }

        buf = malloc((size_t) st.st_size + 1);
        if (!buf)
                return -ENOMEM;
        while (got < (size_t) st.st_size) {
                ssize_t n = read(fd, buf + got, (size_t) st.st_size - got);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return migdir_error_add(errors, "%s: cannot read: %s", file, strerror(errno)) ?: 1;
                }
                if (n == 0)
                        break; /* shrank while reading: take what is there */
                got += (size_t) n;
        }
        buf[got] = '\0';
        if (memchr(buf, '\0', got))
                return migdir_error_add(errors, "%s: contains a NUL byte; migrations must be SQL text", file) ?: 1;
        r = migration_parse_directives(buf, got, &flags, &bad);
        if (r < 0)
                return migdir_error_add(errors, "%s: unknown directive '-- migrated: %s' (known: no-transaction)", file,
                                  bad ?: "") ?: 1;
        if (up) {
                r = sha256_hex(buf, got, ret_checksum);
                if (r < 0)
                        return r;
        }
        ret->sql = TAKE_PTR(buf);
        ret->size = got;
        ret->flags = flags;
identity:
        ret->file = strdup(file);
        if (!ret->file)
                return -ENOMEM;
        ret->ino = st.st_ino;
        ret->mtime_ns = (int64_t) st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
        return 0;
}

static int entry_cmp(const void *a, const void *b) {
        const dir_entry *x = a, *y = b;

        if (x->version != y->version)
                return x->version < y->version ? -1 : 1;
        if (x->up != y->up)
                return x->up ? -1 : 1;
        return strcmp(x->file, y->file);
}

static int scan_entries(DIR *d, dir_entry **ret, size_t *ret_n, migdir_errors *errors, bool *bad) {
        dir_entry *entries = NULL;
        size_t n = 0;
        struct dirent *de;
        int r;

        while ((errno = 0, de = readdir(d))) {
                const char *reason = NULL;
                size_t len = strlen(de->d_name);
                dir_entry e = {};
                struct stat st;

                if (de->d_name[0] == '.' || len < 4 || !streq(de->d_name + len - 4, ".sql"))
                        continue; /* hidden files, READMEs, lock files: not ours */
                if (fstatat(dirfd(d), de->d_name, &st, 0) == 0 && S_ISDIR(st.st_mode))
                        continue;
                r = migration_parse_filename(de->d_name, &e.version, &e.name, &e.up, &reason);
                if (r == -ENOMEM)
                        goto fail;
                if (r < 0) {
                        *bad = true;
                        r = migdir_error_add(errors, "%s: not a migration file name (expected NNNN_name.up.sql or "
                                       "NNNN_name.down.sql): %s", de->d_name, reason);
                        if (r < 0)
                                goto fail;
                        continue;
                }
                dir_entry *m = realloc(entries, (n + 1) * sizeof(*entries));
                if (!m) {
                        free(e.name);
                        r = -ENOMEM;
                        goto fail;
                }
                entries = m;
                e.file = strdup(de->d_name);
                entries[n++] = e;
                if (!e.file) {
                        r = -ENOMEM;
                        goto fail;
                }
        }
        if (errno != 0) {
                r = -errno;
                goto fail;
        }
        if (n > 0)
                qsort(entries, n, sizeof(*entries), entry_cmp);
        *ret = entries;
        *ret_n = n;
        return 0;
fail:
        dir_entries_free(entries, n);
        return r;
}

/* Checks one version's group of files [i, j) and fills *m when it forms a valid migration. */
static int build_migration(int dir_fd, const dir_entry *e, size_t i, size_t j, const migration_set *previous,
                           migration *m, migdir_errors *errors) {
        size_t ups = 0, downs = 0, up_i = i, down_i = i;
        int r, bad = 0;

        for (size_t k = i; k < j; k++) {
                if (e[k].up) {
                        if (ups++ == 0)
                                up_i = k;
                } else if (downs++ == 0)
                        down_i = k;
        }
        if (ups > 1)
                for (size_t k = up_i + 1; k < j; k++)
                        if (e[k].up) {
                                r = migdir_error_add(errors, "%s: duplicate version %" PRId64 ", also used by %s", e[k].file,
                                               e[k].version, e[up_i].file);
                                if (r < 0)
                                        return r;
                                bad = 1;
                        }
        if (ups == 0) {
                for (size_t k = i; k < j; k++) {
                        /* name the up file as the user would write it: same prefix, same padding */
                        size_t stem = strlen(e[k].file) - strlen(".down.sql");
                        r = migdir_error_add(errors, "%s: down migration without its up file (expected %.*s.up.sql)",
                                       e[k].file, (int) stem, e[k].file);
                        if (r < 0)
                                return r;
                }
                return 1;
        }
        if (downs > 1 || (downs == 1 && !streq(e[down_i].name, e[up_i].name))) {
                for (size_t k = i; k < j; k++)
                        if (!e[k].up && (downs > 1 || !streq(e[k].name, e[up_i].name))) {
                                r = migdir_error_add(errors, "%s: down migration does not match its up file %s (the names "
                                               "must be equal)", e[k].file, e[up_i].file);
                                if (r < 0)
                                        return r;
                        }
                bad = 1;
        }
        if (bad)
                return 1;

        m->version = e[up_i].version;
        m->name = strdup(e[up_i].name);
        if (!m->name)
                return -ENOMEM;
        r = migdir_read_script(dir_fd, e[up_i].file, previous, m->version, true, &m->up, m->checksum, errors);
        if (r != 0)
                return r;
        if (downs == 1) {
                char unused[SHA256_HEX_SIZE];
                r = migdir_read_script(dir_fd, e[down_i].file, previous, m->version, false, &m->down, unused, errors);
                if (r != 0)
                        return r;
        }
        return 0;
}

void migdir_migration_done(migration *m) {
        free(m->name);
        free(m->key);
        free(m->up.file);
        free(m->up.sql);
        free(m->down.file);
        free(m->down.sql);
        memset(m, 0, sizeof(*m));
}

int migdir_load(const char *dir, const migration_set *previous, migration_set **ret, migdir_errors *ret_errors) {
        return migdir_load_format(dir, MIGDIR_NATIVE, previous, ret, ret_errors);
}

static int load_native(const char *dir, const migration_set *previous, migration_set **ret, migdir_errors *ret_errors) {
        _cleanup_(migration_set_freep) migration_set *s = NULL;
        dir_entry *entries = NULL;
        size_t n = 0;
        bool bad = false;
        DIR *d;
        int r;

        d = opendir(dir);
        if (!d)
                return -errno;
        r = scan_entries(d, &entries, &n, ret_errors, &bad);
        if (r < 0)
                goto out;

        s = calloc(1, sizeof(*s));
        if (!s || !(s->dir = strdup(dir)) || (n > 0 && !(s->items = calloc(n, sizeof(migration))))) {
                r = -ENOMEM;
                goto out;
        }
        for (size_t i = 0, j; i < n; i = j) {
                for (j = i + 1; j < n && entries[j].version == entries[i].version; j++)
                        ;
                r = build_migration(dirfd(d), entries, i, j, previous, &s->items[s->n], ret_errors);
                if (r < 0)
                        goto out;
                if (r > 0) {
                        migdir_migration_done(&s->items[s->n]);
                        bad = true;
                        continue;
                }
                s->n++;
        }
        if (bad)
                r = MIGDIR_INVALID;
        else {
                *ret = TAKE_PTR(s);
                r = 0;
        }
out:
        dir_entries_free(entries, n);
        closedir(d);
        return r;
}

migration_set *migration_set_free(migration_set *s) {
        if (!s)
                return NULL;
        for (size_t i = 0; i < s->n; i++)
                migdir_migration_done(&s->items[i]);
        free(s->items);
        free(s->dir);
        free(s);
        return NULL;
}

void migration_set_freep(migration_set **s) {
        migration_set_free(*s);
}

const migration *migration_set_find(const migration_set *s, int64_t version) {
        size_t lo = 0, hi = s ? s->n : 0;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (s->items[mid].version == version)
                        return &s->items[mid];
                if (s->items[mid].version < version)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return NULL;
}

int64_t migration_set_latest(const migration_set *s) {
        return s && s->n > 0 ? s->items[s->n - 1].version : 0;
}

int migration_set_version_width(const migration_set *s) {
        int width = 4;

        for (size_t i = 0; s && i < s->n; i++) {
                int w = snprintf(NULL, 0, "%" PRId64, s->items[i].version);
                /* files keep their own zero padding; the name tells the width in use */
                const char *u = strchr(s->items[i].up.file, '_');
                if (u && u - s->items[i].up.file > w)
                        w = (int) (u - s->items[i].up.file);
                if (w > width)
                        width = w;
        }
        return width;
}

int migdir_load_format(const char *dir, migdir_format format, const migration_set *previous, migration_set **ret,
                       migdir_errors *ret_errors) {
        int r;

        if (previous && previous->format != format)
                previous = NULL;
        r = format == MIGDIR_PRISMA ? migdir_load_prisma(dir, previous, ret, ret_errors)
                                    : load_native(dir, previous, ret, ret_errors);
        if (r == 0)
                (*ret)->format = format;
        return r;
}

migdir_format migdir_detect_format(const char *dir) {
        _cleanup_free_ char *lock = NULL;

        if (asprintf(&lock, "%s/migration_lock.toml", dir) < 0)
                return MIGDIR_NATIVE;
        return access(lock, F_OK) == 0 ? MIGDIR_PRISMA : MIGDIR_NATIVE;
}

const char *migdir_format_to_string(migdir_format f) {
        return f == MIGDIR_PRISMA ? "prisma" : "native";
}

int migdir_format_from_string(const char *s, migdir_format *ret) {
        if (streq(s, "native"))
                *ret = MIGDIR_NATIVE;
        else if (streq(s, "prisma"))
                *ret = MIGDIR_PRISMA;
        else
                return -EINVAL;
        return 0;
}

bool migration_checksum_matches(const migration *m, const char *recorded) {
        char hex[SHA256_HEX_SIZE];

        if (!recorded)
                return false;
        if (streq(m->checksum, recorded))
                return true;
        if (!m->prisma)
                return false;
        for (int i = 0; i < 3; i++) {
                /* old Prisma versions wrote the hex without zero padding */
                if (strlen(recorded) == 64)
                        sha256_format(m->digests[i], hex);
                else
                        sha256_format_unpadded(m->digests[i], hex);
                if (streq(hex, recorded))
                        return true;
        }
        return false;
}

const char *migration_record_name(const migration *m) {
        return m->key ?: m->name;
}
