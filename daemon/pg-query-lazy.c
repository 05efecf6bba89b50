/* SPDX-License-Identifier: MIT */
/* libpg_query (PostgreSQL's parser, for classify-pg.c) is loaded when a PostgreSQL plan is first
 * classified, as libpq is (libpq-lazy.c): a daemon on SQLite maps none of it (about 600 KiB
 * resident). Without the library a PostgreSQL statement cannot be parsed, and classify-pg.c
 * then calls it breaking, which is the safe side (the dependents are stopped). */
#include "config.h" /* HAVE_PG_QUERY */

#if HAVE_PG_QUERY
#include <dlfcn.h>
#include <pg_query.h>
#include <pthread.h>
#include <stdio.h>

/* Debian's libpg-query1504.0; the development symlink as a fallback for other builds */
static const char *const sonames[] = { "libpg_query.so.1504.0", "libpg_query.so" };

static pthread_once_t once = PTHREAD_ONCE_INIT;
static void *handle;
static char missing[256] = "cannot load libpg_query";
static PgQueryError missing_error = { .message = missing };

static void load(void) {
        for (size_t i = 0; !handle && i < sizeof(sonames) / sizeof(sonames[0]); i++)
                handle = dlopen(sonames[i], RTLD_NOW | RTLD_LOCAL);
        if (!handle) {
                const char *e = dlerror();
                snprintf(missing, sizeof(missing), "PostgreSQL's parser is not available: %s",
                         e ?: "cannot load libpg_query");
        }
}

static void *sym(const char *name) {
        (void) pthread_once(&once, load);
        return handle ? dlsym(handle, name) : NULL;
}

PgQueryParseResult pg_query_parse(const char *input) {
        __typeof__(&pg_query_parse) f = (__typeof__(&pg_query_parse)) sym("pg_query_parse");

        return f ? f(input) : (PgQueryParseResult) { .error = &missing_error };
}

void pg_query_free_parse_result(PgQueryParseResult result) {
        __typeof__(&pg_query_free_parse_result) f =
                (__typeof__(&pg_query_free_parse_result)) sym("pg_query_free_parse_result");

        if (f && result.error != &missing_error)
                f(result);
}
#endif
