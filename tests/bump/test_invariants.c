/* SPDX-License-Identifier: MIT */
/*
 * Random operations on every bump flavour with the invariant walk
 * (ca_bump_check, which reads the private records) after each one, and
 * direct checks of the private structure: records inside the bump, the
 * mark list ordered, byte accounting equal to the chunks.
 */
#include <criterion/criterion.h>

#include "bump_internal.h"
#include "bump_test.h"
#include "ca_test.h"

static int dtor_count;
static void count_dtor(void *obj, void *arg) { dtor_count++; }

static void random_ops(ca_bump *b, uint64_t seed, int nops, bool fixed)
{
    ca_rng r = {seed};
    void *last = NULL;
    size_t last_size = 0;
    ca_bump_mark marks[16];
    int nmarks = 0;
    for (int i = 0; i < nops; i++) {
        unsigned op = (unsigned)ca_rng_below(&r, 100);
        size_t size = ca_rng_below(&r, 8) == 0 ? (size_t)ca_rng_below(&r, 20000) : (size_t)ca_rng_below(&r, 200);
        size_t align = (size_t)1 << ca_rng_below(&r, ca_rng_below(&r, 10) == 0 ? 13 : 5);
        if (op < 50) {
            void *p = ca_bump_alloc(b, size, align);
            if (!fixed)
                cr_assert_not_null(p, "op %d alloc %zu/%zu", i, size, align);
            if (p) {
                cr_assert(ca_is_aligned((uintptr_t)p, align));
                memset(p, 0xab, size);
                last = p;
                last_size = size;
            }
        } else if (op < 62) {
            if (last)
                ca_bump_free(b, last, last_size);
            last = NULL;
        } else if (op < 72) {
            if (last) {
                void *q = ca_bump_resize(b, last, last_size, size, 16, ca_rng_below(&r, 2) ? CA_RESIZE_IN_PLACE : 0);
                if (q) {
                    last = q;
                    last_size = size;
                }
            }
        } else if (op < 80) {
            if (nmarks < 16 && ca_bump_save(b, &marks[nmarks]) == 0)
                nmarks++;
            last = NULL;
        } else if (op < 88) {
            if (nmarks) {
                int k = (int)ca_rng_below(&r, (uint64_t)nmarks);
                cr_assert_eq(ca_bump_rewind(b, &marks[k]), 0);
                nmarks = k;
            }
            last = NULL;
        } else if (op < 95) {
            void *o = ca_bump_alloc_dtor(b, size, align > 16 ? 16 : align, count_dtor, NULL);
            if (!fixed)
                cr_assert_not_null(o);
            last = NULL;
        } else if (op < 97) {
            ca_bump_array a;
            ca_bump_array_begin(&a, b, 8, 8);
            size_t n = (size_t)ca_rng_below(&r, 3000);
            for (size_t k = 0; k < n; k++) {
                long *slot = (long *)ca_bump_array_push(&a);
                if (!slot)
                    break;
                *slot = (long)k;
            }
            size_t got;
            long *items = (long *)ca_bump_array_finish(&a, &got);
            for (size_t k = 0; k < got; k++)
                cr_assert_eq(items[k], (long)k);
            last = NULL;
        } else if (op < 99) {
            ca_bump_reset(b);
            nmarks = 0;
            last = NULL;
        } else {
            ca_bump_reset_final(b);
            nmarks = 0;
            last = NULL;
        }
        cr_assert_null(ca_bump_check(b), "invariants broken after op %d (kind %u)", i, op);
        /* Records lie inside the bump, newest mark first. */
        for (ca_bump__mark_rec *m = b->marks; m; m = m->prev)
            cr_assert(ca_bump_owns(b, m));
        if (b->chunk)
            cr_assert(b->chunk->begin <= b->cur && b->cur <= b->end);
    }
}

Test(invariants, source_bump)
{
    test_source ts;
    test_source_init(&ts);
    ca_bump b;
    ca_bump_init(&b, &ts.base, NULL);
    random_ops(&b, ca_test_seed(), 4000 * (int)ca_test_scale(), false);
    ca_bump_destroy(&b);
    cr_assert_eq(ts.live, 0);
}

Test(invariants, small_chunks)
{
    ca_bump b;
    ca_bump_options o = {256, 8192};
    ca_bump_init_allocator(&b, ca_libc_allocator(), &o);
    random_ops(&b, ca_test_seed() + 1, 4000 * (int)ca_test_scale(), false);
    ca_bump_destroy(&b);
}

Test(invariants, fixed_region)
{
    static char buf[256 << 10];
    ca_bump b;
    ca_bump_init_fixed(&b, buf, sizeof buf);
    random_ops(&b, ca_test_seed() + 2, 4000 * (int)ca_test_scale(), true);
    ca_bump_destroy(&b);
}

Test(invariants, local_from_shared)
{
    test_source ts;
    test_source_init(&ts);
    ca_bump_shared s;
    ca_bump_shared_init(&s, &ts.base, NULL);
    ca_bump b;
    ca_bump_init_local(&b, &s, NULL);
    random_ops(&b, ca_test_seed() + 3, 3000 * (int)ca_test_scale(), false);
    cr_assert_null(ca_bump_shared_check(&s));
    ca_bump_destroy(&b);
    cr_assert_null(ca_bump_shared_check(&s));
    ca_bump_shared_destroy(&s);
    cr_assert_eq(ts.live, 0);
}

Test(invariants, shared_single_thread)
{
    test_source ts;
    test_source_init(&ts);
    ca_bump_shared s;
    ca_bump_shared_init(&s, &ts.base, NULL);
    ca_rng r = {ca_test_seed()};
    void *last = NULL;
    size_t last_size = 0;
    for (int i = 0; i < 20000; i++) {
        unsigned op = (unsigned)ca_rng_below(&r, 10);
        size_t size = ca_rng_below(&r, 20) == 0 ? (size_t)ca_rng_below(&r, 100000) : (size_t)ca_rng_below(&r, 300);
        size_t align = (size_t)1 << ca_rng_below(&r, 8);
        if (op < 6) {
            last = ca_bump_shared_alloc(&s, size, align);
            cr_assert(last && ca_is_aligned((uintptr_t)last, align));
            memset(last, 1, size);
            last_size = size;
        } else if (op < 8) {
            ca_bump_shared_free(&s, last, last_size);
            last = NULL;
        } else if (op < 9 && last) {
            void *q = ca_bump_shared_resize(&s, last, last_size, size, align, 0);
            cr_assert_not_null(q);
            last = q;
            last_size = size;
        } else if (i % 1000 == 999) {
            ca_bump_shared_reset(&s);
            last = NULL;
        }
        cr_assert_null(ca_bump_shared_check(&s), "op %d", i);
    }
    ca_bump_shared_destroy(&s);
    cr_assert_eq(ts.live, 0);
}
