/* SPDX-License-Identifier: MIT */
/*
 * libarena allocation: the CAS bump of the cursor, tail rewinds, the three
 * free-list kinds, the pending stack, compaction, the paths through the
 * thread caches (cache.c) and the ca_allocator ops.
 *
 * Concurrency model (read ca_arena_alloc and ca_arena_free first):
 *   - thread caches: a thread's own chunk of the cursor and bins of freed
 *     blocks, used without atomics (cache.c). With caches on, a pair of
 *     alloc and free, and most reuse, never touch a shared word; what a
 *     cache gives back reaches the shared list by a lock-free chain push.
 *   - cursor: one atomic word; allocation CASes it up, freeing the block
 *     that ends at it CASes it down. No tag needed: equal cursor values mean
 *     equal states.
 *   - free list: a singly linked list through the free memory, sorted per
 *     kind, whose head is a tagged word {offset, generation}. An odd
 *     generation means one thread holds the list token (and list_lock) and
 *     may rewrite any node; allocation and free never wait for it:
 *     allocation falls back to the cursor and frees go to the pending
 *     stack. Only compact, flush, reset and an allocation that finds the
 *     cursor exhausted sleep on list_lock (a mutex: nobody spins or yields). The OPTIMISTIC pop takes the head with
 *     one tagged CAS without the token (generation + 2), so a head that was
 *     popped and pushed back meanwhile (ABA) fails the CAS.
 *   - pending stack: frees that find the token held push here (tagged CAS,
 *     push only; the token holder takes the whole stack at once), and the
 *     next token holder sorts them in.
 *   - shared bins: beside the list, one lock-free stack per size of the
 *     thread bins (16 B .. 4 KiB). What a thread cache gives back is pushed
 *     there as a chain with one tagged CAS, and a thread whose bin of a size
 *     is empty pops a chain with one tagged CAS (generation + 1: a chain
 *     popped and pushed back meanwhile fails the CAS). No sort, no walk, no
 *     token. Four sets of them: a thread pushes onto its own set and pops
 *     from it first, so that two threads do not pass the same cache lines
 *     back and forth. The token holder folds them into the list before a
 *     flush, in a compaction, when the cursor is exhausted, when they hold
 *     three quarters of the used memory while a thread needs fresh memory,
 *     and after a thread's frees pushed four caches' worth in a row.
 *   - Counters are atomic adds; they are exact when no call is in flight.
 * The tagged word is 16 bytes with 64-bit offsets (cmpxchg16b: -mcx16 and
 * libatomic) and 8 bytes with 32-bit offsets. It lives in the process-side
 * object, never in the mapping: a 16-byte atomic load is a locked
 * cmpxchg16b, which faults on a read-only page.
 */
#include <stdlib.h>
#include <string.h>

#include "arena_internal.h"

#define COMP   "arena"
#define MASK32 0xFFFFFFFFull

/* ------------------------------------------------------------------------
 * Tagged words
 * ------------------------------------------------------------------------ */

ca_arena__tw ca_arena__tw_load(ca_arena *a, int which)
{
    ca_arena__tw r;
    if (a->wide) {
        unsigned __int128 v = __atomic_load_n(which ? &a->pend128 : &a->head128, __ATOMIC_ACQUIRE);
        r.off = (uint64_t)v;
        r.gen = (uint64_t)(v >> 64);
    } else {
        uint64_t v = __atomic_load_n(which ? &a->pend64 : &a->head64, __ATOMIC_ACQUIRE);
        r.off = v & MASK32;
        r.gen = v >> 32;
    }
    return r;
}

bool ca_arena__tw_cas(ca_arena *a, int which, ca_arena__tw expect, ca_arena__tw desired)
{
    if (a->wide) {
        unsigned __int128 e = (unsigned __int128)expect.off | (unsigned __int128)expect.gen << 64;
        unsigned __int128 d = (unsigned __int128)desired.off | (unsigned __int128)desired.gen << 64;
        return __atomic_compare_exchange_n(which ? &a->pend128 : &a->head128, &e, d, false, __ATOMIC_ACQ_REL,
                                           __ATOMIC_ACQUIRE);
    }
    uint64_t e = expect.off | (expect.gen & MASK32) << 32;
    uint64_t d = desired.off | (desired.gen & MASK32) << 32;
    return __atomic_compare_exchange_n(which ? &a->pend64 : &a->head64, &e, d, false, __ATOMIC_ACQ_REL,
                                       __ATOMIC_ACQUIRE);
}

void ca_arena__tw_store(ca_arena *a, int which, ca_arena__tw v)
{
    if (a->wide)
        __atomic_store_n(which ? &a->pend128 : &a->head128,
                         (unsigned __int128)v.off | (unsigned __int128)v.gen << 64, __ATOMIC_RELEASE);
    else
        __atomic_store_n(which ? &a->pend64 : &a->head64, v.off | (v.gen & MASK32) << 32, __ATOMIC_RELEASE);
}

static inline uint64_t gen_next(uint64_t g, uint64_t by) { return (g + by) & UINT64_MAX; }

/* ------------------------------------------------------------------------
 * Nodes
 * ------------------------------------------------------------------------ */

static inline bool node_in_range(const ca_arena *a, uint64_t off)
{
    return off >= a->data_off && off % CA_ARENA_GRAIN == 0 && off <= a->capacity - CA_ARENA_GRAIN;
}

void ca_arena__node_get(const ca_arena *a, uint64_t off, uint64_t *size, uint64_t *next)
{
    CA_ASSERT(node_in_range(a, off), COMP, a->mem + off, "free list corrupt: node offset out of range");
    if (a->wide) {
        const uint64_t *n = (const void *)(a->mem + off);
        *size = n[0];
        *next = n[1];
    } else {
        const uint32_t *n = (const void *)(a->mem + off);
        *size = n[0];
        *next = n[1];
    }
}

void ca_arena__node_set(ca_arena *a, uint64_t off, uint64_t size, uint64_t next)
{
    if (a->wide) {
        uint64_t *n = (void *)(a->mem + off);
        n[0] = size;
        n[1] = next;
    } else {
        uint32_t *n = (void *)(a->mem + off);
        n[0] = (uint32_t)size;
        n[1] = (uint32_t)next;
    }
}

static void node_set_next(ca_arena *a, uint64_t off, uint64_t next)
{
    if (a->wide) {
        uint64_t *n = (void *)(a->mem + off);
        n[1] = next;
    } else {
        uint32_t *n = (void *)(a->mem + off);
        n[1] = (uint32_t)next;
    }
}

/* The optimistic pop reads the head node without the token: the node may be
 * popped and overwritten by its new owner meanwhile. The read is validated by
 * the tagged CAS that follows (a changed head fails it), so a stale value is
 * never used; the read is kept out of ThreadSanitizer's view because it is a
 * deliberate, validated race with the owner's plain writes. */
__attribute__((noinline, no_sanitize("thread"))) static void node_read_racy(const ca_arena *a, uint64_t off,
                                                                            uint64_t *size, uint64_t *next)
{
    if (a->wide) {
        const volatile uint64_t *n = (const volatile void *)(a->mem + off);
        *size = n[0];
        *next = n[1];
    } else {
        const volatile uint32_t *n = (const volatile void *)(a->mem + off);
        *size = n[0];
        *next = n[1];
    }
}

/* ------------------------------------------------------------------------
 * Counters
 * ------------------------------------------------------------------------ */

static inline void cnt_add(uint64_t *c, uint64_t v) { __atomic_fetch_add(c, v, __ATOMIC_RELAXED); }
static inline void cnt_sub(uint64_t *c, uint64_t v) { __atomic_fetch_sub(c, v, __ATOMIC_RELAXED); }

static unsigned next_slot;
static _Thread_local unsigned my_slot = ~0u;

static inline unsigned slot(void)
{
    unsigned s = my_slot;
    if (ca_unlikely(s == ~0u))
        s = my_slot = __atomic_fetch_add(&next_slot, 1, __ATOMIC_RELAXED) % CA_ARENA__SHARDS;
    return s;
}

ca_arena__shard *ca_arena__my_shard(ca_arena *a) { return &a->shard[slot()]; }

#define SH(a) ca_arena__my_shard(a)

static inline void note_alloc(ca_arena *a, uint64_t bsize)
{
    ca_arena__shard *s = SH(a);
    cnt_add(&s->in_use, bsize);
    cnt_add(&s->allocs, 1);
}

/* The cursor reached end: keep the high-water mark (the peak's bound). */
static inline void note_high(ca_arena *a, uint64_t end)
{
    uint64_t now = end - a->data_off, pk = __atomic_load_n(&a->peak, __ATOMIC_RELAXED);
    while (now > pk && !__atomic_compare_exchange_n(&a->peak, &pk, now, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
        ;
}

/* The tagged word a push or pop installs: off, with w's generation moved on
 * by `by`. Built with CA_ARENA__DROP_TAG (the ABA test) the generation
 * stays, and a pop (widen) first waits to widen the window the generation
 * would close. */
static inline ca_arena__tw next_word(ca_arena__tw w, uint64_t off, uint64_t by, bool widen)
{
#if CA_ARENA__DROP_TAG
    for (int k = 0; widen && k < 2000; k++)
        __builtin_ia32_pause();
    return (ca_arena__tw){off, w.gen};
#else
    (void)widen;
    return (ca_arena__tw){off, gen_next(w.gen, by)};
#endif
}

/* Frees into a list longer than BATCH_LIST segments go to the pending stack
 * and are merged in bulk once BATCH_PENDING have gathered (auto_compact
 * off, CA_ARENA_AUTO_COMPACT_OFF, turns batching off too, so that single-threaded behaviour is exactly the
 * direct insertion the shadow-model test predicts). */
#define CA_ARENA__BATCH_LIST    32
#define CA_ARENA__BATCH_PENDING 32

/* ------------------------------------------------------------------------
 * The list token and the sorted list (token holder only)
 * ------------------------------------------------------------------------ */

/* list_lock makes the holders take turns (a waiter sleeps in the mutex);
 * the odd generation then tells the lock-free poppers to keep off. Setting
 * it is a CAS loop that only a successful pop can make fail, so it ends. */
bool ca_arena__token_take(ca_arena *a, unsigned tries, ca_arena__tw *held)
{
    if (tries) {
        if (ca_mutex_trylock_ranked(&a->list_lock, CA_LOCK_RANK_ARENA_LIST, "arena")) {
            cnt_add(&SH(a)->retries, 1);
            return false;
        }
    } else {
        ca_arena__lock(&a->list_lock, CA_LOCK_RANK_ARENA_LIST);
    }
    for (;;) {
        ca_arena__tw w = ca_arena__tw_load(a, 0);
        ca_arena__tw d = {w.off, CA_ARENA__DROP_TAG ? 1 : gen_next(w.gen, 1)};
        if (ca_arena__tw_cas(a, 0, w, d)) {
            ca_arena__mark_dirty(a);
            *held = d;
            return true;
        }
        cnt_add(&SH(a)->retries, 1);
    }
}

void ca_arena__token_release(ca_arena *a, ca_arena__tw held, uint64_t new_head)
{
    ca_arena__tw d = {new_head, CA_ARENA__DROP_TAG ? 0 : gen_next(held.gen, 1)};
    ca_arena__tw_store(a, 0, d);
    ca_arena__unlock(&a->list_lock, CA_LOCK_RANK_ARENA_LIST);
}

/* True when a new segment of size s1 goes before a listed one of size s2:
 * sizes ordered per kind, and among equal sizes the newest first (O(1)
 * insertion for a run of equal sizes, and the warmest memory reused first). */
static inline bool goes_before(const ca_arena *a, uint64_t s1, uint64_t s2)
{
    return a->kind == CA_ARENA_FREELIST_OPTIMISTIC ? s1 >= s2 : s1 <= s2;
}

/* Cheap emptiness tests (plain loads, no 16-byte atomic): the counts rise
 * before a segment becomes visible and fall after it is taken, so a zero
 * count means empty. */
static inline bool list_maybe_nonempty(const ca_arena *a)
{
    return __atomic_load_n(&a->free_count, __ATOMIC_ACQUIRE) != 0;
}

static inline bool pending_maybe_nonempty(const ca_arena *a)
{
    return __atomic_load_n(&a->pending_count, __ATOMIC_ACQUIRE) != 0;
}

static inline uint64_t walk_bound(const ca_arena *a) { return a->capacity / CA_ARENA_GRAIN + 1; }

/* Nodes of the sorted list the token holder visited (the list_steps counter:
 * walks, sorts, merges). Only the holder adds; stats read it any time. */
static inline void count_steps(ca_arena *a, uint64_t n)
{
    __atomic_fetch_add(&a->list_steps, n, __ATOMIC_RELAXED);
}

/* checks=on: a segment being freed must not overlap a free one. */
static void check_no_overlap(ca_arena *a, uint64_t head, uint64_t off, uint64_t size)
{
    if (CA_CHECKS < CA_CHECKS_ON)
        return;
    uint64_t steps = 0;
    for (uint64_t n = head; n; steps++) {
        uint64_t sz, next;
        CA_ASSERT(steps < walk_bound(a), COMP, a->mem + n, "free list corrupt: cycle");
        ca_arena__node_get(a, n, &sz, &next);
        CA_CHECK(off + size <= n || n + sz <= off, COMP, a->mem + off, "double free (block overlaps free memory)");
        n = next;
    }
}

/* Insert [off, off + size) in order; returns the new head. */
static uint64_t list_insert(ca_arena *a, uint64_t head, uint64_t off, uint64_t size)
{
    uint64_t prev = 0, cur = head, steps = 0;
    while (cur) {
        uint64_t sz, next;
        CA_ASSERT(++steps < walk_bound(a), COMP, a->mem + cur, "free list corrupt: cycle");
        ca_arena__node_get(a, cur, &sz, &next);
        if (goes_before(a, size, sz))
            break;
        prev = cur;
        cur = next;
    }
    count_steps(a, steps + 1);
    ca_arena__node_set(a, off, size, cur);
    if (off + size > a->max_end)
        a->max_end = off + size;
    cnt_add(&a->free_bytes, size);
    cnt_add(&a->free_count, 1);
    if (!prev)
        return off;
    node_set_next(a, prev, off);
    return head;
}

/* Unlink node n (whose predecessor is prev, 0 for the head). */
static uint64_t list_unlink(ca_arena *a, uint64_t head, uint64_t prev, uint64_t n, uint64_t size, uint64_t next)
{
    cnt_sub(&a->free_bytes, size);
    cnt_sub(&a->free_count, 1);
    if (!prev)
        return next;
    node_set_next(a, prev, next);
    return head;
}

/* How merge and msort order the list nodes: by address; in the kind's list
 * order, equal sizes by descending offset (what inserting them in address
 * order gives); or, merging a sorted chain of new segments into the list,
 * the kind's order with the new ones first among equal sizes (goes_before). */
typedef enum { BY_ADDR, BY_KIND, BY_KIND_NEWER } node_order;

static uint64_t merge(ca_arena *a, node_order how, uint64_t x, uint64_t y);
static uint64_t msort(ca_arena *a, node_order how, uint64_t head, uint64_t n);

/* Merge an unsorted chain of list nodes (first, 0-terminated) into the list:
 * sort it (in place, O(p log p)), then one merge (O(n + p)), so a long chain
 * never costs a walk of the list per segment. *bytes and *count receive its
 * bytes and segments. */
static uint64_t merge_chain(ca_arena *a, uint64_t head, uint64_t first, uint64_t *bytes, uint64_t *count)
{
    uint64_t cnt = 0, b = 0;
    for (uint64_t n = first; n; cnt++) {
        uint64_t sz, next;
        CA_ASSERT(cnt < walk_bound(a), COMP, a->mem + n, "pending stack or shared bin corrupt: cycle");
        ca_arena__node_get(a, n, &sz, &next);
        check_no_overlap(a, head, n, sz);
        if (n + sz > a->max_end)
            a->max_end = n + sz;
        b += sz;
        n = next;
    }
    count_steps(a, cnt);
    head = merge(a, BY_KIND_NEWER, msort(a, BY_KIND, first, cnt), head);
    cnt_add(&a->free_bytes, b);
    cnt_add(&a->free_count, cnt);
    *bytes = b;
    *count = cnt;
    return head;
}

/* Take the whole pending stack and merge it into the list. */
uint64_t ca_arena__drain_pending(ca_arena *a, uint64_t head)
{
    ca_arena__tw p;
    do {
        p = ca_arena__tw_load(a, 1);
        if (!p.off)
            return head;
    } while (!ca_arena__tw_cas(a, 1, p, (ca_arena__tw){0, gen_next(p.gen, 1)}));
    uint64_t bytes, cnt;
    head = merge_chain(a, head, p.off, &bytes, &cnt);
    cnt_sub(&a->pending_bytes, bytes);
    cnt_sub(&a->pending_count, cnt);
    return head;
}

/* ------------------------------------------------------------------------
 * Shared bins (arena_internal.h: the chain layout and the tagged top)
 * ------------------------------------------------------------------------ */

static inline uint64_t word0(const ca_arena *a, uint64_t off)
{
    return *(const uint64_t *)(const void *)(a->mem + off);
}

/* The top word read as two 8-byte loads, generation first: no locked
 * 16-byte load. A pair torn by a concurrent push or pop never equals the
 * word afterwards (the generation only grows), so the CAS that uses it
 * fails and nothing read under it is kept. */
static inline ca_arena__tw sbin_load(ca_arena__sbin *b)
{
    ca_arena__tw t;
    t.gen = __atomic_load_n(&b->top.half[1], __ATOMIC_ACQUIRE);
    t.off = __atomic_load_n(&b->top.half[0], __ATOMIC_ACQUIRE);
    return t;
}

static inline bool sbin_cas(ca_arena__sbin *b, ca_arena__tw expect, ca_arena__tw desired)
{
    unsigned __int128 e = (unsigned __int128)expect.off | (unsigned __int128)expect.gen << 64;
    unsigned __int128 d = (unsigned __int128)desired.off | (unsigned __int128)desired.gen << 64;
    return __atomic_compare_exchange_n(&b->top.w, &e, d, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

/* Word 1 of a chain's first block (the next chain), read without owning the
 * block: it may have been popped and overwritten meanwhile. The pop's CAS
 * validates it (a changed top fails), so a stale value is never used; kept
 * out of ThreadSanitizer's view as node_read_racy is. */
__attribute__((noinline, no_sanitize("thread"))) static uint64_t word1_racy(const ca_arena *a, uint64_t off)
{
    return ((const volatile uint64_t *)(const void *)(a->mem + off))[1];
}

static inline uint64_t sbin_size(unsigned i) { return (uint64_t)(i + 1) * CA_ARENA_GRAIN; }

void ca_arena__sbin_publish(ca_arena *a, ca_arena__cache *c)
{
    uint64_t d = __atomic_load_n(&c->sbin_unpub, __ATOMIC_RELAXED);
    if (d) {
        __atomic_fetch_add(&a->sbin_approx, d, __ATOMIC_RELAXED);
        __atomic_store_n(&c->sbin_unpub, 0, __ATOMIC_RELAXED);
    }
}

/* The cache's counters of the shared bins (owner, or a drainer while the
 * owner is outside every call): plain stores; the hint every 64 KiB. */
static inline void sbin_count(ca_arena *a, ca_arena__cache *c, uint64_t bytes, uint64_t blocks)
{
    __atomic_store_n(&c->sbin_bytes, c->sbin_bytes + bytes, __ATOMIC_RELAXED);
    __atomic_store_n(&c->sbin_blocks, c->sbin_blocks + blocks, __ATOMIC_RELAXED);
    uint64_t u = c->sbin_unpub + bytes;
    __atomic_store_n(&c->sbin_unpub, u, __ATOMIC_RELAXED);
    if (u + CA_ARENA__SBIN_PUBLISH > 2 * CA_ARENA__SBIN_PUBLISH) /* |u| >= PUBLISH (wrapping) */
        ca_arena__sbin_publish(a, c);
}

/* The calling thread's set of shared bins. */
static inline unsigned my_set(void) { return slot() % CA_ARENA__SBIN_SHARDS; }

void ca_arena__sbin_push(ca_arena *a, ca_arena__cache *c, unsigned i, uint64_t first, uint64_t count)
{
    ca_arena__sbin *b = &a->sbin[my_set() * CA_ARENA__BINS + i];
    sbin_count(a, c, count * sbin_size(i), count);
    c->streak += count * sbin_size(i);
    uint64_t *link = (uint64_t *)(void *)(a->mem + first) + 1;
    for (;;) {
        ca_arena__tw t = sbin_load(b);
        *link = t.off; /* the chain is still ours: a plain store, published by the CAS */
        ca_arena__tw d = next_word(t, first, 1, false);
        if (sbin_cas(b, t, d))
            return;
        cnt_add(&SH(a)->retries, 1);
    }
}

/* Pop the top chain of shared bin i of set s into the caller's empty bin i.
 * False when that bin is empty (or stays contended for max_retries CASes).
 * O(1) shared work; the chain is then walked once to count it. */
static bool sbin_pop_from(ca_arena *a, ca_arena__cache *c, unsigned s, unsigned i)
{
    ca_arena__sbin *b = &a->sbin[s * CA_ARENA__BINS + i];
    if (!__atomic_load_n(&b->top.half[0], __ATOMIC_RELAXED))
        return false;
    for (unsigned k = 0; k < a->max_retries; k++) {
        ca_arena__tw t = sbin_load(b);
        if (!t.off)
            return false;
        if (!node_in_range(a, t.off)) { /* a torn read */
            cnt_add(&SH(a)->retries, 1);
            continue;
        }
        uint64_t nx = word1_racy(a, t.off);
        if (nx && !node_in_range(a, nx)) { /* read while the block changed hands */
            cnt_add(&SH(a)->retries, 1);
            continue;
        }
        ca_arena__tw d = next_word(t, nx, 1, true);
        if (!sbin_cas(b, t, d)) {
            cnt_add(&SH(a)->retries, 1);
            continue;
        }
        uint64_t n = 0;
        for (uint64_t x = t.off; x; x = word0(a, x)) {
            CA_ASSERT(node_in_range(a, x) && n < UINT16_MAX, COMP, a->mem + x,
                      "shared bin corrupt: a freed block was written after its free");
            n++;
        }
        sbin_count(a, c, 0 - n * sbin_size(i), 0 - n);
        c->bin[i] = t.off;
        c->bin_n[i] = (uint16_t)n;
        __atomic_store_n(&c->cached, c->cached + n * sbin_size(i), __ATOMIC_RELAXED);
        return true;
    }
    return false;
}

/* Shared bin i: the caller's set first, then the others. */
static bool sbin_pop(ca_arena *a, ca_arena__cache *c, unsigned i)
{
    unsigned s = my_set();
    for (unsigned k = 0; k < CA_ARENA__SBIN_SHARDS; k++)
        if (sbin_pop_from(a, c, (s + k) % CA_ARENA__SBIN_SHARDS, i))
            return true;
    return false;
}

/* Bytes in the shared bins, roughly (the hint: exact give or take
 * SBIN_PUBLISH per cache; it can even read as a wrapped "negative"). */
static uint64_t sbin_bytes_hint(const ca_arena *a)
{
    int64_t v = (int64_t)__atomic_load_n(&a->sbin_approx, __ATOMIC_RELAXED);
    return v > 0 ? (uint64_t)v : 0;
}

static uint64_t n_next(const ca_arena *a, uint64_t x);
static uint64_t n_size(const ca_arena *a, uint64_t x);

/* Token held: take every chain of every shared bin (one CAS per bin that
 * holds any) and relink the blocks as list nodes, unsorted. Returns the
 * first node (0: the bins were empty); *last, *count and *bytes receive the
 * last node, the blocks and their bytes. */
static uint64_t take_bins(ca_arena *a, uint64_t *last, uint64_t *count, uint64_t *bytes)
{
    uint64_t first = 0, cnt = 0, total = 0;
    *last = 0;
    for (unsigned bi = 0; bi < CA_ARENA__SBIN_SHARDS * CA_ARENA__BINS; bi++) {
        ca_arena__sbin *b = &a->sbin[bi];
        unsigned i = bi % CA_ARENA__BINS;
        ca_arena__tw t;
        do {
            t = sbin_load(b);
        } while (t.off && !sbin_cas(b, t, (ca_arena__tw){0, gen_next(t.gen, 1)}));
        /* every chain of the bin is the holder's now (the links are read
         * before the node overwrites them) */
        uint64_t size = sbin_size(i);
        for (uint64_t ch = t.off; ch;) {
            CA_ASSERT(node_in_range(a, ch), COMP, a->mem + ch, "shared bin corrupt: chain offset out of range");
            uint64_t next_chain = ((const uint64_t *)(const void *)(a->mem + ch))[1];
            for (uint64_t x = ch; x; cnt++) {
                CA_ASSERT(node_in_range(a, x) && cnt < walk_bound(a), COMP, a->mem + x,
                          "shared bin corrupt: a freed block was written after its free");
                uint64_t nx = word0(a, x);
                ca_arena__node_set(a, x, size, first);
                if (!first)
                    *last = x;
                first = x;
                total += size;
                x = nx;
            }
            ch = next_chain;
        }
    }
    if (cnt) {
        ca_arena__shard *sh = SH(a);
        cnt_sub(&sh->sbin_bytes, total);
        cnt_sub(&sh->sbin_blocks, cnt);
        cnt_sub(&a->sbin_approx, total);
        __atomic_fetch_add(&a->bin_folds, 1, __ATOMIC_RELAXED);
    }
    *count = cnt;
    *bytes = total;
    return first;
}

uint64_t ca_arena__fold_bins(ca_arena *a, uint64_t head)
{
    uint64_t last, cnt, bytes;
    uint64_t first = take_bins(a, &last, &cnt, &bytes);
    return first ? merge_chain(a, head, first, &bytes, &cnt) : head;
}

/* As ca_arena__fold_bins for a caller that compacts next (the compaction
 * sorts the whole list anyway): the blocks go in front of the list as they
 * are, which leaves the list unsorted until then. O(blocks). */
static uint64_t fold_unsorted(ca_arena *a, uint64_t head)
{
    uint64_t last, cnt, bytes;
    uint64_t first = take_bins(a, &last, &cnt, &bytes);
    if (!first)
        return head;
    if (CA_CHECKS >= CA_CHECKS_ON)
        for (uint64_t x = first; x; x = n_next(a, x))
            check_no_overlap(a, head, x, n_size(a, x));
    count_steps(a, cnt);
    node_set_next(a, last, head);
    cnt_add(&a->free_bytes, bytes);
    cnt_add(&a->free_count, cnt);
    return first;
}

#define full_check(a) CA_CHECK_WALK(COMP, (a), ca_arena_check)

static uint64_t compact_locked(ca_arena *a, uint64_t head);

/* After a rewind (token held): when a free segment ends at the cursor, the
 * list is compacted, which merges it with its free neighbours below and
 * gives the merged run back to the cursor: O(n log n) once instead of one
 * walk per segment rewound through. A hint (max_end) skips the walk when no
 * segment can reach the cursor. */
static uint64_t rewind_through(ca_arena *a, uint64_t head)
{
    uint64_t cur = __atomic_load_n(&a->cursor, __ATOMIC_ACQUIRE);
    if (a->max_end < cur)
        return head;
    uint64_t mx = 0, steps = 0;
    for (uint64_t n = head; n;) {
        uint64_t sz, next;
        CA_ASSERT(++steps < walk_bound(a), COMP, a->mem + n, "free list corrupt: cycle");
        ca_arena__node_get(a, n, &sz, &next);
        if (n + sz == cur) {
            count_steps(a, steps);
            return compact_locked(a, head);
        }
        if (n + sz > mx)
            mx = n + sz;
        n = next;
    }
    count_steps(a, steps);
    a->max_end = mx; /* a full walk: the hint is exact again */
    return head;
}

/* ------------------------------------------------------------------------
 * Giving memory back
 * ------------------------------------------------------------------------ */

static void push_pending(ca_arena *a, uint64_t off, uint64_t size)
{
    cnt_add(&a->pending_bytes, size);
    cnt_add(&a->pending_count, 1);
    for (;;) {
        ca_arena__tw p = ca_arena__tw_load(a, 1);
        ca_arena__node_set(a, off, size, p.off);
        if (ca_arena__tw_cas(a, 1, p, (ca_arena__tw){off, gen_next(p.gen, 1)}))
            return;
        cnt_add(&SH(a)->retries, 1);
    }
}

/* [off, off + size) below the cursor is free: keep it or count it lost. */
static void give_back(ca_arena *a, uint64_t off, uint64_t size)
{
    if (!size)
        return;
    if (a->kind == CA_ARENA_FREELIST_NONE || size < a->min_segment) {
        cnt_add(&a->discarded, size);
        return;
    }
    ca_arena__tw held;
    /* A long list: push (O(1)) and let the pushes be merged in bulk once
     * there are enough of them, instead of walking the list under the token
     * for every free. */
    if (a->auto_compact && __atomic_load_n(&a->free_count, __ATOMIC_RELAXED) > CA_ARENA__BATCH_LIST) {
        push_pending(a, off, size);
        if (__atomic_load_n(&a->pending_count, __ATOMIC_RELAXED) < CA_ARENA__BATCH_PENDING ||
            !ca_arena__token_take(a, 4, &held))
            return;
        uint64_t head = ca_arena__drain_pending(a, held.off);
        if (a->auto_compact && __atomic_load_n(&a->free_count, __ATOMIC_RELAXED) > a->compact_at)
            head = compact_locked(a, head);
        ca_arena__token_release(a, held, head);
        return;
    }
    if (!ca_arena__token_take(a, 4, &held)) {
        push_pending(a, off, size);
        return;
    }
    uint64_t head = ca_arena__drain_pending(a, held.off);
    check_no_overlap(a, head, off, size);
    head = list_insert(a, head, off, size);
    if (a->auto_compact && __atomic_load_n(&a->free_count, __ATOMIC_RELAXED) > a->compact_at)
        head = compact_locked(a, head);
    ca_arena__token_release(a, held, head);
}

void ca_arena__give_back(ca_arena *a, uint64_t off, uint64_t size) { give_back(a, off, size); }

/* ------------------------------------------------------------------------
 * Allocation
 * ------------------------------------------------------------------------ */

static inline bool block_size(size_t size, uint64_t *out)
{
    size_t b;
    if (ca_align_up_overflows(size ? size : 1, CA_ARENA_GRAIN, &b))
        return false;
    *out = b;
    return true;
}

/* Place a block of bsize at align inside segment [s, s + sz); give the rest back. */
static uint64_t carve(ca_arena *a, uint64_t s, uint64_t sz, uint64_t bsize, uint64_t align)
{
    uint64_t start = ca_align_up(s, align);
    give_back(a, s, start - s);
    give_back(a, start + bsize, s + sz - (start + bsize));
    return start;
}

static inline bool fits(uint64_t s, uint64_t sz, uint64_t bsize, uint64_t align)
{
    uint64_t start = ca_align_up(s, align);
    return start - s <= sz && sz - (start - s) >= bsize;
}

/* OPTIMISTIC: pop the head segment when it fits; *seg and *segsz receive
 * it whole (the caller carves it). 0, ENOENT (nothing fits), EAGAIN. */
static int pop_segment(ca_arena *a, uint64_t bsize, uint64_t align, uint64_t *seg, uint64_t *segsz)
{
    if (!list_maybe_nonempty(a))
        return ENOENT;
    for (unsigned i = 0; i < a->max_retries; i++) {
        ca_arena__tw w = ca_arena__tw_load(a, 0);
        if (!w.off)
            return ENOENT;
        if (w.gen & 1) { /* token held: the list is being rewritten; use the cursor */
            cnt_add(&SH(a)->retries, 1);
            return EAGAIN;
        }
        uint64_t sz, next;
        node_read_racy(a, w.off, &sz, &next);
        if (sz < CA_ARENA_GRAIN || sz % CA_ARENA_GRAIN || sz > a->capacity - w.off ||
            (next && !node_in_range(a, next))) {
            cnt_add(&SH(a)->retries, 1); /* read while the node changed hands */
            continue;
        }
        if (!fits(w.off, sz, bsize, align))
            return ENOENT; /* the head is the largest segment */
        ca_arena__mark_dirty(a);
        ca_arena__tw d = next_word(w, next, 2, true);
        if (ca_arena__tw_cas(a, 0, w, d)) {
            cnt_sub(&a->free_bytes, sz);
            cnt_sub(&a->free_count, 1);
            *seg = w.off;
            *segsz = sz;
            return 0;
        }
        cnt_add(&SH(a)->retries, 1);
    }
    return EAGAIN;
}

/* OPTIMISTIC: pop the head when it fits and carve the block from it. */
static int pop_head(ca_arena *a, uint64_t bsize, uint64_t align, uint64_t *out)
{
    uint64_t seg, sz;
    int err = pop_segment(a, bsize, align, &seg, &sz);
    if (!err)
        *out = carve(a, seg, sz, bsize, align);
    return err;
}

/* With the token held: unlink the first segment in list order that fits
 * (the best fit for PESSIMISTIC) and put its pieces back. */
static bool take_fit_locked(ca_arena *a, uint64_t *headp, uint64_t bsize, uint64_t align, uint64_t *out)
{
    uint64_t head = *headp, prev = 0, n = head, steps = 0, sz = 0, next = 0;
    while (n) {
        CA_ASSERT(++steps < walk_bound(a), COMP, a->mem + n, "free list corrupt: cycle");
        ca_arena__node_get(a, n, &sz, &next);
        if (fits(n, sz, bsize, align))
            break;
        prev = n;
        n = next;
    }
    count_steps(a, steps);
    if (!n)
        return false;
    head = list_unlink(a, head, prev, n, sz, next);
    uint64_t start = ca_align_up(n, align);
    uint64_t pieces[2][2] = {{n, start - n}, {start + bsize, n + sz - (start + bsize)}};
    for (int k = 0; k < 2; k++) {
        uint64_t po = pieces[k][0], ps = pieces[k][1];
        if (!ps)
            continue;
        if (ps < a->min_segment)
            cnt_add(&a->discarded, ps);
        else
            head = list_insert(a, head, po, ps);
    }
    *headp = head;
    *out = start;
    return true;
}

/* PESSIMISTIC: best fit under the token. 0, ENOENT, EAGAIN (token busy). */
static int best_fit(ca_arena *a, uint64_t bsize, uint64_t align, uint64_t *out)
{
    if (!list_maybe_nonempty(a) && !pending_maybe_nonempty(a))
        return ENOENT;
    ca_arena__tw held;
    if (!ca_arena__token_take(a, a->max_retries, &held))
        return EAGAIN;
    uint64_t head = ca_arena__drain_pending(a, held.off);
    bool ok = take_fit_locked(a, &head, bsize, align, out);
    ca_arena__token_release(a, held, head);
    return ok ? 0 : ENOENT;
}

static int bump(ca_arena *a, uint64_t bsize, uint64_t align, uint64_t *out);

/* The cursor is exhausted: wait for the token, take in the pending stack and
 * the shared bins and take any segment that fits; failing that, compact
 * (which may also give a trailing run back to the cursor) and look again;
 * else try the cursor. The arena fails only when no free memory can hold
 * the block. */
static int last_resort(ca_arena *a, uint64_t bsize, uint64_t align, uint64_t *out)
{
    if (a->kind == CA_ARENA_FREELIST_NONE)
        return ENOMEM;
    ca_arena__tw held;
    ca_arena__token_take(a, 0, &held);
    uint64_t head = ca_arena__fold_bins(a, ca_arena__drain_pending(a, held.off));
    bool ok = take_fit_locked(a, &head, bsize, align, out);
    if (!ok) { /* only when nothing fits as it is: merging may make room */
        head = compact_locked(a, head);
        ok = take_fit_locked(a, &head, bsize, align, out);
    }
    ca_arena__token_release(a, held, head);
    return ok ? 0 : bump(a, bsize, align, out);
}

static int bump(ca_arena *a, uint64_t bsize, uint64_t align, uint64_t *out)
{
    uint64_t cur = __atomic_load_n(&a->cursor, __ATOMIC_ACQUIRE);
    for (unsigned i = 0; i < a->max_retries; i++) {
        uint64_t start = ca_align_up(cur, align), end;
        if (ca_add_overflows(start, bsize, &end) || end > a->capacity)
            return ENOMEM;
        if (__atomic_compare_exchange_n(&a->cursor, &cur, end, true, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
            note_high(a, end);
            give_back(a, cur, start - cur);
            *out = start;
            return 0;
        }
        cnt_add(&SH(a)->retries, 1);
    }
    return ENOMEM;
}

/* ------------------------------------------------------------------------
 * The thread-cache paths (the cache is the caller's own: no atomics on it)
 * ------------------------------------------------------------------------ */

static inline void rs(uint64_t *p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }

static inline ca_arena__cache *my_cache(ca_arena *a)
{
    if (ca_likely(ca_arena__tl[0].id == a->id))
        return ca_arena__tl[0].c; /* NULL when a keeps no caches (id 0, empty slot) */
    return ca_arena__cache_slow(a);
}

static inline bool binned(const ca_arena *a, uint64_t bsize)
{
    return a->kind != CA_ARENA_FREELIST_NONE && bsize <= CA_ARENA__BINS * CA_ARENA_GRAIN;
}

static bool fold_now(ca_arena *a);

/* A freed block of bsize into its bin; an overlong bin or an overfull cache
 * goes to the shared bins. A run of frees with no allocation between that
 * pushes more than CA_ARENA__STREAK caches' worth onto the shared bins
 * (memory freed in bulk, that nothing takes back meanwhile) has them folded
 * into the list and compacted, so that the allocations after it find merged
 * runs there instead of popping block after block. */
static void bin_put(ca_arena *a, ca_arena__cache *c, uint64_t off, uint64_t bsize)
{
    unsigned i = (unsigned)(bsize / CA_ARENA_GRAIN - 1);
    if (CA_CHECKS >= CA_CHECKS_ON) {
        uint64_t n = c->bin[i];
        for (unsigned k = 0; n && k < c->bin_n[i]; k++) {
            CA_CHECK(n != off, COMP, a->mem + off, "double free (block already in the thread's cache)");
            n = *(const uint64_t *)(const void *)(a->mem + n);
        }
    }
    *(uint64_t *)(void *)(a->mem + off) = c->bin[i];
    c->bin[i] = off;
    rs(&c->cached, c->cached + bsize);
    if (++c->bin_n[i] > CA_ARENA__BIN_MAX) {
        ca_arena__bin_flush(a, c, i);
    } else if (c->cached > a->local_cache) {
        for (unsigned k = 0; k < CA_ARENA__BINS; k++)
            if (c->bin[k])
                ca_arena__bin_flush(a, c, k);
        if (c->streak > CA_ARENA__STREAK * a->local_cache && fold_now(a))
            c->streak = 0;
    }
}

/* The head of bin i when it suits the alignment. The link read from the
 * block is checked before it is followed (a write after free shows here). */
static inline bool bin_take(ca_arena *a, ca_arena__cache *c, unsigned i, uint64_t align, uint64_t *out)
{
    uint64_t n = c->bin[i];
    if (!n || (n & (align - 1)))
        return false;
    uint64_t next = *(const uint64_t *)(const void *)(a->mem + n);
    CA_ASSERT(next == 0 || (node_in_range(a, next) && c->bin_n[i] > 1), COMP, a->mem + n,
              "thread cache corrupt: a freed block was written after its free");
    c->bin[i] = next;
    c->bin_n[i]--;
    rs(&c->cached, c->cached - (uint64_t)(i + 1) * CA_ARENA_GRAIN);
    *out = n;
    return true;
}

/* A piece of the cache's own memory it does not hand out (alignment padding,
 * a chunk's remainder): a bin, else the shared list. */
static void put_piece(ca_arena *a, ca_arena__cache *c, uint64_t off, uint64_t size)
{
    if (binned(a, size))
        bin_put(a, c, off, size);
    else
        give_back(a, off, size);
}

static inline bool chunk_take(ca_arena *a, ca_arena__cache *c, uint64_t bsize, uint64_t align, uint64_t *out)
{
    uint64_t cur = c->chunk_cur, start = ca_align_up(cur, align);
    if (start > c->chunk_end || c->chunk_end - start < bsize)
        return false;
    rs(&c->chunk_cur, start + bsize);
    if (start != cur)
        put_piece(a, c, cur, start - cur);
    *out = start;
    return true;
}

static int bump(ca_arena *a, uint64_t bsize, uint64_t align, uint64_t *out);

/* The chunk's remainder goes back to the cursor when it ends there, else to
 * a bin or the list; the cache is left without a chunk. */
static void retire_chunk(ca_arena *a, ca_arena__cache *c)
{
    uint64_t rc = c->chunk_cur, re = c->chunk_end;
    rs(&c->chunk_cur, 0);
    rs(&c->chunk_end, 0);
    if (re <= rc)
        return;
    uint64_t e = re;
    if (__atomic_compare_exchange_n(&a->cursor, &e, rc, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        rs(&c->rewinds, c->rewinds + 1);
    else
        put_piece(a, c, rc, re - rc);
}

/* A new chunk from the shared cursor (one CAS), the block at its start.
 * The old remainder goes back to the cursor when it ends there, else to a
 * bin or the list. Blocks above a quarter of a chunk take the cursor
 * directly. */
static int chunk_refill(ca_arena *a, ca_arena__cache *c, uint64_t bsize, uint64_t align, uint64_t *out)
{
    if (!a->chunk || bsize > a->chunk / 4)
        return bump(a, bsize, align, out);
    retire_chunk(a, c);
    uint64_t cur = __atomic_load_n(&a->cursor, __ATOMIC_ACQUIRE);
    for (unsigned i = 0; i < a->max_retries; i++) {
        uint64_t start = ca_align_up(cur, align), end;
        if (ca_add_overflows(start, bsize, &end) || end > a->capacity)
            return ENOMEM;
        uint64_t cend = a->capacity - cur > a->chunk ? cur + a->chunk : a->capacity;
        if (cend < end)
            cend = end;
        if (__atomic_compare_exchange_n(&a->cursor, &cur, cend, true, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
            note_high(a, cend);
            rs(&c->chunk_cur, end);
            rs(&c->chunk_end, cend);
            if (start != cur)
                put_piece(a, c, cur, start - cur);
            *out = start;
            return 0;
        }
        cnt_add(&SH(a)->retries, 1);
    }
    return ENOMEM;
}

static void retire_chunk(ca_arena *a, ca_arena__cache *c);

/* The shared free list, without waiting: 0, ENOENT or EAGAIN. OPTIMISTIC
 * pops the head (the largest segment); one with room for more than the
 * block becomes the caller's chunk, so that the next allocations bump it
 * locally instead of each popping (and each carving under the token). */
static int shared_reuse(ca_arena *a, ca_arena__cache *c, uint64_t bsize, uint64_t align, uint64_t *out)
{
    if (a->kind == CA_ARENA_FREELIST_NONE)
        return ENOENT;
    if (a->kind == CA_ARENA_FREELIST_PESSIMISTIC)
        return best_fit(a, bsize, align, out);
    if (!list_maybe_nonempty(a) && pending_maybe_nonempty(a)) {
        ca_arena__tw held; /* pushed frees only: sort them in if the token is free */
        if (ca_arena__token_take(a, 1, &held))
            ca_arena__token_release(a, held, ca_arena__drain_pending(a, held.off));
    }
    uint64_t seg, sz;
    int err = pop_segment(a, bsize, align, &seg, &sz);
    if (err)
        return err;
    uint64_t start = ca_align_up(seg, align);
    if (sz - (start - seg) - bsize < 1024 || !a->chunk) {
        *out = carve(a, seg, sz, bsize, align);
        return 0;
    }
    retire_chunk(a, c);
    rs(&c->chunk_cur, start + bsize);
    rs(&c->chunk_end, seg + sz);
    if (start != seg)
        put_piece(a, c, seg, start - seg);
    *out = start;
    return 0;
}

static int last_resort(ca_arena *a, uint64_t bsize, uint64_t align, uint64_t *out);

/* The shared bins of size i are empty: a block of one of the next
 * CA_ARENA__SBIN_NEAR sizes that leave a remainder of at least min_segment
 * (a chain popped from the caller's set into its bin of that size); its
 * front is handed out and the remainder goes to the caller's bins. Serves the sizes nobody
 * gave back lately from their neighbours instead of fresh memory. */
static bool sbin_near(ca_arena *a, ca_arena__cache *c, unsigned i, uint64_t bsize, uint64_t align, uint64_t *out)
{
    unsigned lo = i + (unsigned)(a->min_segment / CA_ARENA_GRAIN), s = my_set();
    for (unsigned j = lo; j < lo + CA_ARENA__SBIN_NEAR && j < CA_ARENA__BINS; j++)
        if (!c->bin[j] && sbin_pop_from(a, c, s, j) && bin_take(a, c, j, align, out)) {
            put_piece(a, c, *out + bsize, sbin_size(j) - bsize);
            return true;
        }
    return false;
}

/* REUSE_FIRST, about to take fresh memory: when the shared bins hold more
 * than three quarters of the memory below the cursor (blocks of sizes
 * nobody asks for now), fold them into the list and compact it, if the
 * token is free now, so that the cursor grows only past what the free
 * memory cannot serve (CA_ARENA_AUTO_COMPACT_OFF: folded without the compaction).
 * True when something was folded. A fold empties the
 * bins, so the next one waits for three quarters of the used memory to
 * gather again: O(log n) amortised per freed block, and none while the
 * bins serve what is asked of them. */
static bool fold_now(ca_arena *a);

static bool fold_if_idle(ca_arena *a)
{
    uint64_t used = __atomic_load_n(&a->cursor, __ATOMIC_RELAXED) - a->data_off;
    if (sbin_bytes_hint(a) <= used / 4 * 3 || used < 2 * a->chunk)
        return false;
    return fold_now(a);
}

/* Fold the shared bins into the list and compact it, if the token is free
 * now (CA_ARENA_AUTO_COMPACT_OFF: no compaction). True when the token was taken. */
static bool fold_now(ca_arena *a)
{
    ca_arena__tw held;
    if (!ca_arena__token_take(a, 1, &held))
        return false;
    uint64_t head = ca_arena__drain_pending(a, held.off);
    if (a->auto_compact) /* 0: no compaction the caller did not ask for */
        head = compact_locked(a, fold_unsorted(a, head));
    else
        head = ca_arena__fold_bins(a, head);
    ca_arena__token_release(a, held, head);
    return true;
}

/* The thread's bin and chunk and the shared bins of the size missed
 * (REUSE_FIRST), or the thread's chunk did (FRESH_FIRST): the neighbour
 * sizes, the list, fresh memory. Out of line, so that the steps before it
 * stay a few instructions. */
__attribute__((noinline)) static int alloc_shared(ca_arena *a, ca_arena__cache *c, uint64_t bsize, uint64_t align,
                                                  uint64_t *out)
{
    unsigned i = (unsigned)(bsize / CA_ARENA_GRAIN - 1);
    bool b = binned(a, bsize);
    int err;
    if (a->order == CA_ARENA_REUSE_FIRST) {
        if (b && sbin_near(a, c, i, bsize, align, out))
            return 0;
        if (shared_reuse(a, c, bsize, align, out) == 0)
            return 0;
        if (fold_if_idle(a) && shared_reuse(a, c, bsize, align, out) == 0)
            return 0;
        err = chunk_refill(a, c, bsize, align, out);
    } else {
        err = chunk_refill(a, c, bsize, align, out);
        if (err && b && bin_take(a, c, i, align, out))
            return 0;
        if (err && b && !c->bin[i] && sbin_pop(a, c, i) && bin_take(a, c, i, align, out))
            return 0;
        if (err)
            err = shared_reuse(a, c, bsize, align, out);
    }
    if (!err)
        return 0;
    /* No fresh memory: what this thread holds goes back, then the list. */
    ca_arena__cache_drain(a, c);
    return last_resort(a, bsize, align, out);
}

static inline int alloc_cached(ca_arena *a, ca_arena__cache *c, uint64_t bsize, uint64_t align, uint64_t *out)
{
    if (a->order == CA_ARENA_REUSE_FIRST) {
        /* the chunk is memory the thread already holds: using it does not
         * move the cursor, so it comes before the shared bins and list */
        unsigned i = (unsigned)(bsize / CA_ARENA_GRAIN - 1);
        bool b = binned(a, bsize);
        if (b && bin_take(a, c, i, align, out))
            return 0;
        if (chunk_take(a, c, bsize, align, out))
            return 0;
        if (b && !c->bin[i] && sbin_pop(a, c, i) && bin_take(a, c, i, align, out))
            return 0;
    } else if (chunk_take(a, c, bsize, align, out)) {
        return 0;
    }
    return alloc_shared(a, c, bsize, align, out);
}

static int alloc_impl(ca_arena *a, size_t size, size_t align, uint64_t *off)
{
    uint64_t bsize;
    int err;
    if (ca_unlikely(a->mode == CA_ARENA_READ_ONLY)) {
        err = EROFS;
        goto fail;
    }
    if (ca_unlikely(!ca_is_pow2(align) || align > CA_ARENA_MAX_ALIGN)) {
        err = EINVAL;
        goto fail;
    }
    if (align < CA_ARENA_GRAIN)
        align = CA_ARENA_GRAIN;
    if (ca_unlikely(!block_size(size, &bsize))) {
        err = ENOMEM;
        goto fail;
    }
    ca_arena__cache *c = my_cache(a);
    if (ca_likely(c != NULL)) {
        c->streak = 0;
        err = alloc_cached(a, c, bsize, align, off);
        if (ca_likely(!err)) {
            rs(&c->allocs, c->allocs + 1);
            rs(&c->in_use, c->in_use + bsize);
            return 0;
        }
        goto fail;
    }
    err = ENOENT;
    if (a->order == CA_ARENA_FRESH_FIRST)
        err = bump(a, bsize, align, off);
    if (err && a->kind == CA_ARENA_FREELIST_OPTIMISTIC)
        err = pop_head(a, bsize, align, off);
    else if (err && a->kind == CA_ARENA_FREELIST_PESSIMISTIC)
        err = best_fit(a, bsize, align, off);
    if (err && a->order == CA_ARENA_REUSE_FIRST)
        err = bump(a, bsize, align, off);
    if (ca_unlikely(err && err != EINVAL))
        err = last_resort(a, bsize, align, off);
    if (ca_likely(!err)) {
        note_alloc(a, bsize);
        return 0;
    }
fail:
    cnt_add(&SH(a)->failures, 1);
    return err;
}

/* checks=full walks at the boundaries of the public operations, where the
 * calling thread's counters are complete. The walk is exact, so it wants one
 * thread inside the arena (the thread tests run at checks=on). */
int ca_arena_alloc(ca_arena *a, size_t size, size_t align, uint64_t *off)
{
    int err = alloc_impl(a, size, align, off);
    full_check(a);
    return err;
}

/* ------------------------------------------------------------------------
 * Free
 * ------------------------------------------------------------------------ */

static int free_impl(ca_arena *a, uint64_t off, size_t size)
{
    if (!off)
        return 0;
    if (ca_unlikely(a->mode == CA_ARENA_READ_ONLY))
        return EROFS;
    uint64_t bsize, end;
    uint64_t cur = __atomic_load_n(&a->cursor, __ATOMIC_ACQUIRE);
    if (ca_unlikely(!block_size(size, &bsize) || off < a->data_off || off % CA_ARENA_GRAIN ||
                    ca_add_overflows(off, bsize, &end) || end > cur))
        return EINVAL;
    ca_arena__cache *c = my_cache(a);
    if (ca_likely(c != NULL)) {
        /* the part of the caller's chunk not handed out is beyond its cursor */
        if (ca_unlikely(end > c->chunk_cur && off < c->chunk_end))
            return EINVAL;
        rs(&c->frees, c->frees + 1);
        rs(&c->in_use, c->in_use - bsize);
        if (end == c->chunk_cur) { /* the chunk's tail: a local rewind */
            rs(&c->chunk_cur, off);
            rs(&c->rewinds, c->rewinds + 1);
            return 0;
        }
        if (end != cur && binned(a, bsize)) {
            bin_put(a, c, off, bsize);
            return 0;
        }
    } else {
        ca_arena__shard *sh = SH(a);
        cnt_sub(&sh->in_use, bsize);
        cnt_add(&sh->frees, 1);
    }
    for (unsigned i = 0; i < a->max_retries && cur == end; i++) {
        if (__atomic_compare_exchange_n(&a->cursor, &cur, off, true, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
            cnt_add(&SH(a)->rewinds, 1);
            if (a->kind != CA_ARENA_FREELIST_NONE && (list_maybe_nonempty(a) || pending_maybe_nonempty(a))) {
                ca_arena__tw held;
                if (ca_arena__token_take(a, 1, &held)) {
                    uint64_t head = ca_arena__drain_pending(a, held.off);
                    ca_arena__token_release(a, held, rewind_through(a, head));
                }
            }
            return 0;
        }
        cnt_add(&SH(a)->retries, 1);
    }
    give_back(a, off, bsize);
    return 0;
}

int ca_arena_free(ca_arena *a, uint64_t off, size_t size)
{
    int err = free_impl(a, off, size);
    full_check(a);
    return err;
}

/* ------------------------------------------------------------------------
 * Compaction and reset
 * ------------------------------------------------------------------------ */

/* In-place merge sort of the list (the nodes are the free memory itself:
 * no scratch memory), in a node_order. */
static uint64_t n_next(const ca_arena *a, uint64_t x)
{
    uint64_t sz, next;
    ca_arena__node_get(a, x, &sz, &next);
    return next;
}

static uint64_t n_size(const ca_arena *a, uint64_t x)
{
    uint64_t sz, next;
    ca_arena__node_get(a, x, &sz, &next);
    return sz;
}

/* Whether node x goes before node y (for BY_KIND_NEWER, x is the new one). */
static bool ordered(const ca_arena *a, node_order how, uint64_t x, uint64_t y)
{
    if (how == BY_ADDR)
        return x < y;
    uint64_t sx = n_size(a, x), sy = n_size(a, y);
    if (sx != sy || how == BY_KIND_NEWER)
        return goes_before(a, sx, sy);
    return x > y;
}

/* Merge two sorted lists (0-terminated) into one: O(n + p). */
static uint64_t merge(ca_arena *a, node_order how, uint64_t x, uint64_t y)
{
    uint64_t head = 0, tail = 0, steps = 0;
    while (x && y) {
        uint64_t t;
        steps++;
        if (ordered(a, how, x, y)) {
            t = x;
            x = n_next(a, x);
        } else {
            t = y;
            y = n_next(a, y);
        }
        if (tail)
            node_set_next(a, tail, t);
        else
            head = t;
        tail = t;
    }
    uint64_t rest = x ? x : y;
    if (tail)
        node_set_next(a, tail, rest);
    else
        head = rest;
    count_steps(a, steps);
    return head;
}

/* Sort the n nodes from head (the n-th node's next is 0). */
static uint64_t msort(ca_arena *a, node_order how, uint64_t head, uint64_t n)
{
    if (n < 2)
        return head;
    uint64_t mid = head;
    for (uint64_t i = 1; i < n / 2; i++)
        mid = n_next(a, mid);
    count_steps(a, n / 2);
    uint64_t second = n_next(a, mid);
    node_set_next(a, mid, 0);
    return merge(a, how, msort(a, how, head, n / 2), msort(a, how, second, n - n / 2));
}

/* Compaction with the token held: merge address neighbours, give a segment
 * that ends at the cursor back to it, restore the kind's order. Returns the
 * new head. O(n log n), no memory. */
static uint64_t compact_locked(ca_arena *a, uint64_t head)
{
    uint64_t n = 0, total = 0;
    for (uint64_t x = head; x; n++) {
        uint64_t sz, next;
        CA_ASSERT(n < walk_bound(a), COMP, a->mem + x, "free list corrupt: cycle");
        ca_arena__node_get(a, x, &sz, &next);
        total += sz;
        x = next;
    }
    if (!n)
        return head;
    count_steps(a, 2 * n); /* the count above and the merge pass below */
    head = msort(a, BY_ADDR, head, n);
    uint64_t m = 0, kept = 0, prev = 0, last = 0;
    for (uint64_t x = head; x;) {
        uint64_t sz, next;
        ca_arena__node_get(a, x, &sz, &next);
        while (next && x + sz == next) { /* absorb the neighbour */
            uint64_t s2, n2;
            ca_arena__node_get(a, next, &s2, &n2);
            sz += s2;
            next = n2;
        }
        ca_arena__node_set(a, x, sz, next);
        prev = last;
        last = x;
        m++;
        kept += sz;
        x = next;
    }
    uint64_t lsz = n_size(a, last), cur = last + lsz;
    if (__atomic_compare_exchange_n(&a->cursor, &cur, last, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
        cnt_add(&SH(a)->rewinds, 1);
        if (prev)
            node_set_next(a, prev, 0);
        else
            head = 0;
        m--;
        kept -= lsz;
    }
    head = msort(a, BY_KIND, head, m);
    count_steps(a, m);
    a->max_end = 0;
    for (uint64_t x = head; x; x = n_next(a, x))
        if (x + n_size(a, x) > a->max_end)
            a->max_end = x + n_size(a, x);
    cnt_sub(&a->free_bytes, total - kept);
    cnt_sub(&a->free_count, n - m);
    a->compact_at = m * 2 > a->auto_compact ? m * 2 : a->auto_compact;
    return head;
}

int ca_arena_compact(ca_arena *a)
{
    if (a->mode == CA_ARENA_READ_ONLY)
        return EROFS;
    if (a->kind == CA_ARENA_FREELIST_NONE)
        return 0;
    ca_arena__tw held;
    ca_arena__token_take(a, 0, &held);
    uint64_t head = fold_unsorted(a, ca_arena__drain_pending(a, held.off));
    head = compact_locked(a, head);
    ca_arena__token_release(a, held, head);
    full_check(a);
    return 0;
}

void ca_arena__init_live(ca_arena *a, uint64_t cursor, uint64_t free_head, uint64_t free_bytes,
                         uint64_t free_count, uint64_t discarded)
{
    __atomic_store_n(&a->cursor, cursor, __ATOMIC_RELAXED);
    ca_arena__tw z = {0, 0};
    ca_arena__tw h = {free_head, 0};
    ca_arena__tw_store(a, 0, h);
    ca_arena__tw_store(a, 1, z);
    a->free_bytes = free_bytes;
    a->free_count = free_count;
    a->discarded = discarded;
    a->pending_bytes = a->pending_count = 0;
    memset(a->shard, 0, sizeof a->shard);
    a->max_end = free_head ? cursor : 0;
    a->compact_at = a->auto_compact;
    a->shard[0].in_use = cursor - a->data_off - free_bytes - discarded;
    a->peak = cursor - a->data_off;
    /* Thread caches: a chunk is at most a 64th of the data (so that many
     * threads leave most of a small arena to the shared cursor), 64 KiB and
     * half the cache; below 1 KiB there is no chunk, only the bins. */
    static uint64_t next_id;
    uint64_t ch = (a->capacity - a->data_off) / 64;
    if (ch > CA_ARENA__CHUNK_MAX)
        ch = CA_ARENA__CHUNK_MAX;
    if (ch > a->local_cache / 2)
        ch = a->local_cache / 2;
    ch = ca_align_down((size_t)ch, CA_ARENA_GRAIN);
    a->chunk = ch < 1024 ? 0 : ch;
    a->id = a->local_cache && a->mode != CA_ARENA_READ_ONLY ? __atomic_add_fetch(&next_id, 1, __ATOMIC_RELAXED)
                                                            : 0;
}

int ca_arena_reset(ca_arena *a)
{
    if (a->mode == CA_ARENA_READ_ONLY)
        return EROFS;
    ca_arena__caches_reset(a);
    ca_arena__tw held;
    ca_arena__token_take(a, 0, &held);
    __atomic_store_n(&a->cursor, a->data_off, __ATOMIC_RELEASE);
    ca_arena__tw_store(a, 1, (ca_arena__tw){0, 0});
    for (unsigned i = 0; i < CA_ARENA__SBIN_SHARDS * CA_ARENA__BINS; i++)
        __atomic_store_n(&a->sbin[i].top.w, 0, __ATOMIC_RELAXED);
    a->free_bytes = a->free_count = a->pending_bytes = a->pending_count = 0;
    a->discarded = 0;
    a->max_end = 0;
    for (unsigned i = 0; i < CA_ARENA__SHARDS; i++) {
        __atomic_store_n(&a->shard[i].in_use, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&a->shard[i].sbin_bytes, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&a->shard[i].sbin_blocks, 0, __ATOMIC_RELAXED);
    }
    __atomic_store_n(&a->sbin_approx, 0, __ATOMIC_RELAXED);
    ca_arena__token_release(a, held, 0);
    /* The region stays the arena's: the listener hears reset() only. */
    ca_arena__lock(&a->listen_lock, CA_LOCK_RANK_ARENA_LISTEN);
    if (a->listener && a->listener->reset)
        a->listener->reset(a->listener);
    ca_arena__unlock(&a->listen_lock, CA_LOCK_RANK_ARENA_LISTEN);
    return 0;
}

/* ------------------------------------------------------------------------
 * The ca_allocator view
 * ------------------------------------------------------------------------ */

static void *op_alloc(ca_allocator *base, size_t size, size_t align, size_t *usable)
{
    ca_arena *a = (void *)base;
    uint64_t off;
    int err = ca_arena_alloc(a, size, align, &off);
    if (err) {
        errno = err;
        return NULL;
    }
    if (usable)
        *usable = ca_align_up(size ? size : 1, CA_ARENA_GRAIN);
    return a->mem + off;
}

static bool in_region(const ca_arena *a, const void *p)
{
    uintptr_t x = (uintptr_t)p, b = (uintptr_t)a->mem;
    return x >= b + a->data_off && x < b + a->capacity;
}

static void op_free(ca_allocator *base, void *p, size_t size, size_t align)
{
    ca_arena *a = (void *)base;
    if (!p)
        return;
    CA_CHECK(in_region(a, p), COMP, p, "free of a pointer outside the arena");
    CA_CHECK(a->mode != CA_ARENA_READ_ONLY, COMP, p, "free on a read-only arena");
    int err = ca_arena_free(a, (uint64_t)((unsigned char *)p - a->mem), size);
    CA_CHECK(err == 0, COMP, p, "invalid free (offset or size out of range)");
    (void)err;
}

static void *op_resize(ca_allocator *base, void *p, size_t old_size, size_t new_size, size_t align, unsigned flags,
                       size_t *usable)
{
    ca_arena *a = (void *)base;
    if (!p)
        return op_alloc(base, new_size, align, usable);
    if (!ca_is_pow2(align) || align > CA_ARENA_MAX_ALIGN) {
        errno = EINVAL;
        return NULL;
    }
    if (a->mode == CA_ARENA_READ_ONLY) {
        errno = EROFS;
        return NULL;
    }
    uint64_t ob, nb;
    if (!block_size(old_size, &ob) || !block_size(new_size, &nb)) {
        errno = ENOMEM;
        return NULL;
    }
    uint64_t off = (uint64_t)((unsigned char *)p - a->mem);
    CA_CHECK(in_region(a, p), COMP, p, "resize of a pointer outside the arena");
    ca_arena__cache *c = my_cache(a);
    if (c && off + ob == c->chunk_cur && nb - ob <= c->chunk_end - c->chunk_cur) {
        /* the caller's chunk tail: grow or shrink it in place */
        rs(&c->chunk_cur, off + nb);
        rs(&c->in_use, c->in_use + nb - ob);
        if (usable)
            *usable = nb;
        return p;
    }
    if (nb <= ob) {
        if (nb < ob) {
            uint64_t cur = off + ob;
            if (__atomic_compare_exchange_n(&a->cursor, &cur, off + nb, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
                cnt_add(&SH(a)->rewinds, 1);
            else
                give_back(a, off + nb, ob - nb);
            cnt_sub(&SH(a)->in_use, ob - nb);
        }
        if (usable)
            *usable = nb;
        return p;
    }
    uint64_t cur = off + ob;
    if (nb - ob <= a->capacity - cur &&
        __atomic_compare_exchange_n(&a->cursor, &cur, off + nb, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
        cnt_add(&SH(a)->in_use, nb - ob);
        note_high(a, off + nb);
        if (usable)
            *usable = nb;
        return p;
    }
    /* Not in place: new_size > old_size here, so the generic resize moves
     * the block (or fails with ENOMEM under CA_RESIZE_IN_PLACE). */
    return ca_resize_generic(base, p, old_size, new_size, align, flags, usable);
}

static bool op_owns(const ca_allocator *base, const void *p) { return in_region((const void *)base, p); }

static void op_reset(ca_allocator *base) { ca_arena_reset((void *)base); }

static int op_stats(const ca_allocator *base, ca_stats *out) { return ca_arena_stats((const void *)base, out); }

/* ------------------------------------------------------------------------
 * Listener events
 *
 * The arena holds one range for its whole life: the region, reported as
 * [mem, mem + held) with held = the bytes obtained from the source (heap,
 * anonymous or caller's) or the file's capacity; it includes the header
 * page and the user area in front of the blocks. Page-aligned and whole
 * pages in every backing. The arena never grows or shrinks, so there are
 * no events between attach and close other than reset().
 *
 * Concurrency: listen_lock serialises ca_listen calls with each other and
 * with the reset() and close events. Allocation, free, resize, compact and
 * flush never touch the listener (nothing they do changes the range), so
 * attach and detach may run while other threads use the arena; every block
 * handed out before, during or after an attach lies in the reported range.
 * Attach and detach must not run concurrently with ca_arena_close (which is
 * single-caller anyway), nor with ca_arena_reset.
 * ------------------------------------------------------------------------ */

uint64_t ca_arena__held(const ca_arena *a)
{
    return a->backing == CA_ARENA__BACK_FILE ? a->capacity : a->obtained;
}

static int op_listen(ca_allocator *base, ca_listener *l)
{
    ca_arena *a = (void *)base;
    int err = 0;
    ca_arena__lock(&a->listen_lock, CA_LOCK_RANK_ARENA_LISTEN);
    if (l && a->listener) {
        err = EBUSY;
    } else if (l) {
        if (l->added)
            err = l->added(l, a->mem, (size_t)ca_arena__held(a));
        if (!err)
            a->listener = l;
    } else if (a->listener) {
        ca_listener *old = a->listener;
        a->listener = NULL;
        if (old->removed)
            old->removed(old, a->mem, (size_t)ca_arena__held(a));
    }
    ca_arena__unlock(&a->listen_lock, CA_LOCK_RANK_ARENA_LISTEN);
    return err;
}

void ca_arena__listen_close(ca_arena *a)
{
    ca_arena__lock(&a->listen_lock, CA_LOCK_RANK_ARENA_LISTEN);
    ca_listener *l = a->listener;
    a->listener = NULL;
    ca_arena__unlock(&a->listen_lock, CA_LOCK_RANK_ARENA_LISTEN);
    if (!l)
        return;
    if (l->destroyed)
        l->destroyed(l);
    if (l->removed)
        l->removed(l, a->mem, (size_t)ca_arena__held(a));
}

static const char *op_check(ca_allocator *a) { return ca_arena_check((const ca_arena *)(const void *)a); }

const ca_allocator_ops ca_arena__ops = {
    .name = "arena",
    .caps = CA_CAP_THREAD_SAFE,
    .alloc = op_alloc,
    .free = op_free,
    .free_unsized = NULL,
    .usable_size = NULL,
    .resize = op_resize,
    .owns = op_owns,
    .reset = op_reset,
    .stats = op_stats,
    .listen = op_listen,
    .check = op_check,
};
