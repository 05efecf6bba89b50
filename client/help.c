/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "config.h"
#include "exit-codes.h"
#include "help.h"
#include "macro.h"

#define HELP_WIDTH 80
#define OPTION_COLUMN 24 /* "  --allow-out-of-order  " */

/* A verb's page: what it does beyond its one line, its own options (pairs of "--flag ARG" and
 * what it does), and one example. The options every verb takes are added by help_verb. */
typedef struct verb_doc {
        const char *name;
        const char *about;
        const char *const *options;
        const char *example;
} verb_doc;

#define OPTIONS(...) ((const char *const[]){ __VA_ARGS__, NULL })

static const verb_doc docs[] = {
        { "status",
          "Shows the database's schema version, the newest migration in the directory, the applied and "
          "pending migrations, and any problem (an edited applied file, a missing file, a failed migration).",
          OPTIONS("--check", "exit 4 when migrations are pending, 5 when an applied file was edited, 1 for "
                  "another problem (a missing file or directory), 0 when the schema is current",
                  "--drift", "also replay the applied migrations and say whether the live schema drifted "
                  "(with --check: exit 9 on drift)",
                  "--all", "list every applied migration, not only the last 10 (--json always has every one)"),
          "migratectl status --check || echo 'not current'" },
        { "up",
          "Applies the pending migrations in one transaction: all of them or none. The dependent units are "
          "stopped first and started again afterwards, and a backup is taken before anything changes.",
          OPTIONS("--to V", "stop at version V instead of the newest migration",
                  "--dry-run", "show the plan and check the files; change nothing",
                  "--rehearse", "apply the migrations to a copy of the database and throw the copy away: "
                  "proves they run, without downtime (excludes --dry-run)",
                  "--per-migration", "commit each migration in its own transaction (a failure keeps the "
                  "ones before it)",
                  "--allow-out-of-order", "also apply a pending migration older than the current version "
                  "(merged from another branch) instead of refusing",
                  "--seed", "then apply the seed files not applied yet (see seed)"),
          "migratectl up --rehearse && migratectl up" },
        { "down",
          "Reverts applied migrations with their .down.sql files, newest first, in one transaction. On a "
          "terminal it shows what will be reverted and asks first.",
          OPTIONS("--steps N", "revert the last N migrations (default: 1)",
                  "--to V", "revert every migration newer than version V (0: all of them)",
                  "--dry-run", "show the plan; change nothing",
                  "--yes", "do not ask for confirmation on a terminal"),
          "migratectl down --to 3 --yes" },
        { "redo",
          "Reverts the last applied migration and applies it again (down, then up to the same version): "
          "for development, after editing a migration that is not yet deployed.",
          OPTIONS("--yes", "do not ask for confirmation on a terminal"),
          "migratectl redo --yes" },
        { "plan",
          "Shows which migrations up or down would run, in order, and the versions before and after. "
          "Changes nothing and needs no privilege.",
          OPTIONS("up|down", "the direction (default: up)",
                  "--to V", "the target version",
                  "--steps N", "down only: how many migrations to revert"),
          "migratectl plan down --steps 2" },
        { "history",
          "Shows every recorded attempt (applied, rolled back, failed, marked), newest first, with who "
          "asked, how long it took and the error of a failed one.",
          OPTIONS("--limit N", "show the newest N attempts (default: 50, at least 1)"),
          "migratectl history --limit 10" },
        { "verify",
          "Checks every applied migration against its file (checksums) and the directory for problems. "
          "Exit 5 when an applied file was edited, 1 for any other problem.",
          OPTIONS(NULL), "migratectl verify" },
        { "diff",
          "Replays the applied migrations' up scripts on a scratch database and compares the result "
          "with the live schema, structurally: tables, columns (type, default, nullability, primary key), "
          "indexes, triggers, views, foreign keys and CHECK constraints. Prints + for what only the database "
          "has, - for what it lacks, ~ for a change. Exit 9 on drift. On PostgreSQL the replay runs in a "
          "temporary database (the role needs CREATEDB).",
          OPTIONS(NULL), "migratectl diff --json" },
        { "lint",
          "Checks a migrations directory for destructive changes, without a daemon or a database (for CI): "
          "data loss (drop-table, drop-column, rebuild-drops-column, rebuild-cascade) is an error, a "
          "migration without a down script a warning. A file accepts a rule with \"-- migrated: accept RULE\". "
          "Exit 10 on an error not accepted.",
          OPTIONS("DIR", "the migrations directory (default: migrations)",
                  "--postgres", "PostgreSQL's dialect and rules (not-null-without-default, index-not-concurrent)"),
          "migratectl lint migrations/ --json" },
        { "version",
          "Prints the database's schema version and nothing else (\"0\" before the first migration): for "
          "scripts and gates. The program's own version is migratectl --version.",
          OPTIONS(NULL), "test \"$(migratectl version)\" -ge 12" },
        { "wait",
          "Returns once the schema is current, or once a failed migration was rolled back and the old "
          "schema is in place again. Meant for ExecStartPre= of the services using the database; "
          "connecting is retried while the daemon starts.",
          OPTIONS("--timeout S", "give up after S seconds (default: 90) with exit 7",
                  "--strict", "return only when the schema is current (exit 1 after a failed migration)"),
          "ExecStartPre=migratectl wait --timeout 300" },
        { "cancel",
          "Removes a queued job, or cancels the running one: its transaction is rolled back and the "
          "dependent units are started again.",
          OPTIONS("JOB", "the job's number (default: the running job)"),
          "migratectl cancel 12" },
        { "backup",
          "Takes a consistent backup now, while the database stays online.",
          OPTIONS(NULL), "migratectl backup" },
        { "backups",
          "Lists the backups, newest first, with the schema version and size of each (--json: sizes in "
          "bytes).",
          OPTIONS(NULL), "migratectl backups" },
        { "restore",
          "Replaces the database with a backup, with the dependent units stopped meanwhile. The current "
          "database is backed up first. On a terminal it asks first.",
          OPTIONS("BACKUP", "the backup's file name, as backups lists it (default: the newest)",
                  "--yes", "do not ask for confirmation on a terminal"),
          "migratectl restore --yes" },
        { "lock-check",
          "Shows who holds the database (pids, commands, units) and what to do about it. Exit 6 when a "
          "migration could not run now.",
          OPTIONS("--database PATH", "inspect PATH directly, without the daemon (when the daemon is "
                  "what is down)"),
          "migratectl lock-check --database /var/lib/app/app.db" },
        { "mark",
          "Records a migration as applied or rolled back without running it, like prisma migrate "
          "resolve: after fixing a database by hand.",
          OPTIONS("applied|rolled-back", "the state to record",
                  "MIGRATION", "the version (3), the file stem new wrote (0003_add_users) or, for Prisma, "
                  "the directory name"),
          "migratectl mark applied 0003_add_users" },
        { "baseline",
          "Records the migrations up to VERSION as applied on a database that has its schema but no "
          "history (one created before migrated was used). Nothing is run.",
          OPTIONS("VERSION", "the newest migration the database already has"),
          "migratectl baseline 7" },
        { "repair",
          "Accepts the edited file of an applied migration on purpose: its checksum replaces the recorded "
          "one, and the history records both checksums and who did it. For an edit that changes nothing "
          "the database needs (a comment, a fix already made by hand); otherwise write a new migration.",
          OPTIONS("MIGRATION", "the version (3), the file stem (0003_add_users), the name or the file"),
          "migratectl repair 0003_add_users" },
        { "seed",
          "Applies the seed files (SQL, in the seeds directory beside the migrations, in name order) that "
          "were not applied yet, each in its own transaction; a busy database is retried. The dependent "
          "units keep running. An applied seed whose file changed is refused unless it says "
          "'-- migrated: seed always'.",
          OPTIONS(NULL), "migratectl up && migratectl seed" },
        { "reset",
          "Development only, when the configuration allows it ([dev] allow_reset = yes): takes a backup, "
          "drops every table, view and trigger, applies every migration and the seeds again. On a "
          "terminal it asks first; without one it needs --yes.",
          OPTIONS("--yes", "do not ask (scripts)"),
          "migratectl reset --yes" },
        { "new",
          "Creates the next NNNN_NAME.up.sql and NNNN_NAME.down.sql in the migrations directory. "
          "Needs no daemon.",
          OPTIONS("NAME", "the migration's name: letters, digits and _",
                  "--migrations DIR", "the directory (default: $MIGRATIONS_DIR, else the configured one)"),
          "migratectl new add_users" },
        { "schema",
          "Prints the current schema as SQL, stable in order and formatting, for a schema.sql kept in git. "
          "SQLite: the stored CREATE statements, tables by name with their indexes and triggers, then the "
          "views, white space normalised. PostgreSQL: pg_dump --schema-only without its unstable lines. "
          "migrated's own tables are left out; the format's history table is kept.",
          OPTIONS("--output FILE", "write the schema to FILE atomically instead of printing it",
                  "--with-history", "append the history table's rows (the applied versions) as INSERTs"),
          "migratectl schema --output db/schema.sql" },
        { "help",
          "Shows the list of commands, or a command's options and an example.",
          OPTIONS("COMMAND", "the command to explain"),
          "migratectl help up" },
};

/* The options every verb takes; help_verb lists them after the verb's own. */
static const char *const shared_options[] = {
        "--json", "print one JSON document on stdout instead of text",
        "--socket PATH", "the daemon's socket (default: $MIGRATED_SOCKET, else " DEFAULT_SOCKET ")",
        "--instance NAME", "the socket of migrated@NAME.service (excludes --socket)",
        "--color WHEN", "auto (default: on a terminal, unless $NO_COLOR is set), always or never",
        "-h, --help", "show this help",
        NULL,
};

/* Prints text from column indent (the first line's start is already there), breaking at spaces
 * so that no line passes HELP_WIDTH. */
static void print_wrapped(const char *text, size_t indent) {
        size_t column = indent;

        while (*text) {
                size_t word = strcspn(text, " ");
                if (column > indent && column + 1 + word > HELP_WIDTH) {
                        printf("\n%*s", (int) indent, "");
                        column = indent;
                } else if (column > indent) {
                        putchar(' ');
                        column++;
                }
                fwrite(text, 1, word, stdout);
                column += word;
                text += word;
                text += strspn(text, " ");
        }
        putchar('\n');
}

/* "  term        text", the text wrapped in its column; a long term puts the text on the next line. */
static void print_item(const char *term, const char *text, size_t column) {
        printf("  %s", term);
        if (2 + strlen(term) + 2 > column)
                printf("\n%*s", (int) column, "");
        else
                printf("%*s", (int) (column - 2 - strlen(term)), "");
        print_wrapped(text, column);
}

static void print_options(const char *const *pairs) {
        for (; pairs && pairs[0]; pairs += 2)
                print_item(pairs[0], pairs[1], OPTION_COLUMN);
}

int help_overview(void) {
        size_t column = 0;

        for (const verb *v = verbs; v->run; v++)
                if (v->help && strlen(verb_name(v)) > column)
                        column = strlen(verb_name(v));
        column += 4;

        printf("migratectl [OPTIONS] COMMAND [ARGS]\n\n"
               "Client of migrated, the daemon that applies schema migrations to one database.\n\n"
               "Commands:\n");
        for (const verb *v = verbs; v->run; v++)
                if (v->help)
                        print_item(verb_name(v), v->help, column);
        printf("\nOptions (before or after the command):\n");
        print_options(shared_options);
        print_item("--version", "show migratectl's version (the schema's: migratectl version)", OPTION_COLUMN);
        printf("\nWithout a daemon (before the command; runs migrated --one-shot for it):\n");
        print_item("--database PATH|URL", "the database: a SQLite file, or a PostgreSQL URL or conninfo", OPTION_COLUMN);
        print_item("--migrations DIR", "the migrations directory", OPTION_COLUMN);
        print_item("--config FILE", "a migrated.conf for the rest (backups, format, dependents)", OPTION_COLUMN);
        printf("\nExit codes:\n");
        for (int c = 0; c <= EXIT_CODE_MAX; c++) {
                char code[8];
                snprintf(code, sizeof(code), "%d", c);
                print_item(code, exit_code_meaning(c), 6);
        }
        printf("\nRun 'migratectl help COMMAND' for a command's options and an example.\n");
        return EXIT_OK;
}

static const verb_doc *doc_find(const char *name) {
        for (size_t i = 0; i < ELEMENTSOF(docs); i++)
                if (streq(docs[i].name, name))
                        return &docs[i];
        return NULL;
}

int help_verb(const verb *v) {
        const verb_doc *d = doc_find(verb_name(v));

        printf("Usage: migratectl %s%s", verb_name(v), *v->usage ? " " : "");
        print_wrapped(v->usage, strlen("Usage: migratectl  ") + strlen(verb_name(v)));
        putchar('\n');
        print_wrapped(v->help ?: "Names for the shell completion, one a line (internal).", 0);
        if (d) {
                putchar('\n');
                print_wrapped(d->about, 0);
        }
        printf("\nOptions:\n");
        if (d)
                print_options(d->options);
        print_options(shared_options);
        if (d)
                printf("\nExample:\n  %s\n", d->example);
        return EXIT_OK;
}

int verb_help(const verb *v, int argc, char **argv) {
        static const struct option options[] = { COMMON_OPTIONS, {} };
        const char *names[64];
        const verb *target;
        request_args a = {};
        size_t n = 0;
        int r;

        r = parse_verb_options(v, argc, argv, options, &a);
        if (r != CONTINUE)
                return r;
        if (optind >= argc)
                return help_overview();
        if (optind + 1 < argc)
                return usage_error(v, "unexpected argument '%s'", argv[optind + 1]);
        target = verb_find(argv[optind]);
        if (target)
                return help_verb(target);
        for (const verb *w = verbs; w->run && n < ELEMENTSOF(names); w++)
                names[n++] = verb_name(w);
        if (closest_word(argv[optind], names, n))
                return usage_error(NULL, "unknown command '%s'; did you mean '%s'?", argv[optind],
                                   closest_word(argv[optind], names, n));
        return usage_error(NULL, "unknown command '%s'", argv[optind]);
}
