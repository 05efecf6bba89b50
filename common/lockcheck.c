/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
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

char *lockcheck_unit_of_pid(pid_t pid) {
        char *unit = NULL;

        if (sd_pid_get_user_unit(pid, &unit) >= 0 && unit)
                return unit;
        if (sd_pid_get_unit(pid, &unit) >= 0 && unit)
                return unit;
        return NULL;
}

static char *read_small(const char *path, size_t *ret_len) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        char *buf;
        ssize_t n;

        if (fd < 0)
                return NULL;
        buf = malloc(4097);
        if (!buf)
                return NULL;
        n = read(fd, buf, 4096);
        if (n < 0) {
                free(buf);
                return NULL;
        }
        buf[n] = '\0';
        if (ret_len)
                *ret_len = (size_t) n;
        return buf;
}

static void fill_process(holder *h) {
        char path[64];
        size_t len = 0;
        struct stat st;

        snprintf(path, sizeof(path), "/proc/%d/comm", (int) h->pid);
        h->comm = read_small(path, NULL);
        if (h->comm)
                h->comm[strcspn(h->comm, "\n")] = '\0';
        snprintf(path, sizeof(path), "/proc/%d/cmdline", (int) h->pid);
        h->cmdline = read_small(path, &len);
        for (size_t i = 0; h->cmdline && len > 0 && i < len - 1; i++)
                if (h->cmdline[i] == '\0')
                        h->cmdline[i] = ' ';
        snprintf(path, sizeof(path), "/proc/%d", (int) h->pid);
        if (stat(path, &st) == 0)
                h->uid = st.st_uid;
        h->unit = lockcheck_unit_of_pid(h->pid);
}

/* fdinfo's "flags:" is the open mode in octal; O_WRONLY/O_RDWR mean the process may write. */
static bool fd_writable(pid_t pid, const char *fd) {
        _cleanup_free_ char *info = NULL;
        char path[320];
        const char *f;
        unsigned long flags;

        snprintf(path, sizeof(path), "/proc/%d/fdinfo/%s", (int) pid, fd);
        info = read_small(path, NULL);
        if (!info || !(f = strstr(info, "flags:")))
                return false;
        flags = strtoul(f + 6, NULL, 8);
        return (flags & O_ACCMODE) != O_RDONLY;
}

static unsigned scan_fds(pid_t pid, const file_id ids[3], bool *ret_writable) {
        char path[64];
        unsigned files = 0;
        struct dirent *de;
        DIR *d;

        snprintf(path, sizeof(path), "/proc/%d/fd", (int) pid);
        d = opendir(path);
        if (!d)
                return 0; /* gone, or not ours to look at */
        while ((de = readdir(d))) {
                struct stat st;
                if (de->d_name[0] == '.' || fstatat(dirfd(d), de->d_name, &st, 0) < 0)
                        continue;
                for (int i = 0; i < 3; i++)
                        if (ids[i].present && st.st_dev == ids[i].dev && st.st_ino == ids[i].ino) {
                                files |= 1u << i;
                                if (fd_writable(pid, de->d_name))
                                        *ret_writable = true;
                        }
        }
        closedir(d);
        return files;
}

int lockcheck_find_holders(const char *database, holder **ret, size_t *ret_n) {
        file_id ids[3];
        holder *list = NULL;
        size_t n = 0;
        pid_t self = getpid();
        struct dirent *de;
        DIR *proc;

        identify(database, "", &ids[0]);
        identify(database, "-wal", &ids[1]);
        identify(database, "-shm", &ids[2]);
        proc = opendir("/proc");
        if (!proc)
                return -errno;
        while ((de = readdir(proc))) {
                bool writable = false;
                unsigned files;
                pid_t pid;
                holder *m;

                if (!isdigit((unsigned char) de->d_name[0]))
                        continue;
                pid = (pid_t) strtol(de->d_name, NULL, 10);
                if (pid == self)
                        continue;
                files = scan_fds(pid, ids, &writable);
                if (files == 0)
                        continue;
                m = realloc(list, (n + 1) * sizeof(*m));
                if (!m) {
                        holders_free(list, n);
                        closedir(proc);
                        return -ENOMEM;
                }
                list = m;
                list[n] = (holder) { .pid = pid, .files = files, .writable = writable };
                fill_process(&list[n]);
                n++;
        }
        closedir(proc);
        *ret = list;
        *ret_n = n;
        return 0;
}

void holders_free(holder *h, size_t n) {
        for (size_t i = 0; h && i < n; i++) {
                free(h[i].comm);
                free(h[i].cmdline);
                free(h[i].unit);
        }
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

json_t *holders_to_json(const holder *h, size_t n) {
        json_t *arr = json_array();

        for (size_t i = 0; i < n; i++) {
                json_t *files = json_array();
                if (h[i].files & HOLDS_DB)
                        json_array_append_new(files, json_string("db"));
                if (h[i].files & HOLDS_WAL)
                        json_array_append_new(files, json_string("wal"));
                if (h[i].files & HOLDS_SHM)
                        json_array_append_new(files, json_string("shm"));
                json_array_append_new(arr, json_pack("{s:i,s:i,s:s?,s:s?,s:s?,s:o,s:b}", "pid", (int) h[i].pid, "uid",
                                                     (int) h[i].uid, "command", h[i].comm, "cmdline", h[i].cmdline,
                                                     "unit", h[i].unit, "files", files, "writable", h[i].writable));
        }
        return arr;
}
