/* SPDX-License-Identifier: MIT */
/* Seeds: SQL files applied after the migrations, in name order, each in its own transaction, and
 * recorded in migrated_seeds (name, checksum, applied_at) beside migrated_attempts: in the
 * database for the native format, in the state directory's history.sqlite for the others. An
 * applied seed is not run again; an applied seed whose file changed is refused, unless the file
 * says "-- migrated: seed always" (idempotent by construction: it runs every time). A seed that
 * meets a transient failure (a busy or locked database, a lock timeout, a deadlock, a
 * serialization failure) is rolled back and runs again after a pause that doubles, a bounded
 * number of times; any other failure ends the job at once, naming the file and the line. */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "engine-internal.h"
#include "log.h"
#include "sha256.h"

#define SEED_ALWAYS_MARK "-- migrated: seed always"
#define SEED_SIZE_MAX (64u * 1024 * 1024)

typedef struct seed_file {
        char *name;
        char *sql;
        size_t size;
        char checksum[SHA256_HEX_SIZE];
        bool always;
} seed_file;

typedef struct seed_list {
        seed_file *items;
        size_t n;
} seed_list;

static void seed_list_clear(seed_list *l) {
        for (size_t i = 0; i < l->n; i++) {
                free(l->items[i].name);
                free(l->items[i].sql);
        }
        free(l->items);
        *l = (seed_list) {};
}

char *engine_default_seeds_dir(const char *migrations_dir) {
        const char *slash = strrchr(migrations_dir, '/');
        char *s;

        /* "db/migrations" -> "db/seeds"; "migrations" -> "seeds"; "/migrations" -> "/seeds" */
        if (!slash)
                return strdup("seeds");
        if (asprintf(&s, "%.*s/seeds", (int) (slash - migrations_dir), migrations_dir) < 0)
                return NULL;
        return s;
}

static int read_whole(int dirfd, const char *name, char **ret, size_t *ret_size) {
        _cleanup_close_ int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
        _cleanup_free_ char *buf = NULL;
        struct stat st;
        size_t got = 0;

        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EISDIR;
        if ((uint64_t) st.st_size > SEED_SIZE_MAX)
                return -EFBIG;
        buf = malloc((size_t) st.st_size + 1);
        if (!buf)
                return -ENOMEM;
        while (got < (size_t) st.st_size) {
                ssize_t n = read(fd, buf + got, (size_t) st.st_size - got);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n == 0)
                        break;
                got += (size_t) n;
        }
        buf[got] = '\0';
        *ret = TAKE_PTR(buf);
        *ret_size = got;
        return 0;
}

/* Whether a line of the file is exactly the "always" mark (spaces around it allowed). */
static bool says_always(const char *sql) {
        size_t n = strlen(SEED_ALWAYS_MARK);

        for (const char *p = sql; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
                while (*p == ' ' || *p == '\t')
                        p++;
                if (strncmp(p, SEED_ALWAYS_MARK, n) == 0) {
                        const char *q = p + n;
                        while (*q == ' ' || *q == '\t' || *q == '\r')
                                q++;
                        if (*q == '\n' || *q == '\0')
                                return true;
                }
        }
        return false;
}

static int compare_seeds(const void *a, const void *b) {
        return strcmp(((const seed_file *) a)->name, ((const seed_file *) b)->name);
}

/* The directory's *.sql files in name order; a missing directory is no seeds. */
static int seeds_scan(const char *dir, seed_list *ret) {
        _cleanup_close_ int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        seed_list l = {};
        DIR *d;
        struct dirent *de;
        int fd, r = 0;

        if (dirfd < 0)
                return errno == ENOENT ? 0 : -errno;
        fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 3);
        if (fd < 0)
                return -errno;
        d = fdopendir(fd);
        if (!d) {
                r = -errno;
                close(fd);
                return r;
        }
        while (r == 0 && (de = readdir(d))) {
                size_t len = strlen(de->d_name);
                seed_file *items, *s;
                if (de->d_name[0] == '.' || len < 5 || !streq(de->d_name + len - 4, ".sql"))
                        continue;
                items = realloc(l.items, (l.n + 1) * sizeof(*items));
                if (!items) {
                        r = -ENOMEM;
                        break;
                }
                l.items = items;
                s = &l.items[l.n];
                *s = (seed_file) { .name = strdup(de->d_name) };
                if (!s->name) {
                        r = -ENOMEM;
                        break;
                }
                l.n++;
                r = read_whole(dirfd, s->name, &s->sql, &s->size);
                if (r == 0)
                        r = sha256_hex(s->sql, s->size, s->checksum);
                if (r == 0)
                        s->always = says_always(s->sql);
        }
        closedir(d);
        if (r < 0) {
                seed_list_clear(&l);
                return r;
        }
        qsort(l.items, l.n, sizeof(*l.items), compare_seeds);
        *ret = l;
        return 0;
}

/* Where migrated_seeds lives: with migrated_attempts. */
static db *book_of(engine *e) {
        return e->db->own ?: e->db;
}

/* In the seed's own transaction (which may meet a busy database and be retried), not before it. */
static int ensure_table(db *d, db_failure *f) {
        return db_query(d, "CREATE TABLE IF NOT EXISTS migrated_seeds (name TEXT PRIMARY KEY, checksum TEXT NOT NULL, "
                           "applied_at TEXT NOT NULL)", NULL, 0, NULL, NULL, NULL, f, "cannot create migrated_seeds");
}

static int on_applied_row(const db_value *cols, size_t n, void *userdata) {
        json_t *applied = userdata;

        if (n == 2 && cols[0].type == DB_VALUE_TEXT && cols[1].type == DB_VALUE_TEXT)
                json_object_set_new(applied, cols[0].s, json_string(cols[1].s));
        return 0;
}

/* Where migrated_seeds lives (with migrated_attempts), in the seed's transaction or after it. */
static int record_seed(db *app, void *userdata, db_failure *f) {
        const seed_file *s = userdata;
        db *d = app->own ?: app;
        char now[32];
        int r = ensure_table(d, f);

        if (r != 0)
                return r;
        db_timestamp(now);
        return db_query(d, "INSERT INTO migrated_seeds (name, checksum, applied_at) VALUES (?1, ?2, ?3) "
                           "ON CONFLICT (name) DO UPDATE SET checksum = excluded.checksum, applied_at = excluded.applied_at",
                        (db_value[]) { DB_TEXT(s->name), DB_TEXT(s->checksum), DB_TEXT(now) }, 3, NULL, NULL, NULL, f,
                        "cannot record the seed");
}

static int run_seed(db *d, void *userdata, db_failure *f) {
        const seed_file *s = userdata;
        int r = db_exec_script(d, s->sql, s->size, true, f);

        return r != 0 ? r : db_check_foreign_keys(d, f);
}

/* One try of one seed: its SQL and its record in one transaction (or the record after it, with
 * the bookkeeping apart). */
static int apply_once(engine *e, const seed_file *s, db_failure *f) {
        return db_change_and_record(e->db, run_seed, record_seed, (void *) s, f);
}

static bool transient(const db_failure *f) {
        return f->retry || f->code == PROTOCOL_ERROR_BUSY || f->connection_lost;
}

/* Before a retry: a lost connection is opened again (between transactions), best effort: if it
 * cannot be, the next try fails the same way and counts as a retry too. */
static void reconnect(engine *e, const db_failure *f) {
        db_failure ignored = {};

        if (f->connection_lost)
                (void) db_check_identity(e->db, &ignored);
        db_failure_clear(&ignored);
}

/* Pauses for ms unless the job is stopped meanwhile; false when it was. */
static bool pause_ms(engine *e, unsigned ms) {
        for (unsigned slept = 0; slept < ms && !atomic_load(&e->interrupted); slept += 50)
                nanosleep(&(struct timespec) { 0, (long) (ms - slept < 50 ? ms - slept : 50) * 1000000L }, NULL);
        return !atomic_load(&e->interrupted);
}

static void emit(engine_progress_fn progress, void *userdata, json_t *fields) {
        if (progress)
                progress(userdata, "seed", fields);
        else
                json_decref(fields);
}

/* Runs one seed with its retries; *ret_retries counts them. */
static int apply_seed(engine *e, const char *path, const seed_file *s, engine_progress_fn progress, void *userdata,
                      unsigned *ret_retries, json_t *applied, engine_error *err) {
        db_failure f = {};
        int r;

        for (unsigned attempt = 0;; attempt++) {
                unsigned ms;
                r = apply_once(e, s, &f);
                if (r <= 0)
                        break;
                if (!transient(&f) || atomic_load(&e->interrupted))
                        break;
                if (attempt >= e->seed_retries) {
                        char *m = NULL;
                        if (asprintf(&m, "%s (gave up after %u retries, [seeds] retries)", f.message ?: "",
                                     attempt) >= 0) {
                                free(f.message);
                                f.message = m;
                        }
                        break;
                }
                ms = e->seed_backoff_ms << (attempt < 10 ? attempt : 10);
                (*ret_retries)++;
                log_warning("Seed %s met a transient failure (%s); retry %u of %u in %u ms", s->name,
                            f.message ?: "?", attempt + 1, e->seed_retries, ms);
                emit(progress, userdata, json_pack("{s:s,s:s,s:I,s:I,s:s}", "phase", "retrying", "name", s->name,
                                                   "retry", (json_int_t) attempt + 1, "backoff_ms", (json_int_t) ms,
                                                   "reason", f.message ?: ""));
                reconnect(e, &f);
                db_failure_clear(&f);
                if (!pause_ms(e, ms)) {
                        f.code = PROTOCOL_ERROR_INTERRUPTED;
                        f.message = strdup("interrupted while waiting to retry");
                        r = DB_FAILED;
                        break;
                }
        }
        if (r > 0) {
                json_t *extra = json_pack("{s:s,s:s,s:O}", "seed", s->name, "file", path, "applied", applied);
                if (f.line > 0)
                        json_object_set_new(extra, "line", json_integer(f.line));
                if (f.line > 0)
                        r = engine_fail(err, f.code, extra, "%s:%u: %s; this seed was rolled back (the seeds before it "
                                        "stay applied)", path, f.line, f.message ?: "failed");
                else
                        r = engine_fail(err, f.code, extra, "%s: %s; this seed was rolled back (the seeds before it "
                                        "stay applied)", path, f.message ?: "failed");
        }
        db_failure_clear(&f);
        return r;
}

int engine_seed(engine *e, const engine_job *job, engine_progress_fn progress, void *userdata, json_t *result,
                engine_error *err) {
        _cleanup_(seed_list_clear) seed_list l = {};
        json_t *recorded = NULL, *applied = NULL, *skipped = NULL;
        db_failure f = {};
        unsigned retries = 0;
        int r;

        (void) job;
        r = seeds_scan(e->seeds_dir, &l);
        if (r < 0)
                return engine_fail(err, PROTOCOL_ERROR_DIRECTORY_INVALID, json_pack("{s:s}", "dir", e->seeds_dir),
                                   "cannot read the seeds directory %s: %s", e->seeds_dir, strerror(-r));
        recorded = json_object();
        applied = json_array();
        skipped = json_array();
        if (!recorded || !applied || !skipped) {
                r = -ENOMEM;
                goto finish;
        }
        if (l.n > 0) {
                bool have = false;
                /* a read: it waits for no writer */
                r = db_table_exists(book_of(e), "migrated_seeds", &have, &f);
                if (r == 0 && have)
                        r = db_query(book_of(e), "SELECT name, checksum FROM migrated_seeds", NULL, 0, on_applied_row,
                                     recorded, NULL, &f, "cannot read migrated_seeds");
                if (r != 0) {
                        r = r < 0 ? r : engine_fail_db(err, &f, NULL);
                        goto finish;
                }
        }
        /* an edited applied seed is refused before any seed runs */
        for (size_t i = 0; i < l.n; i++) {
                const char *sum = json_string_value(json_object_get(recorded, l.items[i].name));
                if (sum && !l.items[i].always && !streq(sum, l.items[i].checksum)) {
                        r = engine_fail(err, PROTOCOL_ERROR_CHECKSUM_MISMATCH,
                                        json_pack("{s:s,s:s,s:s}", "seed", l.items[i].name, "recorded", sum,
                                                  "checksum", l.items[i].checksum),
                                        "the applied seed %s/%s was edited since it ran (checksum %.12s…, now "
                                        "%.12s…); no seed was run. Put a new seed in a new file, or mark the file "
                                        "'%s' if it is idempotent", e->seeds_dir, l.items[i].name, sum,
                                        l.items[i].checksum, SEED_ALWAYS_MARK);
                        goto finish;
                }
        }
        for (size_t i = 0; i < l.n; i++) {
                const seed_file *s = &l.items[i];
                _cleanup_free_ char *path = NULL;
                if (json_object_get(recorded, s->name) && !s->always) {
                        json_array_append_new(skipped, json_string(s->name));
                        continue;
                }
                if (asprintf(&path, "%s/%s", e->seeds_dir, s->name) < 0) {
                        r = -ENOMEM;
                        goto finish;
                }
                emit(progress, userdata, json_pack("{s:s,s:s}", "phase", "applying", "name", s->name));
                r = apply_seed(e, path, s, progress, userdata, &retries, applied, err);
                if (r != 0)
                        goto finish;
                json_array_append_new(applied, json_string(s->name));
                emit(progress, userdata, json_pack("{s:s,s:s}", "phase", "applied", "name", s->name));
        }
        r = json_object_set_new(result, "seeds", json_pack("{s:s,s:O,s:O,s:I}", "dir", e->seeds_dir, "applied",
                                                           applied, "skipped", skipped, "retries",
                                                           (json_int_t) retries)) < 0 ? -ENOMEM : 0;
finish:
        db_failure_clear(&f);
        json_decref(recorded);
        json_decref(applied);
        json_decref(skipped);
        return r;
}

int engine_seed_job(engine *e, const engine_job *job, engine_progress_fn progress, void *userdata,
                    json_t **ret_result, engine_error *err) {
        *ret_result = json_pack("{s:I,s:s}", "job_id", (json_int_t) job->id, "status", "seeded");
        if (!*ret_result)
                return -ENOMEM;
        return engine_seed_after(e, job, progress, userdata, ret_result, err);
}

int engine_seed_after(engine *e, const engine_job *job, engine_progress_fn progress, void *userdata,
                      json_t **ret_result, engine_error *err) {
        int r = engine_seed(e, job, progress, userdata, *ret_result, err);

        if (r != 0) {
                json_decref(*ret_result);
                *ret_result = NULL;
        }
        return r;
}
