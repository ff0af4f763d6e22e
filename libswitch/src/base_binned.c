/* SPDX-License-Identifier: MIT */
/*
 * The libbinned base allocator (-Dglobal=binned): libbinned's process-wide
 * allocator, which registers all its memory in the ownership map.
 *
 * Concurrency: libbinned is thread-safe; this file only hands it out.
 */
#include "switch_private.h"

#ifdef CA_SWITCH_HAVE_BINNED_API
#include <ctxalloc/binned.h>
#endif

ca_allocator *ca_switch__base_create(bool *registers)
{
#ifdef CA_SWITCH_HAVE_BINNED_API
#error "not yet"
#else
    /* libbinned in this tree has no allocator API yet (meson checks for it):
     * glibc serves as base meanwhile; summary() says so. */
    *registers = false;
    return ca_switch__libc_base();
#endif
}
