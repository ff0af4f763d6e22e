/* SPDX-License-Identifier: MIT */
/*
 * The ABA problem of a Treiber stack, replayed deterministically. Built
 * twice from libbinned/src/recycler.c with a hook between a pop's read of
 * (top, next) and its CAS:
 *   - with the generation counter: the stale CAS fails, the pop retries,
 *     and the stack stays correct (exit 0);
 *   - with -DCA_BINNED_RECYCLER_NO_GEN: the stale CAS succeeds and installs
 *     a bundle that is in use as the new top; the program detects the
 *     double hand-out and exits 1 (meson expects this failure).
 * A threaded stress with the same per-node ownership check follows.
 */
#include <pthread.h>
#include <sched.h>

#include "binned_internal.h"
#include "ca_tt.h"

void ca_binned__recycler_test_hook(ca_binned__recycler *r);

typedef struct node {
    void *w0, *w1;
    int owned; /* 1 while popped (atomic) */
} node;

static int g_arm;      /* replay the interleaving on the next hook call */
static int g_in_hook;  /* the replay's own pops do not recurse */
static int g_yield;    /* threaded stress: widen the window */
static node *g_a, *g_b;

void ca_binned__recycler_test_hook(ca_binned__recycler *r)
{
    if (__atomic_load_n(&g_yield, __ATOMIC_RELAXED))
        sched_yield();
    if (!g_arm || g_in_hook)
        return;
    g_arm = 0;
    g_in_hook = 1;
    /* Another "thread" pops A and B, then pushes A back: top is A again,
     * but A's next is now C, and B is in use. */
    void *x = ca_binned__recycler_pop(r);
    void *y = ca_binned__recycler_pop(r);
    ca_binned__recycler_push(r, x);
    g_in_hook = 0;
    g_a = (node *)x;
    g_b = (node *)y;
}

CA_TT(aba_replay)
{
    static node n[3];
    ca_binned__recycler r;
    ca_binned__recycler_init(&r);
    ca_binned__recycler_push(&r, &n[2]); /* C */
    ca_binned__recycler_push(&r, &n[1]); /* B */
    ca_binned__recycler_push(&r, &n[0]); /* A: top */
    g_arm = 1;
    void *got = ca_binned__recycler_pop(&r); /* reads A, next B; hook runs */
    CA_TT_ASSERT(got == &n[0], "first pop %p", got);
    CA_TT_ASSERT(g_a == &n[0] && g_b == &n[1], "replay popped %p %p", (void *)g_a, (void *)g_b);
    /* B is in use by the replay; the stack must hold only C now. */
    void *next = ca_binned__recycler_pop(&r);
    CA_TT_ASSERT(next != &n[1], "ABA: the stack handed out bundle B, which is in use");
    CA_TT_ASSERT(next == &n[2], "second pop %p", next);
    CA_TT_ASSERT(ca_binned__recycler_pop(&r) == NULL, "stack not empty");
}

enum { NODES = 64, THREADS = 4 };
static node g_nodes[NODES];
static ca_binned__recycler g_r;
static int g_errors;

static void *stress_thread(void *arg)
{
    unsigned long iters = (unsigned long)(uintptr_t)arg;
    for (unsigned long i = 0; i < iters; i++) {
        node *n = (node *)ca_binned__recycler_pop(&g_r);
        if (!n)
            continue;
        if (__atomic_exchange_n(&n->owned, 1, __ATOMIC_ACQ_REL))
            __atomic_fetch_add(&g_errors, 1, __ATOMIC_RELAXED);
        __atomic_store_n(&n->owned, 0, __ATOMIC_RELEASE);
        ca_binned__recycler_push(&g_r, n);
    }
    return NULL;
}

CA_TT(threaded_stress)
{
    ca_binned__recycler_init(&g_r);
    for (int i = 0; i < NODES; i++)
        ca_binned__recycler_push(&g_r, &g_nodes[i]);
    __atomic_store_n(&g_yield, 1, __ATOMIC_RELAXED);
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, stress_thread, (void *)(uintptr_t)20000);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    __atomic_store_n(&g_yield, 0, __ATOMIC_RELAXED);
    int count = 0;
    while (ca_binned__recycler_pop(&g_r) && count <= NODES)
        count++;
    CA_TT_ASSERT(g_errors == 0, "%d nodes handed out twice", g_errors);
    CA_TT_ASSERT(count == NODES, "%d nodes on the stack after the stress, want %d", count, NODES);
}
