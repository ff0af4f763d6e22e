/* SPDX-License-Identifier: MIT */
/*
 * One ca_rbtree shared by several threads through core's locked adaptor
 * (mutex and spin): random alloc / resize / free with content checks, then
 * the invariant walk and zero bytes in use. Plain executable (runs under TSan).
 */
#include <ctxalloc/rbtree.h>
#include <pthread.h>

#include "ca_test.h"
#include "ca_tt.h"

typedef struct worker {
    ca_allocator *a;
    uint64_t seed;
    int bad;
} worker;

static void *run(void *arg)
{
    worker *w = (worker *)arg;
    enum { N = 200 };
    char *p[N] = {0};
    size_t sz[N] = {0};
    ca_rng rng = {w->seed};
    uint64_t ops = 20000 * ca_test_scale();
    for (uint64_t op = 0; op < ops; op++) {
        size_t i = ca_rng_below(&rng, N);
        size_t s = 1 + ca_rng_below(&rng, ca_rng_below(&rng, 16) ? 512 : 65536);
        if (!p[i]) {
            p[i] = (char *)ca_alloc(w->a, s, 16);
            if (!p[i]) {
                w->bad = 1;
                return NULL;
            }
            sz[i] = s;
            ca_test_fill(p[i], s < 128 ? s : 128, i ^ w->seed);
            continue;
        }
        if (!ca_test_verify(p[i], sz[i] < 128 ? sz[i] : 128, i ^ w->seed)) {
            w->bad = 2;
            return NULL;
        }
        if (ca_rng_below(&rng, 4) == 0) {
            char *q = (char *)ca_resize(w->a, p[i], sz[i], s, 16, 0);
            if (!q) {
                w->bad = 3;
                return NULL;
            }
            size_t keep = (sz[i] < s ? sz[i] : s);
            if (!ca_test_verify(q, keep < 128 ? keep : 128, i ^ w->seed)) {
                w->bad = 4;
                return NULL;
            }
            p[i] = q;
            sz[i] = s;
            ca_test_fill(q, s < 128 ? s : 128, i ^ w->seed);
        } else {
            ca_free_unsized(w->a, p[i]);
            p[i] = NULL;
        }
    }
    for (size_t i = 0; i < N; i++)
        ca_free(w->a, p[i], sz[i], 16);
    return NULL;
}

static int run_threads(ca_lock_kind kind, const char **what)
{
    ca_rbtree r;
    ca_locked_allocator l;
    ca_rbtree_init(&r, NULL);
    ca_locked_init(&l, &r.base, kind);
    unsigned n = ca_test_threads(4);
    if (n > 16)
        n = 16;
    pthread_t t[16];
    worker w[16];
    for (unsigned i = 0; i < n; i++) {
        w[i].a = &l.base;
        w[i].seed = ca_test_seed() + i * 1000003u;
        w[i].bad = 0;
        pthread_create(&t[i], NULL, run, &w[i]);
    }
    int bad = 0;
    for (unsigned i = 0; i < n; i++) {
        pthread_join(t[i], NULL);
        bad |= w[i].bad;
    }
    *what = ca_rbtree_check(&r);
    ca_stats st;
    ca_stats_get(&l.base, &st);
    if (st.bytes_in_use != 0)
        bad |= 8;
    if (!(ca_allocator_caps(&l.base) & CA_CAP_THREAD_SAFE))
        bad |= 16;
    ca_locked_destroy(&l);
    ca_rbtree_destroy(&r);
    return bad;
}

CA_TT(locked_mutex)
{
    const char *what;
    int bad = run_threads(CA_LOCK_MUTEX, &what);
    CA_TT_ASSERT(bad == 0, "worker failure %d", bad);
    CA_TT_ASSERT(what == NULL, "%s", what);
}

CA_TT(locked_spin)
{
    const char *what;
    int bad = run_threads(CA_LOCK_SPIN, &what);
    CA_TT_ASSERT(bad == 0, "worker failure %d", bad);
    CA_TT_ASSERT(what == NULL, "%s", what);
}
