/* SPDX-License-Identifier: MIT */
/* Bookkeeping without running scripts: mark applied / rolled back (Prisma's migrate resolve) and
 * baselines for databases that existed before their migrations were tracked. */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine-internal.h"
#include "migdir-format.h"
#include "macro.h"

/* Whether target is the up file's name without its extensions: "0001_create_users" for
 * 0001_create_users.up.sql, the stem `migratectl new` printed. */
static bool is_file_stem(const migration *m, const char *target) {
        size_t n = strlen(target);

        return n > 0 && m->up.file && m->version_key && strneq(target, m->version_key, strlen(m->version_key)) &&
               strneq(m->up.file, target, n) && m->up.file[n] == '.';
}

/* A migration named by its version (as its format spells it: "3", "1.2.10"), its recorded name
 * (Prisma folder), its name, its file or its file's stem. */
static const migration *find_target(const migration_set *set, const char *target) {
        char *end;
        long long v = strtoll(target, &end, 10);
        int64_t key;
        const migration *by_version = NULL;

        /* a number is a version first (golang-migrate's sets may hold a migration 0; Flyway's
         * versions are dotted keys) */
        if (migration_format_parse_key(migration_format_get(set->format), target, &key) == 0 && key >= 0)
                by_version = migration_set_find(set, key);
        else if (*target && *end == '\0' && v >= 0)
                by_version = migration_set_find(set, v);
        if (by_version)
                return by_version;
        for (size_t i = 0; i < set->n; i++) {
                const migration *m = &set->items[i];
                if (streq(migration_record_name(m), target) || streq(m->name, target) || streq(m->up.file, target) ||
                    is_file_stem(m, target))
                        return m;
        }
        return NULL;
}

/* One scan and one read of the history: *ret points into e->set, valid until the next scan. */
static int resolve_target(engine *e, const engine_job *job, const migration **ret, applied_set *ret_applied,
                          engine_error *err) {
        int r;

        r = engine_load(e, ret_applied, err);
        if (r == 0)
                r = engine_require_valid_directory(e, err);
        if (r != 0) {
                applied_set_clear(ret_applied);
                return r;
        }
        *ret = job->target ? find_target(e->set, job->target) : NULL;
        if (!*ret) {
                applied_set_clear(ret_applied);
                return engine_fail(err, PROTOCOL_ERROR_UNKNOWN_VERSION, NULL,
                                   "there is no migration %s in %s", job->target ?: "(none given)", e->migrations_dir);
        }
        return 0;
}

int engine_check_mark(engine *e, const engine_job *job, engine_error *err) {
        applied_set applied = {};
        const migration *m;
        int r = resolve_target(e, job, &m, &applied, err);

        applied_set_clear(&applied);
        return r;
}

/* Runs op for each of ms in one write transaction, then records the job: in the same
 * transaction, or once it has committed when the history lives apart (never a record of a
 * change that was rolled back). */
static int in_transaction(engine *e, const engine_job *job, const migration *const *ms, size_t n,
                          int (*op)(db *d, const migration *m, db_failure *f), const char *detail, int64_t from,
                          int64_t to, engine_error *err) {
        db_event ev = { .job_id = job->id,
                        .direction = job->kind == ENGINE_JOB_BASELINE ? "baseline"
                                     : job->kind == ENGINE_JOB_REPAIR ? "repair"
                                                                      : "mark",
                        .from_version = from, .to_version = to, .detail = detail,
                        .requested_by = job->requested_by };
        bool apart = db_history_apart(e->db);
        db *d = e->db;
        db_failure f = {};
        int r;

        r = db_begin(d, &f);
        for (size_t i = 0; r == 0 && i < n; i++)
                r = op(d, ms[i], &f);
        if (r == 0 && !apart)
                r = db_record_event(d, &ev, &f);
        if (r == 0)
                r = db_commit(d, &f);
        if (r != 0) {
                db_rollback(d);
                return r < 0 ? r : engine_fail_db(err, &f, NULL);
        }
        if (apart) {
                r = db_record_event(d, &ev, &f);
                if (r != 0)
                        return r < 0 ? r : engine_fail_db(err, &f, NULL);
        }
        return 0;
}

int engine_mark(engine *e, const engine_job *job, json_t **ret_result, engine_error *err) {
        bool applied = job->kind == ENGINE_JOB_MARK_APPLIED;
        _cleanup_free_ char *detail = NULL;
        applied_set before = {};
        const migration *m;
        int64_t from;
        int r;

        r = resolve_target(e, job, &m, &before, err);
        if (r != 0)
                return r;
        from = applied_set_current(&before);
        applied_set_clear(&before);
        if (asprintf(&detail, "marked %s %s without running it", migration_record_name(m),
                     applied ? "applied" : "rolled back") < 0)
                return -ENOMEM;
        r = in_transaction(e, job, &m, 1, applied ? db_mark_applied : db_mark_rolled_back, detail, from, from, err);
        if (r != 0)
                return r;
        *ret_result = json_pack("{s:I,s:s,s:I,s:s}", "job_id", (json_int_t) job->id, "status",
                                applied ? "marked_applied" : "marked_rolled_back", "version", (json_int_t) m->version,
                                "name", migration_record_name(m));
        return *ret_result ? 0 : -ENOMEM;
}

int engine_baseline(engine *e, const engine_job *job, json_t **ret_result, engine_error *err) {
        _cleanup_free_ const migration **ms = NULL;
        _cleanup_free_ char *detail = NULL;
        applied_set applied = {};
        const migration *target;
        size_t n = 0;
        bool empty;
        int r;

        r = resolve_target(e, job, &target, &applied, err);
        if (r != 0)
                return r;
        empty = applied.n == 0 && applied.n_failed == 0 && applied.baseline == 0 && applied.n_repeatables == 0;
        applied_set_clear(&applied);
        if (!empty)
                return engine_fail(err, PROTOCOL_ERROR_STATE_CONFLICT, NULL,
                                   "a baseline is only for a database without migration history, and this one has "
                                   "one; use mark applied for single migrations");
        ms = calloc(e->set->n + 1, sizeof(*ms));
        if (!ms)
                return -ENOMEM;
        for (size_t i = 0; i < e->set->n && e->set->items[i].version <= target->version; i++)
                ms[n++] = &e->set->items[i];
        if (asprintf(&detail, "baseline at %s: %zu migrations recorded as applied without running them",
                     migration_record_name(target), n) < 0)
                return -ENOMEM;
        r = in_transaction(e, job, ms, n, db_mark_applied, detail, 0, target->version, err);
        if (r != 0)
                return r;
        *ret_result = json_pack("{s:I,s:s,s:I,s:I}", "job_id", (json_int_t) job->id, "status", "baselined",
                                "to_version", (json_int_t) target->version, "marked", (json_int_t) n);
        return *ret_result ? 0 : -ENOMEM;
}

/* repair: the file of an applied migration was edited on purpose (a comment, a fix that changes
 * no schema); its checksum becomes the recorded one, and the history keeps both and who asked. */
int engine_repair(engine *e, const engine_job *job, json_t **ret_result, engine_error *err) {
        _cleanup_free_ char *detail = NULL;
        char recorded[SHA256_HEX_SIZE];
        applied_set before = {};
        const applied_migration *a;
        const migration *m;
        int64_t current;
        int r;

        r = resolve_target(e, job, &m, &before, err);
        if (r != 0)
                return r;
        a = applied_set_find(&before, m->version);
        snprintf(recorded, sizeof(recorded), "%s", a ? a->checksum : "");
        current = applied_set_current(&before);
        applied_set_clear(&before);
        if (!a)
                return engine_fail(err, PROTOCOL_ERROR_STATE_CONFLICT, NULL,
                                   "%s is not applied: there is no recorded checksum to repair", m->up.file);
        if (streq(recorded, m->checksum))
                return engine_fail(err, PROTOCOL_ERROR_STATE_CONFLICT, NULL,
                                   "%s matches its recorded checksum: nothing to repair", m->up.file);
        if (asprintf(&detail, "checksum of %s accepted: recorded %s, file now %s", m->up.file, recorded,
                     m->checksum) < 0)
                return -ENOMEM;
        r = in_transaction(e, job, &m, 1, db_repair_checksum, detail, current, current, err);
        if (r != 0)
                return r;
        *ret_result = json_pack("{s:I,s:s,s:I,s:s,s:s,s:s}", "job_id", (json_int_t) job->id, "status", "repaired",
                                "version", (json_int_t) m->version, "name", migration_record_name(m), "previous_checksum",
                                recorded, "checksum", m->checksum);
        return *ret_result ? 0 : -ENOMEM;
}
