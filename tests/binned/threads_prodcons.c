/* SPDX-License-Identifier: MIT */
/* Cross-thread producer/consumer: producers allocate blocks of many sizes
 * and write a cookie into every byte; consumers on other threads verify the
 * cookie and free (remote frees). Both on a created instance and on the
 * default one; invariants checked at the end. */
#include <pthread.h>

#include "binned_internal.h"
#include "ca_test.h"
#include "ca_tt.h"

enum { RING = 1024 };

typedef struct ring {
    void *slot[RING];
    size_t size[RING];
    unsigned head, tail; /* under mu */
    int done;
    pthread_mutex_t mu;
    pthread_cond_t cv;
} ring;

static ring g_ring;
static ca_binned *g_b;
static int g_errors;
static unsigned long g_per_producer;

static uint64_t cookie(const void *p, size_t n) { return (uint64_t)(uintptr_t)p ^ n; }

static void *producer(void *arg)
{
    ca_rng r = {(uint64_t)(uintptr_t)arg};
    for (unsigned long i = 0; i < g_per_producer; i++) {
        size_t n = (size_t)ca_rng_below(&r, 100) < 95 ? (size_t)ca_rng_below(&r, 1025)
                                                      : (size_t)ca_rng_below(&r, 600000);
        void *p = g_b ? ca_binned_alloc(g_b, n, 16) : ca_binned_default_malloc(n);
        if (!p) {
            __atomic_fetch_add(&g_errors, 1, __ATOMIC_RELAXED);
            continue;
        }
        ca_test_fill(p, n, cookie(p, n));
        pthread_mutex_lock(&g_ring.mu);
        while (g_ring.head - g_ring.tail == RING)
            pthread_cond_wait(&g_ring.cv, &g_ring.mu);
        g_ring.slot[g_ring.head % RING] = p;
        g_ring.size[g_ring.head % RING] = n;
        g_ring.head++;
        pthread_cond_broadcast(&g_ring.cv);
        pthread_mutex_unlock(&g_ring.mu);
    }
    return NULL;
}

static void *consumer(void *arg)
{
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&g_ring.mu);
        while (g_ring.head == g_ring.tail && !g_ring.done)
            pthread_cond_wait(&g_ring.cv, &g_ring.mu);
        if (g_ring.head == g_ring.tail && g_ring.done) {
            pthread_mutex_unlock(&g_ring.mu);
            break;
        }
        void *p = g_ring.slot[g_ring.tail % RING];
        size_t n = g_ring.size[g_ring.tail % RING];
        g_ring.tail++;
        pthread_cond_broadcast(&g_ring.cv);
        pthread_mutex_unlock(&g_ring.mu);
        if (!ca_test_verify(p, n, cookie(p, n)))
            __atomic_fetch_add(&g_errors, 1, __ATOMIC_RELAXED);
        if (g_b)
            ca_binned_free(g_b, p);
        else
            ca_binned_default_free(p);
    }
    if (g_b)
        ca_binned_thread_flush(g_b);
    return NULL;
}

static int run(unsigned np, unsigned nc)
{
    memset(&g_ring, 0, sizeof g_ring);
    pthread_mutex_init(&g_ring.mu, NULL);
    pthread_cond_init(&g_ring.cv, NULL);
    g_per_producer = 12000 * ca_test_scale();
    pthread_t p[4], c[4];
    for (unsigned i = 0; i < nc; i++)
        pthread_create(&c[i], NULL, consumer, NULL);
    for (unsigned i = 0; i < np; i++)
        pthread_create(&p[i], NULL, producer, (void *)(uintptr_t)(ca_test_seed() + i));
    for (unsigned i = 0; i < np; i++)
        pthread_join(p[i], NULL);
    pthread_mutex_lock(&g_ring.mu);
    g_ring.done = 1;
    pthread_cond_broadcast(&g_ring.cv);
    pthread_mutex_unlock(&g_ring.mu);
    for (unsigned i = 0; i < nc; i++)
        pthread_join(c[i], NULL);
    pthread_mutex_destroy(&g_ring.mu);
    pthread_cond_destroy(&g_ring.cv);
    return g_errors;
}

CA_TT(producer_consumer_created)
{
    ca_binned_options o;
    ca_binned_options_init(&o);
    o.class_range_log2 = 28;
    CA_TT_ASSERT(ca_binned_create(&g_b, &o) == 0, "create");
    int errs = run(2, 2);
    CA_TT_ASSERT(errs == 0, "%d blocks with a broken cookie", errs);
    const char *err = ca_binned_check(g_b);
    CA_TT_ASSERT(err == NULL, "%s", err);
    ca_stats s;
    ca_binned_stats(g_b, &s);
    CA_TT_ASSERT(s.allocs == s.frees, "allocs %llu frees %llu", (unsigned long long)s.allocs,
                 (unsigned long long)s.frees);
    ca_binned_destroy(g_b);
    g_b = NULL;
}

CA_TT(producer_consumer_default)
{
    g_b = NULL;
    int errs = run(1, 1);
    CA_TT_ASSERT(errs == 0, "%d blocks with a broken cookie", errs);
    const char *err = ca_binned_check(ca_binned_default());
    CA_TT_ASSERT(err == NULL, "%s", err);
}
