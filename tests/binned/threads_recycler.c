/* SPDX-License-Identifier: MIT */
/* The recycler of the library under TSan: threads pop bundles, own them
 * (an atomic flag catches a double hand-out), and push them back; then the
 * allocator's own use of it from several threads with check at the end. */
#include <pthread.h>

#include "binned_internal.h"
#include "ca_test.h"
#include "ca_tt.h"

typedef struct node {
    void *w0, *w1;
    int owned;
} node;

enum { NODES = 256 };
static node g_nodes[NODES];
static ca_binned__recycler g_r;
static int g_errors;

static void *worker(void *arg)
{
    unsigned long iters = (unsigned long)(uintptr_t)arg;
    node *held[4];
    for (unsigned long i = 0; i < iters; i++) {
        int k = 0;
        for (; k < 4; k++) {
            held[k] = (node *)ca_binned__recycler_pop(&g_r);
            if (!held[k])
                break;
            if (__atomic_exchange_n(&held[k]->owned, 1, __ATOMIC_ACQ_REL))
                __atomic_fetch_add(&g_errors, 1, __ATOMIC_RELAXED);
        }
        while (k-- > 0) {
            __atomic_store_n(&held[k]->owned, 0, __ATOMIC_RELEASE);
            ca_binned__recycler_push(&g_r, held[k]);
        }
    }
    return NULL;
}

CA_TT(recycler_push_pop_threads)
{
    ca_binned__recycler_init(&g_r);
    for (int i = 0; i < NODES; i++)
        ca_binned__recycler_push(&g_r, &g_nodes[i]);
    unsigned nt = ca_test_threads(4);
    pthread_t t[16];
    if (nt > 16)
        nt = 16;
    for (unsigned i = 0; i < nt; i++)
        pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)(20000 * ca_test_scale()));
    for (unsigned i = 0; i < nt; i++)
        pthread_join(t[i], NULL);
    int count = 0;
    while (ca_binned__recycler_pop(&g_r) && count <= NODES)
        count++;
    CA_TT_ASSERT(g_errors == 0, "%d double hand-outs", g_errors);
    CA_TT_ASSERT(count == NODES, "%d nodes left, want %d", count, NODES);
}

static ca_binned *g_b;

static void *alloc_worker(void *arg)
{
    ca_rng r = {(uint64_t)(uintptr_t)arg};
    void *p[512];
    for (int round = 0; round < 40 * (int)ca_test_scale(); round++) {
        for (int i = 0; i < 512; i++) {
            p[i] = ca_binned_alloc(g_b, 16 + (size_t)ca_rng_below(&r, 3) * 16, 16);
            ca_test_fill(p[i], 16, (uint64_t)(uintptr_t)p[i]);
        }
        for (int i = 0; i < 512; i++) {
            if (!ca_test_verify(p[i], 16, (uint64_t)(uintptr_t)p[i]))
                __atomic_fetch_add(&g_errors, 1, __ATOMIC_RELAXED);
            ca_binned_free(g_b, p[i]);
        }
    }
    ca_binned_thread_flush(g_b);
    return NULL;
}

CA_TT(allocator_bundles_between_threads)
{
    ca_binned_options o;
    ca_binned_options_init(&o);
    o.class_range_log2 = 26;
    CA_TT_ASSERT(ca_binned_create(&g_b, &o) == 0, "create");
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, alloc_worker, (void *)(uintptr_t)(i + 1));
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    CA_TT_ASSERT(g_errors == 0, "%d corrupted blocks", g_errors);
    const char *err = ca_binned_check(g_b);
    CA_TT_ASSERT(err == NULL, "%s", err);
    ca_binned_destroy(g_b);
}
