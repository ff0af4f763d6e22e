/* SPDX-License-Identifier: MIT */
/*
 * libbitset made thread-safe by core's locked adaptor (runs under TSan):
 * threads allocate, fill, verify, resize and free runs at once through one
 * locked allocator (mutex and spin); blocks freed by another thread than
 * the one that allocated them; at the end the maps are consistent and empty.
 */
#include <ctxalloc/bitset.h>
#include <pthread.h>

#include "bitset_test.h"
#include "ca_test.h"
#include "ca_tt.h"

#define NTHREADS 4
#define PER_THREAD 64

static ca_allocator *shared;
static unsigned long nops;
static int errors[NTHREADS];
/* Leftovers of each thread, freed by the next thread (cross-thread frees). */
static unsigned char *left[NTHREADS][PER_THREAD];
static size_t left_size[NTHREADS][PER_THREAD];
static pthread_barrier_t barrier;

static void *worker(void *arg)
{
    int id = (int)(intptr_t)arg;
    ca_rng r = {ca_test_seed() + (uint64_t)id};
    unsigned char *mine[PER_THREAD] = {0};
    size_t size[PER_THREAD] = {0};
    for (unsigned long op = 0; op < nops; op++) {
        size_t j = ca_rng_below(&r, PER_THREAD);
        uint64_t tag = (uint64_t)id * 1000003u + j;
        if (!mine[j]) {
            size[j] = 1 + ca_rng_below(&r, 700);
            mine[j] = (unsigned char *)ca_alloc(shared, size[j], 16);
            if (mine[j])
                ca_test_fill(mine[j], size[j], tag);
        } else if (op & 1) {
            if (!ca_test_verify(mine[j], size[j], tag))
                errors[id]++;
            size_t ns = 1 + ca_rng_below(&r, 1400);
            unsigned char *q = (unsigned char *)ca_resize(shared, mine[j], size[j], ns, 16, 0);
            if (q) {
                mine[j] = q;
                size[j] = ns;
                ca_test_fill(q, ns, tag);
            }
        } else {
            if (!ca_test_verify(mine[j], size[j], tag))
                errors[id]++;
            if (ca_usable_size(shared, mine[j]) < size[j])
                errors[id]++;
            ca_free(shared, mine[j], size[j], 16);
            mine[j] = NULL;
        }
    }
    for (int j = 0; j < PER_THREAD; j++) {
        left[id][j] = mine[j];
        left_size[id][j] = size[j];
    }
    pthread_barrier_wait(&barrier);
    int next = (id + 1) % NTHREADS;
    for (int j = 0; j < PER_THREAD; j++) {
        if (!left[next][j])
            continue;
        if (!ca_test_verify(left[next][j], left_size[next][j], (uint64_t)next * 1000003u + (uint64_t)j))
            errors[id]++;
        if (j & 1)
            ca_free_unsized(shared, left[next][j]);
        else
            ca_free(shared, left[next][j], left_size[next][j], 16);
    }
    return NULL;
}

static int run(ca_lock_kind kind)
{
    test_source src;
    test_source_init(&src);
    ca_bitset *b = test_bitset_new(&src, (size_t)4 << 20, 64);
    ca_locked_allocator l;
    if (!b || ca_locked_init(&l, ca_bitset_allocator(b), kind))
        return -1;
    shared = &l.base;
    nops = 20000ul * ca_test_scale();
    memset(errors, 0, sizeof errors);
    pthread_barrier_init(&barrier, NULL, NTHREADS);
    pthread_t t[NTHREADS];
    for (int i = 0; i < NTHREADS; i++)
        pthread_create(&t[i], NULL, worker, (void *)(intptr_t)i);
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&barrier);
    int bad = 0;
    for (int i = 0; i < NTHREADS; i++)
        bad += errors[i];
    ca_stats st;
    ca_stats_get(&l.base, &st);
    if (st.bytes_in_use != 0 || ca_bitset_check(b) != NULL)
        bad++;
    ca_locked_destroy(&l);
    ca_bitset_destroy(b);
    return bad;
}

CA_TT(locked_mutex)
{
    int bad = run(CA_LOCK_MUTEX);
    CA_TT_ASSERT(bad == 0, "%d errors", bad);
}

CA_TT(locked_spin)
{
    int bad = run(CA_LOCK_SPIN);
    CA_TT_ASSERT(bad == 0, "%d errors", bad);
}
