/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stddef.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <stdint.h>
#include <ini.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h" /* build configuration: PROJECT_VERSION, DEFAULT_SOCKET */
#include "deps.h"
#include "metrics.h"
#include "settings.h"
#include "statedir.h"
#include "macro.h"
#include "migdir.h"
#include "protocol.h"

#define TIMEOUT_MAX_S 86400u

/* A field's offset, and a build error when its type is not T. */
#define FIELD(f, T) (offsetof(config, f) + 0 * sizeof(&((config *) NULL)->f == (T *) NULL))

/* migdir_format, or -1 for "auto": detected from the directory (migdir_detect_format) */
static int parse_format(const char *v, int *ret) {
        migdir_format f;

        if (streq(v, "auto")) {
                *ret = -1;
                return 0;
        }
        if (migdir_format_from_string(v, &f) < 0)
                return -EINVAL;
        *ret = (int) f;
        return 0;
}

/* engine_integrity, without depending on the engine */
static int parse_integrity(const char *v, int *ret) {
        if (streq(v, "off"))
                *ret = 0;
        else if (streq(v, "quick"))
                *ret = 1;
        else if (streq(v, "full"))
                *ret = 2;
        else
                return -EINVAL;
        return 0;
}

static int parse_online(const char *v, bool *ret) {
        if (streq(v, "auto"))
                *ret = false;
        else if (streq(v, "never"))
                *ret = true;
        else
                return -EINVAL;
        return 0;
}

static void units_clear(config *c) {
        for (size_t i = 0; i < c->n_units; i++)
                free(c->units[i]);
        free(c->units);
        c->units = NULL;
        c->n_units = 0;
}

/* "a.service b.service pm2:api" (spaces or commas); each name must look like a unit name or
 * carry a known kind prefix. */
static int parse_units(const char *v, config *c) {
        _cleanup_free_ char *copy = strdup(v);
        char *save = NULL;

        if (!copy)
                return -ENOMEM;
        units_clear(c);
        for (char *t = strtok_r(copy, " \t,", &save); t; t = strtok_r(NULL, " \t,", &save)) {
                char **m;
                if (!deps_name_is_valid(t))
                        return -EINVAL;
                /* kept NULL-terminated: sd-bus reads it as a strv */
                m = realloc(c->units, (c->n_units + 2) * sizeof(char *));
                if (!m)
                        return -ENOMEM;
                c->units = m;
                if (!(c->units[c->n_units] = strdup(t)))
                        return -ENOMEM;
                c->units[++c->n_units] = NULL;
        }
        return 0;
}

static int parse_manager(const char *v, bool *ret_user) {
        if (streq(v, "system"))
                *ret_user = false;
        else if (streq(v, "user"))
                *ret_user = true;
        else
                return -EINVAL;
        return 0;
}

static void dep_settings_clear(config *c) {
        for (size_t i = 0; i < c->n_dep_settings; i++) {
                free(c->dep_settings[i].section);
                free(c->dep_settings[i].key);
                free(c->dep_settings[i].value);
        }
        free(c->dep_settings);
        c->dep_settings = NULL;
        c->n_dep_settings = 0;
}

/* A key of a dependent's section; a later one replaces an earlier one. */
static int add_dep_setting(config *c, const char *section, const char *key, const char *value) {
        dep_setting *m;

        if (!*value)
                return -EINVAL;
        for (size_t i = 0; i < c->n_dep_settings; i++)
                if (streq(c->dep_settings[i].section, section) && streq(c->dep_settings[i].key, key)) {
                        char *v = strdup(value);
                        if (!v)
                                return -ENOMEM;
                        free(c->dep_settings[i].value);
                        c->dep_settings[i].value = v;
                        return 0;
                }
        m = realloc(c->dep_settings, (c->n_dep_settings + 1) * sizeof(*m));
        if (!m)
                return -ENOMEM;
        c->dep_settings = m;
        m[c->n_dep_settings] = (dep_setting) { strdup(section), strdup(key), strdup(value) };
        if (!m[c->n_dep_settings].section || !m[c->n_dep_settings].key || !m[c->n_dep_settings].value) {
                free(m[c->n_dep_settings].section);
                free(m[c->n_dep_settings].key);
                free(m[c->n_dep_settings].value);
                return -ENOMEM;
        }
        c->n_dep_settings++;
        return 0;
}

void config_clear(config *c) {
        units_clear(c);
        dep_settings_clear(c);
        free(c->backup_dir);
        free(c->database);
        free(c->backend);
        free(c->connection);
        free(c->password_file);
        free(c->migrations_dir);
        free(c->socket_path);
        free(c->config_file);
        free(c->state_dir);
        free(c->metrics_textfile);
        free(c->metrics_listen);
        free(c->host_name);
        free(c->seeds_dir);
        free(c->drain);
        memset(c, 0, sizeof(*c));
}

static int parse_bool(const char *v, bool *ret) {
        if (streq(v, "true") || streq(v, "yes") || streq(v, "on") || streq(v, "1"))
                *ret = true;
        else if (streq(v, "false") || streq(v, "no") || streq(v, "off") || streq(v, "0"))
                *ret = false;
        else
                return -EINVAL;
        return 0;
}

static int parse_uint(const char *v, unsigned min, unsigned max, unsigned *ret) {
        char *end;
        unsigned long long n;

        if (!*v || *v == '-' || *v == '+')
                return -EINVAL;
        errno = 0;
        n = strtoull(v, &end, 10);
        if (errno != 0 || *end || n < min || n > max)
                return -EINVAL;
        *ret = (unsigned) n;
        return 0;
}

/* A user or a group by name or number; a name must exist now, so that a typo fails at start. */
static int parse_id(const char *v, bool group, unsigned *ret) {
        struct passwd *pw = group ? NULL : getpwnam(v);
        struct group *g = group ? getgrnam(v) : NULL;

        if (pw || g) {
                *ret = pw ? (unsigned) pw->pw_uid : (unsigned) g->gr_gid;
                return 0;
        }
        return parse_uint(v, 0, UINT32_MAX - 1, ret);
}

static int parse_group(const char *v, gid_t *ret) {
        unsigned n;
        int r = parse_id(v, true, &n);

        if (r == 0)
                *ret = (gid_t) n;
        return r;
}

static int parse_user(const char *v, uid_t *ret) {
        unsigned n;
        int r = parse_id(v, false, &n);

        if (r == 0)
                *ret = (uid_t) n;
        return r;
}

/* File permissions in octal, at most 0777 (no set-id or sticky bits on a database). */
static int parse_mode(const char *v, unsigned *ret) {
        char *end;
        unsigned long n;

        if (!*v || *v == '-' || *v == '+')
                return -EINVAL;
        errno = 0;
        n = strtoul(v, &end, 8);
        if (errno != 0 || *end || n > 0777)
                return -EINVAL;
        *ret = (unsigned) n;
        return 0;
}

static int set_string(char **dst, const char *v) {
        char *s;

        if (!*v)
                return -EINVAL;
        s = strdup(v);
        if (!s)
                return -ENOMEM;
        free(*dst);
        *dst = s;
        return 0;
}

/* HOST:PORT on a loopback address: what answers there answers anyone who connects. */
static int parse_loopback(const char *v, char **dst) {
        char host[64];
        unsigned port;

        if (!metrics_listen_parse(v, host, sizeof(host), &port))
                return -EINVAL;
        return set_string(dst, v);
}

/* The settings, one row per key: its INI section and key, its command-line flag, its type and
 * limits, the config field it fills and its --help line. The INI parser, the command line, the
 * flag-over-file merge and --help all read this table; tests/unit/test-settings checks that the
 * man pages name every key and every flag.
 *
 * To add a setting: a field in struct config (settings.h), one row here (.dflt: its default, parsed
 * like a value; none: zero, or what config_defaults() or config_load() says), its key in
 * packaging/man/migrated.conf.5.scd and its flag (if any) in packaging/man/migrated.8.scd. */
const setting settings_table[] = {
        { .section = "database", .key = "path", .flag = "database", .short_flag = 'd', .type = SETTING_STRING,
          .offset = FIELD(database, char *), .arg = "PATH",
          .help = "the SQLite database (created if missing)" },
        { .section = "database", .key = "busy_timeout_ms", .flag = "busy-timeout", .type = SETTING_UINT,
          .min = 0, .max = 3600000, .unit = "milliseconds", .dflt = "5000",
          .offset = FIELD(busy_timeout_ms, unsigned), .arg = "MS",
          .help = "how long to wait for other writers" },
        { .section = "database", .key = "owner", .flag = "database-owner", .type = SETTING_USER,
          .offset = FIELD(database_uid, uid_t), .arg = "USER",
          .help = "owner of a database migrated creates (default: ours)" },
        { .section = "database", .key = "group", .flag = "database-group", .type = SETTING_GROUP,
          .offset = FIELD(database_gid, gid_t), .arg = "GROUP",
          .help = "group of a database migrated creates (default: ours)" },
        { .section = "database", .key = "mode", .flag = "database-mode", .type = SETTING_MODE, .dflt = "0640",
          .offset = FIELD(database_mode, unsigned), .arg = "MODE",
          .help = "mode of a database migrated creates" },
        { .section = "database", .key = "backend", .flag = "backend", .type = SETTING_STRING,
          .offset = FIELD(backend, char *), .arg = "NAME",
          .help = "sqlite (the default) or postgresql (the default when connection is set)" },
        { .section = "database", .key = "connection", .flag = "connection", .type = SETTING_STRING,
          .offset = FIELD(connection, char *), .arg = "CONNINFO",
          .help = "PostgreSQL: a libpq connection string or URL (never logged with its password)" },
        { .section = "database", .key = "password_file", .flag = "password-file", .type = SETTING_STRING,
          .offset = FIELD(password_file, char *), .arg = "PATH",
          .help = "PostgreSQL: a file holding the password (a bare name: a systemd credential)" },
        { .section = "database", .key = "host_name", .flag = "host-name", .type = SETTING_STRING,
          .offset = FIELD(host_name, char *), .arg = "NAME",
          .help = "this host's name in a shared database's history (default: the host name)" },
        { .section = "migrations", .key = "directory", .flag = "migrations", .short_flag = 'm',
          .type = SETTING_STRING, .offset = FIELD(migrations_dir, char *), .arg = "DIR",
          .help = "the migrations directory (NNNN_name.up.sql ...)" },
        { .section = "migrations", .key = "format", .flag = "format", .type = SETTING_FORMAT, .dflt = "auto",
          .offset = FIELD(format, int), .arg = "FORMAT",
          .help = "the layout of the migrations directory (--help lists the formats)" },
        { .section = "migrations", .key = "auto_up", .flag = "auto-up", .type = SETTING_BOOL,
          .offset = FIELD(auto_up, bool), .help = "apply pending migrations at start" },
        { .section = "daemon", .key = "socket", .flag = "socket", .short_flag = 's', .type = SETTING_STRING,
          .dflt = DEFAULT_SOCKET, .offset = FIELD(socket_path, char *), .arg = "PATH",
          .help = "the control socket" },
        { .section = "daemon", .key = "state_directory", .flag = "state-dir", .type = SETTING_STRING,
          .offset = FIELD(state_dir, char *), .arg = "DIR",
          .help = "the daemon's own state (default: $STATE_DIRECTORY, or\n"
                  "                            /var/lib/migrated/db-<escaped database path> for root)" },
        { .section = "daemon", .key = "max_queue", .type = SETTING_UINT, .min = 1, .max = 100000, .dflt = "64",
          .offset = FIELD(max_queue, unsigned) },
        { .section = "daemon", .key = "admin_group", .flag = "admin-group", .type = SETTING_GROUP,
          .offset = FIELD(admin_gid, gid_t), .arg = "GROUP",
          .help = "members may change the database too (root and our user may)" },
        { .section = "daemon", .key = "socket_group", .flag = "socket-group", .type = SETTING_GROUP,
          .offset = FIELD(socket_gid, gid_t), .arg = "GROUP", .help = "group of the socket (mode 0660)" },
        { .section = "daemon", .key = "max_connections", .type = SETTING_UINT, .min = 1, .max = 1000000,
          .dflt = "4096", .offset = FIELD(max_connections, unsigned) },
        { .section = "daemon", .key = "max_connections_per_uid", .type = SETTING_UINT, .min = 1, .max = 1000000,
          .dflt = "2048", .offset = FIELD(max_connections_per_uid, unsigned) },
        { .section = "daemon", .key = "idle_timeout", .type = SETTING_UINT, .min = 0, .max = TIMEOUT_MAX_S,
          .unit = "seconds", .dflt = "300", .offset = FIELD(idle_timeout_s, unsigned) },
        { .section = "daemon", .key = "request_timeout", .flag = "request-timeout", .type = SETTING_UINT,
          .min = 1, .max = TIMEOUT_MAX_S, .unit = "seconds", .dflt = "30",
          .offset = FIELD(request_timeout_s, unsigned), .arg = "S",
          .help = "close a connection whose request line stays unfinished" },
        { .section = "units", .key = "units", .flag = "units", .type = SETTING_UNITS,
          .offset = FIELD(units, char **), .arg = "\"A B\"",
          .help = "dependent units: stopped before a change, started after" },
        { .section = "units", .key = "manager", .flag = "manager", .type = SETTING_MANAGER, .dflt = "system",
          .offset = FIELD(user_manager, bool), .arg = "system|user",
          .help = "which systemd manager runs them" },
        { .section = "units", .key = "stop_timeout", .flag = "stop-timeout", .type = SETTING_UINT, .min = 1,
          .max = TIMEOUT_MAX_S, .unit = "seconds", .dflt = "30", .offset = FIELD(stop_timeout_s, unsigned),
          .arg = "S", .help = "SIGKILL units still stopping after S seconds" },
        { .section = "units", .key = "start_timeout", .flag = "start-timeout", .type = SETTING_UINT, .min = 1,
          .max = TIMEOUT_MAX_S, .unit = "seconds", .dflt = "90", .offset = FIELD(start_timeout_s, unsigned),
          .arg = "S", .help = "how long to wait for their start jobs" },
        { .section = "units", .key = "holder_timeout", .flag = "holder-timeout", .type = SETTING_UINT, .min = 0,
          .max = TIMEOUT_MAX_S, .unit = "seconds", .dflt = "10", .offset = FIELD(holder_timeout_s, unsigned),
          .arg = "S", .help = "how long other processes may keep the database open" },
        { .section = "units", .key = "online", .flag = "online", .type = SETTING_ONLINE, .dflt = "auto",
          .offset = FIELD(online_never, bool), .arg = "auto|never",
          .help = "auto: an online plan runs with the units running" },
        { .section = "units", .key = "online_lock_ms", .flag = "online-lock-ms", .type = SETTING_UINT, .min = 1,
          .max = 3600000, .unit = "milliseconds", .dflt = "1000", .offset = FIELD(online_lock_ms, unsigned),
          .arg = "MS", .help = "the longest an online plan may hold the write lock" },
        { .section = "units", .key = "online_refuse_slow", .flag = "online-refuse-slow", .type = SETTING_BOOL,
          .offset = FIELD(online_refuse_slow, bool),
          .help = "refuse an online plan over that bound (default: stop the units)" },
        { .section = "backup", .key = "dir", .flag = "backup-dir", .type = SETTING_STRING,
          .offset = FIELD(backup_dir, char *), .arg = "DIR",
          .help = "where backups go (default: <database>-backups)" },
        { .section = "backup", .key = "keep", .flag = "keep", .type = SETTING_UINT, .min = 1, .max = 10000,
          .dflt = "10", .offset = FIELD(backup_keep, unsigned), .arg = "N",
          .help = "how many backups to keep" },
        { .section = "backup", .key = "skip", .flag = "skip-backup", .type = SETTING_BOOL,
          .offset = FIELD(no_auto_backup, bool),
          .help = "take no backup before a change (migratectl backup still makes one)" },
        { .section = "backup", .key = "integrity", .flag = "integrity", .type = SETTING_INTEGRITY,
          .dflt = "quick", .offset = FIELD(integrity, int), .arg = "MODE",
          .help = "quick, full or off: checked before and after each job" },
        { .section = "metrics", .key = "textfile", .flag = "metrics-textfile", .type = SETTING_STRING,
          .offset = FIELD(metrics_textfile, char *), .arg = "PATH",
          .help = "write Prometheus metrics there (node_exporter's textfile collector)" },
        { .section = "metrics", .key = "listen", .flag = "metrics-listen", .type = SETTING_LOOPBACK,
          .offset = FIELD(metrics_listen, char *), .arg = "ADDR",
          .help = "serve them over HTTP on a loopback address (127.0.0.1:PORT)" },
        { .section = "seeds", .key = "directory", .flag = "seeds", .type = SETTING_STRING,
          .offset = FIELD(seeds_dir, char *), .arg = "DIR",
          .help = "seed files applied after migrations (default: seeds beside the migrations)" },
        { .section = "seeds", .key = "retries", .type = SETTING_UINT, .min = 0, .max = 100, .dflt = "5",
          .offset = FIELD(seed_retries, unsigned) },
        { .section = "seeds", .key = "backoff_ms", .type = SETTING_UINT, .min = 1, .max = 600000,
          .unit = "milliseconds", .dflt = "200", .offset = FIELD(seed_backoff_ms, unsigned) },
        { .section = "dev", .key = "allow_reset", .type = SETTING_BOOL, .offset = FIELD(allow_reset, bool) },
        { .section = "postgresql", .key = "drain", .type = SETTING_STRING, .dflt = "all",
          .offset = FIELD(drain, char *) },
        { .section = "postgresql", .key = "drain_timeout", .flag = "drain-timeout", .type = SETTING_UINT, .min = 1,
          .max = TIMEOUT_MAX_S, .unit = "seconds", .dflt = "60", .offset = FIELD(drain_timeout_s, unsigned),
          .arg = "S", .help = "how long a drain waits for a live host's acknowledgement" },
};
const size_t settings_n = ELEMENTSOF(settings_table);

/* Parses one value into its field; any failure means the value is not what the row expects. */
static int setting_parse(const setting *st, const char *value, config *c) {
        void *field = (uint8_t *) c + st->offset;

        switch (st->type) {
        case SETTING_STRING: return set_string(field, value);
        case SETTING_UINT: return parse_uint(value, st->min, st->max, field);
        case SETTING_BOOL: return parse_bool(value, field);
        case SETTING_MODE: return parse_mode(value, field);
        case SETTING_USER: return parse_user(value, field);
        case SETTING_GROUP: return parse_group(value, field);
        case SETTING_UNITS: return parse_units(value, c);
        case SETTING_MANAGER: return parse_manager(value, field);
        case SETTING_FORMAT: return parse_format(value, field);
        case SETTING_INTEGRITY: return parse_integrity(value, field);
        case SETTING_ONLINE: return parse_online(value, field);
        case SETTING_LOOPBACK: return parse_loopback(value, field);
        }
        return -EINVAL;
}

/* What a row accepts, for both error messages: "must be <this>" and "--flag takes <this>". NULL
 * for a string, which only must not be empty. */
static const char *setting_expects(const setting *st, char *buf, size_t size) {
        switch (st->type) {
        case SETTING_STRING: return NULL;
        case SETTING_UINT:
                snprintf(buf, size, "%s%s%u..%u", st->unit ?: "", st->unit ? ", " : "", st->min, st->max);
                return buf;
        case SETTING_BOOL: return "true or false";
        case SETTING_MODE: return "an octal mode, 0..0777";
        case SETTING_USER: return "an existing user";
        case SETTING_GROUP: return "an existing group";
        case SETTING_UNITS: return "unit names like a.service, or pm2:NAME, exec:NAME, container:NAME, compose:PROJECT/SERVICE";
        case SETTING_MANAGER: return "system or user";
        case SETTING_FORMAT: return migdir_format_choices();
        case SETTING_INTEGRITY: return "quick, full or off";
        case SETTING_ONLINE: return "auto or never";
        case SETTING_LOOPBACK: return METRICS_LISTEN_EXPECTED;
        }
        return NULL;
}

static const setting *setting_find(const char *section, const char *key) {
        for (size_t i = 0; i < settings_n; i++)
                if (streq(settings_table[i].section, section) && streq(settings_table[i].key, key))
                        return &settings_table[i];
        return NULL;
}

static bool section_is_known(const char *name, size_t len) {
        for (size_t i = 0; i < settings_n; i++)
                if (strlen(settings_table[i].section) == len && strneq(settings_table[i].section, name, len))
                        return true;
        return deps_section_is_known(name, len);
}

/* "database, migrations, daemon, units, backup": each section once, in the table's order. */
static void known_sections(char *buf, size_t size) {
        size_t k = 0;

        buf[0] = '\0';
        for (size_t i = 0; i < settings_n && k < size; i++)
                if (i == 0 || !streq(settings_table[i].section, settings_table[i - 1].section))
                        k += (size_t) snprintf(buf + k, size - k, "%s%s", k > 0 ? ", " : "", settings_table[i].section);
        if (k < size)
                (void) snprintf(buf + k, size - k, ", pm2.NAME, exec.NAME, container.NAME, compose.PROJECT");
}

typedef struct ini_state {
        config *c;
        char *error; /* the first problem, for the message */
} ini_state;

static int ini_error(ini_state *st, const char *section, const char *key, const char *why, const char *what) {
        if (!st->error && asprintf(&st->error, "[%s] %s: %s%s", section, key, why, what ?: "") < 0)
                st->error = NULL;
        return 0; /* inih: 0 = error, it reports the line */
}

static int on_ini_entry(void *userdata, const char *section, const char *key, const char *value) {
        ini_state *st = userdata;
        const setting *row = setting_find(section, key);
        char buf[64], sections[192];
        const char *expects;

        if (row) {
                if (setting_parse(row, value, st->c) == 0)
                        return 1;
                expects = setting_expects(row, buf, sizeof(buf));
                return ini_error(st, section, key, expects ? "must be " : "must not be empty", expects);
        }
        /* [pm2.NAME], [exec.NAME], [container.NAME], [compose.PROJECT]: the dependents' own keys */
        if (deps_section_is_known(section, strlen(section))) {
                if (!deps_key_is_known(section, key))
                        return ini_error(st, section, key, "unknown key", NULL);
                return add_dep_setting(st->c, section, key, value) == 0 ? 1
                                                                       : ini_error(st, section, key, "must not be empty", NULL);
        }
        if (section_is_known(section, strlen(section)))
                return ini_error(st, section, key, "unknown key", NULL);
        known_sections(sections, sizeof(sections));
        if (!st->error && asprintf(&st->error, "[%s] %s: unknown section (known: %s)", section, key, sections) < 0)
                st->error = NULL;
        return 0;
}

/* inih only reports sections that have keys; an unknown section must be an error even when it is
 * empty (a commented-out block under a misspelt header would otherwise pass unnoticed). */
static int check_sections(FILE *f, ini_state *st) {
        char buf[1024];
        int line = 0;

        char sections[192];

        known_sections(sections, sizeof(sections));
        while (fgets(buf, sizeof(buf), f)) {
                const char *p = buf, *end;
                line++;
                while (*p == ' ' || *p == '\t')
                        p++;
                if (*p != '[' || !(end = strchr(p, ']')))
                        continue;
                if (!section_is_known(p + 1, (size_t) (end - p - 1))) {
                        if (asprintf(&st->error, "[%.*s]: unknown section (known: %s)", (int) (end - p - 1), p + 1,
                                     sections) < 0)
                                st->error = NULL;
                        return line;
                }
        }
        rewind(f);
        return 0;
}

int config_parse_file(const char *path, config *c, char **ret_message) {
        ini_state st = { .c = c };
        FILE *f;
        int line;

        f = fopen(path, "re");
        if (!f)
                return -errno;
        line = check_sections(f, &st);
        if (line == 0)
                line = ini_parse_file(f, on_ini_entry, &st);
        fclose(f);
        if (line == 0)
                return 0;
        if (asprintf(ret_message, "%s:%d: %s", path, line, st.error ?: "syntax error") < 0)
                *ret_message = NULL;
        free(st.error);
        return -EINVAL;
}

/* Relative paths are resolved against the working directory at start, so that status and
 * history show where things really are. */
static int make_absolute(char **path) {
        _cleanup_free_ char *cwd = NULL;
        char *abs;

        if (!*path || (*path)[0] == '/')
                return 0;
        cwd = getcwd(NULL, 0);
        if (!cwd)
                return -errno;
        if (asprintf(&abs, "%s/%s", cwd, streq(*path, ".") ? "" : *path) < 0)
                return -ENOMEM;
        free(*path);
        *path = abs;
        return 0;
}

/* --help: the usage, then one line per flag of the table. */
static void help(void) {
        printf("Usage: migrated (--database PATH | --connection CONNINFO) --migrations DIR [OPTIONS]\n"
               "\n"
               "The single writer of schema changes for one SQLite or PostgreSQL database: applies the\n"
               "migrations of DIR on request over a Unix socket, one job at a time.\n"
               "\n");
        for (size_t i = 0; i < settings_n; i++) {
                const setting *st = &settings_table[i];
                char left[64];
                if (!st->flag)
                        continue;
                snprintf(left, sizeof(left), "%c%c%c --%s%s%s", st->short_flag ? '-' : ' ', st->short_flag ?: ' ',
                         st->short_flag ? ',' : ' ', st->flag, st->arg ? " " : "", st->arg ?: "");
                /* the formats' names come from their table, not from a copy here */
                printf("  %-25s %s%s%s%s\n", left, st->type == SETTING_FORMAT ? migdir_format_choices() : st->help,
                       st->dflt ? " (default " : "", st->dflt ?: "", st->dflt ? ")" : "");
        }
        printf("  -c, --config FILE         an INI file with the same settings; flags win\n"
               "      --one-shot            serve only the client connected on fd 3, then exit\n"
               "                            (how migratectl --database runs without a daemon)\n"
               "  -h, --help                show this help\n"
               "      --version             show the version\n");
}

enum { ARG_VERSION = 0x100, ARG_ONE_SHOT, ARG_SETTING = 0x200 /* + the row's index */ };

/* The flags as given: validated at once, applied after the file so that they win over it. */
typedef struct cli {
        const char *config;
        bool one_shot;
        size_t n_given;
        struct { const setting *row; const char *value; } given[];
} cli;

/* The command line's options: one per row with a flag, then --config, --help and --version; and
 * the short ones for getopt ("d:m:s:c:h"). */
static struct option *cli_options(char shortopts[static 2 * 26 + 8]) {
        struct option *o = calloc(settings_n + 5, sizeof(*o));
        size_t n = 0, k = 0;

        if (!o)
                return NULL;
        for (size_t i = 0; i < settings_n; i++) {
                if (settings_table[i].short_flag && k + 2 < 2 * 26) {
                        shortopts[k++] = settings_table[i].short_flag;
                        if (settings_table[i].type != SETTING_BOOL)
                                shortopts[k++] = ':';
                }
                if (settings_table[i].flag)
                        o[n++] = (struct option) { settings_table[i].flag,
                                                   settings_table[i].type == SETTING_BOOL ? no_argument
                                                                                          : required_argument,
                                                   NULL, settings_table[i].short_flag ?: ARG_SETTING + (int) i };
        }
        memcpy(shortopts + k, "c:h", 4);
        o[n++] = (struct option) { "config", required_argument, NULL, 'c' };
        o[n++] = (struct option) { "help", no_argument, NULL, 'h' };
        o[n++] = (struct option) { "version", no_argument, NULL, ARG_VERSION };
        o[n++] = (struct option) { "one-shot", no_argument, NULL, ARG_ONE_SHOT };
        return o;
}

static const setting *setting_by_option(int c) {
        if (c >= ARG_SETTING && (size_t) (c - ARG_SETTING) < settings_n)
                return &settings_table[c - ARG_SETTING];
        for (size_t i = 0; c > 0 && c < 0x100 && i < settings_n; i++)
                if (settings_table[i].short_flag == c)
                        return &settings_table[i];
        return NULL;
}

/* A flag's value, checked on a scratch config: a bad flag is reported before any file is read. */
static int check_flag(const setting *row, const char *value) {
        config scratch = { .units = NULL };
        char buf[64];
        const char *expects;
        int r = setting_parse(row, value, &scratch);

        config_clear(&scratch);
        if (r == 0)
                return 0;
        expects = setting_expects(row, buf, sizeof(buf));
        if (expects)
                fprintf(stderr, "migrated: --%s takes %s: %s\n", row->flag, expects, value);
        else
                fprintf(stderr, "migrated: --%s must not be empty\n", row->flag);
        return CONFIG_EXIT_USAGE;
}

static int parse_cli(int argc, char **argv, cli *a) {
        char shortopts[2 * 26 + 8];
        _cleanup_free_ struct option *options = cli_options(shortopts);
        const setting *row;
        int c;

        if (!options)
                return CONFIG_EXIT_USAGE;
        optind = 0;
        while ((c = getopt_long(argc, argv, shortopts, options, NULL)) >= 0) {
                switch (c) {
                case 'c': a->config = optarg; continue;
                case ARG_ONE_SHOT: a->one_shot = true; continue;
                case 'h': help(); return CONFIG_EXIT_OK;
                case ARG_VERSION: printf("migrated %s\n", PROJECT_VERSION); return CONFIG_EXIT_OK;
                }
                row = setting_by_option(c);
                if (!row) {
                        fprintf(stderr, "Try 'migrated --help'.\n");
                        return CONFIG_EXIT_USAGE;
                }
                if (check_flag(row, optarg ?: "true") != 0)
                        return CONFIG_EXIT_USAGE;
                a->given[a->n_given].row = row;
                a->given[a->n_given++].value = optarg ?: "true";
        }
        if (optind < argc) {
                fprintf(stderr, "migrated: unexpected argument '%s'\nTry 'migrated --help'.\n", argv[optind]);
                return CONFIG_EXIT_USAGE;
        }
        return CONFIG_RUN;
}

/* What a setting is when neither the file nor a flag names it: the rows' defaults; the ids that
 * mean "ours" or "none" are -1. */
static int config_defaults(config *c) {
        memset(c, 0, sizeof(*c));
        c->database_uid = (uid_t) -1;
        c->database_gid = (gid_t) -1;
        c->admin_gid = (gid_t) -1;
        c->socket_gid = (gid_t) -1;
        for (size_t i = 0; i < settings_n; i++)
                if (settings_table[i].dflt && setting_parse(&settings_table[i], settings_table[i].dflt, c) < 0)
                        return -ENOMEM; /* the defaults are checked by test-settings: only memory can fail */
        return 0;
}

int config_load(int argc, char **argv, config *c) {
        _cleanup_free_ cli *a = calloc(1, sizeof(cli) + (size_t) (argc > 0 ? argc : 1) * sizeof(a->given[0]));
        int r;

        if (config_defaults(c) < 0 || !a)
                return CONFIG_EXIT_USAGE;
        r = parse_cli(argc, argv, a);
        if (r != CONFIG_RUN)
                return r;
        c->one_shot = a->one_shot;
        if (a->config) {
                _cleanup_free_ char *msg = NULL;
                c->config_file = strdup(a->config);
                r = config_parse_file(a->config, c, &msg);
                if (r == -EINVAL) {
                        fprintf(stderr, "migrated: %s\n", msg ?: "invalid configuration");
                        return CONFIG_EXIT_USAGE;
                }
                if (r < 0) {
                        fprintf(stderr, "migrated: cannot read %s: %s\n", a->config, strerror(-r));
                        return CONFIG_EXIT_USAGE;
                }
        }
        /* flags win over the file: applied after it, in the order given (the last one counts) */
        for (size_t i = 0; i < a->n_given; i++)
                if (setting_parse(a->given[i].row, a->given[i].value, c) < 0)
                        return check_flag(a->given[i].row, a->given[i].value) ?: CONFIG_EXIT_USAGE;
        if (c->connection && !c->backend && !(c->backend = strdup("postgresql")))
                return CONFIG_EXIT_USAGE;
        if (c->backend && !streq(c->backend, "sqlite") && !streq(c->backend, "postgresql")) {
                fprintf(stderr, "migrated: unknown backend \"%s\" (sqlite or postgresql)\n", c->backend);
                return CONFIG_EXIT_USAGE;
        }
        if (c->drain && !streq(c->drain, "all") && !streq(c->drain, "self")) {
                fprintf(stderr, "migrated: [postgresql] drain is \"all\" or \"self\", not \"%s\"\n", c->drain);
                return CONFIG_EXIT_USAGE;
        }
        if (config_is_server(c) && !c->connection) {
                fprintf(stderr, "migrated: the postgresql backend needs [database] connection (or --connection)\n");
                return CONFIG_EXIT_USAGE;
        }
        if (!config_is_server(c) && c->connection) {
                fprintf(stderr, "migrated: [database] connection is for the postgresql backend\n");
                return CONFIG_EXIT_USAGE;
        }
        if ((!c->database && !config_is_server(c)) || !c->migrations_dir) {
                fprintf(stderr, "migrated: %s is required (flag or config file)\nTry 'migrated --help'.\n",
                        !c->migrations_dir ? "--migrations" : "--database");
                return CONFIG_EXIT_USAGE;
        }
        /* a server's database is named by the server's identity, known once connected:
         * config_name_server() completes the settings then */
        if (c->database && !c->backup_dir && asprintf(&c->backup_dir, "%s-backups", c->database) < 0)
                return CONFIG_EXIT_USAGE;
        if ((c->database && make_absolute(&c->database) < 0) || make_absolute(&c->migrations_dir) < 0 ||
            make_absolute(&c->socket_path) < 0 || make_absolute(&c->backup_dir) < 0 ||
            make_absolute(&c->state_dir) < 0 || make_absolute(&c->metrics_textfile) < 0) {
                fprintf(stderr, "migrated: cannot resolve relative paths: %s\n", strerror(errno));
                return CONFIG_EXIT_USAGE;
        }
        if (c->database && !c->state_dir && !(c->state_dir = statedir_default_path(c->database))) {
                fprintf(stderr, "migrated: no state directory: set --state-dir (or HOME, XDG_STATE_HOME)\n");
                return CONFIG_EXIT_USAGE;
        }
        _cleanup_free_ char *why = deps_check_config(c);
        if (why) {
                fprintf(stderr, "migrated: %s\n", why);
                return CONFIG_EXIT_USAGE;
        }
        return CONFIG_RUN;
}

bool config_is_server(const config *c) {
        return c->backend && streq(c->backend, "postgresql");
}

const char *config_target(const config *c) {
        return config_is_server(c) ? c->connection : c->database;
}

int config_name_server(config *c, const char *name) {
        if (!c->database && !(c->database = strdup(name)))
                return -ENOMEM;
        if (!c->state_dir && !(c->state_dir = statedir_default_path(c->database)))
                return -ENOENT;
        if (!c->backup_dir && asprintf(&c->backup_dir, "%s/backups", c->state_dir) < 0)
                return -ENOMEM;
        return 0;
}
