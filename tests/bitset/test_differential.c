/* SPDX-License-Identifier: MIT */
/*
 * Seeded differential test: libbitset against a shadow bitmap (one byte per
 * block, a plain linear first-fit search). First fit by address is
 * deterministic, so the shadow predicts the exact block of every allocation,
 * every in-place or moved resize and every failure. ca_bitset_check runs
 * after every operation. Four block sizes, >= 20,000 operations each
 * (times CA_TEST_SCALE); CA_TEST_SEED changes the sequence.
 */
#include <criterion/criterion.h>

#include "bitset_internal.h"
#include "bitset_test.h"
#include "ca_test.h"

#define NBLOCKS (64 * 64 + 77) /* three levels, a partial last word */
#define MAXLIVE 4096

typedef struct shadow {
    unsigned char used[NBLOCKS];
    unsigned char start[NBLOCKS];
    size_t nblocks, off_base; /* off_base: region address / block size, for alignment */
} shadow;

typedef struct live {
    unsigned char *p;
    size_t size, align, k;
    uint64_t tag;
} live;

static size_t sh_find(const shadow *s, size_t k, size_t step)
{
    for (size_t i = 0; i + k <= s->nblocks; i++) {
        if ((s->off_base + i) % step)
            continue;
        size_t j = 0;
        while (j < k && !s->used[i + j])
            j++;
        if (j == k)
            return i;
    }
    return SIZE_MAX;
}

static void sh_mark(shadow *s, size_t i, size_t k, int used)
{
    for (size_t j = 0; j < k; j++)
        s->used[i + j] = (unsigned char)used;
}

static size_t sh_largest(const shadow *s)
{
    size_t best = 0, cur = 0;
    for (size_t i = 0; i < s->nblocks; i++) {
        cur = s->used[i] ? 0 : cur + 1;
        if (cur > best)
            best = cur;
    }
    return best;
}

static size_t blocks(size_t size, size_t bs) { return size ? (size + bs - 1) / bs : 1; }

static size_t step_for(size_t align, size_t bs) { return align <= bs ? 1 : align / bs; }

static void stamp(live *l)
{
    ca_test_fill(l->p, l->size < 64 ? l->size : 64, l->tag);
}

static void verify(const live *l, size_t n)
{
    size_t m = n < l->size ? n : l->size;
    cr_assert(ca_test_verify(l->p, m < 64 ? m : 64, l->tag), "data of tag %llu lost", (unsigned long long)l->tag);
}

#define CHECK(b)                                                                                   \
    do {                                                                                           \
        const char *what_ = ca_bitset_check(b);                                                    \
        cr_assert_null(what_, "op %lu: %s", op, what_);                                            \
    } while (0)

static void run(size_t bs, uint64_t seed, unsigned long nops)
{
    test_source src;
    test_source_init(&src);
    ca_bitset *b = test_bitset_new(&src, (size_t)NBLOCKS * bs, bs);
    cr_assert_not_null(b);
    static shadow s;
    memset(&s, 0, sizeof s);
    s.nblocks = NBLOCKS;
    s.off_base = (uintptr_t)b->region / bs;
    static live lv[MAXLIVE];
    size_t nlive = 0;
    ca_rng r = {seed};
    uint64_t tag = 1;
    size_t aligns[] = {1, 16, bs, bs * 2, bs * 4, bs * 64, bs * 128};

    for (unsigned long op = 0; op < nops; op++) {
        unsigned what = (unsigned)ca_rng_below(&r, 100);
        if (what < 2 && op % 1000 == 999) { /* reset, rarely */
            ca_bitset_reset(b);
            memset(s.used, 0, sizeof s.used);
            memset(s.start, 0, sizeof s.start);
            nlive = 0;
        } else if (what < 48 || nlive == 0) { /* alloc */
            if (nlive == MAXLIVE)
                continue;
            size_t size;
            unsigned sz = (unsigned)ca_rng_below(&r, 100);
            if (sz < 5)
                size = 0;
            else if (sz < 70)
                size = 1 + ca_rng_below(&r, bs * 4);
            else if (sz < 95)
                size = 1 + ca_rng_below(&r, bs * 70);
            else
                size = 1 + ca_rng_below(&r, bs * 300);
            size_t align = aligns[ca_rng_below(&r, sizeof aligns / sizeof *aligns)];
            size_t k = blocks(size, bs);
            size_t want = sh_find(&s, k, step_for(align, bs));
            size_t u = 0;
            errno = 0;
            unsigned char *p = ca_bitset_alloc(b, size, align, &u);
            if (want == SIZE_MAX) {
                cr_assert_null(p, "op %lu: alloc %zu/%zu should fail", op, size, align);
                cr_assert_eq(errno, ENOMEM);
            } else {
                cr_assert_not_null(p, "op %lu: alloc %zu/%zu failed, shadow has %zu", op, size, align, want);
                size_t got = (size_t)(p - b->region) / bs;
                cr_assert_eq(got, want, "op %lu: alloc %zu/%zu at %zu, shadow %zu", op, size, align, got, want);
                cr_assert_eq(u, k * bs);
                sh_mark(&s, want, k, 1);
                s.start[want] = 1;
                live *l = &lv[nlive++];
                *l = (live){p, size, align, k, tag++};
                stamp(l);
            }
        } else if (what < 70) { /* free: sized or unsized */
            size_t j = ca_rng_below(&r, nlive);
            live *l = &lv[j];
            verify(l, l->size);
            size_t i = (size_t)(l->p - b->region) / bs;
            cr_assert_eq(ca_bitset_usable_size(b, l->p), l->k * bs, "op %lu", op);
            if (what & 1)
                ca_bitset_free(b, l->p, l->size);
            else
                ca_bitset_free_unsized(b, l->p);
            sh_mark(&s, i, l->k, 0);
            s.start[i] = 0;
            lv[j] = lv[--nlive];
        } else if (what < 98) { /* resize */
            size_t j = ca_rng_below(&r, nlive);
            live *l = &lv[j];
            size_t i = (size_t)(l->p - b->region) / bs;
            size_t ns = ca_rng_below(&r, 3) == 0 ? ca_rng_below(&r, l->size + 1)
                                                  : l->size + 1 + ca_rng_below(&r, bs * 8);
            unsigned flags = ca_rng_below(&r, 4) == 0 ? CA_RESIZE_IN_PLACE : 0;
            size_t nk = blocks(ns, bs);
            /* Shadow prediction. */
            size_t want;
            bool moved = false;
            if (nk <= l->k) {
                want = i;
            } else {
                bool room = i + nk <= s.nblocks;
                for (size_t x = i + l->k; room && x < i + nk; x++)
                    room = !s.used[x];
                if (room)
                    want = i;
                else if (flags)
                    want = SIZE_MAX;
                else {
                    want = sh_find(&s, nk, step_for(l->align, bs));
                    moved = true;
                }
            }
            errno = 0;
            unsigned char *q = ca_bitset_resize(b, l->p, l->size, ns, l->align, flags, NULL);
            if (want == SIZE_MAX) {
                cr_assert_null(q, "op %lu: resize %zu->%zu should fail", op, l->size, ns);
                cr_assert_eq(errno, ENOMEM);
                verify(l, l->size);
                cr_assert_eq(ca_bitset_usable_size(b, l->p), l->k * bs, "failed resize changed the run");
            } else {
                cr_assert_not_null(q, "op %lu: resize %zu->%zu failed, shadow %zu", op, l->size, ns, want);
                size_t got = (size_t)(q - b->region) / bs;
                cr_assert_eq(got, want, "op %lu: resize to %zu, shadow %zu (moved %d)", op, got, want, moved);
                sh_mark(&s, i, l->k, 0);
                s.start[i] = 0;
                sh_mark(&s, want, nk, 1);
                s.start[want] = 1;
                live nl = *l;
                nl.p = q;
                verify(&nl, ns);
                nl.size = ns;
                nl.k = nk;
                nl.tag = tag++;
                *l = nl;
                stamp(l);
            }
        } else { /* stats against the shadow */
            ca_stats st;
            ca_bitset_stats(b, &st);
            size_t used = 0;
            for (size_t x = 0; x < s.nblocks; x++)
                used += s.used[x];
            uint64_t v = 0;
            ca_stats_get_counter(&st, "blocks_in_use", &v);
            cr_assert_eq(v, used);
            ca_stats_get_counter(&st, "largest_free_run", &v);
            cr_assert_eq(v, sh_largest(&s), "op %lu", op);
            cr_assert_eq(st.bytes_in_use, used * bs);
        }
        CHECK(b);
        for (size_t x = 0; x < s.nblocks && op % 64 == 0; x++) {
            cr_assert_eq(ca_bitset__is_free(b, x), !s.used[x], "op %lu: block %zu", op, x);
            cr_assert_eq(ca_bitset__is_start(b, x), s.start[x], "op %lu: start %zu", op, x);
        }
    }
    for (size_t j = 0; j < nlive; j++)
        ca_bitset_free_unsized(b, lv[j].p);
    ca_stats st;
    ca_bitset_stats(b, &st);
    cr_assert_eq(st.bytes_in_use, 0);
    ca_bitset_destroy(b);
    cr_assert_eq(src.live, 0);
}

static unsigned long nops(void) { return 20000ul * ca_test_scale(); }

Test(differential, block_16) { run(16, ca_test_seed(), nops()); }
Test(differential, block_64) { run(64, ca_test_seed() + 1, nops()); }
Test(differential, block_512) { run(512, ca_test_seed() + 2, nops()); }
Test(differential, block_4096) { run(4096, ca_test_seed() + 3, nops()); }
