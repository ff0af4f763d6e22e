// SPDX-License-Identifier: MIT
// libbinned benchmarks. Each workload runs on the process malloc ("malloc",
// measured under glibc, jemalloc, mimalloc and tcmalloc by the harness) and
// on libbinned's default instance ("ctxalloc-binned").
//   pair/*          malloc+free of one object, sizes cycling 16..512 B
//   randfree/*      1,000 objects of 16..1,024 B, freed in random order
//   larson/*        server-like: each thread replaces random slots of its
//                   array; 1 and 2 threads
//   prodcons/*/N    producer allocates, consumer frees: N=2 on another
//                   thread (remote frees), N=1 both ends on one thread
//   burst_rss/*     64 MiB of 64-B objects allocated then freed: counters
//                   peak_rss_kib and after_rss_kib, the process's whole RSS
//                   at the peak and after the free plus (arg 1) the
//                   allocator's trim or (arg 0) a 0.2 s pause
#include <benchmark/benchmark.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>
#include <malloc.h>
#include <unistd.h>

#include <ctxalloc/binned.h>

#include "ca_bench.h"

namespace {

struct sys_malloc {
    static void *alloc(size_t n) { return std::malloc(n); }
    static void release(void *p) { std::free(p); }
    static void trim() { malloc_trim(0); }
};

struct binned_malloc {
    static void *alloc(size_t n) { return ca_binned_default_malloc(n); }
    static void release(void *p) { ca_binned_default_free(p); }
    static void trim() { ca_binned_trim(nullptr); }
};

template <class A> void pair(benchmark::State &state)
{
    std::vector<size_t> sizes = ca_bench::cycling_sizes();
    size_t i = 0;
    for (auto _ : state) {
        void *p = A::alloc(sizes[i]);
        benchmark::DoNotOptimize(p);
        A::release(p);
        if (++i == sizes.size())
            i = 0;
    }
    state.SetItemsProcessed(state.iterations());
}

template <class A> void randfree(benchmark::State &state)
{
    enum { N = 1000 };
    ca_bench::rng r{42};
    std::vector<size_t> sizes(N), order(N);
    for (size_t i = 0; i < N; i++) {
        sizes[i] = 16 + r.below(1009);
        order[i] = i;
    }
    for (size_t i = N - 1; i > 0; i--)
        std::swap(order[i], order[r.below(i + 1)]);
    std::vector<void *> p(N);
    for (auto _ : state) {
        for (size_t i = 0; i < N; i++)
            p[i] = A::alloc(sizes[i]);
        benchmark::ClobberMemory();
        for (size_t i = 0; i < N; i++)
            A::release(p[order[i]]);
    }
    state.SetItemsProcessed(state.iterations() * N * 2);
}

template <class A> void larson_thread(int seed, long rounds, std::atomic<long> *ops)
{
    enum { SLOTS = 1000 };
    ca_bench::rng r{(uint64_t)seed};
    std::vector<void *> slot(SLOTS, nullptr);
    long n = 0;
    for (long i = 0; i < rounds; i++) {
        size_t k = r.below(SLOTS);
        A::release(slot[k]);
        slot[k] = A::alloc(8 + r.below(1000));
        *(char *)slot[k] = 1;
        n++;
    }
    for (void *p : slot)
        A::release(p);
    ops->fetch_add(n);
}

template <class A> void larson(benchmark::State &state)
{
    int nt = (int)state.range(0);
    long rounds = 200000;
    long total = 0;
    for (auto _ : state) {
        std::atomic<long> ops{0};
        std::vector<std::thread> t;
        for (int i = 0; i < nt; i++)
            t.emplace_back(larson_thread<A>, i + 1, rounds, &ops);
        for (auto &x : t)
            x.join();
        total += ops.load();
    }
    state.SetItemsProcessed(total);
}

// Producer/consumer through a single-producer single-consumer ring of
// pointers; the consumer frees what the producer allocated (remote frees).
template <class A> void prodcons(benchmark::State &state)
{
    const long per_iter = 200000;
    enum { RING = 4096 };
    long total = 0;
    if (state.range(0) == 1) {
        // One thread: the same hand-over through the ring, both ends here.
        std::vector<void *> ring(RING);
        ca_bench::rng r{7};
        for (auto _ : state) {
            for (long i = 0; i < per_iter; i += RING) {
                for (size_t k = 0; k < RING; k++)
                    ring[k] = A::alloc(16 + r.below(256));
                benchmark::ClobberMemory();
                for (size_t k = 0; k < RING; k++)
                    A::release(ring[k]);
            }
            total += per_iter;
        }
        state.SetItemsProcessed(total);
        return;
    }
    for (auto _ : state) {
        std::vector<std::atomic<void *>> ring(RING);
        for (auto &s : ring)
            s.store(nullptr);
        std::thread consumer([&] {
            size_t t = 0;
            for (long i = 0; i < per_iter; i++) {
                void *p;
                while (!(p = ring[t].load(std::memory_order_acquire)))
                    std::this_thread::yield();
                ring[t].store(nullptr, std::memory_order_relaxed);
                A::release(p);
                t = (t + 1) % RING;
            }
        });
        size_t h = 0;
        ca_bench::rng r{7};
        for (long i = 0; i < per_iter; i++) {
            void *p = A::alloc(16 + r.below(256));
            while (ring[h].load(std::memory_order_acquire))
                std::this_thread::yield();
            ring[h].store(p, std::memory_order_release);
            h = (h + 1) % RING;
        }
        consumer.join();
        total += per_iter;
    }
    state.SetItemsProcessed(total);
}

long rss_kib()
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, rss = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
            rss = 0;
        fclose(f);
    }
    return rss * (sysconf(_SC_PAGESIZE) / 1024);
}

template <class A> void burst_rss(benchmark::State &state)
{
    const size_t n = (64u << 20) / 64;
    std::vector<void *> p(n);
    long peak = 0, after = 0;
    for (auto _ : state) {
        for (size_t i = 0; i < n; i++) {
            p[i] = A::alloc(64);
            memset(p[i], 1, 64);
        }
        peak = rss_kib();
        for (size_t i = 0; i < n; i++)
            A::release(p[i]);
        if (state.range(0))
            A::trim();
        else
            usleep(200000);
        after = rss_kib();
    }
    state.counters["peak_rss_kib"] = (double)peak;
    state.counters["after_rss_kib"] = (double)after;
}

} // namespace

BENCHMARK(pair<sys_malloc>)->Name("pair/malloc");
BENCHMARK(pair<binned_malloc>)->Name("pair/ctxalloc-binned");
BENCHMARK(randfree<sys_malloc>)->Name("randfree/malloc");
BENCHMARK(randfree<binned_malloc>)->Name("randfree/ctxalloc-binned");
BENCHMARK(larson<sys_malloc>)->Name("larson/malloc")->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(larson<binned_malloc>)->Name("larson/ctxalloc-binned")->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(prodcons<sys_malloc>)->Name("prodcons/malloc")->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(prodcons<binned_malloc>)->Name("prodcons/ctxalloc-binned")->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(burst_rss<sys_malloc>)->Name("burst_rss/malloc")->Arg(0)->Arg(1)->Iterations(1)->Unit(benchmark::kMillisecond);
BENCHMARK(burst_rss<binned_malloc>)->Name("burst_rss/ctxalloc-binned")->Arg(0)->Arg(1)->Iterations(1)->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
