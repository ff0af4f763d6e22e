/* SPDX-License-Identifier: MIT */
/* Large-object tier: seeded random operations (alloc, free, resize, purge,
 * unmap, cache flush) with ca_binned_large_check() after every one, and the
 * contents of every live block verified. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "ca_test.h"
#include "large_internal.h"

#define SLOTS 48

typedef struct live {
    char *p;
    size_t size;
    uint64_t tag;
} live;

static void run(unsigned flags, uint64_t seed_mix)
{
    ca_binned_large_options o;
    memset(&o, 0, sizeof o);
    o.flags = flags;
    o.min_size = 16 << 10;
    o.max_size = 16 << 20;
    o.cache_bytes = 8 << 20;
    o.dirty_max = 32 << 20;
    o.dirty_decay_ms = 3600000;
    o.unmap_decay_ms = 3600000;
    ca_binned_large *l = NULL;
    cr_assert_eq(ca_binned_large_create(&l, &o), 0);
    live s[SLOTS];
    memset(s, 0, sizeof s);
    ca_rng r = {ca_test_seed() ^ seed_mix};
    unsigned ops = (unsigned)(4000 * ca_test_scale());
    for (unsigned op = 0; op < ops; op++) {
        unsigned i = (unsigned)ca_rng_below(&r, SLOTS);
        unsigned what = (unsigned)ca_rng_below(&r, 100);
        /* sizes: mostly small classes, some large, a few direct */
        uint64_t k = ca_rng_below(&r, 100);
        size_t size = k < 70 ? (size_t)ca_rng_below(&r, 300000) : k < 97 ? (size_t)ca_rng_below(&r, 8 << 20)
                                                                         : (size_t)(16 << 20) + ca_rng_below(&r, 8 << 20);
        size_t check = s[i].size < 256 ? s[i].size : 256;
        if (what < 45) {
            if (s[i].p) {
                cr_assert(ca_test_verify(s[i].p, check, s[i].tag), "seed %llu op %u: block corrupted",
                          (unsigned long long)ca_test_seed(), op);
                ca_binned_large_free(l, s[i].p);
            }
            size_t align = (size_t)1 << ca_rng_below(&r, 14);
            s[i].p = (char *)ca_binned_large_alloc(l, size, align, NULL);
            cr_assert_not_null(s[i].p);
            cr_assert(ca_is_aligned((uintptr_t)s[i].p, align));
            cr_assert_geq(ca_binned_large_usable_size(l, s[i].p), size);
            s[i].size = size;
            s[i].tag = op;
            ca_test_fill(s[i].p, size < 256 ? size : 256, op);
        } else if (what < 75) {
            if (s[i].p) {
                cr_assert(ca_test_verify(s[i].p, check, s[i].tag));
                ca_binned_large_free(l, s[i].p);
                s[i].p = NULL;
                s[i].size = 0;
            }
        } else if (what < 92) {
            if (s[i].p) {
                char *q = (char *)ca_binned_large_resize(l, s[i].p, size, 16, 0, NULL);
                cr_assert_not_null(q);
                size_t keep = size < check ? size : check;
                cr_assert(ca_test_verify(q, keep, s[i].tag), "seed %llu op %u: resize lost data",
                          (unsigned long long)ca_test_seed(), op);
                s[i].p = q;
                s[i].size = size;
                ca_test_fill(q, size < 256 ? size : 256, s[i].tag);
            }
        } else if (what < 95) {
            ca_binned_large_purge(l, 0);
        } else if (what < 97) {
            ca_binned_large_unmap_idle(l, 0);
        } else {
            ca_binned_large_flush_cache(l);
        }
        const char *m = ca_binned_large_check(l);
        cr_assert_null(m, "seed %llu op %u: %s", (unsigned long long)ca_test_seed(), op, m);
    }
    for (unsigned i = 0; i < SLOTS; i++)
        ca_binned_large_free(l, s[i].p);
    ca_binned_large_trim(l);
    cr_assert_null(ca_binned_large_check(l));
    ca_stats st;
    ca_binned_large_stats(l, &st);
    cr_assert_eq(st.bytes_in_use, 0);
    cr_assert_eq(st.allocs, st.frees);
    ca_binned_large_destroy(l);
}

Test(binned_large_invariants, random_ops) { run(0, 1); }
Test(binned_large_invariants, random_ops_no_cache) { run(CA_BINNED_LARGE_NO_CACHE, 2); }
Test(binned_large_invariants, random_ops_no_mremap) { run(CA_BINNED_LARGE_NO_MREMAP, 3); }
