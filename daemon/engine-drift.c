/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#include "drift.h"
#include "engine-internal.h"
#include "history.h"
#include "plan.h"

/* Whether the migration's up script belongs to the replay. A repeatable (Flyway R__) applied in
 * an earlier version of its file counts too, with the file as it is now: the version applied is
 * gone, and leaving the script out would report its objects as made by hand. */
static bool replayed(const applied_set *applied, const migration *m) {
        if (!(m->up.flags & MIGRATION_REPEATABLE))
                return applied_set_has(applied, m);
        for (size_t i = 0; i < applied->n_repeatables; i++)
                if (streq(applied->repeatables[i].name, m->name))
                        return true;
        return false;
}

/* The up scripts of the applied migrations, in the format's order, as the engine ran them; an
 * applied version without its file cannot be replayed and is refused (missing_migration). */
static int applied_scripts(engine *e, const applied_set *applied, drift_script **ret, size_t *ret_n,
                           engine_error *err) {
        _cleanup_free_ drift_script *scripts = NULL;
        size_t n = 0;

        for (size_t i = 0; i < applied->n; i++)
                if (!migration_set_find(e->set, applied->items[i].version))
                        return engine_fail(err, PROTOCOL_ERROR_MISSING_MIGRATION, NULL,
                                           "applied migration %lld (%s) has no file: its schema cannot be replayed",
                                           (long long) applied->items[i].version, applied->items[i].name);
        scripts = calloc(e->set->n + 1, sizeof(*scripts));
        if (!scripts)
                return -ENOMEM;
        for (size_t i = 0; i < e->set->n; i++) {
                const migration *m = &e->set->items[i];

                if (m->up.sql && replayed(applied, m))
                        scripts[n++] = (drift_script) { m->up.file, m->up.sql };
        }
        *ret = TAKE_PTR(scripts);
        *ret_n = n;
        return 0;
}

/* Why a separate read: the replay costs a run of every applied script, so status only pays for
 * it when asked (status --drift). */
int engine_diff(engine *e, json_t **ret, engine_error *err) {
        _cleanup_free_ drift_script *scripts = NULL;
        _cleanup_free_ char *message = NULL;
        applied_set applied = {};
        json_t *differences = NULL;
        size_t n = 0;
        int r;

        r = engine_load(e, &applied, err);
        if (r != 0)
                return r;
        if (e->dir_errno != 0 || !e->set) {
                applied_set_clear(&applied);
                return engine_require_valid_directory(e, err);
        }
        r = applied_scripts(e, &applied, &scripts, &n, err);
        applied_set_clear(&applied);
        if (r != 0)
                return r;
        r = db_drift(e->db, e->database, scripts, n, history_tables, &differences, &message);
        if (r == -EOPNOTSUPP)
                return engine_fail(err, PROTOCOL_ERROR_STATE_CONFLICT, NULL,
                                   "diff is not available on the %s backend", db_get_backend(e->db)->name);
        if (r < 0)
                return r;
        if (r > 0)
                return engine_fail(err, r == DRIFT_REPLAY_FAILED ? PROTOCOL_ERROR_MIGRATION_FAILED
                                                                 : PROTOCOL_ERROR_DATABASE,
                                   NULL, "%s", message);
        *ret = json_pack("{s:b,s:I,s:o}", "drift", json_array_size(differences) > 0, "replayed", (json_int_t) n,
                         "differences", differences);
        return *ret ? 0 : -ENOMEM;
}

/* The schema dump leaves out migrated's own tables (they are not the application's schema) but
 * keeps the format's history table, whose rows follow when asked (with_history), as dbmate's
 * schema.sql has them. */
int engine_schema(engine *e, bool with_history, json_t **ret, engine_error *err) {
        _cleanup_free_ char *sql = NULL;
        db_failure f = {};
        int r;

        r = engine_check_identity(e, err);
        if (r != 0)
                return r;
        r = db_schema_dump(e->db, history_own_tables, with_history ? db_history_table(e->db) : NULL, &sql, &f);
        if (r == -EOPNOTSUPP)
                return engine_fail(err, PROTOCOL_ERROR_STATE_CONFLICT, NULL,
                                   "schema is not available on the %s backend", db_get_backend(e->db)->name);
        if (r != 0)
                return r < 0 ? r : engine_fail_db(err, &f, NULL);
        *ret = json_pack("{s:s}", "schema", sql);
        return *ret ? 0 : -ENOMEM;
}
