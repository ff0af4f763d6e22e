// SPDX-License-Identifier: MIT
// Large-object benchmarks: the malloc-large pattern (random 64 KiB - 8 MiB,
// a working set of 20 buffers, each new buffer filled as
// std::make_unique<char[]> does; also with the published benchmark's
// 5 - 25 MiB), realloc growth of one buffer to 256 MiB,
// and alloc/free of 1 MiB objects from 2 threads. "malloc" rows run on the
// process malloc (the harness binds each baseline by LD_PRELOAD);
// "ctxalloc-large" rows on the process-wide large tier. Counters: peak_rss_mib =
// the largest resident set of the process seen during the run, in MiB.
#include <benchmark/benchmark.h>
#include <ctxalloc/binned/large.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <unistd.h>

#include "ca_bench.h"

namespace {

long rss_kib()
{
    FILE *f = std::fopen("/proc/self/statm", "r");
    long pages = 0, rss = 0;
    if (f) {
        if (std::fscanf(f, "%ld %ld", &pages, &rss) != 2)
            rss = 0;
        std::fclose(f);
    }
    return rss * (sysconf(_SC_PAGESIZE) / 1024);
}

// Peak resident set of the process during a run, in MiB (sampled). The
// harness runs each baseline's rows in a process of their own; in the
// process without preload the ctxalloc rows run first and trim afterwards.
struct rss_peak {
    long peak = rss_kib();
    void sample()
    {
        long r = rss_kib();
        if (r > peak)
            peak = r;
    }
    void report(benchmark::State &st) { st.counters["peak_rss_mib"] = (double)peak / 1024.0; }
};

constexpr int kBuffers = 20;
constexpr size_t kMin = (size_t)64 << 10, kMax = (size_t)8 << 20;

// --- malloc-large --------------------------------------------------------

template <class Alloc, class Free>
void malloc_large(benchmark::State &st, Alloc alloc, Free dealloc, size_t lo = kMin, size_t hi = kMax)
{
    void *buf[kBuffers] = {};
    ca_bench::rng r{42};
    rss_peak rss;
    size_t n = 0;
    for (auto _ : st) {
        int i = (int)r.below(kBuffers);
        size_t size = lo + r.below(hi - lo + 1);
        dealloc(buf[i]);
        buf[i] = alloc(size);
        // value-initialised like make_unique<char[]>; a non-zero byte so the
        // compiler cannot turn malloc + memset(0) into calloc
        std::memset(buf[i], 1, size);
        benchmark::DoNotOptimize(buf[i]);
        if ((++n & 63) == 0)
            rss.sample();
    }
    rss.sample();
    for (auto &p : buf)
        dealloc(p);
    rss.report(st);
    st.SetItemsProcessed(st.iterations());
}

void malloc_large_malloc(benchmark::State &st)
{
    malloc_large(st, [](size_t s) { return std::malloc(s); }, [](void *p) { std::free(p); });
}

void malloc_large_ctx(benchmark::State &st)
{
    ca_binned_large *l = ca_binned_large_default();
    malloc_large(
        st, [l](size_t s) { return ca_binned_large_alloc(l, s, 16, nullptr); },
        [l](void *p) { ca_binned_large_free(l, p); });
    ca_binned_large_trim(l);
}

// The same on a tier tuned for resident memory: areas >= 2 MiB on
// transparent huge pages (a purged area refaults in 2 MiB steps), 8 MiB of
// dirty pool and 4 MiB of thread cache.
void malloc_large_ctx_lowrss(benchmark::State &st)
{
    ca_binned_large_options o;
    std::memset(&o, 0, sizeof o);
    o.flags = CA_BINNED_LARGE_HUGE;
    o.dirty_max = (size_t)8 << 20;
    o.cache_bytes = (size_t)4 << 20;
    ca_binned_large *l = nullptr;
    if (ca_binned_large_create(&l, &o) != 0) {
        st.SkipWithError("create failed");
        return;
    }
    malloc_large(
        st, [l](size_t s) { return ca_binned_large_alloc(l, s, 16, nullptr); },
        [l](void *p) { ca_binned_large_free(l, p); });
    ca_binned_large_destroy(l);
}

// The sizes of the common malloc-large benchmark: 5-25 MiB.
constexpr size_t kAnchorMin = (size_t)5 << 20, kAnchorMax = (size_t)25 << 20;

void anchor_malloc(benchmark::State &st)
{
    malloc_large(st, [](size_t s) { return std::malloc(s); }, [](void *p) { std::free(p); }, kAnchorMin, kAnchorMax);
}

void anchor_ctx(benchmark::State &st)
{
    ca_binned_large *l = ca_binned_large_default();
    malloc_large(
        st, [l](size_t s) { return ca_binned_large_alloc(l, s, 16, nullptr); },
        [l](void *p) { ca_binned_large_free(l, p); }, kAnchorMin, kAnchorMax);
    ca_binned_large_trim(l);
}

// --- realloc growth --------------------------------------------------------

constexpr size_t kGrowTo = (size_t)256 << 20, kStep = (size_t)64 << 10;

template <class Realloc, class Free> void realloc_growth(benchmark::State &st, Realloc grow, Free dealloc)
{
    rss_peak rss;
    for (auto _ : st) {
        char *p = nullptr;
        for (size_t s = kStep; s <= kGrowTo; s += kStep) {
            p = (char *)grow(p, s);
            p[s - 1] = 1; // touch the new tail page
        }
        benchmark::DoNotOptimize(p);
        rss.sample();
        dealloc(p);
    }
    rss.report(st);
    st.SetItemsProcessed(st.iterations() * (int64_t)(kGrowTo / kStep));
}

void realloc_growth_malloc(benchmark::State &st)
{
    realloc_growth(st, [](void *p, size_t s) { return std::realloc(p, s); }, [](void *p) { std::free(p); });
}

void realloc_growth_ctx(benchmark::State &st)
{
    ca_binned_large *l = ca_binned_large_default();
    realloc_growth(
        st, [l](void *p, size_t s) { return ca_binned_large_resize(l, p, s, 16, 0, nullptr); },
        [l](void *p) { ca_binned_large_free(l, p); });
    ca_binned_large_trim(l);
}

// --- 2 threads, 1 MiB objects ---------------------------------------------

constexpr size_t kMiB = (size_t)1 << 20;

template <class Alloc, class Free> void mib_pairs(benchmark::State &st, Alloc alloc, Free dealloc)
{
    void *keep[4] = {};
    size_t k = 0;
    for (auto _ : st) {
        void *p = alloc(kMiB);
        static_cast<char *>(p)[0] = 1;
        static_cast<char *>(p)[kMiB - 1] = 1;
        benchmark::DoNotOptimize(p);
        // keep a few alive so the pattern is not a pure pop/push of one block
        dealloc(keep[k]);
        keep[k] = p;
        k = (k + 1) & 3;
    }
    for (auto &p : keep)
        dealloc(p);
    if (st.thread_index() == 0)
        st.counters["peak_rss_mib"] = (double)rss_kib() / 1024.0; // at the end of the run
    st.SetItemsProcessed(st.iterations());
}

void mib_malloc(benchmark::State &st)
{
    mib_pairs(st, [](size_t s) { return std::malloc(s); }, [](void *p) { std::free(p); });
}

void mib_ctx(benchmark::State &st)
{
    ca_binned_large *l = ca_binned_large_default();
    mib_pairs(
        st, [l](size_t s) { return ca_binned_large_alloc(l, s, 16, nullptr); },
        [l](void *p) { ca_binned_large_free(l, p); });
    ca_binned_large_trim(l);
}

// ctxalloc rows first (each trims the tier when done), then the malloc rows.
BENCHMARK(malloc_large_ctx)->Name("malloc_large/ctxalloc-large")->Unit(benchmark::kMicrosecond);
BENCHMARK(malloc_large_ctx_lowrss)->Name("malloc_large/ctxalloc-large-lowrss")->Unit(benchmark::kMicrosecond);
BENCHMARK(anchor_ctx)->Name("malloc_large_5_25m/ctxalloc-large")->Unit(benchmark::kMicrosecond);
BENCHMARK(realloc_growth_ctx)->Name("realloc_growth_256m/ctxalloc-large")->Unit(benchmark::kMillisecond);
BENCHMARK(mib_ctx)->Name("alloc_free_1m/ctxalloc-large")->Threads(2)->UseRealTime();
BENCHMARK(malloc_large_malloc)->Name("malloc_large/malloc")->Unit(benchmark::kMicrosecond);
BENCHMARK(anchor_malloc)->Name("malloc_large_5_25m/malloc")->Unit(benchmark::kMicrosecond);
BENCHMARK(realloc_growth_malloc)->Name("realloc_growth_256m/malloc")->Unit(benchmark::kMillisecond);
BENCHMARK(mib_malloc)->Name("alloc_free_1m/malloc")->Threads(2)->UseRealTime();

} // namespace

BENCHMARK_MAIN();
