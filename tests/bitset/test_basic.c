/* SPDX-License-Identifier: MIT */
/*
 * libbitset's behaviour through the public header: first fit, runs,
 * alignment above the block size, full region, resize (in place, moved,
 * failed), unsized free of adjacent runs.
 */
#include <criterion/criterion.h>
#include <ctxalloc/bitset.h>

#include "bitset_test.h"
#include "ca_test.h"

static test_source src;

static void setup(void) { test_source_init(&src); }

TestSuite(basic, .init = setup);

static size_t idx(ca_bitset *b, const void *p)
{
    return (size_t)((const char *)p - (const char *)ca_bitset_base(b)) / ca_bitset_block_size(b);
}

Test(basic, first_fit_by_address)
{
    ca_bitset *b = test_bitset_new(&src, 64 * 1024, 64);
    void *p[8];
    for (int i = 0; i < 8; i++) {
        p[i] = ca_bitset_alloc(b, 64, 16, NULL);
        cr_assert_eq(idx(b, p[i]), (size_t)i);
    }
    ca_bitset_free(b, p[5], 64);
    ca_bitset_free(b, p[2], 64);
    cr_assert_eq(ca_bitset_alloc(b, 1, 1, NULL), p[2], "lowest free block first");
    cr_assert_eq(ca_bitset_alloc(b, 64, 16, NULL), p[5]);
    void *r = ca_bitset_alloc(b, 65, 16, NULL); /* two blocks: the first pair after 7 */
    cr_assert_eq(idx(b, r), 8);
    cr_assert_eq(ca_bitset_usable_size(b, r), 128);
    ca_bitset_destroy(b);
}

Test(basic, alignment_above_block_size)
{
    ca_bitset *b = test_bitset_new(&src, 1 << 20, 64);
    ca_bitset_alloc(b, 64, 16, NULL); /* block 0 taken */
    size_t aligns[] = {128, 256, 4096, 65536};
    for (size_t j = 0; j < sizeof aligns / sizeof *aligns; j++) {
        size_t u = 0;
        void *p = ca_bitset_alloc(b, 100, aligns[j], &u);
        cr_assert_not_null(p);
        cr_assert(ca_is_aligned((uintptr_t)p, aligns[j]), "%p not aligned to %zu", p, aligns[j]);
        cr_assert_eq(u, 128);
        cr_assert_null(ca_bitset_check(b));
    }
    /* Runs longer than a word with a large alignment. */
    void *big = ca_bitset_alloc(b, 64 * 200, 8192, NULL);
    cr_assert(big && ca_is_aligned((uintptr_t)big, 8192));
    cr_assert_eq(ca_bitset_usable_size(b, big), 64 * 200);
    ca_bitset_destroy(b);
}

static void full_then_free_one(size_t bs, size_t run)
{
    size_t region = 256 * 1024;
    ca_bitset *b = test_bitset_new(&src, region, bs);
    size_t n = region / (bs * run);
    void **ps = calloc(n, sizeof *ps);
    for (size_t i = 0; i < n; i++) {
        ps[i] = ca_bitset_alloc(b, bs * run, 16, NULL);
        cr_assert_not_null(ps[i], "bs %zu run %zu: alloc %zu failed", bs, run, i);
    }
    errno = 0;
    cr_assert_null(ca_bitset_alloc(b, 1, 16, NULL), "bs %zu: region is full", bs);
    cr_assert_eq(errno, ENOMEM);
    ca_stats st;
    uint64_t lfr = 99;
    ca_bitset_stats(b, &st);
    ca_stats_get_counter(&st, "largest_free_run", &lfr);
    cr_assert_eq(lfr, 0);
    size_t victim = n / 2 + 1;
    ca_bitset_free(b, ps[victim], bs * run);
    if (run > 1) {
        errno = 0;
        cr_assert_null(ca_bitset_alloc(b, bs * run + 1, 16, NULL), "one block more than the hole");
        cr_assert_eq(errno, ENOMEM);
    }
    void *again = ca_bitset_alloc(b, bs * run, 16, NULL);
    cr_assert_eq(again, ps[victim], "the freed run is found again");
    cr_assert_null(ca_bitset_check(b));
    free(ps);
    ca_bitset_destroy(b);
}

Test(basic, full_enomem_free_one_succeeds)
{
    size_t sizes[] = {16, 64, 512, 4096, 65536};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        full_then_free_one(sizes[i], 1);
        if (sizes[i] <= 4096)
            full_then_free_one(sizes[i], 4);
    }
}

Test(basic, grow_in_place_and_moving_keep_data)
{
    ca_bitset *b = test_bitset_new(&src, 1 << 20, 64);
    char *p = ca_bitset_alloc(b, 100, 16, NULL); /* blocks 0-1 */
    ca_test_fill(p, 100, 1);
    /* Grow in place: blocks 2..9 are free. */
    size_t u = 0;
    char *q = ca_bitset_resize(b, p, 100, 600, 16, 0, &u);
    cr_assert_eq(q, p, "grown in place");
    cr_assert_eq(u, 640);
    cr_assert(ca_test_verify(q, 100, 1));
    ca_test_fill(q, 600, 2);
    char *blocker = ca_bitset_alloc(b, 64, 16, NULL); /* block 10, right after */
    cr_assert_eq(idx(b, blocker), 10);
    /* In place impossible now: with the flag it fails and nothing changes. */
    errno = 0;
    cr_assert_null(ca_bitset_resize(b, q, 600, 700, 16, CA_RESIZE_IN_PLACE, NULL));
    cr_assert_eq(errno, ENOMEM);
    cr_assert(ca_test_verify(q, 600, 2));
    cr_assert_eq(ca_bitset_usable_size(b, q), 640);
    /* Without the flag it moves, data preserved, old run freed. */
    char *r = ca_bitset_resize(b, q, 600, 700, 16, 0, &u);
    cr_assert_not_null(r);
    cr_assert_neq(r, q);
    cr_assert_eq(u, 704);
    cr_assert(ca_test_verify(r, 600, 2));
    cr_assert_eq(ca_bitset_alloc(b, 640, 16, NULL), q, "the old run was freed");
    /* Shrink: always in place, tail freed. */
    char *s = ca_bitset_resize(b, r, 700, 65, 16, CA_RESIZE_IN_PLACE, &u);
    cr_assert_eq(s, r);
    cr_assert_eq(u, 128);
    cr_assert(ca_test_verify(s, 65, 2));
    cr_assert_eq(ca_bitset_usable_size(b, s), 128);
    ca_stats st;
    ca_bitset_stats(b, &st);
    uint64_t inplace = 0, moved = 0;
    ca_stats_get_counter(&st, "resize_in_place", &inplace);
    ca_stats_get_counter(&st, "resize_moved", &moved);
    cr_assert_eq(inplace, 2);
    cr_assert_eq(moved, 1);
    cr_assert_null(ca_bitset_check(b));
    ca_bitset_destroy(b);
}

/* A grow that cannot be served must leave the run allocated and intact. An
 * implementation that frees the old run before allocating the new one (the
 * seed's order) fails this test: after the failed grow its run is free, so
 * the next allocation lands on it, and the run's length is lost. */
Test(basic, failed_grow_keeps_original)
{
    ca_bitset *b = test_bitset_new(&src, 64 * 16, 64); /* 16 blocks */
    char *a = ca_bitset_alloc(b, 64 * 4, 16, NULL);   /* 0-3 */
    char *x = ca_bitset_alloc(b, 64 * 2, 16, NULL);   /* 4-5 */
    char *c = ca_bitset_alloc(b, 64 * 6, 16, NULL);   /* 6-11 */
    char *d = ca_bitset_alloc(b, 64 * 4, 16, NULL);   /* 12-15 */
    cr_assert(a && x && c && d);
    ca_bitset_free(b, a, 64 * 4);                      /* 0-3 free */
    ca_test_fill(c, 64 * 6, 7);
    /* Grow c from 6 to 9 blocks: no run of 9 exists, in place blocked by d.
     * Freeing first would make 0-3 + ... no 9-run either, but c's blocks
     * would then be free. */
    errno = 0;
    cr_assert_null(ca_bitset_resize(b, c, 64 * 6, 64 * 9, 16, 0, NULL));
    cr_assert_eq(errno, ENOMEM);
    cr_assert(ca_test_verify(c, 64 * 6, 7), "failed grow changed the data");
    cr_assert_eq(ca_bitset_usable_size(b, c), 64 * 6, "failed grow changed the run");
    cr_assert_null(ca_bitset_check(b));
    /* The only free space is 0-3: a 5-block request must fail, a 4-block
     * request must land at 0, never on c. */
    cr_assert_null(ca_bitset_alloc(b, 64 * 5, 16, NULL));
    char *e = ca_bitset_alloc(b, 64 * 4, 16, NULL);
    cr_assert_eq(e, a);
    ca_test_fill(e, 64 * 4, 9);
    cr_assert(ca_test_verify(c, 64 * 6, 7));
    /* Also through the impossible-size path and the in-place path. */
    cr_assert_null(ca_bitset_resize(b, c, 64 * 6, SIZE_MAX, 16, 0, NULL));
    cr_assert_null(ca_bitset_resize(b, c, 64 * 6, 64 * 7, 16, CA_RESIZE_IN_PLACE, NULL));
    cr_assert(ca_test_verify(c, 64 * 6, 7));
    cr_assert_eq(ca_bitset_usable_size(b, c), 64 * 6);
    cr_assert_null(ca_bitset_check(b));
    ca_bitset_destroy(b);
}

Test(basic, resize_null_and_alignment)
{
    ca_bitset *b = test_bitset_new(&src, 1 << 20, 64);
    errno = 0;
    cr_assert_null(ca_bitset_resize(b, NULL, 0, 100, 16, CA_RESIZE_IN_PLACE, NULL));
    cr_assert_eq(errno, ENOMEM);
    char *p = ca_bitset_resize(b, NULL, 0, 100, 16, 0, NULL);
    cr_assert_not_null(p);
    errno = 0;
    cr_assert_null(ca_bitset_resize(b, p, 100, 200, 7, 0, NULL));
    cr_assert_eq(errno, EINVAL);
    /* A larger alignment than the run has forces a move. */
    ca_test_fill(p, 100, 3);
    char *q = ca_bitset_resize(b, p, 100, 100, 4096 * 4, 0, NULL);
    cr_assert(q && ca_is_aligned((uintptr_t)q, 4096 * 4));
    cr_assert(ca_test_verify(q, 100, 3));
    ca_bitset_free(b, q, 100);
    cr_assert_null(ca_bitset_check(b));
    ca_bitset_destroy(b);
}

Test(basic, unsized_free_of_adjacent_runs)
{
    ca_bitset *b = test_bitset_new(&src, 1 << 20, 32);
    /* Runs of 1..70 blocks packed back to back: only the run-start map tells
     * where each ends. */
    void *p[71];
    for (size_t k = 1; k <= 70; k++) {
        p[k] = ca_bitset_alloc(b, k * 32, 16, NULL);
        cr_assert_eq(ca_bitset_usable_size(b, p[k]), k * 32);
    }
    for (size_t k = 1; k <= 70; k += 2)
        ca_bitset_free_unsized(b, p[k]);
    cr_assert_null(ca_bitset_check(b));
    for (size_t k = 2; k <= 70; k += 2)
        cr_assert_eq(ca_bitset_usable_size(b, p[k]), k * 32);
    for (size_t k = 1; k <= 70; k += 2)
        cr_assert_eq(ca_bitset_alloc(b, k * 32, 16, NULL), p[k], "run %zu refilled in place", k);
    for (size_t k = 70; k >= 1; k--)
        ca_bitset_free_unsized(b, p[k]);
    ca_stats st;
    ca_bitset_stats(b, &st);
    cr_assert_eq(st.bytes_in_use, 0);
    cr_assert_null(ca_bitset_check(b));
    ca_bitset_destroy(b);
}
