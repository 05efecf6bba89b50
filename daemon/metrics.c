/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"
#include "metrics.h"

#define METRICS_MAX_KINDS 16
#define METRICS_MAX_CODES 32

typedef struct kind_count {
        char kind[24];
        uint64_t succeeded, failed;
} kind_count;

typedef struct code_count {
        char code[48];
        uint64_t n;
} code_count;

struct metrics {
        char *database_label; /* escaped for a label value */
        char *textfile;
        metrics_http *http;
        bool write_failed;    /* warned once; warned again after a success */

        bool have_snapshot;
        int64_t schema_version, pending, problems;

        kind_count kinds[METRICS_MAX_KINDS];
        size_t n_kinds;
        code_count codes[METRICS_MAX_CODES];
        size_t n_codes;
        uint64_t lock_waits;
        double lock_wait_s, downtime_s;

        bool have_last;
        char last_kind[24];
        bool last_ok;
        double last_duration_s, last_downtime_s, last_end_s;
};

/* A label value: backslash, double quote and newline escaped, as the text format wants. */
static char *label_escape(const char *s) {
        char *out = malloc(strlen(s) * 2 + 1), *p = out;

        if (!out)
                return NULL;
        for (; *s; s++) {
                if (*s == '\\' || *s == '"' || *s == '\n')
                        *p++ = '\\';
                *p++ = *s == '\n' ? 'n' : *s;
        }
        *p = '\0';
        return out;
}

int metrics_new(struct event_base *base, const char *database, const char *textfile, const char *listen,
                metrics **ret) {
        _cleanup_(metrics_freep) metrics *m = NULL;
        unsigned port = 0;

        *ret = NULL;
        if (!textfile && !listen)
                return 0;
        m = calloc(1, sizeof(*m));
        if (!m || !(m->database_label = label_escape(database)) || (textfile && !(m->textfile = strdup(textfile))))
                return log_error_errno(ENOMEM, "Failed to set up the metrics: %m");
        if (listen) {
                if (metrics_http_new(base, listen, m, &m->http, &port) < 0)
                        return -EIO;
                log_info("Metrics on http://%s/metrics (port %u)", listen, port);
        }
        if (textfile)
                log_info("Metrics written to %s", textfile);
        *ret = TAKE_PTR(m);
        return 0;
}

metrics *metrics_free(metrics *m) {
        if (!m)
                return NULL;
        metrics_http_free(m->http);
        free(m->database_label);
        free(m->textfile);
        free(m);
        return NULL;
}

static int64_t integer_or_zero(json_t *v) {
        return json_is_integer(v) ? (int64_t) json_integer_value(v) : 0;
}

/* Writes the exposition next to the text file and renames it over it, so that node_exporter
 * never reads half a file (it reads *.prom only: the temporary's name does not end so). */
static void write_textfile(metrics *m) {
        _cleanup_free_ char *text = NULL, *tmp = NULL;
        _cleanup_close_ int fd = -1;
        size_t len;

        if (!m || !m->textfile)
                return;
        text = metrics_render(m);
        if (!text || asprintf(&tmp, "%s.XXXXXX", m->textfile) < 0) {
                tmp = NULL;
                log_warning_errno(ENOMEM, "Failed to write the metrics: %m");
                return;
        }
        len = strlen(text);
        fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0 || fchmod(fd, 0644) < 0 || write(fd, text, len) != (ssize_t) len ||
            rename(tmp, m->textfile) < 0) {
                int r = negative_errno();
                if (fd >= 0)
                        (void) unlink(tmp);
                if (!m->write_failed)
                        log_warning_errno(r, "Failed to write the metrics to %s: %m", m->textfile);
                m->write_failed = true;
                return;
        }
        m->write_failed = false;
}

/* Every status and wait request brings a snapshot: the file is rewritten only when what it
 * shows of it changed. */
void metrics_set_snapshot(metrics *m, json_t *snapshot) {
        int64_t version, pending, problems;

        if (!m || !snapshot)
                return;
        version = integer_or_zero(json_object_get(snapshot, "current_version"));
        pending = (int64_t) json_array_size(json_object_get(snapshot, "pending"));
        problems = (int64_t) json_array_size(json_object_get(snapshot, "problems"));
        if (m->have_snapshot && !m->write_failed && version == m->schema_version && pending == m->pending &&
            problems == m->problems)
                return;
        m->have_snapshot = true;
        m->schema_version = version;
        m->pending = pending;
        m->problems = problems;
        write_textfile(m);
}

static void copy_name(char *dst, size_t size, const char *src) {
        snprintf(dst, size, "%s", src ?: "?");
}

void metrics_job_finished(metrics *m, const metrics_job *j) {
        kind_count *k = NULL;
        struct timespec now;

        if (!m)
                return;
        for (size_t i = 0; i < m->n_kinds && !k; i++)
                if (strneq(m->kinds[i].kind, j->kind, sizeof(m->kinds[i].kind)))
                        k = &m->kinds[i];
        if (!k && m->n_kinds < METRICS_MAX_KINDS) {
                k = &m->kinds[m->n_kinds++];
                copy_name(k->kind, sizeof(k->kind), j->kind);
        }
        if (k) {
                if (j->error_code)
                        k->failed++;
                else
                        k->succeeded++;
        }
        if (j->error_code) {
                code_count *c = NULL;
                for (size_t i = 0; i < m->n_codes && !c; i++)
                        if (strneq(m->codes[i].code, j->error_code, sizeof(m->codes[i].code)))
                                c = &m->codes[i];
                if (!c && m->n_codes < METRICS_MAX_CODES) {
                        c = &m->codes[m->n_codes++];
                        copy_name(c->code, sizeof(c->code), j->error_code);
                }
                if (c)
                        c->n++;
        }
        if (j->waited_for_holders) {
                m->lock_waits++;
                m->lock_wait_s += (double) j->holder_wait_ms / 1000.0;
        }
        m->downtime_s += (double) j->downtime_ms / 1000.0;
        m->have_last = true;
        copy_name(m->last_kind, sizeof(m->last_kind), j->kind);
        m->last_ok = !j->error_code;
        m->last_duration_s = (double) j->duration_ms / 1000.0;
        m->last_downtime_s = (double) j->downtime_ms / 1000.0;
        clock_gettime(CLOCK_REALTIME, &now);
        m->last_end_s = (double) now.tv_sec + (double) now.tv_nsec / 1e9;
        write_textfile(m);
}

/* One metric's HELP and TYPE lines. */
static void header(FILE *f, const char *name, const char *type, const char *help) {
        fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

char *metrics_render(metrics *m) {
        char *buf = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&buf, &size);
        const char *db = m->database_label;

        if (!f)
                return NULL;
        if (m->have_snapshot) {
                header(f, "migrated_schema_version", "gauge", "The schema version the database is at (0: none applied).");
                fprintf(f, "migrated_schema_version{database=\"%s\"} %" PRId64 "\n", db, m->schema_version);
                header(f, "migrated_pending_migrations", "gauge", "Migrations of the directory not applied yet.");
                fprintf(f, "migrated_pending_migrations{database=\"%s\"} %" PRId64 "\n", db, m->pending);
                header(f, "migrated_problems", "gauge",
                       "Problems that block changes (an edited applied migration, a missing file, ...).");
                fprintf(f, "migrated_problems{database=\"%s\"} %" PRId64 "\n", db, m->problems);
        }
        header(f, "migrated_jobs_total", "counter", "Jobs that ended since migrated started, by kind and outcome.");
        for (size_t i = 0; i < m->n_kinds; i++) {
                fprintf(f, "migrated_jobs_total{database=\"%s\",kind=\"%s\",outcome=\"succeeded\"} %" PRIu64 "\n", db,
                        m->kinds[i].kind, m->kinds[i].succeeded);
                fprintf(f, "migrated_jobs_total{database=\"%s\",kind=\"%s\",outcome=\"failed\"} %" PRIu64 "\n", db,
                        m->kinds[i].kind, m->kinds[i].failed);
        }
        header(f, "migrated_job_failures_total", "counter",
               "Jobs that failed since migrated started, by error code (migratectl(1) lists them).");
        for (size_t i = 0; i < m->n_codes; i++)
                fprintf(f, "migrated_job_failures_total{database=\"%s\",code=\"%s\"} %" PRIu64 "\n", db,
                        m->codes[i].code, m->codes[i].n);
        header(f, "migrated_downtime_seconds_total", "counter",
               "Time the dependents were stopped by jobs since migrated started.");
        fprintf(f, "migrated_downtime_seconds_total{database=\"%s\"} %.3f\n", db, m->downtime_s);
        header(f, "migrated_lock_waits_total", "counter",
               "Jobs that waited for other processes to close the database after its dependents stopped.");
        fprintf(f, "migrated_lock_waits_total{database=\"%s\"} %" PRIu64 "\n", db, m->lock_waits);
        header(f, "migrated_lock_wait_seconds_total", "counter", "Time jobs waited for those processes.");
        fprintf(f, "migrated_lock_wait_seconds_total{database=\"%s\"} %.3f\n", db, m->lock_wait_s);
        if (m->have_last) {
                header(f, "migrated_last_job_success", "gauge", "Whether the last job succeeded (1) or failed (0).");
                fprintf(f, "migrated_last_job_success{database=\"%s\",kind=\"%s\"} %d\n", db, m->last_kind,
                        m->last_ok ? 1 : 0);
                header(f, "migrated_last_job_duration_seconds", "gauge", "How long the last job took.");
                fprintf(f, "migrated_last_job_duration_seconds{database=\"%s\",kind=\"%s\"} %.3f\n", db,
                        m->last_kind, m->last_duration_s);
                header(f, "migrated_last_job_downtime_seconds", "gauge",
                       "How long the last job kept the dependents stopped (0: it stopped none).");
                fprintf(f, "migrated_last_job_downtime_seconds{database=\"%s\",kind=\"%s\"} %.3f\n", db,
                        m->last_kind, m->last_downtime_s);
                header(f, "migrated_last_job_end_timestamp_seconds", "gauge", "When the last job ended (Unix time).");
                fprintf(f, "migrated_last_job_end_timestamp_seconds{database=\"%s\",kind=\"%s\"} %.3f\n", db,
                        m->last_kind, m->last_end_s);
        }
        if (fclose(f) != 0) {
                free(buf);
                return NULL;
        }
        return buf;
}
