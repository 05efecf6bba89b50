/* SPDX-License-Identifier: MIT */
/* The backend registry and the thin wrappers through which the engine, jobs and backups reach
 * a database: a new backend is a file of its own plus one row in backends[]. */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db.h"
#include "history.h"
#include "macro.h"

/* One row per backend; each is defined in its own file(s). */
extern const db_backend db_sqlite_backend;
extern const db_backend db_postgres_backend;

static const db_backend *const backends[] = {
        &db_sqlite_backend,
        &db_postgres_backend,
};

const db_backend *db_backend_find(const char *name) {
        if (!name)
                name = DB_BACKEND_DEFAULT;
        for (size_t i = 0; i < ELEMENTSOF(backends); i++)
                if (streq(backends[i]->name, name))
                        return backends[i];
        return NULL;
}

const db_backend *const *db_backends(size_t *ret_n) {
        *ret_n = ELEMENTSOF(backends);
        return backends;
}

void db_failure_clear(db_failure *f) {
        if (!f)
                return;
        free(f->message);
        memset(f, 0, sizeof(*f));
}

void db_timestamp(char buf[32]) {
        struct timespec ts;
        struct tm tm;
        size_t n;

        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        n = strftime(buf, 32, "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(buf + n, 32 - n, ".%03dZ", (int) (ts.tv_nsec / 1000000));
}

bool db_format_keeps_own_tables(migdir_format format) {
        const history_format *h = history_find(format);

        return !h || h->own_tables_in_database;
}

/* migrated's own tables apart from the application database: always a SQLite file, whatever
 * the application database's backend, opened like the database itself (same busy timeout and
 * read-only mode) and checked to be the file the caller validated. */
static int open_own(const db_options *o, db **ret, db_failure *f) {
        db_options own = { .backend = "sqlite", .target = o->own_target, .busy_timeout_ms = o->busy_timeout_ms,
                           .read_only = o->read_only, .format = MIGDIR_NATIVE, .identity = o->own_identity };
        int r;

        r = db_backend_find(own.backend)->open(&own, ret, f);
        if (r == 0)
                (*ret)->history = &history_native;
        return r;
}

/* An unknown backend name is a configuration mistake, told as such rather than as -ENOENT. */
int db_open(const db_options *o, db **ret, db_failure *f) {
        const db_backend *b = db_backend_find(o->backend);
        const history_format *h = history_find(o->format);
        db *own = NULL;
        int r;

        if (!b || !h) {
                db_failure_clear(f);
                f->code = PROTOCOL_ERROR_DATABASE;
                if ((b ? asprintf(&f->message, "no bookkeeping for the migration format %s",
                                  migdir_format_to_string(o->format))
                       : asprintf(&f->message, "unknown database backend \"%s\"", o->backend)) < 0)
                        return -ENOMEM;
                return DB_FAILED;
        }
        if (o->own_target && !h->own_tables_in_database) {
                r = open_own(o, &own, f);
                if (r != 0)
                        return r;
        }
        r = b->open(o, ret, f);
        if (r != 0) {
                db_close(own);
                return r;
        }
        (*ret)->history = h;
        (*ret)->own = own;
        return 0;
}

void db_close(db *d) {
        if (!d)
                return;
        db_close(d->own);
        d->backend->close(d);
}

void db_closep(db **d) {
        db_close(*d);
}

const db_backend *db_get_backend(db *d) {
        return d->backend;
}

bool db_dialect_postgres(db *d) {
        return streq(d->backend->name, "postgresql");
}

void db_interrupt(db *d) {
        d->backend->interrupt(d);
}

int db_begin(db *d, db_failure *f) {
        return d->backend->begin(d, f);
}

int db_commit(db *d, db_failure *f) {
        return d->backend->commit(d, f);
}

int db_begin_unsynced(db *d, db_failure *f) {
        return d->backend->begin_unsynced ? d->backend->begin_unsynced(d, f) : d->backend->begin(d, f);
}

void db_rollback(db *d) {
        d->backend->rollback(d);
}

int db_exec_script(db *d, const char *sql, size_t size, bool in_transaction, db_failure *f) {
        return d->backend->exec_script(d, sql, size, in_transaction, f);
}

int db_check_foreign_keys(db *d, db_failure *f) {
        return d->backend->check_foreign_keys(d, f);
}

int db_check_identity(db *d, db_failure *f) {
        return d->backend->check_identity(d, f);
}

int db_query(db *d, const char *sql, const db_value *params, size_t n_params, db_row_fn row, void *userdata,
             int64_t *ret_changes, db_failure *f, const char *what) {
        return d->backend->query(d, sql, params, n_params, row, userdata, ret_changes, f, what);
}

int db_table_exists(db *d, const char *name, bool *ret, db_failure *f) {
        return d->backend->table_exists(d, name, ret, f);
}

int db_load_applied(db *d, applied_set *ret, db_failure *f) {
        return d->history->load_applied(d, ret, f);
}

int db_record_applied(db *d, const migration *m, int64_t duration_ms, db_failure *f) {
        return d->history->record_applied(d, m, duration_ms, f);
}

int db_remove_applied(db *d, const migration *m, db_failure *f) {
        return d->history->remove_applied(d, m, f);
}

int db_attempt_begin(db *d, const db_attempt *a, int64_t *ret_id, db_failure *f) {
        return history_attempt_begin(d, a, ret_id, f);
}

int db_attempt_finish(db *d, int64_t id, const char *status, const char *error, const char *error_file,
                      unsigned error_line, db_failure *f) {
        return history_attempt_finish(d, id, status, error, error_file, error_line, f);
}

int db_history(db *d, unsigned limit, json_t **ret, db_failure *f) {
        return history_attempts(d, limit, ret, f);
}

int db_recover_interrupted(db *d, unsigned *ret_count, db_failure *f) {
        return history_recover_interrupted(d, ret_count, f);
}

int db_max_job_id(db *d, uint64_t *ret, db_failure *f) {
        return history_max_job_id(d, ret, f);
}

bool db_history_apart(db *d) {
        return d->own;
}

int db_record_event(db *d, const db_event *ev, db_failure *f) {
        return history_record_event(d, ev, f);
}

/* Both need the bookkeeping tables; the caller holds a write transaction. */
int db_mark_applied(db *d, const migration *m, db_failure *f) {
        int r = history_ensure(d, f);

        if (r != 0)
                return r;
        return d->history->mark_applied ? d->history->mark_applied(d, m, f)
                                        : history_mark_applied_once(d, d->history, m, f);
}

int db_mark_rolled_back(db *d, const migration *m, db_failure *f) {
        int r = history_ensure(d, f);

        if (r != 0)
                return r;
        return d->history->mark_rolled_back ? d->history->mark_rolled_back(d, m, f)
                                            : history_mark_rolled_back_once(d, d->history, m, f);
}

const char *db_history_table(db *d) {
        return d->history->table;
}

int db_adopt_claimed_format(db *d, migdir_format *ret, db_failure *f) {
        const history_format *h = NULL;
        int r = history_claimed(d, &h, f);

        if (r == 0 && h) {
                d->history = h;
                *ret = h->format;
        }
        return r;
}

int db_repair_checksum(db *d, const migration *m, db_failure *f) {
        int r = history_ensure(d, f);

        if (r != 0)
                return r;
        if (!d->history->repair_checksum)
                return history_refuse(f, "checksums recorded in %s cannot be repaired by migrated (only the native "
                                      "format's)", d->history->table);
        return d->history->repair_checksum(d, m, f);
}

int db_has_user_tables(db *d, bool *ret) {
        return d->backend->has_user_tables(d, history_tables, ret);
}

int db_backup_to(db *d, const char *path, int fd, db_failure *f) {
        return d->backend->backup_to(d, path, fd, f);
}

/* Where migrated's own tables live apart, the restore leaves them alone and records itself there
 * afterwards: a restore never rewrites the history. */
int db_restore_from(db *d, const char *path, const char *scratch, const db_event *ev, db_failure *f) {
        int r;

        if (d->own) {
                r = d->backend->restore_from(d, path, scratch, NULL, f);
                return r != 0 ? r : history_record_event(d, ev, f);
        }
        return d->backend->restore_from(d, path, scratch, ev, f);
}

int db_info(db *d, json_t *status) {
        return d->backend->info ? d->backend->info(d, status) : -EOPNOTSUPP;
}

void db_change_token_get(db *d, db_change_token *ret) {
        *ret = (db_change_token) {};
        uint64_t ignored;

        if (!d->backend->change_token || d->backend->change_token(d, ret->main, &ret->others) < 0)
                return;
        if (d->own && (!d->own->backend->change_token ||
                       d->own->backend->change_token(d->own, ret->own, &ignored) < 0))
                return;
        ret->known = true;
}

bool db_change_token_equal(const db_change_token *a, const db_change_token *b) {
        return a->known && b->known && memcmp(a->main, b->main, sizeof(a->main)) == 0 &&
               memcmp(a->own, b->own, sizeof(a->own)) == 0;
}

bool db_change_token_same_database(const db_change_token *a, const db_change_token *b) {
        return a->known && b->known && memcmp(a->main, b->main, sizeof(a->main)) == 0;
}

int db_check_integrity(db *d, bool full, db_failure *f) {
        return d->backend->check_integrity ? d->backend->check_integrity(d, full, f) : -EOPNOTSUPP;
}

int db_size(db *d, uint64_t *ret_bytes) {
        return d->backend->size ? d->backend->size(d, ret_bytes) : -EOPNOTSUPP;
}

int db_inspect_backup(const db_backend *b, const char *path, bool full_check, int64_t *ret_version,
                      char **ret_problem) {
        *ret_problem = NULL;
        return b->inspect_backup ? b->inspect_backup(path, full_check, ret_version, ret_problem) : -EOPNOTSUPP;
}

int db_clone(db *d, int dirfd, const char *dir, const char *stem, char **ret_target, db_failure *f) {
        return d->backend->clone ? d->backend->clone(d, dirfd, dir, stem, ret_target, f) : -EOPNOTSUPP;
}

void db_clone_remove(const db_backend *b, const char *target) {
        if (b->clone_remove && target)
                b->clone_remove(target);
}

int db_disk_size(const db_backend *b, const char *target, uint64_t *ret_bytes) {
        return b->disk_size ? b->disk_size(target, ret_bytes) : -EOPNOTSUPP;
}

int db_find_holders(const db_backend *b, const char *target, size_t *ret_n, char **ret_description,
                    json_t **ret_holders) {
        return b->find_holders ? b->find_holders(target, ret_n, ret_description, ret_holders) : -EOPNOTSUPP;
}

int db_lock_report(const db_backend *b, const char *target, json_t **ret_report) {
        return b->lock_report ? b->lock_report(target, ret_report) : -EOPNOTSUPP;
}

int db_lock(db *d, db_wait_fn wait, void *userdata, db_failure *f) {
        return d->backend->lock ? d->backend->lock(d, wait, userdata, f) : 0;
}

void db_unlock(db *d) {
        if (d->backend->unlock)
                d->backend->unlock(d);
}

int db_lock_report_live(db *d, const char *target, json_t **ret_report) {
        return d->backend->lock_report_live ? d->backend->lock_report_live(d, ret_report)
                                            : db_lock_report(d->backend, target, ret_report);
}

int db_try_lock(db *d, bool *ret_got, db_failure *f) {
        *ret_got = true;
        return d->backend->try_lock ? d->backend->try_lock(d, ret_got, f) : 0;
}

int db_change_and_record(db *d, int (*change)(db *d, void *userdata, db_failure *f),
                         int (*record)(db *d, void *userdata, db_failure *f), void *userdata, db_failure *f) {
        int r;

        r = db_begin(d, f);
        if (r != 0)
                return r;
        r = change(d, userdata, f);
        if (r == 0 && !d->own)
                r = record(d, userdata, f);
        if (r == 0)
                r = db_commit(d, f);
        if (r != 0) {
                db_rollback(d);
                return r;
        }
        return d->own ? record(d, userdata, f) : 0;
}

static int reset_change(db *d, void *userdata, db_failure *f) {
        return d->backend->reset(d, f);
}

static int reset_record(db *d, void *userdata, db_failure *f) {
        return history_record_event(d, userdata, f);
}

int db_reset(db *d, const db_event *ev, db_failure *f) {
        bool have = false;
        int r;

        if (!d->backend->reset)
                return -EOPNOTSUPP;
        r = db_change_and_record(d, reset_change, reset_record, (void *) ev, f);
        if (r != 0 || !d->own)
                return r;
        /* the seeds recorded apart (history.sqlite) went with the schema: they run again */
        r = db_table_exists(d->own, "migrated_seeds", &have, f);
        if (r != 0 || !have)
                return r;
        return db_query(d->own, "DELETE FROM migrated_seeds", NULL, 0, NULL, NULL, NULL, f, "cannot forget the seeds");
}

int db_drift(db *d, const char *target, const drift_script *scripts, size_t n, const char *const *skip,
             json_t **ret_differences, char **ret_error) {
        return d->backend->drift ? d->backend->drift(d, target, scripts, n, skip, ret_differences, ret_error)
                                 : -EOPNOTSUPP;
}

/* The backends write to a stream; the caller gets the text. */
int db_schema_dump(db *d, const char *const *skip, const char *history, char **ret_sql, db_failure *f) {
        _cleanup_free_ char *buf = NULL;
        size_t size = 0;
        FILE *out;
        int r;

        if (!d->backend->schema_dump)
                return -EOPNOTSUPP;
        out = open_memstream(&buf, &size);
        if (!out)
                return -ENOMEM;
        r = d->backend->schema_dump(d, skip, history, out, f);
        if (fclose(out) != 0 && r == 0)
                r = -ENOMEM;
        if (r != 0)
                return r;
        *ret_sql = TAKE_PTR(buf);
        return 0;
}
