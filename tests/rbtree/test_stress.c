/* SPDX-License-Identifier: MIT */
/*
 * Seeded stress (CA_TEST_SEED, CA_TEST_SCALE):
 *   - a differential test against a shadow model: the model knows every live
 *     block and its contents, predicts from the free blocks (read through the
 *     private header) which block best fit must return, whether a resize
 *     stays in place, how many free blocks remain after a free (merges), and
 *     that in-use + free + region overhead == reserved;
 *   - fragmentation after a random workload, reported and bounded.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>

#include "ca_test.h"
#include "rbtree_test.h"
#include "rbtree_internal.h"

#define FRAG_WASTE_BOUND 0.35 /* measured 0.15-0.29 over seeds 1..20 */
#define FRAG_PEAK_BOUND 1.25 /* measured 1.10-1.16 */
#define FRAG_METRIC_BOUND 0.95 /* measured 0.70-0.89; region-bounded, see README */

typedef struct live {
    char *p;
    size_t size;
    uint64_t tag;
} live;

static void fill(const live *l)
{
    if (l->size <= 2048) {
        ca_test_fill(l->p, l->size, l->tag);
    } else {
        ca_test_fill(l->p, 1024, l->tag);
        ca_test_fill(l->p + l->size - 1024, 1024, l->tag + 1);
    }
}

static bool verify(const live *l)
{
    if (l->size <= 2048)
        return ca_test_verify(l->p, l->size, l->tag);
    return ca_test_verify(l->p, 1024, l->tag) && ca_test_verify(l->p + l->size - 1024, 1024, l->tag + 1);
}

/* The model's best fit: smallest free block >= need, lowest address
 * (the caller then expects its tail when it is split). */
static void *model_best(const ca_rbtree *r, size_t need)
{
    void *best = NULL;
    size_t bs = SIZE_MAX;
    for (unsigned c = 0; c < CA_RBTREE_NCLASSES; c++)
        for (rbt_node *n = ca_rbtree__tree_first(r->roots[c]); n; n = ca_rbtree__tree_next(n)) {
            size_t s = rbt_node_size(n);
            void *b = rbt_block_of(n);
            if (s >= need && (s < bs || (s == bs && (uintptr_t)b < (uintptr_t)best))) {
                best = b;
                bs = s;
            }
        }
    return best;
}

static size_t block_need(size_t size)
{
    size_t t = ca_align_up(size + RBT_HDR, 16);
    return t < RBT_MIN_BLOCK ? RBT_MIN_BLOCK : t;
}

static int cmp_live(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)((const live *)a)->p, y = (uintptr_t)((const live *)b)->p;
    return x < y ? -1 : x > y;
}

Test(rbtree_stress, differential_vs_shadow_model)
{
    rbt_test_source src;
    rbt_test_source_init(&src);
    ca_rbtree_options o;
    ca_rbtree_options_init(&o);
    o.source = &src.base;
    o.region_size = 128 * 1024;
    ca_rbtree r;
    cr_assert_eq(ca_rbtree_init(&r, &o), 0);

    enum { N = 512 };
    live *L = calloc(N, sizeof *L), *sorted = calloc(N, sizeof *L);
    uint64_t seed = ca_test_seed();
    ca_rng rng = {seed};
    uint64_t ops = 30000 * ca_test_scale(), predicted_fits = 0, in_place = 0, moved = 0;
    uint64_t model_in_use = 0;
    for (uint64_t op = 0; op < ops; op++) {
        size_t i = ca_rng_below(&rng, N);
        size_t s = ca_rng_below(&rng, 8) == 0 ? ca_rng_below(&rng, 200000) : 1 + ca_rng_below(&rng, 1500);
        unsigned kind = (unsigned)ca_rng_below(&rng, 3);
        if (!L[i].p) {
            size_t need = block_need(s);
            void *expect = model_best(&r, need);
            if (expect && rbt_size(expect) - need >= RBT_MIN_BLOCK)
                expect = (char *)expect + (rbt_size(expect) - need); /* split: the tail is used */
            uint64_t before_regions = r.regions_obtained;
            size_t u;
            L[i].p = ca_rbtree_alloc(&r, s, 16, &u);
            cr_assert_not_null(L[i].p);
            if (expect) {
                cr_assert_eq(L[i].p, (char *)expect + RBT_HDR, "op %llu: not the best fit (seed %llu): got %p, want %p (size %zu)",
                             (unsigned long long)op, (unsigned long long)seed, (void *)L[i].p,
                             (void *)((char *)expect + RBT_HDR), s);
                predicted_fits++;
            } else {
                cr_assert_eq(r.regions_obtained, before_regions + 1, "op %llu: no fit, so a new region",
                             (unsigned long long)op);
            }
            cr_assert(u >= s && u + RBT_HDR - need < RBT_MIN_BLOCK, "op %llu: size %zu usable %zu", (unsigned long long)op, s, u);
            L[i].size = s;
            L[i].tag = op;
            model_in_use += u;
            fill(&L[i]);
        } else if (kind == 0) {
            /* resize: the model predicts in place or move */
            char *b = L[i].p - RBT_HDR;
            size_t cur = rbt_size(b), need = block_need(s);
            char *next = b + cur;
            size_t avail = cur + (rbt_is_free(next) ? rbt_size(next) : 0);
            bool fits = need <= avail;
            unsigned fl = ca_rng_below(&rng, 2) ? CA_RESIZE_IN_PLACE : 0;
            size_t u;
            char *q = ca_rbtree_resize(&r, L[i].p, L[i].size, s, 16, fl, &u);
            live nl = L[i];
            nl.size = s < L[i].size ? s : L[i].size;
            (void)nl.p;
            if (fits) {
                cr_assert_eq(q, L[i].p, "op %llu: resize should stay in place", (unsigned long long)op);
                in_place++;
            } else if (fl) {
                cr_assert_null(q, "op %llu: in-place resize cannot succeed", (unsigned long long)op);
                cr_assert(verify(&L[i]), "op %llu: failed resize damaged the block", (unsigned long long)op);
                goto checks;
            } else {
                cr_assert_not_null(q);
                cr_assert_neq(q, L[i].p);
                moved++;
            }
            {
                size_t k = nl.size < 1024 ? nl.size : 1024;
                cr_assert(ca_test_verify(q, k, L[i].tag), "op %llu: resize lost data", (unsigned long long)op);
            }
            model_in_use -= cur - RBT_HDR;
            model_in_use += u;
            L[i].p = q;
            L[i].size = s;
            L[i].tag = op;
            fill(&L[i]);
        } else {
            cr_assert(verify(&L[i]), "op %llu: block %zu corrupted (seed %llu)", (unsigned long long)op, i,
                      (unsigned long long)seed);
            char *b = L[i].p - RBT_HDR;
            size_t merges = rbt_is_free(b + rbt_size(b)) + ((*rbt_word(b) & RBT_PREV_FREE) != 0);
            uint64_t fb = r.free_blocks, regions = r.nregions;
            model_in_use -= rbt_size(b) - RBT_HDR;
            if (kind == 1)
                ca_rbtree_free(&r, L[i].p, L[i].size, 16);
            else
                ca_rbtree_free_unsized(&r, L[i].p);
            if (r.nregions == regions)
                cr_assert_eq(r.free_blocks, fb + 1 - merges, "op %llu: merge count", (unsigned long long)op);
            L[i].p = NULL;
        }
    checks:
        cr_assert_eq(r.in_use, model_in_use, "op %llu: bytes in use", (unsigned long long)op);
        cr_assert_eq(r.in_use + r.free_bytes + (r.allocs - r.frees) * RBT_HDR +
                         r.nregions * RBT_REGION_OVERHEAD,
                     r.reserved, "op %llu: in use + free + overhead != reserved", (unsigned long long)op);
        if (op % 997 == 0) {
            const char *what = ca_rbtree_check(&r);
            cr_assert_null(what, "op %llu: %s", (unsigned long long)op, what);
            size_t n = 0;
            for (size_t k = 0; k < N; k++)
                if (L[k].p)
                    sorted[n++] = L[k];
            qsort(sorted, n, sizeof *sorted, cmp_live);
            for (size_t k = 1; k < n; k++)
                cr_assert(sorted[k - 1].p + sorted[k - 1].size <= sorted[k].p, "op %llu: live blocks overlap",
                          (unsigned long long)op);
        }
    }
    printf("rbtree differential: %llu ops, %llu best-fit predictions matched, %llu in-place resizes, %llu moves\n",
           (unsigned long long)ops, (unsigned long long)predicted_fits, (unsigned long long)in_place,
           (unsigned long long)moved);
    for (size_t i = 0; i < N; i++)
        if (L[i].p) {
            cr_assert(verify(&L[i]));
            ca_rbtree_free_unsized(&r, L[i].p);
        }
    cr_assert_null(ca_rbtree_check(&r));
    cr_assert_eq(r.in_use, 0);
    cr_assert_eq(src.live, 1, "one empty region kept");
    cr_assert_eq(r.free_blocks, 1, "everything merged back into one block");
    ca_rbtree_destroy(&r);
    cr_assert_eq(src.live, 0);
    free(L);
    free(sorted);
}

/* Log-uniform size in [16, max]. */
static size_t random_size(ca_rng *rng, unsigned max_log2)
{
    unsigned e = 4 + (unsigned)ca_rng_below(rng, max_log2 - 3);
    size_t lo = (size_t)1 << e;
    return lo + ca_rng_below(rng, lo);
}

/*
 * Fragmentation after a random workload: a working set of 2,000 blocks of
 * 16 B..32 KiB (log-uniform), 200,000 random replacements, 1 MiB regions.
 * Reported: the stats' fragmentation (1 - largest free / total free), the
 * holes (free bytes outside each region's largest block ... approximated by
 * free bytes minus the largest one) relative to bytes in use, and peak
 * reserved / peak in use. The bounds (see README "Fragmentation") are the
 * measured values over seeds 1..20 with a margin.
 */
Test(rbtree_stress, fragmentation_bounded)
{
    rbt_test_source src;
    rbt_test_source_init(&src);
    ca_rbtree_options o;
    ca_rbtree_options_init(&o);
    o.source = &src.base;
    ca_rbtree r;
    cr_assert_eq(ca_rbtree_init(&r, &o), 0);
    enum { N = 2000 };
    void **p = calloc(N, sizeof *p);
    ca_rng rng = {ca_test_seed()};
    for (size_t i = 0; i < N; i++)
        p[i] = ca_rbtree_alloc(&r, random_size(&rng, 15), 16, NULL);
    uint64_t ops = 200000 * ca_test_scale();
    for (uint64_t op = 0; op < ops; op++) {
        size_t i = ca_rng_below(&rng, N);
        ca_rbtree_free_unsized(&r, p[i]);
        p[i] = ca_rbtree_alloc(&r, random_size(&rng, 15), 16, NULL);
        cr_assert_not_null(p[i]);
    }
    cr_assert_null(ca_rbtree_check(&r));
    ca_stats st;
    ca_rbtree_stats(&r, &st);
    uint64_t frag_ppm = 0, free_bytes = 0, largest = 0, peak_reserved = 0, free_blocks = 0;
    ca_stats_get_counter(&st, "fragmentation_ppm", &frag_ppm);
    ca_stats_get_counter(&st, "free_bytes", &free_bytes);
    ca_stats_get_counter(&st, "free_blocks", &free_blocks);
    ca_stats_get_counter(&st, "largest_free", &largest);
    ca_stats_get_counter(&st, "peak_reserved", &peak_reserved);
    double frag = (double)frag_ppm / 1e6;
    double waste = (double)(st.bytes_reserved - st.bytes_in_use) / (double)st.bytes_reserved;
    double peak_ratio = (double)peak_reserved / (double)st.peak_in_use;
    printf("rbtree fragmentation: seed %llu: fragmentation %.3f (%llu free blocks, %llu free bytes, largest %llu), "
           "free share of reserved %.3f, peak reserved / peak in use %.3f\n",
           (unsigned long long)ca_test_seed(), frag, (unsigned long long)free_blocks,
           (unsigned long long)free_bytes, (unsigned long long)largest, waste, peak_ratio);
    cr_assert_leq(waste, FRAG_WASTE_BOUND, "free share of reserved %.3f above the bound", waste);
    cr_assert_leq(peak_ratio, FRAG_PEAK_BOUND, "peak reserved / peak in use %.3f above the bound", peak_ratio);
    cr_assert_leq(frag, FRAG_METRIC_BOUND, "fragmentation %.3f above the bound", frag);
    /* Coalescing undoes it all: freeing everything leaves one block per region
     * and, with the hysteresis, one region. */
    for (size_t i = 0; i < N; i++)
        ca_rbtree_free_unsized(&r, p[i]);
    ca_rbtree_stats(&r, &st);
    ca_stats_get_counter(&st, "fragmentation_ppm", &frag_ppm);
    cr_assert_eq(frag_ppm, 0);
    cr_assert_eq(src.live, 1);
    ca_rbtree_destroy(&r);
    free(p);
}
