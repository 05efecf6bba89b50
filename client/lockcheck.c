/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "exit-codes.h"
#include "lockcheck.h"
#include "lockinfo.h"
#include "output.h"

/* A file's short name as people know it: "db", "-wal", "-shm". */
static const char *file_label(const char *file) {
        if (file && streq(file, "wal"))
                return "-wal";
        if (file && streq(file, "shm"))
                return "-shm";
        return file ?: "?";
}

static void render_files(json_t *report) {
        json_t *db = json_object_get(report, "database"), *wal = json_object_get(report, "wal");
        json_t *shm = json_object_get(report, "shm");
        char size[32];
        int64_t v;

        printf("Database %s\n", json_get_str(db, "path") ?: "?");
        printf("  size %s", json_get_int(db, "size", &v) ? fmt_size(v, size) : "?");
        if (json_get_str(db, "owner_user"))
                printf(", owner %s", json_get_str(db, "owner_user"));
        if (json_get_int(db, "owner_uid", &v))
                printf(" (uid %" PRId64 ")", v);
        printf(", mode %s, journal mode %s", json_get_str(db, "mode") ?: "?", json_get_str(db, "journal_mode") ?: "unknown");
        if (json_get_int(db, "page_size", &v))
                printf(", page size %" PRId64, v);
        fputc('\n', stdout);

        if (!json_get_bool(wal, "present", false))
                printf("  -wal: absent\n");
        else {
                printf("  -wal: %s", json_get_int(wal, "size", &v) ? fmt_size(v, size) : "?");
                if (json_get_int(wal, "frames_not_checkpointed", &v))
                        printf(", %" PRId64 " %s not checkpointed", v, v == 1 ? "frame" : "frames");
                else
                        printf(", frames not checkpointed unknown (no valid wal-index header)");
                fputc('\n', stdout);
        }
        if (!json_get_bool(shm, "present", false))
                printf("  -shm: absent\n");
        else
                printf("  -shm: %s\n", json_get_int(shm, "size", &v) ? fmt_size(v, size) : "?");
}

/* "db rw, -wal rw, -shm r" */
static char *files_text(json_t *h) {
        json_t *files = json_get_array(h, "files"), *writable = json_get_array(h, "writable_files"), *f, *w;
        char *s = strdup(""), *next;
        size_t i, j;

        json_array_foreach(files, i, f) {
                bool rw = false;
                json_array_foreach(writable, j, w)
                        if (json_is_string(w) && json_is_string(f) && streq(json_string_value(w), json_string_value(f)))
                                rw = true;
                if (!s || asprintf(&next, "%s%s%s %s", s, i ? ", " : "", file_label(json_string_value(f)),
                                   rw ? "rw" : "r") < 0)
                        next = NULL;
                free(s);
                s = next;
        }
        return s;
}

static int render_holders(json_t *holders) {
        _cleanup_(table_freep) table *t = table_new(5);
        int r;

        if (!t)
                return -ENOMEM;
        if (json_array_size(holders) == 0) {
                printf("\nProcesses with the database open: none\n");
                return 0;
        }
        r = table_add(t, "PID") ?: table_add(t, "USER") ?: table_add(t, "UNIT") ?: table_add(t, "FILES") ?:
            table_add(t, "COMMAND");
        for (size_t i = 0; r >= 0 && i < json_array_size(holders); i++) {
                json_t *h = json_array_get(holders, i);
                _cleanup_free_ char *pid = fmt_field(h, "pid"), *files = files_text(h);
                const char *cmd = json_get_str(h, "cmdline");

                r = table_add(t, pid) ?: table_add(t, json_get_str(h, "user")) ?: table_add(t, json_get_str(h, "unit")) ?:
                    table_add(t, files) ?: table_add(t, cmd && *cmd ? cmd : json_get_str(h, "command"));
        }
        if (r < 0)
                return r;
        printf("\nProcesses with the database open (%zu):\n", json_array_size(holders));
        table_print(t, stdout, "  ");
        return 0;
}

/* One offset: the database's lock bytes read best in hex, the -shm slots in decimal. */
static void fmt_offset(int64_t v, char buf[static 24]) {
        snprintf(buf, 24, v >= 0x10000 ? "0x%" PRIx64 : "%" PRId64, v);
}

static int add_range(table *t, json_t *lock) {
        char a[24], b[24];
        int64_t start, end;

        if (!json_get_int(lock, "range_start", &start))
                return table_add(t, NULL);
        fmt_offset(start, a);
        if (!json_get_int(lock, "range_end", &end))
                return table_addf(t, "%s-EOF", a);
        if (end == start)
                return table_add(t, a);
        fmt_offset(end, b);
        return table_addf(t, "%s-%s", a, b);
}

/* "812", "812 (OFD)", "? (OFD)", "812 (migrated)": the inspecting process is the daemon when the
 * report came from it (migratectl itself holds no lock while it inspects). */
static int add_lock_pid(table *t, json_t *lock, bool from_daemon) {
        int64_t pid = 0, owner;
        bool has_owner = json_get_int(lock, "owner_pid", &owner);

        json_get_int(lock, "pid", &pid);
        if (json_get_bool(lock, "self", false))
                return table_addf(t, "%" PRId64 " (%s)", pid, from_daemon ? "migrated" : "this process");
        if (pid > 0)
                return table_addf(t, "%" PRId64, pid);
        if (has_owner)
                return table_addf(t, "%" PRId64 " (%s)", owner, pid < 0 ? "OFD" : "other PID namespace");
        return table_add(t, pid < 0 ? "? (OFD)" : "? (other PID namespace)");
}

static int render_locks(json_t *locks, bool from_daemon) {
        _cleanup_(table_freep) table *t = table_new(6);
        int r;

        if (!t)
                return -ENOMEM;
        if (json_array_size(locks) == 0) {
                printf("\nLocks: none\n");
                return 0;
        }
        r = table_add(t, "PID") ?: table_add(t, "FILE") ?: table_add(t, "KIND") ?: table_add(t, "RANGE") ?:
            table_add(t, "TYPE") ?: table_add(t, "SQLITE LOCK");
        for (size_t i = 0; r >= 0 && i < json_array_size(locks); i++) {
                json_t *l = json_array_get(locks, i);

                r = add_lock_pid(t, l, from_daemon) ?: table_add(t, file_label(json_get_str(l, "file"))) ?:
                    table_add(t, json_get_str(l, "kind")) ?: add_range(t, l) ?:
                    table_addf(t, "%s%s", json_get_str(l, "type") ?: "?",
                               json_get_bool(l, "waiting", false) ? " (waiting)" : "") ?:
                    table_add(t, json_get_str(l, "sqlite_lock") ?: "(not SQLite's)");
        }
        if (r < 0)
                return r;
        printf("\nLocks (%zu):\n", json_array_size(locks));
        table_print(t, stdout, "  ");
        return 0;
}

static void render_probe(json_t *probe) {
        int64_t log, done;

        printf("\nProbe (a connection of its own, never waiting):\n");
        if (json_get_bool(probe, "write_ok", false))
                printf("  write: ok, BEGIN IMMEDIATE got the write lock (rolled back at once)\n");
        else
                printf("  write: refused: %s\n", json_get_str(probe, "write_error") ?: "unknown error");
        if (json_is_null(json_object_get(probe, "checkpoint_ok")) || !json_object_get(probe, "checkpoint_ok"))
                printf("  checkpoint: not applicable (no WAL)\n");
        else if (!json_get_bool(probe, "checkpoint_ok", false))
                printf("  checkpoint: could not run now, another process holds the checkpoint, recovery or an "
                       "exclusive lock\n");
        else if (json_get_int(probe, "checkpoint_log_frames", &log) && json_get_int(probe, "checkpoint_done_frames", &done))
                printf("  checkpoint: could run now (none was run); %" PRId64 " of %" PRId64
                       " WAL frames already checkpointed\n", done, log);
        else
                printf("  checkpoint: could run now (none was run)\n");
}

/* Only in the daemon's answer: its state and the dependent units'. */
static int render_daemon(json_t *report) {
        json_t *daemon = json_object_get(report, "daemon"), *units = json_get_array(report, "units");
        _cleanup_(table_freep) table *t = table_new(2);
        int64_t queue;
        int r = 0;

        if (!t)
                return -ENOMEM;
        if (json_is_object(daemon)) {
                printf("\nDaemon: %s", json_get_str(daemon, "state") ?: "?");
                if (json_get_int(daemon, "queue_length", &queue))
                        printf(", %" PRId64 " queued %s", queue, queue == 1 ? "job" : "jobs");
                fputc('\n', stdout);
        }
        if (json_array_size(units) == 0)
                return 0;
        for (size_t i = 0; r >= 0 && i < json_array_size(units); i++) {
                json_t *u = json_array_get(units, i);
                r = table_add(t, json_get_str(u, "unit")) ?: table_add(t, json_get_str(u, "active_state"));
        }
        if (r < 0)
                return r;
        printf("\nDependent units:\n");
        table_print(t, stdout, "  ");
        return 0;
}

/* The daemon's state, then whether a migration can run now and what to do. */
static int render_verdict(json_t *report) {
        int r = render_daemon(report);

        if (r < 0)
                return r;
        printf("\nVerdict: %s (%s)\n", json_get_str(report, "verdict") ?: "unknown",
               lockcheck_exit_code(report) == EXIT_OK ? "a migration can run now" : "a migration cannot run now");
        printf("  %s\n", json_get_str(report, "action") ?: "");
        return 0;
}

/* A PostgreSQL server's report: who holds migrated's advisory lock, which sessions hold or wait
 * for locks on the schema's tables (pg_locks and pg_stat_activity). */
static int render_server_report(json_t *report) {
        _cleanup_(table_freep) table *t = table_new(6);
        json_t *writer = json_object_get(report, "writer_lock_holder");
        json_t *locks = json_get_array(report, "relation_locks");
        int r = t ? 0 : -ENOMEM;

        if (json_is_object(writer))
                printf("Writer lock: held by pid %" JSON_INTEGER_FORMAT " (%s, %s): %s\n",
                       json_integer_value(json_object_get(writer, "pid")),
                       json_get_str(writer, "application_name") ?: "?", json_get_str(writer, "client_addr") ?: "?",
                       json_get_str(writer, "query") ?: "");
        else
                printf("Writer lock: free\n");
        if (r == 0 && json_array_size(locks) == 0) {
                printf("\nTable locks of other sessions: none\n");
        } else if (r == 0) {
                r = table_add(t, "PID") ?: table_add(t, "APPLICATION") ?: table_add(t, "CLIENT") ?:
                    table_add(t, "TABLE") ?: table_add(t, "MODE") ?: table_add(t, "STATE");
                for (size_t i = 0; r >= 0 && i < json_array_size(locks); i++) {
                        json_t *l = json_array_get(locks, i);
                        r = table_addf(t, "%" JSON_INTEGER_FORMAT, json_integer_value(json_object_get(l, "pid"))) ?:
                            table_add(t, json_get_str(l, "application_name")) ?:
                            table_add(t, json_get_str(l, "client_addr")) ?: table_add(t, json_get_str(l, "relation")) ?:
                            table_addf(t, "%s%s", json_get_str(l, "mode") ?: "?",
                                       json_get_bool(l, "granted", true) ? "" : " (waiting)") ?:
                            table_add(t, json_get_str(l, "state"));
                }
                if (r >= 0) {
                        printf("\nTable locks of other sessions (%zu):\n", json_array_size(locks));
                        table_print(t, stdout, "  ");
                }
        }
        return r < 0 ? r : render_verdict(report);
}

int render_lockcheck(json_t *report) {
        int r;

        if (streq(json_get_str(report, "backend") ?: "", "postgresql"))
                return render_server_report(report);
        render_files(report);
        r = render_holders(json_get_array(report, "holders"));
        if (r < 0)
                return r;
        r = render_locks(json_get_array(report, "locks"), json_object_get(report, "daemon") != NULL);
        if (r < 0)
                return r;
        render_probe(json_object_get(report, "probe"));
        return render_verdict(report);
}

int lockcheck_exit_code(json_t *report) {
        return json_get_bool(report, "migration_possible", false) ? EXIT_OK : EXIT_BUSY;
}

static int local_error(const char *database, int error, bool json) {
        _cleanup_free_ char *message = NULL;
        json_auto_t *doc = NULL;
        const char *why;

        switch (error) {
        case -ENOENT:
                why = "does not exist (lock-check never creates it)";
                break;
        case -EISDIR:
                why = "is a directory";
                break;
        case -EINVAL:
                why = "is not a regular file";
                break;
        case -EBADMSG:
                why = "is not an SQLite database";
                break;
        default:
                why = strerror(-error);
        }
        if (asprintf(&message, "database %s %s", database, why) < 0)
                return -ENOMEM;
        if (!json) {
                fprintf(stderr, "migratectl: error: %s\n", message);
                return EXIT_FAILED;
        }
        doc = json_pack("{s:{s:s,s:s}}", "error", "code",
                        error == -ENOENT || error == -EISDIR || error == -EINVAL || error == -EBADMSG
                                ? "database_error" : "internal",
                        "message", message);
        if (!doc || output_json(doc) < 0)
                return -EIO;
        return EXIT_FAILED;
}

int lockcheck_local(const char *database, bool json) {
        json_auto_t *report = NULL;
        int r;

        r = lockinfo_inspect(database, &report);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return local_error(database, r, json);
        r = json ? output_json(report) : render_lockcheck(report);
        if (r < 0)
                return r;
        return lockcheck_exit_code(report);
}
