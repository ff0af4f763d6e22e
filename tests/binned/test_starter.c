/* SPDX-License-Identifier: MIT */
/*
 * libbinned's starter area (binned_internal.h, "Starter area"): the first
 * slots of the classes up to 4 KiB come from one shared area, each aligned
 * as its class's blocks align it; a class moves to its blocks when its share
 * is full or after CA_BINNED__STARTER_GIVEN_MAX hand-outs; starter slots are
 * freed, sized, reallocated, counted and checked as any slot. Misuse of
 * starter slots (double, interior and realloc of freed) is in test_death.c,
 * which runs each case on a starter slot and on a block's slot.
 */
#include <criterion/criterion.h>

#include "binned_test.h"
#include "ca_test.h"

#include <pthread.h>
#include <string.h>

static ca_binned *make(unsigned flags, ca_source *src)
{
    ca_binned_options o;
    ca_binned_options_init(&o);
    o.class_range_log2 = 24;
    o.flags = flags;
    o.source = src;
    ca_binned *b = NULL;
    cr_assert_eq(ca_binned_create(&b, &o), 0);
    return b;
}

/* The request that lands in class cls (checks=on adds its guard bytes). */
static size_t request_of(unsigned cls) { return ca_binned_class_size(cls) - CA_BINNED__GUARD; }

static uint64_t in_use(ca_binned *b)
{
    ca_stats s;
    cr_assert_eq(ca_binned_stats(b, &s), 0);
    return s.bytes_in_use;
}

Test(binned_starter, first_slots_of_every_class_come_from_the_area)
{
    ca_binned *b = make(CA_BINNED_STARTER, NULL);
    cr_assert_neq(b->starter_base, 0, "an instance on its own source with the flag has an area");
    cr_assert(b->starter_off[CA_BINNED__STARTER_CLASSES] <= CA_BINNED__STARTER_BYTES, "the layout fits");
    cr_assert_eq(ca_binned_class_size(CA_BINNED__STARTER_CLASSES - 1), 4096,
                 "the area serves classes up to 4 KiB");
    void *p[CA_BINNED__STARTER_CLASSES];
    uint64_t bytes = 0;
    for (unsigned c = 0; c < CA_BINNED__STARTER_CLASSES; c++) {
        size_t size = ca_binned_class_size(c);
        p[c] = ca_binned_alloc(b, request_of(c), 8);
        cr_assert_not_null(p[c]);
        cr_assert(ca_binned__in_starter(b, p[c]), "class %zu B: the first slot is a starter slot", size);
        cr_assert_eq(ca_binned__starter_class(b, p[c]), c, "class %zu B: its own share", size);
        size_t align = size & (~size + 1);
        cr_assert_eq((uintptr_t)p[c] & (align - 1), 0, "class %zu B: aligned to %zu as in its blocks", size,
                     align);
        cr_assert(ca_binned_owns(b, p[c]));
        cr_assert_eq(ca_binned_usable_size(b, p[c]), CA_BINNED__GUARD ? request_of(c) : size);
        memset(p[c], 0xa5, request_of(c)); /* the whole slot is the caller's */
        cr_assert_eq(b->classes[c].frontier, 0, "class %zu B: no block started", size);
        bytes += size;
    }
    cr_assert_null(ca_binned_check(b));
    cr_assert_eq(in_use(b), bytes, "starter slots count as in use");
    for (unsigned c = 0; c < CA_BINNED__STARTER_CLASSES; c++)
        ca_binned_free(b, p[c]);
    cr_assert_null(ca_binned_check(b));
    cr_assert_eq(in_use(b), 0);
    /* Classes above 4 KiB start with their blocks. */
    void *big = ca_binned_alloc(b, 5000, 16);
    cr_assert_not(ca_binned__in_starter(b, big));
    ca_binned_free(b, big);
    ca_binned_destroy(b);
}

Test(binned_starter, a_loop_of_one_size_moves_to_the_blocks)
{
    ca_binned *b = make(CA_BINNED_STARTER, NULL);
    unsigned turns = 0;
    void *p = NULL;
    for (;;) {
        p = ca_binned_alloc(b, 40, 16);
        if (!ca_binned__in_starter(b, p))
            break;
        ca_binned_free(b, p);
        turns++;
        cr_assert_leq(turns, CA_BINNED__STARTER_GIVEN_MAX, "the starter keeps serving the loop");
    }
    cr_assert_eq(turns, CA_BINNED__STARTER_GIVEN_MAX, "%u starter turns", turns);
    ca_binned_free(b, p);
    for (int i = 0; i < 1000; i++) {
        void *q = ca_binned_alloc(b, 40, 16);
        cr_assert_not(ca_binned__in_starter(b, q), "a class with blocks takes no starter slot");
        ca_binned_free(b, q);
    }
    cr_assert_null(ca_binned_check(b));
    ca_binned_destroy(b);
}

Test(binned_starter, a_full_share_moves_the_class_to_its_blocks)
{
    ca_binned *b = make(CA_BINNED_STARTER, NULL);
    void *p[20];
    p[0] = ca_binned_alloc(b, 64, 16);
    unsigned cls = ca_binned__starter_class(b, p[0]);
    unsigned n = ca_binned__starter_slots(cls);
    cr_assert_leq(n + 1, 20);
    for (unsigned i = 1; i <= n; i++)
        p[i] = ca_binned_alloc(b, 64, 16);
    for (unsigned i = 0; i < n; i++)
        cr_assert(ca_binned__in_starter(b, p[i]), "slot %u of %u from the share", i, n);
    cr_assert_not(ca_binned__in_starter(b, p[n]), "the share full: the class's block");
    cr_assert_eq((char *)p[1] - (char *)p[0], (ptrdiff_t)ca_binned_class_size(cls), "slots side by side");
    ca_binned_free(b, p[0]);
    void *q = ca_binned_alloc(b, 64, 16);
    cr_assert_not(ca_binned__in_starter(b, q), "a class with blocks takes no starter slot");
    cr_assert_null(ca_binned_check(b));
    ca_binned_free(b, q);
    for (unsigned i = 1; i <= n; i++)
        ca_binned_free(b, p[i]);
    cr_assert_null(ca_binned_check(b));
    cr_assert_eq(in_use(b), 0);
    ca_binned_destroy(b);
}

Test(binned_starter, realloc_of_a_starter_slot)
{
    ca_binned *b = make(CA_BINNED_STARTER, NULL);
    ca_allocator *a = ca_binned_allocator(b);
    char *p = ca_binned_alloc(b, 100, 16);
    cr_assert(ca_binned__in_starter(b, p));
    for (int i = 0; i < 100; i++)
        p[i] = (char)i;
    char *q = ca_resize(a, p, 100, 104, 16, 0);
    cr_assert_eq(q, p, "within its class: in place");
    char *r = ca_resize(a, q, 104, 5000, 16, 0);
    cr_assert_not_null(r);
    cr_assert_neq(r, q, "grown past its class: moved");
    for (int i = 0; i < 100; i++)
        cr_assert_eq(r[i], (char)i, "byte %d kept", i);
    cr_assert_null(ca_binned_check(b), "the starter slot was freed by the move");
    char *s = ca_binned_alloc(b, 100, 16);
    cr_assert_eq(s, p, "the freed starter slot serves the class again");
    char *t = ca_resize(a, s, 100, 8, 16, 0);
    cr_assert_neq(t, s, "shrunk below half its class: moved");
    cr_assert_null(ca_binned_check(b));
    ca_binned_free(b, t);
    ca_binned_free(b, r);
    cr_assert_eq(in_use(b), 0);
    ca_binned_destroy(b);
}

Test(binned_starter, none_without_the_flag_or_with_a_given_source)
{
    ca_binned *b = make(0, NULL);
    cr_assert_eq(b->starter_base, 0);
    void *p = ca_binned_alloc(b, 40, 16);
    cr_assert_neq(b->classes[ca_binned__class_of(40 + CA_BINNED__GUARD)].frontier, 0, "from a block");
    ca_binned_free(b, p);
    ca_binned_destroy(b);
    b = make(CA_BINNED_STARTER, ca_source_mmap_global());
    cr_assert_eq(b->starter_base, 0, "a given source: the span is obtained at once, no area");
    p = ca_binned_alloc(b, 40, 16);
    cr_assert_not_null(p);
    ca_binned_free(b, p);
    cr_assert_null(ca_binned_check(b));
    ca_binned_destroy(b);
}

Test(binned_starter, writes_into_a_freed_starter_slot_are_harmless)
{
    /* A freed starter slot holds no link (its share's bit says it is
     * free): whatever a use after free writes there is never read by the
     * allocator. */
    ca_binned *b = make(CA_BINNED_STARTER, NULL);
    char *p = ca_binned_alloc(b, 40, 16);
    cr_assert(ca_binned__in_starter(b, p));
    ca_binned_free(b, p);
    memset(p, 0xff, 40);
    char *q = ca_binned_alloc(b, 40, 16);
    cr_assert_eq(q, p, "the slot serves the class again");
    char *r = ca_binned_alloc(b, 40, 16);
    cr_assert(r != p && ca_binned__in_starter(b, r), "the next slot of the share, not an address from the slot");
    cr_assert_null(ca_binned_check(b));
    ca_binned_free(b, q);
    ca_binned_free(b, r);
    ca_binned_destroy(b);
}

static void else_other(void *p)
{
    (void)p;
    cr_assert_fail("a starter slot of the default instance went to other");
}

Test(binned_starter, the_default_instance_has_one)
{
    ca_binned *d = ca_binned_default();
    cr_assert(ca_binned_flags(d) & CA_BINNED_STARTER);
    cr_assert_neq(d->starter_base, 0);
    void *p = ca_binned_default_malloc(300);
    cr_assert(ca_binned__in_starter(d, p));
    cr_assert(ca_binned_default_owns(p));
    cr_assert_eq(ca_binned_default_usable_size(p),
                 CA_BINNED__GUARD ? 300 : ca_binned_class_size(ca_binned__class_of(300 + CA_BINNED__GUARD)));
    p = ca_binned_default_realloc_else(p, 310, NULL); /* in place: other is not called */
    cr_assert(ca_binned__in_starter(d, p));
    ca_binned_default_free_else(p, else_other);
    cr_assert_null(ca_binned_check(d));
}

/* Two threads on one instance's starter: takes and puts under the class
 * locks, with a seeded mix of classes, then the walk. */
#define THREAD_OPS 20000

static ca_binned *g_b;

static void *worker(void *arg)
{
    uint64_t x = (uint64_t)(uintptr_t)arg * 0x9e3779b97f4a7c15ull + 1;
    void *held[8] = {0};
    for (int i = 0; i < THREAD_OPS; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        unsigned k = (unsigned)(x % 8);
        if (held[k]) {
            ca_binned_free(g_b, held[k]);
            held[k] = NULL;
        } else {
            unsigned cls = (unsigned)((x >> 8) % CA_BINNED__STARTER_CLASSES);
            held[k] = ca_binned_alloc(g_b, request_of(cls), 8);
            if (held[k])
                memset(held[k], (int)k, request_of(cls));
        }
    }
    for (int k = 0; k < 8; k++)
        ca_binned_free(g_b, held[k]);
    return NULL;
}

Test(binned_starter, two_threads_share_the_area)
{
    g_b = make(CA_BINNED_STARTER, NULL);
    pthread_t t[2];
    for (uintptr_t i = 0; i < 2; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, worker, (void *)(i + 1)), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    cr_assert_null(ca_binned_check(g_b));
    cr_assert_eq(in_use(g_b), 0);
    ca_binned_destroy(g_b);
}
