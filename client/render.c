/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "output.h"
#include "render.h"

#define SHORT_CHECKSUM 12

/* A migration as people see it in file names: "0003 add_vitals". */
static void print_migration(FILE *f, json_t *o) {
        int64_t v;

        if (json_get_int(o, "version", &v))
                fprintf(f, "%04" PRId64, v);
        else if (json_get_str(o, "version"))
                fputs(json_get_str(o, "version"), f);
        else
                fputs("?", f);
        if (json_get_str(o, "name"))
                fprintf(f, " %s", json_get_str(o, "name"));
}

/* "from → to" of a job or plan. */
static void print_span(FILE *f, json_t *o) {
        char a[24], b[24];

        fprintf(f, "%s %s %s", fmt_version(o, "from_version", a), glyph_arrow(), fmt_version(o, "to_version", b));
}

/* Event names are snake_case identifiers; show "rolled_back" as "rolled back". */
static void print_words(FILE *f, const char *s) {
        for (; s && *s; s++)
                fputc(*s == '_' ? ' ' : *s, f);
}

static bool phase_in_progress(const char *phase) {
        size_t n = phase ? strlen(phase) : 0;

        return n > 3 && streq(phase + n - 3, "ing");
}

/* "[1/3] applying 0003 add_vitals …" or "[1/3] applied 0003 add_vitals (4 ms)". */
static void render_migration_event(progress *p, json_t *ev) {
        const char *phase = json_get_str(ev, "phase") ?: "migration";
        int64_t index = 0, total = 0, ms;

        json_get_int(ev, "index", &index);
        json_get_int(ev, "total", &total);
        if (p->open_line && p->tty && index == p->open_index && !phase_in_progress(phase))
                fputs("\r\033[K", stderr);
        else
                progress_end(p);
        p->open_line = false;

        fprintf(stderr, "[%" PRId64 "/%" PRId64 "] %s ", index, total, phase);
        print_migration(stderr, ev);
        if (json_get_int(ev, "duration_ms", &ms))
                fprintf(stderr, " (%" PRId64 " ms)", ms);
        if (json_get_str(ev, "message"))
                fprintf(stderr, ": %s", json_get_str(ev, "message"));
        if (phase_in_progress(phase)) {
                fprintf(stderr, " %s", glyph_ellipsis());
                if (p->tty) {
                        p->open_line = true;
                        p->open_index = index;
                        fflush(stderr);
                        return;
                }
        }
        fputc('\n', stderr);
}

/* "stopping units: a.service, b.service" */
static void render_units_event(json_t *ev) {
        json_t *units = json_get_array(ev, "units"), *u;
        size_t i;

        fprintf(stderr, "%s units", json_get_str(ev, "phase") ?: "handling");
        json_array_foreach(units, i, u)
                fprintf(stderr, "%s%s", i == 0 ? ": " : ", ", json_string_value(u) ?: "?");
        fputc('\n', stderr);
}

/* "stopped a.service (12 ms, killed)"; a unit whose job did not end well says so first. */
static void render_unit_event(json_t *ev) {
        const char *result = json_get_str(ev, "outcome") ?: json_get_str(ev, "result");
        const char *action = json_get_str(ev, "action") ?: "unit";
        int64_t ms;

        if (!json_get_bool(ev, "ok", true))
                fprintf(stderr, "FAILED: %s did not %s", json_get_str(ev, "unit") ?: "?",
                        streq(action, "stopped") ? "stop" : streq(action, "started") ? "start" : "finish");
        else
                fprintf(stderr, "%s %s", action, json_get_str(ev, "unit") ?: "?");
        if (json_get_int(ev, "duration_ms", &ms))
                fprintf(stderr, " (%" PRId64 " ms)", ms);
        if (json_get_bool(ev, "killed", false))
                fputs(", killed after the stop timeout", stderr);
        if (result && !streq(result, "done"))
                fprintf(stderr, ", result: %s", result);
        fputc('\n', stderr);
}

/* Events this client does not know (the daemon may add steps) still show, as name: fields. */
static void render_other_event(const char *event, json_t *ev) {
        const char *key;
        json_t *v;
        bool first = true;

        print_words(stderr, event);
        if (json_get_str(ev, "message")) {
                fprintf(stderr, ": %s\n", json_get_str(ev, "message"));
                return;
        }
        json_object_foreach(ev, key, v) {
                _cleanup_free_ char *s = NULL;

                if (streq(key, "id") || streq(key, "event") || streq(key, "job_id"))
                        continue;
                s = fmt_field(ev, key);
                fprintf(stderr, "%s %s=%s", first ? ":" : ",", key, s ?: "?");
                first = false;
        }
        fputc('\n', stderr);
}

/* A shared server's writer lock: who holds it while we wait, or a plan run again after a lock
 * timeout. */
static void render_server_lock_event(json_t *ev) {
        json_t *h = json_object_get(ev, "holder");
        int64_t attempt = 0;

        if (json_is_object(h)) {
                fprintf(stderr, "waiting for the writer lock, held by pid %" JSON_INTEGER_FORMAT " (%s, %s): %s\n",
                        json_integer_value(json_object_get(h, "pid")), json_get_str(h, "application_name") ?: "?",
                        json_get_str(h, "client_addr") ?: "?", json_get_str(h, "query") ?: "");
                return;
        }
        json_get_int(ev, "attempt", &attempt);
        fprintf(stderr, "rolled back by a lock wait (attempt %" PRId64 "), running the plan again: %s\n", attempt,
                json_get_str(ev, "reason") ?: "");
}

int render_event(json_t *ev, void *userdata) {
        progress *p = userdata;
        const char *event = json_get_str(ev, "event") ?: "event";
        char a[24], b[64];
        int64_t job = 0, n = 0;

        if (streq(event, "migration")) {
                render_migration_event(p, ev);
                return 0;
        }
        progress_end(p);
        json_get_int(ev, "job_id", &job);
        if (streq(event, "queued")) {
                fprintf(stderr, "queued: job %" PRId64 ", position %s\n", job, fmt_version(ev, "position", a));
        } else if (streq(event, "started")) {
                json_get_int(ev, "total", &n);
                fprintf(stderr, "started job %" PRId64 ": %s ", job, json_get_str(ev, "kind") ?: "job");
                print_span(stderr, ev);
                fprintf(stderr, " (%s)\n", fmt_count(n, "migration", b));
        } else if (streq(event, "committed")) {
                fprintf(stderr, "committed at version %s\n", fmt_version(ev, "version", a));
        } else if (streq(event, "rolled_back")) {
                fprintf(stderr, "rolled back to version %s\n", fmt_version(ev, "version", a));
        } else if (streq(event, "units"))
                render_units_event(ev);
        else if (streq(event, "backup")) {
                json_t *bk = json_object_get(ev, "backup");
                char size[32];
                int64_t bytes;
                if (json_is_object(bk))
                        fprintf(stderr, "backup taken: %s (%s)\n", json_get_str(bk, "path") ?: "?",
                                json_get_int(bk, "size", &bytes) ? fmt_size(bytes, size) : "?");
                else
                        fprintf(stderr, "backing up the database%s\n", glyph_ellipsis());
        } else if (streq(event, "lock") && (json_is_object(json_object_get(ev, "holder")) ||
                                             streq(json_get_str(ev, "phase") ?: "", "retrying")))
                render_server_lock_event(ev);
        else if (streq(event, "unit"))
                render_unit_event(ev);
        else if (streq(event, "seed"))
                render_seed_event(ev);
        else if (streq(event, "lock") && streq(json_get_str(ev, "phase") ?: "", "waiting") &&
                 !json_object_get(ev, "holder"))
                /* the plain wait for the database's write lock; one naming a holder reads as fields */
                fprintf(stderr, "taking the database's write lock%s\n", glyph_ellipsis());
        else
                render_other_event(event, ev);
        return 0;
}

void progress_end(progress *p) {
        if (p && p->open_line) {
                fputc('\n', stderr);
                p->open_line = false;
        }
}

/* The message first, then the details a person needs to act: where it failed, which checksums. */
void render_error(json_t *error) {
        const char *code = json_get_str(error, "code"), *file = json_get_str(error, "file");
        const char *message = json_get_str(error, "message");
        int64_t line;

        fprintf(stderr, "migratectl: %serror:%s %s\n", color_on(stderr, COLOR_RED), color_off(stderr),
                message && *message ? message : code ?: "unknown error");
        if (file && json_get_int(error, "line", &line))
                fprintf(stderr, "  at %s:%" PRId64 "\n", file, line);
        else if (file)
                fprintf(stderr, "  in %s\n", file);
        if (code && streq(code, "checksum_mismatch")) {
                if (json_get_str(error, "expected"))
                        fprintf(stderr, "  recorded checksum: %s\n", json_get_str(error, "expected"));
                if (json_get_str(error, "actual"))
                        fprintf(stderr, "  file checksum now: %s\n", json_get_str(error, "actual"));
        }
        for (size_t i = 0; i < json_get_array_size(error, "problems"); i++) {
                json_t *p = json_array_get(json_get_array(error, "problems"), i);
                fprintf(stderr, "  %s\n", json_get_str(p, "message") ?: json_get_str(p, "kind") ?: "problem");
        }
}

/* "CHECKSUM MISMATCH 0003_x.up.sql: recorded 0123456789ab…, file now 456789abcdef…" */
static void render_problem(FILE *f, json_t *p) {
        const char *kind = json_get_str(p, "kind") ?: "problem", *file = json_get_str(p, "file");
        const char *message = json_get_str(p, "message");

        fputs("  ", f);
        for (const char *k = kind; *k; k++)
                fputc(*k == '_' ? ' ' : toupper((unsigned char) *k), f);
        if (file)
                fprintf(f, " %s", file);
        else if (json_object_get(p, "version")) { /* a problem of the whole directory names none */
                fputc(' ', f);
                print_migration(f, p);
        }
        if (streq(kind, "checksum_mismatch") && json_get_str(p, "expected") && json_get_str(p, "actual"))
                fprintf(f, ": recorded %.*s%s, file now %.*s%s\n", SHORT_CHECKSUM, json_get_str(p, "expected"),
                        glyph_ellipsis(), SHORT_CHECKSUM, json_get_str(p, "actual"), glyph_ellipsis());
        else
                fprintf(f, ": %s\n", message ?: "-");
}

static void render_problems(json_t *problems) {
        if (json_array_size(problems) == 0)
                return;
        printf("\n%sProblems (%zu):%s\n", color_on(stdout, COLOR_RED), json_array_size(problems), color_off(stdout));
        for (size_t i = 0; i < json_array_size(problems); i++)
                render_problem(stdout, json_array_get(problems, i));
}

static int table_add_version(table *t, json_t *o) {
        int64_t v;

        if (json_get_str(o, "version"))
                return table_add(t, json_get_str(o, "version"));
        if (!json_get_int(o, "version", &v))
                return table_add(t, NULL);
        return table_addf(t, "%04" PRId64, v);
}

/* total: "applied_count", when the daemon sent only the newest (status applied_last) */
static int render_applied(json_t *applied, int64_t total, bool all) {
        _cleanup_(table_freep) table *t = table_new(4);
        size_t n = json_array_size(applied), from = all || n <= STATUS_APPLIED_SHOWN ? 0 : n - STATUS_APPLIED_SHOWN;
        int r;

        if (!t)
                return -ENOMEM;
        if (json_array_size(applied) == 0) {
                printf("\nApplied: none\n");
                return 0;
        }
        r = table_add(t, "VERSION") ?: table_add(t, "NAME") ?: table_add(t, "APPLIED AT") ?: table_add(t, "CHECKSUM");
        for (size_t i = from; r >= 0 && i < n; i++) {
                json_t *m = json_array_get(applied, i);
                const char *sum = json_get_str(m, "checksum");

                r = table_add_version(t, m) ?: table_add(t, json_get_str(m, "name")) ?:
                    table_add(t, json_get_str(m, "applied_at")) ?:
                    (sum ? table_addf(t, "%.*s", SHORT_CHECKSUM, sum) : table_add(t, NULL));
        }
        if (r < 0)
                return r;
        if (total > (int64_t) n)
                n = (size_t) total;
        if (n > STATUS_APPLIED_SHOWN && !all)
                printf("\nApplied (%zu; the last %u, --all lists every one):\n", n, STATUS_APPLIED_SHOWN);
        else
                printf("\nApplied (%zu):\n", n);
        table_print(t, stdout, "  ");
        return 0;
}

static int render_pending(json_t *pending) {
        _cleanup_(table_freep) table *t = table_new(3);
        int r;

        if (!t)
                return -ENOMEM;
        if (json_array_size(pending) == 0) {
                printf("\nPending: none\n");
                return 0;
        }
        r = table_add(t, "VERSION") ?: table_add(t, "NAME") ?: table_add(t, "NOTES");
        for (size_t i = 0; r >= 0 && i < json_array_size(pending); i++) {
                json_t *m = json_array_get(pending, i);
                bool irreversible = !json_get_bool(m, "reversible", true);
                bool no_tx = !json_get_bool(m, "transaction", true);

                r = table_add_version(t, m) ?: table_add(t, json_get_str(m, "name")) ?:
                    table_addf(t, "%s%s%s", irreversible ? "irreversible" : "", irreversible && no_tx ? ", " : "",
                               no_tx ? "no-transaction" : "");
        }
        if (r < 0)
                return r;
        printf("\n%sPending (%zu):%s\n", color_on(stdout, COLOR_YELLOW), json_array_size(pending), color_off(stdout));
        table_print(t, stdout, "  ");
        return 0;
}

/* "idle", or "running job 3: up 2/3 0004 add_x". */
static int format_daemon_state(json_t *result, char **ret) {
        const char *state = json_get_str(result, "state");
        json_t *job = json_object_get(result, "job");
        int64_t id = 0, index = 0, total = 0;
        char *s = NULL;
        size_t size;
        FILE *f;

        f = open_memstream(&s, &size);
        if (!f)
                return -ENOMEM;
        fputs(state ?: "-", f);
        if (json_is_object(job)) {
                json_get_int(job, "id", &id);
                json_get_int(job, "index", &index);
                json_get_int(job, "total", &total);
                if (total > 0) {
                        fprintf(f, " job %" PRId64 ": %s %" PRId64 "/%" PRId64 " ", id,
                                json_get_str(job, "kind") ?: "job", index, total);
                        print_migration(f, job);
                } else
                        fprintf(f, " job %" PRId64 ": %s, %s", id, json_get_str(job, "kind") ?: "job",
                                json_get_str(job, "step") ?: json_get_str(job, "phase") ?: "starting");
        }
        if (fclose(f) != 0) {
                free(s);
                return -ENOMEM;
        }
        *ret = s;
        return 0;
}

/* "held at 7 by down, job 12; 1 migration pending; `migratectl up` to apply" */
static int render_gate(table *t, json_t *g) {
        json_t *hold = json_object_get(g, "hold"), *failed = json_object_get(g, "failed_plan");
        int64_t pending = 0, v = 0, job = 0;
        char c[64];
        int r;

        json_get_int(g, "pending", &pending);
        r = table_add(t, "Gate:");
        if (r < 0)
                return r;
        if (json_is_object(hold)) {
                json_get_int(hold, "version", &v);
                json_get_int(hold, "job_id", &job);
                return table_addf(t, "held at %" PRId64 " by %s, job %" PRId64 "; %s pending; `migratectl up` to apply",
                                  v, json_get_str(hold, "by") ?: "?", job, fmt_count(pending, "migration", c));
        }
        if (json_is_object(failed) && pending > 0) {
                json_get_int(failed, "job_id", &job);
                return table_addf(t, "open for the services on the previous schema (job %" PRId64 " failed); "
                                  "`migratectl wait --strict` stays shut", job);
        }
        if (pending > 0)
                return table_addf(t, "shut: %s pending; `migratectl up` to apply", fmt_count(pending, "migration", c));
        return table_add(t, "open (schema current)");
}

/* The header block of status: where, what, who is working. */
/* Whatever facts the daemon's backend reports ("backend": {name, journal_mode, …}), one row
 * each, labelled from the key; a daemon without that object still has its journal_mode. */
static int render_backend_facts(table *t, json_t *result) {
        json_t *backend = json_object_get(result, "backend"), *v;
        const char *key;
        int r = 0;

        if (!json_is_object(backend))
                return table_add(t, "Journal mode:") ?: table_add(t, json_get_str(result, "journal_mode"));
        json_object_foreach(backend, key, v) {
                char label[64];
                size_t n;

                if (streq(key, "name"))
                        continue;
                n = (size_t) snprintf(label, sizeof(label) - 1, "%s", key);
                for (size_t i = 0; i < n && i < sizeof(label) - 2; i++)
                        if (label[i] == '_')
                                label[i] = ' ';
                label[0] = (char) toupper((unsigned char) label[0]);
                n = strlen(label);
                label[n] = ':';
                label[n + 1] = '\0';
                r = table_add(t, label) ?: table_add(t, json_string_value(v));
                if (r < 0)
                        return r;
        }
        return r;
}

/* The directory's format, why the daemon chose it and the table its bookkeeping lives in;
 * nothing from a daemon that does not say. */
static int render_format(table *t, json_t *result) {
        const char *format = json_get_str(result, "format"), *reason = json_get_str(result, "format_reason"),
                   *history = json_get_str(result, "history_table");
        int r = 0;

        if (format)
                r = table_add(t, "Format:") ?:
                    (reason ? table_addf(t, "%s (%s)", format, reason) : table_add(t, format));
        if (r == 0 && history)
                r = table_add(t, "History table:") ?: table_add(t, history);
        return r;
}

static int render_status_header(json_t *result) {
        _cleanup_(table_freep) table *t = table_new(2);
        _cleanup_free_ char *daemon = NULL;
        char a[24], b[24], c[64];
        int64_t queue = 0;
        int r;

        if (!t)
                return -ENOMEM;
        r = format_daemon_state(result, &daemon);
        if (r < 0)
                return r;
        json_get_int(result, "queue_length", &queue);
        r = table_add(t, "Database:") ?: table_add(t, json_get_str(result, "database")) ?:
            table_add(t, "Migrations:") ?: table_add(t, json_get_str(result, "migrations_dir")) ?:
            render_format(t, result) ?: render_backend_facts(t, result) ?:
            table_add(t, "Daemon:") ?: table_add(t, daemon) ?:
            table_add(t, "Queue:") ?: table_addf(t, "%s waiting", fmt_count(queue, "job", c)) ?:
            table_add(t, "Version:") ?:
            table_addf(t, "%s (latest %s, %zu pending)", fmt_version(result, "current_version", a),
                       fmt_version(result, "latest_version", b), json_get_array_size(result, "pending"));
        if (r == 0 && json_is_object(json_object_get(result, "gate")))
                r = render_gate(t, json_object_get(result, "gate"));
        if (r == 0 && json_object_get(result, "drift")) /* status --drift */
                r = table_add(t, "Drift:") ?:
                    table_add(t, json_is_true(json_object_get(result, "drift"))    ? "yes (migratectl diff shows it)"
                                 : json_is_false(json_object_get(result, "drift")) ? "none"
                                                                                   : json_get_str(result, "drift_error") ?: "unknown");
        if (r < 0)
                return r;
        table_print(t, stdout, NULL);
        return 0;
}

static int render_status_full(json_t *result, bool all) {
        int64_t total = 0;
        int r;

        r = render_status_header(result);
        if (r < 0)
                return r;
        r = render_applied(json_get_array(result, "applied"),
                           json_get_int(result, "applied_count", &total) ? total : 0, all);
        if (r < 0)
                return r;
        r = render_pending(json_get_array(result, "pending"));
        if (r < 0)
                return r;
        render_problems(json_get_array(result, "problems"));
        return render_hosts(json_object_get(result, "hosts"));
}

int render_status(json_t *result) {
        return render_status_full(result, false);
}

int render_status_all(json_t *result) {
        return render_status_full(result, true);
}


/* A step's TRANSACTION cell; a file wrapped in its own BEGIN; ... COMMIT; says what became of it. */
static const char *step_transaction(json_t *s) {
        const char *own = json_get_str(s, "own_transaction");
        bool txn = json_get_bool(s, "transaction", true);

        if (own && streq(own, "folded"))
                return "yes (its BEGIN/COMMIT folded in)";
        if (own)
                return "its own BEGIN/COMMIT";
        return txn ? "yes" : "no";
}
/* A plan, from `plan` or a dry run: the span, whether it is all-or-nothing, then its steps. */
static void render_dry_run_details(json_t *result);

int render_plan(json_t *result, bool dry_run) {
        _cleanup_(table_freep) table *t = table_new(4);
        json_t *steps = json_get_array(result, "steps");
        char a[24], b[64];
        int r;

        if (!t)
                return -ENOMEM;
        if (dry_run)
                printf("Dry run, nothing was changed.\n");
        if (json_array_size(steps) == 0) {
                printf("Nothing to do: the database is at version %s.\n", fmt_version(result, "from_version", a));
                return 0;
        }
        printf("Plan: %s ", json_get_str(result, "direction") ?: "up");
        print_span(stdout, result);
        printf(", %s, %s\n", fmt_count((int64_t) json_array_size(steps), "migration", b),
               json_get_bool(result, "atomic", false) ? "atomic (one transaction, all or nothing)"
                                                       : "not atomic (committed one by one)");
        r = table_add(t, "VERSION") ?: table_add(t, "NAME") ?: table_add(t, "FILE") ?: table_add(t, "TRANSACTION");
        for (size_t i = 0; r >= 0 && i < json_array_size(steps); i++) {
                json_t *s = json_array_get(steps, i);

                r = table_add_version(t, s) ?: table_add(t, json_get_str(s, "name")) ?:
                    table_add(t, json_get_str(s, "file")) ?:
                    table_add(t, step_transaction(s));
        }
        if (r < 0)
                return r;
        table_print(t, stdout, "  ");
        render_classification(result);
        if (dry_run)
                render_dry_run_details(result);
        return 0;
}

/* What a dry run adds to the plan: transactions, the units to stop, the backup, the SQL. */
static void render_dry_run_details(json_t *result) {
        json_t *groups = json_get_array(result, "transactions"), *units = json_get_array(result, "units");
        json_t *backup = json_object_get(result, "backup"), *steps = json_get_array(result, "steps");
        size_t n_stop = 0;

        for (size_t i = 0; i < json_array_size(groups); i++) {
                json_t *g = json_array_get(groups, i), *v = json_object_get(g, "versions");
                printf("%s", i == 0 ? "Transactions:\n" : "");
                printf("  %zu. %s:", i + 1, json_get_bool(g, "transaction", true) ? "in one transaction"
                                                                                   : "outside a transaction");
                for (size_t k = 0; k < json_array_size(v); k++)
                        if (json_is_string(json_array_get(v, k)))
                                printf(" %s", json_string_value(json_array_get(v, k)));
                        else
                                printf(" %" JSON_INTEGER_FORMAT, json_integer_value(json_array_get(v, k)));
                putchar('\n');
        }
        for (size_t i = 0; i < json_array_size(units); i++)
                if (json_get_bool(json_array_get(units, i), "will_stop", false))
                        n_stop++;
        if (json_array_size(units) > 0) {
                printf("Units to stop and start again:");
                for (size_t i = 0; i < json_array_size(units); i++) {
                        json_t *u = json_array_get(units, i);
                        if (json_get_bool(u, "will_stop", false))
                                printf(" %s", json_get_str(u, "unit") ?: "?");
                }
                if (n_stop == 0 && json_object_get(result, "online_lock_ms")) {
                        _cleanup_free_ char *bound = fmt_field(result, "online_lock_ms");
                        printf(" none: the plan is online (unless it holds the write lock over %s ms, timed on a "
                               "copy first)\n", bound ?: "?");
                } else
                        printf("%s\n", n_stop == 0 ? " none (none is running)" : "");
        }
        if (json_is_object(backup)) {
                _cleanup_free_ char *keep = fmt_field(backup, "keep");
                printf("Backup first, into %s (keeping %s)\n", json_get_str(backup, "dir") ?: "?", keep ?: "?");
        }
        for (size_t i = 0; i < json_array_size(steps); i++) {
                json_t *st = json_array_get(steps, i);
                const char *sql = json_get_str(st, "sql");
                if (!sql)
                        continue;
                printf("\n-- %s\n%s%s", json_get_str(st, "file") ?: "?", sql,
                       *sql && sql[strlen(sql) - 1] == '\n' ? "" : "\n");
        }
}

/* The outcome of up or down in one sentence: "Applied 3 migrations: 2 → 5 in 12 ms". */
int render_job(json_t *result) {
        const char *status = json_get_str(result, "status") ?: "";
        size_t n = json_get_array_size(result, streq(status, "reverted") ? "reverted" : "applied");
        char a[24], b[64];
        int64_t ms;

        if (json_get_bool(result, "dry_run", false))
                return render_plan(result, true);
        if (render_seed_job(result))
                return 0;
        if (json_get_bool(result, "rehearsal", false))
                printf("Rehearsal on a copy (the live database was not touched): ");
        if (streq(status, "backed_up") || streq(status, "restored")) {
                json_t *bk = json_object_get(result, "backup");
                char size[32];
                int64_t bytes;
                if (streq(status, "restored")) {
                        printf("Restored %s: ", json_get_str(result, "restored_from") ?: "?");
                        print_span(stdout, result);
                        printf("\nThe database as it was before is in ");
                } else
                        printf("Backup ");
                printf("%s (%s)\n", json_get_str(bk, "path") ?: "?",
                       json_get_int(bk, "size", &bytes) ? fmt_size(bytes, size) : "?");
                return 0;
        }
        if (streq(status, "current")) {
                json_t *by = json_object_get(result, "applied_by");
                printf("Already current at version %s", fmt_version(result, "to_version", a));
                if (json_get_str(by, "host"))
                        printf(" (applied by host %s at %s)", json_get_str(by, "host"),
                               json_get_str(by, "at") ?: "?");
                printf("\n");
                return 0;
        }
        if (streq(status, "applied"))
                printf("%sApplied %s%s: ", color_on(stdout, COLOR_GREEN), fmt_count((int64_t) n, "migration", b),
                       color_off(stdout));
        else if (streq(status, "reverted"))
                printf("%sReverted %s%s: ", color_on(stdout, COLOR_GREEN), fmt_count((int64_t) n, "migration", b),
                       color_off(stdout));
        else
                printf("Finished (%s): ", *status ? status : "unknown status");
        print_span(stdout, result);
        if (json_get_int(result, "duration_ms", &ms))
                printf(" in %" PRId64 " ms", ms);
        if (json_get_int(result, "downtime_ms", &ms))
                printf(" (services down %" PRId64 " ms)", ms);
        if (json_get_str(result, "host"))
                printf(" on host %s", json_get_str(result, "host"));
        putchar('\n');
        if (json_get_int(result, "size_change", &ms))
                printf("Size change: %+" PRId64 " bytes\n", ms);
        if (json_get_str(json_object_get(result, "backup"), "path"))
                printf("Backup taken first: %s\n", json_get_str(json_object_get(result, "backup"), "path"));
        render_seeds(result);
        return 0;
}

/* migratectl backups: newest first. */
int render_backups(json_t *result) {
        _cleanup_(table_freep) table *t = table_new(4);
        _cleanup_free_ char *keep = fmt_field(result, "keep");
        json_t *list = json_get_array(result, "backups");
        int r;

        if (!t)
                return -ENOMEM;
        printf("Backups in %s (keeping %s):\n", json_get_str(result, "dir") ?: "?", keep ?: "?");
        if (json_array_size(list) == 0) {
                printf("  none yet\n");
                return 0;
        }
        r = table_add(t, "TIME") ?: table_add(t, "VERSION") ?: table_add(t, "SIZE") ?: table_add(t, "FILE");
        for (size_t i = 0; r >= 0 && i < json_array_size(list); i++) {
                json_t *b = json_array_get(list, i);
                char size[32];
                int64_t bytes;
                r = table_add(t, json_get_str(b, "time") ?: "?") ?: table_add_version(t, b) ?:
                    table_add(t, json_get_int(b, "size", &bytes) ? fmt_size(bytes, size) : "?") ?:
                    table_add(t, json_get_str(b, "file") ?: "?");
        }
        if (r < 0)
                return r;
        table_print(t, stdout, "  ");
        return 0;
}

/* One attempt's error column: "message (file:line)". */
static int table_add_attempt_error(table *t, json_t *a) {
        const char *error = json_get_str(a, "error"), *file = json_get_str(a, "error_file");
        int64_t line;

        if (!error)
                return table_add(t, "");
        if (file && strstr(error, file)) /* the message names the place already */
                return table_add(t, error);
        if (file && json_get_int(a, "error_line", &line))
                return table_addf(t, "%s (%s:%" PRId64 ")", error, file, line);
        if (file)
                return table_addf(t, "%s (%s)", error, file);
        return table_add(t, error);
}

int render_history(json_t *result) {
        _cleanup_(table_freep) table *t = table_new(7);
        json_t *attempts = json_get_array(result, "attempts");
        int r;

        if (!t)
                return -ENOMEM;
        if (json_array_size(attempts) == 0) {
                printf("No migration attempts recorded.\n");
                return 0;
        }
        r = table_add(t, "ID") ?: table_add(t, "STARTED") ?: table_add(t, "DIRECTION") ?: table_add(t, "STATUS") ?:
            table_add(t, "CHANGE") ?: table_add(t, "BY") ?: table_add(t, "ERROR");
        for (size_t i = 0; r >= 0 && i < json_array_size(attempts); i++) {
                json_t *a = json_array_get(attempts, i);
                _cleanup_free_ char *id = fmt_field(a, "id"), *by = fmt_field(a, "requested_by");
                char x[24], y[24];

                r = table_add(t, id) ?: table_add(t, json_get_str(a, "started_at")) ?:
                    table_add(t, json_get_str(a, "direction")) ?: table_add(t, json_get_str(a, "status")) ?:
                    table_addf(t, "%s %s %s", fmt_version(a, "from_version", x), glyph_arrow(),
                               fmt_version(a, "to_version", y)) ?:
                    table_add(t, by) ?: table_add_attempt_error(t, a);
        }
        if (r < 0)
                return r;
        table_print(t, stdout, NULL);
        return 0;
}

int render_verify(json_t *result) {
        json_t *problems = json_get_array(result, "problems");
        char b[64];
        int64_t checked = 0;

        json_get_int(result, "checked", &checked);
        if (json_get_bool(result, "ok", false) && json_array_size(problems) == 0) {
                printf("OK: %s verified\n", fmt_count(checked, "applied migration", b));
                return 0;
        }
        printf("FAILED: %s checked\n", fmt_count(checked, "applied migration", b));
        render_problems(problems);
        return 0;
}

/* "+ column t.c" for what only the live database has, "-" for what only the migrations make,
 * "~" for a change, with its detail. */
int render_diff(json_t *result) {
        json_t *differences = json_get_array(result, "differences"), *d;
        char b[64];
        int64_t replayed = 0;
        size_t i;

        json_get_int(result, "replayed", &replayed);
        if (json_array_size(differences) == 0) {
                printf("No drift: the schema matches its %s, replayed.\n", fmt_count(replayed, "applied migration", b));
                return 0;
        }
        printf("Drift from the %s, replayed (+ only in the database, - missing from it, ~ changed):\n",
               fmt_count(replayed, "applied migration", b));
        json_array_foreach(differences, i, d) {
                const char *kind = json_get_str(d, "kind") ?: "", *detail = json_get_str(d, "detail") ?: "";

                printf("%s %s%s%s\n", streq(kind, "added") ? "+" : streq(kind, "removed") ? "-" : "~",
                       json_get_str(d, "object") ?: "?", *detail ? ": " : "", detail);
        }
        return 0;
}

int render_wait(json_t *result) {
        char buf[24];

        if (json_get_bool(result, "schema_current", true))
                printf("The schema is current (version %s).\n", fmt_version(result, "current_version", buf));
        else
                printf("Go ahead on version %s: %s.\n", fmt_version(result, "current_version", buf),
                       json_get_str(result, "reason") ?: "the last migration failed");
        return 0;
}

int render_marked(json_t *result) {
        const char *status = json_get_str(result, "status") ?: "";
        char buf[24];

        if (streq(status, "baselined"))
                printf("Baseline recorded: migrations up to %s marked applied (nothing was run).\n",
                       fmt_version(result, "to_version", buf));
        else
                printf("%s marked %s (nothing was run).\n", json_get_str(result, "name") ?: "?",
                       streq(status, "marked_applied") ? "applied" : "rolled back");
        return 0;
}

int render_repaired(json_t *result) {
        print_migration(stdout, result);
        printf(": the edited file is accepted; its checksum %.*s%s replaces %.*s%s (recorded in history).\n",
               SHORT_CHECKSUM, json_get_str(result, "checksum") ?: "?", glyph_ellipsis(), SHORT_CHECKSUM,
               json_get_str(result, "previous_checksum") ?: "?", glyph_ellipsis());
        return 0;
}

int render_cancel(json_t *result) {
        int64_t id = 0;
        const char *state = json_get_str(result, "state");

        json_get_int(result, "job_id", &id);
        if (state && streq(state, "removed"))
                printf("Job %" PRId64 " removed from the queue.\n", id);
        else
                printf("Job %" PRId64 " is being cancelled: its transaction is rolled back and the units are "
                       "started again.\n", id);
        return 0;
}
