/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>

/* Tells whether the migrations directory may have changed since the last scan, so that a request
 * rescans it only after a change: inotify on the directory and its subdirectories (new, removed,
 * renamed, written, closed after writing, attributes), plus a stat of the path on every check (a
 * directory renamed over, a parent symlink swapped). Where inotify cannot see every change (a
 * network file system, a symlinked file, a queue overflow) every check says "rescan". One
 * dirwatch per thread; only dirwatch_force may be called from another thread. */
typedef struct dirwatch dirwatch;

/* Called for each name (relative to the directory, "sub/file" in a subdirectory) written or
 * replaced since the last check, whose earlier content must not be reused; NULL: every name. */
typedef void (*dirwatch_changed_fn)(const char *name, void *userdata);

/* Never fails for want of inotify: such a dirwatch says "rescan" on every check. */
int dirwatch_new(const char *dir, dirwatch **ret);
dirwatch *dirwatch_free(dirwatch *w);

/* 0: nothing changed since the last check that returned 1 and dirwatch_scanned; 1: rescan (the
 * watches are in place before it, so a change during the scan is seen by the next check). */
int dirwatch_check(dirwatch *w, dirwatch_changed_fn changed, void *userdata);

/* The scan that followed a check succeeded (false: the next check rescans). */
void dirwatch_scanned(dirwatch *w, bool ok);

/* The next check rescans and reuses nothing (SIGHUP); safe from any thread. */
void dirwatch_force(dirwatch *w);
