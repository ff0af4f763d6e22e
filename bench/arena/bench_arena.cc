// SPDX-License-Identifier: MIT
// libarena benchmarks beside the process malloc, with 1, 2 and 4 threads.
// Workloads (sizes from one fixed pseudo-random sequence of 16 B - 4 KiB;
// every block has its first byte written, for malloc too):
//   alloc  allocation only: each iteration allocates one block; every 1024
//          blocks the thread frees them with the timers paused;
//   pair   one allocation and its free per iteration;
//   mixed  256 allocations, then their frees in a shuffled order (frees away
//          from the tail: the free lists and caches), per block.
// Implementations:
//   malloc                       the process malloc (glibc; jemalloc and the
//                                other baselines by LD_PRELOAD);
//   ctxalloc-shared              one arena shared by all threads (defaults:
//                                OPTIMISTIC, heap, thread caches, reuse first);
//   ctxalloc-shared-fresh        the same, FRESH_FIRST;
//   ctxalloc-shared-pessimistic  the same, PESSIMISTIC;
//   ctxalloc-shared-file         the same over an unlinked file (shared mapping);
//   ctxalloc-shared-nocache      CA_ARENA_LOCAL_CACHE_OFF: every call on the shared
//                                cursor and list (the lock-free list alone);
//   ctxalloc-per-thread          one arena per thread (nothing shared).
// Arenas are made on first use and kept for the process; every run frees
// what it allocated.
#include <benchmark/benchmark.h>
#include <ctxalloc/arena.h>
#include <unistd.h>

#include <cstdio>
#include <mutex>
#include <cstdlib>
#include <string>
#include <vector>

#include "ca_bench.h"

namespace {

constexpr size_t kBatch = 256;  // mixed
constexpr size_t kAllocs = 1024; // alloc: blocks held before the untimed free
constexpr int kMaxThreads = 4;

const std::vector<size_t> &sizes()
{
    static std::vector<size_t> v = [] {
        std::vector<size_t> s;
        ca_bench::rng r{42};
        for (int i = 0; i < 1024; i++)
            s.push_back(16 + r.below(4081));
        return s;
    }();
    return v;
}

const std::vector<unsigned> &shuffle()
{
    static std::vector<unsigned> v = [] {
        std::vector<unsigned> s(kBatch);
        ca_bench::rng r{7};
        for (unsigned i = 0; i < kBatch; i++)
            s[i] = i;
        for (unsigned i = kBatch - 1; i > 0; i--)
            std::swap(s[i], s[r.below(i + 1)]);
        return s;
    }();
    return v;
}

enum Variant { SHARED, FRESH, PESSIMISTIC, FILEB, NOCACHE, PER_THREAD };

ca_arena *make_arena(Variant v)
{
    ca_arena_options o;
    ca_arena_options_init(&o);
    o.capacity = (uint64_t)256 << 20;
    if (v == FRESH)
        o.order = CA_ARENA_FRESH_FIRST;
    if (v == PESSIMISTIC)
        o.freelist = CA_ARENA_FREELIST_PESSIMISTIC;
    if (v == NOCACHE)
        o.local_cache = CA_ARENA_LOCAL_CACHE_OFF;
    ca_arena *a = nullptr;
    if (v == FILEB) {
        char path[] = "/tmp/ctxalloc-bench-arena-XXXXXX";
        int fd = mkstemp(path);
        if (fd < 0)
            return nullptr;
        close(fd);
        o.flags = CA_ARENA_REPLACE;
        if (ca_arena_create_file(&a, path, &o, nullptr))
            a = nullptr;
        unlink(path); // the mapping keeps the file alive
    } else if (ca_arena_create(&a, &o)) {
        a = nullptr;
    }
    return a;
}

// One arena per variant, workload and thread count (and per thread for
// PER_THREAD), made on first use: no run inherits another's fragmentation.
template <Variant V, int W> ca_arena *arena_for(benchmark::State &st)
{
    static ca_arena *shared[kMaxThreads + 1][kMaxThreads];
    static std::once_flag once[kMaxThreads + 1][kMaxThreads];
    int t = st.threads() > kMaxThreads ? kMaxThreads : st.threads();
    int i = V == PER_THREAD ? st.thread_index() : 0;
    std::call_once(once[t][i], [&] { shared[t][i] = make_arena(V); });
    return shared[t][i];
}

// The operations each implementation offers, as handles.
struct Malloc {
    explicit Malloc(benchmark::State &) {}
    bool ok() const { return true; }
    uintptr_t alloc(size_t s)
    {
        char *p = (char *)std::malloc(s);
        p[0] = 1;
        return (uintptr_t)p;
    }
    void free(uintptr_t h, size_t) { std::free((void *)h); }
};

template <Variant V, int W> struct Arena {
    ca_arena *a;
    explicit Arena(benchmark::State &st) : a(arena_for<V, W>(st)) {}
    bool ok() const { return a != nullptr; }
    uintptr_t alloc(size_t s)
    {
        uint64_t off;
        if (ca_arena_alloc(a, s, 16, &off))
            return 0;
        ((char *)ca_arena_ptr(a, off))[0] = 1;
        return (uintptr_t)off;
    }
    void free(uintptr_t h, size_t s) { ca_arena_free(a, (uint64_t)h, s); }
};

template <class I> void alloc_only(benchmark::State &st)
{
    I impl(st);
    if (!impl.ok()) {
        st.SkipWithError("arena create failed");
        return;
    }
    const auto &sz = sizes();
    std::vector<uintptr_t> h(kAllocs);
    size_t i = (size_t)st.thread_index() * 97, k = 0;
    for (auto _ : st) {
        size_t s = sz[(i + k) & 1023];
        h[k] = impl.alloc(s);
        if (!h[k]) {
            st.SkipWithError("arena exhausted");
            break;
        }
        if (++k == kAllocs) {
            st.PauseTiming();
            while (k--)
                impl.free(h[k], sz[(i + k) & 1023]);
            k = 0;
            i += kAllocs;
            st.ResumeTiming();
        }
    }
    while (k--)
        impl.free(h[k], sz[(i + k) & 1023]);
    st.SetItemsProcessed(st.iterations());
}

template <class I> void pair(benchmark::State &st)
{
    I impl(st);
    if (!impl.ok()) {
        st.SkipWithError("arena create failed");
        return;
    }
    const auto &sz = sizes();
    size_t i = (size_t)st.thread_index() * 97;
    for (auto _ : st) {
        size_t s = sz[i & 1023];
        uintptr_t h = impl.alloc(s);
        if (!h) {
            st.SkipWithError("arena exhausted");
            break;
        }
        benchmark::DoNotOptimize(h);
        impl.free(h, s);
        i++;
    }
    st.SetItemsProcessed(st.iterations());
}

template <class I> void mixed(benchmark::State &st)
{
    I impl(st);
    if (!impl.ok()) {
        st.SkipWithError("arena create failed");
        return;
    }
    const auto &sz = sizes();
    const auto &sh = shuffle();
    std::vector<uintptr_t> h(kBatch);
    size_t base = (size_t)st.thread_index() * 97;
    for (auto _ : st) {
        for (size_t k = 0; k < kBatch; k++) {
            h[k] = impl.alloc(sz[(base + k) & 1023]);
            if (!h[k]) {
                st.SkipWithError("arena exhausted");
                return;
            }
        }
        benchmark::ClobberMemory();
        for (size_t k = 0; k < kBatch; k++)
            impl.free(h[sh[k]], sz[(base + sh[k]) & 1023]);
        base += kBatch;
    }
    st.SetItemsProcessed(st.iterations() * (int64_t)kBatch);
}

void threads_1_2_4(benchmark::internal::Benchmark *b) { b->Threads(1)->Threads(2)->Threads(4)->UseRealTime(); }

} // namespace

#define CA_ARENA_BENCH(W, N, fn)                                                                                  \
    BENCHMARK(fn<Malloc>)->Name(N "/malloc")->Apply(threads_1_2_4);                                           \
    BENCHMARK(fn<Arena<SHARED, W>>)->Name(N "/ctxalloc-shared")->Apply(threads_1_2_4);                        \
    BENCHMARK(fn<Arena<FRESH, W>>)->Name(N "/ctxalloc-shared-fresh")->Apply(threads_1_2_4);                   \
    BENCHMARK(fn<Arena<PESSIMISTIC, W>>)->Name(N "/ctxalloc-shared-pessimistic")->Apply(threads_1_2_4);       \
    BENCHMARK(fn<Arena<FILEB, W>>)->Name(N "/ctxalloc-shared-file")->Apply(threads_1_2_4);                    \
    BENCHMARK(fn<Arena<NOCACHE, W>>)->Name(N "/ctxalloc-shared-nocache")->Apply(threads_1_2_4);               \
    BENCHMARK(fn<Arena<PER_THREAD, W>>)->Name(N "/ctxalloc-per-thread")->Apply(threads_1_2_4)

enum { ALLOC, PAIR, MIXED };
CA_ARENA_BENCH(ALLOC, "alloc", alloc_only);
CA_ARENA_BENCH(PAIR, "pair", pair);
CA_ARENA_BENCH(MIXED, "mixed", mixed);

BENCHMARK_MAIN();
