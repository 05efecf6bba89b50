/* SPDX-License-Identifier: MIT */
/* Unit tests for daemon/statedir.c, daemon/statefile.c and daemon/gate.c: the state directory is
 * refused when someone else could plant or swap a file in it, documents are written without
 * following symlinks and validated when read, the path escaping matches systemd-escape --path,
 * and the wait gate opens exactly where its hold and failed plan say. Real files in a temporary
 * directory; the ownership checks need root (skipped otherwise). */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gate.h"
#include "macro.h"
#include "statedir.h"
#include "statefile.h"

static char *tmp_root(void) {
        char *t = strdup("/tmp/test-statedir-XXXXXX");

        assert_non_null(t);
        assert_non_null(mkdtemp(t));
        return t;
}

static char *join(const char *a, const char *b) {
        char *p;

        assert_true(asprintf(&p, "%s/%s", a, b) >= 0);
        return p;
}

static void rm_rf(const char *path) {
        _cleanup_free_ char *cmd = NULL;

        assert_true(asprintf(&cmd, "rm -rf '%s'", path) >= 0);
        assert_int_equal(system(cmd), 0);
}

static void write_file(const char *path, const char *text, mode_t mode) {
        FILE *f = fopen(path, "we");

        assert_non_null(f);
        fputs(text, f);
        fclose(f);
        assert_int_equal(chmod(path, mode), 0);
}

/* The escaping is systemd's: compare with the real systemd-escape where it is installed. */
static void test_escape_matches_systemd_escape(void **state) {
        static const char *const paths[] = { "/var/lib/free-sleep/free-sleep.db", "/srv/a b/ü.db", "//x//y/",
                                             "/.hidden/db", "/" };

        for (size_t i = 0; i < ELEMENTSOF(paths); i++) {
                _cleanup_free_ char *mine = statedir_escape_path(paths[i]), *cmd = NULL;
                char theirs[512] = "";
                FILE *p;

                assert_non_null(mine);
                assert_true(asprintf(&cmd, "systemd-escape --path '%s' 2>/dev/null", paths[i]) >= 0);
                p = popen(cmd, "re");
                assert_non_null(p);
                if (!fgets(theirs, sizeof(theirs), p)) {
                        pclose(p);
                        skip();
                }
                pclose(p);
                theirs[strcspn(theirs, "\n")] = '\0';
                assert_string_equal(mine, theirs);
        }
}

static void test_default_path(void **state) {
        _cleanup_free_ char *a = NULL, *b = NULL;

        setenv("STATE_DIRECTORY", "/run/x/state:/other", 1);
        a = statedir_default_path("/var/lib/d.db");
        assert_string_equal(a, "/run/x/state");
        unsetenv("STATE_DIRECTORY");
        b = statedir_default_path("/var/lib/d.db");
        assert_non_null(b);
        if (geteuid() == 0)
                assert_string_equal(b, "/var/lib/migrated/db-var-lib-d.db");
        else
                assert_non_null(strstr(b, "/migrated/db-var-lib-d.db"));
}

static void test_open_creates_0700_and_refuses_what_others_could_change(void **state) {
        _cleanup_free_ char *root = tmp_root(), *dir = join(root, "a/b/state"), *link = join(root, "link"),
                            *msg = NULL;
        struct stat st;
        int fd;

        fd = statedir_open(dir, &msg);
        assert_true(fd >= 0);
        close(fd);
        assert_int_equal(stat(dir, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0700);

        /* a symlink to a good directory is refused, not followed */
        assert_int_equal(symlink(dir, link), 0);
        fd = statedir_open(link, &msg);
        assert_true(fd < 0);
        assert_non_null(msg);
        assert_non_null(strstr(msg, "symlink"));
        msg = mfree(msg);

        /* group-writable: refused, the message says how to fix it */
        assert_int_equal(chmod(dir, 0770), 0);
        fd = statedir_open(dir, &msg);
        assert_int_equal(fd, -EPERM);
        assert_non_null(strstr(msg, "chmod 0700"));
        msg = mfree(msg);
        assert_int_equal(chmod(dir, 0700), 0);

        /* owned by another user: refused */
        if (geteuid() == 0) {
                assert_int_equal(chown(dir, 65534, 65534), 0);
                fd = statedir_open(dir, &msg);
                assert_int_equal(fd, -EPERM);
                assert_non_null(strstr(msg, "owned by another user"));
                msg = mfree(msg);
        }
        rm_rf(root);
}

static void test_write_read_and_planted_files(void **state) {
        _cleanup_free_ char *root = tmp_root(), *dir = join(root, "state"), *msg = NULL, *victim = join(root, "victim"),
                            *tmp = NULL, *doc_path = NULL;
        json_t *doc = json_pack("{s:i}", "a", 1), *got = NULL;
        char buf[64] = "";
        int fd, vfd;

        fd = statedir_open(dir, &msg);
        assert_true(fd >= 0);
        assert_int_equal(statedir_read(fd, "x.json", &got), -ENOENT);
        assert_int_equal(statedir_write(fd, "x.json", doc), 0);
        assert_int_equal(statedir_read(fd, "x.json", &got), 0);
        assert_true(json_equal(got, doc));
        json_decref(got);

        /* a symlink planted at the temporary file's name is replaced, never written through */
        write_file(victim, "precious\n", 0600);
        assert_true(asprintf(&tmp, "%s/.#y.json.%d", dir, (int) getpid()) >= 0);
        assert_int_equal(symlink(victim, tmp), 0);
        assert_int_equal(statedir_write(fd, "y.json", doc), 0);
        vfd = open(victim, O_RDONLY | O_CLOEXEC);
        assert_true(read(vfd, buf, sizeof(buf) - 1) > 0);
        close(vfd);
        assert_string_equal(buf, "precious\n");

        /* a symlink as the document itself is not read */
        doc_path = join(dir, "z.json");
        write_file(victim, "{\"a\": 1}", 0600);
        assert_int_equal(symlink(victim, doc_path), 0);
        assert_int_equal(statedir_read(fd, "z.json", &got), -EBADMSG);

        /* group-writable or not an object: refused */
        free(doc_path);
        doc_path = join(dir, "w.json");
        write_file(doc_path, "{\"a\": 1}", 0620);
        assert_int_equal(statedir_read(fd, "w.json", &got), -EBADMSG);
        write_file(doc_path, "[1]", 0600);
        assert_int_equal(statedir_read(fd, "w.json", &got), -EBADMSG);
        assert_int_equal(statedir_remove(fd, "w.json"), 0);
        assert_int_equal(statedir_remove(fd, "w.json"), 0);
        json_decref(doc);
        close(fd);
        rm_rf(root);
}

/* history.sqlite: created 0600, and refused like every state file when planted. */
static void test_create_file(void **state) {
        _cleanup_free_ char *root = tmp_root(), *dir = join(root, "state"), *msg = NULL, *victim = join(root, "victim"),
                            *path = NULL;
        struct stat st;
        int fd;

        fd = statedir_open(dir, &msg);
        assert_true(fd >= 0);
        assert_int_equal(statedir_create_file(fd, "h.sqlite", &st), 0);
        assert_true(S_ISREG(st.st_mode));
        assert_int_equal(st.st_mode & 07777, 0600);
        assert_int_equal(statedir_create_file(fd, "h.sqlite", &st), 0); /* an existing one is fine */

        path = join(dir, "l.sqlite");
        write_file(victim, "", 0600);
        assert_int_equal(symlink(victim, path), 0);
        assert_int_equal(statedir_create_file(fd, "l.sqlite", &st), -EBADMSG);
        free(path);
        path = join(dir, "w.sqlite");
        write_file(path, "", 0602);
        assert_int_equal(statedir_create_file(fd, "w.sqlite", &st), -EBADMSG);
        assert_int_equal(mkdirat(fd, "d.sqlite", 0700), 0);
        assert_true(statedir_create_file(fd, "d.sqlite", &st) < 0);
        close(fd);
        rm_rf(root);
}

static void test_units_file_validated(void **state) {
        _cleanup_free_ char *root = tmp_root(), *dir = join(root, "state"), *msg = NULL;
        char *names[] = { "a.service", "b.service" }, **got = NULL;
        uint64_t job = 0;
        size_t n = 0;
        int fd;

        fd = statedir_open(dir, &msg);
        assert_true(fd >= 0);
        assert_int_equal(statefile_read(fd, "/db", &job, &got, &n), -ENOENT);
        assert_int_equal(statefile_write(fd, "/db", 7, names, 2), 0);
        assert_int_equal(statefile_read(fd, "/db", &job, &got, &n), 0);
        assert_int_equal(job, 7);
        assert_int_equal(n, 2);
        assert_string_equal(got[1], "b.service");
        strv_free_n(got, n);
        /* written for another database: not ours */
        assert_int_equal(statefile_read(fd, "/other.db", &job, &got, &n), -EBADMSG);
        assert_int_equal(statefile_remove(fd), 0);
        assert_int_equal(statefile_read(fd, "/db", &job, &got, &n), -ENOENT);
        close(fd);
        rm_rf(root);
}

static json_t *snapshot(int current, const char *pending_json) {
        json_t *s = json_pack("{s:i,s:[],s:[]}", "current_version", current, "pending", "problems");
        json_t *p = json_loads(pending_json, 0, NULL);

        json_object_set_new(s, "pending", p);
        return s;
}

static bool opens(const gate *g, json_t *snap, bool strict) {
        const char *reason;
        bool current;

        return gate_opens(g, snap, strict, &current, &reason);
}

static void test_gate_hold_and_failed_plan(void **state) {
        _cleanup_free_ char *root = tmp_root(), *dir = join(root, "state"), *msg = NULL;
        json_t *held = snapshot(2, "[{\"version\": 3}]"), *two = json_integer(2), *plan = json_pack("[i]", 3);
        json_t *other = snapshot(2, "[{\"version\": 4}]"), *current = snapshot(3, "[]");
        gate g, again;
        int fd;

        fd = statedir_open(dir, &msg);
        assert_true(fd >= 0);
        assert_int_equal(gate_load(&g, fd, "/db", &msg), 0);
        assert_null(msg);
        assert_true(opens(&g, current, true));
        assert_false(opens(&g, held, false));

        /* held at 2 by down: strict and non-strict gates open at 2, and only there */
        assert_int_equal(gate_hold(&g, two, "down", 12), 0);
        assert_true(opens(&g, held, true));
        assert_true(opens(&g, held, false));
        g.suspended = true; /* a job runs */
        assert_false(opens(&g, held, false));
        g.suspended = false;

        /* it survives a restart */
        assert_int_equal(gate_load(&again, fd, "/db", &msg), 0);
        assert_non_null(again.hold);
        assert_true(opens(&again, held, true));
        gate_done(&again);
        /* for another database it is ignored, with a warning */
        assert_int_equal(gate_load(&again, fd, "/other.db", &msg), 0);
        assert_non_null(msg);
        assert_null(again.hold);
        msg = mfree(msg);
        gate_done(&again);

        /* released: the failed plan [3] opens the non-strict gate for 3 only */
        assert_int_equal(gate_release(&g), 0);
        assert_int_equal(gate_fail_plan(&g, 13, plan), 0);
        assert_true(opens(&g, held, false));
        assert_false(opens(&g, held, true));
        assert_false(opens(&g, other, false)); /* a never-tried migration keeps it shut */
        assert_int_equal(gate_clear_failed_plan(&g), 0);
        assert_false(opens(&g, held, false));
        assert_int_equal(access(dir, F_OK), 0);
        gate_done(&g);
        json_decref(held);
        json_decref(other);
        json_decref(current);
        json_decref(two);
        json_decref(plan);
        close(fd);
        rm_rf(root);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_escape_matches_systemd_escape),
                cmocka_unit_test(test_default_path),
                cmocka_unit_test(test_open_creates_0700_and_refuses_what_others_could_change),
                cmocka_unit_test(test_write_read_and_planted_files),
                cmocka_unit_test(test_create_file),
                cmocka_unit_test(test_units_file_validated),
                cmocka_unit_test(test_gate_hold_and_failed_plan),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
