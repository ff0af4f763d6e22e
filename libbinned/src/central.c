/* SPDX-License-Identifier: MIT */
/*
 * libbinned central free store of one class: blocks of the class range,
 * their out-of-band block words, the free tree (blocks with free slots) and
 * the empty tree (blocks with every slot free, memory still committed).
 *
 * Concurrency model: everything here runs under the class's spin lock, and
 * only on slow paths, a batch at a time: a thread cache refill that found the
 * recycler empty (take), a flush that found the recycler full (put), trim
 * and the decay pass (purge). One lock per class, never a global one.
 *
 * Policy: take() always carves from the lowest block with free slots (first
 * set bit of the free tree), so live data packs at the bottom of the range
 * and upper blocks empty out. A block whose last slot comes back becomes
 * EMPTY. Purge policy, one for memory return and for speed:
 *   - no system call on the free path and none under a class lock: put()
 *     only notes that the class went over its keep budget; the background
 *     thread's next pass (a quarter of the decay interval; the first excess
 *     starts it), or without one the thread's next slow path, runs the
 *     purge, which takes the blocks out under the lock (in flight:
 *     DECOMMITTED, nfree 0, in no tree), decommits them with the lock
 *     dropped and lists them again; adjacent blocks go in one call;
 *   - EMPTY blocks beyond the keep budget go back at that purge (highest
 *     first: take() carves from the bottom);
 *   - the others go back when they stayed EMPTY from one decay pass to the
 *     next (two passes per decay interval), or at once by ca_binned_trim;
 *   - hysteresis: a block decommitted less than a decay interval ago and
 *     needed again doubles the class's keep budget, which halves again at
 *     each decay pass without such a block. A class that frees and takes
 *     back the same memory in a loop stops returning it after a few rounds;
 *     an idle one returns everything after one decay interval.
 * Trailing blocks that hold nothing are cut off the frontier.
 *
 * Read ca_binned__central_take first.
 */
#include "binned_internal.h"

#include <errno.h>
#include <sys/mman.h>

void ca_binned__class_lock(ca_binned__class *c) { ca_binned__spin_lock(&c->lock, CA_LOCK_RANK_BINNED_CLASS); }
void ca_binned__class_unlock(ca_binned__class *c) { ca_binned__spin_unlock(&c->lock, CA_LOCK_RANK_BINNED_CLASS); }

static inline size_t block_bytes(unsigned cls) { return (size_t)1 << ca_binned__classes[cls].block_shift; }

static inline char *block_addr(const ca_binned__class *c, unsigned cls, size_t bi)
{
    return c->base + (bi << ca_binned__classes[cls].block_shift);
}

/* ------------------------------------------------------------------------
 * On-demand mapping (instances whose window is not reserved, binned.c)
 *
 * A class maps its range, the range's shadow and its metadata (the trees at
 * once, then block words) from the start of each, growing all three to cover
 * blocks [0, mapped). The first mapping is the one block needed (a program
 * that touches many classes a little keeps its address space and core file
 * small); each later step adds an eighth of what the class has, at least
 * MAP_STEP and one block: headroom stays within 1/8 + 256 KiB per class,
 * and a class of n bytes costs O(log n) mappings. At a limit (ENOMEM)
 * the step falls back to exactly the block needed. A piece mapped before a
 * later piece failed stays mapped and is reused by the next attempt.
 * ------------------------------------------------------------------------ */

#define MAP_STEP ((size_t)256 << 10)

/* Make [start, start + want) mapped where [start, start + *have) is. */
static int map_prefix(ca_source_mmap *src, char *start, size_t *have, size_t want)
{
    if (want <= *have)
        return 0;
    int err = *have ? ca_source_mmap_extend(src, start, *have, want) : ca_source_mmap_obtain_at(src, start, want);
    if (!err)
        *have = want;
    return err;
}

static int map_blocks(ca_binned *b, ca_binned__class *c, unsigned cls, size_t n)
{
    size_t bytes = n << ca_binned__classes[cls].block_shift;
    size_t words = ca_align_up(c->trees_bytes + n * sizeof(uint64_t), ca_page_size());
    int err = map_prefix(&b->own_src, c->meta_start, &c->meta_mapped, words);
    if (!err)
        err = map_prefix(&b->shadow_src, (char *)ca_binned__shadow(b, c->base), &c->shadow_mapped, bytes >> 4);
    if (!err)
        err = map_prefix(&b->own_src, c->base, &c->span_mapped, bytes);
    if (!err)
        c->mapped = n;
    __atomic_store_n(&b->class_end[cls], (uintptr_t)c->base + c->span_mapped, __ATOMIC_RELEASE);
    return err;
}

/* Blocks per mapping step of a class that has span_mapped bytes mapped. */
static size_t step_blocks(const ca_binned__class *c, unsigned cls)
{
    if (!c->span_mapped)
        return 1;
    size_t bsz = block_bytes(cls);
    size_t step = c->span_mapped / 8 > MAP_STEP ? c->span_mapped / 8 : MAP_STEP;
    return (step + bsz - 1) / bsz;
}

/* Blocks [0, need) mapped, plus headroom when the limits allow it. */
static bool map_more(ca_binned *b, ca_binned__class *c, unsigned cls, size_t need)
{
    size_t want = c->mapped + step_blocks(c, cls);
    if (want < need)
        want = need;
    if (want > c->max_blocks)
        want = c->max_blocks;
    int saved = errno; /* a successful malloc leaves errno alone */
    int err = map_blocks(b, c, cls, want);
    if (err == ENOMEM && want > need)
        err = map_blocks(b, c, cls, need);
    errno = saved;
    if (err) {
        c->commit_fail++;
        return false;
    }
    return true;
}

/* Unmap what lies beyond blocks [0, keep) (keep >= frontier: those blocks
 * are FRESH, DECOMMITTED or never started, in no tree, with a shadow of
 * zeros; their words read 0 = never started once mapped again). */
static void unmap_from(ca_binned *b, ca_binned__class *c, unsigned cls, size_t keep)
{
    size_t bytes = keep << ca_binned__classes[cls].block_shift;
    size_t words = keep ? ca_align_up(c->trees_bytes + keep * sizeof(uint64_t), ca_page_size()) : 0;
    int err = 0;
    if (c->span_mapped > bytes)
        __atomic_store_n(&b->class_end[cls], (uintptr_t)c->base + bytes, __ATOMIC_RELEASE);
    if (c->span_mapped > bytes && !(err = ca_source_mmap_shrink(&b->own_src, c->base, c->span_mapped, bytes)))
        c->span_mapped = bytes;
    if (!err && c->shadow_mapped > bytes >> 4 &&
        !(err = ca_source_mmap_shrink(&b->shadow_src, (char *)ca_binned__shadow(b, c->base), c->shadow_mapped,
                                      bytes >> 4)))
        c->shadow_mapped = bytes >> 4;
    if (!err && c->meta_mapped > words &&
        !(err = ca_source_mmap_shrink(&b->own_src, c->meta_start, c->meta_mapped, words)))
        c->meta_mapped = words;
    if (!err)
        c->mapped = keep;
    /* A failed shrink left more mapped than `bytes`: nothing beyond it is in use. */
}

/* After the frontier went down: the mapping follows it, by a step of
 * hysteresis (only beyond two steps of headroom, down to one), or all the
 * way (force: trim, or memory found short). */
static void unmap_tail(ca_binned *b, ca_binned__class *c, unsigned cls, bool force)
{
    if (!b->on_demand)
        return;
    size_t step = step_blocks(c, cls);
    if (force)
        unmap_from(b, c, cls, c->frontier);
    else if (c->mapped > c->frontier + 2 * step)
        unmap_from(b, c, cls, c->frontier + step);
}

/* Start the next block at the frontier (mapping it on demand and registering
 * its range in the ownership map when needed). Returns false when the class
 * range is full or the mapping or registration failed. */
static bool grow(ca_binned *b, ca_binned__class *c, unsigned cls)
{
    if (c->frontier >= c->max_blocks)
        return false;
    size_t bi = c->frontier;
    if (bi >= c->mapped && !map_more(b, c, cls, bi + 1))
        return false;
    if (b->use_owner_map && !b->owner_window && bi >= c->registered) {
        /* Register 2 MiB (or one block, when larger) at a time. */
        size_t bsz = block_bytes(cls);
        size_t chunk = bsz >= ((size_t)2 << 20) ? 1 : ((size_t)2 << 20) / bsz;
        if (c->registered + chunk > c->max_blocks)
            chunk = c->max_blocks - c->registered;
        int err = ca_owner_register(block_addr(c, cls, c->registered), chunk * bsz, &b->base);
        if (err) {
            c->commit_fail++;
            return false;
        }
        c->registered += chunk;
    }
    uint64_t w = c->meta[bi];
    if (w == 0)
        c->meta[bi] = ca_binned__bw_make(ca_binned__classes[cls].nslots, 0, 0, CA_BINNED__ST_FRESH, false);
    ca_binned__chain_set(&c->free_tree, bi);
    c->frontier = bi + 1;
    return true;
}

/* The shadow of n blocks from block `first` goes back with them: every
 * byte is 0 (no slot handed out) and reads 0 again afterwards. */
static void shadow_decommit(ca_binned *b, ca_binned__class *c, unsigned cls, size_t first, size_t n)
{
    uint8_t *sh = ca_binned__shadow(b, block_addr(c, cls, first));
    size_t len = (n * block_bytes(cls)) >> 4;
    size_t page = ca_page_size();
    if (ca_is_aligned((uintptr_t)sh, page) && ca_is_aligned(len, page))
        (void)ca_source_decommit(&b->shadow_src.base, sh, len);
}

/* A block on its way back to the system: DECOMMITTED with no free slot, so
 * that it is in no tree and take() cannot find it while the lock is dropped. */
ca_force_inline bool in_flight(uint64_t w)
{
    return ca_binned__bw_state(w) == CA_BINNED__ST_DECOMMITTED && ca_binned__bw_nfree(w) == 0;
}

/* Under the lock: EMPTY blocks [first, first + n) leave both trees, in flight. */
static void flight_start(ca_binned__class *c, size_t first, size_t n)
{
    for (size_t i = first; i < first + n; i++) {
        ca_binned__chain_clear(&c->empty_tree, i);
        ca_binned__chain_clear(&c->free_tree, i);
        c->meta[i] = ca_binned__bw_make(0, 0, 0, CA_BINNED__ST_DECOMMITTED, false);
    }
    c->nempty -= n;
    c->committed -= n;
    c->inflight += n;
}

/* Under the lock, after the decommit (err its result): the blocks are listed
 * again, DECOMMITTED, or EMPTY when it failed (memory still valid; counted,
 * not fatal, and marked seen so that every pass does not retry them). */
static void flight_end(ca_binned__class *c, unsigned cls, size_t first, size_t n, int err, uint64_t now)
{
    unsigned nslots = ca_binned__classes[cls].nslots;
    for (size_t i = first; i < first + n; i++) {
        ca_binned__chain_set(&c->free_tree, i);
        if (err)
            ca_binned__chain_set(&c->empty_tree, i);
        c->meta[i] = ca_binned__bw_make(nslots, 0, 0, err ? CA_BINNED__ST_EMPTY : CA_BINNED__ST_DECOMMITTED,
                                        err != 0);
    }
    c->inflight -= n;
    if (err) {
        c->nempty += n;
        c->committed += n;
        c->commit_fail++;
    } else {
        c->decommits += n;
        c->decommit_ns = now;
    }
}

/* No lock held: the memory of blocks [first, first + n) and their shadow. */
static int decommit_blocks(ca_binned *b, ca_binned__class *c, unsigned cls, size_t first, size_t n)
{
    int err = ca_source_decommit(b->src, block_addr(c, cls, first), n * block_bytes(cls));
    if (!err)
        shadow_decommit(b, c, cls, first, n);
    return err;
}

/* Abort on a block-list link that does not carry its tag. */
ca_attr_noreturn ca_attr_cold ca_attr_noinline static void corrupt_link(unsigned cls, const void *p)
{
    ca_binned__fail_class("corrupt free-list link", cls, p, __FILE__, __LINE__);
}

static unsigned take(ca_binned *b, unsigned cls, unsigned n, void **out);

/* Under the lock: a DECOMMITTED block is taken again. Within a decay
 * interval of the class's last decommit that is thrash: keep more. */
static void note_recommit(ca_binned *b, ca_binned__class *c)
{
    uint64_t window = b->decay_ns ? b->decay_ns : 1000000000u;
    if (c->decommits == 0 || ca_binned__now_ns() - c->decommit_ns >= window)
        return;
    c->recommits++;
    c->recommitted = true;
    size_t cap = c->frontier;
    c->keep = c->keep * 2 + 1 < cap ? c->keep * 2 + 1 : cap;
}

/* ------------------------------------------------------------------------
 * Populate ahead
 *
 * A page of fresh memory costs a page fault on its first write; populating
 * a run of pages with one madvise(MADV_POPULATE_WRITE) costs about half as
 * much per page (measured on a 2-core VM: 11 us per fault against 5.7 us
 * per populated page), and a class that moves through its memory (strings
 * grown through every class, a heap that grows) faults in every page it
 * carves. So a refill that carves untouched memory of a class in steady use
 * (more than one block started: a program's first block of a class is never
 * populated, so a small program's footprint is what it touches) populates
 * the 64 KiB chunks its carve entered, once each: [round_up(start, 64 KiB),
 * round_up(end, 64 KiB)) of the block. Classes of at most 8 KiB only: their
 * slots are a page or two, so a slot the program writes at all is (nearly)
 * all written; a bigger slot (a buffer used in part) is left to fault. Only for instances on their own
 * anonymous mappings, never under the class lock (after take() drops it: a
 * slot handed out meanwhile is just written, populate leaves present pages
 * alone), best effort (a failure only leaves the pages to fault), and
 * switched off for good by a kernel without it (EINVAL, before 5.14).
 * ------------------------------------------------------------------------ */

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#define POPULATE_CHUNK    ((size_t)64 << 10)
#define POPULATE_MAX      4
#define POPULATE_SLOT_MAX ((size_t)8 << 10)

typedef struct populate_list {
    unsigned n;
    struct {
        char *p;
        size_t len;
    } r[POPULATE_MAX];
} populate_list;

static int g_populate_off; /* 1: the kernel refused MADV_POPULATE_WRITE */

/* Slots [from, to) (byte offsets in the block at blk, of block_len bytes)
 * were carved from untouched memory: note the chunks the carve entered. */
static void populate_note(populate_list *l, char *blk, size_t from, size_t to, size_t block_len)
{
    size_t a = ca_align_up(from, POPULATE_CHUNK), e = ca_align_up(to, POPULATE_CHUNK);
    if (e > block_len)
        e = block_len;
    if (a >= e || l->n == POPULATE_MAX)
        return;
    l->r[l->n].p = blk + a;
    l->r[l->n].len = e - a;
    l->n++;
}

static void populate_run(const populate_list *l)
{
    if (!l->n || __atomic_load_n(&g_populate_off, __ATOMIC_RELAXED))
        return;
    int saved = errno;
    for (unsigned i = 0; i < l->n; i++)
        if (ca_os_advise(l->r[i].p, l->r[i].len, MADV_POPULATE_WRITE) == EINVAL) {
            __atomic_store_n(&g_populate_off, 1, __ATOMIC_RELAXED);
            break;
        }
    errno = saved;
}

unsigned ca_binned__central_take(ca_binned *b, unsigned cls, unsigned n, void **out)
{
    uint64_t fails = __atomic_load_n(&b->classes[cls].commit_fail, __ATOMIC_RELAXED);
    unsigned got = take(b, cls, n, out);
    /* Out of memory or address space (not a full class range): give back
     * what every cache and class holds, then try once more. */
    if (!got && __atomic_load_n(&b->classes[cls].commit_fail, __ATOMIC_RELAXED) != fails) {
        ca_binned__reclaim(b);
        got = take(b, cls, n, out);
    }
    return got;
}

static unsigned take(ca_binned *b, unsigned cls, unsigned n, void **out)
{
    ca_binned__class *c = &b->classes[cls];
    const ca_binned__class_info *ci = &ca_binned__classes[cls];
    unsigned got = 0;
    populate_list pop = {.n = 0};

    ca_binned__class_lock(c);
    while (got < n) {
        long bl = ca_binned__chain_first(&c->free_tree);
        if (bl < 0) {
            if (!grow(b, c, cls))
                break;
            continue;
        }
        size_t bi = (size_t)bl;
        uint64_t w = c->meta[bi];
        unsigned st = ca_binned__bw_state(w);
        char *blk = block_addr(c, cls, bi);
        if (st == CA_BINNED__ST_DECOMMITTED) {
            if (ca_source_commit(b->src, blk, block_bytes(cls)) != 0) {
                c->commit_fail++;
                break;
            }
            c->committed++;
            note_recommit(b, c);
        } else if (st == CA_BINNED__ST_EMPTY) {
            ca_binned__chain_clear(&c->empty_tree, bi);
            c->nempty--;
        } else if (st == CA_BINNED__ST_FRESH) {
            c->committed++;
        }
        bool dirty = st == CA_BINNED__ST_EMPTY || (st == CA_BINNED__ST_ACTIVE && (w & CA_BINNED__BW_DIRTY)) ||
                     (st == CA_BINNED__ST_FRESH && !b->fresh_zero) ||
                     (st == CA_BINNED__ST_DECOMMITTED && !b->decommit_zero);
        unsigned nfree = ca_binned__bw_nfree(w), h = ca_binned__bw_head(w), bump = ca_binned__bw_bump(w);
        CA_ASSERT(nfree > 0, CA_BINNED__COMP, blk, "block in the free tree has no free slot");
        /* The block's list: every link is checked before it is followed; a
         * valid one names a slot below bump, in this block. */
        while (got < n && h) {
            char *p = blk + (size_t)(h - 1) * ci->size;
            uint64_t link = *(uint64_t *)(void *)p;
            unsigned next1 = (unsigned)(link & 0xffff);
            if (ca_unlikely(link != ca_binned__link_word(p, next1) || next1 > bump || nfree == 0 ||
                            *ca_binned__shadow(b, p) != 0))
                corrupt_link(cls, p);
            *(uint64_t *)(void *)p = 0; /* the tag does not leave the allocator */
            out[got++] = p;
            nfree--;
            h = next1;
        }
        unsigned bump0 = bump;
        while (got < n && bump < ci->nslots) {
            /* A dirty block (EMPTY before) may still hold an old link word
             * here: clear it, so that a later put does not take the slot for
             * one already listed. A clean one reads zero: not touched. */
            char *p = blk + (size_t)bump * ci->size;
            if (dirty)
                *(uint64_t *)(void *)p = 0;
            out[got++] = p;
            bump++;
            nfree--;
        }
        CA_ASSERT(nfree == 0 || got == n, CA_BINNED__COMP, blk, "block free count out of step with its slots");
        CA_ASSERT(nfree != 0 || h == 0, CA_BINNED__COMP, blk, "block free list longer than its free count");
        if (nfree == 0)
            ca_binned__chain_clear(&c->free_tree, bi);
        c->meta[bi] = ca_binned__bw_make(nfree, h, bump, CA_BINNED__ST_ACTIVE, false) |
                      (dirty ? CA_BINNED__BW_DIRTY : 0);
        if (!dirty && bump > bump0 && b->on_demand && c->frontier > 1 && ci->size <= POPULATE_SLOT_MAX)
            populate_note(&pop, blk, bump0 * (size_t)ci->size, bump * (size_t)ci->size, block_bytes(cls));
    }
    c->slots_out += got;
    ca_binned__class_unlock(c);
    populate_run(&pop);
    return got;
}

/* Under the lock: the slots go back to their blocks; true when the class
 * went over its keep budget. Slots of one block that follow each other in
 * `slots` (the common case: a cache hands back what the program freed, and
 * neighbours are freed together) are one run: the block word is read,
 * checked and written once a run, not once a slot. */
static bool put_locked(ca_binned__class *c, unsigned cls, void *const *slots, size_t n)
{
    const ca_binned__class_info *ci = &ca_binned__classes[cls];
    const unsigned shift = ci->block_shift, nslots = ci->nslots, size = ci->size;
    const uint64_t recip = ci->recip;
    const size_t bmask = block_bytes(cls) - 1, frontier = c->frontier;
    char *const base = c->base;
    uint64_t *const meta = c->meta;
    bool over = false;
    size_t i = 0;
    while (i < n) {
        char *p = (char *)slots[i];
        size_t off = (size_t)(p - base);
        const size_t bi = off >> shift;
        CA_ASSERT(bi < frontier, CA_BINNED__COMP, p,
                  "free of a pointer that is not a slot start (interior or foreign pointer)");
        const uint64_t w = meta[bi];
        CA_ASSERT(ca_binned__bw_state(w) == CA_BINNED__ST_ACTIVE, CA_BINNED__COMP, p,
                  "double free (slot already free in its block)");
        const unsigned nfree0 = ca_binned__bw_nfree(w), bump = ca_binned__bw_bump(w);
        unsigned nfree = nfree0, head = ca_binned__bw_head(w);
        for (;;) {
            size_t boff = off & bmask;
            uint32_t idx = (uint32_t)(((uint64_t)boff * recip) >> CA_BINNED__RECIP_SHIFT);
            CA_ASSERT((size_t)idx * size == boff && idx < nslots, CA_BINNED__COMP, p,
                      "free of a pointer that is not a slot start (interior or foreign pointer)");
            CA_ASSERT(nfree < nslots && idx < bump, CA_BINNED__COMP, p,
                      "double free (slot already free in its block)");
            if (CA_CHECKS >= CA_CHECKS_ON) {
                /* Behind the shadow's check (which every free passes before its
                 * slot can reach a block): a slot already listed comes back. */
                uint64_t old = *(uint64_t *)(void *)p;
                CA_ASSERT(old != ca_binned__link_word(p, (unsigned)(old & 0xffff)), CA_BINNED__COMP, p,
                          "double free (slot already free in its block)");
            }
            *(uint64_t *)(void *)p = ca_binned__link_word(p, head);
            head = idx + 1;
            nfree++;
            if (++i == n)
                break;
            p = (char *)slots[i];
            off = (size_t)(p - base);
            if ((off >> shift) != bi)
                break;
        }
        if (nfree0 == 0)
            ca_binned__chain_set(&c->free_tree, bi);
        if (nfree == nslots) {
            meta[bi] = ca_binned__bw_make(nfree, 0, 0, CA_BINNED__ST_EMPTY, false);
            ca_binned__chain_set(&c->empty_tree, bi);
            c->nempty++;
            over |= c->nempty > c->keep;
        } else {
            meta[bi] = ca_binned__bw_make(nfree, head, bump, CA_BINNED__ST_ACTIVE, false) |
                       (w & CA_BINNED__BW_DIRTY);
        }
    }
    c->slots_out -= n;
    return over;
}

/* The class went over its keep budget: the excess goes back at the next
 * slow path, off this one. */
static void note_over(ca_binned *b, unsigned cls)
{
    uint64_t bit = (uint64_t)1 << (cls & 63);
    if (!(__atomic_load_n(&b->over_keep[cls >> 6], __ATOMIC_RELAXED) & bit))
        __atomic_fetch_or(&b->over_keep[cls >> 6], bit, __ATOMIC_RELAXED);
}

void ca_binned__central_put(ca_binned *b, unsigned cls, void *const *slots, size_t n)
{
    ca_binned__class *c = &b->classes[cls];
    ca_binned__class_lock(c);
    bool over = put_locked(c, cls, slots, n);
    ca_binned__class_unlock(c);
    if (over)
        note_over(b, cls);
}

/* Lower the frontier over trailing blocks that hold nothing (not over a
 * block in flight). */
static void trim_frontier(ca_binned__class *c, unsigned cls)
{
    while (c->frontier > 0) {
        uint64_t w = c->meta[c->frontier - 1];
        unsigned st = ca_binned__bw_state(w);
        if ((st != CA_BINNED__ST_FRESH && st != CA_BINNED__ST_DECOMMITTED) || in_flight(w))
            break;
        (void)cls;
        ca_binned__chain_clear(&c->free_tree, c->frontier - 1);
        c->frontier--;
    }
}

/* Under the lock: pick runs of consecutive EMPTY blocks (at most nmax runs)
 * and put them in flight; returns the count of runs. FORCE: every EMPTY
 * block, from the bottom. EXCESS: the highest nempty - keep, walking down
 * from the top (take() carves from the bottom), so the cost is the excess,
 * not the EMPTY count. DUE: those an earlier decay pass saw EMPTY. The seen
 * bits are not set here (see mark_seen), so that picking again after the
 * lock was dropped sees the same blocks due. */
typedef struct run {
    size_t first, n;
} run;

static unsigned pick_runs(ca_binned__class *c, int mode, run *runs, unsigned nmax)
{
    unsigned nr = 0;
    if (mode == CA_BINNED__PURGE_EXCESS) {
        size_t excess = c->nempty > c->keep ? c->nempty - c->keep : 0;
        for (long bl = excess ? ca_binned__chain_last(&c->empty_tree) : -1; bl >= 0 && excess;
             bl = bl ? ca_binned__chain_prev(&c->empty_tree, (size_t)bl - 1) : -1, excess--) {
            size_t bi = (size_t)bl;
            if (nr && runs[nr - 1].first == bi + 1) {
                runs[nr - 1].first = bi;
                runs[nr - 1].n++;
                continue;
            }
            if (nr == nmax)
                break;
            runs[nr++] = (run){bi, 1};
        }
    } else {
        for (long bl = ca_binned__chain_first(&c->empty_tree); bl >= 0;
             bl = ca_binned__chain_next(&c->empty_tree, (size_t)bl + 1)) {
            size_t bi = (size_t)bl;
            if (mode == CA_BINNED__PURGE_DUE && !ca_binned__bw_seen(c->meta[bi]))
                continue;
            if (nr && runs[nr - 1].first + runs[nr - 1].n == bi) {
                runs[nr - 1].n++;
                continue;
            }
            if (nr == nmax)
                break;
            runs[nr++] = (run){bi, 1};
        }
    }
    /* Blocks are taken out only now: the walks above read the tree. */
    for (unsigned r = 0; r < nr; r++)
        flight_start(c, runs[r].first, runs[r].n);
    return nr;
}

/* Under the lock, at the end of a decay pass: every block still EMPTY has
 * been seen by this pass (due at the next one). */
static void mark_seen(ca_binned__class *c)
{
    for (long bl = ca_binned__chain_first(&c->empty_tree); bl >= 0;
         bl = ca_binned__chain_next(&c->empty_tree, (size_t)bl + 1))
        c->meta[bl] |= (uint64_t)1 << 50;
}

size_t ca_binned__central_purge(ca_binned *b, unsigned cls, int mode, size_t *nempty)
{
    ca_binned__class *c = &b->classes[cls];
    enum { NRUNS = 16 };
    run runs[NRUNS];
    ca_binned__class_lock(c);
    if (mode == CA_BINNED__PURGE_DUE) {
        /* The keep budget's decay: halve it after a pass without thrash. */
        size_t floor = b->empty_keep >> ca_binned__classes[cls].block_shift;
        if (!c->recommitted && c->keep > floor)
            c->keep = c->keep / 2 > floor ? c->keep / 2 : floor;
        c->recommitted = false;
    }
    /* The decay pass returns the excess over the budget first, then the
     * blocks that stayed EMPTY since the pass before. */
    int step = mode == CA_BINNED__PURGE_DUE ? CA_BINNED__PURGE_EXCESS : mode;
    for (;;) {
        unsigned nr = c->nempty ? pick_runs(c, step, runs, NRUNS) : 0;
        if (nr == 0 && step == CA_BINNED__PURGE_EXCESS && mode == CA_BINNED__PURGE_DUE) {
            step = CA_BINNED__PURGE_DUE;
            continue;
        }
        if (nr == 0)
            break;
        ca_binned__class_unlock(c);
        int errs[NRUNS];
        for (unsigned r = 0; r < nr; r++)
            errs[r] = decommit_blocks(b, c, cls, runs[r].first, runs[r].n);
        uint64_t now = ca_binned__now_ns();
        bool failed = false;
        ca_binned__class_lock(c);
        for (unsigned r = 0; r < nr; r++) {
            flight_end(c, cls, runs[r].first, runs[r].n, errs[r], now);
            failed |= errs[r] != 0;
        }
        if (failed) /* a failed block would be picked again */
            break;
        if (nr < NRUNS && step == mode)
            break;
        if (nr < NRUNS)
            step = CA_BINNED__PURGE_DUE;
    }
    if (mode == CA_BINNED__PURGE_DUE)
        mark_seen(c);
    if (c->inflight == 0) { /* another purge may have blocks in flight */
        trim_frontier(c, cls);
        unmap_tail(b, c, cls, mode == CA_BINNED__PURGE_FORCE);
    }
    if (nempty)
        *nempty = c->nempty;
    size_t committed = c->committed << ca_binned__classes[cls].block_shift;
    ca_binned__class_unlock(c);
    return committed;
}

void ca_binned__central_drain_idle(ca_binned *b, unsigned cls)
{
    ca_binned__class *c = &b->classes[cls];
    ca_binned__rec_decay(c);
    if (!__atomic_exchange_n(&c->rec_used, 0, __ATOMIC_RELAXED) &&
        __atomic_load_n(&c->rec_bundles, __ATOMIC_RELAXED))
        ca_binned__central_drain_recycler(b, cls);
}

void ca_binned__central_drain_recycler(ca_binned *b, unsigned cls)
{
    ca_binned__class *c = &b->classes[cls];
    /* Taken under the class lock: ca_binned_check walks the recycler under
     * it, and a drain by the background thread must not move bundles under
     * that walk (pushes and pops by threads are lock-free; the check asks
     * for them to be quiescent). */
    ca_binned__class_lock(c);
    ca_binned__bundle *d = (ca_binned__bundle *)ca_binned__recycler_take_all(&c->rec), *all = d;
    uint64_t n = 0, slots = 0;
    bool over = false;
    for (; d; d = d->next, n++) {
        over |= put_locked(c, cls, d->slots, d->n);
        slots += d->n;
    }
    if (n) {
        __atomic_fetch_sub(&c->rec_bundles, n, __ATOMIC_RELAXED);
        __atomic_fetch_sub(&c->rec_slots, slots, __ATOMIC_RELAXED);
    }
    ca_binned__class_unlock(c);
    while (all) {
        ca_binned__bundle *next = all->next;
        ca_binned__bundle_put(b, all);
        all = next;
    }
    if (over)
        note_over(b, cls);
}
