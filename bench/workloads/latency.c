/* SPDX-License-Identifier: MIT */
/*
 * Tail latency of malloc and free in a steady mixed workload. Each thread
 * keeps 8,192 live objects and replaces a random one per step: free it
 * (timed), malloc a new size (timed) from a mix of 85% 16-512 B, 14%
 * 512 B-64 KiB and 1% 64 KiB-1 MiB (power-law inside each band), write its
 * cookie. Every 64th step also frees one object of another thread's pool
 * through a shared exchange slot, so remote frees are in the mix at two
 * threads. Each call is timed with the time-stamp counter (rdtscp after the
 * call, lfence before it), converted to ns against CLOCK_MONOTONIC over the
 * run; the timer's own cost (measured empty) is subtracted. Reports on
 * stderr, read by the runner:
 *   latency: malloc p50=N p99=N p999=N max=N free p50=N p99=N p999=N max=N
 * (ns, over every thread's samples). Usage: latency [scale] [threads]
 */
#include "wl.h"

#include <pthread.h>
#include <time.h>
#include <x86intrin.h>

#define LIVE 8192

typedef struct worker {
    int id;
    size_t steps;
    uint32_t *mal, *fre; /* cycles per call */
    size_t nmal, nfre;
    pthread_t th;
} worker;

static void *exchange[2]; /* an object handed to the other thread (atomic) */
static unsigned nthreads;
static uint64_t timer_cost;

static inline uint64_t t_start(void)
{
    _mm_lfence();
    return __rdtsc();
}

static inline uint64_t t_stop(void)
{
    unsigned aux;
    uint64_t t = __rdtscp(&aux);
    _mm_lfence();
    return t;
}

static size_t pick_size(wl_rng *r)
{
    uint64_t band = wl_below(r, 100);
    if (band < 85)
        return wl_powerlaw(r, 16, 512);
    if (band < 99)
        return wl_powerlaw(r, 513, 64 << 10);
    return wl_powerlaw(r, (64 << 10) + 1, 1 << 20);
}

static inline void record(uint32_t *v, size_t *n, uint64_t c)
{
    c = c > timer_cost ? c - timer_cost : 0;
    v[(*n)++] = c > UINT32_MAX ? UINT32_MAX : (uint32_t)c;
}

static void *run(void *arg)
{
    worker *w = arg;
    wl_rng r = {0x5eed + (uint64_t)w->id * 7919};
    static __thread void *obj[LIVE];
    static __thread size_t sz[LIVE];
    static __thread uint64_t tag[LIVE];
    for (size_t i = 0; i < LIVE; i++) {
        sz[i] = pick_size(&r);
        obj[i] = wl_malloc(sz[i]);
        tag[i] = wl_next(&r);
        wl_mark(obj[i], sz[i], tag[i]);
    }
    for (size_t s = 0; s < w->steps; s++) {
        size_t i = (size_t)wl_below(&r, LIVE);
        wl_check(obj[i], sz[i], tag[i]);
        void *victim = obj[i];
        if (nthreads > 1 && (s & 63) == 0) {
            /* hand this one to the other thread; free what it handed us */
            void *got = __atomic_exchange_n(&exchange[w->id & 1], NULL, __ATOMIC_ACQ_REL);
            __atomic_store_n(&exchange[(w->id + 1) & 1], victim, __ATOMIC_RELEASE);
            victim = got;
        }
        if (victim) {
            uint64_t t0 = t_start();
            free(victim);
            record(w->fre, &w->nfre, t_stop() - t0);
        }
        sz[i] = pick_size(&r);
        uint64_t t0 = t_start();
        void *p = malloc(sz[i]);
        record(w->mal, &w->nmal, t_stop() - t0);
        if (!p) {
            fprintf(stderr, "latency: malloc(%zu) failed\n", sz[i]);
            exit(2);
        }
        obj[i] = p;
        tag[i] = wl_next(&r);
        wl_mark(p, sz[i], tag[i]);
    }
    for (size_t i = 0; i < LIVE; i++)
        free(obj[i]);
    return NULL;
}

static int cmp32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static void report(const char *what, uint32_t *v, size_t n, double ns_per_cycle)
{
    qsort(v, n, sizeof *v, cmp32);
    size_t i50 = n / 2, i99 = n * 99 / 100, i999 = n * 999 / 1000;
    fprintf(stderr, " %s p50=%.0f p99=%.0f p999=%.0f max=%.0f", what, v[i50] * ns_per_cycle, v[i99] * ns_per_cycle,
            v[i999] * ns_per_cycle, v[n - 1] * ns_per_cycle);
}

int main(int argc, char **argv)
{
    double scale = wl_scale(argc, argv);
    nthreads = argc > 2 ? (unsigned)atoi(argv[2]) : 1;
    if (nthreads < 1 || nthreads > 8)
        nthreads = 1;
    size_t steps = wl_scaled(scale, 400000, 2000);
    /* The timer's own cost: the median of empty measurements. */
    static uint32_t empty[4001];
    for (int i = 0; i < 4001; i++) {
        uint64_t t0 = t_start();
        empty[i] = (uint32_t)(t_stop() - t0);
    }
    qsort(empty, 4001, sizeof *empty, cmp32);
    timer_cost = empty[2000];

    worker w[8];
    double n0 = now_ns();
    uint64_t c0 = __rdtsc();
    for (unsigned t = 0; t < nthreads; t++) {
        w[t] = (worker){.id = (int)t, .steps = steps};
        w[t].mal = wl_malloc(steps * sizeof(uint32_t));
        w[t].fre = wl_malloc(steps * sizeof(uint32_t));
        pthread_create(&w[t].th, NULL, run, &w[t]);
    }
    for (unsigned t = 0; t < nthreads; t++)
        pthread_join(w[t].th, NULL);
    double ns_per_cycle = (now_ns() - n0) / (double)(__rdtsc() - c0);
    for (unsigned k = 0; k < 2; k++) /* what is still in the exchange */
        free(exchange[k]);
    /* every thread's samples together */
    size_t nm = 0, nf = 0;
    for (unsigned t = 0; t < nthreads; t++)
        nm += w[t].nmal, nf += w[t].nfre;
    uint32_t *m = wl_malloc(nm * sizeof *m), *f = wl_malloc(nf * sizeof *f);
    nm = nf = 0;
    for (unsigned t = 0; t < nthreads; t++) {
        memcpy(m + nm, w[t].mal, w[t].nmal * sizeof *m);
        memcpy(f + nf, w[t].fre, w[t].nfre * sizeof *f);
        nm += w[t].nmal, nf += w[t].nfre;
        free(w[t].mal);
        free(w[t].fre);
    }
    fprintf(stderr, "latency:");
    report("malloc", m, nm, ns_per_cycle);
    report("free", f, nf, ns_per_cycle);
    fprintf(stderr, "\n");
    free(m);
    free(f);
    printf("latency: %u threads, %zu steps each\n", nthreads, steps);
    return 0;
}
