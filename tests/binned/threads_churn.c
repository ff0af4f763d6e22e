/* SPDX-License-Identifier: MIT */
/* Thread creation and destruction churn: 1,000 threads over the run, each
 * allocating, freeing some of its blocks and handing others to the next
 * wave; every exiting thread's cache must come back (registry empty but for
 * the main thread, invariants hold, nothing in use at the end). */
#include <pthread.h>

#include "binned_test.h"
#include "ca_test.h"
#include "ca_tt.h"

enum { WAVE = 8, KEEP = 32 };
static ca_binned *g_b;
static void *g_handoff[WAVE][KEEP];
static int g_errors;

static void *churn(void *arg)
{
    unsigned slot = (unsigned)(uintptr_t)arg;
    ca_rng r = {ca_test_seed() + slot};
    /* Free what the previous thread of this slot left. */
    for (int i = 0; i < KEEP; i++)
        if (g_handoff[slot][i]) {
            if (!ca_test_verify(g_handoff[slot][i], 16, slot))
                __atomic_fetch_add(&g_errors, 1, __ATOMIC_RELAXED);
            if (g_b)
                ca_binned_free(g_b, g_handoff[slot][i]);
            else
                ca_binned_default_free(g_handoff[slot][i]);
        }
    void *mine[64];
    for (int i = 0; i < 64; i++)
        mine[i] = g_b ? ca_binned_alloc(g_b, (size_t)ca_rng_below(&r, 2000), 16)
                      : ca_binned_default_malloc((size_t)ca_rng_below(&r, 2000));
    for (int i = 0; i < 64; i++)
        if (g_b)
            ca_binned_free(g_b, mine[i]);
        else
            ca_binned_default_free(mine[i]);
    for (int i = 0; i < KEEP; i++) {
        g_handoff[slot][i] = g_b ? ca_binned_alloc(g_b, 16 + (size_t)ca_rng_below(&r, 100), 16)
                                 : ca_binned_default_malloc(16 + (size_t)ca_rng_below(&r, 100));
        ca_test_fill(g_handoff[slot][i], 16, slot);
    }
    return NULL;
}

static void run(unsigned total)
{
    memset(g_handoff, 0, sizeof g_handoff);
    for (unsigned done = 0; done < total; done += WAVE) {
        pthread_t t[WAVE];
        for (unsigned i = 0; i < WAVE; i++)
            pthread_create(&t[i], NULL, churn, (void *)(uintptr_t)i);
        for (unsigned i = 0; i < WAVE; i++)
            pthread_join(t[i], NULL);
    }
    for (unsigned s = 0; s < WAVE; s++)
        for (int i = 0; i < KEEP; i++) {
            if (g_b)
                ca_binned_free(g_b, g_handoff[s][i]);
            else
                ca_binned_default_free(g_handoff[s][i]);
        }
}

static unsigned live_caches(ca_binned *b)
{
    unsigned n = 0;
    for (ca_binned__tcache *tc = b->threads; tc; tc = tc->next)
        n++;
    return n;
}

CA_TT(churn_created_instance)
{
    ca_binned_options o;
    ca_binned_options_init(&o);
    o.class_range_log2 = 26;
    CA_TT_ASSERT(ca_binned_create(&g_b, &o) == 0, "create");
    run(1000);
    CA_TT_ASSERT(g_errors == 0, "%d corrupted hand-offs", g_errors);
    CA_TT_ASSERT(live_caches(g_b) == 1, "%u caches registered, want only the main thread's", live_caches(g_b));
    CA_TT_ASSERT(g_b->nthreads_seen == 1001, "%llu caches seen", (unsigned long long)g_b->nthreads_seen);
    const char *err = ca_binned_check(g_b);
    CA_TT_ASSERT(err == NULL, "%s", err);
    ca_binned_thread_flush(g_b);
    ca_stats s;
    ca_binned_stats(g_b, &s);
    CA_TT_ASSERT(s.bytes_in_use == 0, "%llu bytes in use", (unsigned long long)s.bytes_in_use);
    ca_binned_destroy(g_b);
    g_b = NULL;
}

CA_TT(churn_default_instance)
{
    g_b = NULL;
    ca_binned *d = ca_binned_default();
    binned_test_past_starter(1); /* this thread's cache exists (a starter slot does not make it) */
    unsigned before = live_caches(d);
    ca_stats s0, s1;
    ca_binned_stats(d, &s0);
    run(1000);
    ca_binned_stats(d, &s1);
    /* Exited threads' caches came back: nothing more is in use. */
    CA_TT_ASSERT(s1.bytes_in_use <= s0.bytes_in_use, "in use grew from %llu to %llu bytes",
                 (unsigned long long)s0.bytes_in_use, (unsigned long long)s1.bytes_in_use);
    CA_TT_ASSERT(g_errors == 0, "%d corrupted hand-offs", g_errors);
    CA_TT_ASSERT(live_caches(d) == before, "%u caches registered, want %u", live_caches(d), before);
    const char *err = ca_binned_check(d);
    CA_TT_ASSERT(err == NULL, "%s", err);
}
