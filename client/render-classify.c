/* SPDX-License-Identifier: MIT */
/* A plan's classification (online or breaking, per statement, with the deciding rule) and its
 * lint findings, as people read them after the plan's table. */
#include <stdio.h>
#include <string.h>

#include "output.h"
#include "render.h"

/* The first line of a statement, without leading white space, cut to fit a line. */
static void print_statement(const char *sql) {
        size_t n;

        if (!sql)
                return;
        for (;;) { /* white space and leading comment lines */
                sql += strspn(sql, " \t\r\n");
                if (strncmp(sql, "--", 2) != 0)
                        break;
                sql += strcspn(sql, "\n");
        }
        n = strcspn(sql, "\n");
        printf("%.*s%s", (int) (n > 60 ? 60 : n), sql, n > 60 || sql[n] ? " …" : "");
}

int render_findings(json_t *findings) {
        for (size_t i = 0; i < json_array_size(findings); i++) {
                json_t *f = json_array_get(findings, i);
                printf("%s  %-7s %-22s %s: %s%s\n", i == 0 ? "Lint:\n" : "", json_get_str(f, "severity") ?: "?",
                       json_get_str(f, "rule") ?: "?", json_get_str(f, "file") ?: "?", json_get_str(f, "message") ?: "",
                       json_get_bool(f, "accepted", false) ? " (accepted in the file)" : "");
        }
        return 0;
}

void render_classification(json_t *result) {
        json_t *steps = json_get_array(result, "steps");
        const char *class = json_get_str(result, "class");

        if (!class)
                return;
        printf("Class: %s\n", streq(class, "online") ? "online (the dependents keep running)"
                                                     : "breaking (the dependents are stopped, then started again)");
        for (size_t i = 0; i < json_array_size(steps); i++) {
                json_t *s = json_array_get(steps, i), *stmts = json_get_array(s, "statements");
                printf("  %s: %s by rule %s: %s", json_get_str(s, "file") ?: "?", json_get_str(s, "class") ?: "?",
                       json_get_str(s, "rule") ?: "?", json_get_str(s, "reason") ?: "");
                if (json_get_str(s, "override"))
                        printf(" [overridden by -- migrated: %s; detected %s]", json_get_str(s, "override"),
                               json_get_str(s, "detected") ?: "?");
                putchar('\n');
                for (size_t k = 0; k < json_array_size(stmts); k++) {
                        json_t *st = json_array_get(stmts, k);
                        printf("    %-8s %-20s ", json_get_str(st, "detected") ?: json_get_str(st, "class") ?: "?",
                               json_get_str(st, "rule") ?: "?");
                        print_statement(json_get_str(st, "sql"));
                        putchar('\n');
                }
        }
        render_findings(json_get_array(result, "findings"));
}
