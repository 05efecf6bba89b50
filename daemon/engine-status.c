/* SPDX-License-Identifier: MIT */
/* The engine's view of the directory and the database: the directory is scanned again only after
 * a change (dirwatch.c), and a read-only engine keeps its last status: a status asked again while
 * neither the directory nor the database (db_change_token) changed is the same object, shared
 * member by member (members are never modified once built), instead of a reread of the history
 * and a rebuild of every entry. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine-internal.h"
#include "macro.h"
#include "migdir-format.h"
#include "report.h"

/* A file written since the last scan is read again even when its size, inode and mtime look the
 * same (rewritten in place within one mtime tick): the scan reuses nothing of it. */
static void forget_content(const char *name, void *userdata) {
        migration_set *s = userdata;

        for (size_t i = 0; s && i < s->n; i++) {
                migration_script *t[] = { &s->items[i].up, &s->items[i].down };

                for (size_t k = 0; k < ELEMENTSOF(t); k++)
                        if (!name || (t[k]->file && streq(t[k]->file, name)))
                                t[k]->ino = 0;
        }
}

void engine_rescan_directory(engine *e) {
        dirwatch_force(e->watch);
}

/* One scan of the directory, reusing what the last one read of unchanged files. */
static int scan_now(engine *e) {
        migration_set *s = NULL;
        int r;

        migdir_errors_clear(&e->dir_errors);
        e->dir_errno = 0;
        r = migdir_load_format_items(e->migrations_dir, e->format, e->set, &s, &e->dir_errors);
        e->dir_items_only = r == 0 && e->dir_errors.n > 0;
        if (r < 0 && r != -ENOMEM) {
                e->dir_errno = -r;
                return 0;
        }
        if (r < 0)
                return r;
        if (r == 0) {
                migration_set_free(e->set);
                e->set = s;
        }
        return 0;
}

/* Rescans the directory, only when it changed since the last scan (dirwatch.c). Keeps the
 * previous good set when the new scan is invalid, but reports the problems: read views still
 * answer, jobs refuse. Problems of single items (a bad Prisma folder) leave the other items
 * usable: jobs refuse only plans that would need a bad one. */
int engine_scan(engine *e) {
        int r;

        if (dirwatch_check(e->watch, forget_content, e->set) == 0)
                return 0;
        e->scans++;
        r = scan_now(e);
        dirwatch_scanned(e->watch, r >= 0 && e->dir_errno == 0);
        return r;
}

static int status_build(engine *e, json_t **ret, engine_error *err) {
        _cleanup_free_ char *dir_problem = NULL;
        applied_set applied = {};
        migdir_errors extra = {};
        const migdir_errors *errors = &e->dir_errors;
        json_t *o, *info;
        int r;

        r = engine_load(e, &applied, err);
        if (r != 0)
                return r;
        /* the backend's own facts (its journal mode, say): where the status always had them, and
         * as "backend" {name, facts…} for clients that render whatever a backend reports */
        info = json_object();
        if (info)
                (void) db_info(e->db, info);
        if (e->dir_errno != 0) {
                if (asprintf(&dir_problem, "cannot read the migrations directory %s: %s", e->migrations_dir,
                             strerror(e->dir_errno)) < 0)
                        dir_problem = NULL;
                extra.messages = &dir_problem;
                extra.n = dir_problem ? 1 : 0;
                errors = &extra;
        }
        o = report_status(e->database, e->set, &applied, info, errors);
        if (o && info) {
                json_t *backend = json_pack("{s:s}", "name", db_get_backend(e->db)->name);
                if (backend)
                        json_object_update(backend, info);
                json_object_set_new(o, "backend", backend ?: json_null());
        }
        json_decref(info);
        if (!e->set)
                json_object_set_new(o, "migrations_dir", json_string(e->migrations_dir));
        json_object_set_new(o, "format", json_string(migdir_format_to_string(e->format)));
        json_object_set_new(o, "format_reason", json_string(e->format_reason));
        json_object_set_new(o, "history_table", json_string(db_history_table(e->db)));
        applied_set_clear(&applied);
        if (!o)
                return -ENOMEM;
        *ret = o;
        return 0;
}

/* The cached status when nothing changed since it was built; *ret_token is taken before any read,
 * so that a commit racing the rebuild leaves a token that will not match. */
static json_t *status_cached(engine *e, db_change_token *ret_token) {
        engine_error ignored = {};
        uint64_t scans = e->scans;
        int r;

        *ret_token = (db_change_token) {};
        if (!e->cache_status)
                return NULL;
        r = engine_check_identity(e, &ignored);
        engine_error_clear(&ignored);
        if (r != 0 || engine_scan(e) < 0)
                return NULL;
        db_change_token_get(e->db, ret_token);
        if (!e->status_cache || scans != e->scans || !db_change_token_equal(ret_token, &e->status_token))
                return NULL;
        return json_copy(e->status_cache);
}

int engine_status(engine *e, json_t **ret, engine_error *err) {
        db_change_token token;
        uint64_t scans;
        json_t *o;
        int r;

        o = status_cached(e, &token);
        if (o) {
                *ret = o;
                return 0;
        }
        scans = e->scans;
        json_decref(e->status_cache);
        e->status_cache = NULL;
        r = status_build(e, &o, err);
        if (r != 0)
                return r;
        if (e->cache_status && token.known && scans == e->scans) {
                /* callers add members to what they get (hosts, drift): a shallow copy each */
                *ret = json_copy(o);
                if (!*ret) {
                        json_decref(o);
                        return -ENOMEM;
                }
                e->status_cache = o;
                e->status_token = token;
        } else
                *ret = o;
        return 0;
}
