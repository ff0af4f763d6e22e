/* SPDX-License-Identifier: MIT */
/* 2, 4 and 8 threads allocating and freeing concurrently on every free-list
 * kind and offset width, heap and anonymous backing, with every byte owned
 * by exactly one thread (arena_test_stress.h); afterwards the arena must be
 * consistent and, once everything is freed and compacted, empty. A plain executable so
 * that it runs under ThreadSanitizer. Seed CA_TEST_SEED, operations scaled
 * by CA_TEST_SCALE, thread counts capped by CA_TEST_THREADS when set.
 * listen_during_stress: a listener attached and detached in a loop while
 * the threads allocate; every attach reports the same one range. */
#include "ca_tt.h"
#include "arena_test_stress.h"

/* mode: 0 defaults (thread caches, reuse first), 1 no caches (the shared
 * cursor and list alone), 2 fresh first, 3 16-byte caches (every free
 * pushes a chain onto a shared bin, every allocation pops one) */
static void run_mode(int *ca_tt_failed, ca_arena_freelist kind, unsigned bits, ca_arena_backing backing, unsigned threads, int mode)
{
    ca_arena_options o;
    ca_arena_options_init(&o);
    o.freelist = kind;
    o.offset_bits = bits;
    o.backing = backing;
    o.capacity = 16u << 20;
    o.max_retries = 64;
    if (mode == 1)
        o.local_cache = CA_ARENA_LOCAL_CACHE_OFF;
    if (mode == 2)
        o.order = CA_ARENA_FRESH_FIRST;
    if (mode == 3)
        o.local_cache = 16;
    ca_arena *a = NULL;
    CA_TT_ASSERT(ca_arena_create(&a, &o) == 0, "create");
    stress_cfg c = {a, threads, 6000 * ca_test_scale() / threads + 500, 0, kind != CA_ARENA_FREELIST_NONE, ca_test_seed()};
    if (mode == 3 && threads == 4)
        c.fixed_size = 64; /* one shared bin for every thread */
    uint64_t v = stress_run(&c);
    CA_TT_ASSERT(v == 0, "kind %d bits %u threads %u: %llu violations", kind, bits, threads, (unsigned long long)v);
    const char *why = ca_arena_check(a);
    CA_TT_ASSERT(why == NULL, "kind %d bits %u threads %u: %s", kind, bits, threads, why);
    ca_stats st;
    ca_arena_stats(a, &st);
    CA_TT_ASSERT(st.bytes_in_use == 0, "in use %llu after all frees", (unsigned long long)st.bytes_in_use);
    CA_TT_ASSERT(st.allocs == st.frees, "allocs %llu frees %llu", (unsigned long long)st.allocs,
                 (unsigned long long)st.frees);
    if (kind != CA_ARENA_FREELIST_NONE) {
        CA_TT_ASSERT(ca_arena_compact(a) == 0, "compact");
        uint64_t disc = 0;
        ca_stats_get_counter(&st, "discarded", &disc);
        ca_arena_stats(a, &st);
        uint64_t fb = 0;
        ca_stats_get_counter(&st, "free_bytes", &fb);
        CA_TT_ASSERT(ca_arena_check(a) == NULL, "after compact: %s", ca_arena_check(a));
        CA_TT_ASSERT(fb == 0 || ca_arena_cursor(a) > ca_arena_data_start(a), "compact left free bytes at the tail");
    }
    ca_arena_close(a);
}

static void run(int *ca_tt_failed, ca_arena_freelist kind, unsigned bits, ca_arena_backing backing, unsigned threads)
{
    run_mode(ca_tt_failed, kind, bits, backing, threads, 0);
}

static unsigned cap_threads(unsigned t)
{
    unsigned m = ca_test_threads(8);
    return t < m ? t : m;
}

#define KIND_TESTS(name, kind)                                                                     \
    CA_TT(name##_64_heap)                                                                          \
    {                                                                                              \
        for (unsigned t = 2; t <= 8; t *= 2)                                                       \
            run(ca_tt_failed, kind, 64, CA_ARENA_BACKING_HEAP, cap_threads(t));                    \
    }                                                                                              \
    CA_TT(name##_32_anon)                                                                          \
    {                                                                                              \
        for (unsigned t = 2; t <= 8; t *= 2)                                                       \
            run(ca_tt_failed, kind, 32, CA_ARENA_BACKING_ANON, cap_threads(t));                    \
    }

KIND_TESTS(none, CA_ARENA_FREELIST_NONE)
KIND_TESTS(optimistic, CA_ARENA_FREELIST_OPTIMISTIC)
KIND_TESTS(pessimistic, CA_ARENA_FREELIST_PESSIMISTIC)

/* Without thread caches (every call on the shared cursor and list: the
 * lock-free pop, the pending stack, the token), with fresh memory first, and
 * with caches so small that every call goes through the shared bins. */
#define MODE_TESTS(name, kind) \
    CA_TT(name##_nocache) \
    { \
        for (unsigned t = 2; t <= 4; t *= 2) \
            run_mode(ca_tt_failed, kind, t == 2 ? 64 : 32, CA_ARENA_BACKING_HEAP, cap_threads(t), 1); \
    } \
    CA_TT(name##_fresh_first) \
    { \
        for (unsigned t = 2; t <= 4; t *= 2) \
            run_mode(ca_tt_failed, kind, 64, CA_ARENA_BACKING_ANON, cap_threads(t), 2); \
    } \
    CA_TT(name##_tiny_caches) \
    { \
        for (unsigned t = 2; t <= 4; t *= 2) \
            run_mode(ca_tt_failed, kind, t == 2 ? 32 : 64, CA_ARENA_BACKING_HEAP, cap_threads(t), 3); \
    }

MODE_TESTS(optimistic, CA_ARENA_FREELIST_OPTIMISTIC)
MODE_TESTS(pessimistic, CA_ARENA_FREELIST_PESSIMISTIC)

/* ------------------------------------------------------------------------
 * Blocks freed by another thread than the one that allocated them: a
 * producer fills blocks and hands their offsets over a ring; a consumer
 * verifies and frees them (into its own cache, which flushes to the shared
 * bins the producer reuses).
 * ------------------------------------------------------------------------ */

enum { RING = 256 };
typedef struct handoff {
    ca_arena *a;
    uint64_t off[RING];
    uint32_t size[RING];
    uint64_t head, tail; /* atomic: producer writes head, consumer tail */
    uint64_t total;
    uint64_t bad;        /* atomic */
} handoff;

static void *producer(void *p)
{
    handoff *h = (handoff *)p;
    ca_rng r = {ca_test_seed()};
    for (uint64_t i = 0; i < h->total; i++) {
        while (__atomic_load_n(&h->head, __ATOMIC_RELAXED) - __atomic_load_n(&h->tail, __ATOMIC_ACQUIRE) == RING)
            ;
        size_t size = 16 + (size_t)ca_rng_below(&r, 1024);
        uint64_t off;
        while (ca_arena_alloc(h->a, size, 16, &off))
            ; /* the consumer frees */
        ca_test_fill(ca_arena_ptr(h->a, off), size, off);
        h->off[i % RING] = off;
        h->size[i % RING] = (uint32_t)size;
        __atomic_store_n(&h->head, i + 1, __ATOMIC_RELEASE);
    }
    return NULL;
}

static void *consumer(void *p)
{
    handoff *h = (handoff *)p;
    for (uint64_t i = 0; i < h->total; i++) {
        while (__atomic_load_n(&h->head, __ATOMIC_ACQUIRE) == i)
            ;
        uint64_t off = h->off[i % RING];
        size_t size = h->size[i % RING];
        if (!ca_test_verify(ca_arena_ptr(h->a, off), size, off) || ca_arena_free(h->a, off, size))
            __atomic_fetch_add(&h->bad, 1, __ATOMIC_RELAXED);
        __atomic_store_n(&h->tail, i + 1, __ATOMIC_RELEASE);
    }
    return NULL;
}

CA_TT(frees_from_another_thread)
{
    for (int kind = CA_ARENA_FREELIST_OPTIMISTIC; kind <= CA_ARENA_FREELIST_PESSIMISTIC; kind++) {
        ca_arena_options o;
        ca_arena_options_init(&o);
        o.freelist = (ca_arena_freelist)kind;
        o.capacity = 4u << 20;
        ca_arena *a = NULL;
        CA_TT_ASSERT(ca_arena_create(&a, &o) == 0, "create");
        static handoff h;
        memset(&h, 0, sizeof h);
        h.a = a;
        h.total = 20000 * ca_test_scale();
        pthread_t t[2];
        pthread_create(&t[0], NULL, producer, &h);
        pthread_create(&t[1], NULL, consumer, &h);
        pthread_join(t[0], NULL);
        pthread_join(t[1], NULL);
        CA_TT_ASSERT(h.bad == 0, "kind %d: %llu blocks damaged", kind, (unsigned long long)h.bad);
        CA_TT_ASSERT(ca_arena_check(a) == NULL, "kind %d: %s", kind, ca_arena_check(a));
        ca_stats st;
        ca_arena_stats(a, &st);
        CA_TT_ASSERT(st.bytes_in_use == 0 && st.allocs == st.frees, "kind %d: in use %llu", kind,
                     (unsigned long long)st.bytes_in_use);
        ca_arena_close(a);
    }
}

/* ------------------------------------------------------------------------
 * The `mixed` benchmark's workload with two threads on one arena (defaults):
 * rounds of 256 blocks of 16 B - 4 KiB freed in a shuffled order, contents
 * verified. The frees overflow the caches into the shared bins; the sorted
 * list's work per free stays bounded and the footprint a few times the live
 * bytes.
 * ------------------------------------------------------------------------ */

typedef struct mixed_arg {
    ca_arena *a;
    unsigned id, rounds;
    uint64_t bad; /* written by the thread, read after join */
} mixed_arg;

static void *mixed_thread(void *p)
{
    mixed_arg *m = (mixed_arg *)p;
    enum { B = 256 };
    uint64_t o[B];
    size_t s[B];
    unsigned sh[B];
    ca_rng r = {ca_test_seed() * 7919 + m->id};
    for (unsigned round = 0; round < m->rounds; round++) {
        for (unsigned k = 0; k < B; k++) {
            s[k] = 16 + (size_t)ca_rng_below(&r, 4081);
            if (ca_arena_alloc(m->a, s[k], 16, &o[k])) {
                m->bad++;
                return NULL;
            }
            ca_test_fill(ca_arena_ptr(m->a, o[k]), s[k], o[k]);
            sh[k] = k;
        }
        for (unsigned k = B - 1; k > 0; k--) {
            unsigned j = (unsigned)ca_rng_below(&r, (uint64_t)k + 1), t = sh[k];
            sh[k] = sh[j];
            sh[j] = t;
        }
        for (unsigned k = 0; k < B; k++) {
            unsigned x = sh[k];
            if (!ca_test_verify(ca_arena_ptr(m->a, o[x]), s[x], o[x]) || ca_arena_free(m->a, o[x], s[x]))
                m->bad++;
        }
    }
    return NULL;
}

CA_TT(mixed_two_threads_keep_off_the_sorted_list)
{
    ca_arena_options o;
    ca_arena_options_init(&o);
    o.capacity = 64u << 20;
    ca_arena *a = NULL;
    CA_TT_ASSERT(ca_arena_create(&a, &o) == 0, "create");
    pthread_t t[2];
    mixed_arg m[2];
    for (unsigned i = 0; i < 2; i++) {
        m[i] = (mixed_arg){a, i, 100 * (unsigned)ca_test_scale(), 0};
        pthread_create(&t[i], NULL, mixed_thread, &m[i]);
    }
    for (unsigned i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    CA_TT_ASSERT(m[0].bad == 0 && m[1].bad == 0, "%llu + %llu blocks damaged or refused",
                 (unsigned long long)m[0].bad, (unsigned long long)m[1].bad);
    CA_TT_ASSERT(ca_arena_check(a) == NULL, "%s", ca_arena_check(a));
    ca_stats st;
    ca_arena_stats(a, &st);
    uint64_t steps = 0, used = ca_arena_cursor(a) - ca_arena_data_start(a);
    ca_stats_get_counter(&st, "list_steps", &steps);
    printf("  list steps per free %.2f, used %llu KiB\n", (double)steps / (double)st.frees,
           (unsigned long long)used >> 10);
    CA_TT_ASSERT(st.bytes_in_use == 0 && st.frees == 2 * 256 * (uint64_t)m[0].rounds, "in use %llu",
                 (unsigned long long)st.bytes_in_use);
    CA_TT_ASSERT(steps <= 8 * st.frees, "the sorted list visited %.1f nodes per free",
                 (double)steps / (double)st.frees);
    CA_TT_ASSERT(used <= 16u << 20, "used %llu KiB for 2 MiB live at most", (unsigned long long)used >> 10);
    ca_arena_close(a);
}

/* ------------------------------------------------------------------------
 * Attach and detach a listener while the stress threads run
 * ------------------------------------------------------------------------ */

typedef struct lrec {
    ca_listener l;     /* first member */
    void *base;        /* the range of the last added() */
    size_t size;
    unsigned added, removed, bad; /* bad: a range differing from the first */
} lrec;

static int lrec_added(ca_listener *l, void *base, size_t size)
{
    lrec *r = (lrec *)(void *)l;
    if (r->added++ && (base != r->base || size != r->size))
        r->bad++;
    r->base = base;
    r->size = size;
    return 0;
}

static void lrec_removed(ca_listener *l, void *base, size_t size)
{
    lrec *r = (lrec *)(void *)l;
    r->removed++;
    if (base != r->base || size != r->size)
        r->bad++;
}

typedef struct lloop {
    ca_arena *a;
    lrec r;
    int stop;        /* atomic */
    unsigned cycles; /* written by the loop thread, read after join */
    int err;
} lloop;

static void *listen_loop(void *p)
{
    lloop *s = (lloop *)p;
    ca_allocator *al = ca_arena_allocator(s->a);
    while (!__atomic_load_n(&s->stop, __ATOMIC_ACQUIRE)) {
        int e = ca_listen(al, &s->r.l);
        if (!e && ca_listen(al, &s->r.l) != EBUSY)
            e = -1;
        if (!e)
            e = ca_listen(al, NULL);
        if (e) {
            s->err = e;
            break;
        }
        s->cycles++;
    }
    return NULL;
}

CA_TT(listen_during_stress)
{
    ca_arena_options o;
    ca_arena_options_init(&o);
    o.capacity = 16u << 20;
    ca_arena *a = NULL;
    CA_TT_ASSERT(ca_arena_create(&a, &o) == 0, "create");
    static lloop s;
    memset(&s, 0, sizeof s);
    s.a = a;
    s.r.l.added = lrec_added;
    s.r.l.removed = lrec_removed;
    pthread_t t;
    CA_TT_ASSERT(pthread_create(&t, NULL, listen_loop, &s) == 0, "thread");
    unsigned threads = cap_threads(4);
    stress_cfg c = {a, threads, 6000 * ca_test_scale() / threads + 500, 0, true, ca_test_seed()};
    uint64_t v = stress_run(&c);
    __atomic_store_n(&s.stop, 1, __ATOMIC_RELEASE);
    pthread_join(t, NULL);
    CA_TT_ASSERT(v == 0, "%llu violations", (unsigned long long)v);
    CA_TT_ASSERT(s.err == 0, "ca_listen failed: %d", s.err);
    CA_TT_ASSERT(s.r.bad == 0, "%u events with another range", s.r.bad);
    CA_TT_ASSERT(s.r.added == s.cycles && s.r.removed == s.cycles, "cycles %u added %u removed %u", s.cycles,
                 s.r.added, s.r.removed);
    CA_TT_ASSERT((uintptr_t)s.r.base % CA_OWNER_PAGE == 0 && s.r.size % CA_OWNER_PAGE == 0, "not whole pages");
    CA_TT_ASSERT(ca_arena_check(a) == NULL, "%s", ca_arena_check(a));
    ca_arena_close(a);
}
