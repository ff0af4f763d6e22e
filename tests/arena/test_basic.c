/* SPDX-License-Identifier: MIT */
/* libarena behaviour per feature: rewinds, each free-list kind's order and
 * choice, minimum segment, coalescing (rewind through, compact), resize,
 * reset, statistics, 64-bit offsets beyond 4 GiB. */
#include <criterion/criterion.h>
#include <ctxalloc/arena.h>
#include <ctxalloc/source.h>

#include "arena_internal.h"
#include "ca_test.h"

static ca_arena *make(ca_arena_freelist kind, unsigned bits, size_t min_segment)
{
    ca_arena_options o;
    ca_arena_options_init(&o);
    o.freelist = kind;
    o.offset_bits = bits;
    o.min_segment = min_segment;
    o.capacity = 4u << 20;
    o.local_cache = CA_ARENA_LOCAL_CACHE_OFF; /* the shared cursor and list alone: their exact rules (test_cache: the caches) */
    ca_arena *a = NULL;
    cr_assert_eq(ca_arena_create(&a, &o), 0);
    return a;
}

static uint64_t al(ca_arena *a, size_t size)
{
    uint64_t off = 0;
    cr_assert_eq(ca_arena_alloc(a, size, 16, &off), 0, "alloc %zu", size);
    cr_assert_null(ca_arena_check(a), "%s", ca_arena_check(a));
    return off;
}

static void fr(ca_arena *a, uint64_t off, size_t size)
{
    cr_assert_eq(ca_arena_free(a, off, size), 0);
    cr_assert_null(ca_arena_check(a), "%s", ca_arena_check(a));
}

static uint64_t counter(ca_arena *a, const char *name)
{
    ca_stats st;
    uint64_t v = 0;
    ca_arena_stats(a, &st);
    cr_assert(ca_stats_get_counter(&st, name, &v), "no counter %s", name);
    return v;
}

Test(arena_basic, tail_free_rewinds)
{
    for (unsigned bits = 32; bits <= 64; bits += 32) {
        ca_arena *a = make(CA_ARENA_FREELIST_NONE, bits, 32);
        uint64_t d = ca_arena_data_start(a);
        uint64_t x = al(a, 100), y = al(a, 50);
        cr_assert_eq(x, d);
        cr_assert_eq(y, d + 112);
        cr_assert_eq(ca_arena_cursor(a), d + 112 + 64);
        fr(a, y, 50);
        cr_assert_eq(ca_arena_cursor(a), d + 112);
        fr(a, x, 100);
        cr_assert_eq(ca_arena_cursor(a), d);
        cr_assert_eq(counter(a, "rewinds"), 2);
        ca_arena_close(a);
    }
}

Test(arena_basic, none_discards)
{
    ca_arena *a = make(CA_ARENA_FREELIST_NONE, 64, 32);
    uint64_t x = al(a, 64);
    al(a, 16);
    fr(a, x, 64);
    cr_assert_eq(counter(a, "discarded"), 64);
    cr_assert_eq(counter(a, "free_segments"), 0);
    /* the discarded bytes are not reused */
    cr_assert_neq(al(a, 64), x);
    ca_arena_close(a);
}

Test(arena_basic, optimistic_largest_first_pops_head)
{
    ca_arena *a = make(CA_ARENA_FREELIST_OPTIMISTIC, 64, 32);
    uint64_t s[6];
    size_t sz[6] = {64, 16, 256, 16, 128, 16};
    for (int i = 0; i < 6; i++)
        s[i] = al(a, sz[i]);
    al(a, 16); /* keeps the others off the tail */
    fr(a, s[0], 64);
    fr(a, s[2], 256);
    fr(a, s[4], 128);
    cr_assert_eq(counter(a, "free_segments"), 3);
    /* head is the largest: 256 */
    uint64_t h = ca_arena__tw_load(a, 0).off;
    cr_assert_eq(h, s[2]);
    /* a 48-byte request takes the head (largest), remainder 256-48 goes back */
    uint64_t p = al(a, 48);
    cr_assert_eq(p, s[2]);
    cr_assert_eq(counter(a, "free_bytes"), 64 + 128 + 208);
    /* a request bigger than the head falls back to the cursor */
    uint64_t cur = ca_arena_cursor(a);
    uint64_t q = al(a, 1024);
    cr_assert_eq(q, cur);
    ca_arena_close(a);
}

Test(arena_basic, pessimistic_best_fit)
{
    ca_arena *a = make(CA_ARENA_FREELIST_PESSIMISTIC, 32, 32);
    uint64_t s[6];
    size_t sz[6] = {256, 16, 64, 16, 128, 16};
    for (int i = 0; i < 6; i++)
        s[i] = al(a, sz[i]);
    al(a, 16);
    fr(a, s[0], 256);
    fr(a, s[2], 64);
    fr(a, s[4], 128);
    cr_assert_eq(ca_arena__tw_load(a, 0).off, s[2], "smallest first");
    cr_assert_eq(al(a, 100), s[4], "best fit for 100 is the 128 segment");
    cr_assert_eq(al(a, 64), s[2], "exact fit");
    cr_assert_eq(al(a, 200), s[0]);
    cr_assert_eq(counter(a, "free_segments"), 1); /* 256 - 208 = 48 kept */
    cr_assert_eq(counter(a, "discarded"), 16);      /* 128 - 112 < min_segment */
    ca_arena_close(a);
}

Test(arena_basic, min_segment_discards_small_pieces)
{
    ca_arena *a = make(CA_ARENA_FREELIST_PESSIMISTIC, 64, 64);
    uint64_t x = al(a, 32);
    al(a, 16);
    fr(a, x, 32); /* below 64: discarded */
    cr_assert_eq(counter(a, "discarded"), 32);
    uint64_t y = al(a, 128);
    al(a, 16);
    fr(a, y, 128);
    cr_assert_eq(al(a, 96), y); /* remainder 32 < 64: discarded */
    cr_assert_eq(counter(a, "discarded"), 64);
    cr_assert_eq(counter(a, "free_segments"), 0);
    ca_arena_close(a);
}

Test(arena_basic, rewind_through_free_segments)
{
    for (int k = CA_ARENA_FREELIST_OPTIMISTIC; k <= CA_ARENA_FREELIST_PESSIMISTIC; k++) {
        ca_arena *a = make((ca_arena_freelist)k, 64, 32);
        uint64_t d = ca_arena_data_start(a);
        uint64_t x = al(a, 64), y = al(a, 64), z = al(a, 64);
        fr(a, x, 64);
        fr(a, y, 64);
        cr_assert_eq(counter(a, "free_segments"), 2);
        fr(a, z, 64); /* tail: rewinds through y and x */
        cr_assert_eq(ca_arena_cursor(a), d);
        cr_assert_eq(counter(a, "free_segments"), 0);
        ca_arena_close(a);
    }
}

Test(arena_basic, compact_merges_and_returns_tail)
{
    for (int k = CA_ARENA_FREELIST_OPTIMISTIC; k <= CA_ARENA_FREELIST_PESSIMISTIC; k++) {
        ca_arena *a = make((ca_arena_freelist)k, 64, 32);
        uint64_t o[8];
        for (int i = 0; i < 8; i++)
            o[i] = al(a, 64);
        uint64_t keep = al(a, 64);
        uint64_t after = al(a, 64);
        for (int i = 0; i < 8; i++)
            fr(a, o[i], 64);
        cr_assert_eq(counter(a, "free_segments"), 8);
        cr_assert_eq(ca_arena_compact(a), 0);
        cr_assert_null(ca_arena_check(a));
        cr_assert_eq(counter(a, "free_segments"), 1);
        cr_assert_eq(counter(a, "free_bytes"), 8 * 64);
        /* the merged segment serves a request none of the pieces could */
        cr_assert_eq(al(a, 500), o[0]);
        /* trailing free segments go back to the cursor */
        fr(a, keep, 64);
        cr_assert_eq(ca_arena_compact(a), 0);
        cr_assert_eq(ca_arena_cursor(a), after + 64);
        fr(a, after, 64);
        cr_assert_eq(ca_arena_cursor(a), keep, "rewound through the merged segment");
        ca_arena_close(a);
    }
}

Test(arena_basic, resize_in_place_at_tail)
{
    ca_arena *a = make(CA_ARENA_FREELIST_OPTIMISTIC, 64, 32);
    ca_allocator *al_ = ca_arena_allocator(a);
    char *p = (char *)ca_alloc(al_, 100, 16);
    memset(p, 1, 100);
    char *q = (char *)ca_resize(al_, p, 100, 1000, 16, CA_RESIZE_IN_PLACE);
    cr_assert_eq(q, p);
    cr_assert_eq(ca_arena_cursor(a), ca_arena_data_start(a) + 1008);
    q = (char *)ca_resize(al_, p, 1000, 10, 16, CA_RESIZE_IN_PLACE);
    cr_assert_eq(q, p);
    cr_assert_eq(ca_arena_cursor(a), ca_arena_data_start(a) + 16);
    char *r = (char *)ca_alloc(al_, 16, 16);
    errno = 0;
    cr_assert_null(ca_resize(al_, p, 10, 100, 16, CA_RESIZE_IN_PLACE));
    cr_assert_eq(errno, ENOMEM);
    q = (char *)ca_resize(al_, p, 10, 100, 16, 0);
    cr_assert(q && q != p && q[0] == 1);
    ca_free(al_, r, 16, 16);
    ca_free(al_, q, 100, 16);
    cr_assert_null(ca_arena_check(a));
    ca_arena_close(a);
}

Test(arena_basic, reset_and_stats)
{
    ca_arena *a = make(CA_ARENA_FREELIST_OPTIMISTIC, 64, 32);
    uint64_t x = al(a, 64);
    al(a, 64);
    fr(a, x, 64);
    ca_stats st;
    ca_arena_stats(a, &st);
    cr_assert_eq(st.allocs, 2);
    cr_assert_eq(st.frees, 1);
    cr_assert_eq(st.bytes_in_use, 64);
    cr_assert_eq(st.peak_in_use, 128);
    cr_assert_eq(st.bytes_reserved, ca_arena_capacity(a));
    cr_assert_eq(ca_reset(ca_arena_allocator(a)), 0);
    cr_assert_eq(ca_arena_cursor(a), ca_arena_data_start(a));
    cr_assert_null(ca_arena_check(a));
    ca_arena_stats(a, &st);
    cr_assert_eq(st.bytes_in_use, 0);
    ca_arena_close(a);
}

Test(arena_basic, beyond_4gib_with_64bit_offsets)
{
    ca_source_mmap ms;
    ca_source_mmap_options mo;
    memset(&mo, 0, sizeof mo);
    mo.flags = CA_SOURCE_MMAP_NORESERVE;
    cr_assert_eq(ca_source_mmap_init(&ms, &mo), 0);
    ca_arena_options o;
    ca_arena_options_init(&o);
    o.capacity = (uint64_t)6 << 30;
    o.source = &ms.base;
    o.freelist = CA_ARENA_FREELIST_PESSIMISTIC;
    o.local_cache = CA_ARENA_LOCAL_CACHE_OFF;
    ca_arena *a = NULL;
    cr_assert_eq(ca_arena_create(&a, &o), 0);
    uint64_t big, x, y;
    cr_assert_eq(ca_arena_alloc(a, (size_t)5 << 30, 16, &big), 0);
    cr_assert_eq(ca_arena_alloc(a, 64, 16, &x), 0);
    cr_assert_eq(ca_arena_alloc(a, 64, 16, &y), 0);
    cr_assert_gt(x, (uint64_t)4 << 30);
    memset(ca_arena_ptr(a, x), 7, 64);
    cr_assert_eq(ca_arena_free(a, x, 64), 0);
    uint64_t z;
    cr_assert_eq(ca_arena_alloc(a, 64, 16, &z), 0);
    cr_assert_eq(z, x, "free list with offsets above 4 GiB");
    cr_assert_null(ca_arena_check(a));
    ca_arena_close(a);
    ca_source_mmap_destroy(&ms);
}

Test(arena_basic, allocator_view_alignments)
{
    ca_arena *a = make(CA_ARENA_FREELIST_PESSIMISTIC, 64, 32);
    ca_allocator *al_ = ca_arena_allocator(a);
    void *p[13];
    for (unsigned i = 0; i < 13; i++) {
        p[i] = ca_alloc(al_, 24, (size_t)1 << i);
        cr_assert(p[i] && ca_is_aligned((uintptr_t)p[i], (size_t)1 << i));
    }
    for (unsigned i = 0; i < 13; i++)
        ca_free(al_, p[i], 24, (size_t)1 << i);
    cr_assert_null(ca_arena_check(a), "%s", ca_arena_check(a));
    ca_arena_close(a);
}

Test(arena_basic, exhausted_cursor_compacts_before_enomem)
{
    for (int k = CA_ARENA_FREELIST_OPTIMISTIC; k <= CA_ARENA_FREELIST_PESSIMISTIC; k++) {
        ca_arena_options opt;
        ca_arena_options_init(&opt);
        opt.freelist = (ca_arena_freelist)k;
        opt.capacity = 256u << 10;
        opt.local_cache = CA_ARENA_LOCAL_CACHE_OFF;
        ca_arena *a = NULL;
        cr_assert_eq(ca_arena_create(&a, &opt), 0);
        static uint64_t o[8192];
        int n = 0;
        while (n < 8192 && ca_arena_alloc(a, 64, 16, &o[n]) == 0)
            n++;
        cr_assert_lt(n, 8192, "filled");
        uint64_t x;
        cr_assert_eq(ca_arena_alloc(a, 64, 16, &x), ENOMEM, "cursor exhausted");
        for (int i = 10; i < 40; i++) /* adjacent 64-byte holes, none fits 1 KiB alone */
            fr(a, o[i], 64);
        cr_assert_eq(ca_arena_alloc(a, 1024, 16, &x), 0, "kind %d: free neighbours merged on demand", k);
        cr_assert_eq(x, o[10]);
        cr_assert_null(ca_arena_check(a));
        cr_assert_eq(ca_arena_alloc(a, 4096, 16, &x), ENOMEM, "nothing large enough left");
        ca_arena_close(a);
    }
}
