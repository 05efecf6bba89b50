/* SPDX-License-Identifier: MIT */
/* goose's layout (pressly/goose v3): one file per migration, {version}_{name}.sql, holding a
 * "-- +goose Up" section and an optional "-- +goose Down" section, with the annotations
 * StatementBegin/StatementEnd, NO TRANSACTION and ENVSUB ON/OFF. The file is checked line by line
 * with goose's own parser rules (internal/sqlparser), so that a file goose refuses is refused here
 * too, naming its line; each section is then handed to the database whole, where SQLite's
 * statement walk keeps a StatementBegin block's inner semicolons (trigger bodies) intact. Go
 * migrations (.go files) are compiled into a goose binary and cannot run here. */

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "migdir-internal.h"

typedef enum goose_annotation {
        GOOSE_UP,
        GOOSE_DOWN,
        GOOSE_STATEMENT_BEGIN,
        GOOSE_STATEMENT_END,
        GOOSE_NO_TRANSACTION,
        GOOSE_ENVSUB_ON,
        GOOSE_ENVSUB_OFF,
        _GOOSE_ANNOTATION_MAX,
} goose_annotation;

static const char *const annotation_names[_GOOSE_ANNOTATION_MAX] = {
        [GOOSE_UP] = "Up",
        [GOOSE_DOWN] = "Down",
        [GOOSE_STATEMENT_BEGIN] = "StatementBegin",
        [GOOSE_STATEMENT_END] = "StatementEnd",
        [GOOSE_NO_TRANSACTION] = "NO TRANSACTION",
        [GOOSE_ENVSUB_ON] = "ENVSUB ON",
        [GOOSE_ENVSUB_OFF] = "ENVSUB OFF",
};

#define GOOSE_KNOWN "Up, Down, StatementBegin, StatementEnd, NO TRANSACTION, ENVSUB ON, ENVSUB OFF"

/* One line of the file as goose's scanner yields it: without its '\n' nor a '\r' before it. */
typedef struct goose_line {
        const char *s;
        size_t len;
        size_t start, next; /* offsets of the line and of the one after it */
} goose_line;

static bool next_line(const char *sql, size_t size, size_t *pos, goose_line *ret) {
        const char *nl;

        if (*pos >= size)
                return false;
        nl = memchr(sql + *pos, '\n', size - *pos);
        ret->s = sql + *pos;
        ret->start = *pos;
        ret->len = nl ? (size_t) (nl - ret->s) : size - *pos;
        ret->next = nl ? (size_t) (nl - sql) + 1 : size;
        if (ret->len > 0 && ret->s[ret->len - 1] == '\r')
                ret->len--;
        *pos = ret->next;
        return true;
}

static void trim(const char **s, size_t *len) {
        while (*len > 0 && isspace((unsigned char) **s))
                (*s)++, (*len)--;
        while (*len > 0 && isspace((unsigned char) (*s)[*len - 1]))
                (*len)--;
}

/* goose's test for an annotation line: a comment that mentions +goose anywhere. */
static bool is_annotation_line(const goose_line *l) {
        const char *t = l->s;
        size_t n = l->len;

        trim(&t, &n);
        return n >= 2 && t[0] == '-' && t[1] == '-' && memmem(l->s, l->len, "+goose", 6);
}

/* goose's extractAnnotation: every "--" removed, then the first "+goose", the rest trimmed and
 * compared without case. Returns the annotation, or -EINVAL with *ret_why set. */
static int parse_annotation(const goose_line *l, const char **ret_why) {
        char cmd[256], *g;
        const char *t;
        size_t n = 0, len;

        if (l->len > 0 && (l->s[0] == ' ' || l->s[0] == '\t')) {
                *ret_why = "an annotation must start at the beginning of its line";
                return -EINVAL;
        }
        for (size_t i = 0; i < l->len && n + 1 < sizeof(cmd); i++) {
                if (l->s[i] == '-' && i + 1 < l->len && l->s[i + 1] == '-') {
                        i++;
                        continue;
                }
                cmd[n++] = l->s[i];
        }
        cmd[n] = '\0';
        g = strstr(cmd, "+goose");
        if (g) {
                memmove(g, g + 6, strlen(g + 6) + 1);
                if (strstr(cmd, "+goose")) {
                        *ret_why = "more than one '+goose' on one line";
                        return -EINVAL;
                }
        }
        t = cmd;
        len = strlen(cmd);
        trim(&t, &len);
        for (int a = 0; a < _GOOSE_ANNOTATION_MAX; a++)
                if (len == strlen(annotation_names[a]) && strncasecmp(t, annotation_names[a], len) == 0)
                        return a;
        *ret_why = len == 0 ? "an empty '-- +goose' annotation (known: " GOOSE_KNOWN ")"
                            : "unknown annotation (known: " GOOSE_KNOWN ")";
        return -EINVAL;
}

/* goose's endsWithSemicolon: the last word before a "--" comment ends with ';'. */
static bool ends_with_semicolon(const goose_line *l) {
        const char *p = l->s, *end = l->s + l->len, *word = NULL;
        size_t word_len = 0;

        while (p < end) {
                const char *w;

                while (p < end && isspace((unsigned char) *p))
                        p++;
                if (p >= end)
                        break;
                w = p;
                while (p < end && !isspace((unsigned char) *p))
                        p++;
                if (p - w >= 2 && w[0] == '-' && w[1] == '-')
                        break;
                word = w;
                word_len = (size_t) (p - w);
        }
        return word && word[word_len - 1] == ';';
}

enum {
        S_START,
        S_UP,
        S_BEGIN_UP,
        S_END_UP,
        S_DOWN,
        S_BEGIN_DOWN,
        S_END_DOWN,
};

/* The reason of the last refused split, naming its line; read by the driver right away. */
static _Thread_local char split_reason[512];

static int refuse(const char **ret_reason, const char *fmt, ...) _printf_(2, 3);
static int refuse(const char **ret_reason, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(split_reason, sizeof(split_reason), fmt, ap);
        va_end(ap);
        *ret_reason = split_reason;
        return -EINVAL;
}

/* goose's parser (sqlparser.ParseSQLMigration) as a check, recording where the sections start and
 * end: the up section runs from the line after "-- +goose Up" to the "-- +goose Down" line, the
 * down section from there to the end. The annotation lines left inside are SQL comments. */
static int goose_split(const char *sql, size_t size, size_t *ret_up_off, size_t *ret_up_len, size_t *ret_down_off,
                       size_t *ret_down_len, const char **ret_reason) {
        size_t pos = 0, up_off = 0, up_end = SIZE_MAX, down_off = 0;
        unsigned n = 0, pending_line = 0, begin_line = 0, empty_block_line = 0;
        bool buffered = false; /* goose's statement buffer is not empty */
        int state = S_START;
        goose_line l;

        while (next_line(sql, size, &pos, &l)) {
                const char *t = l.s, *why = NULL;
                size_t tlen = l.len;
                int a;

                n++;
                trim(&t, &tlen);
                if (state == S_START && tlen == 0)
                        continue;
                if (is_annotation_line(&l)) {
                        a = parse_annotation(&l, &why);
                        if (a < 0)
                                return refuse(ret_reason, "line %u: %s: %.*s", n, why, (int) (l.len < 80 ? l.len : 80), l.s);
                        switch (a) {
                        case GOOSE_UP:
                                if (state != S_START)
                                        return refuse(ret_reason, "line %u: a second '-- +goose Up' annotation", n);
                                state = S_UP;
                                up_off = l.next;
                                continue;
                        case GOOSE_DOWN:
                                if (state == S_START)
                                        return refuse(ret_reason, "line %u: '-- +goose Down' comes before '-- +goose Up'",
                                                      n);
                                if (state == S_BEGIN_UP)
                                        return refuse(ret_reason, "line %u: '-- +goose Down' inside the StatementBegin "
                                                      "block of line %u (StatementEnd is missing)", n, begin_line);
                                if (state != S_UP && state != S_END_UP)
                                        return refuse(ret_reason, "line %u: a second '-- +goose Down' annotation", n);
                                if (buffered && pending_line > 0)
                                        return refuse(ret_reason, "line %u: the statement is not finished: its last line "
                                                      "must end with ';' (goose splits statements there)", pending_line);
                                state = S_DOWN;
                                up_end = l.start;
                                down_off = l.next;
                                buffered = false;
                                continue;
                        case GOOSE_STATEMENT_BEGIN:
                                if (state == S_UP || state == S_END_UP)
                                        state = S_BEGIN_UP;
                                else if (state == S_DOWN || state == S_END_DOWN)
                                        state = S_BEGIN_DOWN;
                                else if (state == S_START)
                                        return refuse(ret_reason, "line %u: '-- +goose StatementBegin' comes before "
                                                      "'-- +goose Up'", n);
                                else
                                        return refuse(ret_reason, "line %u: '-- +goose StatementBegin' inside the "
                                                      "StatementBegin block of line %u", n, begin_line);
                                begin_line = n;
                                continue;
                        case GOOSE_STATEMENT_END:
                                if (state != S_BEGIN_UP && state != S_BEGIN_DOWN)
                                        return refuse(ret_reason, "line %u: '-- +goose StatementEnd' without a "
                                                      "StatementBegin before it", n);
                                state = state == S_BEGIN_UP ? S_END_UP : S_END_DOWN;
                                if (!buffered) {
                                        empty_block_line = begin_line;
                                        continue;
                                }
                                break;
                        case GOOSE_NO_TRANSACTION: /* read by goose_parse_directives */
                        case GOOSE_ENVSUB_OFF:
                                continue;
                        case GOOSE_ENVSUB_ON:
                                return refuse(ret_reason, "line %u: '-- +goose ENVSUB ON' asks for environment "
                                              "variables to be substituted into the SQL, which migrated does not "
                                              "do (the daemon's environment is not the deployer's): write the "
                                              "values into the file", n);
                        }
                }
                if (!buffered && (l.len == 0 || (tlen >= 2 && t[0] == '-' && t[1] == '-')))
                        continue; /* comments and blank lines between statements */
                if (state == S_START)
                        return refuse(ret_reason, "line %u: SQL before the '-- +goose Up' annotation", n);
                if (state == S_END_UP || state == S_END_DOWN) {
                        if (!buffered)
                                /* goose stores its empty buffer here and drops this line */
                                return refuse(ret_reason, "line %u: goose would skip this line, as it follows the "
                                              "empty StatementBegin block of line %u: remove the empty block", n,
                                              empty_block_line);
                        state = state == S_END_UP ? S_UP : S_DOWN;
                        buffered = false;
                        pending_line = 0;
                        continue;
                }
                buffered = true;
                if (tlen > 0 && pending_line == 0)
                        pending_line = n;
                if ((state == S_UP || state == S_DOWN) && ends_with_semicolon(&l)) {
                        buffered = false;
                        pending_line = 0;
                }
        }
        if (state == S_START)
                return refuse(ret_reason, "no '-- +goose Up' annotation: a goose migration starts its SQL with one");
        if (state == S_BEGIN_UP || state == S_BEGIN_DOWN)
                return refuse(ret_reason, "line %u: '-- +goose StatementBegin' has no StatementEnd", begin_line);
        /* An unfinished statement in the Down section: goose's CLI still runs up (it parses the
         * direction it runs) and refuses down; here down hands it to SQLite, which runs it or fails
         * naming its line. */
        if (buffered && pending_line > 0 && up_end == SIZE_MAX)
                return refuse(ret_reason, "line %u: the statement is not finished: its last line must end with ';' "
                              "(goose splits statements there)", pending_line);

        *ret_up_off = up_off;
        if (up_end == SIZE_MAX) {
                /* no Down annotation: the migration cannot be reverted */
                *ret_up_len = size - up_off;
                *ret_down_off = 0;
                *ret_down_len = SIZE_MAX;
        } else {
                *ret_up_len = up_end - up_off;
                *ret_down_off = down_off;
                *ret_down_len = size - down_off;
        }
        return 0;
}

/* "-- +goose NO TRANSACTION" anywhere in the file runs both of its sections outside a
 * transaction. Malformed annotations are the split's to report, with their line. */
static int goose_parse_directives(const char *sql, size_t size, unsigned *ret_flags, char **ret_bad) {
        size_t pos = 0;
        goose_line l;

        *ret_flags = 0;
        while (next_line(sql, size, &pos, &l)) {
                const char *why;

                if (is_annotation_line(&l) && parse_annotation(&l, &why) == GOOSE_NO_TRANSACTION)
                        *ret_flags |= MIGRATION_NO_TRANSACTION;
        }
        return 0;
}

/* goose's NumericComponent: the digits before the first '_' (strconv.ParseInt, so an optional
 * '+'), a version of at least 1. */
static int parse_version(const char *file, int64_t *ret, size_t *ret_prefix, const char **ret_reason) {
        const char *us = strchr(file, '_'), *p = file;
        int64_t v = 0;

        if (!us) {
                *ret_reason = "no '_' after the version (goose names files {version}_{name}.sql)";
                return -EINVAL;
        }
        if (*p == '+')
                p++;
        if (p == us) {
                *ret_reason = "the name must start with a version number";
                return -EINVAL;
        }
        for (; p < us; p++) {
                if (!isdigit((unsigned char) *p)) {
                        *ret_reason = "the version before the first '_' is not a number";
                        return -EINVAL;
                }
                if (v > (INT64_MAX - (*p - '0')) / 10) {
                        *ret_reason = "the version number is too large";
                        return -EINVAL;
                }
                v = v * 10 + (*p - '0');
        }
        if (v < 1) {
                *ret_reason = "the version must be greater than zero";
                return -EINVAL;
        }
        *ret = v;
        *ret_prefix = (size_t) (us - file);
        return 0;
}

static bool has_suffix(const char *s, const char *suffix) {
        size_t n = strlen(s), k = strlen(suffix);

        return n >= k && streq(s + n - k, suffix);
}

/* One {version}_{name}.sql file, read and split. Returns 0, 1 (recorded) or -errno. */
static int load_file(int dir_fd, const char *file, const migration_set *previous, migration *m,
                     migdir_errors *errors) {
        const char *reason = NULL;
        size_t prefix = 0;

        if (parse_version(file, &m->version, &prefix, &reason) < 0)
                return migdir_error_add(errors, "%s: not a goose migration: %s", file, reason) ?: 1;
        m->version_key = strndup(file, prefix);
        m->name = strndup(file + prefix + 1, strlen(file) - prefix - 1 - strlen(".sql"));
        if (!m->version_key || !m->name)
                return -ENOMEM;
        return migdir_read_split(dir_fd, file, &migration_format_goose, previous, m, errors);
}

static int cmp_strings(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

/* The Go migrations goose would run (a version prefix, not a _test.go), named in one message. */
static int refuse_go_files(char **go, size_t n_go, migdir_errors *errors) {
        _cleanup_free_ char *list = NULL;
        size_t len = 0;

        if (n_go == 0)
                return 0;
        qsort(go, n_go, sizeof(char *), cmp_strings);
        for (size_t i = 0; i < n_go; i++)
                len += strlen(go[i]) + 2;
        list = calloc(1, len + 1);
        if (!list)
                return -ENOMEM;
        for (size_t i = 0; i < n_go; i++) {
                if (i > 0)
                        strcat(list, ", ");
                strcat(list, go[i]);
        }
        return migdir_error_add(errors,
                                "%s: Go migrations cannot run here: goose compiles them into its own binary, and "
                                "migrated runs SQL only; rewrite %s as SQL, or apply %s with your goose binary",
                                list, n_go == 1 ? "it" : "them", n_go == 1 ? "it" : "them") ?: 1;
}

/* The Go migrations of the directory (*.go with a version, not a _test.go: goose skips those
 * too), appended to *go. Returns 0 or -errno. */
static int list_go_files(int dir_fd, char ***go, size_t *n_go) {
        struct dirent *de;
        int r = 0;
        DIR *d;

        d = migdir_opendir(dir_fd);
        if (!d)
                return -errno;
        while ((de = readdir(d))) {
                const char *why;
                size_t prefix;
                int64_t v;
                char **g;

                if (!has_suffix(de->d_name, ".go") || parse_version(de->d_name, &v, &prefix, &why) < 0 ||
                    has_suffix(de->d_name, "_test.go"))
                        continue;
                g = realloc(*go, (*n_go + 1) * sizeof(char *));
                if (!g) {
                        r = -ENOMEM;
                        break;
                }
                *go = g;
                if (!(g[*n_go] = strdup(de->d_name))) {
                        r = -ENOMEM;
                        break;
                }
                (*n_go)++;
        }
        closedir(d);
        return r;
}

static bool is_sql_file(int dir_fd, const char *name) {
        return has_suffix(name, ".sql");
}

/* Every *.sql file is a migration, as goose's glob has it; *.go files with a version are Go
 * migrations, refused together; other files are not goose's. */
static int goose_load_items(int dir_fd, const migration_set *previous, migration_set *s, migdir_errors *errors) {
        char **go = NULL;
        size_t n_go = 0;
        int r, bad;

        bad = migdir_load_entries(dir_fd, previous, s, errors, is_sql_file, load_file, NULL);
        if (bad < 0)
                return bad;
        r = list_go_files(dir_fd, &go, &n_go);
        if (r == 0)
                r = refuse_go_files(go, n_go, errors);
        for (size_t i = 0; i < n_go; i++)
                free(go[i]);
        free(go);
        return r < 0 ? r : bad || r > 0;
}

/* Whether the file's first 64 KiB have a "-- +goose Up" line. */
static bool file_has_up(int dir_fd, const char *file) {
        _cleanup_close_ int fd = openat(dir_fd, file, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        char buf[65536];
        size_t pos = 0;
        goose_line l;
        ssize_t n;

        if (fd < 0)
                return false;
        n = read(fd, buf, sizeof(buf));
        if (n <= 0)
                return false;
        while (next_line(buf, (size_t) n, &pos, &l)) {
                const char *why;

                if (is_annotation_line(&l) && parse_annotation(&l, &why) == GOOSE_UP)
                        return true;
        }
        return false;
}

/* A {digits}_{name}.sql file with a "-- +goose Up" annotation marks goose's directory. */
static bool goose_detect(int dir_fd, const char **ret_reason) {
        struct dirent *de;
        bool found = false;
        DIR *d;

        d = migdir_opendir(dir_fd);
        if (!d)
                return false;
        while (!found && (de = readdir(d))) {
                const char *p = de->d_name;
                size_t digits = strspn(p, "0123456789");

                if (digits > 0 && p[digits] == '_' && has_suffix(p, ".sql") && file_has_up(dir_fd, p))
                        found = true;
        }
        closedir(d);
        if (found && ret_reason)
                *ret_reason = "a {version}_{name}.sql file has a '-- +goose Up' annotation";
        return found;
}

/* goose records no checksum: its history row matches any file of the version. */
static bool goose_checksum_also_matches(const migration *m, const char *recorded) {
        return recorded[0] == '\0';
}

/* goose's snakeCase of the name: runs of other characters become one '_', letters lower case. */
static char *snake_case(const char *name) {
        size_t n = 0;
        char *s = malloc(2 * strlen(name) + 1);
        int state = 0; /* 0 idle, 1 first alphanumeric, 2 alphanumeric, 3 delimiter */

        if (!s)
                return NULL;
        for (const char *p = name; *p; p++) {
                bool an = isalnum((unsigned char) *p);

                state = state == 0 ? (an ? 1 : 0) : state == 3 ? (an ? 1 : 0) : an ? 2 : 3;
                if (state == 1 || state == 2)
                        s[n++] = (char) tolower((unsigned char) *p);
                else if (state == 3)
                        s[n++] = '_';
        }
        if (state == 0 && n > 0 && s[n - 1] == '_')
                n--;
        s[n] = '\0';
        return s;
}

/* `goose create NAME sql` writes {timestamp}_{name}.sql; `goose create -s` writes {%05d}_{name}.sql
 * after the last version. The directory decides which: an empty one or one numbered by
 * timestamps gets a timestamp, a sequence goes on by one. */
static int goose_new_files(const migration_set *s, const char *name, migration_new *ret) {
        _cleanup_free_ char *snake = snake_case(name);
        int64_t version;
        int r;

        if (!snake)
                return -ENOMEM;
        if (s->n == 0)
                version = migdir_timestamp_version_now();
        else {
                r = migdir_next_version(s, &version);
                if (r < 0)
                        return r;
        }
        return migdir_new_add(ret, version,
                              migdir_strdupf(version >= INT64_C(10000000000000) ? "%" PRId64 "_%s.sql"
                                                                                : "%05" PRId64 "_%s.sql",
                                             version, snake),
                              strdup("-- +goose Up\n"
                                     "SELECT 'up SQL query';\n"
                                     "\n"
                                     "-- +goose Down\n"
                                     "SELECT 'down SQL query';\n"));
}

const migration_format migration_format_goose = {
        .name = "goose",
        .capability = "goose",
        .layout = "{version}_{name}.sql with '-- +goose Up' and '-- +goose Down' sections",
        .version_word = "version",
        .directive_prefix = "-- +goose ",
        .directives = GOOSE_KNOWN,
        .baseline_untracked_tables = true,
        .detect = goose_detect,
        .load_items = goose_load_items,
        .split = goose_split,
        .parse_directives = goose_parse_directives,
        .compare = migdir_compare_integer,
        .checksum_also_matches = goose_checksum_also_matches,
        .new_files = goose_new_files,
};
