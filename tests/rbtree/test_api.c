/* SPDX-License-Identifier: MIT */
/*
 * librbtree through its public header only: the allocator contract over both
 * kinds of provider, options, bad input, introspection.
 */
#include <criterion/criterion.h>
#include <ctxalloc/rbtree.h>

#include "ca_contract.h"
#include "ca_counting.h"
#include "ca_test.h"
#include "rbtree_test.h"

Test(rbtree_api, contract_over_libc_parent)
{
    ca_rbtree r;
    cr_assert_eq(ca_rbtree_init(&r, NULL), 0);
    ca_contract_check(&r.base, 0);
    cr_assert_null(ca_rbtree_check(&r), "%s", ca_rbtree_check(&r));
    ca_stats st;
    cr_assert_eq(ca_stats_get(&r.base, &st), 0);
    cr_assert_eq(st.bytes_in_use, 0);
    cr_assert_str_eq(st.name, "rbtree");
    ca_rbtree_destroy(&r);
}

/* The contract on an rbtree with 64 KiB regions from src (left initialised). */
static void contract_over(ca_rbtree *r, ca_source *src)
{
    ca_rbtree_options o;
    ca_rbtree_options_init(&o);
    o.source = src;
    o.region_size = 64 * 1024;
    cr_assert_eq(ca_rbtree_init(r, &o), 0);
    ca_contract_check(&r->base, 0);
    cr_assert_null(ca_rbtree_check(r), "%s", ca_rbtree_check(r));
}

Test(rbtree_api, contract_over_source)
{
    rbt_test_source src;
    rbt_test_source_init(&src);
    ca_rbtree r;
    contract_over(&r, &src.base);
    cr_assert_leq(src.live, 1, "all but one empty region returned (live %ld)", src.live);
    ca_rbtree_destroy(&r);
    cr_assert_eq(src.live, 0);
    cr_assert_eq(src.live_bytes, 0);
}

Test(rbtree_api, contract_over_allocator_source)
{
    ca_allocator_source as;
    cr_assert_eq(ca_allocator_source_init(&as, ca_libc_allocator()), 0);
    ca_rbtree r;
    contract_over(&r, &as.base);
    ca_rbtree_destroy(&r);
    ca_stats st;
    cr_assert_eq(ca_source_stats(&as.base, &st), 0);
    cr_assert_eq(st.bytes_in_use, 0, "regions leaked");
    cr_assert_gt(st.allocs, 0);
    cr_assert_null(ca_source_check(&as.base));
}

/* The same allocations, frees and resizes on an rbtree. */
static void drive(ca_rbtree *r)
{
    void *p[200];
    size_t sz[200];
    ca_rng g = {7};
    for (int i = 0; i < 200; i++) {
        sz[i] = i % 40 == 0 ? 200000 : 16 + (size_t)ca_rng_below(&g, 6000);
        p[i] = ca_rbtree_alloc(r, sz[i], i % 9 == 0 ? 4096 : 16, NULL);
        cr_assert_not_null(p[i]);
        ca_test_fill(p[i], sz[i], (uint64_t)i);
    }
    for (int i = 0; i < 200; i += 3) {
        ca_rbtree_free(r, p[i], sz[i], 16);
        p[i] = NULL;
    }
    for (int i = 1; i < 200; i += 5) {
        if (!p[i])
            continue;
        void *q = ca_rbtree_resize(r, p[i], sz[i], sz[i] * 3, i % 9 == 0 ? 4096 : 16, 0, NULL);
        cr_assert_not_null(q);
        cr_assert(ca_test_verify(q, sz[i], (uint64_t)i));
        p[i] = q;
        sz[i] *= 3;
    }
    for (int i = 0; i < 200; i += 2)
        ca_rbtree_free_unsized(r, p[i]);
}

/* What the rbtree asked of its allocator: every region live in it is whole
 * pages asked for with page alignment, and the source holds exactly the
 * regions the rbtree counts. */
static void assert_regions_are_blocks(const ca_rbtree *r, const ca_counting_allocator *c)
{
    cr_assert_null(ca_rbtree_check(r), "%s", ca_rbtree_check(r));
    for (int i = 0; i < c->n; i++) {
        cr_assert_eq(c->blk[i].align, CA_OWNER_PAGE, "regions are asked for with page alignment");
        cr_assert_eq(c->blk[i].size % CA_OWNER_PAGE, 0, "region of %zu bytes", c->blk[i].size);
        cr_assert_geq(c->blk[i].size, 12288, "the region size rounded up to whole pages");
    }
    ca_stats sr, ss;
    cr_assert_eq(ca_rbtree_stats(r, &sr), 0);
    cr_assert_eq(ca_source_stats(r->source, &ss), 0);
    cr_assert_eq(ss.bytes_in_use, sr.bytes_reserved, "the source holds exactly the regions");
    cr_assert_eq(ss.bytes_in_use, c->live_bytes);
    cr_assert_eq((size_t)c->n, r->nregions);
    uint64_t obtained = 0, released = 0;
    cr_assert(ca_stats_get_counter(&sr, "regions_obtained", &obtained));
    cr_assert(ca_stats_get_counter(&sr, "regions_released", &released));
    cr_assert_eq(ss.allocs, obtained);
    cr_assert_eq(ss.frees, released);
}

/*
 * An rbtree over a parent is an rbtree over an allocator source, with the
 * regions the parent backing always gave: a parent in the options and an
 * explicit ca_allocator_source both ask their allocator for whole pages
 * aligned to a page and free every region with the size and alignment it
 * was asked with; a failing parent gives NULL + ENOMEM and leaves the
 * rbtree as it was. (Two rbtrees over different allocators are not compared
 * block by block: best fit takes the lowest address among equal blocks, so
 * where regions land decides which block serves a request.)
 */
Test(rbtree_api, parent_is_an_allocator_source)
{
    static ca_counting_allocator ca, cb;
    ca_counting_init(&ca);
    ca_counting_init(&cb);
    ca_allocator_source as;
    cr_assert_eq(ca_allocator_source_init(&as, &cb.base), 0);
    ca_rbtree_options o;
    ca_rbtree_options_init(&o);
    o.region_size = 10000; /* rounded up to whole pages */
    o.parent = &ca.base;
    ca_rbtree x, y;
    cr_assert_eq(ca_rbtree_init(&x, &o), 0);
    o.parent = NULL;
    o.source = &as.base;
    cr_assert_eq(ca_rbtree_init(&y, &o), 0);
    cr_assert_eq(x.source, &x.adaptor.base, "the parent is reached through the rbtree's own source");
    cr_assert_eq(x.region_size, y.region_size);
    drive(&x);
    drive(&y);
    cr_assert_gt(ca.n, 2);
    cr_assert_gt(ca.frees, 0, "regions were given back on the way");
    assert_regions_are_blocks(&x, &ca);
    assert_regions_are_blocks(&y, &cb);

    /* A region the parent refuses (with its own errno): ENOMEM, nothing changed. */
    ca_stats sx, sf;
    cr_assert_eq(ca_rbtree_stats(&x, &sx), 0);
    ca.fail_after = 0;
    ca.fail_errno = EPERM;
    int n = ca.n;
    errno = 0;
    cr_assert_null(ca_rbtree_alloc(&x, 4u << 20, 16, NULL));
    cr_assert_eq(errno, ENOMEM);
    cr_assert_eq(ca_rbtree_stats(&x, &sf), 0);
    cr_assert_eq(sf.failures, sx.failures + 1);
    cr_assert_eq(sf.bytes_reserved, sx.bytes_reserved);
    cr_assert_eq(sf.bytes_in_use, sx.bytes_in_use);
    cr_assert_eq(ca.n, n);
    assert_regions_are_blocks(&x, &ca);
    ca.fail_after = -1;
    cr_assert_not_null(ca_rbtree_alloc(&x, 4u << 20, 16, NULL));
    assert_regions_are_blocks(&x, &ca);

    ca_rbtree_destroy(&x);
    ca_rbtree_destroy(&y);
    cr_assert_eq(ca.mismatches, 0, "regions freed with another size or alignment");
    cr_assert_eq(cb.mismatches, 0);
    cr_assert_eq(ca.n, 0, "every region back to the parent");
    cr_assert_eq(cb.n, 0);
    cr_assert_null(ca_source_check(&as.base));
}

Test(rbtree_api, options)
{
    rbt_test_source src;
    rbt_test_source_init(&src);
    ca_rbtree_options o;
    ca_rbtree_options_init(&o);
    o.source = &src.base;
    o.parent = ca_libc_allocator();
    ca_rbtree r;
    cr_assert_eq(ca_rbtree_init(&r, &o), EINVAL);
    o.parent = NULL;
    o.region_size = SIZE_MAX - 10;
    cr_assert_eq(ca_rbtree_init(&r, &o), EINVAL);
    ca_rbtree_destroy(NULL);
}

Test(rbtree_api, bad_input)
{
    ca_rbtree r;
    ca_rbtree_init(&r, NULL);
    errno = 0;
    cr_assert_null(ca_rbtree_alloc(&r, 16, CA_RBTREE_ALIGN_MAX * 2, NULL));
    cr_assert_eq(errno, EINVAL);
    errno = 0;
    cr_assert_null(ca_rbtree_alloc(&r, 16, 48, NULL));
    cr_assert_eq(errno, EINVAL);
    size_t sizes[] = {SIZE_MAX, SIZE_MAX - 16, SIZE_MAX / 2, (size_t)1 << 47, SIZE_MAX - 4096};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        errno = 0;
        cr_assert_null(ca_rbtree_alloc(&r, sizes[i], 16, NULL));
        cr_assert_eq(errno, ENOMEM);
        errno = 0;
        cr_assert_null(ca_rbtree_alloc(&r, sizes[i] - 100, 4096, NULL));
        cr_assert_eq(errno, ENOMEM);
    }
    ca_stats st;
    ca_rbtree_stats(&r, &st);
    cr_assert_eq(st.failures, 12);
    cr_assert_eq(st.bytes_reserved, 0);
    /* NULL frees and resizes */
    ca_rbtree_free(&r, NULL, 0, 16);
    ca_rbtree_free_unsized(&r, NULL);
    cr_assert_eq(ca_rbtree_usable_size(&r, NULL), 0);
    cr_assert_not(ca_rbtree_owns(&r, NULL));
    void *p = ca_rbtree_resize(&r, NULL, 0, 100, 16, 0, NULL);
    cr_assert_not_null(p);
    cr_assert(ca_rbtree_owns(&r, p));
    int local;
    cr_assert_not(ca_rbtree_owns(&r, &local));
    errno = 0;
    cr_assert_null(ca_rbtree_resize(&r, p, 100, 200, 3, 0, NULL));
    cr_assert_eq(errno, EINVAL);
    ca_rbtree_free(&r, p, 100, 16);
    ca_rbtree_destroy(&r);
}

Test(rbtree_api, introspection)
{
    ca_rbtree r;
    ca_rbtree_init(&r, NULL);
    size_t lo, hi, prev_hi = CA_RBTREE_MIN_BLOCK;
    uint64_t bytes;
    for (unsigned c = 0; c < CA_RBTREE_NCLASSES; c++) {
        cr_assert_eq(ca_rbtree_class_info(&r, c, &lo, &hi, &bytes), 0);
        cr_assert_eq(lo, prev_hi, "class %u starts at %zu, previous ended at %zu", c, lo, prev_hi);
        cr_assert_gt(hi, lo);
        cr_assert_eq(bytes, 0);
        prev_hi = hi;
    }
    cr_assert_eq(prev_hi, (size_t)1 << 48);
    cr_assert_eq(ca_rbtree_class_info(&r, CA_RBTREE_NCLASSES, NULL, NULL, NULL), EINVAL);

    size_t u = 0;
    void *p = ca_rbtree_alloc(&r, 1000, 16, &u);
    cr_assert_geq(u, 1000);
    cr_assert_eq(ca_rbtree_usable_size(&r, p), u);
    cr_assert_eq(ca_usable_size(&r.base, p), u);
    ca_stats st;
    ca_rbtree_stats(&r, &st);
    cr_assert_eq(st.bytes_in_use, u);
    uint64_t v;
    cr_assert(ca_stats_get_counter(&st, "largest_free", &v));
    cr_assert_eq(v, ca_rbtree_largest_free(&r));
    cr_assert(ca_stats_get_counter(&st, "fragmentation_ppm", &v));
    cr_assert_eq(v, 0, "one free block: no fragmentation");
    uint64_t b0 = 0, b1 = 0, b2 = 0, fb = 0;
    cr_assert(ca_stats_get_counter(&st, "free_bytes_lt_1k", &b0));
    cr_assert(ca_stats_get_counter(&st, "free_bytes_lt_64k", &b1));
    cr_assert(ca_stats_get_counter(&st, "free_bytes_ge_64k", &b2));
    cr_assert(ca_stats_get_counter(&st, "free_bytes", &fb));
    cr_assert_eq(b0 + b1 + b2, fb);
    cr_assert_gt(b2, 0, "the rest of a 1 MiB region is one large free block");
    uint64_t sum = 0, cb;
    for (unsigned c = 0; c < CA_RBTREE_NCLASSES; c++) {
        ca_rbtree_class_info(&r, c, NULL, NULL, &cb);
        sum += cb;
    }
    cr_assert_eq(sum, fb, "free bytes per class add up");
    ca_free_unsized(&r.base, p);
    cr_assert_eq(ca_reset(&r.base), 0);
    cr_assert_null(ca_rbtree_check(&r));
    cr_assert_gt(ca_rbtree_trim(&r), 0);
    ca_rbtree_stats(&r, &st);
    cr_assert_eq(st.bytes_reserved, 0);
    ca_rbtree_destroy(&r);
}

Test(rbtree_api, provider_failure)
{
    rbt_test_source src;
    rbt_test_source_init(&src);
    ca_rbtree_options o;
    ca_rbtree_options_init(&o);
    o.source = &src.base;
    ca_rbtree r;
    ca_rbtree_init(&r, &o);
    src.fail = 1;
    errno = 0;
    cr_assert_null(ca_rbtree_alloc(&r, 100, 16, NULL));
    cr_assert_eq(errno, ENOMEM);
    src.fail = 0;
    void *p = ca_rbtree_alloc(&r, 100, 16, NULL);
    ca_test_fill(p, 100, 7);
    src.fail = 1;
    errno = 0;
    cr_assert_null(ca_rbtree_resize(&r, p, 100, 4u << 20, 16, 0, NULL), "needs a new region");
    cr_assert_eq(errno, ENOMEM);
    cr_assert(ca_test_verify(p, 100, 7), "failed resize keeps the original");
    cr_assert_null(ca_rbtree_check(&r));
    ca_rbtree_free(&r, p, 100, 16);
    ca_rbtree_destroy(&r);
}

/* The statistics report every counter of CA_RBTREE_COUNTERS, and only those. */
Test(rbtree_api, stats_counters_listed)
{
    static const char *const names[] = CA_STATS_NAMES(CA_RBTREE_COUNTERS);
    ca_rbtree r;
    cr_assert_eq(ca_rbtree_init(&r, NULL), 0);
    void *p = ca_rbtree_alloc(&r, 5000, 16, NULL);
    cr_assert_not_null(p);
    ca_stats st;
    cr_assert_eq(ca_rbtree_stats(&r, &st), 0);
    const char *d = ca_test_counters_differ(&st, names, sizeof names / sizeof *names);
    cr_assert_null(d, "rbtree stats: %s", d);
    ca_rbtree_free(&r, p, 5000, 16);
    ca_rbtree_destroy(&r);
}
