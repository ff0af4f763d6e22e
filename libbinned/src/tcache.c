/* SPDX-License-Identifier: MIT */
/*
 * libbinned thread caches: per thread and instance, one bin per class with a
 * stack of free slots in an array outside the blocks. This file has the slow
 * paths of the fast path in binned.c: refill (recycler bundle, else carve
 * from the blocks), flush (a bundle to the recycler, else back to the
 * blocks), set-up on first use, the trim epoch, the return of the cache at
 * thread exit, and the pool of bundle descriptors.
 *
 * Concurrency model: a cache is touched only by its thread. The registry of
 * live caches (for stats, check and fork) is a list under the instance's
 * registry lock. The default instance's cache is static TLS (initial-exec,
 * so it exists from the thread's first instruction, with no allocation);
 * other instances keep their caches behind a pthread key, in pages from the
 * instance's source. The bins' arrays (every class's starter array of 16
 * pointers, then its full array of cache_max; about 45 KiB, touched on use)
 * are one region from the source per cache, kept on the instance's spare
 * list when the thread exits. Both kinds use
 * the key's destructor to return the cache when the thread exits;
 * afterwards the cache is DEAD: its bins have no array, so every operation
 * of a late caller (another destructor) goes straight to the recycler and
 * the blocks.
 *
 * Read ca_binned__alloc_slow first.
 */
#include "binned_internal.h"

#include <time.h>

__thread ca_binned__tcache ca_binned__tls __attribute__((tls_model("initial-exec")));

uint64_t ca_binned__now_ns(void)
{
    struct timespec ts;
    ca_binned__clock(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void ca_binned__tcache_registry_add(ca_binned *b, ca_binned__tcache *tc)
{
    ca_binned__spin_lock(&b->reg_lock, CA_LOCK_RANK_BINNED_REGISTRY);
    CA_DLIST_PUSH(b->threads, tc, prev, next);
    __atomic_fetch_add(&b->nthreads_seen, 1, __ATOMIC_RELAXED); /* read by stats without the lock */
    ca_binned__spin_unlock(&b->reg_lock, CA_LOCK_RANK_BINNED_REGISTRY);
}

void ca_binned__tcache_registry_remove(ca_binned *b, ca_binned__tcache *tc)
{
    ca_binned__spin_lock(&b->reg_lock, CA_LOCK_RANK_BINNED_REGISTRY);
    CA_DLIST_UNLINK(b->threads, tc, prev, next);
    ca_binned__spin_unlock(&b->reg_lock, CA_LOCK_RANK_BINNED_REGISTRY);
}

/* ------------------------------------------------------------------------
 * Bundle descriptors: a lock-free pool, refilled a chunk at a time
 * ------------------------------------------------------------------------ */

#define POOL_CHUNK ((size_t)64 << 10)
#define POOL_FIRST ((size_t)64) /* the chunk link, then descriptors from here */

ca_binned__bundle *ca_binned__bundle_get(ca_binned *b)
{
    ca_binned__bundle *d = (ca_binned__bundle *)ca_binned__recycler_pop(&b->bundle_pool);
    if (d)
        return d;
    ca_binned__spin_lock(&b->pool_lock, CA_LOCK_RANK_BINNED_POOL);
    d = (ca_binned__bundle *)ca_binned__recycler_pop(&b->bundle_pool);
    if (!d) {
        size_t gran = ca_source_granule(b->src);
        size_t sz = ca_align_up(POOL_CHUNK, gran);
        void *mem = NULL;
        if (ca_source_obtain(b->src, sz, gran, &mem) == 0) {
            *(void **)mem = b->pool_chunks;
            b->pool_chunks = mem;
            char *first = (char *)mem + POOL_FIRST;
            size_t count = (sz - POOL_FIRST) / sizeof(ca_binned__bundle);
            for (size_t k = count; k-- > 1;)
                ca_binned__recycler_push(&b->bundle_pool, first + k * sizeof(ca_binned__bundle));
            d = (ca_binned__bundle *)(void *)first;
        }
    }
    ca_binned__spin_unlock(&b->pool_lock, CA_LOCK_RANK_BINNED_POOL);
    return d;
}

void ca_binned__bundle_put(ca_binned *b, ca_binned__bundle *d) { ca_binned__recycler_push(&b->bundle_pool, d); }

/* ------------------------------------------------------------------------
 * Arrays regions and set-up
 * ------------------------------------------------------------------------ */

/* Entries of class cls's full array (0: its starter is its full size). */
static size_t full_entries(unsigned cls)
{
    uint32_t m = ca_binned__classes[cls].cache_max;
    return m > ca_binned__bin_starter(cls) ? m : 0;
}

size_t ca_binned__arrays_bytes(void)
{
    size_t n = 0;
    for (unsigned i = 0; i < CA_BINNED__NCLASSES; i++)
        n += ca_binned__bin_starter(i) + full_entries(i);
    return n * sizeof(void *);
}

/* Class cls's full array in the arrays region a: after every starter. */
static void **full_array(void **a, unsigned cls)
{
    for (unsigned i = 0; i < CA_BINNED__NCLASSES; i++)
        a += ca_binned__bin_starter(i);
    for (unsigned i = 0; i < cls; i++)
        a += full_entries(i);
    return a;
}

/* Move a bin on its starter array to its full one, with what it holds (a
 * slow path, once per class and thread). */
static void bin_grow(ca_binned__tcache *tc, unsigned cls)
{
    ca_binned__bin *bin = &tc->bins[cls];
    uint32_t cap = ca_binned__classes[cls].cache_max;
    if ((uint32_t)(bin->limit - bin->base) == cap)
        return;
    void **full = full_array(tc->arrays, cls);
    uint32_t n = ca_binned__bin_count(bin);
    memcpy(full, bin->base, n * sizeof(void *));
    bin->base = full;
    bin->top = full + n;
    bin->limit = full + cap;
}

static void **arrays_get(ca_binned *b)
{
    ca_binned__spin_lock(&b->reg_lock, CA_LOCK_RANK_BINNED_REGISTRY);
    void **r = (void **)b->spare_arrays;
    if (r)
        b->spare_arrays = *r;
    ca_binned__spin_unlock(&b->reg_lock, CA_LOCK_RANK_BINNED_REGISTRY);
    if (r)
        return r;
    void *mem = NULL;
    size_t gran = ca_source_granule(b->src);
    if (ca_source_obtain(b->src, ca_align_up(ca_binned__arrays_bytes(), gran), gran, &mem) != 0)
        return NULL;
    return (void **)mem;
}

static void bins_detach(ca_binned__tcache *tc)
{
    for (unsigned i = 0; i < CA_BINNED__NCLASSES; i++) {
        ca_binned__bin *bin = &tc->bins[i];
        bin->top = bin->base = bin->limit = NULL;
    }
}

void ca_binned__arrays_release(ca_binned *b, ca_binned__tcache *tc)
{
    void **r = tc->arrays;
    bins_detach(tc);
    if (!r)
        return;
    tc->arrays = NULL;
    ca_binned__spin_lock(&b->reg_lock, CA_LOCK_RANK_BINNED_REGISTRY);
    *r = b->spare_arrays;
    b->spare_arrays = r;
    ca_binned__spin_unlock(&b->reg_lock, CA_LOCK_RANK_BINNED_REGISTRY);
}

/* Give tc its arrays and make it LIVE; false when no memory (tc stays NONE:
 * its thread runs uncached and tries again on a later slow path). */
static bool tcache_setup(ca_binned *b, ca_binned__tcache *tc)
{
    if (!tc->arrays) {
        tc->arrays = arrays_get(b);
        if (!tc->arrays)
            return false;
    }
    void **a = tc->arrays;
    for (unsigned i = 0; i < CA_BINNED__NCLASSES; i++) {
        ca_binned__bin *bin = &tc->bins[i];
        bin->base = bin->top = a;
        a += ca_binned__bin_starter(i);
        bin->limit = a;
    }
    tc->owner = b;
    tc->in_tls = b->is_default;
    tc->epoch = __atomic_load_n(&b->epoch, __ATOMIC_ACQUIRE);
    tc->state = CA_BINNED__TC_LIVE;
    ca_binned__tcache_registry_add(b, tc);
    /* The key's destructor returns the cache at thread exit. */
    pthread_setspecific(b->key, tc);
    return true;
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
    ca_binned__spin_lock(&b->reg_lock, CA_LOCK_RANK_BINNED_REGISTRY);
    tc = b->spare_caches;
    if (tc)
        b->spare_caches = tc->next;
    ca_binned__spin_unlock(&b->reg_lock, CA_LOCK_RANK_BINNED_REGISTRY);
    if (!tc) {
        void *mem = NULL;
        size_t sz = ca_align_up(sizeof(ca_binned__tcache), ca_source_granule(b->src));
        if (ca_source_obtain(b->src, sz, ca_source_granule(b->src), &mem) != 0)
            return NULL;
        tc = (ca_binned__tcache *)mem;
    }
    memset(tc, 0, sizeof *tc);
    if (!tcache_setup(b, tc)) {
        ca_binned__spin_lock(&b->reg_lock, CA_LOCK_RANK_BINNED_REGISTRY);
        tc->next = b->spare_caches;
        b->spare_caches = tc;
        ca_binned__spin_unlock(&b->reg_lock, CA_LOCK_RANK_BINNED_REGISTRY);
        return NULL;
    }
    return tc;
}

/* ------------------------------------------------------------------------
 * Refill and flush
 * ------------------------------------------------------------------------ */

/* Recycler bound. A flush that finds the recycler full sends its slots to
 * the blocks (a put under the class lock, about 30 instructions a slot),
 * and a refill that finds the recycler empty carves them back (a take):
 * a program that frees a large structure and builds the next one (an
 * interpreter's dicts, a parser's tree) pays both for every slot, where the
 * recycler moves a bundle for the price of a pointer copy. So the bound
 * follows the program, with the same hysteresis as the keep budget of
 * EMPTY blocks (central.c), one purge policy:
 *   - a flush that spills for lack of room counts the slots spilled;
 *   - a refill from the blocks while spilled slots wait is the round trip:
 *     the bound grows by what was spilled, at least doubling, up to
 *     rec_cap (CA_BINNED__REC_GROWTH times the recycler_bytes option);
 *   - each decay pass halves a bound that did not grow since the pass
 *     before, down to rec_floor (the option); a recycler nobody popped from
 *     is drained to the blocks by the same pass, so idle memory still goes
 *     back within a decay interval.
 * All fields are relaxed atomics: racing threads may lose an update, which
 * only delays a step. */
void ca_binned__rec_spill(ca_binned__class *c, uint64_t n)
{
    __atomic_fetch_add(&c->rec_spilled, n, __ATOMIC_RELAXED);
}

void ca_binned__rec_refill_miss(ca_binned__class *c, unsigned cls)
{
    if (!__atomic_load_n(&c->rec_spilled, __ATOMIC_RELAXED))
        return;
    uint64_t spilled = __atomic_exchange_n(&c->rec_spilled, 0, __ATOMIC_RELAXED);
    uint64_t m = __atomic_load_n(&c->rec_max, __ATOMIC_RELAXED);
    uint64_t grow = spilled / ca_binned__classes[cls].batch + 1;
    uint64_t next = m + (grow > m ? grow : m);
    if (next > c->rec_cap)
        next = c->rec_cap;
    if (next > m) {
        __atomic_store_n(&c->rec_max, next, __ATOMIC_RELAXED);
        __atomic_store_n(&c->rec_grew, 1, __ATOMIC_RELAXED);
    }
}

void ca_binned__rec_decay(ca_binned__class *c)
{
    if (__atomic_exchange_n(&c->rec_grew, 0, __ATOMIC_RELAXED))
        return;
    uint64_t m = __atomic_load_n(&c->rec_max, __ATOMIC_RELAXED);
    if (m > c->rec_floor)
        __atomic_store_n(&c->rec_max, m / 2 > c->rec_floor ? m / 2 : c->rec_floor, __ATOMIC_RELAXED);
}

void ca_binned__give_back(ca_binned *b, unsigned cls, void *const *slots, uint32_t n, bool to_blocks)
{
    ca_binned__class *c = &b->classes[cls];
    uint32_t batch = ca_binned__classes[cls].batch;
    uint64_t room = __atomic_load_n(&c->rec_max, __ATOMIC_RELAXED);
    while (!to_blocks && n >= batch && __atomic_load_n(&c->rec_bundles, __ATOMIC_RELAXED) < room) {
        ca_binned__bundle *d = ca_binned__bundle_get(b);
        if (!d)
            break;
        n -= batch;
        d->n = batch;
        d->cls = cls;
        memcpy(d->slots, slots + n, batch * sizeof(void *));
        __atomic_fetch_add(&c->rec_bundles, 1, __ATOMIC_RELAXED);
        __atomic_fetch_add(&c->rec_slots, batch, __ATOMIC_RELAXED);
        ca_binned__recycler_push(&c->rec, d);
    }
    /* What is left of a bin (an exiting thread's, an idle one the cache GC
     * gives back) goes as a partial bundle while the recycler has room: the
     * next refill takes it without the class lock, where the blocks would
     * cost a put now and a take then (a program of short-lived threads
     * spent most of its allocator time there). A single slot goes to the
     * blocks. */
    if (!to_blocks && n >= 2 && __atomic_load_n(&c->rec_bundles, __ATOMIC_RELAXED) < room) {
        ca_binned__bundle *d = ca_binned__bundle_get(b);
        if (d) {
            d->n = n;
            d->cls = cls;
            memcpy(d->slots, slots, n * sizeof(void *));
            __atomic_fetch_add(&c->rec_bundles, 1, __ATOMIC_RELAXED);
            __atomic_fetch_add(&c->rec_slots, n, __ATOMIC_RELAXED);
            ca_binned__recycler_push(&c->rec, d);
            n = 0;
        }
    }
    if (n) {
        if (!to_blocks && n >= 2)
            ca_binned__rec_spill(c, n); /* no room (or no descriptor) */
        ca_binned__central_put(b, cls, slots, n);
    }
}

void ca_binned__tcache_flush_all(ca_binned *b, ca_binned__tcache *tc, bool to_blocks)
{
    for (unsigned i = 0; i < CA_BINNED__NCLASSES; i++) {
        ca_binned__bin *bin = &tc->bins[i];
        uint32_t n = ca_binned__bin_count(bin);
        if (!n)
            continue;
        bin->top = bin->base;
        tc->moved[i] += n;
        ca_binned__give_back(b, i, bin->base, n, to_blocks);
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

/* Some class went over its keep budget since the last purge. */
static inline bool over_keep_any(ca_binned *b)
{
    return (__atomic_load_n(&b->over_keep[0], __ATOMIC_RELAXED) |
            __atomic_load_n(&b->over_keep[1], __ATOMIC_RELAXED)) != 0;
}

void ca_binned__maybe_purge(ca_binned *b)
{
    /* With the background thread running, no purge (and no system call) on
     * an allocation path: its pass, every maintenance period (a quarter of
     * the decay interval), returns the excess in runs of adjacent blocks,
     * where a purge here would return each block as it empties, one
     * madvise pair per block (a program freeing 100 MiB of 48-byte objects
     * made 2,700 calls). Memory a class frees and takes back within the
     * period never leaves. */
    if (b->background) {
        if (ca_likely(ca_binned__large_background_running(b)))
            return;
        if (over_keep_any(b)) {
            ca_binned__large_background(b);
            if (ca_binned__large_background_running(b))
                return;
        }
    }
    ca_binned__purge_pass(b);
}

void ca_binned__purge_pass(ca_binned *b)
{
    bool asap = over_keep_any(b);
    uint64_t now = ca_binned__now_ns();
    bool due = b->decay_ns != 0 && now >= __atomic_load_n(&b->next_purge_ns, __ATOMIC_RELAXED);
    if (!due && !asap)
        return;
    if (!ca_lock_try_ranked(&b->purge_lock, CA_LOCK_RANK_BINNED_REGISTRY, CA_BINNED__COMP))
        return;
    if (!due) {
        /* Classes went over their keep budget: only their excess goes back. */
        for (unsigned w = 0; w < 2; w++)
            for (uint64_t m = __atomic_exchange_n(&b->over_keep[w], 0, __ATOMIC_RELAXED); m; m &= m - 1)
                (void)ca_binned__central_purge(b, w * 64 + (unsigned)__builtin_ctzll(m), CA_BINNED__PURGE_EXCESS,
                                               NULL);
        ca_binned__spin_unlock(&b->purge_lock, CA_LOCK_RANK_BINNED_REGISTRY);
        return;
    }
    __atomic_store_n(&b->over_keep[0], 0, __ATOMIC_RELAXED); /* the pass below covers every class */
    __atomic_store_n(&b->over_keep[1], 0, __ATOMIC_RELAXED);
    /* Two passes per decay interval: a block EMPTY at one pass and still
     * EMPTY at the next is decommitted. */
    __atomic_store_n(&b->next_purge_ns, now + b->decay_ns / 2, __ATOMIC_RELAXED);
    size_t committed = 0, pending = 0;
    for (unsigned i = 0; i < CA_BINNED__NCLASSES; i++) {
        ca_binned__central_drain_idle(b, i);
        size_t left = 0;
        committed += ca_binned__central_purge(b, i, CA_BINNED__PURGE_DUE, &left);
        pending += left;
    }
    /* EMPTY blocks wait for a later pass: a background thread runs it
     * should the program stop calling the allocator. */
    if (pending)
        ca_binned__large_background(b);
    /* Memory-pressure policy: above the bound, every thread returns its
     * cache on its next slow path (the trim epoch moves) and the recyclers
     * go back to the blocks, where the next passes decommit what empties. */
    if (b->pressure_bytes && committed > b->pressure_bytes) {
        __atomic_fetch_add(&b->epoch, 1, __ATOMIC_ACQ_REL);
        __atomic_fetch_add(&b->pressure_trims, 1, __ATOMIC_RELAXED);
        for (unsigned i = 0; i < CA_BINNED__NCLASSES; i++) {
            __atomic_store_n(&b->classes[i].rec_max, b->classes[i].rec_floor, __ATOMIC_RELAXED);
            ca_binned__central_drain_recycler(b, i);
        }
    }
    ca_binned__spin_unlock(&b->purge_lock, CA_LOCK_RANK_BINNED_REGISTRY);
}

static void *alloc_uncached(ca_binned *b, unsigned cls)
{
    ca_binned__class *c = &b->classes[cls];
    void *p = NULL;
    ca_binned__bundle *d = (ca_binned__bundle *)ca_binned__recycler_pop(&c->rec);
    if (d) {
        __atomic_fetch_sub(&c->rec_bundles, 1, __ATOMIC_RELAXED);
        __atomic_fetch_sub(&c->rec_slots, d->n, __ATOMIC_RELAXED);
        __atomic_store_n(&c->rec_used, 1, __ATOMIC_RELAXED);
        p = d->slots[d->n - 1];
        if (d->n > 1)
            ca_binned__central_put(b, cls, d->slots, d->n - 1);
        ca_binned__bundle_put(b, d);
    } else if (ca_binned__class_ready(b, cls), ca_binned__rec_refill_miss(c, cls),
               !ca_binned__central_take(b, cls, 1, &p)) {
        errno = ENOMEM;
        return NULL;
    }
    __atomic_fetch_add(&c->exited_allocs, 1, __ATOMIC_RELAXED);
    return p;
}

/* Cache GC, every GC_PERIOD slow paths of a thread: a bin that served no
 * malloc since the previous GC gives every slot back. Cached slots keep
 * their blocks committed: a program that moved on to other sizes (strings
 * grown by realloc pass through every class) would otherwise pin a block
 * per cached slot for the thread's life. Bins in use are left alone, so
 * steady workloads never see it. Whole bundles go to the recycler, not to
 * the blocks: a thread that only frees (the consumer of a producer/consumer
 * pair) hands its slots to the allocating thread without the class lock;
 * a recycler nobody pops from is drained to the blocks by the decay pass. */
#define GC_PERIOD 64u

static void cache_gc(ca_binned *b, ca_binned__tcache *tc)
{
    if (++tc->gc_tick < GC_PERIOD)
        return;
    tc->gc_tick = 0;
    for (unsigned i = 0; i < CA_BINNED__NCLASSES; i++) {
        ca_binned__bin *bin = &tc->bins[i];
        uint32_t n = ca_binned__bin_count(bin);
        if (n && (uint32_t)bin->allocs == tc->gc_allocs[i]) {
            bin->top = bin->base;
            tc->moved[i] += n;
            ca_binned__give_back(b, i, bin->base, n, false);
        }
        tc->gc_allocs[i] = (uint32_t)bin->allocs;
    }
}

void *ca_binned__alloc_slow(ca_binned *b, ca_binned__tcache *tc, unsigned cls)
{
    if (b->starter_base && cls < CA_BINNED__STARTER_CLASSES) {
        void *s = ca_binned__starter_take(b, cls);
        if (s)
            return s;
    }
    if (tc && tc->state == CA_BINNED__TC_NONE && !(b->flags & CA_BINNED_NO_TCACHE))
        tcache_setup(b, tc);
    if (!tc || tc->state != CA_BINNED__TC_LIVE)
        return alloc_uncached(b, cls);
    notice_epoch(b, tc);
    ca_binned__maybe_purge(b);

    ca_binned__class *c = &b->classes[cls];
    ca_binned__bin *bin = &tc->bins[cls];
    if (bin->top == bin->base) {
        ca_binned__bundle *d = (ca_binned__bundle *)ca_binned__recycler_pop(&c->rec);
        uint32_t n, want = ca_binned__classes[cls].batch;
        uint32_t cap = (uint32_t)(bin->limit - bin->base);
        if (cap != ca_binned__classes[cls].cache_max) {
            /* On the starter: a first refill carves what it holds; the
             * next one (or a bundle) moves to the full array and carves the
             * rest of the batch, so that the slots carved add up as they
             * would have in whole batches. */
            if (!d && !bin->allocs) {
                if (want > cap)
                    want = cap;
            } else {
                bin_grow(tc, cls);
                if (want > cap)
                    want -= cap;
            }
        }
        if (d) {
            __atomic_fetch_sub(&c->rec_bundles, 1, __ATOMIC_RELAXED);
            __atomic_fetch_sub(&c->rec_slots, d->n, __ATOMIC_RELAXED);
            __atomic_store_n(&c->rec_used, 1, __ATOMIC_RELAXED);
            n = d->n;
            memcpy(bin->base, d->slots, n * sizeof(void *));
            ca_binned__bundle_put(b, d);
        } else {
            ca_binned__class_ready(b, cls);
            ca_binned__rec_refill_miss(c, cls);
            n = ca_binned__central_take(b, cls, want, bin->base);
            if (!n) {
                errno = ENOMEM;
                return NULL;
            }
            /* Lowest address on top: carved slots go out in address order. */
            for (uint32_t i = 0, j = n - 1; i < j; i++, j--) {
                void *x = bin->base[i];
                bin->base[i] = bin->base[j];
                bin->base[j] = x;
            }
        }
        bin->top = bin->base + n;
        tc->moved[cls] -= n;
    }
    bin->top--;
    bin->allocs++;
    void *p = *bin->top;
    cache_gc(b, tc);
    return p;
}

void ca_binned__free_slow(ca_binned *b, ca_binned__tcache *tc, unsigned cls, void *p)
{
    if (!tc) {
        __atomic_fetch_add(&b->classes[cls].exited_frees, 1, __ATOMIC_RELAXED);
        ca_binned__central_put(b, cls, &p, 1);
        return;
    }
    ca_binned__bin *bin = &tc->bins[cls];
    if (tc->state == CA_BINNED__TC_NONE && !(b->flags & CA_BINNED_NO_TCACHE))
        tcache_setup(b, tc);
    if (tc->state != CA_BINNED__TC_LIVE) {
        /* Exiting thread or no caching: straight back. */
        __atomic_fetch_add(&b->classes[cls].exited_frees, 1, __ATOMIC_RELAXED);
        ca_binned__give_back(b, cls, &p, 1, false);
        return;
    }
    uint64_t e = __atomic_load_n(&b->epoch, __ATOMIC_ACQUIRE);
    if (ca_unlikely(e != tc->epoch)) {
        tc->epoch = e;
        ca_binned__tcache_flush_all(b, tc, true);
    }
    if (bin->top != bin->limit) {
        *bin->top++ = p;
        return;
    }
    if ((uint32_t)(bin->limit - bin->base) != ca_binned__classes[cls].cache_max) {
        bin_grow(tc, cls); /* the starter is full: room in the full array */
        *bin->top++ = p;
        return;
    }
    /* Full: the newest batch - 1 cached slots and p leave as one bundle. */
    uint32_t batch = ca_binned__classes[cls].batch;
    void *out[CA_BINNED__BATCH_MAX];
    bin->top -= batch - 1;
    memcpy(out, bin->top, (batch - 1) * sizeof(void *));
    out[batch - 1] = p;
    tc->moved[cls] += batch;
    ca_binned__give_back(b, cls, out, batch, false);
    cache_gc(b, tc);
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
        if (!bin->allocs && !tc->moved[i])
            continue; /* nothing to add: the class's state stays untouched */
        __atomic_fetch_add(&b->classes[i].exited_allocs, bin->allocs, __ATOMIC_RELAXED);
        __atomic_fetch_add(&b->classes[i].exited_frees, (uint64_t)((int64_t)bin->allocs + tc->moved[i]),
                           __ATOMIC_RELAXED);
        bin->allocs = 0;
        tc->moved[i] = 0;
    }
    ca_binned__arrays_release(b, tc);
    tc->state = CA_BINNED__TC_DEAD;
    if (!tc->in_tls) {
        ca_binned__spin_lock(&b->reg_lock, CA_LOCK_RANK_BINNED_REGISTRY);
        tc->next = b->spare_caches;
        b->spare_caches = tc;
        ca_binned__spin_unlock(&b->reg_lock, CA_LOCK_RANK_BINNED_REGISTRY);
    }
}
