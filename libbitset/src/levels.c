/* SPDX-License-Identifier: MIT */
/*
 * The bitmap layer of libbitset: the free map (level 0, one bit per block,
 * 1 = free), its summary levels (bit j of level l+1 = word j of level l is
 * non-zero) and the run-start map. Everything here works a 64-bit word at a
 * time; nothing allocates.
 *
 * Read first: ca_bitset__next_free (how the summary levels are walked up and
 * down), then ca_bitset__find_run (the first-fit run search built on it), then
 * the two mark functions that keep the summaries exact.
 *
 * Concurrency: none; the caller owns the allocator (see bitset_internal.h).
 */
#include "bitset_internal.h"

#define ONES (~(uint64_t)0)

static inline unsigned ctz64(uint64_t x) { return (unsigned)__builtin_ctzll(x); }

/* Mask of bits lo..63 of a word. */
static inline uint64_t from_bit(size_t lo) { return ONES << (lo & 63); }
/* Mask of bits 0..hi of a word. */
static inline uint64_t upto_bit(size_t hi) { return ONES >> (63 - (hi & 63)); }

size_t ca_bitset__next_free(const ca_bitset *b, size_t pos)
{
    if (pos >= b->nblocks)
        return CA_BITSET__NONE;
    /* Climb: test the rest of the word holding idx at level l; if empty, the
     * next candidate is the following word, i.e. bit w+1 one level up. */
    size_t idx = pos;
    unsigned l = 0;
    for (;;) {
        size_t w = idx >> 6;
        if (w >= b->nwords[l])
            return CA_BITSET__NONE;
        uint64_t m = b->level[l][w] & from_bit(idx);
        if (m) {
            idx = (w << 6) + ctz64(m);
            break;
        }
        if (++l == b->nlevels)
            return CA_BITSET__NONE;
        idx = w + 1;
    }
    /* Descend: a set summary bit guarantees a non-zero word below. */
    while (l > 0) {
        l--;
        idx = (idx << 6) + ctz64(b->level[l][idx]);
    }
    return idx;
}

size_t ca_bitset__first_free(const ca_bitset *b)
{
    unsigned l = b->nlevels - 1;
    uint64_t top = b->level[l][0];
    if (!top)
        return CA_BITSET__NONE;
    size_t idx = ctz64(top);
    while (l > 0) {
        l--;
        idx = (idx << 6) + ctz64(b->level[l][idx]);
    }
    return idx;
}

size_t ca_bitset__first_used(const ca_bitset *b, size_t from, size_t to)
{
    if (from >= to)
        return CA_BITSET__NONE;
    const uint64_t *l0 = b->level[0];
    size_t w = from >> 6, wl = (to - 1) >> 6;
    uint64_t m = ~l0[w] & from_bit(from);
    for (;;) {
        if (w == wl)
            m &= upto_bit(to - 1);
        if (m)
            return (w << 6) + ctz64(m);
        if (w == wl)
            return CA_BITSET__NONE;
        m = ~l0[++w];
    }
}

/* Bit p (p < 64) of the result is set when bits p .. p+k-1 of x are all set
 * (1 <= k <= 64): the run length doubles with each and-shift. */
static inline uint64_t run_starts(unsigned __int128 x, size_t k)
{
    size_t have = 1;
    while (have < k) {
        size_t sh = have < k - have ? have : k - have;
        x &= x >> sh;
        have += sh;
    }
    return (uint64_t)x;
}

/* Bits at multiples of step (step = 1 << i, i <= 6) within a word. */
static const uint64_t grid_pattern[7] = {
    ONES,
    0x5555555555555555ull,
    0x1111111111111111ull,
    0x0101010101010101ull,
    0x0001000100010001ull,
    0x0000000100000001ull,
    0x0000000000000001ull,
};

size_t ca_bitset__find_run(const ca_bitset *b, size_t from, size_t k, size_t step, size_t off)
{
    if (k == 0 || k > b->nblocks)
        return CA_BITSET__NONE;
    const uint64_t *l0 = b->level[0];
    bool word_test = k <= 64 && step <= 64;
    uint64_t grid = word_test ? grid_pattern[ca_log2(step)] << off : 0;
    size_t last = b->nblocks - k; /* highest start that fits */
    size_t pos = from ? ca_bitset__next_free(b, from) : ca_bitset__first_free(b);
    for (;;) {
        if (pos == CA_BITSET__NONE)
            return CA_BITSET__NONE;
        pos += (off - pos) & (step - 1); /* next start on the alignment grid */
        if (pos > last)
            return CA_BITSET__NONE;
        if (word_test) {
            /* Every run of k free blocks starting in word w at or after pos,
             * in one go; a run may spill into the next word (the sentinel
             * word after the last is 0, so no run passes the end). Words
             * with free blocks are tested in turn; a full word sends the
             * search back to the summary levels, which skip all full words
             * after it. */
            size_t w = pos >> 6;
            uint64_t lo = from_bit(pos);
            for (;;) {
                unsigned __int128 x = (unsigned __int128)l0[w] | ((unsigned __int128)l0[w + 1] << 64);
                uint64_t m = run_starts(x, k) & grid & lo;
                if (m)
                    return (w << 6) + ctz64(m);
                lo = ONES;
                if (++w >= b->nwords[0] || !l0[w])
                    break;
            }
            pos = ca_bitset__next_free(b, w << 6);
            continue;
        }
        size_t u = ca_bitset__first_used(b, pos, pos + k);
        if (u == CA_BITSET__NONE)
            return pos;
        pos = ca_bitset__next_free(b, u + 1);
    }
}

/* Word w of level 0 became zero: clear its summary bit, and upwards while
 * the summary word becomes zero too. */
void ca_bitset__summary_clear(ca_bitset *b, size_t w)
{
    for (unsigned l = 1; l < b->nlevels; l++) {
        uint64_t *s = &b->level[l][w >> 6];
        *s &= ~((uint64_t)1 << (w & 63));
        if (*s)
            return;
        w >>= 6;
    }
}

/* Word w of level 0 became non-zero: set its summary bit, and upwards while
 * the summary word was zero before. */
void ca_bitset__summary_set(ca_bitset *b, size_t w)
{
    for (unsigned l = 1; l < b->nlevels; l++) {
        uint64_t *s = &b->level[l][w >> 6];
        uint64_t old = *s;
        *s = old | ((uint64_t)1 << (w & 63));
        if (old)
            return;
        w >>= 6;
    }
}

void ca_bitset__mark_words(ca_bitset *b, size_t i, size_t n, bool set)
{
    size_t end = i + n;
    size_t w0 = i >> 6, wl = (end - 1) >> 6;
    for (size_t w = w0; w <= wl; w++) {
        uint64_t m = ONES;
        if (w == w0)
            m &= from_bit(i);
        if (w == wl)
            m &= upto_bit(end - 1);
        ca_bitset__mark_word(b, w, m, set);
    }
}

size_t ca_bitset__run_length(const ca_bitset *b, size_t i)
{
    /* The run ends at the first block after i that is free or starts a run;
     * both maps are 0 past the last block, so the walk stops at nwords. */
    const uint64_t *l0 = b->level[0], *st = b->starts;
    size_t from = i + 1;
    size_t w = from >> 6;
    if (w >= b->nwords[0])
        return b->nblocks - i;
    uint64_t m = (l0[w] | st[w]) & from_bit(from);
    for (;;) {
        if (m)
            return (w << 6) + ctz64(m) - i;
        if (++w >= b->nwords[0])
            return b->nblocks - i;
        m = l0[w] | st[w];
    }
}

size_t ca_bitset__largest_free_run(const ca_bitset *b)
{
    const uint64_t *l0 = b->level[0];
    size_t best = 0, cur = 0;
    for (size_t w = 0; w < b->nwords[0]; w++) {
        uint64_t x = l0[w];
        if (x == ONES) {
            cur += 64;
        } else if (x == 0) {
            cur = 0;
        } else {
            unsigned p = 0;
            while (p < 64) {
                uint64_t y = x >> p;
                if (y & 1) {
                    unsigned ones = ctz64(~y); /* ~y != 0: y has a 0 bit (x != ONES or p > 0) */
                    cur += ones;
                    p += ones;
                    if (cur > best)
                        best = cur;
                } else {
                    cur = 0;
                    if (!y)
                        break;
                    p += ctz64(y);
                }
            }
            continue;
        }
        if (cur > best)
            best = cur;
    }
    return best;
}
