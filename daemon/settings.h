/* SPDX-License-Identifier: MIT */
#pragma once

/* The daemon's settings: an INI file (one per database) overlaid with command-line flags, which
 * win. Unknown sections and keys are errors: a misspelt key must not silently do nothing. */

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* One key of a dependent's section, e.g. [pm2.api] home = /srv/api/.pm2 (deps.h reads them). */
typedef struct dep_setting {
        char *section;
        char *key;
        char *value;
} dep_setting;

typedef struct config {
        char *database;         /* SQLite: the file; PostgreSQL: a name for backups and logs */
        char *backend;          /* "sqlite" (NULL) or "postgresql" */
        char *connection;       /* PostgreSQL: libpq conninfo or URL */
        char *password_file;    /* PostgreSQL: the password, or a systemd credential's name */
        char *migrations_dir;
        int format;             /* migdir_format, or -1: detect from the directory */
        char *socket_path;
        char *config_file;
        char *state_dir;        /* default: statedir_default_path() */
        bool auto_up;
        unsigned busy_timeout_ms;
        /* a database the daemon creates: its owner, group and mode ((uid_t)/(gid_t) -1: ours) */
        uid_t database_uid;
        gid_t database_gid;
        unsigned database_mode;
        unsigned max_queue;
        /* who may change things, and how many may connect */
        gid_t admin_gid;        /* (gid_t) -1: none */
        gid_t socket_gid;       /* (gid_t) -1: keep the creator's */
        unsigned max_connections;
        unsigned max_connections_per_uid;
        unsigned idle_timeout_s;
        unsigned request_timeout_s; /* an unfinished request line, from its first byte */
        /* dependent units, and dependents of other kinds ("pm2:api", "exec:NAME"; deps.h) */
        char **units;
        size_t n_units;
        dep_setting *dep_settings;
        size_t n_dep_settings;
        bool user_manager;
        unsigned stop_timeout_s;
        unsigned start_timeout_s;
        unsigned holder_timeout_s;
        /* online migrations (classify.h): whether an online plan runs with the dependents
         * running (online = auto) or every plan stops them (never), the bound on how long such a
         * plan may hold the write lock, and what a plan over it does: stop them, or be refused */
        bool online_never;
        unsigned online_lock_ms;
        bool online_refuse_slow;
        /* backups and checks */
        char *backup_dir;       /* default: "<database>-backups" */
        unsigned backup_keep;
        bool no_auto_backup;    /* no backup before a change (still on demand) */
        int integrity;          /* engine_integrity */
        /* metrics for Prometheus (metrics.h): NULL, off */
        char *metrics_textfile;
        char *metrics_listen;
        /* many hosts on one PostgreSQL database (hosts.h): NULL, the kernel's host name */
        char *host_name;
        /* a breaking plan drains every live host ("all") or only this one ("self") */
        char *drain;
        unsigned drain_timeout_s;
        /* --one-shot: serve the one client connected on fd 3 (migratectl --database), no socket,
         * exit when it closes */
        bool one_shot;
        /* seeds (engine-seed.c): NULL, "seeds" beside the migrations directory */
        char *seeds_dir;
        unsigned seed_retries;
        unsigned seed_backoff_ms;
        /* [dev] allow_reset: migratectl reset may drop everything (development only) */
        bool allow_reset;
} config;

typedef enum setting_type {
        SETTING_STRING,    /* char *, not empty */
        SETTING_UINT,      /* unsigned, min..max */
        SETTING_BOOL,      /* bool; its flag takes no argument and means true */
        SETTING_MODE,      /* unsigned, octal, at most 0777 */
        SETTING_USER,      /* uid_t, a name or a number */
        SETTING_GROUP,     /* gid_t, a name or a number */
        SETTING_UNITS,     /* units and n_units */
        SETTING_MANAGER,   /* bool user_manager: system or user */
        SETTING_FORMAT,    /* int migdir_format, -1: auto */
        SETTING_INTEGRITY, /* int engine_integrity */
        SETTING_LOOPBACK,  /* char *, a loopback address and a port (metrics.h) */
        SETTING_ONLINE,    /* bool online_never: auto (false) or never (true) */
} setting_type;

/* One setting: a key of the INI file, and maybe a flag (settings.c has the table). */
typedef struct setting {
        const char *section, *key;
        const char *flag;  /* the long option without "--"; NULL: the file only */
        char short_flag;   /* 0: none */
        setting_type type;
        unsigned min, max; /* SETTING_UINT */
        const char *unit;  /* SETTING_UINT: "seconds", "milliseconds" or NULL, for the messages */
        const char *dflt;  /* the default, parsed like a value; NULL: zero (or see config_load) */
        size_t offset;     /* of its field in config */
        const char *arg;   /* --help: the flag's argument, NULL for none */
        const char *help;  /* --help: what it does */
} setting;

extern const setting settings_table[];
extern const size_t settings_n;

enum {
        CONFIG_RUN = 0,
        CONFIG_EXIT_OK = 1,    /* --help or --version was printed */
        CONFIG_EXIT_USAGE = 2, /* an error was printed; exit with 2 */
};

/* Parses argv and the config file it names. Prints errors itself. */
int config_load(int argc, char **argv, config *ret);
void config_clear(config *c);

/* Whether the database is a server's (PostgreSQL) rather than a file. */
bool config_is_server(const config *c);
/* What the backend opens: the file, or the server's connection string. */
const char *config_target(const config *c);
/* A server's database, once connected: its name (when [database] path did not give one) keys the
 * state directory, and the backups go into it unless [backup] dir says otherwise. */
int config_name_server(config *c, const char *name);

/* Reads one INI file into c (used by config_load; exposed for tests and fuzzing). Returns 0, or
 * -EINVAL with *ret_message describing file, line and key, or -errno when the file is unreadable. */
int config_parse_file(const char *path, config *c, char **ret_message);
