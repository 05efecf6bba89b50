/* SPDX-License-Identifier: MIT */
#pragma once

/* Job ids are never reused, also across a crash before a job recorded anything: ids are reserved
 * in blocks, and a block is recorded durably in the state directory before any id in it is
 * handed out. A restart continues after the last reserved block, so ids may skip but never
 * repeat. */

#include <stdint.h>

#define JOBIDS_BLOCK 64

/* The last reserved id, or 0 when nothing was ever reserved. */
int jobids_load(int dirfd, uint64_t *ret_reserved);

/* Records that every id up to and including through is reserved. */
int jobids_reserve(int dirfd, uint64_t through);
