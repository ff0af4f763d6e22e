// SPDX-License-Identifier: MIT
// librbtree benchmarks.
//   random/<impl>            random replacement (free one random block,
//                            allocate a new one) of 16 B..64 KiB, log-uniform,
//                            in a working set of 10,000 blocks; one byte per
//                            page of each new block is written;
//   random-2t/<impl>         the same from 2 threads sharing the working set
//                            size (5,000 blocks each); ours through core's
//                            locked adaptor over one ca_rbtree;
//   pair/<impl>              one alloc + free, sizes cycling 16..512 B.
// Counters next to time: peak_rss_MiB (the process's peak resident set,
// VmHWM: comparable across impls when each row runs in its own process,
// --benchmark_filter=<row>, as the README table does), live_MiB (bytes
// requested by the live working set at the end), and for ours
// peak_reserved_MiB (regions held at peak), reserved_per_in_use and
// fragmentation (1 - largest free / total free).
#include <benchmark/benchmark.h>
#include <ctxalloc/rbtree.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "ca_bench.h"

namespace {

constexpr size_t kWorkingSet = 10000;
constexpr size_t kSeq = 1 << 16;

// Pre-drawn slots and sizes, so every impl does exactly the same work.
struct Workload {
    std::vector<uint32_t> slot;
    std::vector<uint32_t> size;
    explicit Workload(uint64_t seed, size_t nslots)
    {
        ca_bench::rng r{seed};
        slot.resize(kSeq);
        size.resize(kSeq);
        for (size_t i = 0; i < kSeq; i++) {
            slot[i] = (uint32_t)r.below(nslots);
            unsigned e = 4 + (unsigned)r.below(12); // 2^4 .. 2^15, then up to 2^16
            size[i] = (uint32_t)((1u << e) + r.below(1u << e));
        }
    }
};

// Peak resident set of the process in MiB (VmHWM).
double peak_rss_mib()
{
    char line[256];
    long kib = 0;
    FILE *f = std::fopen("/proc/self/status", "r");
    if (!f)
        return 0;
    while (std::fgets(line, sizeof line, f))
        if (std::sscanf(line, "VmHWM: %ld kB", &kib) == 1)
            break;
    std::fclose(f);
    return (double)kib / 1024.0;
}

void report_memory(benchmark::State &st, size_t live)
{
    st.counters["peak_rss_MiB"] = peak_rss_mib();
    st.counters["live_MiB"] = (double)live / (1 << 20);
}

inline void touch(void *p, size_t n)
{
    char *c = static_cast<char *>(p);
    for (size_t o = 0; o < n; o += 4096)
        c[o] = 1;
    benchmark::ClobberMemory();
}

// Allocation interface used by the loop: malloc, or a ca_allocator.
struct MallocImpl {
    void *alloc(size_t n) { return std::malloc(n); }
    void free(void *p, size_t) { std::free(p); }
};
struct RbtreeImpl {
    ca_rbtree *r;
    void *alloc(size_t n) { return ca_rbtree_alloc(r, n, 16, nullptr); }
    void free(void *p, size_t n) { ca_rbtree_free(r, p, n, 16); }
};
struct AllocatorImpl {
    ca_allocator *a;
    void *alloc(size_t n) { return ca_alloc(a, n, 16); }
    void free(void *p, size_t n) { ca_free(a, p, n, 16); }
};

// Runs the random replacement loop; returns live bytes at the end (blocks
// are freed by the caller through the same impl afterwards).
template <class Impl>
size_t random_loop(benchmark::State &st, Impl &impl, const Workload &w, std::vector<void *> &ptr,
                   std::vector<uint32_t> &sz)
{
    size_t n = ptr.size(), k = 0;
    for (size_t i = 0; i < n; i++) {
        sz[i] = w.size[(i * 7) % kSeq];
        ptr[i] = impl.alloc(sz[i]);
        touch(ptr[i], sz[i]);
    }
    for (auto _ : st) {
        uint32_t s = w.slot[k], size = w.size[k];
        impl.free(ptr[s], sz[s]);
        void *p = impl.alloc(size);
        benchmark::DoNotOptimize(p);
        touch(p, size);
        ptr[s] = p;
        sz[s] = size;
        if (++k == kSeq)
            k = 0;
    }
    size_t live = 0;
    for (size_t i = 0; i < n; i++)
        live += sz[i];
    return live;
}

template <class Impl> void free_all(Impl &impl, std::vector<void *> &ptr, std::vector<uint32_t> &sz)
{
    for (size_t i = 0; i < ptr.size(); i++)
        impl.free(ptr[i], sz[i]);
}

void report_rbtree(benchmark::State &st, const ca_allocator *a)
{
    ca_stats s;
    uint64_t frag = 0, peak = 0, obtained = 0;
    ca_stats_get(a, &s);
    ca_stats_get_counter(&s, "regions_obtained", &obtained);
    st.counters["regions_obtained"] = (double)obtained;
    ca_stats_get_counter(&s, "fragmentation_ppm", &frag);
    ca_stats_get_counter(&s, "peak_reserved", &peak);
    st.counters["fragmentation"] = (double)frag / 1e6;
    st.counters["peak_reserved_MiB"] = (double)peak / (1 << 20);
    st.counters["reserved_per_in_use"] = s.bytes_in_use ? (double)s.bytes_reserved / (double)s.bytes_in_use : 0;
}

void random_malloc(benchmark::State &st)
{
    Workload w(1, kWorkingSet);
    std::vector<void *> ptr(kWorkingSet);
    std::vector<uint32_t> sz(kWorkingSet);
    MallocImpl m;
    size_t live = random_loop(st, m, w, ptr, sz);
    report_memory(st, live);
    free_all(m, ptr, sz);
    st.SetItemsProcessed(st.iterations());
}
BENCHMARK(random_malloc)->Name("random/malloc");

void random_rbtree(benchmark::State &st)
{
    Workload w(1, kWorkingSet);
    std::vector<void *> ptr(kWorkingSet);
    std::vector<uint32_t> sz(kWorkingSet);
    ca_rbtree r;
    ca_rbtree_init(&r, nullptr);
    RbtreeImpl impl{&r};
    size_t live = random_loop(st, impl, w, ptr, sz);
    report_memory(st, live);
    report_rbtree(st, &r.base);
    free_all(impl, ptr, sz);
    ca_rbtree_destroy(&r);
    st.SetItemsProcessed(st.iterations());
}
BENCHMARK(random_rbtree)->Name("random/ctxalloc-rbtree");

// --- 2 threads --------------------------------------------------------------

struct Shared {
    std::atomic<int> ready{0};
    std::atomic<int> done{0};
    ca_rbtree r;
    ca_locked_allocator l;
    std::atomic<size_t> live{0};
};
Shared g_shared;

void random2_malloc(benchmark::State &st)
{
    size_t n = kWorkingSet / (size_t)st.threads();
    Workload w(100 + (uint64_t)st.thread_index(), n);
    std::vector<void *> ptr(n);
    std::vector<uint32_t> sz(n);
    MallocImpl m;
    size_t live = random_loop(st, m, w, ptr, sz);
    if (st.thread_index() == 0)
        report_memory(st, live * (size_t)st.threads());
    free_all(m, ptr, sz);
    st.SetItemsProcessed(st.iterations());
}
BENCHMARK(random2_malloc)->Name("random-2t/malloc")->Threads(2)->UseRealTime();

void random2_locked(benchmark::State &st, ca_lock_kind kind)
{
    Shared &g = g_shared;
    if (st.thread_index() == 0) {
        ca_rbtree_init(&g.r, nullptr);
        ca_locked_init(&g.l, &g.r.base, kind);
        g.live = 0;
        g.done = 0;
        g.ready.store(1, std::memory_order_release);
    } else {
        while (!g.ready.load(std::memory_order_acquire))
            ;
    }
    size_t n = kWorkingSet / (size_t)st.threads();
    Workload w(100 + (uint64_t)st.thread_index(), n);
    std::vector<void *> ptr(n);
    std::vector<uint32_t> sz(n);
    AllocatorImpl impl{&g.l.base};
    g.live += random_loop(st, impl, w, ptr, sz);
    g.done.fetch_add(1);
    if (st.thread_index() == 0) {
        while (g.done.load() < st.threads())
            ;
        report_memory(st, g.live.load());
        report_rbtree(st, &g.l.base);
    }
    g.done.fetch_add(1);
    while (g.done.load() < 2 * st.threads())
        ;
    free_all(impl, ptr, sz);
    g.done.fetch_add(1);
    if (st.thread_index() == 0) {
        while (g.done.load() < 3 * st.threads())
            ;
        g.ready.store(0);
        ca_locked_destroy(&g.l);
        ca_rbtree_destroy(&g.r);
    } else {
        // wait until thread 0 has torn down before a next run can start
        while (g.ready.load(std::memory_order_acquire))
            ;
    }
    st.SetItemsProcessed(st.iterations());
}
void random2_mutex(benchmark::State &st) { random2_locked(st, CA_LOCK_MUTEX); }
void random2_spin(benchmark::State &st) { random2_locked(st, CA_LOCK_SPIN); }
BENCHMARK(random2_mutex)->Name("random-2t/ctxalloc-rbtree-locked-mutex")->Threads(2)->UseRealTime();
BENCHMARK(random2_spin)->Name("random-2t/ctxalloc-rbtree-locked-spin")->Threads(2)->UseRealTime();

// --- fast-path pair ---------------------------------------------------------

const std::vector<size_t> kSizes = ca_bench::cycling_sizes();

void pair_malloc(benchmark::State &st)
{
    size_t i = 0;
    for (auto _ : st) {
        void *p = std::malloc(kSizes[i]);
        benchmark::DoNotOptimize(p);
        std::free(p);
        if (++i == kSizes.size())
            i = 0;
    }
    st.SetItemsProcessed(st.iterations());
}
BENCHMARK(pair_malloc)->Name("pair/malloc");

void pair_rbtree(benchmark::State &st)
{
    ca_rbtree r;
    ca_rbtree_init(&r, nullptr);
    size_t i = 0;
    for (auto _ : st) {
        void *p = ca_rbtree_alloc(&r, kSizes[i], 16, nullptr);
        benchmark::DoNotOptimize(p);
        ca_rbtree_free(&r, p, kSizes[i], 16);
        if (++i == kSizes.size())
            i = 0;
    }
    ca_rbtree_destroy(&r);
    st.SetItemsProcessed(st.iterations());
}
BENCHMARK(pair_rbtree)->Name("pair/ctxalloc-rbtree");

} // namespace

BENCHMARK_MAIN();
