/* SPDX-License-Identifier: MIT */
/*
 * The listen op of librbtree: a recording listener, a logging source and a
 * logging parent write one event log, so the tests see the order of
 * obtain / added / removed / release / reset / destroyed, the ranges
 * reported against the allocator's own regions, every block inside a
 * reported range, refusals of added() failing the allocation with the tree
 * unchanged, EBUSY, detach, and page-aligned regions from a parent.
 */
#include <criterion/criterion.h>
#include <ctxalloc/rbtree.h>
#include <sys/mman.h>

#include "ca_listen_log.h"
#include "ca_test.h"
#include "rbtree_internal.h"

/* ---- the event log (tests/common/ca_listen_log.h) ------------------------------ */

/* The allocator's counters when added() last ran (rec.hook_arg: the tree). */
static uint64_t seen_allocs;
static size_t seen_regions;

static void snapshot(rec *x)
{
    const ca_rbtree *r = (const ca_rbtree *)x->hook_arg;
    seen_allocs = r->allocs;
    seen_regions = r->nregions;
}

/* ---- a logging parent over the libc allocator --------------------------------- */

typedef struct log_parent {
    ca_allocator base;
    size_t last_align, free_align_bad;
    long live;
} log_parent;

static void *lp_alloc(ca_allocator *a, size_t size, size_t align, size_t *usable)
{
    log_parent *p = (log_parent *)a;
    p->last_align = align;
    void *m = ca_libc_allocator()->ops->alloc(ca_libc_allocator(), size, align, usable);
    if (m) {
        p->live++;
        if (g_log)
            log_ev(g_log, EV_OBTAIN, m, size);
    }
    return m;
}

static void lp_free(ca_allocator *a, void *m, size_t size, size_t align)
{
    log_parent *p = (log_parent *)a;
    if (align != CA_OWNER_PAGE)
        p->free_align_bad++;
    p->live--;
    if (g_log)
        log_ev(g_log, EV_RELEASE, m, size);
    ca_free(ca_libc_allocator(), m, size, align);
}

static const ca_allocator_ops lp_ops = {.name = "log-parent", .alloc = lp_alloc, .free = lp_free};

static void lp_init(log_parent *p)
{
    memset(p, 0, sizeof *p);
    p->base.ops = &lp_ops;
}

/* ---- helpers ----------------------------------------------------------------- */

static void init_over_source(ca_rbtree *r, log_source *src, size_t region_size)
{
    ls_init(src, 4096);
    ca_rbtree_options o;
    ca_rbtree_options_init(&o);
    o.source = &src->base;
    o.region_size = region_size;
    cr_assert_eq(ca_rbtree_init(r, &o), 0);
}

static void assert_clean(const ca_rbtree *r)
{
    const char *what = ca_rbtree_check(r);
    cr_assert_null(what, "ca_rbtree_check: %s", what);
}

/* The live ranges of the recorder are exactly the allocator's regions. */
static void assert_ranges_are_regions(const rec *x, const ca_rbtree *r)
{
    size_t n = 0;
    for (rbt_region *g = r->regions; g; g = g->next, n++) {
        cr_assert_geq(live_find(x, g, g->size), 0, "region %p + %zu not reported", (void *)g, g->size);
        cr_assert(ca_is_aligned((uintptr_t)g, CA_OWNER_PAGE) && g->size % CA_OWNER_PAGE == 0,
                  "region %p + %zu is not whole pages", (void *)g, g->size);
    }
    cr_assert_eq(n, x->nlive, "%zu regions, %zu reported ranges", n, x->nlive);
    cr_assert_eq(n, r->nregions);
}

/* Everything in ca_stats except failures. */
static void assert_same_stats(const ca_stats *a, const ca_stats *b)
{
    cr_assert_eq(a->bytes_in_use, b->bytes_in_use);
    cr_assert_eq(a->bytes_reserved, b->bytes_reserved);
    cr_assert_eq(a->peak_in_use, b->peak_in_use);
    cr_assert_eq(a->allocs, b->allocs);
    cr_assert_eq(a->frees, b->frees);
    cr_assert_eq(a->ncounters, b->ncounters);
    for (unsigned i = 0; i < a->ncounters; i++) {
        cr_assert_str_eq(a->counters[i].name, b->counters[i].name);
        cr_assert_eq(a->counters[i].value, b->counters[i].value, "counter %s", a->counters[i].name);
    }
}

static void assert_log_pairs(const rec *x);

/* ---- tests ------------------------------------------------------------------- */

Test(rbtree_listen, ops_table_has_listen)
{
    ca_rbtree r;
    ca_rbtree_init(&r, NULL);
    cr_assert_not_null(r.base.ops->listen);
    rec x;
    rec_init(&x);
    cr_assert_eq(ca_listen(&r.base, &x.l), 0);
    cr_assert_eq(r.listener, &x.l);
    cr_assert_eq(x.n, 0, "no region yet: nothing reported");
    cr_assert_eq(ca_listen(&r.base, NULL), 0);
    cr_assert_null(r.listener);
    cr_assert_eq(ca_listen(&r.base, NULL), 0, "detach without a listener");
    ca_rbtree_destroy(&r);
}

Test(rbtree_listen, attach_after_growth_reports_every_region)
{
    log_source src;
    ca_rbtree r;
    init_over_source(&r, &src, 64 * 1024);
    void *p[8];
    p[0] = ca_rbtree_alloc(&r, 40000, 16, NULL);
    p[1] = ca_rbtree_alloc(&r, 40000, 16, NULL);     /* second region */
    p[2] = ca_rbtree_alloc(&r, 300000, 16, NULL);    /* a region of its own */
    p[3] = ca_rbtree_alloc(&r, 100, 8192, NULL);     /* aligned */
    p[4] = ca_rbtree_alloc(&r, 5000, 16, NULL);
    for (int i = 0; i < 5; i++)
        cr_assert_not_null(p[i]);
    cr_assert_geq(r.nregions, 3);

    rec x;
    rec_init(&x);
    cr_assert_eq(ca_listen(&r.base, &x.l), 0);
    cr_assert_eq(count_kind(&x, EV_ADDED), r.nregions);
    cr_assert_eq(x.n, r.nregions, "only added() events on attach");
    assert_ranges_are_regions(&x, &r);
    size_t total = 0;
    for (size_t i = 0; i < x.nlive; i++)
        total += x.live[i].size;
    cr_assert_eq(total, r.reserved, "reported bytes = reserved bytes (headers included)");
    for (int i = 0; i < 5; i++)
        cr_assert(live_contains(&x, p[i], ca_rbtree_usable_size(&r, p[i])), "block %d outside the ranges", i);
    /* Reported ranges start with the region header: the first block follows it. */
    for (rbt_region *g = r.regions; g; g = g->next)
        cr_assert(ca_rbtree_owns(&r, (char *)g + RBT_REGION_HDR + RBT_HDR));
    ca_rbtree_destroy(&r);
    cr_assert_eq(x.nlive, 0);
    cr_assert_eq(src.live, 0);
}

Test(rbtree_listen, every_block_inside_a_reported_range)
{
    log_source src;
    ca_rbtree r;
    init_over_source(&r, &src, 64 * 1024);
    rec x;
    rec_init(&x);
    cr_assert_eq(ca_listen(&r.base, &x.l), 0);
    enum { N = 256 };
    void *live[N] = {0};
    size_t sz[N] = {0};
    ca_rng rng = {ca_test_seed()};
    size_t removed = 0;
    uint64_t ops = 6000 * ca_test_scale();
    for (uint64_t op = 0; op < ops; op++) {
        size_t i = ca_rng_below(&rng, N);
        if (live[i]) {
            if (ca_rng_below(&rng, 4) == 0) {
                size_t ns = 1 + ca_rng_below(&rng, 1u << (4 + ca_rng_below(&rng, 14)));
                void *q = ca_rbtree_resize(&r, live[i], sz[i], ns, 16, 0, NULL);
                cr_assert_not_null(q);
                live[i] = q;
                sz[i] = ns;
                cr_assert(live_contains(&x, q, ca_rbtree_usable_size(&r, q)), "resized block outside the ranges");
            } else {
                ca_rbtree_free(&r, live[i], sz[i], 16);
                live[i] = NULL;
            }
        } else {
            size_t s = ca_rng_below(&rng, 1u << (4 + ca_rng_below(&rng, 15))); /* up to 256 KiB */
            size_t align = ca_rng_below(&rng, 8) ? 16 : (size_t)1 << (5 + ca_rng_below(&rng, 12));
            size_t u = 0;
            void *q = ca_rbtree_alloc(&r, s, align, &u);
            cr_assert_not_null(q);
            cr_assert(live_contains(&x, q, u), "block %p + %zu outside the ranges", q, u);
            live[i] = q;
            sz[i] = s;
        }
        if (op % 64 == 63) {
            assert_ranges_are_regions(&x, &r);
            assert_clean(&r);
            assert_log_pairs(&x);
            removed += count_kind(&x, EV_REMOVED);
            x.n = 0; /* every call's events are complete: the log restarts */
        }
    }
    assert_ranges_are_regions(&x, &r);
    assert_log_pairs(&x);
    removed += count_kind(&x, EV_REMOVED);
    cr_assert_gt(removed, 0, "the workload released regions");
    ca_rbtree_destroy(&r);
    cr_assert_eq(x.nlive, 0);
    cr_assert_eq(src.live, 0);
}

/* Provider and listener agree: every obtain is followed by its added(),
 * every removed() by its release of the same range. */
static void assert_log_pairs(const rec *x)
{
    for (size_t i = 0; i < x->n; i++) {
        if (x->log[i].kind == EV_OBTAIN) {
            cr_assert_lt(i + 1, x->n);
            cr_assert_eq(x->log[i + 1].kind, EV_ADDED, "obtain not followed by added at %zu", i);
            cr_assert_eq(x->log[i + 1].base, x->log[i].base);
            cr_assert_eq(x->log[i + 1].size, x->log[i].size);
        }
        if (x->log[i].kind == EV_REMOVED) {
            cr_assert_lt(i + 1, x->n);
            cr_assert_eq(x->log[i + 1].kind, EV_RELEASE, "removed not followed by release at %zu", i);
            cr_assert_eq(x->log[i + 1].base, x->log[i].base);
            cr_assert_eq(x->log[i + 1].size, x->log[i].size);
        }
    }
}

Test(rbtree_listen, growth_reported_before_use)
{
    log_source src;
    ca_rbtree r;
    init_over_source(&r, &src, 64 * 1024);
    rec x;
    rec_init(&x);
    x.hook = snapshot;
    x.hook_arg = &r;
    cr_assert_eq(ca_listen(&r.base, &x.l), 0);
    void *a = ca_rbtree_alloc(&r, 1000, 16, NULL);
    cr_assert_eq(seen_allocs, 0, "added() ran before the first allocation completed");
    cr_assert_eq(seen_regions, 0, "added() ran before the region was linked in");
    cr_assert_eq(x.n, 2);
    cr_assert_eq(x.log[0].kind, EV_OBTAIN);
    cr_assert_eq(x.log[1].kind, EV_ADDED);
    cr_assert(live_contains(&x, a, 1000));
    /* A second region through each carve path: plain, aligned, its own. */
    size_t sizes[] = {65000, 100, 500000};
    size_t aligns[] = {16, 65536, 16};
    for (int i = 0; i < 3; i++) {
        uint64_t allocs = r.allocs;
        size_t regions = r.nregions, n0 = x.n;
        void *p = ca_rbtree_alloc(&r, sizes[i], aligns[i], NULL);
        cr_assert_not_null(p);
        cr_assert_eq(x.n, n0 + 2, "case %d grew by one region", i);
        cr_assert_eq(x.log[n0 + 1].kind, EV_ADDED);
        cr_assert_eq(seen_allocs, allocs, "case %d: added() before the allocation", i);
        cr_assert_eq(seen_regions, regions, "case %d: added() before the region was used", i);
        cr_assert(live_contains(&x, p, sizes[i]));
        cr_assert(ca_is_aligned((uintptr_t)p, aligns[i]));
    }
    /* Growth inside resize (move to a new region). */
    size_t n0 = x.n;
    void *b = ca_rbtree_resize(&r, a, 1000, 700000, 16, 0, NULL);
    cr_assert_not_null(b);
    cr_assert_eq(x.log[n0 + 1].kind, EV_ADDED);
    cr_assert(live_contains(&x, b, 700000));
    assert_clean(&r);
    ca_rbtree_destroy(&r);
}

/* A refusing listener makes the allocation that needed a region fail with
 * its errno; the region goes back, the allocator is as before. */
static void refusal_case(size_t size, size_t align, bool by_resize)
{
    log_source src;
    ca_rbtree r;
    init_over_source(&r, &src, 64 * 1024);
    rec x;
    rec_init(&x);
    cr_assert_eq(ca_listen(&r.base, &x.l), 0);
    void *keep[4];
    for (int i = 0; i < 4; i++) {
        keep[i] = ca_rbtree_alloc(&r, 3000, 16, NULL);
        ca_test_fill(keep[i], 3000, (unsigned)i);
    }
    ca_rbtree_free(&r, keep[1], 3000, 16); /* a hole, so the trees are not trivial */
    ca_stats before, after;
    ca_rbtree_stats(&r, &before);
    long src_live = src.live;
    size_t nlive = x.nlive;

    x.refuse = EPERM;
    errno = 0;
    void *p;
    if (by_resize)
        p = ca_rbtree_resize(&r, keep[0], 3000, size, align, 0, NULL);
    else
        p = ca_rbtree_alloc(&r, size, align, NULL);
    cr_assert_null(p, "allocation of %zu (align %zu) succeeded against a refusal", size, align);
    cr_assert_eq(errno, EPERM, "errno %d, the listener's was EPERM", errno);
    cr_assert_eq(count_kind(&x, EV_REFUSED), 1);
    /* obtain, refused, release of the same range */
    cr_assert_eq(x.log[x.n - 3].kind, EV_OBTAIN);
    cr_assert_eq(x.log[x.n - 2].kind, EV_REFUSED);
    cr_assert_eq(x.log[x.n - 1].kind, EV_RELEASE);
    cr_assert_eq(x.log[x.n - 1].base, x.log[x.n - 3].base);
    cr_assert_eq(src.live, src_live, "the refused region was given back");
    cr_assert_eq(x.nlive, nlive);
    assert_clean(&r);
    ca_rbtree_stats(&r, &after);
    assert_same_stats(&before, &after);
    cr_assert_eq(after.failures, before.failures + 1);
    for (int i = 0; i < 4; i++)
        if (i != 1)
            cr_assert(ca_test_verify(keep[i], 3000, (unsigned)i), "block %d intact", i);
    assert_ranges_are_regions(&x, &r);

    /* Works again once the listener accepts. */
    x.refuse = 0;
    if (by_resize)
        p = ca_rbtree_resize(&r, keep[0], 3000, size, align, 0, NULL);
    else
        p = ca_rbtree_alloc(&r, size, align, NULL);
    cr_assert_not_null(p);
    cr_assert(live_contains(&x, p, size));
    if (by_resize) {
        cr_assert(ca_test_verify(p, 3000, 0));
        keep[0] = p;
    } else {
        ca_rbtree_free(&r, p, size, align);
    }
    assert_ranges_are_regions(&x, &r);
    assert_clean(&r);
    ca_rbtree_destroy(&r);
    cr_assert_eq(src.live, 0);
    cr_assert_eq(x.nlive, 0);
}

Test(rbtree_listen, refusal_fails_allocation_plain) { refusal_case(60000, 16, false); }
Test(rbtree_listen, refusal_fails_allocation_aligned) { refusal_case(100, 65536, false); }
Test(rbtree_listen, refusal_fails_allocation_own_region) { refusal_case(1u << 20, 16, false); }
Test(rbtree_listen, refusal_fails_resize_move) { refusal_case(200000, 16, true); }

Test(rbtree_listen, refusal_on_first_region)
{
    log_source src;
    ca_rbtree r;
    init_over_source(&r, &src, 0);
    rec x;
    rec_init(&x);
    cr_assert_eq(ca_listen(&r.base, &x.l), 0);
    x.refuse = ENOSPC;
    errno = 0;
    cr_assert_null(ca_rbtree_alloc(&r, 10, 16, NULL));
    cr_assert_eq(errno, ENOSPC);
    cr_assert_eq(r.nregions, 0);
    cr_assert_eq(r.reserved, 0);
    cr_assert_eq(src.live, 0);
    assert_clean(&r);
    x.refuse = 0;
    void *p = ca_rbtree_alloc(&r, 10, 16, NULL);
    cr_assert_not_null(p);
    cr_assert(live_contains(&x, p, 10));
    ca_rbtree_free(&r, p, 10, 16);
    assert_clean(&r);
    ca_rbtree_destroy(&r);
}

Test(rbtree_listen, refusal_on_attach)
{
    log_source src;
    ca_rbtree r;
    init_over_source(&r, &src, 64 * 1024);
    for (int i = 0; i < 3; i++)
        cr_assert_not_null(ca_rbtree_alloc(&r, 60000, 16, NULL));
    cr_assert_eq(r.nregions, 3);
    rec x;
    rec_init(&x);
    x.refuse = EACCES;
    x.accept_first = 2;
    cr_assert_eq(ca_listen(&r.base, &x.l), EACCES);
    cr_assert_null(r.listener, "nothing attached after a refusal");
    cr_assert_eq(count_kind(&x, EV_ADDED), 2);
    cr_assert_eq(count_kind(&x, EV_REFUSED), 1);
    cr_assert_eq(count_kind(&x, EV_REMOVED), 2, "the two reported ranges removed again");
    cr_assert_eq(x.nlive, 0);
    /* Not attached: growth reports nothing to it. */
    size_t n0 = x.n;
    cr_assert_not_null(ca_rbtree_alloc(&r, 60000, 16, NULL));
    cr_assert_eq(count_kind(&x, EV_ADDED), 2);
    cr_assert_eq(x.n, n0 + 1, "only the source's obtain is logged");
    /* Accepting now: attaches. */
    x.refuse = 0;
    cr_assert_eq(ca_listen(&r.base, &x.l), 0);
    assert_ranges_are_regions(&x, &r);
    ca_rbtree_destroy(&r);
}

Test(rbtree_listen, ebusy_on_second_attach)
{
    log_source src;
    ca_rbtree r;
    init_over_source(&r, &src, 0);
    cr_assert_not_null(ca_rbtree_alloc(&r, 100, 16, NULL));
    rec x, y;
    rec_init(&y);
    rec_init(&x);
    cr_assert_eq(ca_listen(&r.base, &x.l), 0);
    cr_assert_eq(ca_listen(&r.base, &y.l), EBUSY);
    cr_assert_eq(ca_listen(&r.base, &x.l), EBUSY);
    cr_assert_eq(ca_rbtree_listen(&r, &y.l), EBUSY);
    cr_assert_eq(y.n, 0, "the refused listener saw nothing");
    cr_assert_eq(r.listener, &x.l);
    cr_assert_eq(x.nlive, 1);
    ca_rbtree_destroy(&r);
}

Test(rbtree_listen, detach_reports_removed_for_every_range)
{
    log_source src;
    ca_rbtree r;
    init_over_source(&r, &src, 64 * 1024);
    rec x;
    rec_init(&x);
    cr_assert_eq(ca_listen(&r.base, &x.l), 0);
    for (int i = 0; i < 4; i++)
        cr_assert_not_null(ca_rbtree_alloc(&r, 50000, 16, NULL));
    cr_assert_eq(x.nlive, 4);
    size_t n0 = x.n;
    cr_assert_eq(ca_listen(&r.base, NULL), 0);
    cr_assert_eq(x.n, n0 + 4);
    for (size_t i = n0; i < x.n; i++)
        cr_assert_eq(x.log[i].kind, EV_REMOVED);
    cr_assert_eq(x.nlive, 0);
    cr_assert_null(r.listener);
    /* Detached: no events, regions stay. */
    cr_assert_eq(r.nregions, 4);
    n0 = x.n;
    cr_assert_not_null(ca_rbtree_alloc(&r, 50000, 16, NULL));
    ca_rbtree_reset(&r);
    ca_rbtree_trim(&r);
    for (size_t i = n0; i < x.n; i++)
        cr_assert(x.log[i].kind == EV_OBTAIN || x.log[i].kind == EV_RELEASE, "listener event after detach");
    /* Reattach works. */
    cr_assert_eq(ca_listen(&r.base, &x.l), 0);
    assert_ranges_are_regions(&x, &r);
    ca_rbtree_destroy(&r);
}

Test(rbtree_listen, free_that_releases_a_region_removes_it_first)
{
    log_source src;
    ca_rbtree r;
    init_over_source(&r, &src, 64 * 1024);
    rec x;
    rec_init(&x);
    cr_assert_eq(ca_listen(&r.base, &x.l), 0);
    void *a = ca_rbtree_alloc(&r, 60000, 16, NULL);
    void *b = ca_rbtree_alloc(&r, 60000, 16, NULL);
    ca_rbtree_free(&r, a, 60000, 16); /* first empty region: kept */
    cr_assert_eq(count_kind(&x, EV_REMOVED), 0);
    size_t n0 = x.n;
    ca_rbtree_free(&r, b, 60000, 16); /* second: released */
    cr_assert_eq(x.n, n0 + 2);
    cr_assert_eq(x.log[n0].kind, EV_REMOVED);
    cr_assert_eq(x.log[n0 + 1].kind, EV_RELEASE);
    cr_assert_eq(x.log[n0].base, x.log[n0 + 1].base);
    assert_ranges_are_regions(&x, &r);
    ca_rbtree_destroy(&r);
}

Test(rbtree_listen, reset_then_removed_for_released_regions)
{
    log_source src;
    ca_rbtree r;
    init_over_source(&r, &src, 64 * 1024);
    rec x;
    rec_init(&x);
    cr_assert_eq(ca_listen(&r.base, &x.l), 0);
    for (int i = 0; i < 4; i++)
        cr_assert_not_null(ca_rbtree_alloc(&r, 60000, 16, NULL));
    size_t n0 = x.n;
    ca_reset(&r.base);
    cr_assert_eq(x.log[n0].kind, EV_RESET, "reset() comes first");
    cr_assert_eq(x.n, n0 + 1 + 3 * 2, "three regions released, one kept");
    for (size_t i = n0 + 1; i < x.n; i += 2) {
        cr_assert_eq(x.log[i].kind, EV_REMOVED);
        cr_assert_eq(x.log[i + 1].kind, EV_RELEASE, "removed() before the release");
        cr_assert_eq(x.log[i].base, x.log[i + 1].base);
    }
    assert_ranges_are_regions(&x, &r);
    assert_clean(&r);
    /* A reset that releases nothing still reports reset(). */
    n0 = x.n;
    ca_rbtree_reset(&r);
    cr_assert_eq(x.n, n0 + 1);
    cr_assert_eq(x.log[n0].kind, EV_RESET);
    ca_rbtree_destroy(&r);
}

Test(rbtree_listen, trim_removes_before_release)
{
    log_source src;
    ca_rbtree r;
    init_over_source(&r, &src, 64 * 1024);
    rec x;
    rec_init(&x);
    cr_assert_eq(ca_listen(&r.base, &x.l), 0);
    void *a = ca_rbtree_alloc(&r, 10000, 16, NULL);
    void *b = ca_rbtree_alloc(&r, 60000, 16, NULL); /* does not fit the rest: a second region */
    cr_assert_eq(r.nregions, 2);
    ca_rbtree_free(&r, a, 10000, 16); /* the first region is empty, kept */
    cr_assert_eq(r.nregions, 2);
    size_t n0 = x.n;
    cr_assert_gt(ca_rbtree_trim(&r), 0);
    cr_assert_eq(x.n, n0 + 2, "one empty region trimmed");
    cr_assert_eq(x.log[n0].kind, EV_REMOVED);
    cr_assert_eq(x.log[n0 + 1].kind, EV_RELEASE);
    cr_assert_eq(x.log[n0].base, x.log[n0 + 1].base);
    cr_assert(live_contains(&x, b, 60000), "the region in use stays reported");
    assert_ranges_are_regions(&x, &r);
    ca_rbtree_destroy(&r);
}

Test(rbtree_listen, destroy_order)
{
    log_source src;
    ca_rbtree r;
    init_over_source(&r, &src, 64 * 1024);
    rec x;
    rec_init(&x);
    cr_assert_eq(ca_listen(&r.base, &x.l), 0);
    for (int i = 0; i < 3; i++)
        cr_assert_not_null(ca_rbtree_alloc(&r, 60000, 16, NULL));
    size_t n0 = x.n;
    ca_rbtree_destroy(&r);
    cr_assert_eq(x.log[n0].kind, EV_DESTROYED, "destroyed() comes first");
    cr_assert_eq(x.n, n0 + 1 + 3 * 2);
    for (size_t i = n0 + 1; i < x.n; i += 2) {
        cr_assert_eq(x.log[i].kind, EV_REMOVED);
        cr_assert_eq(x.log[i + 1].kind, EV_RELEASE, "removed() before the release");
        cr_assert_eq(x.log[i].base, x.log[i + 1].base);
        cr_assert_eq(x.log[i].size, x.log[i + 1].size);
    }
    cr_assert_eq(x.nlive, 0);
    cr_assert_null(r.listener, "destroy detaches");
    cr_assert_eq(src.live, 0);
    cr_assert_eq(count_kind(&x, EV_RESET), 0);
}

Test(rbtree_listen, parent_regions_are_page_aligned)
{
    log_parent par;
    lp_init(&par);
    ca_rbtree_options o;
    ca_rbtree_options_init(&o);
    o.parent = &par.base;
    o.region_size = 10000; /* rounded up to whole pages */
    ca_rbtree r;
    cr_assert_eq(ca_rbtree_init(&r, &o), 0);
    rec x;
    rec_init(&x);
    cr_assert_eq(ca_listen(&r.base, &x.l), 0);
    void *p[6];
    size_t sizes[] = {100, 9000, 20000, 5, 70000, 12345};
    for (int i = 0; i < 6; i++) {
        p[i] = ca_rbtree_alloc(&r, sizes[i], i == 3 ? 4096 : 16, NULL);
        cr_assert_not_null(p[i]);
        cr_assert_eq(par.last_align, CA_OWNER_PAGE, "regions are asked for with page alignment");
        cr_assert(live_contains(&x, p[i], sizes[i]));
    }
    cr_assert_geq(x.nlive, 3);
    for (size_t i = 0; i < x.nlive; i++) {
        cr_assert(ca_is_aligned((uintptr_t)x.live[i].base, CA_OWNER_PAGE), "range %p not page-aligned",
                  x.live[i].base);
        cr_assert_eq(x.live[i].size % CA_OWNER_PAGE, 0, "range size %zu not whole pages", x.live[i].size);
        cr_assert_geq(x.live[i].size, 12288);
    }
    assert_ranges_are_regions(&x, &r);
    for (int i = 0; i < 6; i++)
        ca_rbtree_free_unsized(&r, p[i]);
    ca_rbtree_destroy(&r);
    cr_assert_eq(par.live, 0);
    cr_assert_eq(par.free_align_bad, 0, "regions are freed with the alignment they were asked with");
    cr_assert_eq(x.nlive, 0);
}

Test(rbtree_listen, default_libc_parent_ranges_are_whole_pages)
{
    ca_rbtree r;
    ca_rbtree_init(&r, NULL);
    rec x;
    rec_init(&x);
    g_log = NULL;
    cr_assert_eq(ca_listen(&r.base, &x.l), 0);
    void *p = ca_rbtree_alloc(&r, 100, 16, NULL);
    void *q = ca_rbtree_alloc(&r, 3u << 20, 16, NULL);
    cr_assert_not_null(p);
    cr_assert_not_null(q);
    cr_assert_eq(x.nlive, 2);
    for (size_t i = 0; i < x.nlive; i++) {
        cr_assert(ca_is_aligned((uintptr_t)x.live[i].base, CA_OWNER_PAGE));
        cr_assert_eq(x.live[i].size % CA_OWNER_PAGE, 0);
    }
    ca_rbtree_free_unsized(&r, p);
    ca_rbtree_free_unsized(&r, q);
    ca_rbtree_destroy(&r);
    cr_assert_eq(x.nlive, 0);
}

Test(rbtree_listen, through_the_locked_adaptor)
{
    log_source src;
    ca_rbtree r;
    init_over_source(&r, &src, 64 * 1024);
    ca_locked_allocator l;
    cr_assert_eq(ca_locked_init(&l, &r.base, CA_LOCK_MUTEX), 0);
    rec x;
    rec_init(&x);
    cr_assert_eq(ca_listen(&l.base, &x.l), 0);
    void *p = ca_alloc(&l.base, 100, 16);
    cr_assert(live_contains(&x, p, 100));
    cr_assert_eq(ca_listen(&l.base, &x.l), EBUSY);
    ca_free_unsized(&l.base, p);
    cr_assert_eq(ca_listen(&l.base, NULL), 0);
    cr_assert_eq(x.nlive, 0);
    ca_locked_destroy(&l);
    ca_rbtree_destroy(&r);
}

Test(rbtree_listen, null_callbacks_are_skipped)
{
    log_source src;
    ca_rbtree r;
    init_over_source(&r, &src, 64 * 1024);
    ca_listener none = {NULL, NULL, NULL, NULL};
    g_log = NULL;
    cr_assert_not_null(ca_rbtree_alloc(&r, 60000, 16, NULL));
    cr_assert_eq(ca_listen(&r.base, &none), 0);
    void *a = ca_rbtree_alloc(&r, 60000, 16, NULL);
    void *b = ca_rbtree_alloc(&r, 60000, 16, NULL);
    ca_rbtree_free_unsized(&r, a);
    ca_rbtree_free_unsized(&r, b);
    ca_rbtree_reset(&r);
    ca_rbtree_trim(&r);
    cr_assert_not_null(ca_rbtree_alloc(&r, 60000, 16, NULL));
    assert_clean(&r);
    ca_rbtree_destroy(&r);
    cr_assert_eq(src.live, 0);
}
