/* SPDX-License-Identifier: MIT */
/* migratectl needs SQLite and libsystemd for one verb only (`lockcheck --database`, which
 * inspects a database file and names the unit holding a lock, common/lockinfo-inspect.c and
 * common/lockcheck.c). Linking them would load libsystemd and its seven libraries at every start
 * of every verb, so the client is linked without them and these definitions stand in for the few
 * functions that code calls: each loads the real library on first use. A new call in that code
 * shows up as an undefined reference when linking migratectl: add it here. */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stddef.h>
#include <systemd/sd-login.h>


typedef struct lazy_lib {
        const char *soname;
        pthread_once_t once;
        void *handle;
} lazy_lib;

static lazy_lib lib_sqlite = { "libsqlite3.so.0", PTHREAD_ONCE_INIT, NULL };
static lazy_lib lib_systemd = { "libsystemd.so.0", PTHREAD_ONCE_INIT, NULL };

static void open_sqlite(void) {
        lib_sqlite.handle = dlopen(lib_sqlite.soname, RTLD_NOW | RTLD_LOCAL);
}

static void open_systemd(void) {
        lib_systemd.handle = dlopen(lib_systemd.soname, RTLD_NOW | RTLD_LOCAL);
}

/* The real function, or NULL when the library cannot be loaded. */
static void *lazy_sym(lazy_lib *l, void (*open_fn)(void), const char *name) {
        (void) pthread_once(&l->once, open_fn);
        return l->handle ? dlsym(l->handle, name) : NULL;
}

#define SQLITE_SYM(name) ((__typeof__(&name)) lazy_sym(&lib_sqlite, open_sqlite, #name))
#define SYSTEMD_SYM(name) ((__typeof__(&name)) lazy_sym(&lib_systemd, open_systemd, #name))

int sqlite3_open_v2(const char *filename, sqlite3 **ppdb, int flags, const char *vfs) {
        __typeof__(&sqlite3_open_v2) f = SQLITE_SYM(sqlite3_open_v2);

        if (!f) {
                *ppdb = NULL;
                return SQLITE_CANTOPEN;
        }
        return f(filename, ppdb, flags, vfs);
}

int sqlite3_close(sqlite3 *db) {
        __typeof__(&sqlite3_close) f = db ? SQLITE_SYM(sqlite3_close) : NULL;

        return f ? f(db) : SQLITE_OK;
}

int sqlite3_busy_timeout(sqlite3 *db, int ms) {
        __typeof__(&sqlite3_busy_timeout) f = SQLITE_SYM(sqlite3_busy_timeout);

        return f ? f(db, ms) : SQLITE_MISUSE;
}

/* Only the options that take (int, int *) are used (SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE). */
int sqlite3_db_config(sqlite3 *db, int op, ...) {
        __typeof__(&sqlite3_db_config) f = SQLITE_SYM(sqlite3_db_config);
        va_list ap;
        int value, *ret;

        va_start(ap, op);
        value = va_arg(ap, int);
        ret = va_arg(ap, int *);
        va_end(ap);
        return f ? f(db, op, value, ret) : SQLITE_MISUSE;
}

int sqlite3_db_readonly(sqlite3 *db, const char *name) {
        __typeof__(&sqlite3_db_readonly) f = SQLITE_SYM(sqlite3_db_readonly);

        return f ? f(db, name) : -1;
}

int sqlite3_exec(sqlite3 *db, const char *sql, int (*callback)(void *, int, char **, char **), void *arg,
                 char **errmsg) {
        __typeof__(&sqlite3_exec) f = SQLITE_SYM(sqlite3_exec);

        return f ? f(db, sql, callback, arg, errmsg) : SQLITE_MISUSE;
}

const char *sqlite3_errmsg(sqlite3 *db) {
        __typeof__(&sqlite3_errmsg) f = SQLITE_SYM(sqlite3_errmsg);

        return f ? f(db) : "cannot load libsqlite3.so.0";
}

const char *sqlite3_errstr(int rc) {
        __typeof__(&sqlite3_errstr) f = SQLITE_SYM(sqlite3_errstr);

        return f ? f(rc) : "cannot load libsqlite3.so.0";
}

int sd_pid_get_unit(pid_t pid, char **unit) {
        __typeof__(&sd_pid_get_unit) f = SYSTEMD_SYM(sd_pid_get_unit);

        return f ? f(pid, unit) : -EOPNOTSUPP;
}

int sd_pid_get_user_unit(pid_t pid, char **unit) {
        __typeof__(&sd_pid_get_user_unit) f = SYSTEMD_SYM(sd_pid_get_user_unit);

        return f ? f(pid, unit) : -EOPNOTSUPP;
}
