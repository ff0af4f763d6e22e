/* SPDX-License-Identifier: MIT */
/*
 * Random operation sequences (fixed seed, CA_TEST_SEED) on every source with
 * the private header: ca_source_check after every operation, contents of
 * live ranges verified (no overlap), statistics equal to a shadow model.
 */
#include "source_internal.h"

#include <criterion/criterion.h>

#include "ca_test.h"

#define LIVE 64

typedef struct live {
    void *p;
    size_t size;
    bool reserved;  /* from reserve: contents not checked */
    uint64_t tag;
} live;

typedef struct model {
    uint64_t in_use, reserved;
} model;

/* Runs `ops` random operations on src; granules per range up to maxg. */
static void run(ca_source *src, uint64_t ops, size_t maxg, bool exact_reserved, unsigned align_shifts)
{
    ca_rng r = {ca_test_seed()};
    live l[LIVE];
    memset(l, 0, sizeof l);
    model m = {0, 0};
    size_t g = ca_source_granule(src);
    for (uint64_t i = 0; i < ops; i++) {
        unsigned slot = (unsigned)ca_rng_below(&r, LIVE);
        live *e = &l[slot];
        if (e->p) {
            if (!e->reserved)
                cr_assert(ca_test_verify(e->p, e->size < 256 ? e->size : 256, e->tag), "op %lu: overlap",
                          (unsigned long)i);
            if (src->ops->decommit && !e->reserved && ca_rng_below(&r, 4) == 0) {
                cr_assert_eq(ca_source_decommit(src, e->p, g), 0);
                cr_assert_eq(ca_source_commit(src, e->p, g), 0);
                ca_test_fill(e->p, e->size < 256 ? e->size : 256, e->tag);
            } else {
                cr_assert_eq(ca_source_release(src, e->p, e->size), 0);
                m.reserved -= e->size;
                if (!e->reserved)
                    m.in_use -= e->size;
                e->p = NULL;
            }
        } else {
            size_t n = g * (1 + ca_rng_below(&r, maxg));
            size_t align = g << ca_rng_below(&r, align_shifts);
            bool res = src->ops->reserve && ca_rng_below(&r, 5) == 0;
            int rc = res ? ca_source_reserve(src, n, align, &e->p) : ca_source_obtain(src, n, align, &e->p);
            if (rc == ENOMEM) { /* a bounded source is full */
                e->p = NULL;
                continue;
            }
            cr_assert_eq(rc, 0, "op %lu: rc %d", (unsigned long)i, rc);
            cr_assert(ca_is_aligned((uintptr_t)e->p, align));
            e->size = n;
            e->reserved = res;
            e->tag = i;
            if (res) {
                cr_assert_eq(ca_source_commit(src, e->p, g), 0);
                ((char *)e->p)[0] = 1;
            } else {
                ca_test_fill(e->p, n < 256 ? n : 256, e->tag);
                m.in_use += n;
            }
            m.reserved += n;
        }
        const char *msg = ca_source_check(src);
        cr_assert_null(msg, "op %lu: %s", (unsigned long)i, msg);
        ca_stats st;
        ca_source_stats(src, &st);
        cr_assert_eq(st.bytes_in_use, m.in_use, "op %lu", (unsigned long)i);
        if (exact_reserved)
            cr_assert_eq(st.bytes_reserved, m.reserved, "op %lu", (unsigned long)i);
    }
    for (unsigned i = 0; i < LIVE; i++)
        if (l[i].p)
            cr_assert_eq(ca_source_release(src, l[i].p, l[i].size), 0);
    cr_assert_null(ca_source_check(src));
    ca_stats st;
    ca_source_stats(src, &st);
    cr_assert_eq(st.bytes_in_use, 0);
}

static uint64_t ops(void) { return 1500 * ca_test_scale(); }

TestSuite(source_invariants);

Test(source_invariants, mmap)
{
    ca_source_mmap s;
    cr_assert_eq(ca_source_mmap_init(&s, NULL), 0);
    run(&s.base, ops(), 16, true, 4);
    cr_assert_eq(s.track.len, 0);
    ca_source_mmap_destroy(&s);
}

Test(source_invariants, mmap_free_mode_thp)
{
    ca_source_mmap_options o;
    memset(&o, 0, sizeof o);
    o.decommit = CA_SOURCE_DECOMMIT_FREE;
    o.huge = CA_SOURCE_HUGE_THP;
    ca_source_mmap s;
    cr_assert_eq(ca_source_mmap_init(&s, &o), 0);
    run(&s.base, ops() / 2, 600, true, 4);
    ca_source_mmap_destroy(&s);
}

Test(source_invariants, file)
{
    ca_source_file_options o;
    memset(&o, 0, sizeof o);
    o.capacity = (size_t)64 << 20; /* small: exercises ENOMEM and offset reuse */
    ca_source_file s;
    cr_assert_eq(ca_source_file_init(&s, &o), 0);
    run(&s.base, ops(), 64, true, 4);
    ca_source_file_destroy(&s);
}

Test(source_invariants, heap)
{
    ca_source_heap s;
    cr_assert_eq(ca_source_heap_init(&s, NULL), 0);
    run(&s.base, ops(), 8, true, 4);
    ca_source_heap_destroy(&s);
}

Test(source_invariants, buffer)
{
    static char mem[(1 << 20) + 17];
    ca_source_buffer_options o = {512, NULL};
    ca_source_buffer s;
    cr_assert_eq(ca_source_buffer_init(&s, mem + 17, sizeof mem - 17, &o), 0);
    run(&s.base, ops(), 32, false, 4);
    ca_source_buffer_destroy(&s);
}

Test(source_invariants, slots)
{
    ca_source_heap h;
    cr_assert_eq(ca_source_heap_init(&h, NULL), 0);
    ca_source_slots_options o;
    memset(&o, 0, sizeof o);
    o.slot_size = 256;
    o.chunk_size = 4096;
    ca_source_slots s;
    cr_assert_eq(ca_source_slots_init(&s, &h.base, &o), 0);
    run(&s.base, ops(), 1, false, 1);
    /* direct get/put interleaved */
    ca_rng r = {ca_test_seed()};
    void *v[100] = {0};
    for (uint64_t i = 0; i < ops(); i++) {
        unsigned k = (unsigned)ca_rng_below(&r, 100);
        if (v[k]) {
            ca_source_slots_put(&s, v[k]);
            v[k] = NULL;
        } else {
            v[k] = ca_source_slots_get(&s);
            cr_assert_not_null(v[k]);
        }
        cr_assert_null(ca_source_check(&s.base));
    }
    for (int k = 0; k < 100; k++)
        ca_source_slots_put(&s, v[k]);
    cr_assert_null(ca_source_check(&s.base));
    ca_source_slots_destroy(&s);
    ca_source_heap_destroy(&h);
}

/* The check notices corruption (so it can fail). */
Test(source_invariants, check_detects_corruption)
{
    ca_source_mmap m;
    cr_assert_eq(ca_source_mmap_init(&m, NULL), 0);
    void *p;
    cr_assert_eq(ca_source_obtain(&m.base, 4096, 4096, &p), 0);
    m.c.reserved += 4096;
    cr_assert_not_null(ca_source_check(&m.base));
    m.c.reserved -= 4096;
    cr_assert_null(ca_source_check(&m.base));
    cr_assert_eq(ca_source_release(&m.base, p, 4096), 0);
    ca_source_mmap_destroy(&m);

    ca_source_heap h;
    cr_assert_eq(ca_source_heap_init(&h, NULL), 0);
    ca_source_slots_options o;
    memset(&o, 0, sizeof o);
    o.slot_size = 64;
    ca_source_slots s;
    cr_assert_eq(ca_source_slots_init(&s, &h.base, &o), 0);
    void *a = ca_source_slots_get(&s);
    ca_source_slots_put(&s, a);
    s.nfree++;
    cr_assert_not_null(ca_source_check(&s.base));
    s.nfree--;
    ca_source_slots_destroy(&s);
    ca_source_heap_destroy(&h);

    static char mem[8192];
    ca_source_buffer b;
    ca_source_buffer_options bo = {256, NULL};
    cr_assert_eq(ca_source_buffer_init(&b, mem, sizeof mem, &bo), 0);
    b.c.in_use = 256;
    cr_assert_not_null(ca_source_check(&b.base));
}

/* The record of ranges under many live ranges released in FIFO, LIFO and
 * random order (dead entries, reuse next to the insertion point, compaction). */
Test(source_invariants, record_orders)
{
    enum { N = 600 };
    static void *p[N];
    ca_source_mmap m;
    cr_assert_eq(ca_source_mmap_init(&m, NULL), 0);
    ca_rng r = {ca_test_seed()};
    for (int order = 0; order < 3; order++) {
        for (int i = 0; i < N; i++)
            cr_assert_eq(ca_source_obtain(&m.base, 4096 * (1 + (size_t)(i % 3)), 4096, &p[i]), 0);
        int idx[N];
        for (int i = 0; i < N; i++)
            idx[i] = order == 1 ? N - 1 - i : i;
        if (order == 2)
            for (int i = N - 1; i > 0; i--) {
                int j = (int)ca_rng_below(&r, (uint64_t)i + 1), t = idx[i];
                idx[i] = idx[j];
                idx[j] = t;
            }
        for (int k = 0; k < N; k++) {
            int i = idx[k];
            cr_assert_eq(ca_source_release(&m.base, p[i], 4096 * (1 + (size_t)(i % 3))), 0);
            if (k % 3 == 0) { /* refill while dead entries exist */
                void *q;
                cr_assert_eq(ca_source_obtain(&m.base, 8192, 4096, &q), 0);
                cr_assert_eq(ca_source_commit(&m.base, q, 4096), 0);
                cr_assert_eq(ca_source_release(&m.base, q, 8192), 0);
            }
            const char *msg = ca_source_check(&m.base);
            cr_assert_null(msg, "order %d step %d: %s", order, k, msg);
        }
        cr_assert_eq(m.track.len, 0);
        cr_assert_eq(m.track.dead, 0);
    }
    ca_source_mmap_destroy(&m);
}
