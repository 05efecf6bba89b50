/* SPDX-License-Identifier: MIT */
/* The plan's classification (online or breaking) and its lint findings, for plan, dry runs,
 * jobs and migratectl lint. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "classify.h"
#include "engine-internal.h"

/* Worst first: a step is breaking when one statement is. */
static void step_summary(json_t *step) {
        json_t *stmts = json_object_get(step, "statements"), *s, *decider = NULL;
        size_t i;

        json_array_foreach(stmts, i, s)
                if (!decider && streq(json_string_value(json_object_get(s, "class")), CLASS_BREAKING))
                        decider = s;
        if (!decider)
                decider = json_array_get(stmts, 0);
        json_object_set_new(step, "class", json_string(decider ? json_string_value(json_object_get(decider, "class"))
                                                               : CLASS_ONLINE));
        json_object_set_new(step, "rule", json_string(decider ? json_string_value(json_object_get(decider, "rule"))
                                                              : "empty"));
        json_object_set_new(step, "reason", json_string(decider ? json_string_value(json_object_get(decider, "reason"))
                                                                : "the script has no statements"));
}

/* Applies a directive: the step and its statements take the directive's class, keeping what
 * was detected. */
static void step_override(json_t *step, const char *override) {
        json_t *s;
        size_t i;

        json_object_set_new(step, "override", json_string(override));
        json_object_set(step, "detected", json_object_get(step, "class"));
        json_object_set_new(step, "class", json_string(override));
        json_array_foreach(json_object_get(step, "statements"), i, s) {
                json_object_set(s, "detected", json_object_get(s, "class"));
                json_object_set_new(s, "class", json_string(override));
        }
}

void classify_step_finish(json_t *step, const char *override) {
        step_summary(step);
        if (override)
                step_override(step, override);
}

json_t *classify_unknown(const classify_script *scripts, size_t n, const char *reason) {
        json_t *o = json_pack("{s:s,s:[]}", "class", CLASS_BREAKING, "steps");

        for (size_t i = 0; o && i < n; i++) {
                const char *class = scripts[i].override ?: CLASS_BREAKING;
                json_t *step = json_pack("{s:s,s:s,s:s,s:s,s:[],s:[]}", "file", scripts[i].file, "class", class, "rule",
                                         "unknown", "reason", reason, "statements", "findings");
                if (step && scripts[i].override)
                        json_object_set_new(step, "override", json_string(scripts[i].override));
                json_array_append_new(json_object_get(o, "steps"), step);
        }
        if (o && n > 0) {
                bool breaking = false;
                json_t *s;
                size_t i;
                json_array_foreach(json_object_get(o, "steps"), i, s)
                        breaking |= streq(json_string_value(json_object_get(s, "class")), CLASS_BREAKING);
                json_object_set_new(o, "class", json_string(breaking ? CLASS_BREAKING : CLASS_ONLINE));
        }
        return o;
}

bool plan_needs_downtime(const json_t *classification) {
        const char *c = json_string_value(json_object_get(classification, "class"));

        return !c || !streq(c, CLASS_ONLINE);
}

/* Irreversibility: an up step without a down script, unless accepted. Then every finding is
 * marked accepted when its file says "-- migrated: accept RULE". */
static int add_findings(const plan *p, json_t *o) {
        json_t *steps = json_object_get(o, "steps"), *all = json_array();
        bool errors = false;

        if (!all)
                return -ENOMEM;
        for (size_t i = 0; i < p->n; i++) {
                const plan_step *st = &p->steps[i];
                json_t *step = json_array_get(steps, i), *findings = json_object_get(step, "findings"), *f;
                size_t k;

                if (!findings) {
                        findings = json_array();
                        json_object_set_new(step, "findings", findings);
                }
                if (p->direction == PLAN_UP && !st->migration->down.file)
                        json_array_append_new(findings,
                                              json_pack("{s:s,s:s,s:s,s:s}", "rule", "no-down", "severity", "warning",
                                                        "file", st->script->file, "message",
                                                        "the migration has no down script: it cannot be reverted"));
                json_array_foreach(findings, k, f) {
                        bool accepted = migration_accepts_rule(st->script->sql, st->script->size,
                                                               json_string_value(json_object_get(f, "rule")));
                        json_object_set_new(f, "accepted", json_boolean(accepted));
                        json_object_set_new(f, "version", json_integer(st->migration->version));
                        if (!accepted && streq(json_string_value(json_object_get(f, "severity")), "error"))
                                errors = true;
                        json_array_append(all, f);
                }
        }
        json_object_set_new(o, "findings", all);
        json_object_set_new(o, "lint_errors", json_boolean(errors));
        return 0;
}

int engine_classify(engine *e, const plan *p, bool as_postgres, json_t **ret, engine_error *err) {
        _cleanup_free_ classify_script *scripts = calloc(p->n + 1, sizeof(*scripts));
        _cleanup_free_ char *problem = NULL;
        json_t *o = NULL;
        int r;

        if (!scripts)
                return -ENOMEM;
        for (size_t i = 0; i < p->n; i++) {
                unsigned flags = p->steps[i].script->flags;
                scripts[i].file = p->steps[i].script->file;
                scripts[i].sql = p->steps[i].script->sql;
                scripts[i].override = flags & MIGRATION_ONLINE     ? CLASS_ONLINE
                                      : flags & MIGRATION_BREAKING ? CLASS_BREAKING
                                                                   : NULL;
        }
        if (streq(db_get_backend(e->db)->name, "sqlite") && !as_postgres) {
                r = classify_sqlite(e->database, scripts, p->n, &o, &problem);
                if (r < 0)
                        return r;
                if (r == CLASSIFY_LIVE_FAILED) /* the plan stands; it keeps the stop/start path */
                        o = classify_unknown(scripts, p->n, problem ?: "the live schema could not be read");
                if (!o)
                        return -ENOMEM;
        } else if (as_postgres || db_dialect_postgres(e->db)) {
                r = classify_pg(scripts, p->n, &o);
                if (r < 0)
                        return r;
        } else {
                o = classify_unknown(scripts, p->n, "this backend cannot classify statements yet");
                if (!o)
                        return -ENOMEM;
        }
        r = add_findings(p, o);
        if (r < 0) {
                json_decref(o);
                return r;
        }
        *ret = o;
        return 0;
}

int engine_add_classification(engine *e, const plan *p, bool as_postgres, json_t *report, engine_error *err) {
        json_t *c = NULL, *steps = json_object_get(report, "steps"), *s;
        size_t i;
        int r;

        r = engine_classify(e, p, as_postgres, &c, err);
        if (r != 0)
                return r;
        json_array_foreach(json_object_get(c, "steps"), i, s) {
                json_t *dst = json_array_get(steps, i);
                const char *key;
                json_t *v;
                json_object_foreach(s, key, v)
                        if (!streq(key, "file"))
                                json_object_set(dst, key, v);
        }
        json_object_set(report, "class", json_object_get(c, "class"));
        json_object_set(report, "findings", json_object_get(c, "findings"));
        json_object_set(report, "lint_errors", json_object_get(c, "lint_errors"));
        json_decref(c);
        return 0;
}

/* The first breaking step, as "FILE: RULE: reason", for the report. */
static char *breaking_reason(json_t *c) {
        json_t *s;
        size_t i;
        char *out = NULL;

        json_array_foreach(json_object_get(c, "steps"), i, s)
                if (streq(json_string_value(json_object_get(s, "class")) ?: "", CLASS_BREAKING)) {
                        if (asprintf(&out, "%s: %s: %s", json_string_value(json_object_get(s, "file")) ?: "?",
                                     json_string_value(json_object_get(s, "rule")) ?: "?",
                                     json_string_value(json_object_get(s, "reason")) ?: "") < 0)
                                out = NULL;
                        break;
                }
        return out;
}

int engine_online_check(engine *e, const engine_job *job, unsigned bound_ms, json_t **ret_report, engine_error *err) {
        _cleanup_(plan_freep) plan *p = NULL;
        _cleanup_free_ classify_script *scripts = NULL;
        _cleanup_free_ char *copy = NULL, *problem = NULL, *why = NULL;
        json_t *c = NULL, *timing = NULL, *report;
        int r;

        r = engine_build_plan(e, &job->request, &p, NULL, err);
        if (r != 0)
                return r;
        r = engine_classify(e, p, false, &c, err);
        if (r != 0)
                return r;
        report = json_pack("{s:O,s:I}", "class", json_object_get(c, "class"), "bound_ms", (json_int_t) bound_ms);
        if (!report) {
                json_decref(c);
                return -ENOMEM;
        }
        *ret_report = report;
        if (plan_needs_downtime(c)) {
                why = breaking_reason(c);
                json_decref(c);
                json_object_set_new(report, "decision", json_string("stop"));
                json_object_set_new(report, "reason", json_string(why ?: "the plan is breaking"));
                return 0;
        }
        json_decref(c);
        if (!streq(db_get_backend(e->db)->name, "sqlite")) {
                json_object_set_new(report, "decision", json_string("online"));
                json_object_set_new(report, "reason",
                                    json_string("each lock is bounded by lock_timeout, and a plan that times out "
                                                "runs again"));
                return 0;
        }
        /* online: how long does its transaction hold the write lock? measured on a copy */
        scripts = calloc(p->n + 1, sizeof(*scripts));
        if (!scripts)
                return -ENOMEM;
        for (size_t i = 0; i < p->n; i++) {
                scripts[i].file = p->steps[i].script->file;
                scripts[i].sql = p->steps[i].script->sql;
        }
        r = engine_make_clone(e, job->id, &copy, err);
        if (r != 0)
                return r;
        r = classify_sqlite_time(copy, scripts, p->n, bound_ms, &timing, &problem);
        db_clone_remove(db_get_backend(e->db), copy);
        if (r < 0)
                return r;
        if (r > 0 || json_is_true(json_object_get(timing, "failed"))) {
                json_decref(timing);
                json_object_set_new(report, "decision", json_string("stop"));
                json_object_set_new(report, "reason",
                                    json_string(problem ?: "the plan failed on a copy of the database: it runs with "
                                                           "the dependents stopped, where a failure rolls back"));
                return 0;
        }
        json_object_set(report, "lock_ms", json_object_get(timing, "lock_ms"));
        json_object_set(report, "slowest", json_object_get(timing, "slowest"));
        if (json_is_true(json_object_get(timing, "over"))) {
                json_t *slow = json_object_get(timing, "slowest");
                if (asprintf(&why,
                             "on a copy, the plan held the write lock at least %" JSON_INTEGER_FORMAT " ms, over "
                             "the bound of %u ms (online_lock_ms); the slowest statement, at least "
                             "%" JSON_INTEGER_FORMAT " ms, is in %s: %s",
                             json_integer_value(json_object_get(timing, "lock_ms")), bound_ms,
                             json_integer_value(json_object_get(slow, "ms")),
                             json_string_value(json_object_get(slow, "file")) ?: "?",
                             json_string_value(json_object_get(slow, "sql")) ?: "?") < 0)
                        why = NULL;
                json_object_set_new(report, "decision", json_string("over_bound"));
                json_object_set_new(report, "reason", json_string(why ?: "over the bound"));
        } else
                json_object_set_new(report, "decision", json_string("online"));
        json_decref(timing);
        return 0;
}
