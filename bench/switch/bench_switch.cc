// SPDX-License-Identifier: MIT
// libswitch benchmarks: the cost of the switch's routing (selection on
// malloc, owner lookup on free) against calling the base allocator directly.
//   pair/*        one malloc + free, sizes cycling 16..512
//   randfree/*    1,000 objects of 16..1,024 bytes freed in random order
// impls: malloc (the process malloc; the harness reruns it under each
// baseline, and under LD_PRELOAD=libctxalloc.so it is libswitch),
// ctxalloc-switch (ca_switch_malloc / ca_switch_free, global selection),
// ctxalloc-switch-thread (a thread allocator selected),
// ctxalloc-binned (ca_binned_default_malloc / ca_binned_default_free directly, no switch).
#include <benchmark/benchmark.h>
#include <ctxalloc/switch.h>
#ifdef CA_BENCH_HAVE_BINNED
#include <ctxalloc/binned.h>
#endif

#include <cstdlib>
#include <vector>

#include "ca_bench.h"

namespace {

const std::vector<size_t> kSizes = ca_bench::cycling_sizes();

template <void *(*Alloc)(size_t), void (*Free)(void *)> void pair(benchmark::State &st)
{
    size_t i = 0;
    for (auto _ : st) {
        void *p = Alloc(kSizes[i]);
        benchmark::DoNotOptimize(p);
        Free(p);
        if (++i == kSizes.size())
            i = 0;
    }
    st.SetItemsProcessed(st.iterations());
}

template <void *(*Alloc)(size_t), void (*Free)(void *)> void randfree(benchmark::State &st)
{
    const size_t n = 1000;
    std::vector<void *> v(n);
    std::vector<size_t> order(n), sizes(n);
    ca_bench::rng r{42};
    for (size_t i = 0; i < n; i++) {
        order[i] = i;
        sizes[i] = 16 + r.below(1009);
    }
    for (size_t i = n - 1; i > 0; i--)
        std::swap(order[i], order[r.below(i + 1)]);
    for (auto _ : st) {
        for (size_t i = 0; i < n; i++)
            v[i] = Alloc(sizes[i]);
        benchmark::ClobberMemory();
        for (size_t i = 0; i < n; i++)
            Free(v[order[i]]);
    }
    st.SetItemsProcessed(st.iterations() * (int64_t)n * 2);
}

void *sys_malloc(size_t n) { return std::malloc(n); }
void sys_free(void *p) { std::free(p); }

// The switch with a thread allocator selected: the base allocator again, so
// the difference to ctxalloc-switch is the selection alone.
struct thread_sel {
    thread_sel() { ca_switch_thread_set(ca_switch_base()); }
    ~thread_sel() { ca_switch_thread_set(nullptr); }
};

void pair_thread(benchmark::State &st)
{
    thread_sel t;
    pair<ca_switch_malloc, ca_switch_free>(st);
}

void randfree_thread(benchmark::State &st)
{
    thread_sel t;
    randfree<ca_switch_malloc, ca_switch_free>(st);
}

} // namespace

BENCHMARK(pair<sys_malloc, sys_free>)->Name("pair/malloc");
BENCHMARK(pair<ca_switch_malloc, ca_switch_free>)->Name("pair/ctxalloc-switch");
BENCHMARK(pair_thread)->Name("pair/ctxalloc-switch-thread");
BENCHMARK(randfree<sys_malloc, sys_free>)->Name("randfree/malloc");
BENCHMARK(randfree<ca_switch_malloc, ca_switch_free>)->Name("randfree/ctxalloc-switch");
BENCHMARK(randfree_thread)->Name("randfree/ctxalloc-switch-thread");
#ifdef CA_BENCH_HAVE_BINNED
BENCHMARK(pair<ca_binned_default_malloc, ca_binned_default_free>)->Name("pair/ctxalloc-binned");
BENCHMARK(randfree<ca_binned_default_malloc, ca_binned_default_free>)->Name("randfree/ctxalloc-binned");
#endif

BENCHMARK_MAIN();
