/* SPDX-License-Identifier: MIT */
/* Backups before every change, on-demand backups, restore and rehearsal. */

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backups.h"
#include "engine-internal.h"
#include "log.h"
#include "macro.h"

static int64_t now_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The newest backup taken while the schema was older than version: what undoes a migration. */
static int find_backup_before(engine *e, int64_t version, backup_info *ret) {
        backup_info *list = NULL;
        size_t n = 0;
        int r = -ENOENT;

        if (!e->backup_dir || backups_list(db_get_backend(e->db), e->backup_dir, e->database, &list, &n) < 0)
                return -ENOENT;
        for (size_t i = 0; i < n; i++)
                if (list[i].version < version) {
                        *ret = list[i];
                        memset(&list[i], 0, sizeof(list[i]));
                        r = 0;
                        break;
                }
        backup_infos_free(list, n);
        return r;
}

/* Opens the configured backup directory, refusing one that someone else controls. */
static int open_backup_dir(engine *e, int *ret_fd, engine_error *err) {
        _cleanup_free_ char *problem = NULL;
        int r;

        if (!e->backup_dir)
                return engine_fail(err, PROTOCOL_ERROR_BACKUP_FAILED, NULL, "no backup directory is configured");
        r = backups_open_dir(e->backup_dir, true, ret_fd, &problem);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return engine_fail(err, PROTOCOL_ERROR_BACKUP_FAILED, NULL, "cannot use the backup directory: %s%s%s",
                                   problem ?: e->backup_dir, problem ? "" : ": ", problem ? "" : strerror(-r));
        return 0;
}

static int backup_list_failed(engine *e, protocol_error_code code, int r, engine_error *err) {
        _cleanup_free_ char *problem = NULL;
        int fd;

        /* an untrusted directory: say what to fix */
        if (r == -EPERM) {
                int q = backups_open_dir(e->backup_dir, false, &fd, &problem);
                if (q == 0)
                        close(fd);
                if (q == -EPERM && problem)
                        return engine_fail(err, code, NULL, "%s", problem);
        }
        return engine_fail(err, code, NULL, "cannot list %s: %s", e->backup_dir, strerror(-r));
}

/* Space is checked first, so that a job that cannot back up fails cleanly before any change. The
 * copy is written under a hidden temporary name created exclusively, made durable, and only then
 * given its listed name: a backup that is listed is always complete. */
int engine_take_backup(engine *e, uint64_t job_id, int64_t version, backup_kind kind, json_t **ret_info,
                       engine_error *err) {
        _cleanup_free_ char *name = NULL, *temp = NULL, *path = NULL;
        _cleanup_close_ int dirfd = -EBADF, fd = -EBADF;
        backup_info info = {};
        db_failure f = {};
        uint64_t need = 0, avail = 0;
        int64_t t0 = now_ms();
        struct stat st;
        int r;

        r = open_backup_dir(e, &dirfd, err);
        if (r != 0)
                return r;
        (void) db_size(e->db, &need);
        r = backups_check_space(e->backup_dir, need, &avail);
        if (r == -ENOSPC)
                return engine_fail(err, PROTOCOL_ERROR_BACKUP_FAILED,
                                   json_pack("{s:I,s:I}", "needed_bytes", (json_int_t) need, "free_bytes",
                                             (json_int_t) avail),
                                   "not enough space for the backup in %s: %" PRIu64 " MiB free, about %" PRIu64
                                   " MiB needed; nothing was changed", e->backup_dir, avail >> 20, (need >> 20) + 16);
        if (r < 0)
                return engine_fail(err, PROTOCOL_ERROR_BACKUP_FAILED, NULL, "cannot check the space in %s: %s",
                                   e->backup_dir, strerror(-r));
        name = backups_new_name(db_get_backend(e->db), e->database, version, job_id, kind);
        temp = name ? backups_temp_name(name) : NULL;
        if (!temp || asprintf(&path, "%s/%s", e->backup_dir, temp) < 0)
                return -ENOMEM;
        fd = backups_create_file(dirfd, temp);
        if (fd < 0)
                return engine_fail(err, PROTOCOL_ERROR_BACKUP_FAILED, NULL,
                                   "cannot create the backup %s: %s; nothing was changed", path, strerror(-fd));
        r = db_backup_to(e->db, path, fd, &f);
        if (r == 0) {
                r = backups_publish(dirfd, fd, temp, name);
                if (r < 0)
                        r = engine_fail(err, PROTOCOL_ERROR_BACKUP_FAILED, NULL,
                                        "cannot complete the backup %s/%s: %s; nothing was changed", e->backup_dir,
                                        name, strerror(-r));
        } else if (r > 0) {
                r = engine_fail(err, PROTOCOL_ERROR_BACKUP_FAILED, NULL, "%s; nothing was changed",
                                f.message ?: "the backup failed");
                db_failure_clear(&f);
        }
        if (r != 0) {
                (void) unlinkat(dirfd, temp, 0);
                return r;
        }
        r = backups_parse_name(db_get_backend(e->db), e->database, name, &info);
        if (r < 0)
                return r;
        if (asprintf(&info.path, "%s/%s", e->backup_dir, name) < 0) {
                backup_info_clear(&info);
                return -ENOMEM;
        }
        info.file = TAKE_PTR(name);
        /* what the file holds (a server's dump is smaller than the database) */
        info.size = fstat(fd, &st) == 0 ? (uint64_t) st.st_size : need;
        *ret_info = backup_info_to_json(&info);
        json_object_set_new(*ret_info, "duration_ms", json_integer(now_ms() - t0));
        backup_info_clear(&info);
        return *ret_info ? 0 : -ENOMEM;
}

/* Retention: the newest keep automatic backups stay, and so does the restore point of every
 * applied irreversible migration (the backup its "irreversible" refusal points to); manual
 * backups are the operator's to delete. */
void engine_prune_backups(engine *e) {
        applied_set applied = {};
        backup_info b = {};
        db_failure f = {};
        char **protect = NULL;
        size_t n = 0;
        int r;

        if (!e->backup_dir)
                return;
        if (db_load_applied(e->db, &applied, &f) != 0) {
                /* without knowing what is applied, nothing can be known to be unneeded */
                log_warning("Not pruning backups: %s", f.message ?: "cannot read the applied migrations");
                db_failure_clear(&f);
                return;
        }
        for (size_t i = 0; i < applied.n; i++) {
                const migration *m = e->set ? migration_set_find(e->set, applied.items[i].version) : NULL;
                char **p;

                if (m && m->down.file)
                        continue; /* reversible: down undoes it without a backup */
                if (find_backup_before(e, applied.items[i].version, &b) < 0)
                        continue;
                p = realloc(protect, (n + 1) * sizeof(*p));
                if (!p) {
                        backup_info_clear(&b);
                        break;
                }
                protect = p;
                protect[n++] = TAKE_PTR(b.file);
                backup_info_clear(&b);
        }
        applied_set_clear(&applied);
        r = backups_prune(db_get_backend(e->db), e->backup_dir, e->database, e->backup_keep, protect, n);
        if (r < 0)
                log_warning_errno(r, "Failed to prune old backups in %s: %m", e->backup_dir);
        for (size_t i = 0; i < n; i++)
                free(protect[i]);
        free(protect);
}

int engine_list_backups(engine *e, json_t **ret, engine_error *err) {
        backup_info *list = NULL;
        size_t n = 0;
        json_t *arr;
        int r;

        if (!e->backup_dir)
                return engine_fail(err, PROTOCOL_ERROR_BACKUP_FAILED, NULL, "no backup directory is configured");
        r = backups_list(db_get_backend(e->db), e->backup_dir, e->database, &list, &n);
        if (r < 0)
                return backup_list_failed(e, PROTOCOL_ERROR_BACKUP_FAILED, r, err);
        arr = json_array();
        for (size_t i = 0; i < n; i++)
                json_array_append_new(arr, backup_info_to_json(&list[i]));
        backup_infos_free(list, n);
        *ret = json_pack("{s:s,s:I,s:o}", "dir", e->backup_dir, "keep", (json_int_t) e->backup_keep, "backups", arr);
        return *ret ? 0 : -ENOMEM;
}

void engine_explain_irreversible(engine *e, engine_error *err) {
        json_t *v = err->extra ? json_object_get(err->extra, "version") : NULL;
        backup_info b = {};
        char *msg;

        if (!json_is_integer(v))
                return;
        if (find_backup_before(e, json_integer_value(v), &b) < 0) {
                if (asprintf(&msg, "%s; no backup from before it exists in %s", err->message,
                             e->backup_dir ?: "(no backup directory)") >= 0) {
                        free(err->message);
                        err->message = msg;
                }
                return;
        }
        if (asprintf(&msg, "%s; to go back before it, restore the backup taken before it was applied (version %" PRId64
                     ", %s): migratectl restore %s", err->message, b.version, b.time, b.file) >= 0) {
                free(err->message);
                err->message = msg;
        }
        json_object_set_new(err->extra, "backup", backup_info_to_json(&b));
        json_object_set_new(err->extra, "restore_command", json_sprintf("migratectl restore %s", b.file));
        backup_info_clear(&b);
}

int engine_backup_now(engine *e, const engine_job *job, json_t **ret_result, engine_error *err) {
        applied_set applied = {};
        json_t *info = NULL;
        int r;

        r = engine_load(e, &applied, err);
        if (r != 0)
                return r;
        r = engine_take_backup(e, job->id, applied_set_current(&applied), BACKUP_MANUAL, &info, err);
        applied_set_clear(&applied);
        if (r != 0)
                return r;
        *ret_result = json_pack("{s:I,s:s,s:o}", "job_id", (json_int_t) job->id, "status", "backed_up", "backup", info);
        return *ret_result ? 0 : -ENOMEM;
}

/* Finds the backup a restore names (only among this database's backups: a name is never a path)
 * and checks that it is a sound database of ours. */
static int resolve_backup(engine *e, const engine_job *job, backup_info *ret, engine_error *err) {
        backup_info *list = NULL;
        size_t n = 0, pick = SIZE_MAX;
        _cleanup_free_ char *problem = NULL;
        int64_t version = 0;
        int r;

        if (!e->backup_dir)
                return engine_fail(err, PROTOCOL_ERROR_UNKNOWN_BACKUP, NULL, "no backup directory is configured");
        r = backups_list(db_get_backend(e->db), e->backup_dir, e->database, &list, &n);
        if (r < 0)
                return backup_list_failed(e, PROTOCOL_ERROR_UNKNOWN_BACKUP, r, err);
        for (size_t i = 0; i < n && pick == SIZE_MAX; i++)
                if (!job->backup || streq(list[i].file, job->backup))
                        pick = i;
        if (pick == SIZE_MAX) {
                backup_infos_free(list, n);
                return job->backup ? engine_fail(err, PROTOCOL_ERROR_UNKNOWN_BACKUP, NULL,
                                                 "no backup named %s in %s (see migratectl backups)", job->backup,
                                                 e->backup_dir)
                                   : engine_fail(err, PROTOCOL_ERROR_UNKNOWN_BACKUP, NULL, "there are no backups in %s",
                                                 e->backup_dir);
        }
        *ret = list[pick];
        memset(&list[pick], 0, sizeof(list[pick]));
        backup_infos_free(list, n);
        if (db_inspect_backup(db_get_backend(e->db), ret->path, e->integrity == ENGINE_INTEGRITY_FULL, &version,
                              &problem) < 0) {
                r = engine_fail(err, PROTOCOL_ERROR_INTEGRITY, NULL, "the backup %s %s; nothing was changed", ret->file,
                                problem ?: "cannot be read");
                backup_info_clear(ret);
                return r;
        }
        if (version >= 0)
                ret->version = version;
        return 0;
}

int engine_check_restore(engine *e, const engine_job *job, engine_error *err) {
        backup_info b = {};
        int r = resolve_backup(e, job, &b, err);

        backup_info_clear(&b);
        return r;
}

/* Restores from a scratch copy, created exclusively beside the backups and removed afterwards,
 * into which the live history and the restore's own record are carried. */
static int restore_via_scratch(engine *e, const engine_job *job, const backup_info *b, const db_event *ev,
                               engine_error *err) {
        _cleanup_free_ char *name = NULL, *path = NULL;
        _cleanup_close_ int dirfd = -EBADF, fd = -EBADF;
        db_failure f = {};
        int r;

        r = open_backup_dir(e, &dirfd, err);
        if (r != 0)
                return r;
        if (asprintf(&name, ".%s-restore-job%" PRIu64 ".partial", b->file, job->id) < 0 ||
            asprintf(&path, "%s/%s", e->backup_dir, name) < 0)
                return -ENOMEM;
        fd = backups_create_file(dirfd, name);
        if (fd < 0)
                return engine_fail(err, PROTOCOL_ERROR_BACKUP_FAILED, NULL,
                                   "cannot create the working copy %s: %s; nothing was changed", path, strerror(-fd));
        r = db_restore_from(e->db, b->path, path, ev, &f);
        if (r > 0)
                r = engine_fail_db(err, &f, NULL);
        (void) unlinkat(dirfd, name, 0);
        return r;
}

/* Verify, back up the current database (so the restore can be undone), replace the content in
 * one transaction that also records it, and only then prune: the backup being restored is never
 * rotated out by the restore's own backup. */
int engine_restore(engine *e, const engine_job *job, engine_progress_fn progress, void *userdata, json_t **ret_result,
                   engine_error *err) {
        backup_info b = {};
        applied_set applied = {};
        json_t *pre = NULL;
        db_failure f = {};
        _cleanup_free_ char *damaged = NULL, *detail = NULL;
        int64_t from;
        int r;

        r = resolve_backup(e, job, &b, err);
        if (r != 0)
                return r;
        /* Restoring is how a damaged database is repaired: its check does not stop the restore,
         * but the result says what was replaced. */
        if (e->integrity != ENGINE_INTEGRITY_OFF &&
            db_check_integrity(e->db, e->integrity == ENGINE_INTEGRITY_FULL, &f) > 0) {
                damaged = TAKE_PTR(f.message);
                log_warning("Restoring over a database that fails its check: %s", damaged);
        }
        db_failure_clear(&f);
        r = engine_load(e, &applied, err);
        from = applied_set_current(&applied);
        applied_set_clear(&applied);
        if (r == 0)
                r = engine_take_backup(e, job->id, from, BACKUP_AUTO, &pre, err);
        if (r == 0 && asprintf(&detail, "restored from %s", b.file) < 0)
                r = -ENOMEM;
        if (r == 0) {
                db_event ev = { .job_id = job->id, .direction = "restore", .from_version = from,
                                .to_version = b.version, .detail = detail, .requested_by = job->requested_by };
                r = restore_via_scratch(e, job, &b, &ev, err);
        }
        if (r == 0) {
                engine_prune_backups(e);
                *ret_result = json_pack("{s:I,s:s,s:I,s:I,s:s,s:o}", "job_id", (json_int_t) job->id, "status", "restored",
                                        "from_version", (json_int_t) from, "to_version", (json_int_t) b.version,
                                        "restored_from", b.file, "backup", pre);
                pre = NULL;
                if (!*ret_result)
                        r = -ENOMEM;
                else if (damaged)
                        json_object_set_new(*ret_result, "replaced_database_check", json_string(damaged));
        }
        json_decref(pre);
        backup_info_clear(&b);
        return r;
}

int engine_make_clone(engine *e, uint64_t job_id, char **ret_copy, engine_error *err) {
        _cleanup_free_ char *stem = NULL;
        _cleanup_close_ int dirfd = -EBADF;
        const char *dir = e->backup_dir ?: "/tmp";
        db_failure f = {};
        uint64_t before = 0, avail = 0;
        int r;

        if (e->backup_dir) {
                r = open_backup_dir(e, &dirfd, err);
                if (r != 0)
                        return r;
        } else if ((dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
                return engine_fail(err, PROTOCOL_ERROR_BACKUP_FAILED, NULL, "cannot open %s: %s", dir, strerror(errno));
        (void) db_size(e->db, &before);
        if (backups_check_space(dir, before, &avail) == -ENOSPC)
                return engine_fail(err, PROTOCOL_ERROR_BACKUP_FAILED, NULL,
                                   "not enough space in %s for the rehearsal copy (%" PRIu64 " MiB free)", dir, avail >> 20);
        if (asprintf(&stem, ".rehearsal-%d-job%" PRIu64, (int) getpid(), job_id) < 0)
                return -ENOMEM;
        r = db_clone(e->db, dirfd, dir, stem, ret_copy, &f);
        if (r == -EOPNOTSUPP)
                return engine_fail(err, PROTOCOL_ERROR_BACKUP_FAILED, NULL,
                                   "the %s backend cannot make a copy to rehearse on", db_get_backend(e->db)->name);
        if (r != 0)
                return r < 0 ? r : engine_fail_db(err, &f, NULL);
        return 0;
}

/* The plan applied to a clone the backend makes: the live database and the units are not
 * touched; the clone is removed whatever happens. */
int engine_rehearse(engine *e, const engine_job *job, json_t **ret_result, engine_error *err) {
        _cleanup_free_ char *copy = NULL;
        engine_options o = { .backend = db_get_backend(e->db)->name, .migrations_dir = e->migrations_dir,
                             .busy_timeout_ms = e->busy_timeout_ms, .integrity = e->integrity, .format = e->format };
        engine *rehearsal = NULL;
        engine_job j = *job;
        uint64_t before = 0, after = 0;
        int r;

        (void) db_size(e->db, &before);
        r = engine_make_clone(e, job->id, &copy, err);
        if (r != 0)
                return r;
        o.database = copy;
        r = engine_new(&o, &rehearsal, err);
        if (r == 0) {
                j.kind = ENGINE_JOB_MIGRATE;
                r = engine_run_plan(rehearsal, &j, false, NULL, NULL, ret_result, err);
                (void) db_size(rehearsal->db, &after);
                engine_free(rehearsal);
        }
        db_clone_remove(db_get_backend(e->db), copy);
        if (r > 0 && err->extra)
                json_object_set_new(err->extra, "rehearsal", json_true());
        if (r > 0) {
                char *msg;
                if (asprintf(&msg, "rehearsal failed (the live database was not touched): %s", err->message) >= 0) {
                        free(err->message);
                        err->message = msg;
                }
        }
        if (r != 0)
                return r;
        json_object_set_new(*ret_result, "rehearsal", json_true());
        json_object_set_new(*ret_result, "size_before", json_integer((json_int_t) before));
        json_object_set_new(*ret_result, "size_after", json_integer((json_int_t) after));
        json_object_set_new(*ret_result, "size_change", json_integer((json_int_t) after - (json_int_t) before));
        return 0;
}
