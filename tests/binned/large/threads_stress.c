/* SPDX-License-Identifier: MIT */
/* Large-object tier under threads (plain runner, also under TSan): random
 * sizes with cookies verified on free, blocks handed between threads
 * through a shared exchange (cross-thread frees, steals), the background
 * thread purging and unmapping concurrently with a short decay. */
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "ca_test.h"
#include "ca_tt.h"
#include "large_internal.h"

#define EXCHANGE 64

typedef struct shared {
    ca_binned_large *l;
    void *slot[EXCHANGE]; /* atomic exchange of blocks between threads */
    uint64_t seed;
    unsigned ops;
    int failed; /* atomic */
} shared;

typedef struct hdr {
    uint64_t cookie;
    size_t size;
} hdr;

#define COOKIE 0xc0ffee5eedULL

static void *worker(void *arg)
{
    shared *s = (shared *)arg;
    ca_rng r = {__atomic_fetch_add(&s->seed, 0x1234567, __ATOMIC_RELAXED)};
    void *mine[8] = {0};
    for (unsigned op = 0; op < s->ops; op++) {
        unsigned k = (unsigned)ca_rng_below(&r, 8);
        if (mine[k]) {
            /* hand it to the exchange; free whatever was there (maybe another thread's) */
            void *old = __atomic_exchange_n(&s->slot[ca_rng_below(&r, EXCHANGE)], mine[k], __ATOMIC_ACQ_REL);
            mine[k] = NULL;
            if (old) {
                hdr *h = (hdr *)old;
                if (h->cookie != (COOKIE ^ (uintptr_t)old) ||
                    ((unsigned char *)old)[h->size - 1] != (unsigned char)(uintptr_t)old)
                    __atomic_store_n(&s->failed, 1, __ATOMIC_RELAXED);
                ca_binned_large_free(s->l, old);
            }
        } else {
            uint64_t c = ca_rng_below(&r, 100);
            size_t size = c < 80 ? 64 + (size_t)ca_rng_below(&r, 1 << 20)
                                 : c < 98 ? (size_t)ca_rng_below(&r, 8 << 20) + 64 : (size_t)(70 << 20);
            unsigned char *p = (unsigned char *)ca_binned_large_alloc(s->l, size, 16, NULL);
            if (!p) {
                __atomic_store_n(&s->failed, 2, __ATOMIC_RELAXED);
                break;
            }
            hdr *h = (hdr *)(void *)p;
            h->cookie = COOKIE ^ (uintptr_t)p;
            h->size = size;
            p[size - 1] = (unsigned char)(uintptr_t)p;
            mine[k] = p;
        }
    }
    for (int k = 0; k < 8; k++)
        ca_binned_large_free(s->l, mine[k]);
    return NULL;
}

static void run(int *ca_tt_failed, unsigned flags)
{
    shared s;
    memset(&s, 0, sizeof s);
    ca_binned_large_options o;
    memset(&o, 0, sizeof o);
    o.flags = flags;
    o.cache_bytes = 4 << 20;
    o.dirty_max = 64 << 20;
    o.dirty_decay_ms = 1;
    o.unmap_decay_ms = 3;
    o.max_size = 64 << 20;
    CA_TT_ASSERT(ca_binned_large_create(&s.l, &o) == 0, "create");
    s.seed = ca_test_seed();
    s.ops = (unsigned)(8000 * ca_test_scale());
    unsigned n = ca_test_threads(4);
    pthread_t t[64];
    if (n > 64)
        n = 64;
    for (unsigned i = 0; i < n; i++)
        pthread_create(&t[i], NULL, worker, &s);
    for (unsigned i = 0; i < n; i++)
        pthread_join(t[i], NULL);
    CA_TT_ASSERT(s.failed == 0, "cookie or allocation failure %d", s.failed);
    for (int i = 0; i < EXCHANGE; i++)
        ca_binned_large_free(s.l, s.slot[i]);
    ca_binned_large_background_stop(s.l);
    const char *m = ca_binned_large_check(s.l);
    CA_TT_ASSERT(m == NULL, "%s", m);
    ca_stats st;
    ca_binned_large_stats(s.l, &st);
    CA_TT_ASSERT(st.bytes_in_use == 0, "in use %llu", (unsigned long long)st.bytes_in_use);
    CA_TT_ASSERT(st.allocs == st.frees, "allocs %llu frees %llu", (unsigned long long)st.allocs,
                 (unsigned long long)st.frees);
    ca_binned_large_trim(s.l);
    ca_binned_large_stats(s.l, &st);
    uint64_t cached = 0;
    ca_stats_get_counter(&st, "cached_bytes", &cached);
    /* the worker threads exited: their caches came back, so trim unmapped all */
    CA_TT_ASSERT(cached == 0, "cached %llu", (unsigned long long)cached);
    CA_TT_ASSERT(st.bytes_reserved == 0, "reserved %llu after trim", (unsigned long long)st.bytes_reserved);
    ca_binned_large_destroy(s.l);
}

CA_TT(threads_caches) { run(ca_tt_failed, 0); }
CA_TT(threads_background) { run(ca_tt_failed, CA_BINNED_LARGE_BACKGROUND); }
CA_TT(threads_no_cache) { run(ca_tt_failed, CA_BINNED_LARGE_NO_CACHE | CA_BINNED_LARGE_BACKGROUND); }
