/* SPDX-License-Identifier: MIT */
/*
 * The behaviours issue-level features promise, one test each: tip free /
 * grow / shrink reclaim, chunk growth after warm-up, oversized chunks,
 * reset and reset_final, nested checkpoints, destructor order, fixed-region
 * exhaustion, the array builder, local bumps over a shared one, the warm
 * cache, and bad input.
 */
#include <criterion/criterion.h>
#include <ctxalloc/bump.h>
#include <stdlib.h>

#include "bump_test.h"

static test_source ts;
static ca_bump b;

static void setup(void)
{
    test_source_init(&ts);
    cr_assert_eq(ca_bump_init(&b, &ts.base, NULL), 0);
}
static void teardown(void)
{
    ca_bump_destroy(&b);
    cr_assert_eq(ts.live, 0, "chunks not returned: %ld", ts.live);
}
TestSuite(basic, .init = setup, .fini = teardown);

static uint64_t counter(const char *name)
{
    ca_stats st;
    uint64_t v = 0;
    ca_bump_stats(&b, &st);
    cr_assert(ca_stats_get_counter(&st, name, &v), "no counter %s", name);
    return v;
}

/* blink-alloc's tip-free CAS has its arguments reversed, so a freed tip is
 * never reused: allocate, free the tip, allocate again -> same address. */
Test(basic, tip_free_reclaims)
{
    void *keep = ca_bump_alloc(&b, 40, 8);
    for (size_t sz = 1; sz <= 200; sz += 7) {
        void *p = ca_bump_alloc(&b, sz, 8);
        ca_bump_free(&b, p, sz);
        void *q = ca_bump_alloc(&b, sz, 8);
        cr_assert_eq(p, q, "freed tip not reused for size %zu", sz);
        ca_bump_free(&b, q, sz);
    }
    /* Through the allocator interface too. */
    void *p = ca_alloc(&b.base, 64, 16);
    ca_free(&b.base, p, 64, 16);
    cr_assert_eq(ca_alloc(&b.base, 64, 16), p);
    /* A non-tip free is a counted no-op. */
    uint64_t noop = counter("noop_frees");
    ca_bump_free(&b, keep, 40);
    cr_assert_eq(counter("noop_frees"), noop + 1);
    cr_assert_neq(ca_bump_alloc(&b, 40, 8), keep);
    cr_assert_null(ca_bump_check(&b));
}

Test(basic, tip_free_lifo_chain)
{
    char *p[10];
    for (int i = 0; i < 10; i++)
        p[i] = (char *)ca_bump_alloc(&b, 32, 16);
    char *cur0 = b.cur;
    for (int i = 9; i >= 0; i--)
        ca_bump_free(&b, p[i], 32);
    cr_assert_eq(b.cur, p[0], "LIFO frees must walk the cursor back");
    cr_assert(b.cur < cur0);
    cr_assert_eq(counter("tip_frees"), 10);
}

Test(basic, tip_grow_and_shrink_in_place)
{
    char *p = (char *)ca_bump_alloc(&b, 100, 16);
    memset(p, 7, 100);
    char *q = (char *)ca_bump_resize(&b, p, 100, 1000, 16, 0);
    cr_assert_eq(q, p, "tip grow must stay in place");
    cr_assert_eq(b.cur, p + 1000);
    for (int i = 0; i < 100; i++)
        cr_assert_eq(q[i], 7);
    q = (char *)ca_bump_resize(&b, p, 1000, 10, 16, CA_RESIZE_IN_PLACE);
    cr_assert_eq(q, p);
    cr_assert_eq(b.cur, p + 10, "tip shrink must move the cursor back");
    /* The freed bytes are reused. */
    char *r = (char *)ca_bump_alloc(&b, 16, 16);
    cr_assert_eq(r, p + 16);
    /* Non-tip: shrink stays, in-place grow fails with the block intact. */
    q = (char *)ca_bump_resize(&b, p, 10, 5, 16, 0);
    cr_assert_eq(q, p);
    errno = 0;
    cr_assert_null(ca_bump_resize(&b, p, 5, 50, 16, CA_RESIZE_IN_PLACE));
    cr_assert_eq(errno, ENOMEM);
    /* Non-tip grow moves and keeps the contents. */
    q = (char *)ca_bump_resize(&b, p, 5, 50, 16, 0);
    cr_assert(q && q != p);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(q[i], 7);
    cr_assert_null(ca_bump_check(&b));
}

Test(basic, failed_grow_leaves_original)
{
    char *p = (char *)ca_bump_alloc(&b, 64, 16);
    memset(p, 0x33, 64);
    ts.fail_after = 0;
    errno = 0;
    cr_assert_null(ca_bump_resize(&b, p, 64, 1 << 20, 16, 0));
    cr_assert_eq(errno, ENOMEM);
    for (int i = 0; i < 64; i++)
        cr_assert_eq(p[i], 0x33);
    cr_assert_eq(b.cur, p + 64, "a failed grow must not move the tip");
    errno = 0;
    cr_assert_null(ca_bump_resize(&b, p, 64, SIZE_MAX - 4, 16, 0));
    cr_assert_eq(errno, ENOMEM);
    ts.fail_after = -1;
    cr_assert_null(ca_bump_check(&b));
}

/* Chunk sizes follow the cumulative total: after warm-up a reset cycle is
 * served by the one kept chunk. */
Test(basic, growth_one_chunk_per_cycle_after_warmup)
{
    long per_cycle[6];
    for (int cycle = 0; cycle < 6; cycle++) {
        long before = ts.obtains;
        for (int i = 0; i < 10000; i++) {
            void *p = ca_bump_alloc(&b, 8 + (size_t)(i % 57), 8);
            cr_assert_not_null(p);
        }
        per_cycle[cycle] = ts.obtains - before;
        ca_bump_reset(&b);
        cr_assert_eq(ts.live, 1, "reset keeps exactly one chunk (cycle %d: %ld)", cycle, ts.live);
        cr_assert_null(ca_bump_check(&b));
    }
    cr_assert_gt(per_cycle[0], 1, "first cycle grows through several chunks");
    for (int c = 3; c < 6; c++)
        cr_assert_eq(per_cycle[c], 0, "cycle %d obtained %ld chunks after warm-up", c, per_cycle[c]);
}

Test(basic, chunk_sizes_grow_geometrically)
{
    size_t last = 0;
    int grew = 0;
    for (int i = 0; i < 200000; i++) {
        ca_bump_alloc(&b, 48, 16);
        if (b.chunk->size != last) {
            grew += b.chunk->size > last;
            last = b.chunk->size;
        }
    }
    cr_assert_gt(grew, 5);
    long chunks = 0;
    for (ca_bump_chunk *c = b.chunk; c; c = c->prev)
        chunks++;
    cr_assert_lt(chunks, 20, "%ld chunks for 9.6 MB: growth is not geometric", chunks);
}

Test(basic, oversized_gets_own_chunk)
{
    char *small = (char *)ca_bump_alloc(&b, 32, 16);
    ca_bump_chunk *cur = b.chunk;
    char *big = (char *)ca_bump_alloc(&b, 1 << 20, 64);
    cr_assert(big && ca_is_aligned((uintptr_t)big, 64));
    cr_assert_eq(b.chunk, cur, "an oversized request must not replace the current chunk");
    cr_assert_not_null(b.big);
    memset(big, 1, 1 << 20);
    char *small2 = (char *)ca_bump_alloc(&b, 32, 16);
    cr_assert_eq(small2, small + 32, "small allocations continue in the current chunk");
    /* Freeing the oversized block returns its chunk at once. */
    long live = ts.live;
    ca_bump_free(&b, big, 1 << 20);
    cr_assert_eq(ts.live, live - 1);
    cr_assert_null(b.big);
    /* Growing the newest oversized block moves it and returns the old chunk. */
    big = (char *)ca_bump_alloc(&b, 1 << 20, 16);
    memset(big, 9, 1 << 20);
    live = ts.live;
    char *bigger = (char *)ca_bump_resize(&b, big, 1 << 20, 4 << 20, 16, 0);
    cr_assert(bigger && bigger[12345] == 9 && bigger[(1 << 20) - 1] == 9);
    cr_assert_eq(ts.live, live, "old oversized chunk returned when moved");
    cr_assert_null(ca_bump_check(&b));
}

Test(basic, reset_keeps_largest_final_returns_all)
{
    for (int i = 0; i < 5000; i++)
        ca_bump_alloc(&b, 100, 8);
    ca_bump_alloc(&b, 8 << 20, 8);
    size_t largest = 0;
    for (ca_bump_chunk *c = b.chunk; c; c = c->prev)
        largest = c->size > largest ? c->size : largest;
    cr_assert_gt(ts.live, 2);
    ca_bump_reset(&b);
    cr_assert_eq(ts.live, 1);
    cr_assert_eq(b.chunk->size, largest);
    cr_assert_eq(b.cur, b.chunk->begin);
    cr_assert_null(b.big);
    ca_bump_reset_final(&b);
    cr_assert_eq(ts.live, 0);
    cr_assert_null(b.chunk);
    cr_assert_null(ca_bump_check(&b));
    cr_assert_not_null(ca_bump_alloc(&b, 10, 8), "usable after reset_final");
}

Test(basic, nested_checkpoints)
{
    char *a = (char *)ca_bump_alloc(&b, 100, 8);
    strcpy(a, "outer");
    ca_bump_mark m1, m2, m3;
    char *cur1 = b.cur;
    cr_assert_eq(ca_bump_save(&b, &m1), 0);
    long live1 = ts.live;
    for (int i = 0; i < 3000; i++)
        ca_bump_alloc(&b, 64, 8);
    char *cur2 = b.cur;
    cr_assert_eq(ca_bump_save(&b, &m2), 0);
    for (int i = 0; i < 3000; i++)
        ca_bump_alloc(&b, 64, 8);
    ca_bump_alloc(&b, 1 << 20, 8);
    cr_assert_eq(ca_bump_save(&b, &m3), 0);
    ca_bump_alloc(&b, 10, 8);
    cr_assert_eq(ca_bump_rewind(&b, &m3), 0);
    cr_assert_null(ca_bump_check(&b));
    cr_assert_eq(ca_bump_rewind(&b, &m2), 0);
    cr_assert_eq(b.cur, cur2, "cursor back at the second mark");
    cr_assert_null(b.big, "oversized chunk after the mark released");
    cr_assert_null(ca_bump_check(&b));
    cr_assert_eq(ca_bump_rewind(&b, &m1), 0);
    cr_assert_eq(ts.live, live1, "chunks obtained after the mark must be released");
    cr_assert_eq(b.cur, cur1);
    cr_assert_str_eq(a, "outer");
    cr_assert_null(ca_bump_check(&b));
    /* Rewind to an outer mark drops inner ones. */
    cr_assert_eq(ca_bump_save(&b, &m1), 0);
    cr_assert_eq(ca_bump_save(&b, &m2), 0);
    cr_assert_eq(ca_bump_rewind(&b, &m1), 0);
#if CA_CHECKS == 0
    cr_assert_eq(ca_bump_rewind(&b, &m2), EINVAL, "inner mark is dead after the outer rewind");
    cr_assert_eq(ca_bump_rewind(&b, &m1), EINVAL, "a mark is rewound once");
#endif
    cr_assert_null(ca_bump_check(&b));
}

Test(basic, checkpoint_on_empty_bump_releases_everything)
{
    ca_bump_mark m;
    cr_assert_eq(ca_bump_save(&b, &m), 0);
    for (int i = 0; i < 10000; i++)
        ca_bump_alloc(&b, 64, 8);
    cr_assert_eq(ca_bump_rewind(&b, &m), 0);
    cr_assert_eq(ts.live, 0);
    cr_assert_null(b.chunk);
    cr_assert_null(ca_bump_check(&b));
}

static int order[16], norder;
static void dtor(void *obj, void *arg)
{
    order[norder++] = (int)(intptr_t)arg;
    memset(obj, 0xdd, 8);
}

Test(basic, destructors_newest_first_on_reset_and_rewind)
{
    norder = 0;
    for (int i = 0; i < 4; i++) {
        void *o = ca_bump_alloc_dtor(&b, 8, 8, dtor, (void *)(intptr_t)i);
        cr_assert_not_null(o);
    }
    ca_bump_mark m;
    ca_bump_save(&b, &m);
    for (int i = 4; i < 7; i++)
        ca_bump_alloc_dtor(&b, 16, 8, dtor, (void *)(intptr_t)i);
    ca_bump_rewind(&b, &m);
    cr_assert_eq(norder, 3);
    cr_assert(order[0] == 6 && order[1] == 5 && order[2] == 4, "rewind order %d %d %d", order[0], order[1],
              order[2]);
    /* The newest destructor object cannot be freed. */
    void *o = ca_bump_alloc_dtor(&b, 8, 8, dtor, (void *)(intptr_t)9);
    ca_bump_free(&b, o, 8);
    cr_assert_neq(ca_bump_alloc(&b, 8, 8), o);
    ca_bump_reset(&b);
    cr_assert_eq(norder, 8);
    int want[] = {9, 3, 2, 1, 0};
    for (int i = 0; i < 5; i++)
        cr_assert_eq(order[3 + i], want[i]);
    errno = 0;
    cr_assert_null(ca_bump_alloc_dtor(&b, 8, 8, NULL, NULL));
    cr_assert_eq(errno, EINVAL);
    cr_assert_eq(counter("dtors_run"), 8);
}

Test(basic, destructors_run_on_destroy)
{
    norder = 0;
    ca_bump_alloc_dtor(&b, 8, 8, dtor, (void *)(intptr_t)1);
    ca_bump_alloc_dtor(&b, 8, 8, dtor, (void *)(intptr_t)2);
    ca_bump_destroy(&b);
    cr_assert(norder == 2 && order[0] == 2 && order[1] == 1);
    ca_bump_init(&b, &ts.base, NULL);
}

Test(basic, fixed_region_exhaustion)
{
    static char buf[4096 + 3];
    ca_bump f;
    cr_assert_eq(ca_bump_init_fixed(&f, buf + 3, 4096), 0);
    cr_assert(ca_is_aligned((uintptr_t)f.cur, 16));
    size_t total = 0;
    void *p;
    while ((p = ca_bump_alloc(&f, 100, 8)) != NULL) {
        cr_assert((char *)p >= buf && (char *)p + 100 <= buf + sizeof buf);
        total += 100;
    }
    cr_assert_eq(errno, ENOMEM);
    cr_assert_geq(total, 3900);
    cr_assert_leq(total, 4096);
    /* Smaller requests still fit the tail; oversized never grows. */
    errno = 0;
    cr_assert_null(ca_bump_alloc(&f, 1 << 20, 8));
    cr_assert_eq(errno, ENOMEM);
    ca_stats st;
    ca_bump_stats(&f, &st);
    cr_assert_eq(st.failures, 2);
    cr_assert_null(ca_bump_check(&f));
    ca_bump_reset(&f);
    cr_assert_not_null(ca_bump_alloc(&f, 4000, 8), "reset rewinds the region");
    ca_bump_destroy(&f);
    cr_assert_eq(ca_bump_init_fixed(&f, buf, 8), EINVAL);
    cr_assert_eq(ca_bump_init_fixed(&f, NULL, 4096), EINVAL);
}

Test(basic, fixed_source_region)
{
    ca_bump f;
    long live = ts.live;
    cr_assert_eq(ca_bump_init_fixed_source(&f, &ts.base, 10000), 0);
    cr_assert_eq(ts.live, live + 1);
    int n = 0;
    while (ca_bump_alloc(&f, 1000, 8))
        n++;
    cr_assert(n >= 10 && n <= 12, "n = %d", n);
    cr_assert_eq(ts.live, live + 1, "a fixed region never grows");
    ca_bump_destroy(&f);
    cr_assert_eq(ts.live, live);
}

Test(basic, array_builder_grows_at_tip_without_copy)
{
    ca_bump_array a;
    cr_assert_eq(ca_bump_array_begin(&a, &b, sizeof(int), __alignof__(int)), 0);
    int *first = NULL;
    int moved = 0;
    for (int i = 0; i < 500; i++) {
        int *slot = (int *)ca_bump_array_push(&a);
        cr_assert_not_null(slot);
        *slot = i;
        if (!first)
            first = slot;
        moved += a.data != (char *)first;
    }
    cr_assert_eq(moved, 0, "while at the tip with room the array must not move");
    size_t n;
    int *items = (int *)ca_bump_array_finish(&a, &n);
    cr_assert_eq(n, 500);
    cr_assert_eq(items, first);
    for (int i = 0; i < 500; i++)
        cr_assert_eq(items[i], i);
    cr_assert_eq(b.cur, (char *)(items + 500), "no spare capacity left behind");
    /* Interleaved allocation: the array moves once and keeps its items. */
    ca_bump_array_begin(&a, &b, 24, 8);
    for (int i = 0; i < 100; i++) {
        char *slot = (char *)ca_bump_array_push(&a);
        memset(slot, i, 24);
        if (i == 50)
            ca_bump_alloc(&b, 8, 8);
    }
    char *it = (char *)ca_bump_array_finish(&a, &n);
    cr_assert_eq(n, 100);
    for (int i = 0; i < 100; i++)
        cr_assert_eq(it[i * 24 + 23], (char)i);
    /* Many items cross chunks and oversized chunks. */
    ca_bump_array_begin(&a, &b, sizeof(long), 8);
    for (long i = 0; i < 300000; i++)
        *(long *)ca_bump_array_push(&a) = i;
    long *L = (long *)ca_bump_array_finish(&a, &n);
    cr_assert_eq(n, 300000);
    for (long i = 0; i < 300000; i++)
        cr_assert_eq(L[i], i);
    cr_assert_null(ca_bump_check(&b));
    cr_assert_null(ca_bump_array_finish(&a, &n));
    cr_assert_eq(n, 0);
    cr_assert_eq(ca_bump_array_begin(&a, &b, 0, 8), EINVAL);
    cr_assert_eq(ca_bump_array_begin(&a, &b, 8, 3), EINVAL);
}

Test(basic, bad_input)
{
    size_t bad[] = {0, 3, 24, CA_BUMP_ALIGN_MAX * 2};
    for (size_t i = 0; i < 4; i++) {
        errno = 0;
        cr_assert_null(ca_bump_alloc(&b, 8, bad[i]));
        cr_assert_eq(errno, EINVAL);
    }
    cr_assert_not_null(ca_bump_alloc(&b, 8, CA_BUMP_ALIGN_MAX));
    size_t huge[] = {SIZE_MAX, SIZE_MAX - 100, SIZE_MAX / 2};
    for (size_t i = 0; i < 3; i++) {
        errno = 0;
        cr_assert_null(ca_bump_alloc(&b, huge[i], 4096));
        cr_assert_eq(errno, ENOMEM);
    }
    /* size 0: unique pointers, freeable */
    void *z1 = ca_bump_alloc(&b, 0, 16), *z2 = ca_bump_alloc(&b, 0, 16);
    cr_assert(z1 && z2 && z1 != z2);
    ca_bump_free(&b, z2, 0);
    cr_assert_eq(ca_bump_alloc(&b, 0, 16), z2);
    cr_assert_eq(ca_bump_init(&b, NULL, NULL), EINVAL);
    ca_bump_options o = {8192, 4096};
    cr_assert_eq(ca_bump_init(&b, &ts.base, &o), EINVAL);
    cr_assert_null(ca_bump_check(&b));
}

Test(basic, source_failure_is_enomem)
{
    ts.fail_after = 0;
    errno = 0;
    cr_assert_null(ca_bump_alloc(&b, 8, 8));
    cr_assert_eq(errno, ENOMEM);
    ts.fail_after = -1;
    cr_assert_not_null(ca_bump_alloc(&b, 8, 8));
}

Test(basic, local_bumps_take_and_return_chunks)
{
    ca_bump_shared s;
    cr_assert_eq(ca_bump_shared_init(&s, &ts.base, NULL), 0);
    ca_bump l1, l2;
    ca_bump_init_local(&l1, &s, NULL);
    ca_bump_init_local(&l2, &s, NULL);
    for (int i = 0; i < 20000; i++) {
        memset(ca_bump_alloc(&l1, 40, 8), 1, 40);
        memset(ca_bump_alloc(&l2, 40, 8), 2, 40);
    }
    cr_assert_null(ca_bump_check(&l1));
    ca_stats st;
    ca_bump_stats(&l1, &st);
    uint64_t held = 0;
    ca_stats_get_counter(&st, "chunks_held", &held);
    cr_assert_gt(held, 1);
    ca_bump_reset(&l1); /* all but the largest go back to the shared spare list */
    ca_bump_shared_stats(&s, &st);
    uint64_t given = 0, spare = 0;
    ca_stats_get_counter(&st, "spare_given", &given);
    ca_stats_get_counter(&st, "spare_bytes", &spare);
    cr_assert_eq(given, held - 1);
    cr_assert_gt(spare, 0);
    /* Another local takes them again. */
    long obtains = ts.obtains;
    ca_bump l3;
    ca_bump_init_local(&l3, &s, NULL);
    for (int i = 0; i < 200; i++)
        ca_bump_alloc(&l3, 40, 8);
    ca_bump_shared_stats(&s, &st);
    uint64_t taken = 0;
    ca_stats_get_counter(&st, "spare_taken", &taken);
    cr_assert_geq(taken, 1);
    cr_assert_eq(ts.obtains, obtains, "spare chunks reused, nothing obtained");
    cr_assert_null(ca_bump_shared_check(&s));
    ca_bump_destroy(&l3);
    ca_bump_destroy(&l2);
    ca_bump_destroy(&l1);
    ca_bump_shared_reset(&s);
    cr_assert_leq(ts.live, 1, "shared reset keeps at most one chunk");
    ca_bump_shared_destroy(&s);
}

Test(basic, warm_cache_bounded)
{
    ca_bump_cache c;
    cr_assert_eq(ca_bump_cache_init(&c, &ts.base, NULL, 2), 0);
    ca_bump t[4];
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(ca_bump_cache_take(&c, &t[i]), 0);
        for (int k = 0; k < 3000; k++)
            ca_bump_alloc(&t[i], 64, 8);
    }
    for (int i = 0; i < 4; i++)
        ca_bump_cache_put(&c, &t[i]);
    cr_assert_eq(ts.live, 2, "only max_warm chunks are kept (%ld)", ts.live);
    cr_assert_null(ca_bump_cache_check(&c));
    /* One more round: a task that outgrew the warm chunk leaves a chunk that
     * holds a whole task. Then a taken bump starts warm and obtains nothing. */
    ca_bump w;
    ca_bump_cache_take(&c, &w);
    for (int k = 0; k < 3000; k++)
        ca_bump_alloc(&w, 64, 8);
    ca_bump_cache_put(&c, &w);
    long obtains = ts.obtains;
    ca_bump_cache_take(&c, &w);
    cr_assert_not_null(w.chunk);
    for (int k = 0; k < 3000; k++)
        ca_bump_alloc(&w, 64, 8);
    cr_assert_eq(ts.obtains, obtains, "warm chunk did not serve the task");
    norder = 0;
    ca_bump_alloc_dtor(&w, 8, 8, dtor, NULL);
    ca_bump_cache_put(&c, &w);
    cr_assert_eq(norder, 1, "put runs destructors");
    ca_stats st;
    ca_bump_cache_stats(&c, &st);
    uint64_t hits = 0;
    ca_stats_get_counter(&st, "warm_hits", &hits);
    cr_assert_eq(hits, 2);
    ca_bump_cache_destroy(&c);
    cr_assert_eq(ts.live, 0);
}

Test(basic, shared_tip_free_and_resize)
{
    ca_bump_shared s;
    ca_bump_shared_init(&s, &ts.base, NULL);
    void *p = ca_bump_shared_alloc(&s, 40, 8);
    ca_bump_shared_free(&s, p, 40);
    cr_assert_eq(ca_bump_shared_alloc(&s, 40, 8), p, "shared tip free must reclaim (correct CAS)");
    char *q = (char *)ca_bump_shared_resize(&s, p, 40, 400, 8, CA_RESIZE_IN_PLACE);
    cr_assert_eq(q, p);
    cr_assert_eq(ca_bump_shared_resize(&s, p, 400, 16, 8, 0), p);
    cr_assert_eq(ca_bump_shared_alloc(&s, 16, 8), (char *)p + 16);
    void *big = ca_bump_shared_alloc(&s, 1 << 20, 4096);
    cr_assert(big && ca_is_aligned((uintptr_t)big, 4096));
    long live = ts.live;
    ca_bump_shared_free(&s, big, 1 << 20);
    cr_assert_eq(ts.live, live - 1);
    void *a64 = ca_bump_shared_alloc(&s, 10, 64);
    cr_assert(ca_is_aligned((uintptr_t)a64, 64));
    errno = 0;
    cr_assert_null(ca_bump_shared_alloc(&s, 10, 48));
    cr_assert_eq(errno, EINVAL);
    cr_assert_null(ca_bump_shared_check(&s));
    ca_bump_shared_destroy(&s);
}

Test(basic, init_errors)
{
    ca_bump x;
    ca_bump_shared s;
    ca_bump_cache c;
    ca_bump_options bad = {1 << 20, 4096};
    cr_assert_eq(ca_bump_init(NULL, &ts.base, NULL), EINVAL);
    cr_assert_eq(ca_bump_init_allocator(&x, NULL, NULL), EINVAL);
    cr_assert_eq(ca_bump_init_allocator(&x, ca_libc_allocator(), &bad), EINVAL);
    cr_assert_eq(ca_bump_init_local(&x, NULL, NULL), EINVAL);
    cr_assert_eq(ca_bump_init_fixed_source(&x, NULL, 4096), EINVAL);
    cr_assert_eq(ca_bump_init_fixed_source(&x, &ts.base, 0), EINVAL);
    cr_assert_eq(ca_bump_shared_init(&s, NULL, NULL), EINVAL);
    cr_assert_eq(ca_bump_shared_init_allocator(&s, ca_libc_allocator(), &bad), EINVAL);
    cr_assert_eq(ca_bump_cache_init(&c, NULL, NULL, 1), EINVAL);
    cr_assert_eq(ca_bump_cache_init_allocator(&c, ca_libc_allocator(), &bad, 1), EINVAL);
    cr_assert_eq(ca_bump_cache_take(NULL, &x), EINVAL);
    ts.fail_after = 0;
    cr_assert_eq(ca_bump_init_fixed_source(&x, &ts.base, 4096), ENOMEM);
    ts.fail_after = -1;
    /* Options are honoured: the first chunk has min_chunk bytes. */
    ca_bump_options o = {64 << 10, 1 << 20};
    ca_bump_init(&x, &ts.base, &o);
    ca_bump_alloc(&x, 8, 8);
    cr_assert_eq(x.chunk->size, 64 << 10);
    for (int i = 0; i < 100000; i++)
        ca_bump_alloc(&x, 64, 8);
    for (ca_bump_chunk *k = x.chunk; k; k = k->prev)
        cr_assert_leq(k->size, 1 << 20, "max_chunk caps regular chunks");
    ca_bump_destroy(&x);
}

Test(basic, owns_and_foreign)
{
    void *p = ca_bump_alloc(&b, 10, 8);
    void *big = ca_bump_alloc(&b, 1 << 20, 8);
    int local;
    cr_assert(ca_bump_owns(&b, p) && ca_bump_owns(&b, big));
    cr_assert_not(ca_bump_owns(&b, &local));
    cr_assert_not(ca_bump_owns(&b, NULL));
    ca_bump_free(&b, NULL, 10);
    cr_assert_null(ca_bump_check(&b));
}

/* ---- sources with a fixed granule (one slot per obtain) ---------------------- */

/* Allocate 64-byte blocks until the bump has obtained `chunks` chunks; every
 * allocation must succeed and every chunk must be exactly one slot. */
static void grow_over_slots(ca_bump *x, size_t slot, uint64_t chunks)
{
    ca_stats st;
    uint64_t got = 0;
    for (long i = 0; got < chunks; i++) {
        errno = 0;
        void *p = ca_bump_alloc(x, 64, 8);
        cr_assert_not_null(p, "allocation %ld failed with errno %d after %llu chunks", i, errno,
                           (unsigned long long)got);
        memset(p, 0x5a, 64);
        ca_bump_stats(x, &st);
        ca_stats_get_counter(&st, "chunks_obtained", &got);
    }
    for (ca_bump_chunk *k = x->chunk; k; k = k->prev) {
        cr_assert_eq(k->size, slot, "chunk of %zu bytes over %zu-byte slots", k->size, slot);
        cr_assert(ca_is_aligned((uintptr_t)k, slot));
    }
    cr_assert_null(ca_bump_check(x));
}

Test(slots, growing_bump_passes_third_chunk)
{
    test_slot_source ss;
    test_slot_source_init(&ss, 64 << 10);
    ca_bump x;
    cr_assert_eq(ca_bump_init(&x, &ss.base, NULL), 0);
    grow_over_slots(&x, 64 << 10, 6);
    ca_bump_reset(&x);
    grow_over_slots(&x, 64 << 10, 8);
    cr_assert_eq(ss.refused, 1, "the one-slot limit is learned once (%ld refusals)", ss.refused);
    ca_bump_destroy(&x);
    cr_assert_eq(ss.live, 0);
}

Test(slots, slot_smaller_than_a_page)
{
    test_slot_source ss;
    test_slot_source_init(&ss, 1024);
    ca_bump x;
    cr_assert_eq(ca_bump_init(&x, &ss.base, NULL), 0);
    grow_over_slots(&x, 1024, 6);
    /* A block that cannot fit one slot is ENOMEM, and the bump goes on. */
    errno = 0;
    cr_assert_null(ca_bump_alloc(&x, 2000, 8));
    cr_assert_eq(errno, ENOMEM);
    cr_assert_not_null(ca_bump_alloc(&x, 500, 8), "oversized request that fits a slot");
    cr_assert_null(ca_bump_check(&x));
    ca_bump_destroy(&x);
    cr_assert_eq(ss.live, 0);
}

Test(slots, oversized_requests_within_and_beyond_a_slot)
{
    test_slot_source ss;
    test_slot_source_init(&ss, 64 << 10);
    ca_bump x;
    cr_assert_eq(ca_bump_init(&x, &ss.base, NULL), 0);
    grow_over_slots(&x, 64 << 10, 3);
    void *p = ca_bump_alloc(&x, 60 << 10, 16);
    cr_assert_not_null(p, "a 60 KiB block fits one 64 KiB slot (errno %d)", errno);
    memset(p, 1, 60 << 10);
    errno = 0;
    cr_assert_null(ca_bump_alloc(&x, 64 << 10, 16), "a block larger than a slot's room");
    cr_assert_eq(errno, ENOMEM, "errno %d", errno);
    errno = 0;
    cr_assert_null(ca_bump_alloc(&x, 1 << 20, 16));
    cr_assert_eq(errno, ENOMEM, "errno %d", errno);
    cr_assert_not_null(ca_bump_alloc(&x, 64, 8));
    cr_assert_null(ca_bump_check(&x));
    ca_bump_destroy(&x);
    cr_assert_eq(ss.live, 0);
}

Test(slots, shared_and_local_bumps_over_slots)
{
    test_slot_source ss;
    test_slot_source_init(&ss, 64 << 10);
    ca_bump_shared s;
    cr_assert_eq(ca_bump_shared_init(&s, &ss.base, NULL), 0);
    for (int i = 0; i < 20000; i++)
        cr_assert_not_null(ca_bump_shared_alloc(&s, 48, 8), "shared allocation %d: errno %d", i, errno);
    for (ca_bump_chunk *k = s.current; k; k = k->prev)
        cr_assert_eq(k->size, 64 << 10);
    cr_assert_null(ca_bump_shared_check(&s));
    ca_bump x;
    cr_assert_eq(ca_bump_init_local(&x, &s, NULL), 0);
    for (int i = 0; i < 2000; i++)
        cr_assert_not_null(ca_bump_alloc(&x, 64, 8), "local allocation %d: errno %d", i, errno);
    cr_assert_null(ca_bump_check(&x));
    ca_bump_destroy(&x);
    ca_bump_shared_destroy(&s);
    cr_assert_eq(ss.live, 0);
}

Test(slots, warm_cache_over_slots)
{
    test_slot_source ss;
    test_slot_source_init(&ss, 64 << 10);
    ca_bump_cache c;
    cr_assert_eq(ca_bump_cache_init(&c, &ss.base, NULL, 2), 0);
    for (int round = 0; round < 3; round++) {
        ca_bump x;
        cr_assert_eq(ca_bump_cache_take(&c, &x), 0);
        grow_over_slots(&x, 64 << 10, 4);
        ca_bump_cache_put(&c, &x);
    }
    cr_assert_eq(ss.refused, 1, "bumps taken later start with the learned limit (%ld refusals)", ss.refused);
    cr_assert_null(ca_bump_cache_check(&c));
    ca_bump_cache_destroy(&c);
    cr_assert_eq(ss.live, 0);
}

#if BUMP_TEST_HAVE_SOURCE
#include <ctxalloc/source.h>

/* The reported case: a growing bump over libsource's slot arena (64 KiB
 * slots) failed at its third chunk with EINVAL. */
Test(slots, libsource_slot_arena_third_chunk)
{
    ca_source_slots sl;
    ca_source_slots_options so = {0};
    so.slot_size = 64 << 10;
    so.chunk_size = 8 * (64 << 10);
    cr_assert_eq(ca_source_slots_init(&sl, ca_source_mmap_global(), &so), 0);
    ca_bump x;
    cr_assert_eq(ca_bump_init(&x, &sl.base, NULL), 0);
    grow_over_slots(&x, 64 << 10, 12);
    ca_bump_reset(&x);
    grow_over_slots(&x, 64 << 10, 14);
    ca_bump_destroy(&x);
    cr_assert_eq(ca_source_slots_free_count(&sl), sl.nchunks * 7, "every slot back in the arena");
    ca_bump_shared s;
    cr_assert_eq(ca_bump_shared_init(&s, &sl.base, NULL), 0);
    for (int i = 0; i < 20000; i++)
        cr_assert_not_null(ca_bump_shared_alloc(&s, 48, 8), "shared allocation %d: errno %d", i, errno);
    ca_bump_shared_destroy(&s);
    ca_source_slots_destroy(&sl);
}
#endif
