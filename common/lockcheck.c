/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <systemd/sd-login.h>
#include <unistd.h>

#include "lockcheck.h"
#include "macro.h"

typedef struct file_id {
        dev_t dev;
        ino_t ino;
        bool present;
} file_id;

static void identify(const char *database, const char *suffix, file_id *ret) {
        _cleanup_free_ char *p = NULL;
        struct stat st;

        ret->present = false;
        if (asprintf(&p, "%s%s", database, suffix) < 0)
                return;
        if (stat(p, &st) == 0) {
                ret->dev = st.st_dev;
                ret->ino = st.st_ino;
                ret->present = true;
        }
}

char *lockcheck_unit_of_pid_full(pid_t pid, bool *ret_user_unit) {
        char *unit = NULL;
        bool user = true;

        if (sd_pid_get_user_unit(pid, &unit) < 0 || !unit) {
                unit = mfree(unit);
                user = false;
                if (sd_pid_get_unit(pid, &unit) < 0)
                        unit = mfree(unit);
        }
        if (ret_user_unit)
                *ret_user_unit = unit && user;
        return unit;
}

/* A /proc file in one read: they are generated at once and small (max bytes at most). */
static char *read_small(const char *path, size_t max, size_t *ret_len) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        char *buf;
        ssize_t n;

        if (fd < 0)
                return NULL;
        buf = malloc(max + 1);
        if (!buf)
                return NULL;
        n = read(fd, buf, max);
        if (n < 0) {
                free(buf);
                return NULL;
        }
        buf[n] = '\0';
        if (ret_len)
                *ret_len = (size_t) n;
        return buf;
}

/* "pm2:NAME" for a process pm2 runs: pm2 gives its processes pm_id= and name= in their
 * environment (readable by their owner and root only); NULL otherwise. */
char *lockcheck_pm2_name_of_pid(pid_t pid) {
        char path[64], *env, *name = NULL, *ret = NULL;
        bool pm2 = false;
        size_t len = 0;

        snprintf(path, sizeof(path), "/proc/%d/environ", (int) pid);
        env = read_small(path, 256 * 1024, &len);
        for (size_t i = 0; env && i < len; i += strlen(env + i) + 1) {
                if (strneq(env + i, "pm_id=", 6))
                        pm2 = true;
                else if (strneq(env + i, "name=", 5))
                        name = env + i + 5;
        }
        if (pm2 && name && *name && asprintf(&ret, "pm2:%s", name) < 0)
                ret = NULL;
        free(env);
        return ret;
}

/* "container:ID" (its first 12 hex digits, what docker and podman accept) for a process in a
 * container, from the cgroup the engine made for it ("/docker/ID", "docker-ID.scope",
 * "libpod-ID.scope"); NULL otherwise. */
char *lockcheck_container_of_pid(pid_t pid) {
        static const char *const marks[] = { "/docker/", "docker-", "libpod-" };
        char path[64], *text, *ret = NULL;
        size_t len = 0;

        snprintf(path, sizeof(path), "/proc/%d/cgroup", (int) pid);
        text = read_small(path, 64 * 1024, &len);
        for (size_t i = 0; text && !ret && i < ELEMENTSOF(marks); i++)
                for (const char *p = strstr(text, marks[i]); p && !ret; p = strstr(p + 1, marks[i])) {
                        const char *id = p + strlen(marks[i]);
                        if (strspn(id, "0123456789abcdef") == 64 && asprintf(&ret, "container:%.12s", id) < 0)
                                ret = NULL;
                }
        free(text);
        return ret;
}

char *lockcheck_unit_of_pid(pid_t pid) {
        return lockcheck_unit_of_pid_full(pid, NULL);
}


static char *user_name(uid_t uid) {
        struct passwd pw, *found = NULL;
        char buf[1024];

        if (getpwuid_r(uid, &pw, buf, sizeof(buf), &found) != 0 || !found)
                return NULL;
        return strdup(found->pw_name);
}

/* comm, cmdline, uid, user and unit of h->pid; a process that is gone leaves them NULL. */
static void fill_process(holder *h) {
        char path[64];
        size_t len = 0;
        struct stat st;

        snprintf(path, sizeof(path), "/proc/%d/comm", (int) h->pid);
        h->comm = read_small(path, 4096, NULL);
        if (h->comm)
                h->comm[strcspn(h->comm, "\n")] = '\0';
        snprintf(path, sizeof(path), "/proc/%d/cmdline", (int) h->pid);
        h->cmdline = read_small(path, 4096, &len);
        for (size_t i = 0; h->cmdline && len > 0 && i < len - 1; i++)
                if (h->cmdline[i] == '\0')
                        h->cmdline[i] = ' ';
        snprintf(path, sizeof(path), "/proc/%d", (int) h->pid);
        if (stat(path, &st) == 0) {
                h->uid = st.st_uid;
                h->user = user_name(st.st_uid);
        }
        /* the dependent's name for a pm2 process or a container, rather than the unit they run in */
        h->unit = lockcheck_pm2_name_of_pid(h->pid) ?: lockcheck_container_of_pid(h->pid)
                                                   ?: lockcheck_unit_of_pid_full(h->pid, &h->user_unit);
}

int lockcheck_process_info(pid_t pid, holder *ret) {
        char path[64];
        struct stat st;

        snprintf(path, sizeof(path), "/proc/%d", (int) pid);
        if (pid <= 0 || stat(path, &st) < 0)
                return -ESRCH;
        *ret = (holder) { .pid = pid };
        fill_process(ret);
        return 0;
}

/* Appends the "lock:" lines of an fdinfo text to *locks, without the "lock:" and the tab. */
static int collect_fd_locks(const char *info, char **locks) {
        for (const char *l = info; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
                size_t n = strcspn(l, "\n");
                char *next;

                if (!strneq(l, "lock:", 5))
                        continue;
                if (asprintf(&next, "%s%.*s\n", *locks ?: "", (int) (n - 5), l + 5) < 0)
                        return -ENOMEM;
                free(*locks);
                *locks = next;
        }
        return 0;
}

/* fdinfo's "flags:" is the open mode in octal; O_WRONLY/O_RDWR mean the process may write. Its
 * "lock:" lines are the locks held through this file. */
static int scan_fdinfo(pid_t pid, const char *fd, unsigned file, holder *h) {
        _cleanup_free_ char *info = NULL;
        char path[320];
        const char *f;

        snprintf(path, sizeof(path), "/proc/%d/fdinfo/%s", (int) pid, fd);
        info = read_small(path, 64 * 1024, NULL);
        if (!info)
                return 0;
        f = strstr(info, "flags:");
        if (f && (strtoul(f + 6, NULL, 8) & O_ACCMODE) != O_RDONLY) {
                h->writable = true;
                h->writable_files |= 1u << file;
        }
        return collect_fd_locks(info, &h->fd_locks[file]);
}

static int scan_fds(pid_t pid, const file_id ids[_HOLDER_FILE_MAX], holder *h) {
        char path[64];
        struct dirent *de;
        DIR *d;
        int r = 0;

        snprintf(path, sizeof(path), "/proc/%d/fd", (int) pid);
        d = opendir(path);
        if (!d)
                return 0; /* gone, or not ours to look at */
        while (r >= 0 && (de = readdir(d))) {
                struct stat st;
                if (de->d_name[0] == '.' || fstatat(dirfd(d), de->d_name, &st, 0) < 0)
                        continue;
                for (unsigned i = 0; r >= 0 && i < _HOLDER_FILE_MAX; i++)
                        if (ids[i].present && st.st_dev == ids[i].dev && st.st_ino == ids[i].ino) {
                                h->files |= 1u << i;
                                r = scan_fdinfo(pid, de->d_name, i, h);
                        }
        }
        closedir(d);
        return r;
}

int lockcheck_find_holders(const char *database, holder **ret, size_t *ret_n) {
        file_id ids[_HOLDER_FILE_MAX];
        holder *list = NULL;
        size_t n = 0;
        pid_t self = getpid();
        struct dirent *de;
        DIR *proc;
        int r = 0;

        identify(database, "", &ids[HOLDER_FILE_DB]);
        identify(database, "-wal", &ids[HOLDER_FILE_WAL]);
        identify(database, "-shm", &ids[HOLDER_FILE_SHM]);
        proc = opendir("/proc");
        if (!proc)
                return -errno;
        while ((de = readdir(proc))) {
                holder h = {};
                holder *m;

                if (!isdigit((unsigned char) de->d_name[0]))
                        continue;
                h.pid = (pid_t) strtol(de->d_name, NULL, 10);
                if (h.pid == self)
                        continue;
                r = scan_fds(h.pid, ids, &h);
                if (r >= 0 && h.files == 0) {
                        holder_done(&h);
                        continue;
                }
                m = r < 0 ? NULL : realloc(list, (n + 1) * sizeof(*m));
                if (!m) {
                        holder_done(&h);
                        holders_free(list, n);
                        closedir(proc);
                        return r < 0 ? r : -ENOMEM;
                }
                list = m;
                fill_process(&h);
                list[n++] = h;
        }
        closedir(proc);
        *ret = list;
        *ret_n = n;
        return 0;
}

void holder_done(holder *h) {
        if (!h)
                return;
        free(h->user);
        free(h->comm);
        free(h->cmdline);
        free(h->unit);
        for (size_t i = 0; i < _HOLDER_FILE_MAX; i++)
                free(h->fd_locks[i]);
        *h = (holder) { .pid = h->pid };
}

void holders_free(holder *h, size_t n) {
        for (size_t i = 0; h && i < n; i++)
                holder_done(&h[i]);
        free(h);
}

static const char *files_text(unsigned files) {
        static const char *const names[8] = { "", "db", "-wal", "db, -wal", "-shm", "db, -shm", "-wal, -shm",
                                              "db, -wal, -shm" };
        return names[files & 7];
}

char *holders_describe(const holder *h, size_t n) {
        char *s = strdup("");

        for (size_t i = 0; s && i < n; i++) {
                char *next;
                if (asprintf(&next, "%s%spid %d (%s%s%s: %s)", s, i ? "; " : "", (int) h[i].pid, h[i].comm ?: "?",
                             h[i].unit ? ", " : "", h[i].unit ?: "", files_text(h[i].files)) < 0)
                        next = NULL;
                free(s);
                s = next;
        }
        return s;
}

/* ["db", "wal", "shm"], the names lock-check and database_in_use use for the files. */
static json_t *files_json(unsigned files) {
        static const char *const names[_HOLDER_FILE_MAX] = { "db", "wal", "shm" };
        json_t *arr = json_array();

        for (unsigned i = 0; arr && i < _HOLDER_FILE_MAX; i++)
                if ((files & (1u << i)) && json_array_append_new(arr, json_string(names[i])) < 0)
                        return json_decref(arr), NULL;
        return arr;
}

json_t *holders_to_json(const holder *h, size_t n) {
        json_t *arr = json_array();

        for (size_t i = 0; arr && i < n; i++) {
                json_t *o = json_pack("{s:i,s:i,s:s?,s:s?,s:s?,s:s?,s:o?,s:o?,s:b}", "pid", (int) h[i].pid, "uid",
                                      (int) h[i].uid, "user", h[i].user, "command", h[i].comm, "cmdline",
                                      h[i].cmdline, "unit", h[i].unit, "files", files_json(h[i].files),
                                      "writable_files", files_json(h[i].writable_files), "writable",
                                      h[i].writable);
                if (!o || json_array_append_new(arr, o) < 0) {
                        json_decref(arr);
                        return NULL;
                }
        }
        return arr;
}
