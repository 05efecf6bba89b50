/* SPDX-License-Identifier: MIT */
/* The engine's side of a shared server's writer lock: a job holds it from before its plan is made
 * to its end, and its holder is told while the job waits (db.h: lock, unlock, lock_report_live). */

#include <stdlib.h>

#include "engine-internal.h"
#include "history.h"
#include "hosts.h"

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

bool engine_has_writer_lock(engine *e) {
        return e->db->backend->lock != NULL;
}

int engine_lock_writer(engine *e, engine_progress_fn progress, void *userdata, engine_error *err) {
        lock_waiter w = { progress, userdata };
        db_failure f = {};
        int r;

        r = db_lock(e->db, on_lock_wait, &w, &f);
        return r <= 0 ? r : engine_fail_db(err, &f, NULL);
}

void engine_unlock_writer(engine *e) {
        db_unlock(e->db);
}

/* A shared server's writer lock is taken before the plan is made (unless the job took it
 * already, before its dependents were stopped), so that a plan another daemon
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
        /* on a database other hosts share, the answer says which host applied the plan */
        if (r == 0 && *ret_result && e->db->backend->lock &&
            !streq(json_string_value(json_object_get(*ret_result, "status")) ?: "", "current"))
                json_object_set_new(*ret_result, "host", json_string(hosts_name()));
        return r;
}

/* A "current" answer says who applied the version (another host, on a shared server): the
 * attempt that took the database there, from the history. Best effort: without it the answer
 * is still right. */
void engine_add_applied_by(engine *e, int64_t version, json_t *result) {
        _cleanup_free_ char *host = NULL;
        json_t *by = NULL;
        db_failure f = {};

        if (version <= 0 || history_applied_by(e->db, version, &by, &f) != 0 || !by) {
                db_failure_clear(&f);
                return;
        }
        host = hosts_of_requester(json_string_value(json_object_get(by, "requested_by")));
        if (host)
                json_object_set_new(by, "host", json_string(host));
        json_object_set_new(result, "applied_by", by);
}

int engine_notify_commit(engine *e, int64_t version, db_failure *f) {
        /* a backend with a shared writer lock is a server other hosts share */
        if (!e->db->backend->lock)
                return 0;
        return hosts_notify_commit(e->db, version, f);
}

int engine_add_hosts(engine *e, json_t *status) {
        json_t *arr = NULL;
        db_failure f = {};
        int r;

        if (!e->db->backend->lock)
                return 0;
        r = hosts_list(e->db, &arr, &f);
        db_failure_clear(&f);
        if (r == 0)
                json_object_set_new(status, "hosts", arr);
        return r < 0 ? r : 0;
}
