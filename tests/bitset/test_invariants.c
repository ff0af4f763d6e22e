/* SPDX-License-Identifier: MIT */
/*
 * libbitset's maps under every allocation pattern at word edges (runs
 * crossing 64-bit words and summary words), with ca_bitset_check after every
 * operation and the summary levels inspected through the private header.
 */
#include <criterion/criterion.h>

#include "bitset_internal.h"
#include "bitset_test.h"

static test_source src;

static void setup(void) { test_source_init(&src); }

TestSuite(invariants, .init = setup);

#define CHECK(b)                                                                                   \
    do {                                                                                           \
        const char *what_ = ca_bitset_check(b);                                                    \
        cr_assert_null(what_, "%s", what_);                                                        \
    } while (0)

static size_t idx(ca_bitset *b, const void *p)
{
    return (size_t)((const unsigned char *)p - b->region) >> b->shift;
}

static void *alloc_blocks(ca_bitset *b, size_t k)
{
    void *p = ca_bitset_alloc(b, k << b->shift, 16, NULL);
    CHECK(b);
    return p;
}

static void free_blocks(ca_bitset *b, void *p, size_t k)
{
    ca_bitset_free(b, p, k << b->shift);
    CHECK(b);
}

/* Region full except the hole [s, s+k). */
static void make_hole(ca_bitset *b, size_t s, size_t k)
{
    ca_bitset_reset(b);
    CHECK(b);
    if (s)
        cr_assert_eq(idx(b, alloc_blocks(b, s)), 0);
    void *hole = alloc_blocks(b, k);
    cr_assert_eq(idx(b, hole), s);
    if (s + k < b->nblocks)
        cr_assert_not_null(alloc_blocks(b, b->nblocks - s - k));
    free_blocks(b, hole, k);
    cr_assert_eq(ca_bitset__largest_free_run(b), k);
}

Test(invariants, levels_of_a_three_level_region)
{
    /* 64 * 64 * 3 blocks: 192 words, 3 summary words, 1 top word. */
    ca_bitset *b = test_bitset_new(&src, 64 * 64 * 3 * 16, 16);
    cr_assert_eq(b->nlevels, 3);
    cr_assert_eq(b->nwords[0], 192);
    cr_assert_eq(b->nwords[1], 3);
    cr_assert_eq(b->nwords[2], 1);
    cr_assert_eq(b->level[2][0], 7);
    CHECK(b);
    ca_bitset_destroy(b);

    /* Not a multiple of 64 blocks: the tail bits are never free. */
    b = test_bitset_new(&src, 100 * 16, 16);
    cr_assert_eq(b->nlevels, 2);
    cr_assert_eq(b->level[0][1], ((uint64_t)1 << 36) - 1);
    CHECK(b);
    void *all = alloc_blocks(b, 100);
    cr_assert_not_null(all);
    cr_assert_null(ca_bitset_alloc(b, 16, 16, NULL));
    cr_assert_eq(b->level[1][0], 0);
    free_blocks(b, all, 100);
    ca_bitset_destroy(b);

    /* One block: a single level. */
    b = test_bitset_new(&src, 4096, 4096);
    cr_assert_eq(b->nlevels, 1);
    void *one = alloc_blocks(b, 1);
    cr_assert_null(ca_bitset_alloc(b, 1, 16, NULL));
    free_blocks(b, one, 1);
    ca_bitset_destroy(b);
}

Test(invariants, runs_at_word_and_summary_edges)
{
    ca_bitset *b = test_bitset_new(&src, 64 * 64 * 3 * 16, 16);
    size_t n = b->nblocks;
    size_t edges[] = {0, 64, 128, 4096, 8192, 64 * 64 * 3};
    size_t ks[] = {1, 2, 3, 8, 63, 64, 65, 127, 128, 129, 200};
    for (size_t e = 0; e < sizeof edges / sizeof *edges; e++) {
        for (int d = -3; d <= 3; d++) {
            for (size_t j = 0; j < sizeof ks / sizeof *ks; j++) {
                size_t k = ks[j];
                if ((d < 0 && edges[e] < (size_t)-d))
                    continue;
                size_t s = edges[e] + (size_t)d;
                if (s + k > n) {
                    if (k > n)
                        continue;
                    s = n - k; /* the region's end is an edge too */
                }
                make_hole(b, s, k);
                if (k > 1) {
                    errno = 0;
                    cr_assert_null(ca_bitset_alloc(b, (k + 1) << b->shift, 16, NULL), "s %zu k %zu", s, k);
                    cr_assert_eq(errno, ENOMEM);
                    CHECK(b);
                }
                void *p = alloc_blocks(b, k);
                cr_assert_not_null(p, "hole at %zu of %zu blocks not found", s, k);
                cr_assert_eq(idx(b, p), s, "hole at %zu of %zu blocks: got %zu", s, k, idx(b, p));
                cr_assert_null(ca_bitset_alloc(b, 1, 16, NULL));
                cr_assert_eq(ca_bitset_usable_size(b, p), k << b->shift);
                /* Free in two halves through shrink, then unsized. */
                if (k > 1) {
                    cr_assert_eq(ca_bitset_resize(b, p, k << b->shift, (k / 2) << b->shift, 16, 0, NULL), p);
                    CHECK(b);
                    cr_assert_eq(ca_bitset_resize(b, p, (k / 2) << b->shift, k << b->shift, 16,
                                                  CA_RESIZE_IN_PLACE, NULL),
                                 p);
                    CHECK(b);
                }
                ca_bitset_free_unsized(b, p);
                CHECK(b);
                cr_assert_eq(ca_bitset__next_free(b, 0), s);
                cr_assert_eq(ca_bitset__next_free(b, s + k - 1), s + k - 1);
                cr_assert_eq(ca_bitset__next_free(b, s + k), CA_BITSET__NONE);
            }
        }
    }
    ca_bitset_destroy(b);
}

Test(invariants, small_hole_before_fitting_hole)
{
    /* Holes that are too small (or misaligned) before the one that fits,
     * on both sides of word and summary-word edges. */
    ca_bitset *b = test_bitset_new(&src, 64 * 64 * 3 * 16, 16);
    size_t n = b->nblocks;
    void *all = alloc_blocks(b, n);
    free_blocks(b, all, n);
    size_t ks[] = {2, 5, 64, 70, 130};
    for (size_t j = 0; j < sizeof ks / sizeof *ks; j++) {
        size_t k = ks[j];
        ca_bitset_reset(b);
        /* Single blocks everywhere, then holes of k-1 at 60, 4090 and of k at 8190. */
        void **ps = calloc(n, sizeof *ps);
        for (size_t i = 0; i < n; i++)
            ps[i] = ca_bitset_alloc(b, 1, 16, NULL);
        CHECK(b);
        size_t starts[] = {60, 4090, 8190};
        for (int h = 0; h < 3; h++) {
            size_t len = h < 2 ? k - 1 : k;
            for (size_t i = starts[h]; i < starts[h] + len; i++)
                ca_bitset_free(b, ps[i], 1);
            CHECK(b);
        }
        void *p = alloc_blocks(b, k);
        cr_assert_eq(idx(b, p), 8190, "k %zu: got %zu", k, idx(b, p));
        free_blocks(b, p, k);
        free(ps);
    }
    ca_bitset_destroy(b);
}

Test(invariants, aligned_runs_skip_misaligned_holes)
{
    ca_bitset *b = test_bitset_new(&src, 64 * 64 * 3 * 16, 16);
    size_t n = b->nblocks;
    void **ps = calloc(n, sizeof *ps);
    for (size_t i = 0; i < n; i++)
        ps[i] = ca_bitset_alloc(b, 1, 16, NULL);
    CHECK(b);
    /* Free stretches that never start on a multiple of 64 (1024 B) ... */
    for (size_t i = 1; i < 64; i++)
        ca_bitset_free(b, ps[i], 1);
    for (size_t i = 65; i < 128; i++)
        ca_bitset_free(b, ps[i], 1);
    for (size_t i = 8449; i < 8512; i++)
        ca_bitset_free(b, ps[i], 1);
    CHECK(b);
    cr_assert_null(ca_bitset_alloc(b, 16, 1024, NULL));
    /* ... then an aligned pair at 8256, an aligned run of 70 at 12160. */
    ca_bitset_free(b, ps[8256], 1);
    ca_bitset_free(b, ps[8257], 1);
    for (size_t i = 12160; i < 12230; i++)
        ca_bitset_free(b, ps[i], 1);
    CHECK(b);
    void *q = alloc_blocks(b, 2);
    cr_assert_eq(idx(b, q), 1, "unaligned requests take the first hole");
    free_blocks(b, q, 2);
    q = ca_bitset_alloc(b, 32, 1024, NULL);
    cr_assert_eq(idx(b, q), 8256);
    CHECK(b);
    /* 8449..8599 now holds 8576 (a multiple of 128) but not 70 blocks after it. */
    for (size_t i = 8512; i < 8600; i++)
        ca_bitset_free(b, ps[i], 1);
    void *r = ca_bitset_alloc(b, 70 * 16, 2048, NULL);
    cr_assert_eq(idx(b, r), 12160);
    CHECK(b);
    void *t = ca_bitset_alloc(b, 16, 1024, NULL);
    cr_assert_eq(idx(b, t), 8512);
    ca_bitset_free(b, t, 16);
    ca_bitset_free(b, r, 70 * 16);
    ca_bitset_free(b, q, 32);
    CHECK(b);
    free(ps);
    ca_bitset_destroy(b);
}

Test(invariants, check_detects_corruption)
{
    ca_bitset *b = test_bitset_new(&src, 64 * 64 * 2 * 16, 16);
    void *p = alloc_blocks(b, 70);
    const char *what = NULL;
    /* summary disagrees */
    b->level[1][0] ^= 1;
    what = ca_bitset_check(b);
    cr_assert_not_null(what);
    b->level[1][0] ^= 1;
    CHECK(b);
    /* start bit on a free block */
    ca_bitset__set_start(b, 100);
    cr_assert_not_null(ca_bitset_check(b));
    ca_bitset__clear_start(b, 100);
    /* allocated block after a free one without a start bit */
    ca_bitset__clear_start(b, 0);
    cr_assert_not_null(ca_bitset_check(b));
    ca_bitset__set_start(b, 0);
    /* tail bit free */
    b->level[0][b->nwords[0]] = 1;
    cr_assert_not_null(ca_bitset_check(b));
    b->level[0][b->nwords[0]] = 0;
    /* counter off */
    b->blocks_in_use++;
    cr_assert_not_null(ca_bitset_check(b));
    b->blocks_in_use--;
    free_blocks(b, p, 70);
    ca_bitset_destroy(b);
}
