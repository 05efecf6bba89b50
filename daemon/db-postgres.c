/* SPDX-License-Identifier: MIT */
/* The PostgreSQL backend: the connection, its transactions and the query API of the history
 * layer. Every call blocks, so it runs on a worker thread only; db_interrupt() cancels from
 * another thread through a PGcancel made at open. */

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db-postgres-internal.h"
#include "db-postgres.h"
#include "libpq-lazy.h"
#include "macro.h"

/* PostgreSQL type oids of the boolean and integer types (pg_type.dat). */
#define PG_BOOLOID 16
#define PG_INT8OID 20
#define PG_INT2OID 21
#define PG_INT4OID 23

db_pg *to_pg(db *d) {
        return (db_pg *) d;
}

bool pg_result_ok(const PGresult *res) {
        ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;

        return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
}

/* The message without libpq's trailing newline. */
static char *pg_message(db_pg *p, const PGresult *res) {
        const char *m = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
        char *s = strdup(m ?: PQerrorMessage(p->conn) ?: "unknown error");
        size_t n;

        if (s)
                for (n = strlen(s); n > 0 && isspace((unsigned char) s[n - 1]); n--)
                        s[n - 1] = '\0';
        return s;
}

int pg_fail(db_pg *p, const PGresult *res, db_failure *f, const char *what) {
        const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
        _cleanup_free_ char *m = pg_message(p, res);
        int r;

        if (!f)
                return DB_FAILED;
        db_failure_clear(f);
        if (!m)
                return -ENOMEM;
        f->code = PROTOCOL_ERROR_DATABASE;
        f->connection_lost = PQstatus(p->conn) == CONNECTION_BAD;
        if (state && (streq(state, "55P03") || streq(state, "40P01"))) {
                /* lock_not_available (lock_timeout) or deadlock_detected */
                f->code = PROTOCOL_ERROR_BUSY;
                f->retry = true;
                r = asprintf(&f->message, "%s: %s (SQLSTATE %s: another session holds a conflicting lock; find it "
                             "with: migratectl lock-check)", what, m, state);
        } else if (state && (streq(state, "40001") || streq(state, "57P03"))) {
                /* serialization_failure, cannot_connect_now: nothing is wrong with the SQL */
                f->retry = true;
                r = asprintf(&f->message, "%s: %s (SQLSTATE %s: a transient failure)", what, m, state);
        } else if (state && streq(state, "57014") && p->cancel && atomic_load(p->cancel)) {
                f->code = PROTOCOL_ERROR_INTERRUPTED;
                r = asprintf(&f->message, "interrupted: the open transaction was rolled back");
        } else if (state && streq(state, "53100")) {
                r = asprintf(&f->message, "%s: the server's disk is full (%s)", what, m);
        } else if (state)
                r = asprintf(&f->message, "%s: %s (SQLSTATE %s)", what, m, state);
        else
                r = asprintf(&f->message, "%s: %s", what, m);
        if (r < 0)
                f->message = NULL;
        return f->message ? DB_FAILED : -ENOMEM;
}

int pg_exec_simple(db_pg *p, const char *sql, db_failure *f, const char *what) {
        _cleanup_pgresult_ PGresult *res = PQexec(p->conn, sql);

        return pg_result_ok(res) ? 0 : pg_fail(p, res, f, what);
}

char *pg_conninfo_split(const char *target, char **ret_password) {
        PQconninfoOption *opts = PQconninfoParse(target, NULL);
        size_t size = 0;
        char *out = NULL;
        FILE *f;

        if (ret_password)
                *ret_password = NULL;
        if (!opts)
                return strdup("(an unparsable connection string)");
        f = open_memstream(&out, &size);
        if (f) {
                bool first = true;

                for (PQconninfoOption *o = opts; o->keyword; o++) {
                        if (!o->val || !*o->val)
                                continue;
                        if (streq(o->keyword, "password")) {
                                if (ret_password)
                                        *ret_password = strdup(o->val);
                                continue;
                        }
                        /* values quoted as conninfo wants them: 'it''s' → 'it\'s' */
                        fprintf(f, "%s%s='", first ? "" : " ", o->keyword);
                        for (const char *c = o->val; *c; c++)
                                fprintf(f, "%s%c", *c == '\'' || *c == '\\' ? "\\" : "", *c);
                        fputc('\'', f);
                        first = false;
                }
                fclose(f);
        }
        PQconninfoFree(opts);
        return out;
}

static int unreadable(db_failure *f, const char *path, int error) {
        db_failure_clear(f);
        f->code = PROTOCOL_ERROR_DATABASE;
        if (asprintf(&f->message, "cannot read the password file %s: %s", path, strerror(error)) < 0)
                f->message = NULL;
        return f->message ? DB_FAILED : -ENOMEM;
}

/* The password from a file (first line), or from a systemd credential of that name when the name
 * is not a path. */
static int read_password(const char *file, char **ret, db_failure *f) {
        _cleanup_free_ char *path = NULL;
        const char *creds = getenv("CREDENTIALS_DIRECTORY");
        char buf[1024];
        ssize_t n;
        int fd;

        *ret = NULL;
        if (!file)
                return 0;
        if (file[0] != '/' && creds && asprintf(&path, "%s/%s", creds, file) < 0)
                return -ENOMEM;
        fd = open(path ?: file, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return unreadable(f, path ?: file, errno);
        n = read(fd, buf, sizeof(buf) - 1);
        if (n < 0) {
                int error = errno;
                close(fd);
                return unreadable(f, path ?: file, error);
        }
        close(fd);
        buf[n] = '\0';
        buf[strcspn(buf, "\r\n")] = '\0';
        *ret = strdup(buf);
        explicit_bzero(buf, sizeof(buf));
        return *ret ? 0 : -ENOMEM;
}

/* A pooler in transaction mode hands each transaction to any server connection, so a session
 * lock and the transaction it guards could be on different sessions. Such a pooler answers the
 * startup with its own process key, never the server's backend pid. */
static int refuse_pooler(db_pg *p, db_failure *f) {
        _cleanup_pgresult_ PGresult *res = PQexec(p->conn, "SELECT pg_backend_pid()");
        int server_pid;

        if (!pg_result_ok(res) || PQntuples(res) != 1)
                return pg_fail(p, res, f, "cannot read the server's backend pid");
        server_pid = atoi(PQgetvalue(res, 0, 0));
        if (server_pid == PQbackendPID(p->conn))
                return 0;
        db_failure_clear(f);
        f->code = PROTOCOL_ERROR_DATABASE;
        if (asprintf(&f->message,
                     "the connection goes through a connection pooler (the server's backend pid %d is not the "
                     "pid %d the connection was given): migrated needs one server session for its lock and its "
                     "transactions; connect to PostgreSQL directly (or through a pooler in session mode)",
                     server_pid, PQbackendPID(p->conn)) < 0)
                f->message = NULL;
        return f->message ? DB_FAILED : -ENOMEM;
}

/* The session's settings, at open and again after a lost connection was reset. */
static int setup_session(db_pg *p, db_failure *f) {
        int r;

        /* a reset connection has a new cancel key; db_interrupt() may be using the old one */
        pthread_mutex_lock(&p->cancel_lock);
        if (p->canceller)
                PQfreeCancel(p->canceller);
        p->canceller = PQgetCancel(p->conn);
        pthread_mutex_unlock(&p->cancel_lock);
        r = refuse_pooler(p, f);
        /* a daemon killed mid-statement must not leave its transaction open (and its locks
         * held) until the statement ends: the server checks the client is still there */
        if (r == 0)
                (void) pg_exec_simple(p, "SET client_connection_check_interval = '1s'", NULL, NULL);
        if (r == 0 && p->read_only)
                r = pg_exec_simple(p, "SET default_transaction_read_only = on", f, "cannot set up the connection");
        if (r == 0)
                r = pg_exec_simple(p, "SET client_min_messages = warning", f, "cannot set up the connection");
        if (r == 0 && !p->search_path) {
                _cleanup_pgresult_ PGresult *res = PQexec(p->conn, "SHOW search_path");
                if (!pg_result_ok(res) || PQntuples(res) != 1)
                        r = pg_fail(p, res, f, "cannot read search_path");
                else if (!(p->search_path = strdup(PQgetvalue(res, 0, 0))))
                        r = -ENOMEM;
        }
        return r;
}

/* A script's SET search_path must not move migrated's own tables: the session's is put back
 * (for the rest of the transaction and after it). */
int pg_restore_search_path(db_pg *p, db_failure *f) {
        _cleanup_pgresult_ PGresult *res = NULL;
        const char *v[1] = { p->search_path };

        res = PQexecParams(p->conn, "SELECT pg_catalog.set_config('search_path', $1, false)", 1, NULL, v, NULL, NULL,
                           0);
        return pg_result_ok(res) ? 0 : pg_fail(p, res, f, "cannot restore search_path");
}

static void pg_close(db *d) {
        db_pg *p = to_pg(d);

        if (!p)
                return;
        if (p->canceller)
                PQfreeCancel(p->canceller);
        pthread_mutex_destroy(&p->cancel_lock);
        PQfinish(p->conn);
        free(p->conninfo);
        free(p->search_path);
        if (p->password)
                explicit_bzero(p->password, strlen(p->password));
        free(p->password);
        free(p);
}

/* Connects with o's settings; dbname (NULL: the target's) names another database on the same
 * server, password (NULL: the target's or o's password file) is given as is. */
static int pg_connect(const db_options *o, const char *dbname, const char *password, db **ret, db_failure *f) {
        const char *missing = libpq_missing();
        db_pg *p;
        int r;

        if (missing) {
                db_failure_clear(f);
                f->code = PROTOCOL_ERROR_DATABASE;
                if (asprintf(&f->message, "the PostgreSQL backend needs libpq: %s", missing) < 0)
                        f->message = NULL;
                return f->message ? DB_FAILED : -ENOMEM;
        }

        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->base.backend = &db_postgres_backend;
        pthread_mutex_init(&p->cancel_lock, NULL);
        p->lock_timeout_ms = o->busy_timeout_ms;
        p->cancel = o->cancel;
        p->read_only = o->read_only;
        p->prisma_lock = o->format == MIGDIR_PRISMA;
        /* pg_dump gets the connection without its password, which goes into its environment */
        p->conninfo = pg_conninfo_split(o->target, &p->password);
        r = p->conninfo ? 0 : -ENOMEM;
        if (r == 0 && password) {
                free(p->password);
                p->password = strdup(password);
                r = p->password ? 0 : -ENOMEM;
        } else if (r == 0 && o->password_file) {
                free(p->password);
                r = read_password(o->password_file, &p->password, f);
        }
        if (r != 0) {
                pg_close(&p->base);
                return r;
        }
        /* the target expands into the connection's settings; the application name and the TCP
         * keepalives are defaults it may override, the password file wins. Without keepalives a
         * daemon whose network is cut waits for its statement's result forever (nothing, not even
         * a reset, arrives), with its job unanswered and its dependents stopped: with them the
         * kernel fails the socket after about 25 s of silence. A second dbname is a plain name
         * that overrides the target's. */
        const char *keys[9] = { "application_name", "keepalives", "keepalives_idle", "keepalives_interval",
                                "keepalives_count", "dbname" };
        const char *values[9] = { o->read_only ? "migrated (reader)" : "migrated", "1", "10", "5", "3", o->target };
        size_t n = 6;
        if (dbname) {
                keys[n] = "dbname";
                values[n++] = dbname;
        }
        if (p->password) {
                keys[n] = "password";
                values[n++] = p->password;
        }
        keys[n] = values[n] = NULL;
        p->conn = PQconnectdbParams(keys, values, 1);
        if (!p->conn) {
                pg_close(&p->base);
                return -ENOMEM;
        }
        if (PQstatus(p->conn) != CONNECTION_OK) {
                r = pg_fail(p, NULL, f, "cannot connect to PostgreSQL");
                pg_close(&p->base);
                return r;
        }
        r = setup_session(p, f);
        if (r != 0) {
                pg_close(&p->base);
                return r;
        }
        *ret = &p->base;
        return 0;
}

static int pg_open(const db_options *o, db **ret, db_failure *f) {
        return pg_connect(o, NULL, NULL, ret, f);
}

int pg_open_other(db *d, const char *dbname, db **ret, db_failure *f) {
        db_pg *p = to_pg(d);
        db_options o = { .backend = "postgresql", .target = p->conninfo, .busy_timeout_ms = p->lock_timeout_ms,
                         .format = MIGDIR_NATIVE };

        return pg_connect(&o, dbname, p->password, ret, f);
}

static void pg_interrupt(db *d) {
        db_pg *p = to_pg(d);
        char err[256];

        pthread_mutex_lock(&p->cancel_lock);
        if (p->canceller)
                (void) PQcancel(p->canceller, err, sizeof(err));
        pthread_mutex_unlock(&p->cancel_lock);
}

static void pg_rollback(db *d);

/* A transaction outside a job's lock (mark, baseline, the attempt records) takes the lock for
 * itself, so that every write to the database happens under it. */
static int pg_begin(db *d, db_failure *f) {
        db_pg *p = to_pg(d);
        char sql[64];
        int r;

        if (!p->read_only && !p->locked) {
                r = pg_lock(d, NULL, NULL, f);
                if (r != 0)
                        return r;
                p->lock_by_begin = true;
        }
        r = pg_exec_simple(p, "BEGIN", f, "cannot start a transaction");
        if (r != 0)
                return r;
        p->in_transaction = true;
        /* a statement waiting for a table lock gives up after lock_timeout: the whole plan is
         * rolled back and retried rather than queueing every other session behind it */
        snprintf(sql, sizeof(sql), "SET LOCAL lock_timeout = %u", p->lock_timeout_ms);
        r = pg_exec_simple(p, sql, f, "cannot set lock_timeout");
        if (r != 0)
                pg_rollback(d);
        return r;
}

/* An asynchronous commit (synchronous_commit off for this transaction only): the server returns
 * before its WAL reaches the disk, and the next synchronous commit flushes the WAL up to and past
 * it (WAL is written in order), so a server crash can lose it only together with everything after
 * it: for the "running" attempt record, a database still as it was. */
static int pg_begin_unsynced(db *d, db_failure *f) {
        db_pg *p = to_pg(d);
        int r = pg_begin(d, f);

        if (r == 0 && !p->read_only) {
                r = pg_exec_simple(p, "SET LOCAL synchronous_commit = off", f, "cannot set synchronous_commit");
                if (r != 0)
                        pg_rollback(d);
        }
        return r;
}

static void release_begin_lock(db_pg *p) {
        if (p->lock_by_begin) {
                p->lock_by_begin = false;
                pg_unlock(&p->base);
        }
}

static void pg_rollback(db *d) {
        db_pg *p = to_pg(d);

        p->in_transaction = false;
        if (PQtransactionStatus(p->conn) != PQTRANS_IDLE)
                PQclear(PQexec(p->conn, "ROLLBACK"));
        release_begin_lock(p);
}

static int pg_commit(db *d, db_failure *f) {
        db_pg *p = to_pg(d);
        int r = pg_exec_simple(p, "COMMIT", f, "cannot commit");

        p->in_transaction = false;
        if (r != 0)
                pg_rollback(d);
        release_begin_lock(p);
        return r;
}

/* The history layer writes ?N; PostgreSQL spells it $N. Its CREATE TABLE statements are
 * SQLite's: here INTEGER is 64 bits (BIGINT) and an "id INTEGER PRIMARY KEY" numbers itself. */
static char *translate(const char *sql) {
        static const char rowid[] = "id INTEGER PRIMARY KEY", identity[] = "id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY";
        bool ddl = strncasecmp(sql, "CREATE TABLE", 12) == 0;
        size_t n = strlen(sql);
        char *out = malloc(n * 3 + sizeof(identity)), *o = out;
        bool quoted = false;

        if (!out)
                return NULL;
        for (const char *s = sql; *s;) {
                if (*s == '\'')
                        quoted = !quoted;
                if (!quoted && *s == '?' && isdigit((unsigned char) s[1])) {
                        *o++ = '$';
                        s++;
                } else if (!quoted && ddl && strncmp(s, rowid, strlen(rowid)) == 0) {
                        o = stpcpy(o, identity);
                        s += strlen(rowid);
                } else if (!quoted && ddl && strncmp(s, " INTEGER", 8) == 0) {
                        o = stpcpy(o, " BIGINT");
                        s += 8;
                } else
                        *o++ = *s++;
        }
        *o = '\0';
        return out;
}

static db_value column_value(const PGresult *res, int row, int col) {
        const char *s;

        if (PQgetisnull(res, row, col))
                return DB_NULL;
        s = PQgetvalue(res, row, col);
        switch (PQftype(res, col)) {
        case PG_INT8OID:
        case PG_INT2OID:
        case PG_INT4OID:
                return (db_value) { .type = DB_VALUE_INT, .i = strtoll(s, NULL, 10), .s = s };
        case PG_BOOLOID:
                /* a tool's boolean (goose's is_applied, golang-migrate's dirty) reads as SQLite's 0/1 */
                return (db_value) { .type = DB_VALUE_INT, .i = s[0] == 't', .s = s };
        default:
                return (db_value) { .type = DB_VALUE_TEXT, .i = strtoll(s, NULL, 10), .s = s };
        }
}

static int pg_query(db *d, const char *sql, const db_value *params, size_t n_params, db_row_fn row, void *userdata,
                    int64_t *ret_changes, db_failure *f, const char *what) {
        _cleanup_free_ char *text = translate(sql);
        _cleanup_pgresult_ PGresult *res = NULL;
        db_pg *p = to_pg(d);
        Oid types[16];
        const char *values[16];
        char ints[16][24];
        int r = 0;

        if (!text)
                return -ENOMEM;
        if (n_params > ELEMENTSOF(types))
                return -E2BIG;
        for (size_t i = 0; i < n_params; i++) {
                /* an integer is sent as int8; text as "unknown", so that the column decides */
                types[i] = params[i].type == DB_VALUE_INT ? PG_INT8OID : 0;
                values[i] = params[i].type == DB_VALUE_TEXT ? params[i].s : NULL;
                if (params[i].type == DB_VALUE_INT) {
                        snprintf(ints[i], sizeof(ints[i]), "%" PRId64, params[i].i);
                        values[i] = ints[i];
                }
        }
        res = PQexecParams(p->conn, text, (int) n_params, types, values, NULL, NULL, 0);
        if (!pg_result_ok(res))
                return pg_fail(p, res, f, what);
        for (int i = 0; row && r == 0 && i < PQntuples(res); i++) {
                db_value cols[32];
                int n = PQnfields(res);

                if (n > (int) ELEMENTSOF(cols))
                        return -E2BIG;
                for (int c = 0; c < n; c++)
                        cols[c] = column_value(res, i, c);
                r = row(cols, (size_t) n, userdata);
        }
        if (ret_changes)
                *ret_changes = strtoll(PQcmdTuples(res) ?: "0", NULL, 10);
        return r;
}

static int pg_table_exists(db *d, const char *name, bool *ret, db_failure *f) {
        _cleanup_pgresult_ PGresult *res = NULL;
        db_pg *p = to_pg(d);
        const char *v[1] = { name };

        res = PQexecParams(p->conn,
                           "SELECT 1 FROM pg_catalog.pg_tables WHERE schemaname = current_schema() AND tablename = $1",
                           1, NULL, v, NULL, NULL, 0);
        if (!pg_result_ok(res))
                return pg_fail(p, res, f, "cannot list the tables");
        *ret = PQntuples(res) > 0;
        return 0;
}

static int pg_has_user_tables(db *d, const char *const *bookkeeping, bool *ret) {
        _cleanup_pgresult_ PGresult *res = NULL;
        db_pg *p = to_pg(d);

        res = PQexec(p->conn, "SELECT tablename FROM pg_catalog.pg_tables WHERE schemaname = current_schema()");
        if (!pg_result_ok(res))
                return -EIO;
        *ret = false;
        for (int i = 0; i < PQntuples(res) && !*ret; i++) {
                const char *t = PQgetvalue(res, i, 0);
                bool ours = false;

                for (const char *const *b = bookkeeping; *b && !ours; b++)
                        ours = streq(*b, t);
                *ret = !ours;
        }
        return 0;
}

/* Constraints are checked by the server as each statement runs (deferred ones at commit). */
static int pg_check_foreign_keys(db *d, db_failure *f) {
        return 0;
}

/* The server names the database; a connection cannot be renamed over, but the server may end
 * it (a restart, pg_terminate_backend): between transactions it is opened again; inside one
 * the transaction is gone, which is a failure, never a silent reconnect before COMMIT. */
static int pg_check_identity(db *d, db_failure *f) {
        _cleanup_pgresult_ PGresult *res = NULL;
        db_pg *p = to_pg(d);

        res = PQexec(p->conn, "SELECT 1");
        if (pg_result_ok(res))
                return 0;
        if (PQstatus(p->conn) == CONNECTION_OK || p->in_transaction)
                return pg_fail(p, res, f, "the connection to PostgreSQL failed (the transaction is rolled back)");
        /* the server ended the session: its transaction and the lock went with it */
        PQreset(p->conn);
        p->locked = p->lock_by_begin = false;
        if (PQstatus(p->conn) != CONNECTION_OK)
                return pg_fail(p, NULL, f, "the connection to PostgreSQL was lost");
        return setup_session(p, f);
}

/* Indexes left invalid (a CREATE INDEX CONCURRENTLY that failed) are the damage a migration
 * can leave behind on PostgreSQL. */
static int pg_check_integrity(db *d, bool full, db_failure *f) {
        _cleanup_pgresult_ PGresult *res = NULL;
        db_pg *p = to_pg(d);

        res = PQexec(p->conn, "SELECT i.indexrelid::regclass::text FROM pg_catalog.pg_index i "
                              "JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid "
                              "WHERE NOT i.indisvalid AND c.relnamespace = current_schema()::regnamespace");
        if (!pg_result_ok(res))
                return pg_fail(p, res, f, "cannot check the indexes");
        if (PQntuples(res) == 0)
                return 0;
        db_failure_clear(f);
        f->code = PROTOCOL_ERROR_INTEGRITY;
        if (asprintf(&f->message, "index %s is invalid (a failed CREATE INDEX CONCURRENTLY?): drop or REINDEX it",
                     PQgetvalue(res, 0, 0)) < 0)
                return -ENOMEM;
        return DB_FAILED;
}

static int pg_info(db *d, json_t *status) {
        db_pg *p = to_pg(d);

        const char *v = PQparameterStatus(p->conn, "server_version");

        return json_object_set_new(status, "server_version", json_string(v ?: "?")) < 0 ? -ENOMEM : 0;
}

static int pg_size(db *d, uint64_t *ret_bytes) {
        _cleanup_pgresult_ PGresult *res = PQexec(to_pg(d)->conn, "SELECT pg_database_size(current_database())");

        if (!pg_result_ok(res) || PQntuples(res) != 1)
                return -EIO;
        *ret_bytes = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
        return 0;
}

const db_backend db_postgres_backend = {
        .name = "postgresql",
        .backup_suffix = ".pgdump",
        .open = pg_open,
        .close = pg_close,
        .interrupt = pg_interrupt,
        .begin = pg_begin,
        .begin_unsynced = pg_begin_unsynced,
        .commit = pg_commit,
        .rollback = pg_rollback,
        .exec_script = pg_exec_script,
        .check_foreign_keys = pg_check_foreign_keys,
        .check_identity = pg_check_identity,
        .query = pg_query,
        .table_exists = pg_table_exists,
        .has_user_tables = pg_has_user_tables,
        .backup_to = pg_backup_to,
        .restore_from = pg_restore_from,
        .inspect_backup = pg_inspect_backup,
        .backup_complete = pg_backup_complete,
        .info = pg_info,
        .check_integrity = pg_check_integrity,
        .size = pg_size,
        .lock_report = pg_lock_report,
        .lock_report_live = pg_lock_report_live,
        .try_lock = pg_try_lock,
        .reset = pg_reset,
        .lock = pg_lock,
        .unlock = pg_unlock,
        .drift = pg_drift,
        .schema_dump = pg_schema_dump,
};

struct pg_conn *db_postgres_conn(db *d) {
        return d && d->backend == &db_postgres_backend ? to_pg(d)->conn : NULL;
}
