/* SPDX-License-Identifier: MIT */
/* Seeded differential test through the binned allocator: >= 20,000
 * operations mixing small and large sizes (alloc, sized and unsized free,
 * resize) against a shadow model of every live block (size, alignment,
 * contents tag). Large blocks must come from the large-object tier, which
 * is checked with ca_binned_large_check() along the way. */
#include <criterion/criterion.h>
#include <ctxalloc/binned.h>
#include <stdint.h>
#include <string.h>

#include "ca_test.h"
#include "large_internal.h"

#define LIVE 256

typedef struct shadow {
    unsigned char *p;
    size_t size, align;
    uint64_t tag;
} shadow;

static size_t pick_size(ca_rng *r)
{
    uint64_t k = ca_rng_below(r, 100);
    if (k < 55)
        return (size_t)ca_rng_below(r, 1025);                    /* small */
    if (k < 75)
        return 1024 + (size_t)ca_rng_below(r, CA_BINNED_SMALL_MAX); /* medium, up to the threshold */
    if (k < 80) /* the threshold itself */
        return CA_BINNED_SMALL_MAX - 1 + (size_t)ca_rng_below(r, 3);
    if (k < 98)
        return CA_BINNED_SMALL_MAX + (size_t)ca_rng_below(r, 4 << 20); /* large */
    return (size_t)(8 << 20) + (size_t)ca_rng_below(r, 8 << 20);
}

/* Contents are checked on a prefix and a suffix (large blocks are long). */
static void mark(const shadow *s)
{
    size_t n = s->size < 512 ? s->size : 512;
    ca_test_fill(s->p, n, s->tag);
    if (s->size >= 768)
        ca_test_fill(s->p + s->size - 256, 256, s->tag ^ 0xabc);
}

static bool intact(const shadow *s, size_t upto)
{
    size_t size = upto < s->size ? upto : s->size;
    size_t n = size < 512 ? size : 512;
    if (!ca_test_verify(s->p, n, s->tag))
        return false;
    if (size == s->size && s->size >= 768 && !ca_test_verify(s->p + s->size - 256, 256, s->tag ^ 0xabc))
        return false;
    return true;
}

Test(binned_large_differential, mixed_small_and_large, .timeout = 280)
{
    ca_binned *b = NULL;
    cr_assert_eq(ca_binned_create(&b, NULL), 0);
    ca_allocator *a = ca_binned_allocator(b);
    shadow live[LIVE];
    memset(live, 0, sizeof live);
    ca_rng r = {ca_test_seed()};
    unsigned ops = (unsigned)(20000 * ca_test_scale());
    unsigned nlarge = 0, nresize = 0;
    ca_binned_large *tier = NULL;
    for (unsigned op = 0; op < ops; op++) {
        shadow *s = &live[ca_rng_below(&r, LIVE)];
        uint64_t what = ca_rng_below(&r, 100);
        if (!s->p || what < 40) {
            if (s->p) {
                cr_assert(intact(s, s->size), "seed %llu op %u: block %p (%zu B) corrupted",
                          (unsigned long long)ca_test_seed(), op, (void *)s->p, s->size);
                if (what & 1)
                    ca_free(a, s->p, s->size, s->align);
                else
                    ca_free_unsized(a, s->p);
            }
            s->size = pick_size(&r);
            s->align = ca_rng_below(&r, 8) == 0 ? (size_t)1 << ca_rng_below(&r, 13) : 16;
            s->p = (unsigned char *)ca_alloc(a, s->size, s->align);
            cr_assert_not_null(s->p, "seed %llu op %u: alloc %zu failed", (unsigned long long)ca_test_seed(), op,
                               s->size);
            cr_assert(ca_is_aligned((uintptr_t)s->p, s->align));
            cr_assert_geq(ca_usable_size(a, s->p), s->size);
            if (s->size > CA_BINNED_SMALL_MAX) {
                ca_binned_large *t = ca_binned_large_of(s->p);
                cr_assert_not_null(t, "size %zu not served by the large tier", s->size);
                cr_assert(tier == NULL || tier == t, "one tier per binned instance");
                tier = t;
                nlarge++;
            }
            s->tag = op;
            mark(s);
        } else if (what < 70) {
            cr_assert(intact(s, s->size));
            ca_free_unsized(a, s->p);
            s->p = NULL;
        } else {
            size_t nsize = pick_size(&r);
            unsigned char *q = (unsigned char *)ca_resize(a, s->p, s->size, nsize, s->align, 0);
            cr_assert_not_null(q, "seed %llu op %u: resize %zu -> %zu failed", (unsigned long long)ca_test_seed(), op,
                               s->size, nsize);
            shadow t = *s;
            t.p = q;
            cr_assert(intact(&t, nsize), "seed %llu op %u: resize %zu -> %zu lost data",
                      (unsigned long long)ca_test_seed(), op, s->size, nsize);
            s->p = q;
            s->size = nsize;
            s->tag = op;
            mark(s);
            nresize++;
        }
        if (op % 997 == 0) {
            const char *m = ca_binned_check(b);
            cr_assert_null(m, "binned: %s", m);
            if (tier) {
                m = ca_binned_large_check(tier);
                cr_assert_null(m, "large tier: %s", m);
            }
        }
    }
    cr_assert_gt(nlarge, ops / 20, "the mix reached the large tier %u times", nlarge);
    cr_assert_gt(nresize, ops / 10);
    for (unsigned i = 0; i < LIVE; i++)
        if (live[i].p) {
            cr_assert(intact(&live[i], live[i].size));
            ca_free_unsized(a, live[i].p);
        }
    cr_assert_null(ca_binned_check(b));
    if (tier) {
        cr_assert_null(ca_binned_large_check(tier));
        ca_stats st;
        ca_binned_large_stats(tier, &st);
        cr_assert_eq(st.allocs, st.frees, "every large block freed");
    }
    ca_binned_destroy(b);
}
