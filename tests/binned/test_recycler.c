/* SPDX-License-Identifier: MIT */
/* The recycler alone: LIFO order, take_all, generation bumps, and the
 * allocator's use of it (flushes fill it up to its bound, refills drain it). */
#include <criterion/criterion.h>

#include "binned_internal.h"

typedef struct node {
    void *w0, *w1;
} node;

Test(binned_recycler, lifo_and_generation)
{
    ca_binned__recycler r;
    ca_binned__recycler_init(&r);
    static node n[8];
    cr_assert_null(ca_binned__recycler_pop(&r));
    for (int i = 0; i < 8; i++)
        ca_binned__recycler_push(&r, &n[i]);
    cr_assert_eq(r.gen, 8);
    for (int i = 7; i >= 4; i--)
        cr_assert_eq(ca_binned__recycler_pop(&r), &n[i]);
    cr_assert_eq(r.gen, 12);
    void *all = ca_binned__recycler_take_all(&r);
    cr_assert_eq(all, &n[3]);
    int k = 3;
    for (void *p = all; p; p = *ca_binned__bundle_link(p))
        cr_assert_eq(p, &n[k--]);
    cr_assert_eq(k, -1);
    cr_assert_null(ca_binned__recycler_pop(&r));
    cr_assert_null(ca_binned__recycler_take_all(&r));
}

Test(binned_recycler, allocator_bound)
{
    ca_binned_options o;
    ca_binned_options_init(&o);
    o.class_range_log2 = 26;
    o.recycler_bytes = 4 * 64 * 16; /* 4 bundles of class 16 B */
    ca_binned *b = NULL;
    cr_assert_eq(ca_binned_create(&b, &o), 0);
    enum { N = 2000 };
    static void *p[N];
    for (int i = 0; i < N; i++)
        p[i] = ca_binned_alloc(b, 8, 16); /* class 16 B in every build (checks=on: 8 guard bytes) */
    for (int i = 0; i < N; i++)
        ca_binned_free(b, p[i]);
    cr_assert_eq(b->classes[0].rec_bundles, 4);
    cr_assert_null(ca_binned_check(b));
    ca_binned_thread_flush(b);
    cr_assert_null(ca_binned_check(b));
    /* Refills take bundles back first. */
    for (int i = 0; i < 64 * 4; i++)
        p[i] = ca_binned_alloc(b, 8, 16);
    cr_assert_lt(b->classes[0].rec_bundles, 4);
    cr_assert_null(ca_binned_check(b));
    for (int i = 0; i < 64 * 4; i++)
        ca_binned_free(b, p[i]);
    ca_binned_destroy(b);
}
