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

/* A program that frees a structure larger than the recycler and builds the
 * next one: the spill to the blocks and the carve back are a round trip, and
 * the bound grows so that the next round goes through the recycler; decay
 * passes bring it back to the option's value. */
static ca_binned *recycler_instance(size_t recycler_bytes)
{
    ca_binned_options o;
    ca_binned_options_init(&o);
    o.class_range_log2 = 26;
    o.decay_ms = CA_BINNED_DECAY_NEVER; /* the passes below are the test's own */
    o.recycler_bytes = recycler_bytes;
    ca_binned *b = NULL;
    cr_assert_eq(ca_binned_create(&b, &o), 0);
    return b;
}

enum { ROUND = 3000 };

static void round_trip(ca_binned *b, void **p)
{
    for (int i = 0; i < ROUND; i++)
        cr_assert_not_null(p[i] = ca_binned_alloc(b, 8, 16));
    for (int i = 0; i < ROUND; i++)
        ca_binned_free(b, p[i]);
}

Test(binned_recycler, bound_follows_round_trips)
{
    ca_binned *b = recycler_instance(4 * 64 * 16); /* 4 bundles of class 16 B */
    ca_binned__class *c = &b->classes[0];
    static void *p[ROUND];
    round_trip(b, p);
    cr_assert_eq(c->rec_max, 4);
    cr_assert_eq(c->rec_floor, 4);
    cr_assert_eq(c->rec_cap, 4 * CA_BINNED__REC_GROWTH);
    cr_assert_eq(c->rec_bundles, 4);
    cr_assert_gt(c->rec_spilled, 0, "the flushes past the bound went to the blocks");
    /* The second round carves from the blocks what the first spilled: the
     * bound grows by it, and the round's flushes stay in the recycler. */
    round_trip(b, p);
    cr_assert_gt(c->rec_max, 4 * 8, "bound %lu", (unsigned long)c->rec_max);
    cr_assert_leq(c->rec_max, c->rec_cap);
    cr_assert_gt(c->rec_bundles, 4 * 8, "bundles %lu", (unsigned long)c->rec_bundles);
    cr_assert_null(ca_binned_check(b));
    /* Decay: the pass right after growth keeps the bound; then each pass
     * halves it down to the option's value, and the idle recycler drains. */
    uint64_t grown = c->rec_max;
    ca_binned__central_drain_idle(b, 0);
    cr_assert_eq(c->rec_max, grown);
    ca_binned__central_drain_idle(b, 0);
    cr_assert_eq(c->rec_max, grown / 2 > 4 ? grown / 2 : 4);
    cr_assert_eq(c->rec_bundles, 0, "nobody popped since the last pass: drained");
    for (int i = 0; i < 8; i++)
        ca_binned__central_drain_idle(b, 0);
    cr_assert_eq(c->rec_max, 4);
    cr_assert_null(ca_binned_check(b));
    ca_binned_destroy(b);
}

Test(binned_recycler, least_bound_stays_fixed)
{
    ca_binned *b = recycler_instance(CA_BINNED_RECYCLER_MIN);
    ca_binned__class *c = &b->classes[0];
    static void *p[ROUND];
    round_trip(b, p);
    round_trip(b, p);
    cr_assert_eq(c->rec_max, 2);
    cr_assert_eq(c->rec_cap, 2);
    cr_assert_leq(c->rec_bundles, 2);
    ca_binned_destroy(b);
}
