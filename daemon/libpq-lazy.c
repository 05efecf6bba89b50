/* SPDX-License-Identifier: MIT */
/* The daemon is linked without libpq: it and the libraries it brings (libssl, libcrypto,
 * Kerberos, LDAP, GnuTLS: about 4.5 MiB of resident mappings and 25 libraries to load at every
 * start) cost nothing on SQLite. These definitions stand in for the libpq functions the
 * PostgreSQL backend calls and load the real library on first use. A new call shows up as an
 * undefined reference when linking migrated: add it here. The prototypes are libpq-fe.h's, which
 * the compiler checks these against. */
#include <dlfcn.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>

#include "libpq-lazy.h"

#define LIBPQ_SONAME "libpq.so.5"

static pthread_once_t once = PTHREAD_ONCE_INIT;
static void *handle;
static char missing[256];

static void load(void) {
        handle = dlopen(LIBPQ_SONAME, RTLD_NOW | RTLD_LOCAL);
        if (!handle) {
                const char *e = dlerror();
                snprintf(missing, sizeof(missing), "%s", e ?: "cannot load " LIBPQ_SONAME);
        }
}

const char *libpq_missing(void) {
        (void) pthread_once(&once, load);
        return handle ? NULL : missing;
}

static void *sym(const char *name) {
        return libpq_missing() ? NULL : dlsym(handle, name);
}

/* A function returning a value: the fallback when libpq is missing (then no connection exists,
 * so only the connection's own calls, given NULL, can be reached). */
#define LAZY(ret, name, params, args, fallback)                          \
        ret name params {                                                \
                __typeof__(&name) f = (__typeof__(&name)) sym(#name);    \
                return f ? f args : fallback;                            \
        }
#define LAZY_VOID(name, params, args)                                    \
        void name params {                                               \
                __typeof__(&name) f = (__typeof__(&name)) sym(#name);    \
                if (f)                                                   \
                        f args;                                          \
        }

LAZY(PGconn *, PQconnectdbParams, (const char *const *keywords, const char *const *values, int expand_dbname),
     (keywords, values, expand_dbname), NULL)
LAZY(ConnStatusType, PQstatus, (const PGconn *conn), (conn), CONNECTION_BAD)
LAZY(char *, PQerrorMessage, (const PGconn *conn), (conn), missing)
LAZY_VOID(PQfinish, (PGconn *conn), (conn))
LAZY_VOID(PQreset, (PGconn *conn), (conn))
LAZY(PQconninfoOption *, PQconninfoParse, (const char *conninfo, char **errmsg), (conninfo, errmsg), NULL)
LAZY_VOID(PQconninfoFree, (PQconninfoOption *options), (options))
LAZY_VOID(PQfreemem, (void *ptr), (ptr))
LAZY(int, PQbackendPID, (const PGconn *conn), (conn), 0)
LAZY(int, PQsocket, (const PGconn *conn), (conn), -1)
LAZY(const char *, PQparameterStatus, (const PGconn *conn, const char *name), (conn, name), NULL)
LAZY(PGTransactionStatusType, PQtransactionStatus, (const PGconn *conn), (conn), PQTRANS_UNKNOWN)
LAZY(int, PQsetnonblocking, (PGconn *conn, int arg), (conn, arg), -1)
LAZY(PGcancel *, PQgetCancel, (PGconn *conn), (conn), NULL)
LAZY_VOID(PQfreeCancel, (PGcancel *cancel), (cancel))
LAZY(int, PQcancel, (PGcancel *cancel, char *errbuf, int size), (cancel, errbuf, size), 0)
LAZY(PGresult *, PQexec, (PGconn *conn, const char *query), (conn, query), NULL)
LAZY(PGresult *, PQexecParams,
     (PGconn *conn, const char *command, int n, const Oid *types, const char *const *values, const int *lengths,
      const int *formats, int result_format),
     (conn, command, n, types, values, lengths, formats, result_format), NULL)
LAZY(int, PQsendQueryParams,
     (PGconn *conn, const char *command, int n, const Oid *types, const char *const *values, const int *lengths,
      const int *formats, int result_format),
     (conn, command, n, types, values, lengths, formats, result_format), 0)
LAZY(PGresult *, PQgetResult, (PGconn *conn), (conn), NULL)
LAZY(int, PQconsumeInput, (PGconn *conn), (conn), 0)
LAZY(int, PQisBusy, (PGconn *conn), (conn), 0)
LAZY(int, PQflush, (PGconn *conn), (conn), -1)
LAZY(PGnotify *, PQnotifies, (PGconn *conn), (conn), NULL)
LAZY(int, PQputCopyData, (PGconn *conn, const char *buffer, int nbytes), (conn, buffer, nbytes), -1)
LAZY(int, PQputCopyEnd, (PGconn *conn, const char *errormsg), (conn, errormsg), -1)
LAZY_VOID(PQclear, (PGresult *res), (res))
LAZY(ExecStatusType, PQresultStatus, (const PGresult *res), (res), PGRES_FATAL_ERROR)
LAZY(char *, PQresultErrorMessage, (const PGresult *res), (res), missing)
LAZY(char *, PQresultErrorField, (const PGresult *res, int fieldcode), (res, fieldcode), NULL)
LAZY(char *, PQcmdTuples, (PGresult *res), (res), missing + sizeof(missing) - 1)
LAZY(int, PQntuples, (const PGresult *res), (res), 0)
LAZY(int, PQnfields, (const PGresult *res), (res), 0)
LAZY(Oid, PQftype, (const PGresult *res, int field), (res, field), 0)
LAZY(int, PQgetisnull, (const PGresult *res, int row, int field), (res, row, field), 1)
LAZY(char *, PQgetvalue, (const PGresult *res, int row, int field), (res, row, field), NULL)
LAZY(char *, PQuser, (const PGconn *conn), (conn), NULL)
LAZY(char *, PQescapeIdentifier, (PGconn *conn, const char *str, size_t len), (conn, str, len), NULL)
