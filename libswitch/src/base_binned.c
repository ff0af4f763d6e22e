/* SPDX-License-Identifier: MIT */
/*
 * The libbinned base allocator (-Dglobal=binned): libbinned's process-wide
 * instance, set up without malloc and registered in the ownership map under
 * its ca_allocator. Its fork hooks are registered here with core's fork
 * hooks (ca_fork_hook_register_locks: they hold locks and repair what other
 * threads left, so they wait for a second thread), as libbinned asks of
 * whoever puts it under malloc.
 *
 * Concurrency: libbinned is thread-safe; this file only hands it out.
 */
#include "switch_private.h"

#include <ctxalloc/binned.h>

ca_allocator *ca_switch__base_create(bool *registers)
{
    ca_allocator *a = ca_binned_allocator(ca_binned_default());
    (void)ca_fork_hook_register_locks(ca_binned_fork_prepare, ca_binned_fork_parent, ca_binned_fork_child,
                                      CA_LOCK_RANK_BINNED_INSTANCES);
    *registers = true;
    return a;
}
