// SPDX-License-Identifier: MIT
// Bump benchmarks, each beside malloc/free doing the same objects:
//   alloc_8_64         1,024 objects of 8..64 B per iteration, then reset
//                      (bump: inline ca_bump_alloc; ops: through ca_alloc)
//                      or free of all 1,024 (malloc)
//   shared_alloc_8_64  the same from 1 and 2 threads on one ca_bump_shared;
//                      the threads meet at a barrier every iteration and one
//                      resets (malloc rows: each thread mallocs and frees)
//   local_alloc_8_64   2 threads, each with a local bump over one shared bump
//   reset_cycle_10k    10,000 objects of 8..64 B, then reset / free all
// Items per second count allocations.
#include <benchmark/benchmark.h>
#include <ctxalloc/bump.h>

#include <atomic>
#include <cstdlib>
#include <thread>

namespace {

constexpr size_t kSizes[8] = {8, 16, 24, 32, 40, 48, 56, 64};
constexpr int kBatch = 1024;

inline size_t size_at(int i) { return kSizes[i & 7]; }

// ---- single thread -------------------------------------------------------

// N objects per iteration (kBatch here, kCycle for the reset cycle below).
template <int N> void batch_malloc(benchmark::State &st)
{
    static void *ptrs[N];
    for (auto _ : st) {
        for (int i = 0; i < N; i++) {
            ptrs[i] = std::malloc(size_at(i));
            benchmark::DoNotOptimize(ptrs[i]);
        }
        for (int i = 0; i < N; i++)
            std::free(ptrs[i]);
    }
    st.SetItemsProcessed(st.iterations() * N);
}
BENCHMARK_TEMPLATE(batch_malloc, kBatch)->Name("alloc_8_64/malloc");

template <int N> void batch_bump(benchmark::State &st)
{
    ca_bump b;
    ca_bump_init_allocator(&b, ca_libc_allocator(), nullptr);
    for (auto _ : st) {
        for (int i = 0; i < N; i++) {
            void *p = ca_bump_alloc(&b, size_at(i), 8);
            benchmark::DoNotOptimize(p);
        }
        ca_bump_reset(&b);
    }
    st.SetItemsProcessed(st.iterations() * N);
    ca_bump_destroy(&b);
}
BENCHMARK_TEMPLATE(batch_bump, kBatch)->Name("alloc_8_64/ctxalloc-bump");

void alloc_bump_ops(benchmark::State &st)
{
    ca_bump b;
    ca_bump_init_allocator(&b, ca_libc_allocator(), nullptr);
    ca_allocator *a = &b.base;
    benchmark::DoNotOptimize(a);
    for (auto _ : st) {
        for (int i = 0; i < kBatch; i++) {
            void *p = ca_alloc(a, size_at(i), 8);
            benchmark::DoNotOptimize(p);
        }
        ca_reset(a);
    }
    st.SetItemsProcessed(st.iterations() * kBatch);
    ca_bump_destroy(&b);
}
BENCHMARK(alloc_bump_ops)->Name("alloc_8_64/ctxalloc-bump-ops");

void alloc_bump_fixed(benchmark::State &st)
{
    static char buf[64 << 10];
    ca_bump b;
    ca_bump_init_fixed(&b, buf, sizeof buf);
    for (auto _ : st) {
        for (int i = 0; i < kBatch; i++) {
            void *p = ca_bump_alloc(&b, size_at(i), 8);
            benchmark::DoNotOptimize(p);
        }
        ca_bump_reset(&b);
    }
    st.SetItemsProcessed(st.iterations() * kBatch);
    ca_bump_destroy(&b);
}
BENCHMARK(alloc_bump_fixed)->Name("alloc_8_64/ctxalloc-bump-fixed");

// ---- threads --------------------------------------------------------------

// Sense-reversing spin barrier for the benchmark threads.
struct barrier {
    std::atomic<int> count{0};
    std::atomic<int> sense{0};
    void wait(int n, int &local)
    {
        local ^= 1;
        if (count.fetch_add(1, std::memory_order_acq_rel) == n - 1) {
            count.store(0, std::memory_order_relaxed);
            sense.store(local, std::memory_order_release);
        } else {
            while (sense.load(std::memory_order_acquire) != local)
                std::this_thread::yield();
        }
    }
};

void shared_malloc(benchmark::State &st)
{
    void *ptrs[kBatch];
    for (auto _ : st) {
        for (int i = 0; i < kBatch; i++) {
            ptrs[i] = std::malloc(size_at(i));
            benchmark::DoNotOptimize(ptrs[i]);
        }
        for (int i = 0; i < kBatch; i++)
            std::free(ptrs[i]);
    }
    st.SetItemsProcessed(st.iterations() * kBatch);
}
BENCHMARK(shared_malloc)->Name("shared_alloc_8_64/malloc")->Threads(1)->Threads(2)->UseRealTime();

ca_bump_shared g_shared;
barrier g_bar;

void shared_bump(benchmark::State &st)
{
    if (st.thread_index() == 0) {
        ca_bump_options o = {1 << 20, 64 << 20};
        ca_bump_shared_init_allocator(&g_shared, ca_libc_allocator(), &o);
    }
    int sense = 0;
    g_bar.wait(st.threads(), sense);
    for (auto _ : st) {
        for (int i = 0; i < kBatch; i++) {
            void *p = ca_bump_shared_alloc(&g_shared, size_at(i), 8);
            benchmark::DoNotOptimize(p);
        }
        if (st.threads() > 1) {
            g_bar.wait(st.threads(), sense);
            if (st.thread_index() == 0)
                ca_bump_shared_reset(&g_shared);
            g_bar.wait(st.threads(), sense);
        } else {
            ca_bump_shared_reset(&g_shared);
        }
    }
    st.SetItemsProcessed(st.iterations() * kBatch);
    g_bar.wait(st.threads(), sense);
    if (st.thread_index() == 0)
        ca_bump_shared_destroy(&g_shared);
}
BENCHMARK(shared_bump)->Name("shared_alloc_8_64/ctxalloc-bump-shared")->Threads(1)->Threads(2)->UseRealTime();

void local_malloc(benchmark::State &st) { shared_malloc(st); }
BENCHMARK(local_malloc)->Name("local_alloc_8_64/malloc")->Threads(2)->UseRealTime();

void local_bump(benchmark::State &st)
{
    if (st.thread_index() == 0)
        ca_bump_shared_init_allocator(&g_shared, ca_libc_allocator(), nullptr);
    int sense = 0;
    g_bar.wait(st.threads(), sense);
    ca_bump b;
    ca_bump_init_local(&b, &g_shared, nullptr);
    for (auto _ : st) {
        for (int i = 0; i < kBatch; i++) {
            void *p = ca_bump_alloc(&b, size_at(i), 8);
            benchmark::DoNotOptimize(p);
        }
        ca_bump_reset(&b);
    }
    st.SetItemsProcessed(st.iterations() * kBatch);
    ca_bump_destroy(&b);
    g_bar.wait(st.threads(), sense);
    if (st.thread_index() == 0)
        ca_bump_shared_destroy(&g_shared);
}
BENCHMARK(local_bump)->Name("local_alloc_8_64/ctxalloc-bump-local")->Threads(2)->UseRealTime();

// ---- reset cycle ------------------------------------------------------------

constexpr int kCycle = 10000;

BENCHMARK_TEMPLATE(batch_malloc, kCycle)->Name("reset_cycle_10k/malloc");
BENCHMARK_TEMPLATE(batch_bump, kCycle)->Name("reset_cycle_10k/ctxalloc-bump");

} // namespace

BENCHMARK_MAIN();
