/* SPDX-License-Identifier: MIT */
/* migratectl reset, for development: refused unless the instance's configuration allows it
 * ([dev] allow_reset); takes a backup named as such, drops every schema object but migrated's
 * history, applies every migration, then the seeds. The job stops and restarts the dependents
 * like a restore (engine_preview says it changes the database). */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "engine-internal.h"

int engine_check_reset(engine *e, engine_error *err) {
        if (!e->allow_reset)
                return engine_fail(err, PROTOCOL_ERROR_RESET_NOT_ALLOWED, NULL,
                                   "reset drops every table of %s; this instance's configuration does not allow it "
                                   "(set [dev] allow_reset = yes for a development database); nothing changed",
                                   e->database);
        return engine_require_valid_directory(e, err);
}

int engine_reset(engine *e, const engine_job *job, engine_progress_fn progress, void *userdata, json_t **ret_result,
                 engine_error *err) {
        engine_job up = { .id = job->id, .kind = ENGINE_JOB_MIGRATE, .requested_by = job->requested_by,
                          .request = { .direction = PLAN_UP, .to = PLAN_NO_TARGET } };
        applied_set applied = {};
        json_t *backup = NULL, *migrated = NULL;
        _cleanup_free_ char *detail = NULL;
        db_failure f = {};
        int64_t from;
        int r;

        r = engine_check_reset(e, err);
        if (r == 0)
                r = engine_load(e, &applied, err);
        if (r != 0)
                return r;
        if (e->backup_dir) {
                if (progress)
                        progress(userdata, "backup", json_pack("{s:s}", "phase", "starting"));
                r = engine_take_backup(e, job->id, applied_set_current(&applied), BACKUP_RESET, &backup, err);
                if (r == 0 && progress)
                        progress(userdata, "backup", json_pack("{s:s,s:O}", "phase", "done", "backup", backup));
        }
        from = applied_set_current(&applied);
        applied_set_clear(&applied);
        if (r != 0)
                return r;
        if (asprintf(&detail, "every schema object dropped (backup: %s)",
                     json_string_value(json_object_get(backup, "file")) ?: "none") < 0) {
                json_decref(backup);
                return -ENOMEM;
        }
        if (progress)
                progress(userdata, "reset", json_pack("{s:s}", "phase", "dropping"));
        r = db_reset(e->db, &(db_event) { .job_id = job->id, .direction = "reset", .from_version = from,
                                          .to_version = 0, .detail = detail, .requested_by = job->requested_by },
                     &f);
        if (r != 0) {
                r = r < 0 ? r : engine_fail_db(err, &f, json_pack("{s:O}", "backup", backup ?: json_null()));
                json_decref(backup);
                return r;
        }
        r = engine_run_plan(e, &up, false, progress, userdata, &migrated, err);
        if (r == 0) {
                *ret_result = json_pack("{s:I,s:s,s:O,s:o}", "job_id", (json_int_t) job->id, "status", "reset",
                                        "backup", backup ?: json_null(), "migrations", migrated);
                r = *ret_result ? engine_seed_after(e, job, progress, userdata, ret_result, err) : -ENOMEM;
        } else if (err->extra && backup)
                json_object_set(err->extra, "backup", backup);
        json_decref(backup);
        return r;
}
