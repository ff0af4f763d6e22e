/* SPDX-License-Identifier: MIT */
/* Thread caches (cache.c) and the allocation order: a pair stays in the
 * thread's chunk, a freed block comes back from its bin (reuse first) or not
 * (fresh first), overlong bins reach the shared bins and come back from
 * there, frees of mixed sizes that overflow the cache keep off the sorted
 * list, a damaged shared bin is reported by the check, a thread's exit and
 * the arena's close give everything back, reset forgets it, an exhausted
 * arena drains the caller's cache before ENOMEM, more arenas than table
 * slots still work, and a file flushed or closed with caches and shared bins
 * records all of it. ca_arena_check() after every step (private header: the
 * cache counters and the shared bins). */
#include <criterion/criterion.h>
#include <ctxalloc/arena.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "arena_internal.h"
#include "ca_test.h"

static ca_arena *make(ca_arena_freelist kind, ca_arena_order order, uint64_t capacity)
{
    ca_arena_options o;
    ca_arena_options_init(&o);
    o.freelist = kind;
    o.order = order;
    o.capacity = capacity;
    ca_arena *a = NULL;
    cr_assert_eq(ca_arena_create(&a, &o), 0);
    return a;
}

/* A file arena (REPLACE) on a new temporary file named from the template
 * path (which receives the name); capacity 0: the default. */
static ca_arena *make_file(char *path, uint64_t capacity)
{
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
    ca_arena_options o;
    ca_arena_options_init(&o);
    o.flags = CA_ARENA_REPLACE;
    o.capacity = capacity;
    ca_arena *a = NULL;
    cr_assert_eq(ca_arena_create_file(&a, path, &o, NULL), 0);
    return a;
}

static uint64_t counter(ca_arena *a, const char *name)
{
    ca_stats s;
    ca_arena_stats(a, &s);
    uint64_t v = 0;
    cr_assert(ca_stats_get_counter(&s, name, &v), "%s", name);
    return v;
}

static void ok(ca_arena *a)
{
    const char *why = ca_arena_check(a);
    cr_assert_null(why, "%s", why);
}

static uint64_t al(ca_arena *a, size_t size)
{
    uint64_t off = 0;
    cr_assert_eq(ca_arena_alloc(a, size, 16, &off), 0, "alloc %zu", size);
    return off;
}

Test(arena_cache, options)
{
    ca_arena_options o;
    ca_arena_options_init(&o);
    cr_assert_eq(o.order, CA_ARENA_REUSE_FIRST);
    cr_assert_eq(o.local_cache, 0, "0: the default size");
    ca_arena *a = NULL;
    cr_assert_eq(ca_arena_create(&a, &o), 0);
    cr_assert_gt(a->local_cache, 0, "thread caches by default");
    ca_arena_close(a);
    o.order = (ca_arena_order)7;
    a = NULL;
    cr_assert_eq(ca_arena_create(&a, &o), EINVAL);
    cr_assert_null(a);
}

Test(arena_cache, pair_stays_in_the_chunk)
{
    ca_arena *a = make(CA_ARENA_FREELIST_OPTIMISTIC, CA_ARENA_REUSE_FIRST, 4u << 20);
    uint64_t x = al(a, 100);
    ca_arena_free(a, x, 100);
    uint64_t cur = ca_arena_cursor(a);
    cr_assert_gt(cur, ca_arena_data_start(a) + 112, "a chunk was reserved");
    ca_rng r = {ca_test_seed()};
    for (int i = 0; i < 10000; i++) {
        size_t s = 1 + (size_t)ca_rng_below(&r, 4096);
        uint64_t y = al(a, s);
        cr_assert_eq(y, x, "the chunk's tail is reused");
        ca_test_fill(ca_arena_ptr(a, y), s, y);
        ca_arena_free(a, y, s);
    }
    cr_assert_eq(ca_arena_cursor(a), cur, "the shared cursor was not touched");
    cr_assert_eq(counter(a, "caches"), 1);
    cr_assert_eq(counter(a, "cached_bytes"), 0);
    ok(a);
    ca_stats s;
    ca_arena_stats(a, &s);
    cr_assert_eq(s.bytes_in_use, 0);
    cr_assert_eq(s.allocs, s.frees);
    ca_arena_close(a);
}

/* A block freed away from the tail comes back at once with REUSE_FIRST, and
 * only once the fresh memory is gone with FRESH_FIRST. */
Test(arena_cache, order_reuse_first_and_fresh_first)
{
    for (int k = CA_ARENA_FREELIST_OPTIMISTIC; k <= CA_ARENA_FREELIST_PESSIMISTIC; k++) {
        ca_arena *a = make((ca_arena_freelist)k, CA_ARENA_REUSE_FIRST, 4u << 20);
        uint64_t x = al(a, 64), y = al(a, 64);
        (void)y;
        ca_arena_free(a, x, 64);
        cr_assert_eq(counter(a, "cached_bytes"), 64);
        ok(a);
        cr_assert_eq(al(a, 64), x, "kind %d: reuse first takes the freed block", k);
        ok(a);
        ca_arena_close(a);

        a = make((ca_arena_freelist)k, CA_ARENA_FRESH_FIRST, 256u << 10);
        x = al(a, 64);
        y = al(a, 64);
        ca_arena_free(a, x, 64);
        uint64_t z = al(a, 64);
        cr_assert_neq(z, x, "kind %d: fresh first takes new memory", k);
        cr_assert_gt(z, y);
        int n = 0;
        uint64_t got = 0;
        while (ca_arena_alloc(a, 64, 16, &got) == 0 && got != x)
            n++;
        cr_assert_eq(got, x, "kind %d: the freed block comes back once the cursor is exhausted (%d allocs)", k, n);
        ok(a);
        ca_arena_close(a);
    }
}

/* More than CA_ARENA__BIN_MAX frees of one size: the bin goes to the shared
 * bin of its size in one chain (the sorted list is not touched), the next
 * allocations of that size take it back, and a compaction folds what is left
 * into the list. */
Test(arena_cache, long_bin_reaches_the_shared_bins)
{
    /* 256 KiB: 4 KiB chunks, so the thread's chunk runs out below */
    ca_arena *a = make(CA_ARENA_FREELIST_OPTIMISTIC, CA_ARENA_REUSE_FIRST, 256u << 10);
    enum { N = 3 * CA_ARENA__BIN_MAX };
    static uint64_t b[N];
    for (int i = 0; i < N; i++)
        b[i] = al(a, 48);
    uint64_t keep = al(a, 48); /* no free below is at a tail */
    for (int i = 0; i < N; i++) {
        ca_arena_free(a, b[i], 48);
        ok(a);
    }
    cr_assert_leq(counter(a, "cached_bytes"), 48 * CA_ARENA__BIN_MAX);
    uint64_t shared = counter(a, "shared_bin_bytes");
    cr_assert_gt(shared, 0, "the overflow went to the shared bins");
    cr_assert_eq(counter(a, "free_segments") + counter(a, "pending_segments"), 0,
                 "the sorted list was not touched");
    cr_assert_eq(counter(a, "list_steps"), 0);
    uint64_t cur = ca_arena_cursor(a);
    for (int i = 0; i < N; i++) {
        b[i] = al(a, 48); /* the thread's bin and chunk, then chains popped from the shared bin */
        ok(a);
    }
    cr_assert_lt(counter(a, "shared_bin_bytes"), shared, "the shared bin served allocations");
    cr_assert_eq(ca_arena_cursor(a), cur, "no fresh memory was needed");
    for (int i = 0; i < N; i++)
        ca_arena_free(a, b[i], 48);
    ca_arena_compact(a);
    ok(a);
    cr_assert_eq(counter(a, "shared_bin_bytes"), 0, "the compaction folded the shared bins");
    cr_assert_gt(counter(a, "bin_folds"), 0);
    cr_assert_gt(counter(a, "free_bytes"), 0);
    ca_arena_free(a, keep, 48);
    ok(a);
    ca_arena_close(a);
}

/* The workload of the `mixed` benchmark: rounds of 256 allocations of 16 B -
 * 4 KiB, freed in a shuffled order. The frees overflow the thread cache; the
 * shared bins take them in O(1), so the sorted list does a bounded amount of
 * work per free (it walked, sorted and merged about 28 nodes per free when
 * the overflow went to the list), and the footprint stays a few times the
 * live bytes. */
Test(arena_cache, mixed_frees_keep_off_the_sorted_list)
{
    ca_arena *a = make(CA_ARENA_FREELIST_OPTIMISTIC, CA_ARENA_REUSE_FIRST, 64u << 20);
    enum { B = 256 };
    /* checks=full walks the arena after every call: fewer rounds */
    const int ROUNDS = CA_CHECKS >= CA_CHECKS_FULL ? 80 : 200;
    static uint64_t o[B];
    static size_t s[B];
    static unsigned sh[B];
    ca_rng r = {ca_test_seed()};
    for (int round = 0; round < ROUNDS; round++) {
        for (int k = 0; k < B; k++) {
            s[k] = 16 + (size_t)ca_rng_below(&r, 4081);
            o[k] = al(a, s[k]);
            ca_test_fill(ca_arena_ptr(a, o[k]), s[k], o[k]);
            sh[k] = (unsigned)k;
        }
        for (int k = B - 1; k > 0; k--) {
            unsigned j = (unsigned)ca_rng_below(&r, (uint64_t)k + 1), t = sh[k];
            sh[k] = sh[j];
            sh[j] = t;
        }
        for (int k = 0; k < B; k++) {
            cr_assert(ca_test_verify(ca_arena_ptr(a, o[sh[k]]), s[sh[k]], o[sh[k]]), "round %d", round);
            ca_arena_free(a, o[sh[k]], s[sh[k]]);
        }
        if (round % 50 == 0)
            ok(a);
    }
    ok(a);
    ca_stats st;
    ca_arena_stats(a, &st);
    uint64_t steps = counter(a, "list_steps"), used = ca_arena_cursor(a) - ca_arena_data_start(a);
    cr_log_info("list steps per free %.2f, shared bins %llu KiB, folds %llu, used %llu KiB\n",
                (double)steps / (double)st.frees, (unsigned long long)counter(a, "shared_bin_bytes") >> 10,
                (unsigned long long)counter(a, "bin_folds"), (unsigned long long)used >> 10);
    cr_assert_eq(st.frees, (uint64_t)B * (uint64_t)ROUNDS);
    cr_assert_leq(steps, 8 * st.frees, "the sorted list visited %.1f nodes per free",
                  (double)steps / (double)st.frees);
    cr_assert_leq(used, 8u << 20, "used %llu KiB for 1 MiB live at most", (unsigned long long)used >> 10);
    ca_arena_close(a);
}

/* Frees in bulk with no allocation between (here: 4 MiB freed in the order
 * of allocation, so the chunk never rewinds): once they have pushed more
 * than CA_ARENA__STREAK caches' worth onto the shared bins, the bins are
 * folded into the list and compacted, so the memory comes back as merged
 * runs (a few segments, not one pop per block), and allocating the same
 * blocks again takes little memory beyond the first high-water mark (the
 * last streak's blocks stay in the shared bins, by size). */
Test(arena_cache, bulk_frees_are_folded_into_merged_runs)
{
    ca_arena *a = make(CA_ARENA_FREELIST_OPTIMISTIC, CA_ARENA_REUSE_FIRST, 64u << 20);
    enum { N = 2048 };
    static uint64_t o[N];
    static size_t s[N];
    ca_rng r = {ca_test_seed()};
    for (int i = 0; i < N; i++) {
        s[i] = 16 + (size_t)ca_rng_below(&r, 4081);
        o[i] = al(a, s[i]);
    }
    uint64_t high = ca_arena_cursor(a);
    for (int i = 0; i < N; i++)
        ca_arena_free(a, o[i], s[i]);
    ok(a);
    cr_assert_gt(counter(a, "bin_folds"), 0, "the bulk frees were folded");
    cr_assert_lt(counter(a, "shared_bin_bytes"), 4 * (256u << 10), "at most one streak left in the shared bins");
    cr_assert_lt(counter(a, "free_segments"), 8, "merged runs: %llu segments",
                 (unsigned long long)counter(a, "free_segments"));
    for (int i = 0; i < N; i++)
        o[i] = al(a, s[i]);
    uint64_t used = high - ca_arena_data_start(a);
    cr_assert_leq(ca_arena_cursor(a), high + used / 8, "the same blocks again took little fresh memory");
    ok(a);
    for (int i = 0; i < N; i++)
        ca_arena_free(a, o[i], s[i]);
    ok(a);
    ca_arena_close(a);
}

/* ca_arena_check walks the shared bins: a block whose link was overwritten
 * after its free (here: pointing outside the arena) is reported. */
Test(arena_cache, check_reports_a_damaged_shared_bin)
{
    ca_arena *a = make(CA_ARENA_FREELIST_OPTIMISTIC, CA_ARENA_REUSE_FIRST, 4u << 20);
    enum { N = 2 * CA_ARENA__BIN_MAX };
    static uint64_t b[N];
    for (int i = 0; i < N; i++)
        b[i] = al(a, 64);
    uint64_t keep = al(a, 64);
    (void)keep;
    for (int i = 0; i < N; i++)
        ca_arena_free(a, b[i], 64);
    ok(a);
    unsigned bin = 64 / CA_ARENA_GRAIN - 1;
    uint64_t top = 0;
    for (unsigned set = 0; set < CA_ARENA__SBIN_SHARDS && !top; set++)
        top = a->sbin[set * CA_ARENA__BINS + bin].top.half[0];
    cr_assert_neq(top, 0, "a chain of 64-byte blocks is on the shared bin");
    uint64_t *link = (uint64_t *)ca_arena_ptr(a, top);
    uint64_t saved = link[0];
    link[0] = ca_arena_capacity(a) + 4096; /* a write after free */
    const char *why = ca_arena_check(a);
    cr_assert_not_null(why);
    cr_assert(strstr(why, "shared bin"), "%s", why);
    link[0] = saved;
    ok(a);
    ca_arena_close(a);
}

typedef struct worker {
    ca_arena *a;
    uint64_t seed;
    int alive_wait; /* 1: park until go is set (atomic) */
    int go;
    int parked;
} worker;

static void *work(void *p)
{
    worker *w = p;
    ca_rng r = {w->seed};
    uint64_t o[64];
    size_t s[64];
    for (int round = 0; round < 50; round++) {
        for (int i = 0; i < 64; i++) {
            s[i] = 1 + (size_t)ca_rng_below(&r, 2048);
            if (ca_arena_alloc(w->a, s[i], 16, &o[i]))
                abort();
            ca_test_fill(ca_arena_ptr(w->a, o[i]), s[i], o[i]);
        }
        for (int i = 0; i < 64; i += 2) /* every other block: frees away from the tail */
            if (!ca_test_verify(ca_arena_ptr(w->a, o[i]), s[i], o[i]) || ca_arena_free(w->a, o[i], s[i]))
                abort();
        for (int i = 1; i < 64; i += 2)
            if (!ca_test_verify(ca_arena_ptr(w->a, o[i]), s[i], o[i]) || ca_arena_free(w->a, o[i], s[i]))
                abort();
    }
    if (w->alive_wait) {
        __atomic_store_n(&w->parked, 1, __ATOMIC_RELEASE);
        while (!__atomic_load_n(&w->go, __ATOMIC_ACQUIRE))
            usleep(1000);
        /* the first arena is closed now: a new one must still work, and
         * the orphaned cache's slot is reused */
        for (int i = 0; i < CA_ARENA__TL_SLOTS + 2; i++) {
            ca_arena_options op;
            ca_arena_options_init(&op);
            ca_arena *b = NULL;
            if (ca_arena_create(&b, &op))
                abort();
            uint64_t x;
            if (ca_arena_alloc(b, 32, 16, &x) || ca_arena_free(b, x, 32) || ca_arena_check(b))
                abort();
            ca_arena_close(b);
        }
    }
    return NULL;
}

Test(arena_cache, thread_exit_gives_everything_back)
{
    if (CA_CHECKS >= CA_CHECKS_FULL) /* the exact walk after each operation wants one thread inside */
        cr_skip_test("checks=full: three threads on one arena (run at checks=on)");
    for (int k = CA_ARENA_FREELIST_NONE; k <= CA_ARENA_FREELIST_PESSIMISTIC; k++) {
        /* NONE discards every free away from a tail: room for all of it */
        ca_arena *a = make((ca_arena_freelist)k, CA_ARENA_REUSE_FIRST,
                          k != CA_ARENA_FREELIST_NONE ? 8u << 20 : 64u << 20);
        pthread_t t[3];
        worker w[3];
        for (int i = 0; i < 3; i++) {
            w[i] = (worker){a, ca_test_seed() + (uint64_t)i, 0, 0, 0};
            pthread_create(&t[i], NULL, work, &w[i]);
        }
        for (int i = 0; i < 3; i++)
            pthread_join(t[i], NULL);
        cr_assert_eq(counter(a, "caches"), 0, "kind %d", k);
        cr_assert_eq(counter(a, "cached_bytes"), 0);
        cr_assert_eq(counter(a, "chunk_bytes"), 0);
        ok(a);
        ca_stats s;
        ca_arena_stats(a, &s);
        cr_assert_eq(s.bytes_in_use, 0);
        cr_assert_eq(s.allocs, s.frees);
        cr_assert_eq(s.allocs, 3 * 50 * 64);
        if (k) {
            ca_arena_compact(a);
            ok(a);
            /* all of it is free or discarded (pieces below min_segment) */
            cr_assert_eq(counter(a, "free_bytes") + counter(a, "discarded"),
                         ca_arena_cursor(a) - ca_arena_data_start(a), "kind %d", k);
        }
        ca_arena_close(a);
    }
}

Test(arena_cache, close_while_a_thread_keeps_its_cache)
{
    ca_arena *a = make(CA_ARENA_FREELIST_OPTIMISTIC, CA_ARENA_REUSE_FIRST, 8u << 20);
    worker w = {a, ca_test_seed(), 1, 0, 0};
    pthread_t t;
    pthread_create(&t, NULL, work, &w);
    while (!__atomic_load_n(&w.parked, __ATOMIC_ACQUIRE))
        usleep(1000);
    cr_assert_eq(counter(a, "caches"), 1);
    ok(a);
    ca_arena_close(a); /* the parked thread's cache is drained and orphaned */
    __atomic_store_n(&w.go, 1, __ATOMIC_RELEASE);
    pthread_join(t, NULL);
}

Test(arena_cache, reset_forgets_the_caches)
{
    ca_arena *a = make(CA_ARENA_FREELIST_PESSIMISTIC, CA_ARENA_REUSE_FIRST, 4u << 20);
    uint64_t x = al(a, 200), y = al(a, 300);
    (void)y;
    ca_arena_free(a, x, 200);
    cr_assert_gt(counter(a, "cached_bytes"), 0);
    cr_assert_eq(ca_arena_reset(a), 0);
    cr_assert_eq(counter(a, "cached_bytes"), 0);
    cr_assert_eq(counter(a, "chunk_bytes"), 0);
    cr_assert_eq(ca_arena_cursor(a), ca_arena_data_start(a));
    ok(a);
    uint64_t z = al(a, 16);
    cr_assert_eq(z, ca_arena_data_start(a));
    ok(a);
    ca_arena_close(a);
}

/* The cursor runs out while the caller's cache holds free memory: the cache
 * goes back to the shared list, which is compacted, before ENOMEM. */
Test(arena_cache, exhausted_arena_drains_the_callers_cache)
{
    for (int k = CA_ARENA_FREELIST_OPTIMISTIC; k <= CA_ARENA_FREELIST_PESSIMISTIC; k++)
        for (int ord = 0; ord < 2; ord++) {
            ca_arena *a = make((ca_arena_freelist)k, (ca_arena_order)ord, 256u << 10);
            static uint64_t o[8192];
            int n = 0;
            while (n < 8192 && ca_arena_alloc(a, 64, 16, &o[n]) == 0)
                n++;
            cr_assert_gt(n, 1000);
            ok(a);
            for (int i = 0; i < n; i += 2)
                ca_arena_free(a, o[i], 64);
            for (int i = 1; i < n / 2; i += 2)
                ca_arena_free(a, o[i], 64); /* the lower half is free: 64 KiB runs */
            ok(a);
            uint64_t big;
            cr_assert_eq(ca_arena_alloc(a, 16u << 10, 16, &big), 0, "kind %d order %d: merged free memory", k, ord);
            ok(a);
            cr_assert_eq(ca_arena_alloc(a, 200u << 10, 16, &big), ENOMEM);
            ok(a);
            ca_arena_close(a);
        }
}

Test(arena_cache, more_arenas_than_table_slots)
{
    enum { N = CA_ARENA__TL_SLOTS + 4 };
    ca_arena *a[N];
    uint64_t x[N];
    for (int i = 0; i < N; i++) {
        a[i] = make(CA_ARENA_FREELIST_OPTIMISTIC, CA_ARENA_REUSE_FIRST, 1u << 20);
        x[i] = al(a[i], 32 + 16 * (size_t)i);
        ca_test_fill(ca_arena_ptr(a[i], x[i]), 32 + 16 * (size_t)i, (uint64_t)i);
    }
    for (int i = 0; i < N; i++) {
        cr_assert(ca_test_verify(ca_arena_ptr(a[i], x[i]), 32 + 16 * (size_t)i, (uint64_t)i));
        /* a full table gives its least recently used cache back */
        cr_assert_leq(counter(a[i], "caches"), 1, "arena %d", i);
        if (i == 0)
            cr_assert_eq(counter(a[0], "caches"), 0, "the first arena's cache was given back");
        ok(a[i]);
        ca_arena_free(a[i], x[i], 32 + 16 * (size_t)i);
        ok(a[i]);
        ca_stats s;
        ca_arena_stats(a[i], &s);
        cr_assert_eq(s.bytes_in_use, 0);
    }
    for (int i = 0; i < N; i++)
        ca_arena_close(a[i]);
}

Test(arena_cache, resize_at_the_chunk_tail)
{
    ca_arena *a = make(CA_ARENA_FREELIST_OPTIMISTIC, CA_ARENA_REUSE_FIRST, 4u << 20);
    ca_allocator *al_ = ca_arena_allocator(a);
    char *p = ca_alloc(al_, 100, 16);
    cr_assert_not_null(p);
    memset(p, 7, 100);
    char *q = ca_resize(al_, p, 100, 1000, 16, CA_RESIZE_IN_PLACE);
    cr_assert_eq(q, p, "grows in place at the chunk's tail");
    for (int i = 0; i < 100; i++)
        cr_assert_eq(q[i], 7);
    q = ca_resize(al_, q, 1000, 50, 16, 0);
    cr_assert_eq(q, p);
    ok(a);
    ca_free(al_, q, 50, 16);
    ok(a);
    ca_stats s;
    ca_arena_stats(a, &s);
    cr_assert_eq(s.bytes_in_use, 0);
    ca_arena_close(a);
}

/* A file closed while its thread caches hold memory: close gives it back
 * first, so the reopened file accounts for every byte and loses none. */
Test(arena_cache, file_close_records_the_caches)
{
    char path[] = "/tmp/ca-arena-cache-XXXXXX";
    ca_arena *a = make_file(path, 0);
    uint64_t all[64], keep[32];
    size_t live = 0;
    for (int i = 0; i < 64; i++) {
        all[i] = al(a, 48 + 16 * (size_t)(i % 5));
        ca_test_fill(ca_arena_ptr(a, all[i]), 48 + 16 * (size_t)(i % 5), all[i]);
    }
    for (int i = 0; i < 64; i++) {
        if (i % 2) {
            ca_arena_free(a, all[i], 48 + 16 * (size_t)(i % 5)); /* away from the tail: into the bins */
        } else {
            keep[i / 2] = all[i];
            live += 48 + 16 * (size_t)(i % 5);
        }
    }
    cr_assert_gt(counter(a, "cached_bytes") + counter(a, "chunk_bytes"), 0);
    ok(a);
    cr_assert_eq(ca_arena_close(a), 0);
    ca_arena_error why;
    cr_assert_eq(ca_arena_open_file(&a, path, CA_ARENA_READ_ONLY, NULL, &why), 0, "%s", ca_arena_strerror(why));
    ok(a);
    ca_stats s;
    ca_arena_stats(a, &s);
    cr_assert_eq(s.bytes_in_use, live, "in use %llu, live %zu", (unsigned long long)s.bytes_in_use, live);
    for (int i = 0; i < 32; i++)
        cr_assert(ca_test_verify(ca_arena_ptr(a, keep[i]), 48 + 16 * (size_t)((2 * i) % 5), keep[i]));
    ca_arena_close(a);
    unlink(path);
}

/* A flush while the shared bins hold blocks folds them into the list it
 * records: the file reopened from that flush (read-only, beside the open
 * arena) has them as free segments, and accounts for every byte. */
Test(arena_cache, file_flush_records_the_shared_bins)
{
    char path[] = "/tmp/ca-arena-sbin-XXXXXX";
    ca_arena *a = make_file(path, 4u << 20);
    enum { N = 2 * CA_ARENA__BIN_MAX };
    static uint64_t b[N];
    for (int i = 0; i < N; i++) {
        b[i] = al(a, 96);
        ca_test_fill(ca_arena_ptr(a, b[i]), 96, b[i]);
    }
    uint64_t keep = al(a, 96);
    ca_test_fill(ca_arena_ptr(a, keep), 96, keep);
    for (int i = 0; i < N; i++)
        ca_arena_free(a, b[i], 96);
    uint64_t shared = counter(a, "shared_bin_bytes"), cached = counter(a, "cached_bytes");
    cr_assert_gt(shared, 0);
    ok(a);
    cr_assert_eq(ca_arena_flush(a), 0);
    cr_assert_eq(counter(a, "shared_bin_bytes"), 0, "the flush folded the shared bins");
    cr_assert_eq(counter(a, "free_bytes"), shared);
    ok(a);
    ca_arena *r = NULL;
    ca_arena_error why;
    cr_assert_eq(ca_arena_open_file(&r, path, CA_ARENA_READ_ONLY, NULL, &why), 0, "%s", ca_arena_strerror(why));
    const char *bad = ca_arena_check(r);
    cr_assert_null(bad, "%s", bad);
    ca_stats s;
    ca_arena_stats(r, &s);
    cr_assert_eq(counter(r, "free_bytes"), shared, "the recorded list holds the shared bins' blocks");
    /* the thread's bins and chunk count as in use in the file (never handed
     * out twice): in use = live + cached + the chunk's rest */
    cr_assert_eq(s.bytes_in_use, 96 + cached + counter(a, "chunk_bytes"), "in use %llu",
                 (unsigned long long)s.bytes_in_use);
    cr_assert(ca_test_verify(ca_arena_ptr(r, keep), 96, keep));
    ca_arena_close(r);
    ca_arena_free(a, keep, 96);
    cr_assert_eq(ca_arena_close(a), 0);
    unlink(path);
}

/* A thread that exits drains its cache into a file arena with the cache
 * registry's lock held. When the arena's cursor moved past the thread's
 * chunk (another thread allocated since), the chunk's rest is given back
 * through the list token, which marks the file dirty: the lock order is
 * registry, token, file state (at checks=on a reverse order aborts naming
 * both locks). The file is clean (flushed) when the thread exits, so the
 * drain is what marks it. */
typedef struct exit_worker {
    ca_arena *a;
    int ready, go; /* atomic */
} exit_worker;

static void *file_exit_worker(void *p)
{
    exit_worker *w = p;
    uint64_t o[8];
    for (int i = 0; i < 8; i++)
        if (ca_arena_alloc(w->a, 64, 16, &o[i]))
            abort();
    for (int i = 1; i < 8; i += 2) /* away from the tail: into this thread's bins */
        if (ca_arena_free(w->a, o[i], 64))
            abort();
    __atomic_store_n(&w->ready, 1, __ATOMIC_RELEASE);
    while (!__atomic_load_n(&w->go, __ATOMIC_ACQUIRE))
        usleep(1000);
    return NULL; /* the exit drains the cache: its chunk is behind the cursor now */
}

Test(arena_cache, thread_exit_drains_into_a_clean_file)
{
    char path[] = "/tmp/ca-arena-exit-XXXXXX";
    ca_arena *a = make_file(path, 4u << 20);
    exit_worker w = {a, 0, 0};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, file_exit_worker, &w), 0);
    while (!__atomic_load_n(&w.ready, __ATOMIC_ACQUIRE))
        usleep(1000);
    uint64_t mine = al(a, 64); /* this thread's chunk: the cursor moves past the worker's */
    uint64_t before = counter(a, "rewinds");
    cr_assert_eq(ca_arena_flush(a), 0);
    __atomic_store_n(&w.go, 1, __ATOMIC_RELEASE);
    cr_assert_eq(pthread_join(t, NULL), 0);
    cr_assert_eq(counter(a, "rewinds"), before, "the worker's chunk was given back, not rewound");
    ok(a);
    cr_assert_eq(ca_arena_close(a), 0);
    ca_arena_error why;
    cr_assert_eq(ca_arena_open_file(&a, path, CA_ARENA_READ_ONLY, NULL, &why), 0, "%s", ca_arena_strerror(why));
    ok(a);
    ca_stats s;
    ca_arena_stats(a, &s);
    cr_assert_eq(s.bytes_in_use, 4 * 64 + 64, "in use %llu", (unsigned long long)s.bytes_in_use);
    (void)mine;
    ca_arena_close(a);
    unlink(path);
}
