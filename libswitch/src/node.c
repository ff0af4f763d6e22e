/* SPDX-License-Identifier: MIT */
/*
 * NUMA: per-node libbinned instances, for two uses.
 *
 *   ca_switch_bind_node() selects, for the calling thread or the current
 *   context, the instance of one node, whose memory has the policy
 *   BIND(node): pages come from that node or the allocation fails.
 *
 *   Automatic mode (CA_NUMA, default "auto": on when the process may use
 *   more than one node): malloc without a thread or context selection takes
 *   memory from the instance of the node the thread runs on, whose memory
 *   has the policy PREFERRED(node). Set up once by ca_switch__numa_setup at
 *   the first malloc (select.c); on one node it turns nothing on, so the
 *   malloc fast path (family.c) stays exactly as it is: the mode is seen
 *   there only as global_binned being false, which sends malloc to the slow
 *   path, where ca_switch__current asks ca_switch__node_current.
 *
 * Why PREFERRED for the automatic mode and BIND for an explicit binding: a
 * program that binds asks for its node and nothing else; malloc for a whole
 * program must not fail (or be killed by the kernel's OOM killer inside
 * the node's constraint) because one node is full while another has free
 * memory, so its pages go to the node while it has some and elsewhere
 * after that, as the kernel's default local policy does for first touch.
 *
 * Each instance is a libbinned instance over an anonymous mmap source with
 * the node's policy (libsource applies it with mbind to every range the
 * instance obtains: class ranges, metadata, and the large tier's regions
 * through CA_BINNED_LARGE_FROM_SOURCE, so both tiers follow the node). It
 * registers its ranges in the ownership map, so it is routable as it is:
 * free() from any thread reaches it, and a block freed on another node goes
 * back to the instance of its own node (libbinned caches it in the freeing
 * thread's cache for that instance, whose flush returns it to the
 * instance; the block's pages never move). Purging and decay are per node
 * as a consequence: each instance runs its own decay pass on its slow
 * paths and, when the default instance has its background thread
 * (CA_BINNED_BACKGROUND), a background thread of its own. Instances live as
 * long as the process, like the default instance: a block may be freed at
 * any time after the thread that allocated it ended, so there is no point
 * at which one could be destroyed safely. Cost: address space (no memory)
 * for the class ranges of each node used; memory only as it is touched.
 *
 * The thread's node (automatic mode): getcpu (the vDSO), cached per thread
 * with the node's allocator and asked again every NODE_REFRESH allocations
 * that reach ca_switch__node_current, so a thread that migrates takes the
 * new node's memory within that many allocations. Reading the CPU on every
 * malloc would be exact but costs more than the fast path itself.
 *
 * Read first: ca_switch__numa_setup and ca_switch__node_current, then
 * node_get.
 *
 * Concurrency model: `nodes[kind][node]` holds one published pointer per
 * node and policy (__atomic, acquire / release); a node's state is created
 * once, under `nodes_lock` (a pthread mutex, which never allocates; held
 * across fork by core's fork hooks once the automatic mode is on, which
 * creates states from inside malloc), and never changes after publication.
 * `auto_failed[node]` (__atomic, relaxed) records a node whose state could
 * not be created, so malloc does not try again at every refresh. Whether
 * the mode is on (ca_switch__g.numa_auto) is written once during
 * libswitch's initialisation, before the global allocator is published.
 * The per-thread cache `tl_node` is the owner
 * thread's only. Selection by ca_switch_bind_node goes through the
 * ordinary setters, so the thread-local rules of select.c apply.
 */
#include "switch_private.h"

#if defined(CA_SWITCH_GLOBAL_BINNED)
#include <ctxalloc/binned.h>
#include <ctxalloc/source.h>

#include <pthread.h>
#include <sched.h>

enum { KIND_BIND, KIND_PREFERRED, KINDS };

/* The node's source and its instance; in memory of the global mmap source
 * (libswitch never takes its own state from malloc). */
typedef struct node_state {
    ca_allocator automatic; /* the automatic mode's allocator: alloc from b,
                               else (no address space left) from the base;
                               first member (auto_ops cast from it) */
    ca_source_mmap src;     /* the node's policy; thread-safe */
    ca_binned *b;           /* over src, both tiers; never destroyed */
} node_state;

static node_state *nodes[KINDS][CA_SOURCE_NUMA_MAX_NODES];  /* __atomic; NULL until created */
static unsigned char auto_failed[CA_SOURCE_NUMA_MAX_NODES]; /* __atomic; 1: creation failed */
static pthread_mutex_t nodes_lock = PTHREAD_MUTEX_INITIALIZER;

/* 2^30 bytes of address space per size class (100 GiB per node, reserved
 * without memory): enough for any working set a 4 KiB-page node holds,
 * small enough for RLIMIT_AS-conscious processes to afford a few nodes. In
 * the automatic mode a class that fills its range is served by the default
 * instance (auto_alloc). */
#define NODE_CLASS_RANGE_LOG2 30

/* Allocations between two getcpu calls of a thread in automatic mode. */
#define NODE_REFRESH 64u

/* ------------------------------------------------------------------------
 * The automatic mode's allocator of a node: allocation from the node's
 * instance; everything else never reaches it (free and realloc route by
 * owner to the instance itself) but is forwarded there all the same.
 * ------------------------------------------------------------------------ */

static ca_allocator *inner(const ca_allocator *a)
{
    return ca_binned_allocator(((const node_state *)(const void *)a)->b);
}

static void *auto_alloc(ca_allocator *a, size_t size, size_t align, size_t *usable)
{
    ca_allocator *in = inner(a);
    void *p = in->ops->alloc(in, size, align, usable);
    if (ca_unlikely(!p) && errno == ENOMEM) { /* the class's range is full: the default instance */
        ca_allocator *base = ca_switch__g.base;
        p = base->ops->alloc(base, size, align, usable);
    }
    return p;
}

static void auto_free(ca_allocator *a, void *p, size_t size, size_t align) { ca_free(inner(a), p, size, align); }

static void auto_free_unsized(ca_allocator *a, void *p) { ca_free_unsized(inner(a), p); }

static size_t auto_usable(const ca_allocator *a, const void *p) { return ca_usable_size(inner(a), p); }

static void *auto_resize(ca_allocator *a, void *p, size_t old_size, size_t new_size, size_t align, unsigned flags,
                         size_t *usable)
{
    ca_allocator *in = inner(a);
    return in->ops->resize(in, p, old_size, new_size, align, flags, usable);
}

static const ca_allocator_ops auto_ops = {
    .name = "switch-numa-auto",
    .caps = CA_CAP_THREAD_SAFE | CA_CAP_UNSIZED,
    .alloc = auto_alloc,
    .free = auto_free,
    .free_unsized = auto_free_unsized,
    .usable_size = auto_usable,
    .resize = auto_resize,
};

/* ------------------------------------------------------------------------
 * Node states
 * ------------------------------------------------------------------------ */

/* The state of @node with the policy of @kind, created on first use.
 * Return: 0 or the errno of the source (EINVAL: the node does not exist or
 * is not allowed) or of libbinned; on failure nothing is left behind and
 * nothing is published. */
static int node_get(int kind, int node, node_state **out)
{
    node_state *st = __atomic_load_n(&nodes[kind][node], __ATOMIC_ACQUIRE);
    if (st) {
        *out = st;
        return 0;
    }
    int err = ca_mutex_lock_ranked(&nodes_lock, CA_LOCK_RANK_SWITCH_NODES, "switch");
    if (err)
        return err;
    st = __atomic_load_n(&nodes[kind][node], __ATOMIC_RELAXED);
    if (st)
        goto done;

    ca_source *os = ca_source_mmap_global();
    size_t size = ca_align_up(sizeof(node_state), ca_source_granule(os));
    void *mem = NULL;
    if ((err = ca_source_obtain(os, size, ca_source_granule(os), &mem)))
        goto done;
    st = (node_state *)mem;
    st->automatic.ops = &auto_ops;

    unsigned long mask[CA_SOURCE_NUMA_MASK_WORDS];
    memset(mask, 0, sizeof mask);
    mask[(unsigned)node / (8 * sizeof(unsigned long))] = 1ul << ((unsigned)node % (8 * sizeof(unsigned long)));
    ca_source_mmap_options mo;
    memset(&mo, 0, sizeof mo);
    mo.flags = CA_SOURCE_MMAP_NORESERVE;
    mo.decommit = CA_SOURCE_DECOMMIT_DONTNEED;
    mo.name = kind == KIND_BIND ? "ctxalloc-switch-node" : "ctxalloc-switch-numa";
    mo.numa.mode = kind == KIND_BIND ? CA_SOURCE_NUMA_BIND : CA_SOURCE_NUMA_PREFERRED;
    mo.numa.nodes = mask;
    mo.numa.maxnode = (size_t)node + 1;
    if ((err = ca_source_mmap_init(&st->src, &mo)))
        goto fail_mem;

    /* Both tiers from the node's source; a background thread when the
     * default instance has one (idle memory of each node goes back). */
    ca_binned_options bo;
    ca_binned_options_init(&bo);
    bo.source = &st->src.base;
    bo.class_range_log2 = NODE_CLASS_RANGE_LOG2;
    bo.flags = CA_BINNED_LARGE_FROM_SOURCE | (ca_binned_flags(ca_binned_default()) & CA_BINNED_BACKGROUND);
    if ((err = ca_binned_create(&st->b, &bo)))
        goto fail_src;
    __atomic_store_n(&nodes[kind][node], st, __ATOMIC_RELEASE);
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

/* nodes_lock across fork (registered when the automatic mode is on: then a
 * malloc in the child may create a node's state). */
static void nodes_prepare(void) { (void)ca_mutex_lock_ranked(&nodes_lock, CA_LOCK_RANK_SWITCH_NODES, "switch"); }
static void nodes_release(void) { (void)ca_mutex_unlock_ranked(&nodes_lock, CA_LOCK_RANK_SWITCH_NODES); }

/* ------------------------------------------------------------------------
 * Automatic mode
 * ------------------------------------------------------------------------ */

/* The calling thread's node and its allocator. Owner thread only. */
typedef struct node_tl {
    ca_allocator *a; /* the node's automatic allocator, or the base; NULL: not asked yet */
    unsigned left;   /* allocations until the node is asked again */
} node_tl;
static CA_SWITCH_TLS node_tl tl_node;

bool ca_switch__numa_setup(void)
{
    /* CA_NUMA: "0" off, "1" on whenever the kernel has NUMA policies (also
     * with one node: how the single-node tests reach this code), "auto"
     * (default) on when more than one node is allowed. */
    static const char *const words[] = {"0", "1", "auto", NULL};
    int w;
    (void)ca_env_word("CA_NUMA", words, 2, &w);
    if (w == 0 || !ca_switch__base_is_binned())
        return false;
    int n = ca_source_numa_available(); /* one system call and /sys read once */
    if (n <= 0)
        return false;
    if (w == 2) {
        /* Nodes this process may use: each validated as PREFERRED(node)
         * (get_mempolicy's allowed mask: cpuset and the machine). */
        int allowed = 0;
        for (int i = 0; i < n && i < CA_SOURCE_NUMA_MAX_NODES && allowed < 2; i++) {
            unsigned long mask[CA_SOURCE_NUMA_MASK_WORDS];
            memset(mask, 0, sizeof mask);
            mask[(unsigned)i / (8 * sizeof(unsigned long))] = 1ul << ((unsigned)i % (8 * sizeof(unsigned long)));
            ca_source_numa pol = {CA_SOURCE_NUMA_PREFERRED, mask, (size_t)i + 1};
            if (ca_source_numa_validate(&pol) == 0)
                allowed++;
        }
        if (allowed < 2)
            return false;
    }
    (void)ca_fork_hook_register_locks(nodes_prepare, nodes_release, nodes_release, CA_LOCK_RANK_SWITCH_NODES);
    return true;
}

/* Ask getcpu for the thread's node and take that node's allocator (the
 * base when it cannot be had: no node, or its state failed). */
ca_attr_noinline static ca_allocator *node_refresh(void)
{
    unsigned cpu = 0, node = 0;
    int n = getcpu(&cpu, &node) == 0 ? (int)node : -1;
    ca_allocator *a = ca_switch__g.base;
    if (n >= 0 && n < CA_SOURCE_NUMA_MAX_NODES && !__atomic_load_n(&auto_failed[n], __ATOMIC_RELAXED)) {
        node_state *st = NULL;
        if (node_get(KIND_PREFERRED, n, &st) == 0 && st)
            a = &st->automatic;
        else
            __atomic_store_n(&auto_failed[n], 1, __ATOMIC_RELAXED);
    }
    tl_node.a = a;
    tl_node.left = NODE_REFRESH;
    return a;
}

ca_allocator *ca_switch__node_current(void)
{
    if (ca_likely(tl_node.a != NULL && --tl_node.left != 0))
        return tl_node.a;
    return node_refresh();
}

ca_allocator *ca_switch__node_unwrap(ca_allocator *a) { return a && a->ops == &auto_ops ? inner(a) : a; }

#else /* another base: no node instances, no automatic mode */

bool ca_switch__numa_setup(void)
{
    /* read all the same, so that a bad value warns in every build */
    static const char *const words[] = {"0", "1", "auto", NULL};
    int w;
    (void)ca_env_word("CA_NUMA", words, 2, &w);
    return false;
}

ca_allocator *ca_switch__node_current(void) { return ca_switch__g.base; }

ca_allocator *ca_switch__node_unwrap(ca_allocator *a) { return a; }

#endif /* CA_SWITCH_GLOBAL_BINNED */

bool ca_switch_numa_auto(void)
{
    (void)ca_switch_global(); /* initialised: the mode is decided */
    return ca_switch__g.numa_auto;
}

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
        int err = node_get(KIND_BIND, node, &st);
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
