/* SPDX-License-Identifier: MIT */
/*
 * libbinned thread caches: per thread and instance, one bin per class with a
 * list of free slots. This file has the slow paths of the fast path in
 * binned.c: refill (recycler bundle, else carve from the blocks), flush (a
 * bundle to the recycler, else back to the blocks), set-up on first use,
 * the trim epoch, and the return of the cache at thread exit.
 *
 * Concurrency model: a cache is touched only by its thread. The registry of
 * live caches (for stats, check and fork) is a list under the instance's
 * registry lock. The default instance's cache is static TLS (initial-exec,
 * so it exists from the thread's first instruction, with no allocation);
 * other instances keep their caches behind a pthread key, in pages from the
 * instance's source. Both use the key's destructor to return the cache when
 * the thread exits; afterwards the cache is DEAD: its bins have max 0, so
 * every operation of a late caller (another destructor) goes straight to the
 * recycler and the blocks.
 *
 * Read ca_binned__alloc_slow first.
 */
#include "binned_internal.h"

#include <time.h>

__thread ca_binned__tcache ca_binned__tls __attribute__((tls_model("initial-exec")));

uint64_t ca_binned__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void ca_binned__tcache_registry_add(ca_binned *b, ca_binned__tcache *tc)
{
    ca_binned__spin_lock(&b->reg_lock);
    tc->prev = NULL;
    tc->next = b->threads;
    if (b->threads)
        b->threads->prev = tc;
    b->threads = tc;
    b->nthreads_seen++;
    ca_binned__spin_unlock(&b->reg_lock);
}

void ca_binned__tcache_registry_remove(ca_binned *b, ca_binned__tcache *tc)
{
    ca_binned__spin_lock(&b->reg_lock);
    if (tc->prev)
        tc->prev->next = tc->next;
    else if (b->threads == tc)
        b->threads = tc->next;
    if (tc->next)
        tc->next->prev = tc->prev;
    tc->next = tc->prev = NULL;
    ca_binned__spin_unlock(&b->reg_lock);
}

static void tcache_setup(ca_binned *b, ca_binned__tcache *tc)
{
    for (unsigned i = 0; i < CA_BINNED__NCLASSES; i++) {
        tc->bins[i].max = ca_binned__classes[i].cache_max;
        /* A free may have pushed a slot before the set-up (count 1, max 0). */
    }
    tc->owner = b;
    tc->in_tls = b->is_default;
    tc->epoch = __atomic_load_n(&b->epoch, __ATOMIC_ACQUIRE);
    tc->state = CA_BINNED__TC_LIVE;
    ca_binned__tcache_registry_add(b, tc);
    /* The key's destructor returns the cache at thread exit. */
    pthread_setspecific(b->key, tc);
}

ca_binned__tcache *ca_binned__tcache_get(ca_binned *b)
{
    if (b->flags & CA_BINNED_NO_TCACHE)
        return NULL;
    if (b->is_default) {
        ca_binned__tcache *tc = &ca_binned__tls;
        if (tc->state == CA_BINNED__TC_NONE)
            tcache_setup(b, tc);
        return tc;
    }
    ca_binned__tcache *tc = (ca_binned__tcache *)pthread_getspecific(b->key);
    if (tc)
        return tc;
    /* Caches of exited threads are reused; new ones come from the source. */
    ca_binned__spin_lock(&b->reg_lock);
    tc = b->spare_caches;
    if (tc)
        b->spare_caches = tc->next;
    ca_binned__spin_unlock(&b->reg_lock);
    if (!tc) {
        void *mem = NULL;
        size_t sz = ca_align_up(sizeof(ca_binned__tcache), ca_source_granule(b->src));
        if (ca_source_obtain(b->src, sz, ca_source_granule(b->src), &mem) != 0)
            return NULL;
        tc = (ca_binned__tcache *)mem;
    }
    memset(tc, 0, sizeof *tc);
    tcache_setup(b, tc);
    return tc;
}

/* Push a list of n slots (n <= batch... any n) to the recycler as bundles of
 * `batch` while it has room; the rest goes to the blocks. */
static void give_back(ca_binned *b, unsigned cls, void *list, uint32_t n, bool to_blocks)
{
    ca_binned__class *c = &b->classes[cls];
    uint32_t batch = ca_binned__classes[cls].batch;
    while (!to_blocks && list && n >= batch &&
           __atomic_load_n(&c->rec_bundles, __ATOMIC_RELAXED) < c->rec_max) {
        void *bundle = list, *tail = list;
        for (uint32_t i = 1; i < batch; i++)
            tail = *(void **)tail;
        list = *(void **)tail;
        *(void **)tail = NULL;
        n -= batch;
        __atomic_fetch_add(&c->rec_bundles, 1, __ATOMIC_RELAXED);
        ca_binned__recycler_push(&c->rec, bundle);
    }
    if (list)
        ca_binned__central_put(b, cls, list, SIZE_MAX);
}

void ca_binned__tcache_flush_all(ca_binned *b, ca_binned__tcache *tc, bool to_blocks)
{
    for (unsigned i = 0; i < CA_BINNED__NCLASSES; i++) {
        ca_binned__bin *bin = &tc->bins[i];
        if (!bin->head)
            continue;
        void *list = bin->head;
        uint32_t n = bin->count;
        bin->head = NULL;
        bin->count = 0;
        give_back(b, i, list, n, to_blocks);
    }
}

/* Called on slow paths: the trim epoch moved, so return everything. */
static inline void notice_epoch(ca_binned *b, ca_binned__tcache *tc)
{
    uint64_t e = __atomic_load_n(&b->epoch, __ATOMIC_ACQUIRE);
    if (ca_unlikely(e != tc->epoch)) {
        tc->epoch = e;
        ca_binned__tcache_flush_all(b, tc, true);
    }
}

void ca_binned__maybe_purge(ca_binned *b)
{
    if (b->decay_ns == 0)
        return;
    uint64_t now = ca_binned__now_ns();
    if (now < __atomic_load_n(&b->next_purge_ns, __ATOMIC_RELAXED))
        return;
    int zero = 0;
    if (!__atomic_compare_exchange_n(&b->purging, &zero, 1, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
        return;
    /* Two passes per decay interval: a block EMPTY at one pass and still
     * EMPTY at the next is decommitted. */
    __atomic_store_n(&b->next_purge_ns, now + b->decay_ns / 2, __ATOMIC_RELAXED);
    size_t committed = 0;
    for (unsigned i = 0; i < CA_BINNED__NCLASSES; i++)
        committed += ca_binned__central_purge(b, i, false);
    /* Memory-pressure policy: above the bound, every thread returns its
     * cache on its next slow path (the trim epoch moves) and the recyclers
     * go back to the blocks, where the next passes decommit what empties. */
    if (b->pressure_bytes && committed > b->pressure_bytes) {
        __atomic_fetch_add(&b->epoch, 1, __ATOMIC_ACQ_REL);
        __atomic_fetch_add(&b->pressure_trims, 1, __ATOMIC_RELAXED);
        for (unsigned i = 0; i < CA_BINNED__NCLASSES; i++)
            ca_binned__central_drain_recycler(b, i);
    }
    __atomic_store_n(&b->purging, 0, __ATOMIC_RELEASE);
}

static void *alloc_uncached(ca_binned *b, unsigned cls)
{
    ca_binned__class *c = &b->classes[cls];
    void *p = NULL;
    void *bundle = ca_binned__recycler_pop(&c->rec);
    if (bundle) {
        __atomic_fetch_sub(&c->rec_bundles, 1, __ATOMIC_RELAXED);
        p = bundle;
        void *rest = *(void **)bundle;
        if (rest)
            ca_binned__central_put(b, cls, rest, SIZE_MAX);
    } else if (!ca_binned__central_take(b, cls, 1, &p, NULL)) {
        errno = ENOMEM;
        return NULL;
    }
    __atomic_fetch_add(&c->exited_allocs, 1, __ATOMIC_RELAXED);
    return p;
}

void *ca_binned__alloc_slow(ca_binned *b, ca_binned__tcache *tc, unsigned cls)
{
    if (tc && tc->state == CA_BINNED__TC_NONE && !(b->flags & CA_BINNED_NO_TCACHE))
        tcache_setup(b, tc);
    if (!tc || tc->state != CA_BINNED__TC_LIVE)
        return alloc_uncached(b, cls);
    notice_epoch(b, tc);
    ca_binned__maybe_purge(b);

    ca_binned__class *c = &b->classes[cls];
    ca_binned__bin *bin = &tc->bins[cls];
    void *head = ca_binned__recycler_pop(&c->rec);
    uint32_t n;
    if (head) {
        __atomic_fetch_sub(&c->rec_bundles, 1, __ATOMIC_RELAXED);
        n = ca_binned__classes[cls].batch;
    } else {
        n = ca_binned__central_take(b, cls, ca_binned__classes[cls].batch, &head, NULL);
        if (!n) {
            errno = ENOMEM;
            return NULL;
        }
    }
    void *p = head;
    bin->head = *(void **)p;
    bin->count = n - 1;
    bin->allocs++;
    return p;
}

void ca_binned__free_slow(ca_binned *b, ca_binned__tcache *tc, unsigned cls)
{
    ca_binned__bin *bin = &tc->bins[cls];
    if (tc->state == CA_BINNED__TC_NONE && !(b->flags & CA_BINNED_NO_TCACHE)) {
        tcache_setup(b, tc);
        if (bin->count <= bin->max)
            return;
    }
    if (tc->state != CA_BINNED__TC_LIVE) {
        /* Exiting thread or no caching: straight back. */
        void *list = bin->head;
        uint32_t n = bin->count;
        bin->head = NULL;
        bin->count = 0;
        __atomic_fetch_add(&b->classes[cls].exited_frees, bin->frees, __ATOMIC_RELAXED);
        bin->frees = 0;
        give_back(b, cls, list, n, false);
        return;
    }
    uint64_t e = __atomic_load_n(&b->epoch, __ATOMIC_ACQUIRE);
    if (ca_unlikely(e != tc->epoch)) {
        tc->epoch = e;
        ca_binned__tcache_flush_all(b, tc, true);
        return;
    }
    uint32_t batch = ca_binned__classes[cls].batch;
    void *bundle = bin->head, *tail = bundle;
    for (uint32_t i = 1; i < batch; i++)
        tail = *(void **)tail;
    bin->head = *(void **)tail;
    *(void **)tail = NULL;
    bin->count -= batch;
    give_back(b, cls, bundle, batch, false);
    ca_binned__maybe_purge(b);
}

void ca_binned__tcache_thread_exit(void *arg)
{
    ca_binned__tcache *tc = (ca_binned__tcache *)arg;
    ca_binned *b = tc->owner;
    if (!b || tc->state != CA_BINNED__TC_LIVE)
        return;
    ca_binned__tcache_flush_all(b, tc, false);
    ca_binned__tcache_registry_remove(b, tc);
    for (unsigned i = 0; i < CA_BINNED__NCLASSES; i++) {
        ca_binned__bin *bin = &tc->bins[i];
        __atomic_fetch_add(&b->classes[i].exited_allocs, bin->allocs, __ATOMIC_RELAXED);
        __atomic_fetch_add(&b->classes[i].exited_frees, bin->frees, __ATOMIC_RELAXED);
        bin->allocs = bin->frees = 0;
        bin->max = 0;
    }
    tc->state = CA_BINNED__TC_DEAD;
    if (!tc->in_tls) {
        ca_binned__spin_lock(&b->reg_lock);
        tc->next = b->spare_caches;
        b->spare_caches = tc;
        ca_binned__spin_unlock(&b->reg_lock);
    }
}
