/* SPDX-License-Identifier: MIT */
/* libbinned seeded differential test against a shadow model: every live
 * block's contents and size are tracked; allocations, frees and reallocs of
 * all classes and of the large tier in a random order (CA_TEST_SEED,
 * CA_TEST_SCALE), with checks along the way. */
#include <criterion/criterion.h>

#include "binned_internal.h"
#include "ca_test.h"

typedef struct shadow {
    unsigned char *p;
    size_t size, align;
    uint64_t tag;
} shadow;

static size_t pick_size(ca_rng *r)
{
    unsigned k = (unsigned)ca_rng_below(r, 100);
    if (k < 60)
        return (size_t)ca_rng_below(r, 257);
    if (k < 85)
        return (size_t)ca_rng_below(r, 4097);
    if (k < 97)
        return (size_t)ca_rng_below(r, CA_BINNED_SMALL_MAX + 1);
    return CA_BINNED_SMALL_MAX + (size_t)ca_rng_below(r, (size_t)3 << 20);
}

static void run(ca_binned *b, uint64_t seed, int ops)
{
    enum { N = 2048 };
    static shadow s[N];
    memset(s, 0, sizeof s);
    ca_rng r = {seed};
    uint64_t tag = 1;
    ca_allocator *a = ca_binned_allocator(b);
    for (int op = 0; op < ops; op++) {
        unsigned k = (unsigned)ca_rng_below(&r, N);
        shadow *e = &s[k];
        unsigned what = (unsigned)ca_rng_below(&r, 10);
        if (!e->p) {
            e->size = pick_size(&r);
            e->align = what < 8 ? 16 : (size_t)1 << ca_rng_below(&r, 13);
            size_t usable = 0;
            e->p = ca_alloc_usable(a, e->size, e->align, &usable);
            cr_assert_not_null(e->p, "seed %llu op %d: alloc %zu/%zu", (unsigned long long)seed, op, e->size,
                               e->align);
            cr_assert_geq(usable, e->size);
            cr_assert_eq(ca_usable_size(a, e->p), usable);
            cr_assert(ca_is_aligned((uintptr_t)e->p, e->align));
            e->tag = tag++;
            ca_test_fill(e->p, e->size, e->tag);
        } else if (what < 7) {
            cr_assert(ca_test_verify(e->p, e->size, e->tag), "seed %llu op %d: block corrupted",
                      (unsigned long long)seed, op);
            ca_free(a, e->p, e->size, e->align);
            e->p = NULL;
        } else {
            size_t ns = pick_size(&r);
            unsigned char *q = ca_resize(a, e->p, e->size, ns, e->align, what == 9 ? CA_RESIZE_IN_PLACE : 0);
            size_t keep = ns < e->size ? ns : e->size;
            if (!q) {
                cr_assert_eq(what, 9, "seed %llu op %d: resize failed", (unsigned long long)seed, op);
                cr_assert(ca_test_verify(e->p, e->size, e->tag));
                continue;
            }
            if (what == 9)
                cr_assert_eq(q, e->p);
            cr_assert(ca_test_verify(q, keep, e->tag), "seed %llu op %d: resize lost data", (unsigned long long)seed,
                      op);
            e->p = q;
            e->size = ns;
            ca_test_fill(q, ns, e->tag);
        }
        if (op % 2000 == 1999) {
            const char *err = ca_binned_check(b);
            cr_assert_null(err, "seed %llu op %d: %s", (unsigned long long)seed, op, err);
        }
        if (op % 7001 == 7000)
            ca_binned_trim(b);
    }
    for (unsigned k = 0; k < N; k++)
        if (s[k].p) {
            cr_assert(ca_test_verify(s[k].p, s[k].size, s[k].tag));
            ca_free(a, s[k].p, s[k].size, s[k].align);
        }
    ca_binned_trim(b);
    cr_assert_null(ca_binned_check(b));
}

Test(binned_stress, differential_created)
{
    ca_binned_options o;
    ca_binned_options_init(&o);
    o.class_range_log2 = 28;
    o.decay_ms = 1;
    o.empty_keep = CA_BINNED_EMPTY_KEEP_NONE;
    ca_binned *b = NULL;
    cr_assert_eq(ca_binned_create(&b, &o), 0);
    run(b, ca_test_seed(), 40000 * (int)ca_test_scale());
    ca_stats st;
    ca_binned_stats(b, &st);
    cr_assert_eq(st.bytes_in_use, 0);
    cr_assert_eq(st.allocs, st.frees);
    ca_binned_destroy(b);
}

Test(binned_stress, differential_default)
{
    run(ca_binned_default(), ca_test_seed() + 1, 25000 * (int)ca_test_scale());
}

Test(binned_stress, differential_no_tcache)
{
    ca_binned_options o;
    ca_binned_options_init(&o);
    o.class_range_log2 = 28;
    o.flags = CA_BINNED_NO_TCACHE;
    ca_binned *b = NULL;
    cr_assert_eq(ca_binned_create(&b, &o), 0);
    run(b, ca_test_seed() + 2, 20000 * (int)ca_test_scale());
    ca_binned_destroy(b);
}
