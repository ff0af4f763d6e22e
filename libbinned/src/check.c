/* SPDX-License-Identifier: MIT */
/*
 * libbinned invariant walk (ca_binned_check): block words against the bit
 * trees, block free lists against the free counts, and every free slot in
 * exactly one place (a block list, a thread cache, a recycler bundle).
 *
 * Concurrency model: none; the caller guarantees that no other thread uses
 * the instance. The walk needs one bit per slot of the class being checked:
 * pages from the instance's source, released before returning.
 */
#include "binned_internal.h"

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
        if (!tree_consistent(&ch->trees[t]))
            return false;
        if (ch->trees[t].l0)
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

static const char *check_class(ca_binned *b, unsigned cls)
{
    ca_binned__class *c = &b->classes[cls];
    const ca_binned__class_info *ci = &ca_binned__classes[cls];
    if (c->frontier > c->max_blocks)
        return "binned: frontier beyond the class range";
    if (b->use_owner_map && c->registered < c->frontier)
        return "binned: started blocks missing from the ownership map";
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
    if (ca_source_obtain(b->src, bytes, ca_source_granule(b->src), &mem) != 0)
        return "binned: no memory for the check walk";
    memset(mem, 0, bytes);
    walk w = {b, cls, ci, c, (uint64_t *)mem};
    const char *err = NULL;
    size_t committed = 0, nempty = 0;
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
            h = *(const uint32_t *)(const void *)(blk + (size_t)(h - 1) * ci->size);
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
    if (!err && out != c->slots_out)
        err = "binned: slots-out count differs from the block words";

    /* Thread caches. */
    for (ca_binned__tcache *tc = b->threads; tc && !err; tc = tc->next) {
        ca_binned__bin *bin = &tc->bins[cls];
        uint32_t n = 0;
        for (void *p = bin->head; p && !err; p = *(void **)p) {
            if (++n > bin->count) {
                err = "binned: a thread-cache list is longer than its count";
                break;
            }
            err = mark(&w, p);
        }
        if (!err && n != bin->count)
            err = "binned: a thread-cache list is shorter than its count";
        if (!err && tc->state == CA_BINNED__TC_LIVE && bin->count > bin->max)
            err = "binned: a thread cache holds more than its bound";
    }
    /* Recycler bundles. */
    uint64_t bundles = 0;
    for (void *bd = c->rec.top; bd && !err; bd = *ca_binned__bundle_link(bd)) {
        uint32_t n = 0;
        for (void *p = bd; p && !err; p = *(void **)p) {
            n++;
            err = mark(&w, p);
        }
        if (!err && n != ci->batch)
            err = "binned: a recycler bundle does not hold one batch";
        bundles++;
    }
    if (!err && bundles != c->rec_bundles)
        err = "binned: recycler bundle count is off";
    ca_source_release(b->src, mem, bytes);
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
    return NULL;
}
