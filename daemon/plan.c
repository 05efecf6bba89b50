/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "migdir-format.h"
#include "plan.h"

void applied_set_clear(applied_set *a) {
        for (size_t i = 0; i < a->n; i++) {
                free(a->items[i].name);
                free(a->items[i].applied_at);
        }
        free(a->items);
        for (size_t i = 0; i < a->n_repeatables; i++) {
                free(a->repeatables[i].name);
                free(a->repeatables[i].applied_at);
        }
        free(a->repeatables);
        for (size_t i = 0; i < a->n_failed; i++)
                free(a->failed[i]);
        free(a->failed);
        free(a->failed_hint);
        memset(a, 0, sizeof(*a));
}

int applied_set_fill_through(applied_set *a, const migration_set *set) {
        applied_migration *items, *rec;
        size_t n = 0;

        if (!a->through || !set || a->n != 1)
                return 0;
        rec = &a->items[0];
        items = calloc(set->n + 1, sizeof(*items));
        if (!items)
                return -ENOMEM;
        for (size_t i = 0; i < set->n && set->items[i].version <= rec->version; i++) {
                const migration *m = &set->items[i];
                applied_migration *t = &items[n++];

                t->version = m->version;
                t->name = strdup(m->name);
                t->applied_at = strdup(m->version == rec->version ? rec->applied_at : "");
                memcpy(t->checksum, m->checksum, SHA256_HEX_SIZE); /* the tool keeps no checksums */
                if (!t->name || !t->applied_at) {
                        for (size_t k = 0; k < n; k++) {
                                free(items[k].name);
                                free(items[k].applied_at);
                        }
                        free(items);
                        return -ENOMEM;
                }
        }
        if (n == 0 || items[n - 1].version != rec->version)
                items[n++] = *rec; /* recorded, but no file: plan_check_applied names it */
        else {
                free(rec->name);
                free(rec->applied_at);
        }
        free(a->items);
        a->items = items;
        a->n = n;
        return 0;
}

int64_t applied_set_current(const applied_set *a) {
        int64_t last = a && a->n > 0 ? a->items[a->n - 1].version : 0;

        return a && a->baseline > last ? a->baseline : last;
}

/* What applied_set_find returns for a version that a baseline covers. */
static const applied_migration baselined = { .name = (char *) "<< Baseline >>" };

/* The set is sorted by version: binary search keeps status over thousands of migrations linear. */
const applied_migration *applied_set_find(const applied_set *a, int64_t version) {
        size_t lo = 0, hi = a ? a->n : 0;

        if (a && version > 0 && version <= a->baseline)
                return &baselined;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (a->items[mid].version == version)
                        return &a->items[mid];
                if (a->items[mid].version < version)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return NULL;
}

bool applied_set_has(const applied_set *a, const migration *m) {
        if (!(m->up.flags & MIGRATION_REPEATABLE))
                return applied_set_find(a, m->version);
        for (size_t i = 0; a && i < a->n_repeatables; i++)
                if (streq(a->repeatables[i].name, m->name))
                        return migration_checksum_matches(m, a->repeatables[i].checksum);
        return false;
}

void plan_error_clear(plan_error *e) {
        if (!e)
                return;
        free(e->message);
        free(e->file);
        memset(e, 0, sizeof(*e));
}

static int refuse(plan_error *e, protocol_error_code code, const migration *m, const char *fmt, ...) _printf_(4, 5);
static int refuse(plan_error *e, protocol_error_code code, const migration *m, const char *fmt, ...) {
        va_list ap;

        if (!e)
                return PLAN_REFUSED;
        plan_error_clear(e);
        e->code = code;
        va_start(ap, fmt);
        if (vasprintf(&e->message, fmt, ap) < 0)
                e->message = NULL;
        va_end(ap);
        if (m) {
                e->version = m->version;
                e->file = strdup(m->up.file);
        }
        return e->message ? PLAN_REFUSED : -ENOMEM;
}

/* A version in a message, as its format spells it ("1.2.10" for Flyway; the number for the
 * integer formats; 0 for the empty schema). */
static const char *version_text(const migration_set *set, int64_t v, char buf[static MIGRATION_KEY_MAX]) {
        migration_format_key(set ? migration_format_get(set->format) : NULL, v, buf);
        return buf[0] ? buf : "0";
}
#define VTEXT(v) version_text(set, (v), (char[MIGRATION_KEY_MAX]) {})

size_t plan_check_applied(const migration_set *set, const applied_set *applied, plan_error *ret_error) {
        size_t problems = 0;

        for (size_t i = 0; i < applied->n_failed; i++)
                if (problems++ == 0 && ret_error)
                        refuse(ret_error, PROTOCOL_ERROR_FAILED_MIGRATION, NULL,
                               "migration %s failed in an earlier run and was never resolved, so its changes may be "
                               "partly in the database; repair the database by hand, then run \"migratectl mark "
                               "rolled-back %s\" to run it again, or \"migratectl mark applied %s\" if you completed "
                               "it by hand%s%s", applied->failed[i], applied->failed[i], applied->failed[i],
                               applied->failed_hint ? ". " : "", applied->failed_hint ?: "");

        for (size_t i = 0; i < applied->n; i++) {
                const applied_migration *a = &applied->items[i];
                const migration *m = migration_set_find(set, a->version);

                if (!m) {
                        if (problems++ == 0 && ret_error) {
                                refuse(ret_error, PROTOCOL_ERROR_MISSING_MIGRATION, NULL,
                                       "migration %s (%s) is applied but its file is missing from %s; "
                                       "restore the file, or point migrated at the right directory",
                                       VTEXT(a->version), a->name, set->dir);
                                ret_error->version = a->version;
                        }
                        continue;
                }
                if (!migration_checksum_matches(m, a->checksum)) {
                        if (problems++ == 0 && ret_error) {
                                refuse(ret_error, PROTOCOL_ERROR_CHECKSUM_MISMATCH, m,
                                       "%s was edited after it was applied (recorded sha256 %s, file now %s); "
                                       "restore the original file and put the change in a new migration "
                                       "(migratectl new NAME)",
                                       m->up.file, a->checksum, m->checksum);
                                memcpy(ret_error->expected, a->checksum, SHA256_HEX_SIZE);
                                memcpy(ret_error->actual, m->checksum, SHA256_HEX_SIZE);
                        }
                }
        }
        return problems;
}

/* The order of two versions is the set's, which its format defines (versions are ordered keys:
 * integers, Flyway's dotted versions, Prisma's folder names): positions in the set, never the
 * numbers, decide. 0, the empty schema, comes before every migration; a version outside the set
 * (a refused target) keeps its numeric place. */
static int version_cmp(const migration_set *set, int64_t a, int64_t b) {
        const migration *x, *y;

        if (a == b)
                return 0;
        x = a != 0 ? migration_set_find(set, a) : NULL;
        y = b != 0 ? migration_set_find(set, b) : NULL;
        if (x && y)
                return x < y ? -1 : 1;
        return a < b ? -1 : 1;
}

static int plan_add(plan *p, const migration *m, bool up) {
        plan_step *s = &p->steps[p->n++];

        s->migration = m;
        s->script = up ? &m->up : &m->down;
        s->transaction = !(s->script->flags & MIGRATION_NO_TRANSACTION);
        if (!s->transaction)
                p->atomic = false;
        return 0;
}

/* Whether v comes after the current version. With nothing applied, every migration does,
 * version 0 included (golang-migrate's sets may start at 0, which protocol 1 also uses for the
 * empty schema). */
static bool after_current(const migration_set *set, const applied_set *applied, int64_t v, int64_t current) {
        return (applied->n == 0 && applied->baseline == 0) || version_cmp(set, v, current) > 0;
}

static int plan_up(const migration_set *set, const applied_set *applied, const plan_request *req, plan *p,
                   plan_error *e) {
        int64_t current = applied_set_current(applied);
        int64_t target = req->to == PLAN_NO_TARGET ? migration_set_latest(set) : req->to;

        if (req->steps != 0)
                return refuse(e, PROTOCOL_ERROR_INVALID_PARAMS, NULL, "\"steps\" applies to down only");
        if (req->to != PLAN_NO_TARGET && req->to != 0 && !migration_set_find(set, req->to))
                return refuse(e, PROTOCOL_ERROR_UNKNOWN_VERSION, NULL,
                              "there is no migration %s in %s", VTEXT(req->to), set->dir);
        if (version_cmp(set, target, current) < 0)
                return refuse(e, PROTOCOL_ERROR_UNKNOWN_VERSION, NULL,
                              "version %s is %s (the current version is %s): up only goes forward; to go back "
                              "to %s, use down --to %s",
                              VTEXT(target), applied_set_find(applied, target) ? "already applied" : "older than the current one",
                              VTEXT(current), VTEXT(target), VTEXT(target));
        for (size_t i = 0; i < set->n; i++) {
                const migration *m = &set->items[i];
                if (version_cmp(set, m->version, current) < 0 && !applied_set_find(applied, m->version) && !req->allow_out_of_order)
                        return refuse(e, PROTOCOL_ERROR_OUT_OF_ORDER, m,
                                      "%s is pending but older than the current version %s; give it a version above %s "
                                      "(rename it), or apply it out of order on purpose with up --allow-out-of-order",
                                      m->up.file, VTEXT(current), VTEXT(current));
        }
        for (size_t i = 0; i < set->n; i++) {
                const migration *m = &set->items[i];
                bool older = version_cmp(set, m->version, current) < 0 && req->allow_out_of_order;
                if (m->up.flags & MIGRATION_REPEATABLE) {
                        /* Flyway's repeatables: after the versioned ones, on the way to the latest */
                        if (target == migration_set_latest(set) && !applied_set_has(applied, m))
                                plan_add(p, m, true);
                        continue;
                }
                if ((after_current(set, applied, m->version, current) || older) &&
                    version_cmp(set, m->version, target) <= 0 && !applied_set_find(applied, m->version))
                        plan_add(p, m, true);
        }
        p->to_version = current;
        for (size_t i = p->n; i > 0; i--)
                if (!(p->steps[i - 1].migration->up.flags & MIGRATION_REPEATABLE)) {
                        if (after_current(set, applied, p->steps[i - 1].migration->version, current))
                                p->to_version = p->steps[i - 1].migration->version;
                        break;
                }
        return 0;
}

static int plan_down(const migration_set *set, const applied_set *applied, const plan_request *req, plan *p,
                     plan_error *e) {
        int64_t current = applied_set_current(applied);
        size_t count;

        if (req->to != PLAN_NO_TARGET && req->steps != 0)
                return refuse(e, PROTOCOL_ERROR_INVALID_PARAMS, NULL, "give either \"to\" or \"steps\", not both");
        if (req->to != PLAN_NO_TARGET) {
                if (version_cmp(set, req->to, current) > 0)
                        return refuse(e, PROTOCOL_ERROR_UNKNOWN_VERSION, NULL,
                                      "target %s is newer than the current version %s; use up --to %s", VTEXT(req->to),
                                      VTEXT(current), VTEXT(req->to));
                if (req->to != 0 && !applied_set_find(applied, req->to))
                        return refuse(e, PROTOCOL_ERROR_UNKNOWN_VERSION, NULL,
                                      "version %" PRId64 " is not applied; down --to takes 0 or an applied version",
                                      req->to);
                /* down --to 0 is the empty schema: a migration numbered 0 is reverted too */
                count = 0;
                for (size_t i = 0; i < applied->n; i++)
                        if (req->to == 0 || version_cmp(set, applied->items[i].version, req->to) > 0)
                                count++;
        } else {
                int64_t steps = req->steps == 0 ? 1 : req->steps;
                if (steps < 0)
                        return refuse(e, PROTOCOL_ERROR_INVALID_PARAMS, NULL, "\"steps\" must be at least 1");
                if ((uint64_t) steps > applied->n)
                        return refuse(e, PROTOCOL_ERROR_STATE_CONFLICT, NULL,
                                      "cannot revert %" PRId64 " migrations: %zu applied", steps, applied->n);
                count = (size_t) steps;
        }
        /* Check every step before planning any, so a refusal names the first blocker. */
        for (size_t k = 0; k < count; k++) {
                const applied_migration *a = &applied->items[applied->n - 1 - k];
                const migration *m = migration_set_find(set, a->version);
                if (!m)
                        return refuse(e, PROTOCOL_ERROR_MISSING_MIGRATION, NULL,
                                      "migration %s (%s) is applied but its files are missing", VTEXT(a->version),
                                      a->name);
                if (!m->down.file)
                        /* a format with one file per migration (goose) has down sections */
                        return refuse(e, PROTOCOL_ERROR_IRREVERSIBLE, m,
                                      "%s is irreversible (it has no down %s); nothing was changed", m->up.file,
                                      m->format && m->format->split ? "section" : "file");
                plan_add(p, m, false);
        }
        p->to_version = count < applied->n ? applied->items[applied->n - 1 - count].version : applied->baseline;
        return 0;
}

int plan_build(const migration_set *set, const applied_set *applied, const plan_request *req, plan **ret,
               plan_error *ret_error) {
        _cleanup_(plan_freep) plan *p = NULL;
        plan_error scratch = {};
        int r;

        if (plan_check_applied(set, applied, ret_error ?: &scratch) > 0) {
                plan_error_clear(&scratch);
                return PLAN_REFUSED;
        }
        p = calloc(1, sizeof(*p));
        if (!p || !(p->steps = calloc(set->n + applied->n + 1, sizeof(plan_step))))
                return -ENOMEM;
        p->direction = req->direction;
        p->from_version = applied_set_current(applied);
        p->atomic = true;
        r = req->direction == PLAN_UP ? plan_up(set, applied, req, p, ret_error)
                                      : plan_down(set, applied, req, p, ret_error);
        if (r != 0)
                return r;
        *ret = TAKE_PTR(p);
        return 0;
}

plan *plan_free(plan *p) {
        if (!p)
                return NULL;
        free(p->steps);
        free(p);
        return NULL;
}

void plan_freep(plan **p) {
        plan_free(*p);
}
