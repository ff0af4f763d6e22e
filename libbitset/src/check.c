/* SPDX-License-Identifier: MIT */
/*
 * libbitset's introspection: the invariant walk (ca_bitset_check) and
 * ca_stats. Both read the maps a word at a time and never allocate.
 *
 * Read first: the invariants above struct ca_bitset in bitset_internal.h;
 * ca_bitset_check tests them in the order they are listed there.
 *
 * Concurrency: read-only, but not safe against a concurrent writer; call it
 * from the owning thread (or through the locked adaptor's stats).
 */
#include "bitset_internal.h"

const char *ca_bitset_check(const ca_bitset *b)
{
    if (b->nlevels < 1 || b->nlevels > CA_BITSET__MAX_LEVELS || b->nwords[b->nlevels - 1] != 1)
        return "summary levels do not end in one word";
    if (b->nwords[0] != (b->nblocks + 63) / 64)
        return "level 0 word count does not match the block count";

    const uint64_t *l0 = b->level[0];
    size_t last = b->nwords[0] - 1;
    uint64_t tail = b->nblocks % 64 ? ~(uint64_t)0 << (b->nblocks % 64) : 0;
    if (l0[last] & tail)
        return "a block past the region's end is marked free";
    if (l0[b->nwords[0]] != 0)
        return "the sentinel word after level 0 is not zero";

    for (unsigned l = 1; l < b->nlevels; l++) {
        const uint64_t *below = b->level[l - 1], *lv = b->level[l];
        size_t nb = b->nwords[l - 1];
        for (size_t w = 0; w < b->nwords[l]; w++) {
            uint64_t want = 0;
            for (size_t j = 0; j < 64 && w * 64 + j < nb; j++)
                want |= (uint64_t)(below[w * 64 + j] != 0) << j;
            if (lv[w] != want)
                return "a summary bit disagrees with the word below it";
        }
    }

    size_t used_blocks = 0, starts = 0;
    uint64_t prev_free = 1; /* block -1 counts as free: block 0 allocated must start a run */
    for (size_t w = 0; w <= last; w++) {
        uint64_t valid = (w == last && b->nblocks % 64) ? ~tail : ~(uint64_t)0;
        uint64_t used = ~l0[w] & valid, st = b->starts[w];
        if (st & ~valid)
            return "a run-start bit past the region's end";
        if (st & ~used)
            return "a run-start bit on a free block";
        uint64_t after_free = (l0[w] << 1) | prev_free;
        if (used & after_free & ~st)
            return "an allocated block after a free block is not a run start";
        prev_free = l0[w] >> 63;
        used_blocks += (size_t)__builtin_popcountll(used);
        starts += (size_t)__builtin_popcountll(st);
    }
    if (b->low > b->nblocks)
        return "the search start is past the region";
    {
        size_t lowest = ca_bitset__next_free(b, 0);
        if (lowest != CA_BITSET__NONE && lowest < b->low)
            return "a free block below the search start";
    }
    if (b->run_k) {
        size_t first = ca_bitset__find_run(b, 0, b->run_k, 1, 0);
        if (first != CA_BITSET__NONE && first < b->run_hint)
            return "a free run of the hinted length below the run hint";
    }
    if (used_blocks != b->blocks_in_use)
        return "blocks_in_use does not match the free map";
    if (starts != b->runs_in_use)
        return "runs_in_use does not match the run-start map";
    return NULL;
}

int ca_bitset_stats(const ca_bitset *b, ca_stats *out)
{
    CA_STATS_COUNTERS(CA_BITSET_COUNTERS);
    ca_stats_init(out, "bitset");
    size_t meta = b->meta_bytes ? b->meta_bytes : ca_bitset_meta_size(b->region_size, b->block_size);
    out->bytes_in_use = (uint64_t)b->blocks_in_use << b->shift;
    out->bytes_reserved = (uint64_t)(b->region_obtained ? b->region_obtained : b->region_size) + meta;
    out->bytes_committed = out->bytes_reserved;
    out->peak_in_use = b->peak_blocks << b->shift;
    out->allocs = b->allocs;
    out->frees = b->frees;
    out->failures = b->failures;
    CA_STATS_SET(out, block_size, b->block_size);
    CA_STATS_SET(out, blocks_total, b->nblocks);
    CA_STATS_SET(out, blocks_in_use, b->blocks_in_use);
    CA_STATS_SET(out, largest_free_run, ca_bitset__largest_free_run(b));
    CA_STATS_SET(out, runs_in_use, b->runs_in_use);
    CA_STATS_SET(out, resize_in_place, b->resize_in_place);
    CA_STATS_SET(out, resize_moved, b->resize_moved);
    return 0;
}
