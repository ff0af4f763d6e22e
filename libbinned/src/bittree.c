/* SPDX-License-Identifier: MIT */
/*
 * libbinned bit tree: three levels of 64-bit words over up to 16,384 blocks
 * (a 2 KiB leaf level), and chains of up to 64 such trees with a summary
 * word for classes with more blocks. Finding the first set bit is one tzcnt
 * per level. Not thread-safe: every tree belongs to one class and is used
 * under that class's lock. Read binned_internal.h ("Bit tree") first.
 */
#include "binned_internal.h"

void ca_binned__tree_set(ca_binned__tree *t, unsigned i)
{
    unsigned w = i >> 6;
    t->l2[w] |= (uint64_t)1 << (i & 63);
    t->l1[w >> 6] |= (uint64_t)1 << (w & 63);
    t->l0 |= (uint64_t)1 << (w >> 6);
}

void ca_binned__tree_clear(ca_binned__tree *t, unsigned i)
{
    unsigned w = i >> 6;
    t->l2[w] &= ~((uint64_t)1 << (i & 63));
    if (t->l2[w])
        return;
    t->l1[w >> 6] &= ~((uint64_t)1 << (w & 63));
    if (t->l1[w >> 6])
        return;
    t->l0 &= ~((uint64_t)1 << (w >> 6));
}

bool ca_binned__tree_test(const ca_binned__tree *t, unsigned i) { return (t->l2[i >> 6] >> (i & 63)) & 1; }

long ca_binned__tree_first(const ca_binned__tree *t)
{
    if (!t->l0)
        return -1;
    unsigned a = (unsigned)__builtin_ctzll(t->l0);
    unsigned b = (unsigned)__builtin_ctzll(t->l1[a]);
    unsigned w = a * 64 + b;
    return (long)(w * 64 + (unsigned)__builtin_ctzll(t->l2[w]));
}

long ca_binned__tree_next(const ca_binned__tree *t, unsigned from)
{
    if (from >= CA_BINNED__TREE_BITS)
        return -1;
    unsigned w = from >> 6;
    uint64_t m = t->l2[w] & (~(uint64_t)0 << (from & 63));
    if (m)
        return (long)(w * 64 + (unsigned)__builtin_ctzll(m));
    /* Next non-empty leaf word through the level-1 words. */
    for (unsigned a = w >> 6; a < 4; a++) {
        uint64_t l1 = t->l1[a];
        if (a == (w >> 6)) {
            unsigned bit = (w & 63) + 1;
            l1 = bit >= 64 ? 0 : l1 & (~(uint64_t)0 << bit);
        }
        if (l1) {
            unsigned ww = a * 64 + (unsigned)__builtin_ctzll(l1);
            return (long)(ww * 64 + (unsigned)__builtin_ctzll(t->l2[ww]));
        }
    }
    return -1;
}

long ca_binned__tree_prev(const ca_binned__tree *t, unsigned from)
{
    if (from >= CA_BINNED__TREE_BITS)
        from = CA_BINNED__TREE_BITS - 1;
    unsigned w = from >> 6;
    uint64_t m = t->l2[w] & (~(uint64_t)0 >> (63 - (from & 63)));
    if (m)
        return (long)(w * 64 + 63 - (unsigned)__builtin_clzll(m));
    /* Previous non-empty leaf word through the level-1 words. */
    for (int a = (int)(w >> 6); a >= 0; a--) {
        uint64_t l1 = t->l1[a];
        if (a == (int)(w >> 6)) {
            unsigned bit = w & 63; /* words below w only */
            l1 = bit == 0 ? 0 : l1 & (~(uint64_t)0 >> (64 - bit));
        }
        if (l1) {
            unsigned ww = (unsigned)a * 64 + 63 - (unsigned)__builtin_clzll(l1);
            return (long)(ww * 64 + 63 - (unsigned)__builtin_clzll(t->l2[ww]));
        }
    }
    return -1;
}

void ca_binned__chain_set(ca_binned__chain *c, size_t i)
{
    size_t t = i / CA_BINNED__TREE_BITS;
    ca_binned__tree_set(ca_binned__chain_tree(c, t), (unsigned)(i % CA_BINNED__TREE_BITS));
    c->summary |= (uint64_t)1 << t;
}

void ca_binned__chain_clear(ca_binned__chain *c, size_t i)
{
    size_t t = i / CA_BINNED__TREE_BITS;
    ca_binned__tree_clear(ca_binned__chain_tree(c, t), (unsigned)(i % CA_BINNED__TREE_BITS));
    if (!ca_binned__chain_tree(c, t)->l0)
        c->summary &= ~((uint64_t)1 << t);
}

bool ca_binned__chain_test(const ca_binned__chain *c, size_t i)
{
    return ca_binned__tree_test(ca_binned__chain_tree(c, i / CA_BINNED__TREE_BITS),
                                (unsigned)(i % CA_BINNED__TREE_BITS));
}

long ca_binned__chain_first(const ca_binned__chain *c)
{
    if (!c->summary)
        return -1;
    unsigned t = (unsigned)__builtin_ctzll(c->summary);
    return (long)t * CA_BINNED__TREE_BITS + ca_binned__tree_first(ca_binned__chain_tree(c, t));
}

long ca_binned__chain_next(const ca_binned__chain *c, size_t from)
{
    size_t t = from / CA_BINNED__TREE_BITS;
    if (t >= c->ntrees)
        return -1;
    long r = ca_binned__tree_next(ca_binned__chain_tree(c, t), (unsigned)(from % CA_BINNED__TREE_BITS));
    if (r >= 0)
        return (long)t * CA_BINNED__TREE_BITS + r;
    uint64_t rest = t + 1 >= 64 ? 0 : c->summary & (~(uint64_t)0 << (t + 1));
    if (!rest)
        return -1;
    unsigned n = (unsigned)__builtin_ctzll(rest);
    return (long)n * CA_BINNED__TREE_BITS + ca_binned__tree_first(ca_binned__chain_tree(c, n));
}

long ca_binned__chain_prev(const ca_binned__chain *c, size_t from)
{
    size_t t = from / CA_BINNED__TREE_BITS;
    if (t >= c->ntrees) {
        if (!c->ntrees)
            return -1;
        t = c->ntrees - 1;
        from = (t + 1) * CA_BINNED__TREE_BITS - 1;
    }
    long r = ca_binned__tree_prev(ca_binned__chain_tree(c, t), (unsigned)(from % CA_BINNED__TREE_BITS));
    if (r >= 0)
        return (long)t * CA_BINNED__TREE_BITS + r;
    uint64_t rest = c->summary & (((uint64_t)1 << t) - 1);
    if (!rest)
        return -1;
    unsigned n = 63 - (unsigned)__builtin_clzll(rest);
    return (long)n * CA_BINNED__TREE_BITS +
           ca_binned__tree_prev(ca_binned__chain_tree(c, n), CA_BINNED__TREE_BITS - 1);
}

long ca_binned__chain_last(const ca_binned__chain *c)
{
    if (!c->summary)
        return -1;
    unsigned n = 63 - (unsigned)__builtin_clzll(c->summary);
    return (long)n * CA_BINNED__TREE_BITS +
           ca_binned__tree_prev(ca_binned__chain_tree(c, n), CA_BINNED__TREE_BITS - 1);
}
