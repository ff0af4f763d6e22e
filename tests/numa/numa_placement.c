/* SPDX-License-Identifier: MIT */
/*
 * Where pages land, on a machine with two NUMA nodes (./run.sh numa).
 *
 * The mmap source under each policy (BIND, PREFERRED, INTERLEAVE, LOCAL,
 * and DEFAULT as the baseline), checked page by page with move_pages and
 * with the kernel's own view of the range (get_mempolicy MPOL_F_ADDR);
 * decommit / commit and policies applied to existing ranges; then every
 * allocator that takes a source, built over a NUMA-bound mmap source: bump,
 * libbinned instance (options.source), arena (options.source), rbtree,
 * bitset. Finally bad input on a two-node machine: nodes that do not exist,
 * empty masks, masks wider than the machine; each is EINVAL and leaves no
 * mapping and no policy behind.
 *
 * Read first: numa_common.h (runner, pinning, page counting).
 */
#include "numa_test.h"

#include <ctxalloc/arena.h>
#include <ctxalloc/binned.h>
#include <ctxalloc/bitset.h>
#include <ctxalloc/bump.h>
#include <ctxalloc/rbtree.h>

#define PAGE ((size_t)sysconf(_SC_PAGESIZE))
#define NPAGES 64

/* ------------------------------------------------------------------------
 * The mmap source under each policy
 * ------------------------------------------------------------------------ */

typedef struct mmap_case {
    unsigned mode;
    nt_mask mask;
    size_t maxnode;
    int expect_node; /* -1: both nodes (interleave) */
    int kernel_mode; /* what get_mempolicy must report */
    unsigned long kernel_nodes;
} mmap_case;

/* On the calling (pinned) thread: obtain, touch, count, check the policy. */
static int mmap_case_run(void *arg)
{
    mmap_case *c = (mmap_case *)arg;
    ca_source_mmap s;
    int e = nt_mmap_init(&s, c->mode, &c->mask, c->maxnode);
    CHECK(e == 0, "init: %s", strerror(e));
    size_t size = NPAGES * PAGE;
    void *p;
    CHECK((e = ca_source_obtain(&s.base, size, PAGE, &p)) == 0, "obtain: %s", strerror(e));
    memset(p, 0x5a, size);
    int mode = -1;
    unsigned long nodes = 0;
    CHECK(nt_policy_of(p, &mode, &nodes) == 0, "get_mempolicy failed");
    if (c->kernel_mode == MPOL_LOCAL) /* older kernels: PREFERRED with no node */
        CHECK(mode == MPOL_LOCAL || (mode == MPOL_PREFERRED && nodes == 0), "kernel policy %d, mask %#lx", mode,
              nodes);
    else
        CHECK(mode == c->kernel_mode && nodes == c->kernel_nodes, "kernel policy %d mask %#lx, expected %d mask %#lx",
              mode, nodes, c->kernel_mode, c->kernel_nodes);
    if (c->expect_node >= 0) {
        CHECK_ON(p, size, c->expect_node);
    } else {
        long n0, n1, nx;
        CHECK(nt_count(p, size, &n0, &n1, &nx) == 0, "move_pages failed");
        CHECK(n0 >= NPAGES / 4 && n1 >= NPAGES / 4 && nx == 0, "interleave: node0 %ld, node1 %ld, other %ld", n0,
              n1, nx);
    }
    CHECK(ca_source_release(&s.base, p, size) == 0, "release");
    ca_source_mmap_destroy(&s);
    return 0;
}

static int t_mmap_bind_node1_from_node0(void)
{
    mmap_case c = {CA_SOURCE_NUMA_BIND, nt_nodes(1, -1), 64, 1, MPOL_BIND, 0x2};
    return nt_on_node(0, mmap_case_run, &c);
}

static int t_mmap_bind_node0_from_node1(void)
{
    mmap_case c = {CA_SOURCE_NUMA_BIND, nt_nodes(0, -1), 64, 0, MPOL_BIND, 0x1};
    return nt_on_node(1, mmap_case_run, &c);
}

static int t_mmap_preferred_node1_from_node0(void)
{
    mmap_case c = {CA_SOURCE_NUMA_PREFERRED, nt_nodes(1, -1), 64, 1, MPOL_PREFERRED, 0x2};
    return nt_on_node(0, mmap_case_run, &c);
}

static int t_mmap_interleave_both(void)
{
    mmap_case c = {CA_SOURCE_NUMA_INTERLEAVE, nt_nodes(0, 1), 64, -1, MPOL_INTERLEAVE, 0x3};
    return nt_on_node(0, mmap_case_run, &c);
}

static int t_mmap_local_on_node1(void)
{
    mmap_case c = {CA_SOURCE_NUMA_LOCAL, nt_nodes(-1, -1), 0, 1, MPOL_LOCAL, 0};
    return nt_on_node(1, mmap_case_run, &c);
}

static int t_mmap_local_on_node0(void)
{
    mmap_case c = {CA_SOURCE_NUMA_LOCAL, nt_nodes(-1, -1), 0, 0, MPOL_LOCAL, 0};
    return nt_on_node(0, mmap_case_run, &c);
}

static int t_mmap_default_follows_thread(void)
{
    mmap_case c = {CA_SOURCE_NUMA_DEFAULT, nt_nodes(-1, -1), 0, 1, MPOL_DEFAULT, 0};
    return nt_on_node(1, mmap_case_run, &c);
}

/* A mask wider than the machine with zeros above its nodes is valid: 4096
 * bits, nodes 0 and 1, interleaved. */
static int t_mmap_wide_mask_interleave(void)
{
    mmap_case c = {CA_SOURCE_NUMA_INTERLEAVE, nt_nodes(0, 1), 4096, -1, MPOL_INTERLEAVE, 0x3};
    return nt_on_node(1, mmap_case_run, &c);
}

/* Decommitted and committed again from a thread on node 0: still node 1. */
static int decommit_run(void *arg)
{
    ca_source_mmap *s = (ca_source_mmap *)arg;
    size_t size = NPAGES * PAGE;
    void *p;
    CHECK(ca_source_obtain(&s->base, size, PAGE, &p) == 0, "obtain");
    memset(p, 1, size);
    CHECK_ON(p, size, 1);
    CHECK(ca_source_decommit(&s->base, p, size) == 0, "decommit");
    long n0, n1, nx;
    CHECK(nt_count(p, size, &n0, &n1, &nx) == 0 && nx == NPAGES, "decommitted pages still present: %ld %ld", n0, n1);
    CHECK(ca_source_commit(&s->base, p, size) == 0, "commit");
    memset(p, 2, size);
    CHECK_ON(p, size, 1);
    CHECK(ca_source_release(&s->base, p, size) == 0, "release");
    return 0;
}

static int t_mmap_decommit_commit_stays_on_node(void)
{
    ca_source_mmap s;
    nt_mask m = nt_nodes(1, -1);
    CHECK(nt_mmap_init(&s, CA_SOURCE_NUMA_BIND, &m, 64) == 0, "init");
    int rc = nt_on_node(0, decommit_run, &s);
    ca_source_mmap_destroy(&s);
    return rc;
}

/* ca_source_numa_apply on a range already touched on node 0 moves it. */
static int apply_run(void *arg)
{
    (void)arg;
    ca_source_mmap s;
    CHECK(nt_mmap_init(&s, CA_SOURCE_NUMA_DEFAULT, NULL, 0) == 0, "init");
    size_t size = NPAGES * PAGE;
    void *p;
    CHECK(ca_source_obtain(&s.base, size, PAGE, &p) == 0, "obtain");
    memset(p, 3, size);
    CHECK_ON(p, size, 0);
    nt_mask m = nt_nodes(1, -1);
    ca_source_numa pol = {CA_SOURCE_NUMA_BIND, m.w, 64};
    int e = ca_source_numa_apply(p, size, &pol);
    CHECK(e == 0, "apply: %s", strerror(e));
    CHECK_ON(p, size, 1);
    for (size_t i = 0; i < size; i++)
        CHECK(((unsigned char *)p)[i] == 3, "content changed by the move at %zu", i);
    CHECK(ca_source_release(&s.base, p, size) == 0, "release");
    ca_source_mmap_destroy(&s);
    return 0;
}

static int t_apply_moves_existing_pages(void) { return nt_on_node(0, apply_run, NULL); }

/* ------------------------------------------------------------------------
 * Allocators over a NUMA-bound source
 * ------------------------------------------------------------------------ */

typedef struct over {
    ca_source_mmap src;
    int node; /* where the memory must be */
} over;

static int over_init(over *o, unsigned mode, int a, int b, int node)
{
    nt_mask m = nt_nodes(a, b);
    o->node = node;
    return nt_mmap_init(&o->src, mode, &m, 64);
}

static int bump_run(void *arg)
{
    over *o = (over *)arg;
    ca_bump b;
    CHECK(ca_bump_init(&b, &o->src.base, NULL) == 0, "bump init");
    char *first = NULL;
    size_t total = 0;
    for (int i = 0; i < 200; i++) {
        size_t sz = 100 + (size_t)i * 97;
        char *p = (char *)ca_bump_alloc(&b, sz, 16);
        CHECK(p != NULL, "bump alloc %zu", sz);
        memset(p, i, sz);
        CHECK_ON(p, sz, o->node);
        if (!first)
            first = p;
        total += sz;
    }
    CHECK(total > 1u << 20, "the bump grew over several chunks (%zu bytes)", total);
    ca_bump_reset(&b);
    char *p = (char *)ca_bump_alloc(&b, 64 << 10, 16);
    CHECK(p != NULL, "after reset");
    memset(p, 7, 64 << 10);
    CHECK_ON(p, 64 << 10, o->node);
    ca_bump_destroy(&b);
    return 0;
}

static int t_bump_over_bind1_from_node0(void)
{
    over o;
    CHECK(over_init(&o, CA_SOURCE_NUMA_BIND, 1, -1, 1) == 0, "source");
    int rc = nt_on_node(0, bump_run, &o);
    ca_source_mmap_destroy(&o.src);
    return rc;
}

/* libbinned instance over the source: blocks of many classes on the node;
 * freed on another thread (node 0) and allocated again, still on the node. */
typedef struct binned_job {
    over *o;
    ca_binned *b;
    void **blocks;
    size_t n;
} binned_job;

static size_t binned_size(size_t i) { return 16 + (i * 37) % 8000; }

static int binned_alloc_run(void *arg)
{
    binned_job *j = (binned_job *)arg;
    for (size_t i = 0; i < j->n; i++) {
        size_t sz = binned_size(i);
        char *p = (char *)ca_binned_alloc(j->b, sz, 16);
        CHECK(p != NULL, "alloc %zu", sz);
        memset(p, (int)i, sz);
        j->blocks[i] = p;
    }
    for (size_t i = 0; i < j->n; i++)
        CHECK_ON(j->blocks[i], binned_size(i), j->o->node);
    return 0;
}

static int binned_free_run(void *arg)
{
    binned_job *j = (binned_job *)arg;
    for (size_t i = 0; i < j->n; i++)
        ca_binned_free(j->b, j->blocks[i]);
    /* This thread's cache holds the blocks now; let them reach the shared
     * structures so that the next allocation can take them. */
    ca_binned_trim(j->b);
    return 0;
}

static int binned_over(unsigned mode, int a, int b, int node, int alloc_node, int free_node)
{
    over o;
    CHECK(over_init(&o, mode, a, b, node) == 0, "source");
    ca_binned_options bo;
    ca_binned_options_init(&bo);
    bo.source = &o.src.base;
    bo.class_range_log2 = 24;
    binned_job j = {&o, NULL, NULL, 3000};
    int e = ca_binned_create(&j.b, &bo);
    CHECK(e == 0, "binned create: %s", strerror(e));
    static void *blocks[3000];
    j.blocks = blocks;
    int rc = nt_on_node(alloc_node, binned_alloc_run, &j);
    if (rc == 0)
        rc = nt_on_node(free_node, binned_free_run, &j);
    if (rc == 0) /* reallocated after the remote frees: still on the node */
        rc = nt_on_node(free_node, binned_alloc_run, &j);
    if (rc == 0)
        rc = nt_on_node(alloc_node, binned_free_run, &j);
    ca_binned_destroy(j.b);
    ca_source_mmap_destroy(&o.src);
    return rc;
}

static int t_binned_over_bind1_from_node0(void) { return binned_over(CA_SOURCE_NUMA_BIND, 1, -1, 1, 0, 0); }

static int t_binned_over_bind1_freed_on_node0(void) { return binned_over(CA_SOURCE_NUMA_BIND, 1, -1, 1, 1, 0); }

static int t_binned_over_preferred0_from_node1(void)
{
    return binned_over(CA_SOURCE_NUMA_PREFERRED, 0, -1, 0, 1, 1);
}

/* Over a LOCAL source, a thread pinned to node 1 faults its blocks there. */
static int binned_local_run(void *arg)
{
    binned_job *j = (binned_job *)arg;
    return binned_alloc_run(j);
}

static int t_binned_over_local_on_node1(void)
{
    over o;
    CHECK(over_init(&o, CA_SOURCE_NUMA_LOCAL, -1, -1, 1) == 0, "source");
    ca_binned_options bo;
    ca_binned_options_init(&bo);
    bo.source = &o.src.base;
    bo.class_range_log2 = 24;
    static void *blocks[2000];
    binned_job j = {&o, NULL, blocks, 2000};
    CHECK(ca_binned_create(&j.b, &bo) == 0, "binned create");
    int rc = nt_on_node(1, binned_local_run, &j);
    ca_binned_destroy(j.b);
    ca_source_mmap_destroy(&o.src);
    return rc;
}

static int binned_interleave_run(void *arg)
{
    binned_job *j = (binned_job *)arg;
    long t0 = 0, t1 = 0;
    for (size_t i = 0; i < 64; i++) {
        char *p = (char *)ca_binned_alloc(j->b, 64 << 10, 16);
        CHECK(p != NULL, "alloc");
        memset(p, 1, 64 << 10);
        long n0, n1, nx;
        CHECK(nt_count(p, 64 << 10, &n0, &n1, &nx) == 0 && nx == 0, "count");
        t0 += n0;
        t1 += n1;
        j->blocks[i] = p;
    }
    CHECK(t0 >= 256 && t1 >= 256, "interleave over binned: node0 %ld pages, node1 %ld", t0, t1);
    for (size_t i = 0; i < 64; i++)
        ca_binned_free(j->b, j->blocks[i]);
    return 0;
}

static int t_binned_over_interleave(void)
{
    over o;
    CHECK(over_init(&o, CA_SOURCE_NUMA_INTERLEAVE, 0, 1, -1) == 0, "source");
    ca_binned_options bo;
    ca_binned_options_init(&bo);
    bo.source = &o.src.base;
    bo.class_range_log2 = 24;
    static void *blocks[64];
    binned_job j = {&o, NULL, blocks, 64};
    CHECK(ca_binned_create(&j.b, &bo) == 0, "binned create");
    int rc = nt_on_node(0, binned_interleave_run, &j);
    ca_binned_destroy(j.b);
    ca_source_mmap_destroy(&o.src);
    return rc;
}

static int arena_run(void *arg)
{
    over *o = (over *)arg;
    ca_arena_options ao;
    ca_arena_options_init(&ao);
    ao.capacity = 4u << 20;
    ao.source = &o->src.base;
    ca_arena *a;
    int e = ca_arena_create(&a, &ao);
    CHECK(e == 0, "arena create: %d", e);
    for (int i = 0; i < 100; i++) {
        uint64_t off;
        CHECK(ca_arena_alloc(a, 10000, 16, &off) == 0, "arena alloc");
        char *p = (char *)ca_arena_ptr(a, off);
        memset(p, i, 10000);
        CHECK_ON(p, 10000, o->node);
    }
    CHECK(ca_arena_close(a) == 0, "close");
    return 0;
}

static int t_arena_over_bind1_from_node0(void)
{
    over o;
    CHECK(over_init(&o, CA_SOURCE_NUMA_BIND, 1, -1, 1) == 0, "source");
    int rc = nt_on_node(0, arena_run, &o);
    ca_source_mmap_destroy(&o.src);
    return rc;
}

static int rbtree_bitset_run(void *arg)
{
    over *o = (over *)arg;
    ca_rbtree r;
    ca_rbtree_options ro;
    memset(&ro, 0, sizeof ro);
    ro.source = &o->src.base;
    CHECK(ca_rbtree_init(&r, &ro) == 0, "rbtree init");
    for (int i = 0; i < 100; i++) {
        size_t sz = 500 + (size_t)i * 131;
        char *p = (char *)ca_alloc(&r.base, sz, 16);
        CHECK(p != NULL, "rbtree alloc");
        memset(p, i, sz);
        CHECK_ON(p, sz, o->node);
    }
    ca_rbtree_destroy(&r);

    ca_bitset_options bo;
    ca_bitset_options_init(&bo);
    bo.block_size = 256;
    bo.region_size = 1u << 20;
    bo.source = &o->src.base;
    ca_bitset *b;
    CHECK(ca_bitset_create(&b, &bo) == 0, "bitset create");
    for (int i = 0; i < 100; i++) {
        char *p = (char *)ca_alloc(ca_bitset_allocator(b), 2000, 16);
        CHECK(p != NULL, "bitset alloc");
        memset(p, i, 2000);
        CHECK_ON(p, 2000, o->node);
    }
    ca_bitset_destroy(b);
    return 0;
}

static int t_rbtree_bitset_over_bind1_from_node0(void)
{
    over o;
    CHECK(over_init(&o, CA_SOURCE_NUMA_BIND, 1, -1, 1) == 0, "source");
    int rc = nt_on_node(0, rbtree_bitset_run, &o);
    ca_source_mmap_destroy(&o.src);
    return rc;
}

/* ------------------------------------------------------------------------
 * Bad input on a two-node machine
 * ------------------------------------------------------------------------ */

/* init must fail with want and leave nothing mapped. */
static int refuse(unsigned mode, const nt_mask *m, size_t maxnode, int want, const char *what)
{
    long maps = ca_test_count_maps();
    ca_source_mmap s;
    int e = nt_mmap_init(&s, mode, m, maxnode);
    CHECK(e == want, "%s: init gave %d (%s), expected %d", what, e, strerror(e), want);
    ca_source_numa pol = {mode, m ? m->w : NULL, m ? maxnode : 0};
    e = ca_source_numa_validate(&pol);
    CHECK(e == want, "%s: validate gave %d, expected %d", what, e, want);
    CHECK(ca_test_count_maps() == maps, "%s: a mapping was left behind", what);
    return 0;
}

static int t_bad_node_that_does_not_exist(void)
{
    nt_mask m2 = nt_nodes(2, -1), m02 = nt_nodes(0, 2), m12 = nt_nodes(1, 2);
    if (refuse(CA_SOURCE_NUMA_BIND, &m2, 64, EINVAL, "BIND node 2") ||
        refuse(CA_SOURCE_NUMA_PREFERRED, &m2, 64, EINVAL, "PREFERRED node 2") ||
        refuse(CA_SOURCE_NUMA_INTERLEAVE, &m02, 64, EINVAL, "INTERLEAVE 0,2") ||
        refuse(CA_SOURCE_NUMA_BIND, &m12, 64, EINVAL, "BIND 1,2"))
        return 1;
    /* The same policy applied to an existing range: refused, the range
     * keeps the default policy and its pages. */
    ca_source_mmap s;
    CHECK(nt_mmap_init(&s, CA_SOURCE_NUMA_DEFAULT, NULL, 0) == 0, "init");
    size_t size = 4 * PAGE;
    void *p;
    CHECK(ca_source_obtain(&s.base, size, PAGE, &p) == 0, "obtain");
    memset(p, 1, size);
    ca_source_numa pol = {CA_SOURCE_NUMA_BIND, m12.w, 64};
    CHECK(ca_source_numa_apply(p, size, &pol) == EINVAL, "apply BIND 1,2");
    int mode = -1;
    unsigned long nodes = 0;
    CHECK(nt_policy_of(p, &mode, &nodes) == 0 && mode == MPOL_DEFAULT, "policy changed to %d", mode);
    CHECK(ca_source_release(&s.base, p, size) == 0, "release");
    ca_source_mmap_destroy(&s);
    return 0;
}

static int t_bad_empty_mask(void)
{
    nt_mask none = nt_nodes(-1, -1), m1 = nt_nodes(1, -1);
    if (refuse(CA_SOURCE_NUMA_BIND, &none, 64, EINVAL, "BIND, empty mask") ||
        refuse(CA_SOURCE_NUMA_INTERLEAVE, &none, 4096, EINVAL, "INTERLEAVE, empty 4096-bit mask") ||
        refuse(CA_SOURCE_NUMA_PREFERRED, &none, 64, EINVAL, "PREFERRED, empty mask") ||
        refuse(CA_SOURCE_NUMA_BIND, NULL, 0, EINVAL, "BIND, no mask") ||
        /* maxnode is in bits: node 1 lies outside a 1-bit mask */
        refuse(CA_SOURCE_NUMA_BIND, &m1, 1, EINVAL, "BIND, node 1 outside a 1-bit mask"))
        return 1;
    ca_source_numa pol = {CA_SOURCE_NUMA_BIND, NULL, 64};
    CHECK(ca_source_numa_validate(&pol) == EINVAL, "maxnode without a mask");
    return 0;
}

static int t_bad_mask_wider_than_machine(void)
{
    nt_mask m64 = nt_nodes(0, 64), m1023 = nt_nodes(1, 1023), m1024 = nt_nodes(0, 1024),
            m4095 = nt_nodes(-1, 4095), m3 = nt_nodes(0, 3);
    if (refuse(CA_SOURCE_NUMA_INTERLEAVE, &m3, 64, EINVAL, "INTERLEAVE 0,3 (node 3 beyond the machine)") ||
        refuse(CA_SOURCE_NUMA_INTERLEAVE, &m64, 128, EINVAL, "INTERLEAVE 0,64") ||
        refuse(CA_SOURCE_NUMA_BIND, &m1023, 1024, EINVAL, "BIND 1,1023") ||
        refuse(CA_SOURCE_NUMA_BIND, &m1024, 4096, EINVAL, "BIND 0,1024 (beyond any kernel's nodes)") ||
        refuse(CA_SOURCE_NUMA_PREFERRED, &m4095, 4096, EINVAL, "PREFERRED 4095"))
        return 1;
    /* Wide masks whose extra bits are zero are fine. */
    nt_mask m01 = nt_nodes(0, 1);
    ca_source_mmap s;
    CHECK(nt_mmap_init(&s, CA_SOURCE_NUMA_BIND, &m01, 4096) == 0, "BIND 0,1 in 4096 bits");
    ca_source_mmap_destroy(&s);
    /* PREFERRED takes exactly one node, LOCAL none. */
    if (refuse(CA_SOURCE_NUMA_PREFERRED, &m01, 64, EINVAL, "PREFERRED 0,1") ||
        refuse(CA_SOURCE_NUMA_LOCAL, &m01, 64, EINVAL, "LOCAL 0,1") || refuse(99, &m01, 64, EINVAL, "mode 99"))
        return 1;
    return 0;
}

/* An mbind that fails inside obtain (injected) unmaps what was mapped. */
static int t_bad_mbind_failure_leaves_nothing(void)
{
    ca_source_fault f;
    ca_source_fault_init(&f, CA_SOURCE_FAULT_MBIND, 1, 1, EIO);
    nt_mask m1 = nt_nodes(1, -1);
    ca_source_mmap_options o;
    memset(&o, 0, sizeof o);
    o.numa.mode = CA_SOURCE_NUMA_BIND;
    o.numa.nodes = m1.w;
    o.numa.maxnode = 64;
    o.fault = &f;
    ca_source_mmap s;
    CHECK(ca_source_mmap_init(&s, &o) == 0, "init");
    long maps = ca_test_count_maps();
    void *p = NULL;
    int e = ca_source_obtain(&s.base, 16 * PAGE, PAGE, &p);
    CHECK(e == EIO, "obtain with a failing mbind gave %d", e);
    CHECK(ca_test_count_maps() == maps, "a mapping was left behind");
    ca_stats st;
    CHECK(ca_source_stats(&s.base, &st) == 0 && st.bytes_in_use == 0, "stats count %llu bytes in use",
          (unsigned long long)st.bytes_in_use);
    /* the next obtain works and lands on node 1 */
    CHECK(ca_source_obtain(&s.base, 16 * PAGE, PAGE, &p) == 0, "second obtain");
    memset(p, 1, 16 * PAGE);
    CHECK_ON(p, 16 * PAGE, 1);
    CHECK(ca_source_release(&s.base, p, 16 * PAGE) == 0, "release");
    ca_source_mmap_destroy(&s);
    return 0;
}

int main(void)
{
    static const nt_test tests[] = {
        {"mmap_bind_node1_from_node0", t_mmap_bind_node1_from_node0},
        {"mmap_bind_node0_from_node1", t_mmap_bind_node0_from_node1},
        {"mmap_preferred_node1_from_node0", t_mmap_preferred_node1_from_node0},
        {"mmap_interleave_both_nodes", t_mmap_interleave_both},
        {"mmap_interleave_wide_mask", t_mmap_wide_mask_interleave},
        {"mmap_local_on_node1", t_mmap_local_on_node1},
        {"mmap_local_on_node0", t_mmap_local_on_node0},
        {"mmap_default_follows_thread", t_mmap_default_follows_thread},
        {"mmap_decommit_commit_stays_on_node", t_mmap_decommit_commit_stays_on_node},
        {"apply_moves_existing_pages", t_apply_moves_existing_pages},
        {"bump_over_bind1_from_node0", t_bump_over_bind1_from_node0},
        {"binned_over_bind1_from_node0", t_binned_over_bind1_from_node0},
        {"binned_over_bind1_freed_on_node0", t_binned_over_bind1_freed_on_node0},
        {"binned_over_preferred0_from_node1", t_binned_over_preferred0_from_node1},
        {"binned_over_local_on_node1", t_binned_over_local_on_node1},
        {"binned_over_interleave", t_binned_over_interleave},
        {"arena_over_bind1_from_node0", t_arena_over_bind1_from_node0},
        {"rbtree_bitset_over_bind1_from_node0", t_rbtree_bitset_over_bind1_from_node0},
        {"bad_node_that_does_not_exist", t_bad_node_that_does_not_exist},
        {"bad_empty_mask", t_bad_empty_mask},
        {"bad_mask_wider_than_machine", t_bad_mask_wider_than_machine},
        {"bad_mbind_failure_leaves_nothing", t_bad_mbind_failure_leaves_nothing},
    };
    return nt_main(tests, sizeof tests / sizeof tests[0]);
}
