/* SPDX-License-Identifier: MIT */
/*
 * The remote-free queue under threads (plain ca_tt program, runs under
 * TSan). For 2, 4 and 8 threads: every thread owns a ca_switch_local as its
 * thread allocator, allocates blocks with a cookie, and swaps them through a
 * shared table of slots; whoever takes a block out verifies the cookie and
 * frees it with ca_switch_free, which routes it to the owner (a remote push
 * when the owner is another thread). Owners drain on their next allocation.
 * At the end every pool is back to zero live blocks and
 * drained + pending == remote_frees for every local.
 */
#include <pthread.h>

#include "ca_test.h"
#include "ca_tt.h"
#include "switch_test.h"

#define MAXT 8
#define NSLOTS 64

typedef struct block {
    uint64_t cookie; /* owner index * 2^32 + serial; the first word is reused by the queue */
    uint64_t cookie2;
    uint32_t owner;
} block;

static sw_ctx ctxs[MAXT];
static block *slots[NSLOTS];
static pthread_barrier_t bar;
static int nthreads;
static long rounds;
static int errors[MAXT];

static void take_and_free(int self, block *b)
{
    if (b->cookie2 != ((uint64_t)b->owner << 32 | (b->cookie2 & 0xffffffffu)) || b->owner >= (uint32_t)nthreads)
        errors[self]++;
    if (ca_switch_owner(b) != sw_ctx_alloc(&ctxs[b->owner]))
        errors[self]++;
    ca_switch_free(b);
}

static void *worker(void *arg)
{
    int self = (int)(intptr_t)arg;
    ca_rng r = {ca_test_seed() + (uint64_t)self};
    ca_switch_adopt_claim(&ctxs[self].ad);
    ca_switch_thread_set(sw_ctx_alloc(&ctxs[self]));
    pthread_barrier_wait(&bar); /* start together */
    for (long i = 0; i < rounds; i++) {
        block *b = (block *)ca_switch_malloc(sizeof(block) + (size_t)ca_rng_below(&r, 200));
        if (!b) {
            errors[self]++;
            break;
        }
        b->owner = (uint32_t)self;
        b->cookie2 = (uint64_t)self << 32 | (uint64_t)i;
        int k = (int)ca_rng_below(&r, NSLOTS);
        block *old = __atomic_exchange_n(&slots[k], b, __ATOMIC_ACQ_REL);
        if (old)
            take_and_free(self, old);
    }
    pthread_barrier_wait(&bar);
    if (self == 0)
        for (int k = 0; k < NSLOTS; k++) {
            block *b = __atomic_exchange_n(&slots[k], NULL, __ATOMIC_ACQ_REL);
            if (b)
                take_and_free(self, b);
        }
    pthread_barrier_wait(&bar);
    ca_switch_local_drain(&ctxs[self].ad.local);
    if (ctxs[self].pool.live != 0)
        errors[self]++;
    ca_switch_thread_set(NULL);
    return NULL;
}

static int run(int n)
{
    nthreads = n;
    rounds = 20000 * (long)ca_test_scale();
    memset(errors, 0, sizeof errors);
    for (int i = 0; i < n; i++)
        if (sw_ctx_init(&ctxs[i]) != 0)
            return -1;
    pthread_barrier_init(&bar, NULL, (unsigned)n);
    pthread_t th[MAXT];
    /* Each local must be owned by its worker: the worker adopts it. */
    for (int i = 0; i < n; i++)
        pthread_create(&th[i], NULL, worker, (void *)(intptr_t)i);
    for (int i = 0; i < n; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&bar);
    int bad = 0;
    uint64_t remote = 0;
    for (int i = 0; i < n; i++) {
        bad += errors[i];
        ca_switch_local *l = &ctxs[i].ad.local;
        if (errors[i])
            fprintf(stderr, "  thread %d: %d wrong cookies, owners or leaks\n", i, errors[i]);
        if (l->drained != __atomic_load_n(&l->remote_frees, __ATOMIC_RELAXED)) {
            fprintf(stderr, "  local %d: drained %lu of %lu remote frees\n", i, (unsigned long)l->drained,
                    (unsigned long)l->remote_frees);
            bad++;
        }
        remote += l->remote_frees;
        ca_switch_adopt_claim(&ctxs[i].ad);
        if (sw_ctx_destroy(&ctxs[i]) != 0) {
            fprintf(stderr, "  adoption %d: %s\n", i, ca_last_error());
            bad++;
        }
    }
    if (remote == 0) {
        fprintf(stderr, "  no remote free happened\n");
        bad++; /* the test must exercise the queue */
    }
    return bad;
}

CA_TT(remote_free_2_threads)
{
    int bad = run(2);
    CA_TT_ASSERT(bad == 0, "%d errors", bad);
}

CA_TT(remote_free_4_threads)
{
    int bad = run(4);
    CA_TT_ASSERT(bad == 0, "%d errors", bad);
}

CA_TT(remote_free_8_threads)
{
    int bad = run(8);
    CA_TT_ASSERT(bad == 0, "%d errors", bad);
}
