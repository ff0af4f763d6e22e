/* SPDX-License-Identifier: MIT */
/* Thread exit and the large tier (plain runner, also under TSan):
 *  - the caches of exited threads go to the dirty pools within the tier's
 *    dirty cap (they used to skip it: 32 workers left 659 MiB dirty);
 *  - a pthread key destructor that frees a large block in the last
 *    destructor round, after the tier's own exit flush, does not leave a
 *    cache behind (one leaked per thread before). */
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "ca_test.h"
#include "ca_tt.h"
#include "large_internal.h"

static ca_binned_large *make_tier(size_t dirty_max)
{
    ca_binned_large_options o;
    memset(&o, 0, sizeof o);
    o.dirty_max = dirty_max;
    o.cache_bytes = (size_t)32 << 20;
    o.dirty_decay_ms = 600000; /* no decay during the test: only the cap purges */
    o.unmap_decay_ms = 600000;
    ca_binned_large *l = NULL;
    return ca_binned_large_create(&l, &o) == 0 ? l : NULL;
}

static void *burst(void *arg)
{
    ca_binned_large *l = (ca_binned_large *)arg;
    void *p[6];
    for (int i = 0; i < 6; i++) {
        p[i] = ca_binned_large_alloc(l, ((size_t)1 + (size_t)(i % 4)) << 20, 16, NULL);
        if (p[i])
            memset(p[i], 1, 4096);
    }
    for (int i = 0; i < 6; i++)
        ca_binned_large_free(l, p[i]); /* into this thread's cache (32 MiB bound) */
    return NULL;
}

CA_TT(exited_caches_within_dirty_cap)
{
    const size_t cap = (size_t)8 << 20;
    ca_binned_large *l = make_tier(cap);
    CA_TT_ASSERT(l != NULL, "tier");
    for (int round = 0; round < 4; round++) {
        pthread_t t[8];
        for (int i = 0; i < 8; i++)
            CA_TT_ASSERT(pthread_create(&t[i], NULL, burst, l) == 0, "create");
        for (int i = 0; i < 8; i++)
            pthread_join(t[i], NULL);
    }
    uint64_t dirty = __atomic_load_n(&l->dirty_total, __ATOMIC_RELAXED);
    CA_TT_ASSERT(dirty <= cap, "exited threads left %llu MiB dirty, cap %zu MiB", (unsigned long long)(dirty >> 20),
                 cap >> 20);
    ca_binned_large_destroy(l);
}

/* ------------------------------------------------------------------------ */

static ca_binned_large *g_tier;
static pthread_key_t g_key;

/* Re-armed for the first rounds of destructors; frees the block in the
 * last one (PTHREAD_DESTRUCTOR_ITERATIONS is 4 in glibc), when the tier's
 * own exit flush has run. */
static void late_free(void *v)
{
    uintptr_t *s = (uintptr_t *)v;
    if (++s[1] < 4) {
        pthread_setspecific(g_key, s);
        return;
    }
    ca_binned_large_free(g_tier, (void *)s[0]);
}

static void *with_late_free(void *arg)
{
    (void)arg;
    static __thread uintptr_t state[2];
    void *p = ca_binned_large_alloc(g_tier, (size_t)1 << 20, 16, NULL); /* makes this thread's cache */
    if (!p)
        return NULL;
    ca_binned_large_free(g_tier, ca_binned_large_alloc(g_tier, (size_t)1 << 20, 16, NULL));
    state[0] = (uintptr_t)p;
    state[1] = 0;
    pthread_setspecific(g_key, state);
    return NULL;
}

static size_t live_caches(ca_binned_large *l)
{
    size_t n = 0;
    ca_binned__large_lock(&l->caches_lock, CA_LOCK_RANK_LARGE_CACHES);
    for (ca_binned__large_cache *c = l->caches; c; c = c->next)
        n++;
    ca_binned__large_unlock(&l->caches_lock, CA_LOCK_RANK_LARGE_CACHES);
    return n;
}

#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif

CA_TT(late_destructor_leaves_no_cache)
{
#ifdef UNDER_TSAN
    /* ThreadSanitizer finishes a thread in an early destructor round: code in
     * the last round crashes its runtime. The other cells run this test. */
    puts("  skipped under ThreadSanitizer (destructors in the last round)");
    return;
#endif
    g_tier = make_tier((size_t)64 << 20);
    CA_TT_ASSERT(g_tier != NULL, "tier");
    /* The tier's key exists now (created with the first tier), so this key
     * has a higher index: its destructor runs after the tier's flush. */
    CA_TT_ASSERT(pthread_key_create(&g_key, late_free) == 0, "key");
    size_t before = live_caches(g_tier);
    for (int i = 0; i < 50; i++) {
        pthread_t t;
        CA_TT_ASSERT(pthread_create(&t, NULL, with_late_free, NULL) == 0, "create");
        pthread_join(t, NULL);
    }
    size_t after = live_caches(g_tier);
    CA_TT_ASSERT(after == before, "%zu caches of exited threads left behind", after - before);
    ca_stats st;
    ca_binned_large_stats(g_tier, &st);
    CA_TT_ASSERT(st.bytes_in_use == 0, "%llu bytes still in use", (unsigned long long)st.bytes_in_use);
    pthread_key_delete(g_key);
    ca_binned_large_destroy(g_tier);
}


