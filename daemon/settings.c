/* SPDX-License-Identifier: MIT */
#include <errno.h>
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
#include "settings.h"
#include "statedir.h"
#include "macro.h"
#include "protocol.h"

#define DEFAULT_BUSY_TIMEOUT_MS 5000u
#define DEFAULT_MAX_QUEUE 64u
#define DEFAULT_STOP_TIMEOUT_S 30u
#define DEFAULT_START_TIMEOUT_S 90u
#define DEFAULT_HOLDER_TIMEOUT_S 10u
#define TIMEOUT_MAX_S 86400u
#define DEFAULT_BACKUP_KEEP 10u
#define DEFAULT_DATABASE_MODE 0640u
#define DEFAULT_REQUEST_TIMEOUT_S 30u

/* migdir_format, or -1 for "auto": Prisma's layout when migration_lock.toml is there */
static int parse_format(const char *v, int *ret) {
        if (streq(v, "auto"))
                *ret = -1;
        else if (streq(v, "native"))
                *ret = 0;
        else if (streq(v, "prisma"))
                *ret = 1;
        else
                return -EINVAL;
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
        free(c->migrations_dir);
        free(c->socket_path);
        free(c->config_file);
        free(c->state_dir);
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

typedef struct ini_state {
        config *c;
        char *error; /* the first problem, for the message */
} ini_state;

static int ini_error(ini_state *st, const char *section, const char *key, const char *why) {
        if (!st->error && asprintf(&st->error, "[%s] %s: %s", section, key, why) < 0)
                st->error = NULL;
        return 0; /* inih: 0 = error, it reports the line */
}

static int on_ini_entry(void *userdata, const char *section, const char *key, const char *value) {
        ini_state *st = userdata;
        config *c = st->c;

        if (streq(section, "database")) {
                if (streq(key, "path"))
                        return set_string(&c->database, value) == 0 ? 1 : ini_error(st, section, key, "must not be empty");
                if (streq(key, "busy_timeout_ms"))
                        return parse_uint(value, 0, 3600000, &c->busy_timeout_ms) == 0 ? 1 : ini_error(st, section, key, "must be milliseconds, 0..3600000");
                if (streq(key, "owner"))
                        return parse_user(value, &c->database_uid) == 0 ? 1 : ini_error(st, section, key, "must be an existing user");
                if (streq(key, "group"))
                        return parse_group(value, &c->database_gid) == 0 ? 1 : ini_error(st, section, key, "must be an existing group");
                if (streq(key, "mode"))
                        return parse_mode(value, &c->database_mode) == 0 ? 1 : ini_error(st, section, key, "must be an octal mode, 0..0777");
        } else if (streq(section, "migrations")) {
                if (streq(key, "directory"))
                        return set_string(&c->migrations_dir, value) == 0 ? 1 : ini_error(st, section, key, "must not be empty");
                if (streq(key, "format"))
                        return parse_format(value, &c->format) == 0 ? 1 : ini_error(st, section, key, "must be auto, native or prisma");
                if (streq(key, "auto_up"))
                        return parse_bool(value, &c->auto_up) == 0 ? 1 : ini_error(st, section, key, "must be true or false");
        } else if (streq(section, "daemon")) {
                if (streq(key, "socket"))
                        return set_string(&c->socket_path, value) == 0 ? 1 : ini_error(st, section, key, "must not be empty");
                if (streq(key, "state_directory"))
                        return set_string(&c->state_dir, value) == 0 ? 1 : ini_error(st, section, key, "must not be empty");
                if (streq(key, "max_queue"))
                        return parse_uint(value, 1, 100000, &c->max_queue) == 0 ? 1 : ini_error(st, section, key, "must be 1..100000");
                if (streq(key, "admin_group"))
                        return parse_group(value, &c->admin_gid) == 0 ? 1 : ini_error(st, section, key, "must be an existing group");
                if (streq(key, "socket_group"))
                        return parse_group(value, &c->socket_gid) == 0 ? 1 : ini_error(st, section, key, "must be an existing group");
                if (streq(key, "max_connections"))
                        return parse_uint(value, 1, 1000000, &c->max_connections) == 0 ? 1 : ini_error(st, section, key, "must be 1..1000000");
                if (streq(key, "max_connections_per_uid"))
                        return parse_uint(value, 1, 1000000, &c->max_connections_per_uid) == 0 ? 1 : ini_error(st, section, key, "must be 1..1000000");
                if (streq(key, "idle_timeout"))
                        return parse_uint(value, 0, TIMEOUT_MAX_S, &c->idle_timeout_s) == 0 ? 1 : ini_error(st, section, key, "must be seconds, 0..86400");
                if (streq(key, "request_timeout"))
                        return parse_uint(value, 1, TIMEOUT_MAX_S, &c->request_timeout_s) == 0 ? 1 : ini_error(st, section, key, "must be seconds, 1..86400");
        } else if (streq(section, "units")) {
                if (streq(key, "units"))
                        return parse_units(value, c) == 0 ? 1 : ini_error(st, section, key, "must be unit names like a.service, or pm2:NAME, exec:NAME, container:NAME, compose:PROJECT/SERVICE");
                if (streq(key, "manager"))
                        return parse_manager(value, &c->user_manager) == 0 ? 1 : ini_error(st, section, key, "must be system or user");
                if (streq(key, "stop_timeout"))
                        return parse_uint(value, 1, TIMEOUT_MAX_S, &c->stop_timeout_s) == 0 ? 1 : ini_error(st, section, key, "must be seconds, 1..86400");
                if (streq(key, "start_timeout"))
                        return parse_uint(value, 1, TIMEOUT_MAX_S, &c->start_timeout_s) == 0 ? 1 : ini_error(st, section, key, "must be seconds, 1..86400");
                if (streq(key, "holder_timeout"))
                        return parse_uint(value, 0, TIMEOUT_MAX_S, &c->holder_timeout_s) == 0 ? 1 : ini_error(st, section, key, "must be seconds, 0..86400");
        } else if (streq(section, "backup")) {
                if (streq(key, "dir"))
                        return set_string(&c->backup_dir, value) == 0 ? 1 : ini_error(st, section, key, "must not be empty");
                if (streq(key, "keep"))
                        return parse_uint(value, 1, 10000, &c->backup_keep) == 0 ? 1 : ini_error(st, section, key, "must be 1..10000");
                if (streq(key, "integrity"))
                        return parse_integrity(value, &c->integrity) == 0 ? 1 : ini_error(st, section, key, "must be quick, full or off");
        } else if (deps_section_is_known(section, strlen(section))) {
                if (deps_key_is_known(section, key))
                        return add_dep_setting(c, section, key, value) == 0 ? 1 : ini_error(st, section, key, "must not be empty");
        } else
                return ini_error(st, section, key, "unknown section (known: database, migrations, daemon, units, backup, pm2.NAME, exec.NAME, container.NAME, compose.PROJECT)");
        return ini_error(st, section, key, "unknown key");
}

static bool section_is_known(const char *name, size_t len) {
        static const char *const known[] = { "database", "migrations", "daemon", "units", "backup" };

        for (size_t i = 0; i < ELEMENTSOF(known); i++)
                if (strlen(known[i]) == len && strneq(known[i], name, len))
                        return true;
        return deps_section_is_known(name, len);
}

/* inih only reports sections that have keys; an unknown section must be an error even when it is
 * empty (a commented-out block under a misspelt header would otherwise pass unnoticed). */
static int check_sections(FILE *f, ini_state *st) {
        char buf[1024];
        int line = 0;

        while (fgets(buf, sizeof(buf), f)) {
                const char *p = buf, *end;
                line++;
                while (*p == ' ' || *p == '\t')
                        p++;
                if (*p != '[' || !(end = strchr(p, ']')))
                        continue;
                if (!section_is_known(p + 1, (size_t) (end - p - 1))) {
                        if (asprintf(&st->error, "[%.*s]: unknown section (known: database, migrations, daemon, units, backup, pm2.NAME, exec.NAME, container.NAME, compose.PROJECT)",
                                     (int) (end - p - 1), p + 1) < 0)
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

static void help(void) {
        printf("Usage: migrated --database PATH --migrations DIR [OPTIONS]\n"
               "\n"
               "The single writer of schema changes for one SQLite database: applies the\n"
               "migrations of DIR on request over a Unix socket, one job at a time.\n"
               "\n"
               "  -d, --database PATH       the SQLite database (created if missing)\n"
               "  -m, --migrations DIR      the migrations directory (NNNN_name.up.sql ...)\n"
               "  -s, --socket PATH         the control socket (default %s)\n"
               "  -c, --config FILE         an INI file with the same settings; flags win\n"
               "      --format FORMAT       auto (default), native or prisma (<timestamp>_<name>/migration.sql)\n"
               "      --auto-up             apply pending migrations at start\n"
               "      --busy-timeout MS     how long to wait for other writers (default %u)\n"
               "      --database-owner USER  owner of a database migrated creates (default: ours)\n"
               "      --database-group GROUP group of a database migrated creates (default: ours)\n"
               "      --database-mode MODE   mode of a database migrated creates (default 0640)\n"
               "      --units \"A B\"         dependent units: stopped before a change, started after\n"
               "      --manager system|user which systemd manager runs them (default system)\n"
               "      --stop-timeout S      SIGKILL units still stopping after S seconds (default 30)\n"
               "      --start-timeout S     how long to wait for their start jobs (default 90)\n"
               "      --holder-timeout S    how long other processes may keep the database open (default 10)\n"
               "      --admin-group GROUP   members may change the database too (root and our user may)\n"
               "      --socket-group GROUP  group of the socket (mode 0660)\n"
               "      --request-timeout S   close a connection whose request line stays unfinished (default 30)\n"
               "      --state-dir DIR       the daemon's own state (default: $STATE_DIRECTORY, or\n"
               "                            /var/lib/migrated/db-<escaped database path> for root)\n"
               "      --backup-dir DIR      where backups go (default: <database>-backups)\n"
               "      --keep N              how many backups to keep (default 10)\n"
               "      --integrity MODE      quick (default), full or off: checked before and after each job\n"
               "  -h, --help                show this help\n"
               "      --version             show the version\n",
               DEFAULT_SOCKET, DEFAULT_BUSY_TIMEOUT_MS);
}

enum { ARG_AUTO_UP = 0x100, ARG_BUSY_TIMEOUT, ARG_VERSION, ARG_UNITS, ARG_MANAGER, ARG_STOP_TIMEOUT,
       ARG_START_TIMEOUT, ARG_HOLDER_TIMEOUT, ARG_BACKUP_DIR, ARG_KEEP, ARG_INTEGRITY, ARG_ADMIN_GROUP,
       ARG_SOCKET_GROUP, ARG_FORMAT, ARG_DATABASE_OWNER, ARG_DATABASE_GROUP, ARG_DATABASE_MODE,
       ARG_REQUEST_TIMEOUT, ARG_STATE_DIR };

/* Flags are collected first and applied after the file, so that they win over it. */
typedef struct cli {
        const char *database, *migrations, *socket, *config;
        bool auto_up;
        bool busy_timeout_set;
        unsigned busy_timeout_ms;
        const char *units, *manager;
        unsigned stop_timeout_s, start_timeout_s, holder_timeout_s; /* 0 / UINT_MAX: not given */
        bool holder_timeout_set;
        const char *backup_dir, *admin_group, *socket_group, *state_dir;
        unsigned keep;
        int integrity; /* -1: not given */
        int format;    /* -2: not given */
        const char *database_owner, *database_group;
        bool database_mode_set;
        unsigned database_mode;
        unsigned request_timeout_s; /* 0: not given */
} cli;

static int usage_error(const char *what, const char *value) {
        fprintf(stderr, "migrated: %s: %s\n", what, value);
        return CONFIG_EXIT_USAGE;
}

static int parse_cli(int argc, char **argv, cli *a) {
        static const struct option options[] = {
                { "database", required_argument, NULL, 'd' },
                { "migrations", required_argument, NULL, 'm' },
                { "socket", required_argument, NULL, 's' },
                { "config", required_argument, NULL, 'c' },
                { "auto-up", no_argument, NULL, ARG_AUTO_UP },
                { "busy-timeout", required_argument, NULL, ARG_BUSY_TIMEOUT },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "units", required_argument, NULL, ARG_UNITS },
                { "manager", required_argument, NULL, ARG_MANAGER },
                { "stop-timeout", required_argument, NULL, ARG_STOP_TIMEOUT },
                { "start-timeout", required_argument, NULL, ARG_START_TIMEOUT },
                { "holder-timeout", required_argument, NULL, ARG_HOLDER_TIMEOUT },
                { "backup-dir", required_argument, NULL, ARG_BACKUP_DIR },
                { "keep", required_argument, NULL, ARG_KEEP },
                { "integrity", required_argument, NULL, ARG_INTEGRITY },
                { "admin-group", required_argument, NULL, ARG_ADMIN_GROUP },
                { "socket-group", required_argument, NULL, ARG_SOCKET_GROUP },
                { "format", required_argument, NULL, ARG_FORMAT },
                { "database-owner", required_argument, NULL, ARG_DATABASE_OWNER },
                { "database-group", required_argument, NULL, ARG_DATABASE_GROUP },
                { "database-mode", required_argument, NULL, ARG_DATABASE_MODE },
                { "request-timeout", required_argument, NULL, ARG_REQUEST_TIMEOUT },
                { "state-dir", required_argument, NULL, ARG_STATE_DIR },
                {},
        };
        int c;

        optind = 0;
        while ((c = getopt_long(argc, argv, "d:m:s:c:h", options, NULL)) >= 0) {
                switch (c) {
                case 'd': a->database = optarg; break;
                case 'm': a->migrations = optarg; break;
                case 's': a->socket = optarg; break;
                case 'c': a->config = optarg; break;
                case ARG_AUTO_UP: a->auto_up = true; break;
                case ARG_BUSY_TIMEOUT:
                        if (parse_uint(optarg, 0, 3600000, &a->busy_timeout_ms) < 0) {
                                fprintf(stderr, "migrated: --busy-timeout takes milliseconds, 0..3600000: %s\n", optarg);
                                return CONFIG_EXIT_USAGE;
                        }
                        a->busy_timeout_set = true;
                        break;
                case ARG_UNITS: a->units = optarg; break;
                case ARG_BACKUP_DIR: a->backup_dir = optarg; break;
                case ARG_STATE_DIR: a->state_dir = optarg; break;
                case ARG_ADMIN_GROUP: a->admin_group = optarg; break;
                case ARG_FORMAT:
                        if (parse_format(optarg, &a->format) < 0) {
                                fprintf(stderr, "migrated: --format takes auto, native or prisma: %s\n", optarg);
                                return CONFIG_EXIT_USAGE;
                        }
                        break;
                case ARG_SOCKET_GROUP: a->socket_group = optarg; break;
                case ARG_DATABASE_OWNER: a->database_owner = optarg; break;
                case ARG_DATABASE_GROUP: a->database_group = optarg; break;
                case ARG_DATABASE_MODE:
                        if (parse_mode(optarg, &a->database_mode) < 0)
                                return usage_error("--database-mode takes an octal mode, 0..0777", optarg);
                        a->database_mode_set = true;
                        break;
                case ARG_REQUEST_TIMEOUT:
                        if (parse_uint(optarg, 1, TIMEOUT_MAX_S, &a->request_timeout_s) < 0)
                                return usage_error("--request-timeout takes seconds, 1..86400", optarg);
                        break;
                case ARG_KEEP:
                        if (parse_uint(optarg, 1, 10000, &a->keep) < 0) {
                                fprintf(stderr, "migrated: --keep takes a number, 1..10000: %s\n", optarg);
                                return CONFIG_EXIT_USAGE;
                        }
                        break;
                case ARG_INTEGRITY:
                        if (parse_integrity(optarg, &a->integrity) < 0) {
                                fprintf(stderr, "migrated: --integrity takes quick, full or off: %s\n", optarg);
                                return CONFIG_EXIT_USAGE;
                        }
                        break;
                case ARG_MANAGER: a->manager = optarg; break;
                case ARG_STOP_TIMEOUT:
                case ARG_START_TIMEOUT:
                case ARG_HOLDER_TIMEOUT: {
                        unsigned v;
                        if (parse_uint(optarg, c == ARG_HOLDER_TIMEOUT ? 0 : 1, TIMEOUT_MAX_S, &v) < 0) {
                                fprintf(stderr, "migrated: %s takes seconds, up to 86400: %s\n", argv[optind - 1], optarg);
                                return CONFIG_EXIT_USAGE;
                        }
                        if (c == ARG_STOP_TIMEOUT)
                                a->stop_timeout_s = v;
                        else if (c == ARG_START_TIMEOUT)
                                a->start_timeout_s = v;
                        else {
                                a->holder_timeout_s = v;
                                a->holder_timeout_set = true;
                        }
                        break;
                }
                case 'h': help(); return CONFIG_EXIT_OK;
                case ARG_VERSION: printf("migrated %s\n", PROJECT_VERSION); return CONFIG_EXIT_OK;
                default:
                        fprintf(stderr, "Try 'migrated --help'.\n");
                        return CONFIG_EXIT_USAGE;
                }
        }
        if (optind < argc) {
                fprintf(stderr, "migrated: unexpected argument '%s'\nTry 'migrated --help'.\n", argv[optind]);
                return CONFIG_EXIT_USAGE;
        }
        return CONFIG_RUN;
}

int config_load(int argc, char **argv, config *c) {
        cli a = { .integrity = -1, .format = -2 };
        int r;

        memset(c, 0, sizeof(*c));
        c->backup_keep = DEFAULT_BACKUP_KEEP;
        c->integrity = 1;
        c->format = -1;
        c->admin_gid = (gid_t) -1;
        c->socket_gid = (gid_t) -1;
        c->max_connections = 4096;
        c->max_connections_per_uid = 2048;
        c->idle_timeout_s = 300;
        c->request_timeout_s = DEFAULT_REQUEST_TIMEOUT_S;
        c->database_uid = (uid_t) -1;
        c->database_gid = (gid_t) -1;
        c->database_mode = DEFAULT_DATABASE_MODE;
        c->busy_timeout_ms = DEFAULT_BUSY_TIMEOUT_MS;
        c->max_queue = DEFAULT_MAX_QUEUE;
        c->stop_timeout_s = DEFAULT_STOP_TIMEOUT_S;
        c->start_timeout_s = DEFAULT_START_TIMEOUT_S;
        c->holder_timeout_s = DEFAULT_HOLDER_TIMEOUT_S;
        r = parse_cli(argc, argv, &a);
        if (r != CONFIG_RUN)
                return r;
        if (a.config) {
                _cleanup_free_ char *msg = NULL;
                c->config_file = strdup(a.config);
                r = config_parse_file(a.config, c, &msg);
                if (r == -EINVAL) {
                        fprintf(stderr, "migrated: %s\n", msg ?: "invalid configuration");
                        return CONFIG_EXIT_USAGE;
                }
                if (r < 0) {
                        fprintf(stderr, "migrated: cannot read %s: %s\n", a.config, strerror(-r));
                        return CONFIG_EXIT_USAGE;
                }
        }
        if ((a.database && set_string(&c->database, a.database) < 0) ||
            (a.migrations && set_string(&c->migrations_dir, a.migrations) < 0) ||
            (a.socket && set_string(&c->socket_path, a.socket) < 0)) {
                fprintf(stderr, "migrated: empty or invalid path argument\n");
                return CONFIG_EXIT_USAGE;
        }
        if (a.auto_up)
                c->auto_up = true;
        if (a.units && parse_units(a.units, c) < 0) {
                fprintf(stderr, "migrated: --units takes unit names like \"a.service b.service\", or pm2:NAME, exec:NAME, container:NAME, compose:PROJECT/SERVICE: %s\n", a.units);
                return CONFIG_EXIT_USAGE;
        }
        if (a.manager && parse_manager(a.manager, &c->user_manager) < 0) {
                fprintf(stderr, "migrated: --manager takes system or user: %s\n", a.manager);
                return CONFIG_EXIT_USAGE;
        }
        if (a.stop_timeout_s)
                c->stop_timeout_s = a.stop_timeout_s;
        if (a.start_timeout_s)
                c->start_timeout_s = a.start_timeout_s;
        if (a.holder_timeout_set)
                c->holder_timeout_s = a.holder_timeout_s;
        if (a.backup_dir && set_string(&c->backup_dir, a.backup_dir) < 0) {
                fprintf(stderr, "migrated: --backup-dir must not be empty\n");
                return CONFIG_EXIT_USAGE;
        }
        if (a.state_dir && set_string(&c->state_dir, a.state_dir) < 0) {
                fprintf(stderr, "migrated: --state-dir must not be empty\n");
                return CONFIG_EXIT_USAGE;
        }
        if (a.keep)
                c->backup_keep = a.keep;
        if ((a.admin_group && parse_group(a.admin_group, &c->admin_gid) < 0) ||
            (a.socket_group && parse_group(a.socket_group, &c->socket_gid) < 0)) {
                fprintf(stderr, "migrated: no such group: %s\n", a.admin_group && parse_group(a.admin_group, &c->admin_gid) < 0
                                                                    ? a.admin_group : a.socket_group);
                return CONFIG_EXIT_USAGE;
        }
        if (a.database_owner && parse_user(a.database_owner, &c->database_uid) < 0)
                return usage_error("no such user", a.database_owner);
        if (a.database_group && parse_group(a.database_group, &c->database_gid) < 0)
                return usage_error("no such group", a.database_group);
        if (a.database_mode_set)
                c->database_mode = a.database_mode;
        if (a.request_timeout_s)
                c->request_timeout_s = a.request_timeout_s;
        if (a.integrity >= 0)
                c->integrity = a.integrity;
        if (a.format != -2)
                c->format = a.format;
        if (a.busy_timeout_set)
                c->busy_timeout_ms = a.busy_timeout_ms;
        if (!c->socket_path && !(c->socket_path = strdup(DEFAULT_SOCKET)))
                return CONFIG_EXIT_USAGE;
        if (!c->database || !c->migrations_dir) {
                fprintf(stderr, "migrated: %s is required (flag or config file)\nTry 'migrated --help'.\n",
                        !c->database ? "--database" : "--migrations");
                return CONFIG_EXIT_USAGE;
        }
        if (!c->backup_dir && asprintf(&c->backup_dir, "%s-backups", c->database) < 0)
                return CONFIG_EXIT_USAGE;
        if (make_absolute(&c->database) < 0 || make_absolute(&c->migrations_dir) < 0 ||
            make_absolute(&c->socket_path) < 0 || make_absolute(&c->backup_dir) < 0 ||
            make_absolute(&c->state_dir) < 0) {
                fprintf(stderr, "migrated: cannot resolve relative paths: %s\n", strerror(errno));
                return CONFIG_EXIT_USAGE;
        }
        if (!c->state_dir && !(c->state_dir = statedir_default_path(c->database))) {
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
