/* SPDX-License-Identifier: MIT */
#include "macro.h"
#include "report.h"
#include "sql-wrapper.h"

static json_t *migration_problem(const char *kind, int64_t version, const char *name, const char *file) {
        json_t *o = json_object();

        json_object_set_new(o, "kind", json_string(kind));
        json_object_set_new(o, "version", json_integer(version));
        json_object_set_new(o, "name", json_string(name));
        json_object_set_new(o, "file", file ? json_string(file) : json_null());
        return o;
}

json_t *report_problems(const migration_set *set, const applied_set *applied, const migdir_errors *dir_errors) {
        json_t *arr = json_array();

        for (size_t i = 0; dir_errors && i < dir_errors->n; i++) {
                json_t *o = json_object();
                json_object_set_new(o, "kind", json_string("directory"));
                json_object_set_new(o, "message", json_string(dir_errors->messages[i]));
                json_array_append_new(arr, o);
        }
        for (size_t i = 0; applied && i < applied->n_failed; i++) {
                json_t *o = json_object();
                json_object_set_new(o, "kind", json_string("failed_migration"));
                json_object_set_new(o, "name", json_string(applied->failed[i]));
                json_object_set_new(o, "message", json_string("failed in an earlier run and not resolved: see "
                                                              "migratectl mark applied|rolled-back"));
                json_array_append_new(arr, o);
        }
        if (!set)
                return arr; /* without a readable directory nothing can be compared */
        for (size_t i = 0; i < applied->n; i++) {
                const applied_migration *a = &applied->items[i];
                const migration *m = migration_set_find(set, a->version);
                json_t *o;

                if (!m) {
                        o = migration_problem("missing_file", a->version, a->name, NULL);
                        json_object_set_new(o, "message", json_string("applied, but its file is missing from the "
                                                                      "migrations directory"));
                } else if (!migration_checksum_matches(m, a->checksum)) {
                        o = migration_problem("checksum_mismatch", a->version, a->name, m->up.file);
                        json_object_set_new(o, "expected", json_string(a->checksum));
                        json_object_set_new(o, "actual", json_string(m->checksum));
                        json_object_set_new(o, "message", json_string("the file was edited after it was applied"));
                } else
                        continue;
                json_array_append_new(arr, o);
        }
        return arr;
}

json_t *report_status(const char *database, const migration_set *set, const applied_set *applied,
                      json_t *backend_info, const migdir_errors *dir_errors) {
        json_t *o = json_object(), *app = json_array(), *pend = json_array();
        int64_t current = applied_set_current(applied);

        for (size_t i = 0; i < applied->n; i++) {
                const applied_migration *a = &applied->items[i];
                const migration *f = set ? migration_set_find(set, a->version) : NULL;
                json_t *m = json_object();
                json_object_set_new(m, "version", json_integer(a->version));
                json_object_set_new(m, "name", json_string(a->name));
                if (f) /* the file it came from, while it is still there */
                        json_object_set_new(m, "file", json_string(f->up.file));
                json_object_set_new(m, "checksum", json_string(a->checksum));
                json_object_set_new(m, "applied_at", json_string(a->applied_at));
                json_object_set_new(m, "duration_ms", json_integer(a->duration_ms));
                json_array_append_new(app, m);
        }
        for (size_t i = 0; set && i < set->n; i++) {
                const migration *m = &set->items[i];
                json_t *p;
                if (applied_set_has(applied, m))
                        continue;
                p = json_object();
                json_object_set_new(p, "version", json_integer(m->version));
                json_object_set_new(p, "name", json_string(m->name));
                json_object_set_new(p, "file", json_string(m->up.file));
                if (m->key)
                        json_object_set_new(p, "migration_name", json_string(m->key));
                json_object_set_new(p, "reversible", json_boolean(m->down.file != NULL));
                json_object_set_new(p, "transaction", json_boolean(!(m->up.flags & MIGRATION_NO_TRANSACTION)));
                json_array_append_new(pend, p);
        }
        json_object_set_new(o, "database", json_string(database));
        json_object_set_new(o, "migrations_dir", set ? json_string(set->dir) : json_null());
        json_object_set_new(o, "format", json_string(migdir_format_to_string(set ? set->format : MIGDIR_NATIVE)));
        if (backend_info)
                json_object_update(o, backend_info);
        json_object_set_new(o, "current_version", current > 0 ? json_integer(current) : json_null());
        json_object_set_new(o, "latest_version",
                            set && set->n > 0 ? json_integer(migration_set_latest(set)) : json_null());
        json_object_set_new(o, "applied", app);
        /* the total, also when a reply lists only the newest (status applied_last) */
        json_object_set_new(o, "applied_count", json_integer((json_int_t) applied->n));
        json_object_set_new(o, "pending", pend);
        json_object_set_new(o, "problems", report_problems(set, applied, dir_errors));
        return o;
}

json_t *report_plan(const plan *p) {
        json_t *o = json_object(), *steps = json_array();

        for (size_t i = 0; i < p->n; i++) {
                json_t *s = json_object();
                json_object_set_new(s, "version", json_integer(p->steps[i].migration->version));
                json_object_set_new(s, "name", json_string(p->steps[i].migration->name));
                json_object_set_new(s, "file", json_string(p->steps[i].script->file));
                json_object_set_new(s, "transaction", json_boolean(p->steps[i].transaction));
                /* a file wrapped whole in BEGIN; … COMMIT;: its wrapper joins the plan's
                 * transaction ("folded"), or, run on its own, is its own transaction */
                size_t b, e;
                if (sql_find_wrapper(p->steps[i].script->sql, p->steps[i].script->size, &b, &e) > 0)
                        json_object_set_new(s, "own_transaction",
                                            json_string(p->steps[i].transaction ? "folded" : "own"));
                json_array_append_new(steps, s);
        }
        json_object_set_new(o, "direction", json_string(p->direction == PLAN_UP ? "up" : "down"));
        json_object_set_new(o, "from_version", json_integer(p->from_version));
        json_object_set_new(o, "to_version", json_integer(p->to_version));
        json_object_set_new(o, "atomic", json_boolean(p->atomic));
        json_object_set_new(o, "steps", steps);
        return o;
}

json_t *report_plan_error(const plan_error *e) {
        json_t *o = json_object();

        if (e->version > 0)
                json_object_set_new(o, "version", json_integer(e->version));
        if (e->file)
                json_object_set_new(o, "file", json_string(e->file));
        if (e->code == PROTOCOL_ERROR_CHECKSUM_MISMATCH) {
                json_object_set_new(o, "expected", json_string(e->expected));
                json_object_set_new(o, "actual", json_string(e->actual));
        }
        return o;
}

json_t *report_dir_errors(const migdir_errors *e) {
        json_t *arr = json_array();

        for (size_t i = 0; e && i < e->n; i++)
                json_array_append_new(arr, json_string(e->messages[i]));
        return arr;
}
