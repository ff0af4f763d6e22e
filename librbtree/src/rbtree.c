/* SPDX-License-Identifier: MIT */
/*
 * The librbtree allocator: regions from a source or parent allocator, cut
 * into blocks with boundary tags; free blocks kept in one address-keyed
 * red-black tree per size class (tree.c); best fit, split, O(1) coalescing,
 * resize in place, return of empty regions with a hysteresis of one.
 *
 * Concurrency: single owner. Every function assumes exclusive access to the
 * ca_rbtree; ca_locked_allocator (core.h) provides it for shared use.
 *
 * Read first: the block layout in rbtree_internal.h, then put_free(),
 * take_free() and refit_free() (the only places a free block enters, leaves
 * or changes in a tree), then ca_rbtree_alloc() and free_block().
 * Allocation cuts from the tail of the chosen free block, so the free part
 * keeps its address and, when its class does not change, its tree position.
 */
#include <string.h>

#include "rbtree_internal.h"

#define COMP "rbtree"

#define FULL_CHECK(r) CA_CHECK_WALK(COMP, (r), ca_rbtree_check)

/* ---- sizes ---------------------------------------------------------------- */

/* Block size for a request of size bytes; true on overflow or above the limit. */
static bool block_need_overflows(size_t size, size_t *out)
{
    size_t t;
    if (ca_add_overflows(size, RBT_HDR, &t) || ca_align_up_overflows(t, 16, &t) || t > RBT_MAX_BLOCK)
        return true;
    *out = t < RBT_MIN_BLOCK ? RBT_MIN_BLOCK : t;
    return false;
}

/* ---- the class trees -------------------------------------------------------- */

static unsigned next_nonempty(const ca_rbtree *r, unsigned c)
{
    unsigned w = c >> 6;
    uint64_t bits = r->nonempty[w] & (~(uint64_t)0 << (c & 63));
    if (bits)
        return w * 64u + (unsigned)__builtin_ctzll(bits);
    uint64_t words = w + 1 < 64 ? r->nonempty_words >> (w + 1) : 0;
    if (!words)
        return CA_RBTREE_NCLASSES;
    w += 1u + (unsigned)__builtin_ctzll(words);
    return w * 64u + (unsigned)__builtin_ctzll(r->nonempty[w]);
}

static void tree_put(ca_rbtree *r, void *b)
{
    size_t s = rbt_size(b);
    unsigned c = rbt_class_of(s);
    ca_rbtree__tree_insert(&r->roots[c], rbt_node_of(b));
    r->nonempty[c >> 6] |= (uint64_t)1 << (c & 63);
    r->nonempty_words |= (uint64_t)1 << (c >> 6);
    r->class_bytes[c] += s;
    r->free_bytes += s;
    r->free_blocks++;
}

static void tree_take(ca_rbtree *r, void *b)
{
    size_t s = rbt_size(b);
    unsigned c = rbt_class_of(s);
    ca_rbtree__tree_remove(&r->roots[c], rbt_node_of(b));
    if (!r->roots[c]) {
        r->nonempty[c >> 6] &= ~((uint64_t)1 << (c & 63));
        if (!r->nonempty[c >> 6])
            r->nonempty_words &= ~((uint64_t)1 << (c >> 6));
    }
    r->class_bytes[c] -= s;
    r->free_bytes -= s;
    r->free_blocks--;
}

/* Best fit: the smallest free block >= need (lowest address among equals). */
static void *find_fit(ca_rbtree *r, size_t need)
{
    unsigned c = rbt_class_of(need);
    if (c >= RBT_EXACT_CLASSES) {
        /* Own class: blocks may be smaller than need; every later class fits. */
        if (r->roots[c]) {
            rbt_node *n = ca_rbtree__tree_best(r->roots[c], need);
            if (n)
                return rbt_block_of(n);
        }
        c++;
        if (c >= CA_RBTREE_NCLASSES)
            return NULL;
    }
    c = next_nonempty(r, c);
    if (c >= CA_RBTREE_NCLASSES)
        return NULL;
    return rbt_block_of(ca_rbtree__tree_min_size(r->roots[c]));
}

/* ---- regions ---------------------------------------------------------------- */

static rbt_region *region_of_first(void *b) { return (rbt_region *)(void *)((char *)b - RBT_REGION_HDR); }
static void *region_first(rbt_region *g) { return (char *)g + RBT_REGION_HDR; }
static void *region_end(rbt_region *g) { return (char *)g + g->size - RBT_HDR; } /* the sentinel */

/* A free block that is its region's only block. */
static bool whole_region(void *b) { return (*rbt_word(b) & RBT_FIRST) && rbt_size(rbt_next(b)) == 0; }

/* Regions are multiples of r->granule (>= CA_PAGE_SIZE_MIN) aligned to it,
 * so that every region is whole pages of the ownership map; a parent's
 * allocator source asks it for alignment CA_OWNER_PAGE for such sizes. */
_Static_assert(CA_PAGE_SIZE_MIN % CA_OWNER_PAGE == 0, "region sizes are whole ownership pages");

/* Give [mem, mem + size) back to the source. */
static void region_give_back(ca_rbtree *r, void *mem, size_t size) { ca_source_release(r->source, mem, size); }

/* Unlink region g, tell the listener (removed), give it back. */
static void region_release(ca_rbtree *r, rbt_region *g)
{
    CA_DLIST_UNLINK(r->regions, g, prev, next);
    r->nregions--;
    r->reserved -= g->size;
    r->regions_released++;
    if (r->listener && r->listener->removed)
        r->listener->removed(r->listener, g, g->size);
    region_give_back(r, g, g->size);
}

/* A new region whose single block (returned, in no tree, flags RBT_FIRST) has
 * at least need bytes. NULL + errno on failure: the provider's error, or the
 * errno with which the listener's added() refused the region (the region is
 * then given back before anything in r changed). */
static void *region_new(ca_rbtree *r, size_t need)
{
    size_t rsize;
    void *mem = NULL;
    if (ca_add_overflows(need, RBT_REGION_OVERHEAD, &rsize)) {
        errno = ENOMEM;
        return NULL;
    }
    if (rsize < r->region_size)
        rsize = r->region_size;
    if (ca_align_up_overflows(rsize, r->granule, &rsize)) {
        errno = ENOMEM;
        return NULL;
    }
    int e = ca_source_obtain(r->source, rsize, r->granule, &mem);
    if (e) {
        errno = e;
        return NULL;
    }
    if (r->listener && r->listener->added) {
        e = r->listener->added(r->listener, mem, rsize);
        if (e) {
            region_give_back(r, mem, rsize);
            errno = e;
            return NULL;
        }
    }
    rbt_region *g = (rbt_region *)mem;
    g->size = rsize;
    g->pad = 0;
    CA_DLIST_PUSH(r->regions, g, prev, next);
    r->nregions++;
    r->regions_obtained++;
    r->reserved += rsize;
    if (r->reserved > r->peak_reserved)
        r->peak_reserved = r->reserved;

    void *end = region_end(g);
    *rbt_word(end) = 0;
    *rbt_tagp(end) = 0;
    void *b = region_first(g);
    *rbt_word(b) = (rsize - RBT_REGION_OVERHEAD) | RBT_FIRST;
    *rbt_tagp(b) = (uintptr_t)b ^ RBT_TAG_ALLOC;
    return b;
}

/* ---- blocks ----------------------------------------------------------------- */

/* Make [b, b + size) a free block. Precondition: neither neighbour is free.
 * Inserts it into its class tree, or releases the region when it empties the
 * region while another empty region is already kept. */
static void put_free(ca_rbtree *r, void *b, size_t size, size_t first)
{
    *rbt_word(b) = size | RBT_FREE | first;
    *rbt_tagp(b) = (uintptr_t)b ^ RBT_TAG_FREE;
    *rbt_footer(b) = size;
    void *next = (char *)b + size;
    *rbt_word(next) |= RBT_PREV_FREE;
    if (first && rbt_size(next) == 0) {
        if (r->nempty >= 1) {
            region_release(r, region_of_first(b));
            return;
        }
        r->nempty++;
    }
    tree_put(r, b);
}

/* Take a free block out of its tree (it is about to be used or merged). */
static void take_free(ca_rbtree *r, void *b)
{
    if (whole_region(b))
        r->nempty--;
    tree_take(r, b);
}

/* Mark [b, b + size) allocated; flags are its RBT_FIRST / RBT_PREV_FREE bits. */
static void set_alloc(void *b, size_t size, size_t flags)
{
    *rbt_word(b) = size | flags;
    *rbt_tagp(b) = (uintptr_t)b ^ RBT_TAG_ALLOC;
    *rbt_word((char *)b + size) &= ~RBT_PREV_FREE;
}

/* Free block b, in its tree, just grew: when it now spans its whole region,
 * keep it as the one empty region or release the region. */
static void settle_empty(ca_rbtree *r, void *b)
{
    if (!whole_region(b))
        return;
    if (r->nempty >= 1) {
        tree_take(r, b);
        region_release(r, region_of_first(b));
        return;
    }
    r->nempty++;
}

/* Free block b, in its tree, changes size to nsize (it keeps its address,
 * hence its place in the tree when its class stays the same: then only the
 * sizes on the path to the root are refreshed). Precondition: after the
 * change neither neighbour is free. Handles the region-empty transitions. */
static void refit_free(ca_rbtree *r, void *b, size_t nsize)
{
    size_t osize = rbt_size(b), first = *rbt_word(b) & RBT_FIRST;
    unsigned c = rbt_class_of(osize);
    if (c != rbt_class_of(nsize)) {
        take_free(r, b);
        put_free(r, b, nsize, first);
        return;
    }
    if (whole_region(b))
        r->nempty--;
    *rbt_word(b) = nsize | RBT_FREE | first;
    *rbt_footer(b) = nsize;
    *rbt_word((char *)b + nsize) |= RBT_PREV_FREE;
    r->class_bytes[c] += (uint64_t)nsize - osize;
    r->free_bytes += (uint64_t)nsize - osize;
    ca_rbtree__tree_update(rbt_node_of(b));
    settle_empty(r, b);
}

/* Allocated block b (not preceded by a free block) is freed and merges with
 * its free next block: when the merged size keeps next's class, b takes
 * next's node position (no free block lies between them, so the address
 * order holds) instead of a remove and an insert. Returns false when the
 * class changes (the caller merges the slow way). */
static bool absorb_next(ca_rbtree *r, void *b, void *next)
{
    size_t size = rbt_size(b), nsize = rbt_size(next), total = size + nsize;
    unsigned c = rbt_class_of(nsize);
    if (rbt_class_of(total) != c)
        return false;
    *rbt_word(b) = total | RBT_FREE | (*rbt_word(b) & RBT_FIRST);
    *rbt_tagp(b) = (uintptr_t)b ^ RBT_TAG_FREE;
    *rbt_footer(b) = total; /* next's footer: the end did not move */
    r->class_bytes[c] += size;
    r->free_bytes += size;
    ca_rbtree__tree_replace(&r->roots[c], rbt_node_of(next), rbt_node_of(b));
    settle_empty(r, b);
    return true;
}

/* Put need bytes of free block b into use, taken from its tail so that the
 * rest keeps its address (and usually its place in its tree). in_tree: b is
 * in a tree (false for a fresh region's block). Returns the allocated block;
 * *asz receives its size. */
static void *carve(ca_rbtree *r, void *b, size_t need, bool in_tree, size_t *asz)
{
    size_t bsize = rbt_size(b), first = *rbt_word(b) & RBT_FIRST;
    if (bsize - need >= RBT_MIN_BLOCK) {
        void *ab = (char *)b + (bsize - need);
        set_alloc(ab, need, RBT_PREV_FREE);
        if (in_tree)
            refit_free(r, b, bsize - need);
        else
            put_free(r, b, bsize - need, first);
        *asz = need;
        return ab;
    }
    if (in_tree)
        take_free(r, b);
    set_alloc(b, bsize, first);
    *asz = bsize;
    return b;
}

/* As carve, for an alignment above 16: the block starts where the user
 * pointer is aligned, the slack in front becomes a free block of its own. */
static void *carve_aligned(ca_rbtree *r, void *b, size_t need, size_t align, size_t *asz_out)
{
    size_t bsize = rbt_size(b), first = *rbt_word(b) & RBT_FIRST;
    uintptr_t u = ca_align_up((uintptr_t)b + RBT_HDR, align);
    while (u - RBT_HDR - (uintptr_t)b != 0 && u - RBT_HDR - (uintptr_t)b < RBT_MIN_BLOCK)
        u += align;
    void *ab = (void *)(u - RBT_HDR);
    size_t front = (size_t)((char *)ab - (char *)b);
    size_t rest = bsize - front, asz = need;
    CA_ASSERT(front <= bsize && rest >= need, COMP, b, "aligned carve out of its block");
    bool tail = rest - need >= RBT_MIN_BLOCK;
    if (!tail)
        asz = rest;
    set_alloc(ab, asz, front ? RBT_PREV_FREE : first);
    if (tail)
        put_free(r, (char *)ab + asz, rest - asz, 0);
    if (front)
        put_free(r, b, front, first);
    *asz_out = asz;
    return ab;
}

static void account_alloc(ca_rbtree *r, size_t bsize)
{
    r->in_use += bsize - RBT_HDR;
    if (r->in_use > r->peak_in_use)
        r->peak_in_use = r->in_use;
    r->allocs++;
}

void *ca_rbtree_alloc(ca_rbtree *r, size_t size, size_t align, size_t *usable)
{
    size_t need, asz;
    void *b;
    if (ca_unlikely(!ca_is_pow2(align) || align > CA_RBTREE_ALIGN_MAX)) {
        r->failures++;
        errno = EINVAL;
        return NULL;
    }
    if (ca_unlikely(block_need_overflows(size, &need)))
        goto nomem;
    if (align <= 16) {
        b = find_fit(r, need);
        bool in_tree = b != NULL;
        if (!b && !(b = region_new(r, need)))
            goto fail;
        b = carve(r, b, need, in_tree, &asz);
    } else {
        size_t search;
        if (ca_add_overflows(need, align + RBT_MIN_BLOCK, &search) || search > RBT_MAX_BLOCK)
            goto nomem;
        b = find_fit(r, search);
        if (b)
            take_free(r, b);
        else if (!(b = region_new(r, search)))
            goto fail;
        b = carve_aligned(r, b, need, align, &asz);
    }
    account_alloc(r, asz);
    if (usable)
        *usable = asz - RBT_HDR;
    FULL_CHECK(r);
    return (char *)b + RBT_HDR;
nomem:
    errno = ENOMEM;
fail:
    r->failures++;
    return NULL;
}

/* ---- free ------------------------------------------------------------------- */

/* checks=on: p must be the start of a live block of r. Never allocates. */
static void check_live(const ca_rbtree *r, const void *p)
{
    if (CA_CHECKS < CA_CHECKS_ON)
        return;
    CA_CHECK(ca_is_aligned((uintptr_t)p, 16) && ca_rbtree_owns(r, p), COMP, p,
             "free of a pointer this allocator does not own");
    void *b = (char *)(uintptr_t)p - RBT_HDR;
    uintptr_t tag = *rbt_tagp(b);
    CA_CHECK(tag != ((uintptr_t)b ^ RBT_TAG_FREE), COMP, p, "double free");
    CA_CHECK(tag == ((uintptr_t)b ^ RBT_TAG_ALLOC) && !rbt_is_free(b), COMP, p,
             "free of an interior or corrupted pointer (bad block tag)");
}

/* Free block b (valid, allocated): merge with free neighbours, then insert. */
static void free_block(ca_rbtree *r, void *b)
{
    size_t size = rbt_size(b), word = *rbt_word(b), first = word & RBT_FIRST;
    r->in_use -= size - RBT_HDR;
    r->frees++;
    void *next = (char *)b + size;
    if (rbt_is_free(next)) {
        if (!(word & RBT_PREV_FREE) && absorb_next(r, b, next))
            return;
        take_free(r, next);
        size += rbt_size(next);
    }
    if (word & RBT_PREV_FREE) {
        size_t psize = ((size_t *)b)[-1];
        void *prev = (char *)b - psize;
        CA_ASSERT(rbt_is_free(prev) && rbt_size(prev) == psize, COMP, b, "footer of the previous block corrupted");
        *rbt_tagp(b) = (uintptr_t)b ^ RBT_TAG_FREE; /* a later free of b reads "double free" */
        refit_free(r, prev, psize + size);
        return;
    }
    put_free(r, b, size, first);
}

void ca_rbtree_free(ca_rbtree *r, void *p, size_t size, size_t align)
{
    if (!p)
        return;
    check_live(r, p);
    void *b = (char *)p - RBT_HDR;
    CA_CHECK(size <= rbt_size(b) - RBT_HDR, COMP, p, "free with a size larger than the block");
    (void)align;
    free_block(r, b);
    FULL_CHECK(r);
}

void ca_rbtree_free_unsized(ca_rbtree *r, void *p)
{
    if (!p)
        return;
    check_live(r, p);
    free_block(r, (char *)p - RBT_HDR);
    FULL_CHECK(r);
}

/* ---- resize ----------------------------------------------------------------- */

void *ca_rbtree_resize(ca_rbtree *r, void *p, size_t old_size, size_t new_size, size_t align, unsigned flags,
                       size_t *usable)
{
    size_t need;
    if (!p) {
        if (flags & CA_RESIZE_IN_PLACE) {
            errno = ENOMEM;
            return NULL;
        }
        return ca_rbtree_alloc(r, new_size, align, usable);
    }
    if (!ca_is_pow2(align) || align > CA_RBTREE_ALIGN_MAX) {
        errno = EINVAL;
        return NULL;
    }
    check_live(r, p);
    if (block_need_overflows(new_size, &need)) {
        errno = ENOMEM;
        return NULL;
    }
    void *b = (char *)p - RBT_HDR;
    size_t cur = rbt_size(b), keep = *rbt_word(b) & (RBT_FIRST | RBT_PREV_FREE);
    void *next = (char *)b + cur;
    size_t nsize = rbt_is_free(next) ? rbt_size(next) : 0;

    if (need <= cur) {
        /* Shrink: the tail goes back, merged with a free next block. */
        if (cur - need >= RBT_MIN_BLOCK || (cur > need && nsize)) {
            if (nsize)
                take_free(r, next);
            set_alloc(b, need, keep);
            put_free(r, (char *)b + need, cur - need + nsize, 0);
            r->in_use -= cur - need;
            cur = need;
        }
    } else if (nsize && cur + nsize >= need) {
        /* Grow into the free next block; its remainder stays free. */
        take_free(r, next);
        size_t total = cur + nsize;
        if (total - need >= RBT_MIN_BLOCK) {
            set_alloc(b, need, keep);
            put_free(r, (char *)b + need, total - need, 0);
        } else {
            set_alloc(b, total, keep);
            need = total;
        }
        r->in_use += need - cur;
        if (r->in_use > r->peak_in_use)
            r->peak_in_use = r->in_use;
        cur = need;
    } else if (flags & CA_RESIZE_IN_PLACE) {
        errno = ENOMEM;
        return NULL;
    } else {
        size_t u;
        void *q = ca_rbtree_alloc(r, new_size, align, &u);
        if (!q)
            return NULL; /* p untouched */
        size_t n = old_size < cur - RBT_HDR ? old_size : cur - RBT_HDR;
        memcpy(q, p, n < new_size ? n : new_size);
        free_block(r, b);
        if (usable)
            *usable = u;
        FULL_CHECK(r);
        return q;
    }
    if (usable)
        *usable = cur - RBT_HDR;
    FULL_CHECK(r);
    return p;
}

/* ---- whole-allocator operations -------------------------------------------- */

static void clear_trees(ca_rbtree *r)
{
    memset(r->nonempty, 0, sizeof r->nonempty);
    r->nonempty_words = 0;
    memset(r->roots, 0, sizeof r->roots);
    memset(r->class_bytes, 0, sizeof r->class_bytes);
    r->free_bytes = r->free_blocks = 0;
    r->nempty = 0;
}

void ca_rbtree_reset(ca_rbtree *r)
{
    if (r->listener && r->listener->reset)
        r->listener->reset(r->listener);
    rbt_region *keep = r->regions;
    if (keep) {
        while (keep->next)
            region_release(r, keep->next);
    }
    clear_trees(r);
    r->in_use = 0;
    r->peak_in_use = 0;
    if (keep) {
        void *b = region_first(keep);
        put_free(r, b, keep->size - RBT_REGION_OVERHEAD, RBT_FIRST);
    }
    FULL_CHECK(r);
}

size_t ca_rbtree_trim(ca_rbtree *r)
{
    size_t released = 0;
    rbt_region *g = r->regions;
    while (g) {
        rbt_region *next = g->next;
        void *b = region_first(g);
        if (rbt_is_free(b) && whole_region(b)) {
            take_free(r, b);
            released += g->size;
            region_release(r, g);
        }
        g = next;
    }
    return released;
}

void ca_rbtree_destroy(ca_rbtree *r)
{
    if (!r)
        return;
    if (r->listener && r->listener->destroyed)
        r->listener->destroyed(r->listener);
    while (r->regions)
        region_release(r, r->regions); /* removed() per region */
    r->listener = NULL;
    clear_trees(r);
    r->in_use = 0;
}

int ca_rbtree_listen(ca_rbtree *r, ca_listener *l)
{
    if (!l) {
        ca_listener *old = r->listener;
        r->listener = NULL;
        if (old && old->removed)
            for (rbt_region *g = r->regions; g; g = g->next)
                old->removed(old, g, g->size);
        return 0;
    }
    if (r->listener)
        return EBUSY;
    if (l->added) {
        for (rbt_region *g = r->regions; g; g = g->next) {
            int e = l->added(l, g, g->size);
            if (e) {
                if (l->removed)
                    for (rbt_region *h = r->regions; h != g; h = h->next)
                        l->removed(l, h, h->size);
                return e;
            }
        }
    }
    r->listener = l;
    return 0;
}

/* ---- introspection ------------------------------------------------------------ */

size_t ca_rbtree_usable_size(const ca_rbtree *r, const void *p)
{
    if (!p)
        return 0;
    check_live(r, p);
    return rbt_size((const char *)p - RBT_HDR) - RBT_HDR;
}

bool ca_rbtree_owns(const ca_rbtree *r, const void *p)
{
    uintptr_t a = (uintptr_t)p;
    if (!p)
        return false;
    for (rbt_region *g = r->regions; g; g = g->next)
        if (a >= (uintptr_t)region_first(g) && a < (uintptr_t)region_end(g))
            return true;
    return false;
}

size_t ca_rbtree_largest_free(const ca_rbtree *r)
{
    for (unsigned w = sizeof r->nonempty / sizeof r->nonempty[0]; w-- > 0;)
        if (r->nonempty[w]) {
            unsigned c = w * 64u + 63u - (unsigned)__builtin_clzll(r->nonempty[w]);
            return r->roots[c]->max;
        }
    return 0;
}

int ca_rbtree_class_info(const ca_rbtree *r, unsigned c, size_t *lo, size_t *hi, uint64_t *bytes)
{
    if (c >= CA_RBTREE_NCLASSES)
        return EINVAL;
    if (lo)
        *lo = rbt_class_lo(c);
    if (hi)
        *hi = c + 1 < CA_RBTREE_NCLASSES ? rbt_class_lo(c + 1) : (size_t)1 << 48;
    if (bytes)
        *bytes = r->class_bytes[c];
    return 0;
}

int ca_rbtree_stats(const ca_rbtree *r, ca_stats *out)
{
    CA_STATS_COUNTERS(CA_RBTREE_COUNTERS);
    ca_stats_init(out, "rbtree");
    out->bytes_in_use = r->in_use;
    out->bytes_reserved = r->reserved;
    out->bytes_committed = r->reserved;
    out->peak_in_use = r->peak_in_use;
    out->allocs = r->allocs;
    out->frees = r->frees;
    out->failures = r->failures;
    uint64_t largest = ca_rbtree_largest_free(r);
    uint64_t frag = r->free_bytes ? 1000000u - (uint64_t)((unsigned __int128)largest * 1000000u / r->free_bytes)
                                  : 0;
    CA_STATS_SET(out, free_bytes, r->free_bytes);
    CA_STATS_SET(out, free_blocks, r->free_blocks);
    CA_STATS_SET(out, largest_free, largest);
    CA_STATS_SET(out, fragmentation_ppm, frag);
    CA_STATS_SET(out, regions, r->nregions);
    CA_STATS_SET(out, empty_regions, r->nempty);
    CA_STATS_SET(out, peak_reserved, r->peak_reserved);
    CA_STATS_SET(out, regions_obtained, r->regions_obtained);
    CA_STATS_SET(out, regions_released, r->regions_released);
    /* Free bytes per band of classes (the per-class table: ca_rbtree_class_info). */
    uint64_t band[3] = {0, 0, 0};
    for (unsigned c = 0; c < CA_RBTREE_NCLASSES; c++) {
        size_t lo = rbt_class_lo(c);
        band[lo < 1024 ? 0 : lo < 65536 ? 1 : 2] += r->class_bytes[c];
    }
    CA_STATS_SET(out, free_bytes_lt_1k, band[0]);
    CA_STATS_SET(out, free_bytes_lt_64k, band[1]);
    CA_STATS_SET(out, free_bytes_ge_64k, band[2]);
    return 0;
}

const char *ca_rbtree_check(const ca_rbtree *r)
{
    uint64_t nfree = 0, fbytes = 0, inuse = 0, reserved = 0, nempty = 0;
    size_t nreg = 0;
    for (rbt_region *g = r->regions; g; g = g->next) {
        if (g->next && g->next->prev != g)
            return "region list links broken";
        nreg++;
        reserved += g->size;
        char *b = (char *)region_first(g), *end = (char *)region_end(g);
        bool prev_free = false;
        if (!(*rbt_word(b) & RBT_FIRST))
            return "first block of a region lacks RBT_FIRST";
        while (b < end) {
            size_t s = rbt_size(b), w = *rbt_word(b);
            if (s < RBT_MIN_BLOCK || s % 16 != 0 || s > (size_t)(end - b))
                return "block size out of range (tags corrupted)";
            if (((w & RBT_FIRST) != 0) != (b == (char *)region_first(g)))
                return "RBT_FIRST on a block that is not first";
            if (((w & RBT_PREV_FREE) != 0) != prev_free)
                return "RBT_PREV_FREE disagrees with the previous block";
            bool f = (w & RBT_FREE) != 0;
            if (*rbt_tagp(b) != ((uintptr_t)b ^ (f ? RBT_TAG_FREE : RBT_TAG_ALLOC)))
                return "block tag inconsistent";
            if (f) {
                if (prev_free)
                    return "two adjacent free blocks";
                if (*rbt_footer(b) != s)
                    return "free block footer differs from its header";
                rbt_node *n = rbt_node_of(b);
                if (ca_rbtree__tree_find(r->roots[rbt_class_of(s)], n) != n)
                    return "free block missing from its class tree";
                nfree++;
                fbytes += s;
                if (whole_region(b))
                    nempty++;
            } else {
                inuse += s - RBT_HDR;
            }
            prev_free = f;
            b += s;
        }
        if (b != end || rbt_size(end) != 0)
            return "blocks do not end at the region sentinel";
        if (((*rbt_word(end) & RBT_PREV_FREE) != 0) != prev_free)
            return "sentinel RBT_PREV_FREE disagrees with the last block";
    }
    uint64_t tnodes = 0;
    for (unsigned c = 0; c < CA_RBTREE_NCLASSES; c++) {
        size_t cnt;
        const char *what = ca_rbtree__tree_check(r->roots[c], &cnt);
        if (what)
            return what;
        if (((r->nonempty[c >> 6] >> (c & 63)) & 1) != (r->roots[c] != NULL))
            return "class bitmap disagrees with the trees";
        uint64_t bytes = 0;
        for (rbt_node *n = ca_rbtree__tree_first(r->roots[c]); n; n = ca_rbtree__tree_next(n)) {
            if (rbt_class_of(rbt_node_size(n)) != c)
                return "free block in the wrong class tree";
            if (!rbt_is_free(rbt_block_of(n)))
                return "tree node in a block that is not free";
            bytes += rbt_node_size(n);
        }
        if (bytes != r->class_bytes[c])
            return "class byte count wrong";
        tnodes += cnt;
    }
    for (unsigned w = 0; w < sizeof r->nonempty / sizeof r->nonempty[0]; w++)
        if (((r->nonempty_words >> w) & 1) != (r->nonempty[w] != 0))
            return "class summary word disagrees with the class bitmap";
    if (tnodes != nfree)
        return "tree nodes and free blocks differ in number";
    if (nfree != r->free_blocks || fbytes != r->free_bytes)
        return "free block counters wrong";
    if (inuse != r->in_use)
        return "bytes in use counter wrong";
    if (reserved != r->reserved || nreg != r->nregions)
        return "region counters wrong";
    if (nempty != r->nempty || nempty > 1)
        return "empty region count wrong (hysteresis is one region)";
    return NULL;
}

/* ---- create / ops table ----------------------------------------------------- */

static void *op_alloc(ca_allocator *a, size_t size, size_t align, size_t *usable)
{
    return ca_rbtree_alloc((ca_rbtree *)a, size, align, usable);
}
static void op_free(ca_allocator *a, void *p, size_t size, size_t align)
{
    ca_rbtree_free((ca_rbtree *)a, p, size, align);
}
static void op_free_unsized(ca_allocator *a, void *p) { ca_rbtree_free_unsized((ca_rbtree *)a, p); }
static size_t op_usable_size(const ca_allocator *a, const void *p)
{
    return ca_rbtree_usable_size((const ca_rbtree *)a, p);
}
static void *op_resize(ca_allocator *a, void *p, size_t old_size, size_t new_size, size_t align, unsigned flags,
                       size_t *usable)
{
    return ca_rbtree_resize((ca_rbtree *)a, p, old_size, new_size, align, flags, usable);
}
static bool op_owns(const ca_allocator *a, const void *p) { return ca_rbtree_owns((const ca_rbtree *)a, p); }
static void op_reset(ca_allocator *a) { ca_rbtree_reset((ca_rbtree *)a); }
static int op_stats(const ca_allocator *a, ca_stats *out) { return ca_rbtree_stats((const ca_rbtree *)a, out); }
static int op_listen(ca_allocator *a, ca_listener *l) { return ca_rbtree_listen((ca_rbtree *)a, l); }
static const char *op_check(ca_allocator *a) { return ca_rbtree_check((const ca_rbtree *)a); }

static const ca_allocator_ops rbtree_ops = {
    .name = "rbtree",
    .caps = CA_CAP_UNSIZED,
    .alloc = op_alloc,
    .free = op_free,
    .free_unsized = op_free_unsized,
    .usable_size = op_usable_size,
    .resize = op_resize,
    .owns = op_owns,
    .reset = op_reset,
    .stats = op_stats,
    .listen = op_listen,
    .check = op_check,
};

int ca_rbtree_init(ca_rbtree *r, const ca_rbtree_options *opt)
{
    ca_rbtree_options def;
    if (!opt) {
        ca_rbtree_options_init(&def);
        opt = &def;
    }
    if (opt->source && opt->parent)
        return EINVAL;
    memset(r, 0, sizeof *r);
    r->base.ops = &rbtree_ops;
    r->source = opt->source;
    if (!r->source) {
        ca_allocator_source_init(&r->adaptor, opt->parent ? opt->parent : ca_libc_allocator());
        r->source = &r->adaptor.base;
    }
    r->granule = CA_PAGE_SIZE_MIN;
    if (ca_source_granule(r->source) > r->granule)
        r->granule = ca_source_granule(r->source);
    size_t rs = opt->region_size ? opt->region_size : CA_RBTREE_REGION_DEFAULT;
    if (rs > RBT_MAX_BLOCK || ca_align_up_overflows(rs, r->granule, &rs))
        return EINVAL;
    r->region_size = rs;
    return 0;
}
