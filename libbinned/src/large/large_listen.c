/* SPDX-License-Identifier: MIT */
/*
 * Listener events of the large-object tier (ca_listen on its ca_allocator).
 *
 * What is reported: the range set, i.e. every region (all its areas, from
 * base for its mapped size) and every direct mapping, exactly as obtained
 * from the source. Ranges are page-aligned multiples of 64 KiB and never
 * overlap. A range is reported when it enters the tier and when it leaves
 * it, never in between: areas that move between the thread caches, the
 * dirty and clean pools and the users, or are purged (decommitted), stay
 * the tier's memory and cause no event.
 *
 *   added()      a new region or direct mapping, after the source obtained
 *                it and before any block in it is handed out. A refusal
 *                gives the range back to the source (it never enters the
 *                set) and the allocation that needed it fails with NULL and
 *                the refusal's errno; counters and pools are unchanged
 *                (only the class's failure count grows).
 *   removed()    a region leaving: unmap of a wholly free region (slow-path
 *                maintenance, the background thread, unmap_idle, trim), a
 *                direct mapping freed, the old mapping of a block moved by
 *                mremap; after it left the set and before the source gets
 *                it back (munmap or file hole).
 *   destroyed()  first in ca_binned_large_destroy (after the background
 *                thread has stopped), then removed() for every range; the
 *                listener is detached.
 *   reset()      never (the tier has no reset).
 *
 * Threads. Events come from whichever thread grows or shrinks the tier:
 * an allocating or freeing thread, the background thread, or the caller of
 * purge / unmap_idle / trim / destroy. They are serialised: listen_lock (a
 * spin lock of the tier) is held from the event to the change of the range
 * set it reports (added() + rgn_link; rgn_unlink + removed()), and by
 * ca_listen for the whole of an attach or detach. Since a region enters or
 * leaves the region lists only under that lock, an attach sees a stable
 * set: it reports each range on the lists once, and a range that is being
 * mapped meanwhile is reported by its mapper after the attach (it waits for
 * the lock), never twice and never missed; likewise a range leaving before
 * the attach is not on the lists, and one leaving after it is reported
 * removed. Callbacks run with listen_lock held (no other lock of the tier):
 * they must not call into the tier, and a slow callback delays other
 * threads' region maps and unmaps (not the thread-cache and pool paths).
 * Across fork the lock is taken in prepare and reset in the child; the
 * child keeps the listener attached.
 *
 * The listener pointer is written with listen_lock held (atomic stores) and
 * read there; resize also reads it without the lock, to avoid moving pages
 * by a plain mremap (which opens a hole in the old range before removed())
 * while a listener is attached on kernels without MREMAP_DONTUNMAP: an
 * attach racing with such a resize can see that hole (documented residue).
 *
 * Instances with CA_CAP_OWNER_MAP (OWNER_SELF) support ca_listen the same
 * way: their ranges are registered in the ownership map under the tier
 * before added() is called.
 */
#include "large_internal.h"

int ca_binned__large_ev_added(ca_binned_large *l, const ca_binned__large_rgn *r)
{
    ca_listener *lis = __atomic_load_n(&l->listener, __ATOMIC_RELAXED);
    if (!lis || !lis->added)
        return 0;
    return lis->added(lis, r->base, r->size);
}

void ca_binned__large_ev_removed(ca_binned_large *l, const ca_binned__large_rgn *r)
{
    ca_listener *lis = __atomic_load_n(&l->listener, __ATOMIC_RELAXED);
    if (lis && lis->removed)
        lis->removed(lis, r->base, r->size);
}

/* The range set in a fixed order: each class's region list, then the
 * direct mappings. Stable while listen_lock is held. */
#define FOR_EACH_RANGE(l, c, r)                                               \
    for (ca_binned__large_class *c = &(l)->cls[0]; c; c = next_class((l), c)) \
        for (ca_binned__large_rgn *r = c->regions; r; r = r->next)

static ca_binned__large_class *next_class(ca_binned_large *l, ca_binned__large_class *c)
{
    if (c == &l->direct)
        return NULL;
    return c + 1 < &l->cls[l->nclasses] ? c + 1 : &l->direct;
}

/* removed() for every range before `stop` (NULL: all). */
static void remove_until(ca_binned_large *l, ca_listener *lis, const ca_binned__large_rgn *stop)
{
    if (!lis->removed)
        return;
    FOR_EACH_RANGE(l, c, r)
    {
        if (r == stop)
            return;
        lis->removed(lis, r->base, r->size);
    }
}

int ca_binned__large_listen(ca_allocator *a, ca_listener *lis)
{
    ca_binned_large *l = (ca_binned_large *)(void *)a;
    int rc = 0;
    ca_binned__large_listen_lock(l);
    if (lis && l->listener) {
        rc = EBUSY;
    } else if (!lis) {
        ca_listener *old = l->listener;
        if (old) {
            __atomic_store_n(&l->listener, NULL, __ATOMIC_RELEASE);
            remove_until(l, old, NULL);
        }
    } else {
        if (lis->added) {
            FOR_EACH_RANGE(l, c, r)
            {
                rc = lis->added(lis, r->base, r->size);
                if (rc) {
                    remove_until(l, lis, r);
                    goto out;
                }
            }
        }
        __atomic_store_n(&l->listener, lis, __ATOMIC_RELEASE);
    }
out:
    ca_binned__large_listen_unlock(l);
    return rc;
}

void ca_binned__large_ev_destroy(ca_binned_large *l)
{
    ca_binned__large_listen_lock(l);
    ca_listener *lis = l->listener;
    __atomic_store_n(&l->listener, NULL, __ATOMIC_RELEASE);
    if (lis) {
        if (lis->destroyed)
            lis->destroyed(lis);
        remove_until(l, lis, NULL);
    }
    ca_binned__large_listen_unlock(l);
}
