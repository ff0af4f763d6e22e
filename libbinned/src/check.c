/* SPDX-License-Identifier: MIT */
/*
 * libbinned invariant walk (ca_binned_check): block words against the bit
 * trees, block free lists against the free counts, every free slot in
 * exactly one place (a block list, a thread cache, a recycler bundle), and
 * the shadow against all of them (a handed-out slot carries its mark, every
 * other granule 0). Also the reporters of misuse found on the free path.
 *
 * Concurrency model: none; the caller guarantees that no other thread uses
 * the instance. The walk needs one bit per slot of the class being checked:
 * pages from the instance's source, released before returning.
 */
#include "binned_internal.h"

/* ------------------------------------------------------------------------
 * Reporters
 * ------------------------------------------------------------------------ */

void ca_binned__fail_class(const char *what, unsigned cls, const void *p, const char *file, int line)
{
    char buf[160];
    ca_line l;
    ca_line_init(&l, buf, sizeof buf);
    ca_line_str(&l, what);
    ca_line_str(&l, " (class ");
    ca_line_u64(&l, cls < CA_BINNED__NCLASSES ? ca_binned__classes[cls].size : 0, 10);
    ca_line_str(&l, " B)");
    ca_check_fail(CA_BINNED__COMP, p, buf, file, line);
}

/* The verdicts of a refused pointer: not from the allocator, an interior
 * pointer, a slot start that is not handed out (freed before). */
enum { VERDICT_FOREIGN, VERDICT_INTERIOR, VERDICT_FREED };

ca_attr_noreturn static void report(unsigned verdict, unsigned op, unsigned cls, const void *p)
{
    /* [verdict][op] */
    static const char *const msg[3][3] = {
        {"free of a pointer not from the allocator", "realloc of a pointer not from the allocator",
         "malloc_usable_size of a pointer not from the allocator"},
        {"free of an interior pointer", "realloc of an interior pointer",
         "malloc_usable_size of an interior pointer"},
        {"double free", "realloc of a freed block", "malloc_usable_size of a freed block"},
    };
    ca_binned__fail_class(msg[verdict][op < 3 ? op : 0], cls, p, __FILE__, __LINE__);
}

void ca_binned__bad_use(const ca_binned *b, const void *p, unsigned cls, unsigned op)
{
    /* The release xor-ed the byte with p's mark: undo it to read it. */
    uint8_t byte = (uint8_t)(*(volatile uint8_t *)ca_binned__shadow(b, p) ^ ca_binned__live_mark(p));
    const ca_binned__class *c = &b->classes[cls];
    const ca_binned__class_info *ci = &ca_binned__classes[cls];
    size_t off = (size_t)((const char *)p - c->base);
    size_t bi = off >> ci->block_shift;
    size_t boff = off & (((size_t)1 << ci->block_shift) - 1);
    uint32_t idx = ca_binned__slot_index(cls, boff);
    size_t frontier = __atomic_load_n(&c->frontier, __ATOMIC_RELAXED);
    bool started = bi < frontier;
    unsigned verdict = VERDICT_FOREIGN;
    if ((size_t)idx * ci->size != boff || idx >= ci->nslots) {
        if (started && idx < ci->nslots)
            verdict = VERDICT_INTERIOR;
    } else if (started) {
        /* A slot start that is not handed out: freed before, unless its
         * block never handed it out (read without the class lock: the
         * verdict only picks the message). */
        uint64_t w = __atomic_load_n(&c->meta[bi], __ATOMIC_RELAXED);
        unsigned st = ca_binned__bw_state(w);
        bool never = st == CA_BINNED__ST_FRESH || (st == CA_BINNED__ST_ACTIVE && idx >= ca_binned__bw_bump(w));
        if (!never || byte != 0)
            verdict = VERDICT_FREED;
    }
    report(verdict, op, cls, p);
}

void ca_binned__starter_bad_use(const ca_binned *b, const void *p, unsigned op)
{
    unsigned cls = ca_binned__starter_class(b, p);
    unsigned verdict = VERDICT_FOREIGN;
    if (cls < CA_BINNED__NCLASSES) {
        long i = ca_binned__starter_index(b, cls, p);
        if (i < 0)
            verdict = VERDICT_INTERIOR;
        else if (b->classes[cls].st_given) /* a slot of a share in use: freed before */
            verdict = VERDICT_FREED;
    }
    report(verdict, op, cls, p);
}

void ca_binned__bad_free(const ca_binned *b, const void *p, unsigned cls)
{
    ca_binned__bad_use(b, p, cls, CA_BINNED__OP_FREE);
}

/* ------------------------------------------------------------------------
 * Invariant walk
 * ------------------------------------------------------------------------ */

typedef struct walk {
    ca_binned *b;
    unsigned cls;
    const ca_binned__class_info *ci;
    ca_binned__class *c;
    uint64_t *marks; /* one bit per slot below the frontier */
} walk;

static bool tree_consistent(const ca_binned__tree *t)
{
    uint64_t l0 = 0;
    for (unsigned a = 0; a < 4; a++) {
        uint64_t l1 = 0;
        for (unsigned w = 0; w < 64; w++)
            if (t->l2[a * 64 + w])
                l1 |= (uint64_t)1 << w;
        if (l1 != t->l1[a])
            return false;
        if (l1)
            l0 |= (uint64_t)1 << a;
    }
    return l0 == t->l0;
}

static bool chain_consistent(const ca_binned__chain *ch)
{
    uint64_t sum = 0;
    for (unsigned t = 0; t < ch->ntrees; t++) {
        if (!tree_consistent(ca_binned__chain_tree(ch, t)))
            return false;
        if (ca_binned__chain_tree(ch, t)->l0)
            sum |= (uint64_t)1 << t;
    }
    return sum == ch->summary;
}

/* Mark slot p as free once; a message when p is no slot of an ACTIVE block
 * handed out, or already marked. */
static const char *mark(walk *w, const void *p)
{
    uintptr_t a = (uintptr_t)p;
    if (a < (uintptr_t)w->c->base || a - (uintptr_t)w->c->base >= ((size_t)1 << w->b->class_shift))
        return "binned: a cached or recycled slot lies outside its class range";
    size_t off = a - (uintptr_t)w->c->base;
    size_t bi = off >> w->ci->block_shift;
    size_t boff = off & (((size_t)1 << w->ci->block_shift) - 1);
    uint32_t idx = ca_binned__slot_index(w->cls, boff);
    if (bi >= w->c->frontier)
        return "binned: a cached or recycled slot lies beyond the frontier";
    if ((size_t)idx * w->ci->size != boff || idx >= w->ci->nslots)
        return "binned: a cached or recycled pointer is not a slot start";
    uint64_t bw = w->c->meta[bi];
    if (ca_binned__bw_state(bw) != CA_BINNED__ST_ACTIVE || idx >= ca_binned__bw_bump(bw))
        return "binned: a cached or recycled slot belongs to a block that has it free";
    size_t bit = bi * w->ci->nslots + idx;
    if (w->marks[bit >> 6] >> (bit & 63) & 1)
        return "binned: a slot is free in two places (block list, cache or recycler)";
    w->marks[bit >> 6] |= (uint64_t)1 << (bit & 63);
    return NULL;
}

static const char *check_class_locked(ca_binned *b, unsigned cls)
{
    ca_binned__class *c = &b->classes[cls];
    const ca_binned__class_info *ci = &ca_binned__classes[cls];
    if (!c->lock_lk) {
        /* Never used: its state is still all zero, and no cache or
         * recycler holds a slot of it. */
        uintptr_t base = b->span_base + ((uintptr_t)cls << b->class_shift);
        if (c->frontier || c->mapped || c->span_mapped || c->meta_mapped || c->free_tree.summary || c->rec.top ||
            c->rec_bundles || c->slots_out || c->committed)
            return "binned: a class never set up has state";
        if (b->class_end[cls] != base + (b->on_demand ? 0 : ((size_t)1 << b->class_shift)))
            return "binned: the class's mapped end (tested by free) disagrees with its mappings";
        return NULL;
    }
    if (c->frontier > c->max_blocks)
        return "binned: frontier beyond the class range";
    if (c->frontier > c->mapped || c->mapped > c->max_blocks)
        return "binned: started blocks beyond the mapped part of the class range";
    if (b->on_demand && c->mapped &&
        (c->span_mapped < (c->mapped << ci->block_shift) ||
         c->shadow_mapped < (c->mapped << ci->block_shift) >> 4 ||
         c->meta_mapped < c->trees_bytes + c->mapped * sizeof(uint64_t)))
        return "binned: a mapped block lacks its memory, shadow or block word";
    uintptr_t end = b->class_end[cls];
    if (end < (uintptr_t)c->base + (c->frontier << ci->block_shift) ||
        (b->on_demand
             ? end > (uintptr_t)c->base + c->span_mapped || c->shadow_mapped < ((end - (uintptr_t)c->base) >> 4)
             : end != (uintptr_t)c->base + ((size_t)1 << b->class_shift)))
        return "binned: the class's mapped end (tested by free) disagrees with its mappings";
    if (b->use_owner_map && !b->owner_window && c->registered < c->frontier)
        return "binned: started blocks missing from the ownership map";
    if (c->mapped == 0) /* on demand: nothing mapped, not even the trees */
        return c->frontier || c->free_tree.summary || c->empty_tree.summary
                   ? "binned: a class with nothing mapped has blocks or tree bits"
                   : NULL;
    if (!chain_consistent(&c->free_tree) || !chain_consistent(&c->empty_tree))
        return "binned: bit-tree summary levels disagree with the leaf words";
    if (ca_binned__chain_next(&c->free_tree, c->frontier) >= 0 ||
        ca_binned__chain_next(&c->empty_tree, c->frontier) >= 0)
        return "binned: a tree bit is set beyond the frontier";
    if (c->frontier == 0)
        return (c->slots_out || c->rec.top) ? "binned: slots out of a class without blocks" : NULL;

    size_t nbits = c->frontier * ci->nslots;
    size_t bytes = ca_align_up((nbits + 63) / 64 * 8, ca_source_granule(b->src));
    void *mem = NULL;
    /* No memory for the marks (a trim at a memory limit runs this walk at
     * checks=full, on the ENOMEM path): the slot-level part is skipped, the
     * structure above was checked. A shortage is not a broken invariant. */
    if (ca_source_obtain(b->src, bytes, ca_source_granule(b->src), &mem) != 0)
        return NULL;
    memset(mem, 0, bytes);
    walk w = {b, cls, ci, c, (uint64_t *)mem};
    const char *err = NULL;
    size_t committed = 0, nempty = 0, inflight = 0;
    uint64_t out = 0;

    for (size_t bi = 0; bi < c->frontier && !err; bi++) {
        uint64_t bw = c->meta[bi];
        unsigned st = ca_binned__bw_state(bw), nfree = ca_binned__bw_nfree(bw);
        unsigned head = ca_binned__bw_head(bw), bump = ca_binned__bw_bump(bw);
        if (nfree > ci->nslots || bump > ci->nslots) {
            err = "binned: block word counts exceed the slots of the block";
            break;
        }
        if (ca_binned__chain_test(&c->free_tree, bi) != (nfree > 0)) {
            err = "binned: free-tree bit disagrees with the block's free count";
            break;
        }
        if (ca_binned__chain_test(&c->empty_tree, bi) != (st == CA_BINNED__ST_EMPTY)) {
            err = "binned: empty-tree bit disagrees with the block state";
            break;
        }
        if (st == CA_BINNED__ST_DECOMMITTED && nfree == 0 && !head && !bump) {
            inflight++; /* being decommitted by a purge with the lock dropped */
            continue;
        }
        if (st != CA_BINNED__ST_ACTIVE) {
            if (nfree != ci->nslots || head || bump)
                err = "binned: an unused block has slots out or a list";
            if (st == CA_BINNED__ST_EMPTY) {
                committed++;
                nempty++;
            }
            continue;
        }
        committed++;
        /* The block's free list: indices below bump, each once. */
        unsigned listed = 0;
        char *blk = c->base + (bi << ci->block_shift);
        for (unsigned h = head; h && !err; listed++) {
            if (h - 1 >= bump || listed > ci->nslots) {
                err = "binned: block free list leaves the handed-out slots (or loops)";
                break;
            }
            size_t bit = bi * ci->nslots + (h - 1);
            if (w.marks[bit >> 6] >> (bit & 63) & 1) {
                err = "binned: a slot is twice on its block's free list";
                break;
            }
            w.marks[bit >> 6] |= (uint64_t)1 << (bit & 63);
            const char *slot = blk + (size_t)(h - 1) * ci->size;
            uint64_t link = *(const uint64_t *)(const void *)slot;
            if (link != ca_binned__link_word(slot, (unsigned)(link & 0xffff))) {
                err = "binned: a block free-list link does not carry its tag";
                break;
            }
            h = (unsigned)(link & 0xffff);
        }
        if (!err && listed + (ci->nslots - bump) != nfree)
            err = "binned: block free count differs from its list plus unbumped slots";
        if (!err && nfree == ci->nslots)
            err = "binned: an ACTIVE block has every slot free";
        out += ci->nslots - nfree;
    }
    if (!err && committed != c->committed)
        err = "binned: committed block count is off";
    if (!err && nempty != c->nempty)
        err = "binned: empty block count is off";
    if (!err && inflight != c->inflight)
        err = "binned: in-flight block count is off";
    if (!err && out != c->slots_out)
        err = "binned: slots-out count differs from the block words";

    /* Thread caches. */
    for (ca_binned__tcache *tc = b->threads; tc && !err; tc = tc->next) {
        ca_binned__bin *bin = &tc->bins[cls];
        if (!bin->base) {
            if (bin->top || bin->limit)
                err = "binned: a thread-cache bin without an array has slots";
            continue;
        }
        if (bin->top < bin->base || bin->top > bin->limit ||
            (bin->limit - bin->base != (ptrdiff_t)ci->cache_max &&
             bin->limit - bin->base != (ptrdiff_t)ca_binned__bin_starter(cls))) {
            err = "binned: a thread-cache bin's top lies outside its array";
            break;
        }
        for (void **q = bin->base; q < bin->top && !err; q++)
            err = mark(&w, *q);
    }
    /* Recycler bundles. */
    uint64_t bundles = 0, rslots = 0;
    for (ca_binned__bundle *d = (ca_binned__bundle *)c->rec.top; d && !err; d = d->next) {
        if (d->n == 0 || d->n > ci->batch || d->cls != cls) {
            err = "binned: a recycler bundle holds no slot, more than a batch, or another class's";
            break;
        }
        for (uint32_t k = 0; k < d->n && !err; k++)
            err = mark(&w, d->slots[k]);
        bundles++;
        rslots += d->n;
    }
    if (!err && bundles != c->rec_bundles)
        err = "binned: recycler bundle count is off";
    if (!err && rslots != c->rec_slots)
        err = "binned: recycler slot count is off";
    /* The shadow: a non-zero byte only at the granule of a slot start that
     * is handed out (below bump, free nowhere), holding that slot's mark.
     * (A handed-out slot without its mark is allowed: a fork that caught a
     * malloc or free between its two steps leaves such a slot behind, never
     * to be freed.) */
    for (size_t bi = 0; bi < c->frontier && !err; bi++) {
        uint64_t bw = c->meta[bi];
        unsigned st = ca_binned__bw_state(bw);
        if (st == CA_BINNED__ST_DECOMMITTED || st == CA_BINNED__ST_FRESH)
            continue; /* every slot free; the shadow may be decommitted */
        char *blk = c->base + (bi << ci->block_shift);
        const uint8_t *sh = ca_binned__shadow(b, blk);
        size_t ngran = ((size_t)1 << ci->block_shift) >> 4, marked = 0, at_starts = 0;
        unsigned bump = ca_binned__bw_bump(bw);
        /* Non-zero bytes, a word at a time (most words are 0). */
        for (size_t g = 0; g < ngran; g += 8) {
            uint64_t word;
            memcpy(&word, sh + g, sizeof word);
            if (!word)
                continue;
            for (unsigned k = 0; k < 8; k++)
                marked += (word >> (8 * k) & 0xff) != 0;
        }
        for (unsigned idx = 0; idx < ci->nslots && !err; idx++) {
            char *slot = blk + (size_t)idx * ci->size;
            uint8_t v = *ca_binned__shadow(b, slot);
            if (!v)
                continue;
            at_starts++;
            size_t bit = bi * ci->nslots + idx;
            if (idx >= bump || (w.marks[bit >> 6] >> (bit & 63) & 1))
                err = "binned: the shadow marks a slot that is free";
            else if (v != ca_binned__live_mark(slot))
                err = "binned: a shadow byte is not its slot's mark";
        }
        if (!err && marked != at_starts)
            err = "binned: the shadow marks a granule that holds no slot start";
    }
    ca_source_release(b->src, mem, bytes);
    return err;
}

/* Under the class lock: the decay pass (the background thread's too) may
 * run meanwhile. */
static const char *check_class(ca_binned *b, unsigned cls)
{
    ca_binned__class *c = &b->classes[cls];
    ca_binned__class_lock(c);
    const char *err = check_class_locked(b, cls);
    ca_binned__class_unlock(c);
    return err;
}

const char *ca_binned_check(const ca_binned *cb)
{
    ca_binned *b = (ca_binned *)(uintptr_t)cb;
    for (unsigned i = 0; i < CA_BINNED__NCLASSES; i++) {
        const char *err = check_class(b, i);
        if (err)
            return err;
    }
    return ca_binned__starter_check(b);
}
