/* SPDX-License-Identifier: MIT */
/*
 * libswitch's node binding on a machine with two NUMA nodes (./run.sh numa).
 * Linked with the override: malloc / free here are libswitch's.
 *
 *   - a thread on node 0 bound to node 1 gets node-1 pages from malloc, and
 *     the other way round;
 *   - blocks freed by an unbound thread on the other node go back to the
 *     node's instance, and malloc on the bound thread afterwards (which may
 *     reuse them) still gives pages of the node;
 *   - a context bound to node 1 wins over the thread's binding to node 0
 *     while it is set; restoring the returned previous context gives node 0;
 *   - bad nodes (2, -2, 1024) are EINVAL, leave the selection unchanged and
 *     create nothing (no mapping); nodes 0 and 1 have distinct instances.
 *   - informational (not a pass or a fail): where malloc without a binding
 *     (the automatic NUMA mode, on in the guest: numa_auto.c tests it) puts
 *     blocks for a thread on node 1 after a thread on node 0 freed its own.
 *
 * Read first: numa_common.h.
 */
#include "numa_test.h"

#include <ctxalloc/switch.h>
#include <malloc.h>

#define NBLK 2000

static size_t blk_size(size_t i) { return 16 + (i * 53) % 6000; }

typedef struct sw_job {
    int bind; /* node to bind the thread to, -1: leave unbound */
    int node; /* where the pages must be */
    void **blocks;
} sw_job;

static int sw_alloc_run(void *arg)
{
    sw_job *j = (sw_job *)arg;
    if (j->bind >= 0) {
        ca_allocator *prev = (ca_allocator *)1;
        int e = ca_switch_bind_node(CA_SWITCH_BIND_THREAD, j->bind, &prev);
        CHECK(e == 0, "bind to node %d: %s", j->bind, strerror(e));
        CHECK(prev == NULL, "a new thread has no thread allocator");
    }
    for (size_t i = 0; i < NBLK; i++) {
        char *p = (char *)malloc(blk_size(i));
        CHECK(p != NULL, "malloc");
        memset(p, (int)i, blk_size(i));
        j->blocks[i] = p;
    }
    for (size_t i = 0; i < NBLK; i++)
        CHECK_ON(j->blocks[i], blk_size(i), j->node);
    /* calloc and realloc go the same way */
    char *c = (char *)calloc(1000, 10);
    CHECK(c != NULL, "calloc");
    CHECK_ON(c, 10000, j->node);
    c = (char *)realloc(c, 20000);
    CHECK(c != NULL, "realloc");
    memset(c, 1, 20000);
    CHECK_ON(c, 20000, j->node);
    free(c);
    return 0;
}

static int sw_free_run(void *arg)
{
    sw_job *j = (sw_job *)arg;
    for (size_t i = 0; i < NBLK; i++)
        free(j->blocks[i]);
    malloc_trim(0);
    return 0;
}

static int bound(int thread_node, int bind)
{
    static void *blocks[NBLK];
    sw_job a = {bind, bind, blocks};
    int rc = nt_on_node(thread_node, sw_alloc_run, &a);
    if (rc)
        return rc;
    /* freed by an unbound thread on the other node, then allocated again
     * by a bound thread on the first node: still the bound node */
    sw_job f = {-1, bind, blocks};
    if ((rc = nt_on_node(1 - thread_node, sw_free_run, &f)))
        return rc;
    if ((rc = nt_on_node(thread_node, sw_alloc_run, &a)))
        return rc;
    return nt_on_node(thread_node, sw_free_run, &f);
}

static int t_thread_on_node0_bound_to_node1(void) { return bound(0, 1); }
static int t_thread_on_node1_bound_to_node0(void) { return bound(1, 0); }
static int t_thread_on_node1_bound_to_node1(void) { return bound(1, 1); }

static int context_run(void *arg)
{
    (void)arg;
    CHECK(ca_switch_bind_node(CA_SWITCH_BIND_THREAD, 0, NULL) == 0, "bind thread");
    ca_allocator *node0 = ca_switch_thread();
    ca_allocator *prev = (ca_allocator *)1;
    CHECK(ca_switch_bind_node(CA_SWITCH_BIND_CONTEXT, 1, &prev) == 0, "bind context");
    CHECK(prev == NULL, "no context before");
    ca_allocator *node1 = ca_switch_context();
    CHECK(node1 && node1 != node0, "nodes 0 and 1 have distinct instances");
    CHECK(ca_switch_current() == node1, "the context wins over the thread");
    char *p = (char *)malloc(50000);
    CHECK(p != NULL, "malloc");
    memset(p, 1, 50000);
    CHECK_ON(p, 50000, 1);
    ca_switch_context_set(prev);
    CHECK(ca_switch_current() == node0, "restored: the thread's node");
    char *q = (char *)malloc(50000);
    CHECK(q != NULL, "malloc");
    memset(q, 1, 50000);
    CHECK_ON(q, 50000, 0);
    free(p);
    free(q);
    CHECK(ca_switch_bind_node(CA_SWITCH_BIND_THREAD, -1, &prev) == 0 && prev == node0, "unbind");
    CHECK(ca_switch_thread() == NULL, "unbound");
    return 0;
}

static int t_context_bound_to_node1(void) { return nt_on_node(0, context_run, NULL); }

static int bad_run(void *arg)
{
    (void)arg;
    CHECK(ca_switch_bind_node(CA_SWITCH_BIND_THREAD, 0, NULL) == 0, "bind 0");
    ca_allocator *node0 = ca_switch_thread();
    long maps = ca_test_count_maps();
    static const int bad[] = {2, 3, 63, 64, 1023, 1024, -2, 1 << 30};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ca_allocator *prev = (ca_allocator *)1;
        int e = ca_switch_bind_node(CA_SWITCH_BIND_THREAD, bad[i], &prev);
        CHECK(e == EINVAL, "node %d gave %d, expected EINVAL", bad[i], e);
        CHECK(prev == (ca_allocator *)1, "prev written on error");
        CHECK(ca_switch_thread() == node0, "node %d changed the selection", bad[i]);
        e = ca_switch_bind_node(CA_SWITCH_BIND_CONTEXT, bad[i], NULL);
        CHECK(e == EINVAL, "context, node %d gave %d", bad[i], e);
        CHECK(ca_switch_context() == NULL, "context changed");
    }
    CHECK(ca_test_count_maps() == maps, "a bad node left a mapping behind");
    CHECK(ca_switch_bind_node(7, 1, NULL) == EINVAL, "unknown scope");
    CHECK(ca_switch_thread() == node0, "selection changed");
    CHECK(ca_switch_check() == NULL, "switch invariants");
    return 0;
}

static int t_bad_nodes(void) { return nt_on_node(0, bad_run, NULL); }

/* Node 1 exists but this process may not use it (cpuset mems = 0): the
 * source refuses it, ca_switch_bind_node returns EINVAL after creating and
 * undoing the node's state (no mapping left, nothing published), and a
 * later bind to node 0 works. */
static int t_node_not_allowed(void)
{
    CHECK(ca_switch_bind_node(CA_SWITCH_BIND_CONTEXT, 0, NULL) == 0, "bind 0 (warms the global source)");
    ca_allocator *node0 = ca_switch_context();
    CHECK(ca_switch_context_set(NULL) == node0, "unset");
    if (nt_restrict_mems("0"))
        return 1;
    unsigned long allowed[NT_WORDS];
    memset(allowed, 0, sizeof allowed);
    CHECK(get_mempolicy(NULL, allowed, 4096, NULL, MPOL_F_MEMS_ALLOWED) == 0 && allowed[0] == 1,
          "mems allowed %#lx after the cpuset", allowed[0]);
    long maps = ca_test_count_maps();
    /* the node's state comes from the global source: a leak shows there
     * (a leaked page may merge with a neighbouring mapping, unseen in maps) */
    ca_stats g0, g1;
    CHECK(ca_source_stats(ca_source_mmap_global(), &g0) == 0, "stats");
    ca_allocator *prev = (ca_allocator *)1;
    int e = ca_switch_bind_node(CA_SWITCH_BIND_THREAD, 1, &prev);
    CHECK(e == EINVAL, "bind to a node not allowed gave %d", e);
    CHECK(prev == (ca_allocator *)1 && ca_switch_thread() == NULL, "selection changed");
    CHECK(ca_test_count_maps() == maps, "a mapping was left behind (%ld -> %ld)", maps, ca_test_count_maps());
    CHECK(ca_source_stats(ca_source_mmap_global(), &g1) == 0 && g1.bytes_in_use == g0.bytes_in_use,
          "the global source holds %llu more bytes", (unsigned long long)(g1.bytes_in_use - g0.bytes_in_use));
    nt_mask m1 = nt_nodes(1, -1), m01 = nt_nodes(0, 1);
    ca_source_mmap s;
    CHECK(nt_mmap_init(&s, CA_SOURCE_NUMA_BIND, &m1, 64) == EINVAL, "source BIND {1}");
    CHECK(nt_mmap_init(&s, CA_SOURCE_NUMA_PREFERRED, &m1, 64) == EINVAL, "source PREFERRED {1}");
    CHECK(nt_mmap_init(&s, CA_SOURCE_NUMA_INTERLEAVE, &m01, 64) == EINVAL, "source INTERLEAVE {0,1}");
    CHECK(ca_test_count_maps() == maps, "a mapping was left behind");
    CHECK(ca_switch_bind_node(CA_SWITCH_BIND_THREAD, 0, &prev) == 0 && prev == NULL, "bind 0");
    CHECK(ca_switch_thread() == node0, "node 0's instance");
    char *p = (char *)malloc(10000);
    CHECK(p != NULL, "malloc");
    memset(p, 1, 10000);
    CHECK_ON(p, 10000, 0);
    free(p);
    return 0;
}

/* Not a test: how malloc without a binding places blocks for a thread on
 * node 1 after a thread on node 0 used and freed the same sizes. */
static int info_run(void *arg)
{
    sw_job *j = (sw_job *)arg;
    for (size_t i = 0; i < NBLK; i++) {
        j->blocks[i] = malloc(blk_size(i));
        if (j->blocks[i])
            memset(j->blocks[i], 1, blk_size(i));
    }
    return 0;
}

static void default_malloc_info(void)
{
    static void *blocks[NBLK];
    sw_job j = {-1, 0, blocks};
    if (nt_on_node(0, info_run, &j) || nt_on_node(0, sw_free_run, &j) || nt_on_node(1, info_run, &j))
        return;
    long t0 = 0, t1 = 0, tx = 0;
    for (size_t i = 0; i < NBLK; i++) {
        long n0, n1, nx;
        if (blocks[i] && nt_count(blocks[i], blk_size(i), &n0, &n1, &nx) == 0)
            t0 += n0, t1 += n1, tx += nx;
    }
    (void)nt_on_node(1, sw_free_run, &j);
    printf("INFO numa/default_malloc_thread_on_node1: pages of its blocks on node0 %ld, node1 %ld "
           "(no binding, automatic NUMA mode %s; a thread on node 0 freed these sizes before)\n",
           t0, t1, ca_switch_numa_auto() ? "on" : "off");
}

int main(void)
{
    static const nt_test tests[] = {
        {"switch_thread_on_node0_bound_to_node1", t_thread_on_node0_bound_to_node1},
        {"switch_thread_on_node1_bound_to_node0", t_thread_on_node1_bound_to_node0},
        {"switch_thread_on_node1_bound_to_node1", t_thread_on_node1_bound_to_node1},
        {"switch_context_bound_to_node1", t_context_bound_to_node1},
        {"switch_bad_nodes", t_bad_nodes},
        {"switch_node_not_allowed", t_node_not_allowed},
    };
    int rc = nt_main(tests, sizeof tests / sizeof tests[0]);
    if (rc != NT_SKIP)
        default_malloc_info();
    return rc;
}
