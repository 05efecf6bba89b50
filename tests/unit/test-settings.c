/* SPDX-License-Identifier: MIT */
/* Unit tests for daemon/settings.c: the settings table is consistent, the man pages name every key
 * (migrated.conf(5), under its section) and every flag (migrated(8)), every key is accepted in the
 * file and every flag on the command line, and a flag wins over the file. The man page sources
 * are read from the source tree (or the directory given as the argument). */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "macro.h"
#include "settings.h"

static const char *man_dir;

static char *read_man(const char *name) {
        char path[4096], *text = NULL;
        size_t size = 0;
        FILE *f;

        snprintf(path, sizeof(path), "%s/%s", man_dir, name);
        f = fopen(path, "re");
        if (!f)
                fail_msg("cannot open %s", path);
        assert_true(getdelim(&text, &size, '\0', f) > 0);
        fclose(f);
        return text;
}

/* "*busy\_timeout\_ms*": how scdoc source writes a key in bold. */
static void bold_escaped(const char *word, char *buf, size_t size) {
        size_t k = 0;

        buf[k++] = '*';
        for (const char *p = word; *p && k + 3 < size; p++) {
                if (*p == '_')
                        buf[k++] = '\\';
                buf[k++] = *p;
        }
        buf[k++] = '*';
        buf[k] = '\0';
}

static void test_table_is_consistent(void **state) {
        for (size_t i = 0; i < settings_n; i++) {
                const setting *a = &settings_table[i];
                assert_non_null(a->section);
                assert_non_null(a->key);
                /* a flag has a help line, and only a flag has one */
                assert_int_equal(!!a->flag, !!a->help);
                if (a->type == SETTING_UINT)
                        assert_true(a->min <= a->max);
                for (size_t j = 0; j < i; j++) {
                        const setting *b = &settings_table[j];
                        if (streq(a->section, b->section) && streq(a->key, b->key))
                                fail_msg("[%s] %s twice", a->section, a->key);
                        if (a->flag && b->flag && streq(a->flag, b->flag))
                                fail_msg("--%s twice", a->flag);
                        if (a->short_flag && a->short_flag == b->short_flag)
                                fail_msg("-%c twice", a->short_flag);
                }
                /* a section's rows stay together: the list of known sections is built from that */
                for (size_t j = 0; i > 0 && j + 1 < i; j++)
                        if (streq(settings_table[j].section, a->section) &&
                            !streq(settings_table[i - 1].section, a->section))
                                fail_msg("[%s] %s is not next to its section's other rows", a->section, a->key);
        }
}

static void test_man_page_names_every_key(void **state) {
        _cleanup_free_ char *man = read_man("migrated.conf.5.scd");

        for (size_t i = 0; i < settings_n; i++) {
                const setting *st = &settings_table[i];
                char header[64], key[128];
                const char *start, *end;
                snprintf(header, sizeof(header), "\n# [%s]\n", st->section);
                start = strstr(man, header);
                if (!start)
                        fail_msg("migrated.conf.5.scd has no section %s", header + 1);
                start += strlen(header);
                end = strstr(start, "\n# ") ?: start + strlen(start);
                bold_escaped(st->key, key, sizeof(key));
                if (!memmem(start, (size_t) (end - start), key, strlen(key)))
                        fail_msg("migrated.conf.5.scd does not name %s under [%s]", key, st->section);
        }
}

static void test_man_page_names_every_flag(void **state) {
        _cleanup_free_ char *man = read_man("migrated.8.scd");

        for (size_t i = 0; i < settings_n; i++) {
                const setting *st = &settings_table[i];
                char flag[128];
                if (!st->flag)
                        continue;
                if (st->short_flag)
                        snprintf(flag, sizeof(flag), "*-%c*, *--%s*", st->short_flag, st->flag);
                else
                        snprintf(flag, sizeof(flag), "*--%s*", st->flag);
                if (!strstr(man, flag))
                        fail_msg("migrated.8.scd does not name %s", flag);
        }
}

/* A valid value for each type, that is not the default. */
static const char *sample(const setting *st) {
        static char buf[32];

        if (streq(st->key, "backend"))
                return "postgresql"; /* a name, not a path; connection is then allowed */
        switch (st->type) {
        case SETTING_STRING: return "/tmp/test-settings-sample";
        case SETTING_UINT: snprintf(buf, sizeof(buf), "%u", st->max); return buf;
        case SETTING_BOOL: return "true";
        case SETTING_MODE: return "0600";
        case SETTING_USER:
        case SETTING_GROUP: return "0";
        case SETTING_UNITS: return "a.service b.service";
        case SETTING_MANAGER: return "user";
        case SETTING_FORMAT: return "prisma";
        case SETTING_INTEGRITY: return "full";
        case SETTING_LOOPBACK: return "127.0.0.1:9464";
        case SETTING_ONLINE: return "never";
        }
        return NULL;
}

static char *write_file(const char *text) {
        char *path = strdup("/tmp/test-settings-XXXXXX");
        int fd;

        assert_non_null(path);
        fd = mkstemp(path);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, text, strlen(text)), (ssize_t) strlen(text));
        close(fd);
        return path;
}

/* Every key of the table, each with a valid value, in one file: all accepted, each field set. */
static void test_every_key_in_the_file(void **state) {
        char text[8192], *p;
        size_t k = 0;
        config c = {};
        _cleanup_free_ char *msg = NULL;

        for (size_t i = 0; i < settings_n; i++) {
                const setting *st = &settings_table[i];
                if (i == 0 || !streq(settings_table[i - 1].section, st->section))
                        k += (size_t) snprintf(text + k, sizeof(text) - k, "[%s]\n", st->section);
                k += (size_t) snprintf(text + k, sizeof(text) - k, "%s = %s\n", st->key, sample(st));
        }
        p = write_file(text);
        assert_int_equal(config_parse_file(p, &c, &msg), 0);
        assert_string_equal(c.database, "/tmp/test-settings-sample");
        assert_int_equal(c.backup_keep, 10000);
        assert_int_equal(c.n_units, 2);
        assert_true(c.user_manager);
        assert_int_equal(c.database_mode, 0600);
        unlink(p);
        free(p);
        config_clear(&c);
}

/* A bad value names its section and key and says what it must be; an unknown key is refused. */
static void test_bad_values_in_the_file(void **state) {
        static const struct { const char *text, *message; } cases[] = {
                { "[backup]\nkeep = 0\n", ":2: [backup] keep: must be 1..10000" },
                { "[units]\nstop_timeout = x\n", ":2: [units] stop_timeout: must be seconds, 1..86400" },
                { "[database]\npath =\n", ":2: [database] path: must not be empty" },
                { "[metrics]\nlisten = 0.0.0.0:9464\n", ":2: [metrics] listen: must be 127.0.0.1:PORT, [::1]:PORT or localhost:PORT" },
                { "[daemon]\nsockett_mode = 1\n", ":2: [daemon] sockett_mode: unknown key" },
                { "[backups]\n", ":1: [backups]: unknown section (known: database, migrations, daemon, units, backup, metrics, seeds, dev, postgresql, pm2.NAME, exec.NAME, container.NAME, compose.PROJECT)" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *msg = NULL, *p = write_file(cases[i].text);
                config c = {};
                assert_int_equal(config_parse_file(p, &c, &msg), -EINVAL);
                if (!strstr(msg, cases[i].message))
                        fail_msg("'%s' for '%s', expected '%s'", msg, cases[i].text, cases[i].message);
                unlink(p);
                config_clear(&c);
        }
}

static int load(char **argv, config *c) {
        int argc = 0;

        while (argv[argc])
                argc++;
        return config_load(argc, argv, c);
}

/* Every flag of the table with a valid value; and a flag wins over the file. */
static void test_flags(void **state) {
        _cleanup_free_ char *p = write_file("[backup]\nkeep = 3\n[database]\nbusy_timeout_ms = 100\n");
        char *argv[2 * 64 + 8] = { (char *) "migrated" };
        size_t n = 1;
        config c;

        for (size_t i = 0; i < settings_n; i++) {
                const setting *st = &settings_table[i];
                char *arg;
                if (!st->flag || streq(st->key, "keep"))
                        continue;
                assert_true(asprintf(&arg, "--%s", st->flag) > 0);
                argv[n++] = arg;
                if (st->type != SETTING_BOOL)
                        argv[n++] = strdup(sample(st));
        }
        argv[n++] = strdup("--config");
        argv[n++] = strdup(p);
        argv[n++] = strdup("--keep");
        argv[n++] = strdup("5");
        assert_int_equal(load(argv, &c), CONFIG_RUN);
        assert_int_equal(c.backup_keep, 5);           /* the flag, not the file */
        assert_int_equal(c.busy_timeout_ms, 3600000); /* the flag (its max), not the file */
        assert_true(c.auto_up);
        assert_int_equal(c.n_units, 2);
        assert_int_equal(c.integrity, 2);
        assert_int_equal(c.format, 1);
        assert_string_equal(c.backup_dir, "/tmp/test-settings-sample");
        config_clear(&c);

        /* without the flag, the file counts */
        char *only_file[] = { (char *) "migrated", (char *) "-c", p, (char *) "-d", (char *) "/tmp/db",
                              (char *) "-m", (char *) "/tmp", (char *) "--state-dir", (char *) "/tmp/s", NULL };
        assert_int_equal(load(only_file, &c), CONFIG_RUN);
        assert_int_equal(c.backup_keep, 3);
        assert_int_equal(c.busy_timeout_ms, 100);
        /* and the rest are the rows' defaults */
        assert_int_equal(c.max_queue, 64);
        assert_int_equal(c.database_mode, 0640);
        assert_int_equal(c.integrity, 1);
        assert_int_equal(c.format, -1);
        assert_false(c.user_manager);
        assert_int_equal(c.stop_timeout_s, 30);
        assert_int_equal(c.start_timeout_s, 90);
        assert_int_equal(c.holder_timeout_s, 10);
        assert_int_equal(c.idle_timeout_s, 300);
        assert_int_equal(c.request_timeout_s, 30);
        assert_int_equal(c.max_connections, 4096);
        assert_int_equal(c.max_connections_per_uid, 2048);
        assert_int_equal(c.admin_gid, (gid_t) -1);
        assert_int_equal(c.database_uid, (uid_t) -1);
        assert_string_equal(c.socket_path, DEFAULT_SOCKET);
        assert_string_equal(c.backup_dir, "/tmp/db-backups");
        config_clear(&c);

        char *bad[] = { (char *) "migrated", (char *) "--keep", (char *) "0", NULL };
        assert_int_equal(load(bad, &c), CONFIG_EXIT_USAGE);
        config_clear(&c);
        unlink(p);
        for (size_t i = 1; i < n; i++)
                free(argv[i]);
}

int main(int argc, char *argv[]) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_table_is_consistent),
                cmocka_unit_test(test_man_page_names_every_key),
                cmocka_unit_test(test_man_page_names_every_flag),
                cmocka_unit_test(test_every_key_in_the_file),
                cmocka_unit_test(test_bad_values_in_the_file),
                cmocka_unit_test(test_flags),
        };

        man_dir = argc > 1 ? argv[1] : MAN_SOURCE_DIR;
        return cmocka_run_group_tests(tests, NULL, NULL);
}
