/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "macro.h"
#include "migdir-internal.h"

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
        free(e->versions);
        *e = (migdir_errors) {};
}

int migdir_errors_tag(migdir_errors *e, size_t from, int64_t version) {
        int64_t *v;

        if (!e || e->n == 0)
                return 0;
        v = realloc(e->versions, e->n * sizeof(int64_t));
        if (!v)
                return -ENOMEM;
        for (size_t i = e->n_versions; i < e->n; i++)
                v[i] = -1;
        for (size_t i = from; i < e->n; i++)
                v[i] = version;
        e->versions = v;
        e->n_versions = e->n;
        return 0;
}

int64_t migdir_error_version(const migdir_errors *e, size_t i) {
        return e && i < e->n_versions ? e->versions[i] : -1;
}

/* Whether every problem recorded is about one item. */
static bool errors_all_items(const migdir_errors *e) {
        for (size_t i = 0; e && i < e->n; i++)
                if (migdir_error_version(e, i) < 0)
                        return false;
        return true;
}

static char *vstrdupf(const char *fmt, va_list ap) {
        char *s;

        return vasprintf(&s, fmt, ap) < 0 ? NULL : s;
}

int migdir_asprintf(char **ret, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        *ret = vstrdupf(fmt, ap);
        va_end(ap);
        return *ret ? 0 : -ENOMEM;
}

char *migdir_strdupf(const char *fmt, ...) {
        va_list ap;
        char *s;

        va_start(ap, fmt);
        s = vstrdupf(fmt, ap);
        va_end(ap);
        return s;
}

/* Every format's `new` writes its files through here, so that the bookkeeping of ret (its
 * count, what it owns on failure) is in one place. */
int migdir_new_add(migration_new *ret, int64_t version, char *path, char *content) {
        assert(ret->n < MIGRATION_NEW_FILES_MAX);
        ret->version = version;
        ret->files[ret->n].path = path;
        ret->files[ret->n].content = content;
        ret->n++;
        return path && content ? 0 : -ENOMEM;
}

void migdir_now_text(char buf[static MIGDIR_NOW_TEXT_MAX]) {
        time_t now = time(NULL);
        struct tm tm;

        if (!gmtime_r(&now, &tm) || strftime(buf, MIGDIR_NOW_TEXT_MAX, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
                strcpy(buf, "-");
}

/* Reads one script; problems with the file itself become directory errors naming it. */
int migdir_read_script(int dir_fd, const char *file, const migration_format *f, const migration_set *previous,
                       int64_t version, bool up, migration_script *ret, char ret_checksum[SHA256_HEX_SIZE],
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
        r = f->parse_directives(buf, got, &flags, &bad);
        if (r < 0)
                return migdir_error_add(errors, "%s: unknown directive '%s%s' (known: %s)", file, f->directive_prefix,
                                        bad ?: "", f->directives) ?: 1;
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

void migdir_migration_done(migration *m) {
        if (m->format_data && m->format && m->format->free_data)
                m->format->free_data(m->format_data);
        free(m->version_key);
        free(m->name);
        free(m->key);
        free(m->up.file);
        free(m->up.sql);
        free(m->down.file);
        free(m->down.sql);
        memset(m, 0, sizeof(*m));
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
        const migration_format *f = s ? migration_format_get(s->format) : NULL;
        size_t lo = 0, hi = s ? s->n : 0;

        /* the set is in its format's order: a binary search by number only where that is the
         * numbers' order */
        if (f && f->compare != migdir_compare_integer) {
                for (size_t i = 0; i < s->n; i++)
                        if (s->items[i].version == version)
                                return &s->items[i];
                return NULL;
        }

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
        /* repeatables sort last and are no version to reach */
        for (size_t i = s ? s->n : 0; i > 0; i--)
                if (!(s->items[i - 1].up.flags & MIGRATION_REPEATABLE))
                        return s->items[i - 1].version;
        return 0;
}


/* One file, both directions: the format's split gives the sections; the checksum is the whole
 * file's, and the whole file's directives apply to both sections. */
int migdir_read_split(int dir_fd, const char *file, const migration_format *f, const migration_set *previous,
                      migration *m, migdir_errors *errors) {
        migration_script whole = {};
        size_t up_off = 0, up_len = 0, down_off = 0, down_len = SIZE_MAX;
        const char *reason = NULL;
        int r;

        r = migdir_read_script(dir_fd, file, f, previous, m->version, true, &whole, m->checksum, errors);
        if (r != 0)
                goto out;
        if (f->split(whole.sql, whole.size, &up_off, &up_len, &down_off, &down_len, &reason) < 0) {
                r = migdir_error_add(errors, "%s: %s", file, reason ?: "cannot be split into up and down sections") ?: 1;
                goto out;
        }
        if (up_off > whole.size || up_len > whole.size - up_off ||
            (down_len != SIZE_MAX && (down_off > whole.size || down_len > whole.size - down_off))) {
                r = -EINVAL; /* a split outside the file is a bug of the format */
                goto out;
        }
        for (int i = 0; i < 2; i++) {
                migration_script *t = i == 0 ? &m->up : &m->down;
                size_t off = i == 0 ? up_off : down_off, len = i == 0 ? up_len : down_len;

                if (len == SIZE_MAX)
                        continue;
                t->sql = memdup_nul(whole.sql + off, len);
                t->file = strdup(file);
                if (!t->sql || !t->file) {
                        r = -ENOMEM;
                        goto out;
                }
                t->size = len;
                t->flags = whole.flags;
                for (size_t k = 0; k < off; k++)
                        if (whole.sql[k] == '\n')
                                t->line_offset++;
                t->ino = whole.ino;
                t->mtime_ns = whole.mtime_ns;
        }
        r = 0;
out:
        free(whole.file);
        free(whole.sql);
        return r;
}

DIR *migdir_opendir(int dir_fd) {
        int fd, saved;
        DIR *d;

        /* fdopendir takes the descriptor: give it one of its own */
        fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return NULL;
        d = fdopendir(fd);
        if (!d) {
                saved = errno;
                close(fd);
                errno = saved;
        }
        return d;
}

int migdir_load_entries(int dir_fd, const migration_set *previous, migration_set *s, migdir_errors *errors,
                        bool (*want)(int dir_fd, const char *name),
                        int (*load_one)(int dir_fd, const char *name, const migration_set *previous, migration *m,
                                        migdir_errors *errors),
                        int64_t (*version_of)(const char *name)) {
        struct dirent *de;
        bool bad = false;
        size_t from;
        int r = 0;
        DIR *d;

        d = migdir_opendir(dir_fd);
        if (!d)
                return -errno;
        while ((de = readdir(d))) {
                if (!want(dir_fd, de->d_name))
                        continue;
                from = errors ? errors->n : 0;
                r = migdir_load_item(s, load_one, dir_fd, de->d_name, previous, errors);
                if (r > 0 && version_of && migdir_errors_tag(errors, from, version_of(de->d_name)) < 0)
                        r = -ENOMEM;
                if (r < 0)
                        break;
                if (r > 0)
                        bad = true;
                r = 0;
        }
        closedir(d);
        return r < 0 ? r : bad;
}

migration *migdir_set_add(migration_set *s) {
        migration *m;

        m = realloc(s->items, (s->n + 1) * sizeof(*m));
        if (!m)
                return NULL;
        s->items = m;
        memset(&s->items[s->n], 0, sizeof(migration));
        return &s->items[s->n++];
}

void migdir_set_drop_last(migration_set *s) {
        migdir_migration_done(&s->items[--s->n]);
}

int migdir_load_item(migration_set *s, migdir_item_loader load, int dir_fd, const char *file,
                     const migration_set *previous, migdir_errors *errors) {
        migration *m = migdir_set_add(s);
        int r;

        if (!m)
                return -ENOMEM;
        r = load(dir_fd, file, previous, m, errors);
        if (r != 0)
                migdir_set_drop_last(s);
        return r;
}

static const char *item_label(const migration *m) {
        return m->key ?: m->up.file;
}

/* The format's order; the same version twice is ordered by file so that messages are stable. */
static int item_cmp(const void *a, const void *b, void *userdata) {
        const migration_format *f = userdata;
        const migration *x = a, *y = b;
        int c = f->compare(x, y);

        return c != 0 ? c : strcmp(item_label(x), item_label(y));
}

/* The driver every format shares: the format loads each item and records the problems of each,
 * then the set is put in the format's order and the same version twice is refused. */
static int load_with(const char *dir, const migration_format *f, const migration_set *previous, bool items,
                     migration_set **ret, migdir_errors *ret_errors) {
        _cleanup_(migration_set_freep) migration_set *s = NULL;
        _cleanup_close_ int dir_fd = -1;
        bool bad = false, bad_items = false;
        int r;

        dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dir_fd < 0)
                return -errno;
        s = calloc(1, sizeof(*s));
        if (!s || !(s->dir = strdup(dir)))
                return -ENOMEM;
        if (f->check_dir) {
                r = f->check_dir(dir_fd, ret_errors);
                if (r < 0)
                        return r;
                bad = r > 0;
        }
        r = f->load_items(dir_fd, previous, s, ret_errors);
        if (r < 0)
                return r;
        bad_items = r > 0;
        for (size_t i = 0; i < s->n; i++) {
                s->items[i].format = f;
                if (f->prepare) {
                        r = f->prepare(&s->items[i]);
                        if (r < 0)
                                return r;
                }
        }
        if (s->n > 1)
                qsort_r(s->items, s->n, sizeof(migration), item_cmp, (void *) f);
        for (size_t i = 1; i < s->n; i++)
                if (f->compare(&s->items[i], &s->items[i - 1]) == 0) {
                        r = migdir_error_add(ret_errors, "%s: duplicate %s %" PRId64 ", also used by %s",
                                             item_label(&s->items[i]), f->version_word, s->items[i].version,
                                             item_label(&s->items[i - 1]));
                        if (r < 0)
                                return r;
                        bad = true;
                }
        /* problems of single items hide the others only when the caller cannot keep them apart */
        if (bad || (bad_items && (!items || !ret_errors || !errors_all_items(ret_errors))))
                return MIGDIR_INVALID;
        *ret = TAKE_PTR(s);
        return 0;
}

int migdir_load_with(const char *dir, const migration_format *f, const migration_set *previous, migration_set **ret,
                     migdir_errors *ret_errors) {
        return load_with(dir, f, previous, false, ret, ret_errors);
}

static int load_format(const char *dir, migdir_format format, const migration_set *previous, bool items,
                       migration_set **ret, migdir_errors *ret_errors) {
        const migration_format *f = migration_format_get(format);
        int r;

        if (!f)
                return -EINVAL;
        if (previous && previous->format != format)
                previous = NULL;
        r = load_with(dir, f, previous, items, ret, ret_errors);
        if (r == 0)
                (*ret)->format = format;
        return r;
}

int migdir_load_format(const char *dir, migdir_format format, const migration_set *previous, migration_set **ret,
                       migdir_errors *ret_errors) {
        return load_format(dir, format, previous, false, ret, ret_errors);
}

int migdir_load_format_items(const char *dir, migdir_format format, const migration_set *previous,
                             migration_set **ret, migdir_errors *ret_errors) {
        return load_format(dir, format, previous, true, ret, ret_errors);
}

int migdir_load(const char *dir, const migration_set *previous, migration_set **ret, migdir_errors *ret_errors) {
        return migdir_load_format(dir, MIGDIR_NATIVE, previous, ret, ret_errors);
}

/* The table: a format's row at its migdir_format index. */
#define MIGDIR_FORMAT_ROW(id, name) [id] = &migration_format_##name,
static const migration_format *const formats[] = { MIGDIR_FORMATS(MIGDIR_FORMAT_ROW) };
#undef MIGDIR_FORMAT_ROW
_Static_assert(ELEMENTSOF(formats) == _MIGDIR_FORMAT_MAX, "one row per migdir_format");

size_t migration_format_count(void) {
        return ELEMENTSOF(formats);
}

const migration_format *migration_format_at(size_t i) {
        return i < ELEMENTSOF(formats) ? formats[i] : NULL;
}

const migration_format *migration_format_get(migdir_format f) {
        return migration_format_at((size_t) f);
}

const migration_format *migration_format_from_name(const char *name) {
        for (size_t i = 0; i < ELEMENTSOF(formats); i++)
                if (streq(formats[i]->name, name))
                        return formats[i];
        return NULL;
}

migdir_format migdir_detect_format_reason(const char *dir, const char **ret_reason) {
        /* O_PATH: looking for a marker file needs no read permission on the directory */
        _cleanup_close_ int fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);

        for (size_t i = 0; fd >= 0 && i < ELEMENTSOF(formats); i++)
                if (formats[i]->detect && formats[i]->detect(fd, ret_reason))
                        return (migdir_format) i;
        if (ret_reason)
                *ret_reason = "no other format's marker is present";
        return MIGDIR_NATIVE;
}

migdir_format migdir_detect_format(const char *dir) {
        return migdir_detect_format_reason(dir, NULL);
}

const char *migdir_format_to_string(migdir_format f) {
        const migration_format *row = migration_format_get(f);

        return row ? row->name : NULL;
}

int migdir_format_from_string(const char *s, migdir_format *ret) {
        for (size_t i = 0; i < ELEMENTSOF(formats); i++)
                if (streq(formats[i]->name, s)) {
                        *ret = (migdir_format) i;
                        return 0;
                }
        return -EINVAL;
}

const char *migdir_format_choices(void) {
        /* built once from the table; the settings are read before any other thread starts */
        static char buf[256];
        size_t n;

        if (buf[0])
                return buf;
        n = (size_t) snprintf(buf, sizeof(buf), "auto");
        for (size_t i = 0; i < ELEMENTSOF(formats) && n < sizeof(buf); i++)
                n += (size_t) snprintf(buf + n, sizeof(buf) - n, "%s%s", i + 1 == ELEMENTSOF(formats) ? " or " : ", ",
                                       formats[i]->name);
        return buf;
}

bool migration_checksum_matches(const migration *m, const char *recorded) {
        if (!recorded)
                return false;
        if (streq(m->checksum, recorded))
                return true;
        return m->format && m->format->checksum_also_matches && m->format->checksum_also_matches(m, recorded);
}

const char *migration_record_name(const migration *m) {
        return m->key ?: m->name;
}

void migration_new_clear(migration_new *n) {
        free(n->dir);
        for (size_t i = 0; i < MIGRATION_NEW_FILES_MAX; i++) {
                free(n->files[i].path);
                free(n->files[i].content);
        }
        memset(n, 0, sizeof(*n));
}

void migration_format_key(const migration_format *f, int64_t version, char buf[static MIGRATION_KEY_MAX]) {
        if (version == 0)
                buf[0] = '\0';
        else if (f && f->key_of)
                f->key_of(version, buf, MIGRATION_KEY_MAX);
        else
                snprintf(buf, MIGRATION_KEY_MAX, "%" PRId64, version);
}

int migration_format_parse_key(const migration_format *f, const char *key, int64_t *ret) {
        int64_t v = 0;

        if (f && f->version_of_key)
                return f->version_of_key(key, ret);
        if (!*key)
                return -EINVAL;
        for (const char *p = key; *p; p++) {
                if (*p < '0' || *p > '9' || v > (INT64_MAX - (*p - '0')) / 10)
                        return -EINVAL;
                v = v * 10 + (*p - '0');
        }
        *ret = v;
        return 0;
}
