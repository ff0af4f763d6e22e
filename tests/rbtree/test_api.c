/* SPDX-License-Identifier: MIT */
/*
 * librbtree through its public header only: the allocator contract over both
 * kinds of provider, options, bad input, introspection.
 */
#include <criterion/criterion.h>
#include <ctxalloc/rbtree.h>

#include "ca_contract.h"
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

Test(rbtree_api, contract_over_source)
{
    rbt_test_source src;
    rbt_test_source_init(&src);
    ca_rbtree_options o;
    ca_rbtree_options_init(&o);
    o.source = &src.base;
    o.region_size = 64 * 1024;
    ca_rbtree r;
    cr_assert_eq(ca_rbtree_init(&r, &o), 0);
    ca_contract_check(&r.base, 0);
    cr_assert_null(ca_rbtree_check(&r), "%s", ca_rbtree_check(&r));
    cr_assert_leq(src.live, 1, "all but one empty region returned (live %ld)", src.live);
    ca_rbtree_destroy(&r);
    cr_assert_eq(src.live, 0);
    cr_assert_eq(src.live_bytes, 0);
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
