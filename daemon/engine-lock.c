/* SPDX-License-Identifier: MIT */
/* The engine's side of a shared server's writer lock: a job holds it from before its plan is made
 * to its end, and its holder is told while the job waits (db.h: lock, unlock, lock_report_live). */

#include "engine-internal.h"

int engine_lock_report(engine *e, const char *target, json_t **ret_report) {
        return db_lock_report_live(e->db, target, ret_report);
}

typedef struct lock_waiter {
        engine_progress_fn progress;
        void *userdata;
} lock_waiter;

static void on_lock_wait(void *userdata, json_t *holder) {
        lock_waiter *w = userdata;

        if (w->progress)
                w->progress(w->userdata, "lock", json_pack("{s:s,s:o}", "phase", "waiting", "holder", holder));
        else
                json_decref(holder);
}

/* A shared server's writer lock is taken before the plan is made, so that a plan another daemon
 * applied meanwhile is found applied ("current"), and held until the job ends. */
int engine_run_plan(engine *e, const engine_job *job, bool take_backup, engine_progress_fn progress, void *userdata,
                    json_t **ret_result, engine_error *err) {
        lock_waiter w = { progress, userdata };
        db_failure f = {};
        int r;

        r = db_lock(e->db, on_lock_wait, &w, &f);
        if (r != 0)
                return r < 0 ? r : engine_fail_db(err, &f, NULL);
        r = engine_run_plan_locked(e, job, take_backup, progress, userdata, ret_result, err);
        db_unlock(e->db);
        return r;
}
