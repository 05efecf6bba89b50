/* SPDX-License-Identifier: MIT */
/* Load and timing helper of the benchmarks (tests/bench/run.sh). Two jobs where Python's own
 * overhead would distort the figure:
 *
 *   benchtool rpc-load SOCKET METHOD CLIENTS SECONDS [--expect TEXT] [--interval-ms N]
 *       CLIENTS threads, each with its own connection, send {"id":N,"method":METHOD} and time
 *       each round trip (send → final line received) until SECONDS have passed (after a 0.2 s
 *       warm-up that is not recorded). Threads, not processes: C has no interpreter lock, each
 *       thread blocks in recv() and the kernel schedules them like 100 separate clients.
 *       Closed loop by default (the next request as soon as the reply is in: saturation);
 *       with --interval-ms each client sends one request every N ms (random phase), a paced
 *       load where the figure is the latency of a request, not the queue behind 99 others.
 *       --expect TEXT: a substring every reply should contain (e.g. "state":"running");
 *       replies without it are counted as "unexpected".
 *   benchtool spawn RUNS -- ARGV...
 *       Runs ARGV RUNS times (after 3 untimed warm-up runs), stdin/stdout/stderr on /dev/null,
 *       timing posix_spawn → waitpid of each run, as hyperfine does.
 *
 * Both print one JSON object on stdout (times in microseconds). */

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static int64_t now_ns(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp_i64(const void *a, const void *b) {
        int64_t x = *(const int64_t *) a, y = *(const int64_t *) b;

        return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of a sorted array. */
static int64_t pct(const int64_t *v, size_t n, double p) {
        size_t k;

        if (n == 0)
                return 0;
        k = (size_t) (p / 100.0 * (double) n + 0.999999);
        if (k < 1)
                k = 1;
        if (k > n)
                k = n;
        return v[k - 1];
}

static void print_stats(const char *extra, int64_t *v, size_t n) {
        double sum = 0;

        qsort(v, n, sizeof(*v), cmp_i64);
        for (size_t i = 0; i < n; i++)
                sum += (double) v[i];
        printf("{\"n\":%zu,\"min_us\":%.1f,\"p50_us\":%.1f,\"p90_us\":%.1f,\"p99_us\":%.1f,\"max_us\":%.1f,"
               "\"mean_us\":%.1f%s}\n",
               n, n ? v[0] / 1e3 : 0, pct(v, n, 50) / 1e3, pct(v, n, 90) / 1e3, pct(v, n, 99) / 1e3,
               n ? v[n - 1] / 1e3 : 0, n ? sum / (double) n / 1e3 : 0, extra);
}

/* ---------------------------------------------------------------------------------------- */

typedef struct client {
        pthread_t thread;
        int fd;
        int64_t *lat;
        size_t n, cap;
        unsigned errors, unexpected;
} client;

static const char *sock_path, *method, *expect;
static int64_t t_record, t_end, interval_ns;
static pthread_barrier_t barrier;

static int connect_socket(const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

        if (fd < 0)
                return -1;
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
        for (int tries = 0; connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0; tries++) {
                if ((errno != EAGAIN && errno != EINTR) || tries > 1000) {
                        close(fd);
                        return -1;
                }
                usleep(1000);
        }
        return fd;
}

/* One round trip: returns 1 when the reply contained EXPECT (or none was asked for), 0 if not,
 * -1 on a connection error. */
static int round_trip(client *c, unsigned id, char **buf, size_t *cap) {
        char req[128];
        int len = snprintf(req, sizeof(req), "{\"id\":%u,\"method\":\"%s\"}\n", id, method);
        size_t have = 0;

        for (int off = 0; off < len;) {
                ssize_t k = send(c->fd, req + off, (size_t) (len - off), MSG_NOSIGNAL);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -1;
                }
                off += (int) k;
        }
        for (;;) {
                ssize_t k;
                if (have + 65536 > *cap) {
                        *cap = (*cap ? *cap * 2 : 1 << 17);
                        *buf = realloc(*buf, *cap);
                        if (!*buf)
                                return -1;
                }
                k = recv(c->fd, *buf + have, *cap - have - 1, 0);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        return -1;
                have += (size_t) k;
                if ((*buf)[have - 1] == '\n')
                        break; /* one request in flight; status and hello send exactly one line */
        }
        (*buf)[have] = '\0';
        if (!strstr(*buf, "\"result\""))
                return -1;
        return !expect || strstr(*buf, expect) ? 1 : 0;
}

/* A per-client random phase in [0, 1), so that paced clients do not all send at once. */
static double drand48_r_phase(client *c) {
        unsigned short seed[3] = { (unsigned short) (uintptr_t) c, (unsigned short) ((uintptr_t) c >> 16), 0x330e };

        return erand48(seed);
}

static void *client_main(void *userdata) {
        client *c = userdata;
        char *buf = NULL;
        size_t cap = 0;
        unsigned id = 0;

        int64_t next = 0;

        pthread_barrier_wait(&barrier);
        if (interval_ns > 0)
                next = now_ns() + (int64_t) (drand48_r_phase(c) * (double) interval_ns);
        for (;;) {
                int64_t t0, t1;
                int r;

                if (interval_ns > 0) {
                        int64_t now = now_ns();
                        if (next > now) {
                                struct timespec ts = { (time_t) ((next - now) / 1000000000),
                                                       (long) ((next - now) % 1000000000) };
                                nanosleep(&ts, NULL);
                        }
                        next += interval_ns;
                }
                t0 = now_ns();
                if (t0 >= t_end)
                        break;
                r = round_trip(c, ++id, &buf, &cap);
                t1 = now_ns();
                if (r < 0) {
                        c->errors++;
                        close(c->fd);
                        c->fd = connect_socket(sock_path);
                        if (c->fd < 0)
                                break;
                        continue;
                }
                if (t0 < t_record)
                        continue;
                if (r == 0)
                        c->unexpected++;
                if (c->n == c->cap) {
                        c->cap = c->cap ? c->cap * 2 : 4096;
                        c->lat = realloc(c->lat, c->cap * sizeof(int64_t));
                        if (!c->lat)
                                abort();
                }
                c->lat[c->n++] = t1 - t0;
        }
        free(buf);
        return NULL;
}

static int rpc_load(int argc, char **argv) {
        int n_clients;
        double seconds;
        client *cs;
        int64_t *all;
        size_t total = 0;
        unsigned errors = 0, unexpected = 0, connect_failures = 0;
        char extra[200];

        if (argc < 6) {
                fprintf(stderr, "usage: benchtool rpc-load SOCKET METHOD CLIENTS SECONDS [--expect TEXT] "
                                "[--interval-ms N]\n");
                return 2;
        }
        sock_path = argv[2];
        method = argv[3];
        n_clients = atoi(argv[4]);
        seconds = atof(argv[5]);
        for (int i = 6; i + 1 < argc; i += 2) {
                if (strcmp(argv[i], "--expect") == 0)
                        expect = argv[i + 1];
                else if (strcmp(argv[i], "--interval-ms") == 0)
                        interval_ns = (int64_t) (atof(argv[i + 1]) * 1e6);
                else {
                        fprintf(stderr, "benchtool: unknown option %s\n", argv[i]);
                        return 2;
                }
        }
        if (strlen(method) > 64)
                return 2;
        cs = calloc((size_t) n_clients, sizeof(*cs));
        if (!cs || n_clients < 1)
                return 1;
        pthread_barrier_init(&barrier, NULL, (unsigned) n_clients + 1);
        for (int i = 0; i < n_clients; i++) {
                cs[i].fd = connect_socket(sock_path);
                if (cs[i].fd < 0)
                        connect_failures++;
        }
        if (connect_failures) {
                fprintf(stderr, "benchtool: %u of %d connections failed: %m\n", connect_failures, n_clients);
                return 1;
        }
        for (int i = 0; i < n_clients; i++)
                if (pthread_create(&cs[i].thread, NULL, client_main, &cs[i]) != 0)
                        return 1;
        t_record = now_ns() + 200 * 1000000LL;
        t_end = t_record + (int64_t) (seconds * 1e9);
        pthread_barrier_wait(&barrier);
        for (int i = 0; i < n_clients; i++) {
                pthread_join(cs[i].thread, NULL);
                total += cs[i].n;
                errors += cs[i].errors;
                unexpected += cs[i].unexpected;
        }
        all = malloc((total + 1) * sizeof(int64_t));
        total = 0;
        for (int i = 0; i < n_clients; i++) {
                memcpy(all + total, cs[i].lat, cs[i].n * sizeof(int64_t));
                total += cs[i].n;
                if (cs[i].fd >= 0)
                        close(cs[i].fd);
                free(cs[i].lat);
        }
        snprintf(extra, sizeof(extra),
                 ",\"clients\":%d,\"seconds\":%.2f,\"interval_ms\":%.1f,\"errors\":%u,\"unexpected\":%u,\"rps\":%.0f",
                 n_clients, seconds, (double) interval_ns / 1e6, errors, unexpected, (double) total / seconds);
        print_stats(extra, all, total);
        free(all);
        free(cs);
        return errors ? 1 : 0;
}

/* ---------------------------------------------------------------------------------------- */

static int spawn_once(char **argv, int64_t *ret_ns, int *ret_status) {
        posix_spawn_file_actions_t fa;
        pid_t pid;
        int64_t t0;
        int r, st;

        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
        posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
        posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
        t0 = now_ns();
        r = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
        posix_spawn_file_actions_destroy(&fa);
        if (r != 0) {
                errno = r;
                return -1;
        }
        while (waitpid(pid, &st, 0) < 0)
                if (errno != EINTR)
                        return -1;
        *ret_ns = now_ns() - t0;
        *ret_status = st;
        return 0;
}

static int spawn_bench(int argc, char **argv) {
        int runs, failures = 0, first_bad = 0;
        int64_t *v, ns;
        char extra[96];
        int st;

        if (argc < 5 || strcmp(argv[3], "--") != 0) {
                fprintf(stderr, "usage: benchtool spawn RUNS -- ARGV...\n");
                return 2;
        }
        runs = atoi(argv[2]);
        v = calloc((size_t) runs + 1, sizeof(*v));
        for (int i = 0; i < 3; i++)
                if (spawn_once(argv + 4, &ns, &st) < 0) {
                        fprintf(stderr, "benchtool: cannot run %s: %m\n", argv[4]);
                        return 1;
                }
        for (int i = 0; i < runs; i++) {
                if (spawn_once(argv + 4, &v[i], &st) < 0) {
                        fprintf(stderr, "benchtool: cannot run %s: %m\n", argv[4]);
                        return 1;
                }
                if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
                        if (!failures++)
                                first_bad = st;
                }
        }
        snprintf(extra, sizeof(extra), ",\"failures\":%d,\"first_bad_status\":%d", failures, first_bad);
        print_stats(extra, v, (size_t) runs);
        free(v);
        return failures ? 1 : 0;
}

int main(int argc, char **argv) {
        if (argc >= 2 && strcmp(argv[1], "rpc-load") == 0)
                return rpc_load(argc, argv);
        if (argc >= 2 && strcmp(argv[1], "spawn") == 0)
                return spawn_bench(argc, argv);
        fprintf(stderr, "usage: benchtool rpc-load SOCKET METHOD CLIENTS SECONDS [--expect TEXT] [--interval-ms N]\n"
                        "       benchtool spawn RUNS -- ARGV...\n");
        return 2;
}
