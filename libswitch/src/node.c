/* SPDX-License-Identifier: MIT */
/*
 * Node binding: ca_switch_bind_node() selects, for the calling thread or
 * the current context, an allocator whose memory lies on one NUMA node.
 *
 * Each node gets one libbinned instance over an anonymous mmap source with
 * the policy BIND(node) (libsource applies it with mbind to every range the
 * instance obtains: class ranges, metadata). The instance registers its
 * ranges in the ownership map, so it is routable as it is: free() from any
 * thread reaches it, and a block freed on another node goes back to the
 * instance of its own node (libbinned caches it in the freeing thread, and
 * the block's pages never move). Node instances live as long as the process,
 * like the default instance: a block may be freed at any time after the
 * thread that allocated it ended, so there is no point at which one could be
 * destroyed safely. Cost: address space (no memory) for the class ranges of
 * each node used; memory only as it is touched.
 *
 * Read first: ca_switch_bind_node, then node_get.
 *
 * Concurrency model: `nodes[]` holds one published pointer per node
 * (__atomic, acquire / release); a node's state is created once, under
 * `nodes_lock` (a pthread mutex, which never allocates), and never changes
 * after publication. Selection goes through the ordinary setters, so the
 * thread-local rules of select.c apply.
 *
 * Not covered here (libbinned's business): the instance's large-object tier
 * (blocks above CA_BINNED_SMALL_MAX) maps its regions from its own source,
 * so those pages follow the thread's memory policy, not the node.
 */
#include "switch_private.h"

#if defined(CA_SWITCH_GLOBAL_BINNED)
#include <ctxalloc/binned.h>
#include <ctxalloc/source.h>

#include <pthread.h>

/* The node's source and its instance; in memory of the global mmap source
 * (libswitch never takes its own state from malloc). */
typedef struct node_state {
    ca_source_mmap src; /* BIND(node); thread-safe */
    ca_binned *b;       /* over src; never destroyed */
} node_state;

static node_state *nodes[CA_SOURCE_NUMA_MAX_NODES]; /* __atomic; NULL until created */
static pthread_mutex_t nodes_lock = PTHREAD_MUTEX_INITIALIZER;

/* 2^30 bytes of address space per size class (100 GiB per node, reserved
 * without memory): enough for any working set a 4 KiB-page node holds,
 * small enough for RLIMIT_AS-conscious processes to afford a few nodes. */
#define NODE_CLASS_RANGE_LOG2 30

/* The state of @node, created on first use. Return: 0 or the errno of the
 * source (EINVAL: the node does not exist or is not allowed) or of libbinned;
 * on failure nothing is left behind and nothing is published. */
static int node_get(int node, node_state **out)
{
    node_state *st = __atomic_load_n(&nodes[node], __ATOMIC_ACQUIRE);
    if (st) {
        *out = st;
        return 0;
    }
    int err = ca_mutex_lock_ranked(&nodes_lock, CA_LOCK_RANK_SWITCH_NODES, "switch");
    if (err)
        return err;
    st = __atomic_load_n(&nodes[node], __ATOMIC_RELAXED);
    if (st)
        goto done;

    ca_source *os = ca_source_mmap_global();
    size_t size = ca_align_up(sizeof(node_state), ca_source_granule(os));
    void *mem = NULL;
    if ((err = ca_source_obtain(os, size, ca_source_granule(os), &mem)))
        goto done;
    st = (node_state *)mem;

    unsigned long mask[CA_SOURCE_NUMA_MASK_WORDS];
    memset(mask, 0, sizeof mask);
    mask[(unsigned)node / (8 * sizeof(unsigned long))] = 1ul << ((unsigned)node % (8 * sizeof(unsigned long)));
    ca_source_mmap_options mo;
    memset(&mo, 0, sizeof mo);
    mo.flags = CA_SOURCE_MMAP_NORESERVE;
    mo.decommit = CA_SOURCE_DECOMMIT_DONTNEED;
    mo.name = "ctxalloc-switch-node";
    mo.numa.mode = CA_SOURCE_NUMA_BIND;
    mo.numa.nodes = mask;
    mo.numa.maxnode = (size_t)node + 1;
    if ((err = ca_source_mmap_init(&st->src, &mo)))
        goto fail_mem;

    ca_binned_options bo;
    ca_binned_options_init(&bo);
    bo.source = &st->src.base;
    bo.class_range_log2 = NODE_CLASS_RANGE_LOG2;
    if ((err = ca_binned_create(&st->b, &bo)))
        goto fail_src;
    __atomic_store_n(&nodes[node], st, __ATOMIC_RELEASE);
    goto done;

fail_src:
    ca_source_mmap_destroy(&st->src);
fail_mem:
    (void)ca_source_release(os, mem, size);
    st = NULL;
done:
    (void)ca_mutex_unlock_ranked(&nodes_lock, CA_LOCK_RANK_SWITCH_NODES);
    *out = st;
    return st ? 0 : err;
}

#endif /* CA_SWITCH_GLOBAL_BINNED */

int ca_switch_bind_node(unsigned where, int node, ca_allocator **prev)
{
    if (where != CA_SWITCH_BIND_THREAD && where != CA_SWITCH_BIND_CONTEXT)
        return EINVAL;
    ca_allocator *cur = where == CA_SWITCH_BIND_THREAD ? ca_switch_thread() : ca_switch_context();
    if (node < -1)
        return EINVAL;
#if defined(CA_SWITCH_GLOBAL_BINNED)
    ca_allocator *next = NULL;
    if (node >= 0) {
        int n = ca_source_numa_available();
        if (n == 0)
            return ENOTSUP;
        if (node >= n || node >= CA_SOURCE_NUMA_MAX_NODES)
            return EINVAL;
        node_state *st = NULL;
        int err = node_get(node, &st);
        if (err || !st) /* node_get gives a state exactly when it returns 0 */
            return err ? err : ENOMEM;
        next = ca_binned_allocator(st->b);
    }
    int err = where == CA_SWITCH_BIND_THREAD ? ca_switch_thread_try_set(next, NULL)
                                             : ca_switch_context_try_set(next, NULL);
    if (err)
        return err;
    if (prev)
        *prev = cur;
    return 0;
#else
    (void)cur;
    (void)prev;
    return ENOTSUP;
#endif
}
