/* SPDX-License-Identifier: MIT */
#pragma once

/* The daemon's settings: an INI file (one per database) overlaid with command-line flags, which
 * win. Unknown sections and keys are errors: a misspelt key must not silently do nothing. */

#include <stdbool.h>
#include <sys/types.h>

/* One key of a dependent's section, e.g. [pm2.api] home = /srv/api/.pm2 (deps.h reads them). */
typedef struct dep_setting {
        char *section;
        char *key;
        char *value;
} dep_setting;

typedef struct config {
        char *database;
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
        /* backups and checks */
        char *backup_dir;       /* default: "<database>-backups" */
        unsigned backup_keep;
        int integrity;          /* engine_integrity */
} config;

enum {
        CONFIG_RUN = 0,
        CONFIG_EXIT_OK = 1,    /* --help or --version was printed */
        CONFIG_EXIT_USAGE = 2, /* an error was printed; exit with 2 */
};

/* Parses argv and the config file it names. Prints errors itself. */
int config_load(int argc, char **argv, config *ret);
void config_clear(config *c);

/* Reads one INI file into c (used by config_load; exposed for tests and fuzzing). Returns 0, or
 * -EINVAL with *ret_message describing file, line and key, or -errno when the file is unreadable. */
int config_parse_file(const char *path, config *c, char **ret_message);
