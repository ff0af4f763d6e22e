/* SPDX-License-Identifier: MIT */
/*
 * Stress with a fixed seed (CA_TEST_SEED, length x CA_TEST_SCALE): random
 * runs, frees and resizes over a larger region with every byte of every live
 * run filled and verified (overlap shows as corrupted data), through the
 * ca_allocator view and through the locked adaptor.
 */
#include <criterion/criterion.h>

#include "bitset_internal.h"
#include "bitset_test.h"
#include "ca_test.h"

#define MAXLIVE 2000

typedef struct live {
    unsigned char *p;
    size_t size;
    size_t align;
    uint64_t tag;
} live;

static void stress(ca_allocator *a, ca_bitset *b, uint64_t seed, unsigned long nops)
{
    static live lv[MAXLIVE];
    size_t nlive = 0;
    ca_rng r = {seed};
    uint64_t tag = 1;
    size_t bs = ca_bitset_block_size(b);
    for (unsigned long op = 0; op < nops; op++) {
        unsigned what = (unsigned)ca_rng_below(&r, 10);
        if ((what < 5 || nlive == 0) && nlive < MAXLIVE) {
            size_t size = ca_rng_below(&r, 8) == 0 ? ca_rng_below(&r, bs * 100) : ca_rng_below(&r, bs * 3);
            size_t align = (size_t)1 << ca_rng_below(&r, 14);
            unsigned char *p = ca_alloc(a, size, align);
            if (!p) {
                cr_assert_eq(errno, ENOMEM);
                continue;
            }
            cr_assert(ca_is_aligned((uintptr_t)p, align));
            lv[nlive] = (live){p, size, align, tag++};
            ca_test_fill(p, size, lv[nlive].tag);
            nlive++;
        } else if (what < 8) {
            size_t j = ca_rng_below(&r, nlive);
            cr_assert(ca_test_verify(lv[j].p, lv[j].size, lv[j].tag), "seed %llu op %lu: corrupted",
                      (unsigned long long)seed, op);
            if (what == 5)
                ca_free_unsized(a, lv[j].p);
            else
                ca_free(a, lv[j].p, lv[j].size, lv[j].align);
            lv[j] = lv[--nlive];
        } else {
            size_t j = ca_rng_below(&r, nlive);
            size_t ns = ca_rng_below(&r, 2) ? lv[j].size / 2 : lv[j].size * 2 + ca_rng_below(&r, bs * 4);
            unsigned char *q = ca_resize(a, lv[j].p, lv[j].size, ns, lv[j].align, what == 9 ? CA_RESIZE_IN_PLACE : 0);
            if (!q) {
                cr_assert_eq(errno, ENOMEM);
                cr_assert(ca_test_verify(lv[j].p, lv[j].size, lv[j].tag), "failed resize lost data");
                continue;
            }
            size_t keep = ns < lv[j].size ? ns : lv[j].size;
            cr_assert(ca_test_verify(q, keep, lv[j].tag), "resize lost data");
            lv[j].p = q;
            lv[j].size = ns;
            lv[j].tag = tag++;
            ca_test_fill(q, ns, lv[j].tag);
        }
        if (op % 256 == 0)
            cr_assert_null(ca_bitset_check(b));
    }
    for (size_t j = 0; j < nlive; j++) {
        cr_assert(ca_test_verify(lv[j].p, lv[j].size, lv[j].tag));
        ca_free(a, lv[j].p, lv[j].size, lv[j].align);
    }
    cr_assert_null(ca_bitset_check(b));
    cr_assert_eq(b->blocks_in_use, 0);
}

Test(stress, direct)
{
    test_source src;
    test_source_init(&src);
    size_t bss[] = {16, 256, 4096};
    for (size_t i = 0; i < 3; i++) {
        ca_bitset *b = test_bitset_new(&src, (size_t)8 << 20, bss[i]);
        stress(ca_bitset_allocator(b), b, ca_test_seed() + i, 30000ul * ca_test_scale());
        ca_bitset_destroy(b);
    }
    cr_assert_eq(src.live, 0);
}

Test(stress, locked)
{
    test_source src;
    test_source_init(&src);
    ca_bitset *b = test_bitset_new(&src, (size_t)4 << 20, 64);
    ca_locked_allocator l;
    ca_locked_init(&l, ca_bitset_allocator(b), CA_LOCK_SPIN);
    stress(&l.base, b, ca_test_seed() + 10, 20000ul * ca_test_scale());
    ca_locked_destroy(&l);
    ca_bitset_destroy(b);
}
