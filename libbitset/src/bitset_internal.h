/* SPDX-License-Identifier: MIT */
/*
 * libbitset's private header: the allocator object and the bitmap layer
 * (levels.c) shared by bitset.c and check.c. Tests include it to inspect the
 * maps and to check invariants after every operation.
 */
#ifndef CA_BITSET_INTERNAL_H
#define CA_BITSET_INTERNAL_H

#include <ctxalloc/bitset.h>

#include <stdint.h>

/* Enough summary levels for CA_BITSET_MAX_BLOCKS: 2^40 blocks are 2^34 words
 * at level 0, then 2^28, 2^22, 2^16, 2^10, 2^4, 1 word: 7 levels. */
#define CA_BITSET__MAX_LEVELS 8

#define CA_BITSET__NONE SIZE_MAX

/*
 * Invariants (ca_bitset_check verifies all of them):
 *   - level[0] bit i (i < nblocks) is 1 when block i is free; bits i >= nblocks
 *     are 0, and level[0][nwords[0]] is an extra word that is always 0 (lets a
 *     run test read the word after any word).
 *   - for l >= 1: bit j of level[l] == (level[l-1][j] != 0), for j < nwords[l-1];
 *     other bits 0. nwords[nlevels-1] == 1.
 *   - start bit i set => block i allocated; block i allocated and (i == 0 or
 *     block i-1 free) => start bit i set.
 *   - blocks_in_use == allocated blocks; runs_in_use == start bits set.
 *   - no free block below low (low <= the lowest free block), and no run of
 *     run_k free blocks starting below run_hint: searches start there, so
 *     the result stays first fit by address.
 * All fields: the owning thread only (the allocator is single-threaded; the
 * locked adaptor serialises callers).
 */
struct ca_bitset {
    ca_allocator base;                      /* first member: &b->base == (ca_allocator *)b */
    unsigned char *region;                  /* first block; aligned to block_size */
    size_t region_size;                     /* nblocks << shift */
    size_t nblocks;                         /* blocks in the region, <= CA_BITSET_MAX_BLOCKS */
    size_t block_size;                      /* 1 << shift */
    unsigned shift;                         /* log2(block_size) */
    unsigned nlevels;                       /* levels of the free map, level 0 included, >= 1 */
    uint64_t *level[CA_BITSET__MAX_LEVELS]; /* free map and summaries, in meta */
    size_t nwords[CA_BITSET__MAX_LEVELS];   /* words per level (level 0 without the sentinel) */
    uint64_t *starts;                       /* run-start map, nwords[0] words, in meta */

    ca_source *source;      /* source mode: region and meta came from it; else NULL */
    size_t region_obtained; /* source or own mode: bytes obtained / mapped for the region
                               (whole pages); 0 for a caller's buffer */
    int region_mapped;      /* own mode (neither source nor buffer): region from mmap */
    void *meta;             /* metadata block (this struct is at its start) */
    size_t meta_bytes;      /* bytes obtained / mapped for meta; 0 when the caller's */
    int meta_mapped;        /* buffer and own mode: meta came from mmap */
    ca_listener *listener;  /* attached by ca_bitset_listen, or NULL: told of the data
                               region (never of meta), of reset and of destroy */

    size_t low;           /* every block below low is allocated (search start) */
    size_t run_k;         /* run length the run hint is for (0: none) */
    size_t run_hint;      /* no run of run_k free blocks starts below run_hint */
    size_t blocks_in_use; /* allocated blocks */
    size_t runs_in_use;   /* live runs (start bits set) */
    uint64_t peak_blocks; /* max of blocks_in_use since create / reset */
    uint64_t allocs, frees, failures;
    uint64_t resize_in_place, resize_moved;
};

/* levels.c: the free map with its summaries and the run-start map. */

/* Lowest free block >= pos, or CA_BITSET__NONE. O(levels). */
size_t ca_bitset__next_free(const ca_bitset *b, size_t pos);

/* Lowest free block, straight down from the top level. O(levels). */
size_t ca_bitset__first_free(const ca_bitset *b);

/* Lowest allocated block in [from, to), or CA_BITSET__NONE. O((to-from)/64). */
size_t ca_bitset__first_used(const ca_bitset *b, size_t from, size_t to);

/* First run of k free blocks starting at an index i >= from with
 * i % step == off (step a power of two, off < step), lowest first, or
 * CA_BITSET__NONE. from must not skip a free block that could start one. */
size_t ca_bitset__find_run(const ca_bitset *b, size_t from, size_t k, size_t step, size_t off);

/* The summary updates for a level-0 word w that became zero / non-zero. */
void ca_bitset__summary_clear(ca_bitset *b, size_t w);
void ca_bitset__summary_set(ca_bitset *b, size_t w);

/* Set (set: the blocks become free) or clear the bits m of level-0 word w,
 * keeping the summaries exact. */
static inline void ca_bitset__mark_word(ca_bitset *b, size_t w, uint64_t m, bool set)
{
    uint64_t old = b->level[0][w], nw = set ? old | m : old & ~m;
    b->level[0][w] = nw;
    if (!old && nw)
        ca_bitset__summary_set(b, w);
    else if (old && !nw)
        ca_bitset__summary_clear(b, w);
}

/* The multi-word body of ca_bitset__mark. */
void ca_bitset__mark_words(ca_bitset *b, size_t i, size_t n, bool set);

/* Mark [i, i+n) free (set) or allocated (n >= 1), keeping the summaries
 * exact. The caller guarantees the blocks were all allocated / all free.
 * O(n/64 + levels); a range inside one word is handled inline. */
static inline void ca_bitset__mark(ca_bitset *b, size_t i, size_t n, bool set)
{
    if ((i & 63) + n > 64)
        ca_bitset__mark_words(b, i, n, set);
    else
        ca_bitset__mark_word(b, i >> 6, (~(uint64_t)0 >> (64 - n)) << (i & 63), set);
}

/* Length of the allocated run starting at i: up to the next run start or
 * free block (or the region's end). O(k/64). */
size_t ca_bitset__run_length(const ca_bitset *b, size_t i);

/* Blocks [i, i+n) became free: lower the search starts so that they stay
 * below every free block / run_k-run that now exists. */
static inline void ca_bitset__lower_hints(ca_bitset *b, size_t i)
{
    if (i < b->low)
        b->low = i;
    size_t reach = b->run_k ? b->run_k - 1 : 0; /* a new run may start this far before i */
    size_t from = i > reach ? i - reach : 0;
    if (from < b->run_hint)
        b->run_hint = from;
}

static inline bool ca_bitset__is_free(const ca_bitset *b, size_t i)
{
    return (b->level[0][i >> 6] >> (i & 63)) & 1;
}

static inline bool ca_bitset__is_start(const ca_bitset *b, size_t i)
{
    return (b->starts[i >> 6] >> (i & 63)) & 1;
}

static inline void ca_bitset__set_start(ca_bitset *b, size_t i) { b->starts[i >> 6] |= (uint64_t)1 << (i & 63); }

static inline void ca_bitset__clear_start(ca_bitset *b, size_t i)
{
    b->starts[i >> 6] &= ~((uint64_t)1 << (i & 63));
}

/* Largest run of free blocks. O(words). */
size_t ca_bitset__largest_free_run(const ca_bitset *b);

#endif
