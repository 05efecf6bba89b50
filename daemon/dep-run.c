/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dep-run.h"
#include "log.h"
#include "macro.h"

#define DEP_RUN_OUTPUT_MAX (8u * 1024 * 1024)

extern char **environ;

uint64_t dep_now_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}

bool dep_pause_until(uint64_t deadline, uint64_t usec) {
        uint64_t now = dep_now_usec();
        struct timespec ts;

        if (now >= deadline)
                return false;
        if (usec > deadline - now)
                usec = deadline - now;
        ts.tv_sec = (time_t) (usec / 1000000);
        ts.tv_nsec = (long) (usec % 1000000) * 1000;
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
        return true;
}

/* Where execve() finds argv[0]: resolved before fork(), where allocating is still allowed. */
static char *resolve_program(const char *name) {
        const char *path = getenv("PATH") ?: "/usr/local/bin:/usr/bin:/bin";

        if (strchr(name, '/'))
                return strdup(name);
        for (const char *p = path; *p;) {
                size_t len = strcspn(p, ":");
                char *full;
                if (len > 0 && asprintf(&full, "%.*s/%s", (int) len, p, name) >= 0) {
                        if (access(full, X_OK) == 0)
                                return full;
                        free(full);
                }
                p += len;
                if (*p == ':')
                        p++;
        }
        return NULL;
}

static void strv_free(char **v) {
        for (size_t i = 0; v && v[i]; i++)
                free(v[i]);
        free(v);
}

static bool env_overridden(char *const *extra, const char *entry) {
        size_t len = strcspn(entry, "=");

        for (size_t i = 0; extra && extra[i]; i++)
                if (strneq(extra[i], entry, len) && extra[i][len] == '=')
                        return true;
        return false;
}

/* Our environment with extra's keys replaced: built before fork(). */
static char **build_env(char *const *extra, const struct passwd *pw) {
        size_t n = 0, k = 0;
        char **v;

        for (char **e = environ; e && *e; e++)
                n++;
        for (size_t i = 0; extra && extra[i]; i++)
                n++;
        v = calloc(n + 3, sizeof(char *));
        if (!v)
                return NULL;
        for (size_t i = 0; extra && extra[i]; i++)
                if (!(v[k++] = strdup(extra[i])))
                        goto fail;
        if (pw) {
                if (asprintf(&v[k++], "HOME=%s", pw->pw_dir) < 0 || asprintf(&v[k++], "USER=%s", pw->pw_name) < 0) {
                        v[k - 1] = NULL;
                        goto fail;
                }
        }
        for (char **e = environ; e && *e; e++) {
                if (env_overridden(extra, *e) || (pw && (strneq(*e, "HOME=", 5) || strneq(*e, "USER=", 5))))
                        continue;
                if (!(v[k++] = strdup(*e)))
                        goto fail;
        }
        return v;
fail:
        strv_free(v);
        return NULL;
}

/* Reads the child's output until EOF or the deadline. */
static int collect(int fd, uint64_t deadline, char **buf, size_t *len) {
        size_t cap = 0;

        for (;;) {
                uint64_t now = dep_now_usec();
                struct pollfd p = { .fd = fd, .events = POLLIN };
                char chunk[16384];
                ssize_t k;
                if (now >= deadline)
                        return DEP_RUN_TIMEOUT;
                if (poll(&p, 1, (int) ((deadline - now + 999) / 1000)) < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                k = read(fd, chunk, sizeof(chunk));
                if (k < 0 && (errno == EINTR || errno == EAGAIN))
                        continue;
                if (k <= 0)
                        return 0;
                if (*len + (size_t) k > DEP_RUN_OUTPUT_MAX)
                        continue; /* keep draining, drop the excess */
                if (*len + (size_t) k + 1 > cap) {
                        char *m = realloc(*buf, cap = (*len + (size_t) k + 1) * 2);
                        if (!m)
                                return -ENOMEM;
                        *buf = m;
                }
                memcpy(*buf + *len, chunk, (size_t) k);
                *len += (size_t) k;
                (*buf)[*len] = '\0';
        }
}

/* Waits for the child through a pidfd until the deadline. */
static int reap(pid_t pid, uint64_t deadline, int *ret_status) {
        _cleanup_close_ int pidfd = (int) syscall(SYS_pidfd_open, pid, 0);

        for (;;) {
                uint64_t now = dep_now_usec();
                int status;
                pid_t k = waitpid(pid, &status, WNOHANG);
                if (k == pid) {
                        *ret_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
                        return 0;
                }
                if (k < 0 && errno != EINTR)
                        return -errno;
                if (now >= deadline)
                        return DEP_RUN_TIMEOUT;
                if (pidfd >= 0) {
                        struct pollfd p = { .fd = pidfd, .events = POLLIN };
                        (void) poll(&p, 1, (int) ((deadline - now + 999) / 1000));
                } else
                        (void) dep_pause_until(deadline, 10000);
        }
}

int dep_run(const dep_cmd *c, char **ret_stdout) {
        _cleanup_free_ char *program = resolve_program(c->argv[0]), *out = NULL;
        _cleanup_close_ int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
        int pipefd[2] = { -1, -1 }, status = 0, r;
        uint64_t deadline = dep_now_usec() + c->timeout_usec;
        struct passwd pwbuf, *pw = NULL;
        char pwmem[4096];
        gid_t groups[256];
        int n_groups = (int) ELEMENTSOF(groups);
        char **envp;
        size_t len = 0;
        pid_t pid;

        if (!program)
                return -ENOENT;
        if (devnull < 0)
                return -errno;
        if (c->user) {
                if (getpwnam_r(c->user, &pwbuf, pwmem, sizeof(pwmem), &pw) != 0 || !pw)
                        return -ESRCH;
                if (getgrouplist(pw->pw_name, pw->pw_gid, groups, &n_groups) < 0)
                        n_groups = 0;
        }
        if (pipe2(pipefd, O_CLOEXEC) < 0)
                return -errno;
        envp = build_env(c->env, pw);
        if (!envp) {
                close(pipefd[0]);
                close(pipefd[1]);
                return -ENOMEM;
        }
        pid = fork();
        if (pid == 0) {
                /* Only async-signal-safe calls from here: other threads may hold locks. */
                (void) setpgid(0, 0);
                if (dup2(devnull, STDIN_FILENO) < 0 || dup2(ret_stdout ? pipefd[1] : STDERR_FILENO, STDOUT_FILENO) < 0)
                        _exit(127);
                if (pw && (setgroups((size_t) n_groups, groups) < 0 || setgid(pw->pw_gid) < 0 ||
                           setuid(pw->pw_uid) < 0 || chdir(pw->pw_dir) < 0))
                        _exit(126);
                execve(program, c->argv, envp);
                _exit(127);
        }
        r = pid < 0 ? -errno : 0;
        strv_free(envp);
        close(pipefd[1]);
        if (r < 0) {
                close(pipefd[0]);
                return r;
        }
        (void) setpgid(pid, pid);
        r = collect(pipefd[0], deadline, &out, &len);
        close(pipefd[0]);
        if (r == 0)
                r = reap(pid, deadline, &status);
        if (r < 0) {
                /* the command and whatever it started */
                (void) kill(-pid, SIGKILL);
                (void) kill(pid, SIGKILL);
                (void) waitpid(pid, NULL, 0);
                return r;
        }
        if (ret_stdout)
                *ret_stdout = TAKE_PTR(out) ?: strdup("");
        return status;
}
