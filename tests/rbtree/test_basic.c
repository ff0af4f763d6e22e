/* SPDX-License-Identifier: MIT */
/*
 * librbtree behaviour: coalescing in the four neighbour cases, best fit,
 * resize in place versus move, large requests, region return with
 * hysteresis, alignment above the page size. ca_rbtree_check after each step.
 */
#include <criterion/criterion.h>
#include <ctxalloc/rbtree.h>

#include "ca_test.h"
#include "rbtree_test.h"

#define CHECK(r) cr_assert_null(ca_rbtree_check(r), "check: %s", ca_rbtree_check(r))

static rbt_test_source src;
static ca_rbtree r;

static void setup(void)
{
    rbt_test_source_init(&src);
    ca_rbtree_options o;
    ca_rbtree_options_init(&o);
    o.source = &src.base;
    o.region_size = 64 * 1024;
    cr_assert_eq(ca_rbtree_init(&r, &o), 0);
}

static void teardown(void)
{
    ca_rbtree_destroy(&r);
    cr_assert_eq(src.live, 0, "regions leaked");
}

static uint64_t counter(const char *name)
{
    ca_stats st;
    uint64_t v = 0;
    ca_rbtree_stats(&r, &st);
    cr_assert(ca_stats_get_counter(&st, name, &v));
    return v;
}

TestSuite(rbtree_basic, .init = setup, .fini = teardown);

Test(rbtree_basic, coalescing_four_cases)
{
    char *a[10];
    /* A free block is cut from its tail: a fresh region fills back to front.
     * a[] is then listed by ascending address; the free rest is before a[0]. */
    for (int i = 9; i >= 0; i--) {
        a[i] = ca_rbtree_alloc(&r, 112, 16, NULL); /* 128-byte blocks */
        if (i < 9)
            cr_assert_eq(a[i], a[i + 1] - 128, "fresh region fills back to front");
    }
    cr_assert_eq(counter("free_blocks"), 1);

    /* neither neighbour free */
    ca_rbtree_free(&r, a[1], 112, 16);
    CHECK(&r);
    cr_assert_eq(counter("free_blocks"), 2);
    /* previous neighbour free */
    ca_rbtree_free(&r, a[2], 112, 16);
    CHECK(&r);
    cr_assert_eq(counter("free_blocks"), 2, "merged into the previous block");
    /* next neighbour free */
    ca_rbtree_free(&r, a[5], 112, 16);
    cr_assert_eq(counter("free_blocks"), 3);
    ca_rbtree_free(&r, a[4], 112, 16);
    CHECK(&r);
    cr_assert_eq(counter("free_blocks"), 3, "merged with the next block");
    /* both neighbours free */
    ca_rbtree_free(&r, a[7], 112, 16);
    cr_assert_eq(counter("free_blocks"), 4);
    ca_rbtree_free(&r, a[6], 112, 16);
    CHECK(&r);
    cr_assert_eq(counter("free_blocks"), 3, "merged with both neighbours");

    /* The merged blocks are whole: exact-size requests land on them. */
    cr_assert_eq(ca_rbtree_alloc(&r, 512 - 16, 16, NULL), a[4], "a4..a7 merged into 512 bytes");
    cr_assert_eq(ca_rbtree_alloc(&r, 256 - 16, 16, NULL), a[1], "a1..a2 merged into 256 bytes");
    CHECK(&r);
    cr_assert_eq(counter("free_blocks"), 1);
}

/* Holes of the given block sizes, separated by allocated guards. */
static void make_holes(const size_t *sizes, int n, char **holes)
{
    for (int i = 0; i < n; i++) {
        holes[i] = ca_rbtree_alloc(&r, sizes[i] - 16, 16, NULL);
        cr_assert_eq(ca_rbtree_usable_size(&r, holes[i]), sizes[i] - 16);
        cr_assert_not_null(ca_rbtree_alloc(&r, 48, 16, NULL)); /* guard */
    }
    for (int i = 0; i < n; i++)
        ca_rbtree_free_unsized(&r, holes[i]);
    CHECK(&r);
}

Test(rbtree_basic, best_fit_exact_classes)
{
    size_t sizes[] = {512, 256, 384, 320, 336, 320};
    char *h[6];
    make_holes(sizes, 6, h);
    /* holes were cut back to front: h[5] has the lowest address */
    cr_assert_eq(ca_rbtree_alloc(&r, 300, 16, NULL), h[5], "smallest sufficient (320), lowest address");
    cr_assert_eq(ca_rbtree_alloc(&r, 300, 16, NULL), h[3], "the other 320");
    cr_assert_eq(ca_rbtree_alloc(&r, 300, 16, NULL), h[4], "then 336 (16 bytes left: not split)");
    cr_assert_eq(ca_rbtree_alloc(&r, 300, 16, NULL), h[2] + 64, "then 384, split: the tail is used");
    cr_assert_eq(ca_rbtree_alloc(&r, 100, 16, NULL), h[1] + 128, "256 beats the 512 hole");
    CHECK(&r);
}

Test(rbtree_basic, best_fit_shared_class)
{
    /* 4352..4607 is one class (4400, 4496, 4512): best fit must search inside
     * it, skipping 4400; 4208, 4800, 5104 and 6000 sit in other classes. */
    size_t sizes[] = {5104, 4208, 4800, 4512, 4400, 4496, 6000};
    char *h[7];
    make_holes(sizes, 7, h);
    cr_assert_eq(ca_rbtree_alloc(&r, 4480 - 16, 16, NULL), h[5], "4496 is the smallest >= 4480");
    cr_assert_eq(ca_rbtree_alloc(&r, 4480 - 16, 16, NULL), h[3], "then 4512");
    cr_assert_eq(ca_rbtree_alloc(&r, 4480 - 16, 16, NULL), h[2] + 320, "then 4800 (tail)");
    cr_assert_eq(ca_rbtree_alloc(&r, 4100, 16, NULL), h[1] + 80, "4208 (tail)");
    cr_assert_eq(ca_rbtree_alloc(&r, 5104 - 16, 16, NULL), h[0], "exact 5104");
    cr_assert_eq(ca_rbtree_alloc(&r, 5200, 16, NULL), h[6] + 784, "next class: 6000 (tail)");
    CHECK(&r);
}

Test(rbtree_basic, grow_in_place_vs_move)
{
    /* allocated back to front: a < b < c in memory */
    char *c = ca_rbtree_alloc(&r, 100, 16, NULL);
    char *b = ca_rbtree_alloc(&r, 1000, 16, NULL);
    char *a = ca_rbtree_alloc(&r, 100, 16, NULL);
    cr_assert(a < b && b < c);
    ca_test_fill(a, 100, 1);
    ca_test_fill(c, 100, 3);
    ca_rbtree_free(&r, b, 1000, 16);
    /* next neighbour free and large enough: same pointer */
    size_t u = 0;
    cr_assert_eq(ca_rbtree_resize(&r, a, 100, 900, 16, 0, &u), a);
    cr_assert_geq(u, 900);
    cr_assert(ca_test_verify(a, 100, 1));
    CHECK(&r);
    ca_test_fill(a, 900, 1);
    /* too large for the neighbour: in place refuses, intact */
    errno = 0;
    cr_assert_null(ca_rbtree_resize(&r, a, 900, 5000, 16, CA_RESIZE_IN_PLACE, NULL));
    cr_assert_eq(errno, ENOMEM);
    cr_assert(ca_test_verify(a, 900, 1));
    CHECK(&r);
    /* ... and a plain resize moves, data preserved, old block freed */
    char *m = ca_rbtree_resize(&r, a, 900, 5000, 16, 0, NULL);
    cr_assert_not_null(m);
    cr_assert_neq(m, a);
    cr_assert(ca_test_verify(m, 900, 1));
    cr_assert(ca_test_verify(c, 100, 3));
    CHECK(&r);
    /* shrink in place returns the tail */
    uint64_t before = counter("free_bytes");
    cr_assert_eq(ca_rbtree_resize(&r, m, 5000, 200, 16, CA_RESIZE_IN_PLACE, NULL), m);
    cr_assert(ca_test_verify(m, 200, 1));
    cr_assert_gt(counter("free_bytes"), before);
    CHECK(&r);
    /* small shrink whose tail merges into a free next block */
    char *z = ca_rbtree_alloc(&r, 200, 16, NULL);
    char *y = ca_rbtree_alloc(&r, 200, 16, NULL);
    char *x = ca_rbtree_alloc(&r, 200, 16, NULL);
    cr_assert(x + 224 == y && y + 224 == z);
    ca_rbtree_free(&r, y, 200, 16);
    cr_assert_eq(ca_rbtree_resize(&r, x, 200, 184, 16, 0, NULL), x);
    cr_assert_eq(ca_rbtree_usable_size(&r, x), 192);
    CHECK(&r);
    ca_rbtree_free(&r, x, 184, 16);
    ca_rbtree_free(&r, z, 200, 16);
    ca_rbtree_free(&r, m, 200, 16);
    ca_rbtree_free(&r, c, 100, 16);
    CHECK(&r);
    cr_assert_eq(counter("free_blocks"), 1);
}

Test(rbtree_basic, large_requests_and_region_return)
{
    /* Larger than a region: a region of its own. */
    void *big = ca_rbtree_alloc(&r, 8u << 20, 16, NULL);
    cr_assert_not_null(big);
    memset(big, 0xab, 8u << 20);
    cr_assert_eq(src.live, 1);
    void *small = ca_rbtree_alloc(&r, 100, 16, NULL); /* served from big's region tail or a new one */
    CHECK(&r);
    ca_rbtree_free_unsized(&r, small);
    ca_rbtree_free_unsized(&r, big);
    CHECK(&r);
    cr_assert_eq(src.live, 1, "the single empty region is kept (hysteresis)");

    /* Fill several regions, then free everything: one empty region stays. */
    ca_rbtree_trim(&r);
    cr_assert_eq(src.live, 0);
    void *p[64];
    for (int i = 0; i < 64; i++)
        p[i] = ca_rbtree_alloc(&r, 8000, 16, NULL);
    cr_assert_geq(src.live, 8);
    for (int i = 0; i < 64; i++) {
        ca_rbtree_free(&r, p[i], 8000, 16);
        CHECK(&r);
    }
    cr_assert_eq(src.live, 1, "empty regions beyond one are returned (%ld live)", src.live);
    cr_assert_eq(counter("empty_regions"), 1);
    /* the kept region is reused, not refetched */
    uint64_t obtained = counter("regions_obtained");
    ca_rbtree_free_unsized(&r, ca_rbtree_alloc(&r, 1000, 16, NULL));
    cr_assert_eq(counter("regions_obtained"), obtained);
    cr_assert_gt(ca_rbtree_trim(&r), 0);
    cr_assert_eq(src.live, 0);
    CHECK(&r);
}

Test(rbtree_basic, alignment_above_page_size)
{
    size_t aligns[] = {32, 64, 4096, 8192, 65536, CA_RBTREE_ALIGN_MAX};
    void *p[6];
    for (int i = 0; i < 6; i++) {
        p[i] = ca_rbtree_alloc(&r, 100 + (size_t)i, aligns[i], NULL);
        cr_assert_not_null(p[i]);
        cr_assert(ca_is_aligned((uintptr_t)p[i], aligns[i]), "%p not aligned to %zu", p[i], aligns[i]);
        ca_test_fill(p[i], 100 + (size_t)i, (uint64_t)i);
        CHECK(&r);
    }
    for (int i = 0; i < 6; i++)
        cr_assert(ca_test_verify(p[i], 100 + (size_t)i, (uint64_t)i));
    for (int i = 0; i < 6; i++) {
        ca_rbtree_free(&r, p[i], 100 + (size_t)i, aligns[i]);
        CHECK(&r);
    }
    cr_assert_eq(counter("free_blocks"), 1);
}

Test(rbtree_basic, size_zero_and_reset)
{
    void *z[10];
    for (int i = 0; i < 10; i++) {
        z[i] = ca_rbtree_alloc(&r, 0, 16, NULL);
        cr_assert_not_null(z[i]);
        for (int j = 0; j < i; j++)
            cr_assert_neq(z[i], z[j]);
    }
    for (int i = 0; i < 100; i++)
        ca_rbtree_alloc(&r, 10000, 16, NULL);
    cr_assert_gt(src.live, 1);
    ca_rbtree_reset(&r);
    CHECK(&r);
    cr_assert_eq(src.live, 1);
    ca_stats st;
    ca_rbtree_stats(&r, &st);
    cr_assert_eq(st.bytes_in_use, 0);
    cr_assert_eq(st.peak_in_use, 0);
    cr_assert_not_null(ca_rbtree_alloc(&r, 10, 16, NULL));
    CHECK(&r);
}

/* The last free of a region can empty it through each merge path; with one
 * empty region already kept, the region must go back to the source. */
static void keep_one_empty_region(void)
{
    /* A block that needs a region of its own (64 KiB regions), freed: kept. */
    void *b = ca_rbtree_alloc(&r, 65440, 16, NULL);
    cr_assert_not_null(b);
    ca_rbtree_free_unsized(&r, b);
    cr_assert_eq(counter("empty_regions"), 1);
}

Test(rbtree_basic, region_released_when_merging_into_previous)
{
    /* region: [free 65424][a 64]; freeing a grows the free block within
     * its class, which then spans the region. */
    void *a = ca_rbtree_alloc(&r, 48, 16, NULL);
    cr_assert_eq(src.live, 1);
    keep_one_empty_region();
    cr_assert_eq(src.live, 2);
    ca_rbtree_free(&r, a, 48, 16);
    CHECK(&r);
    cr_assert_eq(src.live, 1, "the emptied region is released, one kept");
    cr_assert_eq(counter("empty_regions"), 1);
}

Test(rbtree_basic, region_released_when_absorbing_next)
{
    /* region: [c 2000][x 63488]; x freed first (c busy), then c absorbs x
     * within x's class and the block spans the region. */
    void *x = ca_rbtree_alloc(&r, 63488 - 16, 16, NULL);
    void *c = ca_rbtree_alloc(&r, 2000 - 16, 16, NULL);
    cr_assert_eq((char *)c + 2000, (char *)x, "c fills the front exactly");
    cr_assert_eq(counter("free_blocks"), 0);
    keep_one_empty_region();
    cr_assert_eq(src.live, 2);
    ca_rbtree_free(&r, x, 63488 - 16, 16);
    cr_assert_eq(src.live, 2);
    ca_rbtree_free(&r, c, 2000 - 16, 16);
    CHECK(&r);
    cr_assert_eq(src.live, 1, "the emptied region is released, one kept");
    cr_assert_eq(counter("empty_regions"), 1);
}
