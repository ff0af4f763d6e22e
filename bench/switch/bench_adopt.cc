// SPDX-License-Identifier: MIT
// The cost of adoption: malloc + free through an allocator adopted by the
// switch (ca_switch_adopt, selected as the context allocator) against the
// same allocator called directly through its ops table (ca_alloc / ca_free
// with the size), and the cost of a context set / restore pair.
//   adopt-pair-<kind>/ctxalloc-direct    ca_alloc + ca_free on the allocator
//   adopt-pair-<kind>/ctxalloc-adopted   ca_switch_malloc + ca_switch_free
//   adopt-select/ctxalloc-set-restore    ca_switch_context_set(ad); ...(prev)
// Sizes cycle 16..512 as in the switch's pair benchmark.
#include <benchmark/benchmark.h>
#include <ctxalloc/arena.h>
#include <ctxalloc/binned.h>
#include <ctxalloc/binned/large.h>
#include <ctxalloc/bitset.h>
#include <ctxalloc/bump.h>
#include <ctxalloc/rbtree.h>
#include <ctxalloc/source.h>
#include <ctxalloc/switch.h>

#include <cstdlib>
#include <vector>

#include "ca_bench.h"

namespace {

const std::vector<size_t> kSizes = ca_bench::cycling_sizes();

enum Kind { RBTREE, BITSET, BUMP, BUMP_SHARED, ARENA, BINNED, LARGE };

// One allocator of the given kind, made and destroyed with the benchmark.
struct subject {
    ca_allocator *a = nullptr;
    ca_rbtree tree;
    ca_bump bump;
    ca_bump_shared shared;
    ca_bitset *bitset = nullptr;
    ca_arena *arena = nullptr;
    ca_binned *binned = nullptr;
    ca_binned_large *large = nullptr;
    Kind kind;

    explicit subject(Kind k) : kind(k)
    {
        int e = 0;
        switch (k) {
        case RBTREE: {
            ca_rbtree_options o;
            ca_rbtree_options_init(&o);
            o.source = ca_source_mmap_global();
            e = ca_rbtree_init(&tree, &o);
            a = &tree.base;
            break;
        }
        case BITSET: {
            ca_bitset_options o;
            ca_bitset_options_init(&o);
            o.block_size = 16;
            o.region_size = (size_t)64 << 20;
            o.source = ca_source_mmap_global();
            e = ca_bitset_create(&bitset, &o);
            a = e ? nullptr : ca_bitset_allocator(bitset);
            break;
        }
        case BUMP:
            e = ca_bump_init(&bump, ca_source_mmap_global(), nullptr);
            a = &bump.base;
            break;
        case BUMP_SHARED:
            e = ca_bump_shared_init(&shared, ca_source_mmap_global(), nullptr);
            a = &shared.base;
            break;
        case ARENA: {
            ca_arena_options o;
            ca_arena_options_init(&o);
            o.capacity = (uint64_t)256 << 20;
            o.backing = CA_ARENA_BACKING_ANON;
            e = ca_arena_create(&arena, &o);
            a = e ? nullptr : ca_arena_allocator(arena);
            break;
        }
        case BINNED: {
            ca_binned_options o;
            ca_binned_options_init(&o);
            o.class_range_log2 = 26;
            e = ca_binned_create(&binned, &o);
            a = e ? nullptr : ca_binned_allocator(binned);
            break;
        }
        case LARGE:
            e = ca_binned_large_create(&large, nullptr);
            a = e ? nullptr : ca_binned_large_allocator(large);
            break;
        }
        if (e)
            std::abort();
    }
    ~subject()
    {
        switch (kind) {
        case RBTREE: ca_rbtree_destroy(&tree); break;
        case BITSET: ca_bitset_destroy(bitset); break;
        case BUMP: ca_bump_destroy(&bump); break;
        case BUMP_SHARED: ca_bump_shared_destroy(&shared); break;
        case ARENA: ca_arena_close(arena); break;
        case BINNED: ca_binned_destroy(binned); break;
        case LARGE: ca_binned_large_destroy(large); break;
        }
    }
};

// The large tier serves big blocks: its sizes are 64 KiB + the cycle.
size_t size_for(Kind k, size_t i) { return k == LARGE ? ((size_t)64 << 10) + kSizes[i] : kSizes[i]; }

template <Kind K> void direct(benchmark::State &st)
{
    subject s(K);
    size_t i = 0;
    for (auto _ : st) {
        size_t n = size_for(K, i);
        void *p = ca_alloc(s.a, n, 16);
        benchmark::DoNotOptimize(p);
        ca_free(s.a, p, n, 16);
        if (++i == kSizes.size())
            i = 0;
    }
    st.SetItemsProcessed(st.iterations());
}

template <Kind K> void adopted(benchmark::State &st)
{
    subject s(K);
    ca_switch_adopted ad;
    if (ca_switch_adopt(&ad, s.a) != 0) {
        st.SkipWithError(ca_last_error());
        return;
    }
    ca_allocator *prev = ca_switch_context_set(&ad.base);
    size_t i = 0;
    for (auto _ : st) {
        void *p = ca_switch_malloc(size_for(K, i));
        benchmark::DoNotOptimize(p);
        ca_switch_free(p);
        if (++i == kSizes.size())
            i = 0;
    }
    ca_switch_context_set(prev);
    ca_switch_unadopt(&ad);
    st.SetItemsProcessed(st.iterations());
}

void set_restore(benchmark::State &st)
{
    subject s(RBTREE);
    ca_switch_adopted ad;
    if (ca_switch_adopt(&ad, s.a) != 0) {
        st.SkipWithError(ca_last_error());
        return;
    }
    for (auto _ : st) {
        ca_allocator *prev = ca_switch_context_set(&ad.base);
        benchmark::DoNotOptimize(prev);
        ca_switch_context_set(prev);
    }
    ca_switch_unadopt(&ad);
    st.SetItemsProcessed(st.iterations());
}

void swap_pair(benchmark::State &st)
{
    subject s(RBTREE);
    ca_switch_adopted ad;
    if (ca_switch_adopt(&ad, s.a) != 0) {
        st.SkipWithError(ca_last_error());
        return;
    }
    ca_allocator *slot = &ad.base;
    for (auto _ : st) {
        ca_switch_context_swap(&slot);
        benchmark::DoNotOptimize(slot);
        ca_switch_context_swap(&slot);
    }
    ca_switch_unadopt(&ad);
    st.SetItemsProcessed(st.iterations());
}

} // namespace

#define ADOPT_PAIR(K, name)                                                                        \
    BENCHMARK(direct<K>)->Name("adopt-pair-" name "/ctxalloc-direct");                             \
    BENCHMARK(adopted<K>)->Name("adopt-pair-" name "/ctxalloc-adopted");

ADOPT_PAIR(RBTREE, "rbtree")
ADOPT_PAIR(BITSET, "bitset")
ADOPT_PAIR(BUMP, "bump")
ADOPT_PAIR(BUMP_SHARED, "bump-shared")
ADOPT_PAIR(ARENA, "arena")
ADOPT_PAIR(BINNED, "binned")
ADOPT_PAIR(LARGE, "large")
BENCHMARK(set_restore)->Name("adopt-select/ctxalloc-set-restore");
BENCHMARK(swap_pair)->Name("adopt-select/ctxalloc-swap-pair");

BENCHMARK_MAIN();
