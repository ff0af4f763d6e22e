/* SPDX-License-Identifier: MIT */
/* libbinned: build skeleton; the allocator lands in the following commits. */
#include <ctxalloc/binned.h>

size_t ca_binned_small_max(void);
size_t ca_binned_small_max(void) { return CA_BINNED_SMALL_MAX; }
