/* SPDX-License-Identifier: MIT */
/*
 * libarena thread caches: the per-thread shards in front of the shared
 * cursor and free list (struct ca_arena__cache in arena_internal.h says
 * what a cache holds and its invariants; alloc.c has the paths that use it).
 *
 * Concurrency model:
 *   - A cache belongs to one thread (its owner). The owner reads and writes
 *     its chunk, bins and counters without atomics on its own data (the
 *     fields others read are stored with relaxed atomic stores, which are
 *     plain moves on x86-64). No other thread touches a cache while its
 *     owner may be inside a call.
 *   - What leaves a cache for the arena goes through the arena's lock-free
 *     paths: a rewind of the shared cursor (CAS), a bin pushed as it is onto
 *     the shared bin of its size (one tagged CAS), or a piece given to the
 *     list (a trylock, else the pending stack). What comes in from the
 *     shared bins is a chain popped with one tagged CAS (alloc.c). A cache
 *     never waits for anything.
 *   - The registry (each arena's list of caches, and a cache's `arena`
 *     pointer) is guarded by one process-wide mutex, reg_lock, taken only
 *     when a cache is made, when a thread exits, and by close, reset, stats
 *     and check. A thread's caches are found through a small thread-local
 *     table keyed by the arena's id (never reused, so a closed arena's stale
 *     entry can never match a new arena at the same address).
 *   - A thread keeps CA_ARENA__TL_SLOTS caches; using one more arena gives
 *     the least recently used one back (drained, unlinked, unmapped).
 *   - Lifetime: the owner's thread-exit destructor drains each cache into
 *     its arena, unlinks it and unmaps it. ca_arena_close drains every cache
 *     of the arena and marks it orphaned (arena NULL); the owner unmaps an
 *     orphan when it needs the slot or at exit.
 *   - Caches are mapped pages, not malloc'd: the arena may itself be the
 *     allocator behind malloc (libswitch), and must not call into it.
 *
 * Read first: ca_arena__cache_slow, then ca_arena__cache_drain.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "arena_internal.h"

#define COMP        "arena"
#define CACHE_BYTES 4096u

_Thread_local ca_arena__tl_slot ca_arena__tl[CA_ARENA__TL_SLOTS];

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static pthread_key_t exit_key;
static bool exit_key_ok;
static _Thread_local bool making; /* a cache is being made: nested calls go uncached */

static inline uint64_t rl(const uint64_t *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
static inline void rs(uint64_t *p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }

/* Counters of a cache that stops serving go to the arena's first shard. */
static void fold_counters(ca_arena *a, ca_arena__cache *c)
{
    __atomic_fetch_add(&a->shard[0].allocs, rl(&c->allocs), __ATOMIC_RELAXED);
    __atomic_fetch_add(&a->shard[0].frees, rl(&c->frees), __ATOMIC_RELAXED);
    __atomic_fetch_add(&a->shard[0].in_use, rl(&c->in_use), __ATOMIC_RELAXED);
    __atomic_fetch_add(&a->shard[0].rewinds, rl(&c->rewinds), __ATOMIC_RELAXED);
    __atomic_fetch_add(&a->shard[0].sbin_bytes, rl(&c->sbin_bytes), __ATOMIC_RELAXED);
    __atomic_fetch_add(&a->shard[0].sbin_blocks, rl(&c->sbin_blocks), __ATOMIC_RELAXED);
    ca_arena__sbin_publish(a, c);
    rs(&c->sbin_bytes, 0);
    rs(&c->sbin_blocks, 0);
    rs(&c->allocs, 0);
    rs(&c->frees, 0);
    rs(&c->in_use, 0);
    rs(&c->rewinds, 0);
}

static void unlink_cache(ca_arena *a, ca_arena__cache *c)
{
    for (ca_arena__cache **p = &a->caches; *p; p = &(*p)->next)
        if (*p == c) {
            *p = c->next;
            return;
        }
}

/* Thread exit: every cache of the thread goes back to its arena. */
static void on_thread_exit(void *unused)
{
    (void)unused;
    for (unsigned i = 0; i < CA_ARENA__TL_SLOTS; i++) {
        ca_arena__cache *c = ca_arena__tl[i].c;
        ca_arena__tl[i].id = 0;
        ca_arena__tl[i].c = NULL;
        if (!c)
            continue;
        ca_arena__lock(&reg_lock, CA_LOCK_RANK_ARENA_CACHES);
        ca_arena *a = c->arena;
        if (a) {
            ca_arena__cache_drain(a, c);
            fold_counters(a, c);
            unlink_cache(a, c);
        }
        ca_arena__unlock(&reg_lock, CA_LOCK_RANK_ARENA_CACHES);
        (void)ca_os_unmap(c, CACHE_BYTES);
    }
}

static void key_init(void) { exit_key_ok = pthread_key_create(&exit_key, on_thread_exit) == 0; }

ca_arena__cache *ca_arena__cache_slow(ca_arena *a)
{
    if (!a->id || making)
        return NULL;
    for (unsigned i = 0; i < CA_ARENA__TL_SLOTS; i++)
        if (ca_arena__tl[i].id == a->id) { /* to the front: the table stays in order of use */
            ca_arena__tl_slot s = ca_arena__tl[i];
            memmove(&ca_arena__tl[1], &ca_arena__tl[0], i * sizeof s);
            ca_arena__tl[0] = s;
            return s.c;
        }
    making = true;
    pthread_once(&key_once, key_init);
    ca_arena__cache *c = NULL;
    int slot = -1;
    ca_arena__lock(&reg_lock, CA_LOCK_RANK_ARENA_CACHES);
    for (unsigned i = 0; i < CA_ARENA__TL_SLOTS && slot < 0; i++)
        if (!ca_arena__tl[i].c)
            slot = (int)i;
    for (unsigned i = 0; i < CA_ARENA__TL_SLOTS && slot < 0; i++)
        if (!ca_arena__tl[i].c->arena) { /* an orphan of a closed arena */
            (void)ca_os_unmap(ca_arena__tl[i].c, CACHE_BYTES);
            ca_arena__tl[i].c = NULL;
            ca_arena__tl[i].id = 0;
            slot = (int)i;
        }
    if (slot < 0) { /* a full table: the least recently used cache goes back to its arena */
        slot = CA_ARENA__TL_SLOTS - 1;
        ca_arena__cache *old = ca_arena__tl[slot].c;
        ca_arena *oa = old->arena;
        if (oa) {
            ca_arena__cache_drain(oa, old);
            fold_counters(oa, old);
            unlink_cache(oa, old);
        }
        (void)ca_os_unmap(old, CACHE_BYTES);
        ca_arena__tl[slot].c = NULL;
        ca_arena__tl[slot].id = 0;
    }
    if (exit_key_ok) {
        void *m;
        if (ca_os_map(NULL, CACHE_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0, &m) == 0) {
            c = (ca_arena__cache *)m; /* zero-filled: empty chunk, empty bins */
            c->arena = a;
            c->next = a->caches;
            a->caches = c;
        }
    }
    ca_arena__unlock(&reg_lock, CA_LOCK_RANK_ARENA_CACHES);
    if (c) {
        memmove(&ca_arena__tl[1], &ca_arena__tl[0], (size_t)slot * sizeof ca_arena__tl[0]);
        ca_arena__tl[0].id = a->id;
        ca_arena__tl[0].c = c;
        pthread_setspecific(exit_key, (void *)1); /* non-NULL: the destructor runs at exit */
    }
    making = false;
    return c;
}

/* The bin goes as it is (its blocks linked through their first word) onto
 * the shared bin of its size: one CAS, no walk. Blocks below min_segment are
 * discarded, as the list would discard them. */
void ca_arena__bin_flush(ca_arena *a, ca_arena__cache *c, unsigned i)
{
    uint64_t size = (uint64_t)(i + 1) * CA_ARENA_GRAIN, first = c->bin[i], cnt = c->bin_n[i];
    bool keep = a->kind != CA_ARENA_FREELIST_NONE && size >= a->min_segment;
    c->bin[i] = 0;
    c->bin_n[i] = 0;
    rs(&c->cached, rl(&c->cached) - cnt * size);
    if (!first)
        return;
    if (keep)
        ca_arena__sbin_push(a, c, i, first, cnt);
    else
        __atomic_fetch_add(&a->discarded, cnt * size, __ATOMIC_RELAXED);
}

void ca_arena__cache_drain(ca_arena *a, ca_arena__cache *c)
{
    uint64_t cur = rl(&c->chunk_cur), end = rl(&c->chunk_end);
    rs(&c->chunk_cur, 0);
    rs(&c->chunk_end, 0);
    if (end > cur) {
        uint64_t e = end;
        if (__atomic_compare_exchange_n(&a->cursor, &e, cur, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
            __atomic_fetch_add(&a->shard[0].rewinds, 1, __ATOMIC_RELAXED);
        else
            ca_arena__give_back(a, cur, end - cur);
    }
    for (unsigned i = 0; i < CA_ARENA__BINS; i++)
        if (c->bin[i])
            ca_arena__bin_flush(a, c, i);
}

void ca_arena__caches_close(ca_arena *a)
{
    ca_arena__lock(&reg_lock, CA_LOCK_RANK_ARENA_CACHES);
    for (ca_arena__cache *c = a->caches; c; c = c->next) {
        ca_arena__cache_drain(a, c);
        fold_counters(a, c);
        c->arena = NULL;
    }
    a->caches = NULL;
    ca_arena__unlock(&reg_lock, CA_LOCK_RANK_ARENA_CACHES);
}

void ca_arena__caches_reset(ca_arena *a)
{
    ca_arena__lock(&reg_lock, CA_LOCK_RANK_ARENA_CACHES);
    for (ca_arena__cache *c = a->caches; c; c = c->next) {
        rs(&c->chunk_cur, 0);
        rs(&c->chunk_end, 0);
        rs(&c->cached, 0);
        rs(&c->in_use, 0);
        rs(&c->sbin_bytes, 0);
        rs(&c->sbin_blocks, 0);
        rs(&c->sbin_unpub, 0);
        memset(c->bin, 0, sizeof c->bin);
        memset(c->bin_n, 0, sizeof c->bin_n);
    }
    ca_arena__unlock(&reg_lock, CA_LOCK_RANK_ARENA_CACHES);
}

void ca_arena__caches_sum(const ca_arena *a, ca_arena__cache_sums *s)
{
    memset(s, 0, sizeof *s);
    ca_arena__lock(&reg_lock, CA_LOCK_RANK_ARENA_CACHES);
    for (ca_arena__cache *c = a->caches; c; c = c->next) {
        s->allocs += rl(&c->allocs);
        s->frees += rl(&c->frees);
        s->in_use += rl(&c->in_use);
        s->rewinds += rl(&c->rewinds);
        s->cached += rl(&c->cached);
        s->sbin_bytes += rl(&c->sbin_bytes);
        s->sbin_blocks += rl(&c->sbin_blocks);
        uint64_t cur = rl(&c->chunk_cur), end = rl(&c->chunk_end);
        s->chunk += end > cur ? end - cur : 0;
        s->caches++;
    }
    ca_arena__unlock(&reg_lock, CA_LOCK_RANK_ARENA_CACHES);
}

void ca_arena__caches_walk(const ca_arena *a, void (*fn)(void *ctx, uint64_t off, uint64_t size), void *ctx)
{
    ca_arena__lock(&reg_lock, CA_LOCK_RANK_ARENA_CACHES);
    for (ca_arena__cache *c = a->caches; c; c = c->next) {
        if (c->chunk_end > c->chunk_cur)
            fn(ctx, c->chunk_cur, c->chunk_end - c->chunk_cur);
        for (unsigned i = 0; i < CA_ARENA__BINS; i++) {
            uint64_t n = c->bin[i];
            unsigned k = 0;
            bool bad = false;
            while (n && k <= c->bin_n[i]) {
                if (n < a->data_off || n > a->capacity - CA_ARENA_GRAIN || n % CA_ARENA_GRAIN) {
                    bad = true;
                    break;
                }
                fn(ctx, n, (uint64_t)(i + 1) * CA_ARENA_GRAIN);
                k++;
                n = *(const uint64_t *)(const void *)(a->mem + n);
            }
            if (bad || n || k != c->bin_n[i])
                fn(ctx, 0, 0); /* the caller reports a damaged bin */
        }
    }
    ca_arena__unlock(&reg_lock, CA_LOCK_RANK_ARENA_CACHES);
}
