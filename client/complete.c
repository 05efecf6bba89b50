/* SPDX-License-Identifier: MIT */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "complete.h"
#include "output.h"
#include "verbs.h"

void complete_print_verbs(void) {
        for (const verb *v = verbs; v->run; v++)
                if (v->help) /* hidden verbs have none */
                        printf("%s\n", verb_name(v));
}

/* "0003_add_users" of 0003_add_users.up.sql, "20240101_init" of 20240101_init/migration.sql;
 * the version when the file is unknown (an applied migration whose file is gone). */
static void print_stem(json_t *m) {
        const char *file = json_get_str(m, "file");
        int64_t version;

        if (file)
                printf("%.*s\n", (int) strcspn(file, "./"), file);
        else if (json_get_int(m, "version", &version))
                printf("%" PRId64 "\n", version);
}

int complete_print_migrations(json_t *status) {
        static const char *const lists[] = { "applied", "pending" };
        json_t *m;
        size_t i;

        for (size_t l = 0; l < ELEMENTSOF(lists); l++)
                json_array_foreach(json_get_array(status, lists[l]), i, m)
                        print_stem(m);
        return 0;
}

int complete_print_backups(json_t *backups) {
        json_t *b;
        size_t i;

        json_array_foreach(json_get_array(backups, "backups"), i, b)
                if (json_get_str(b, "file"))
                        printf("%s\n", json_get_str(b, "file"));
        return 0;
}
