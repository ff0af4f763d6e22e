// SPDX-License-Identifier: MIT
// libarena benchmarks beside the process malloc. Workloads:
//   pair   one allocation and its free per iteration, sizes cycling over a
//          fixed pseudo-random sequence of 16 B - 4 KiB;
//   batch  256 allocations of 16 B - 4 KiB, then their frees in a shuffled
//          order (frees away from the tail exercise the free list);
// each single-threaded and with 2 threads sharing one arena. Variants
// ctxalloc-<kind>-<backing>: kind none / optimistic / pessimistic, backing
// heap (libsource heap source) or file (an unlinked file, shared mapping).
// none discards every free away from the tail, so it runs only where frees
// are LIFO (pair, one thread). Every allocation has its first byte written,
// for malloc too.
#include <benchmark/benchmark.h>
#include <ctxalloc/arena.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "ca_bench.h"

namespace {

constexpr size_t kBatch = 256;

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

// One arena per workload, variant and thread count, made on first use and
// kept for the process (repetitions reuse it; every run frees what it
// allocated, and no run inherits another workload's fragmentation).
ca_arena *make_arena(ca_arena_freelist kind, bool file)
{
    ca_arena_options o;
    ca_arena_options_init(&o);
    o.freelist = kind;
    o.capacity = (uint64_t)256 << 20;
    ca_arena *a = nullptr;
    if (file) {
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

template <ca_arena_freelist Kind, bool File, int Workload, int Threads> ca_arena *arena_once()
{
    static ca_arena *a = make_arena(Kind, File); // thread-safe initialisation
    return a;
}

template <ca_arena_freelist Kind, bool File, int Workload> ca_arena *arena(int threads)
{
    return threads == 1 ? arena_once<Kind, File, Workload, 1>() : arena_once<Kind, File, Workload, 2>();
}

void pair_malloc(benchmark::State &st)
{
    const auto &sz = sizes();
    size_t i = (size_t)st.thread_index() * 97;
    for (auto _ : st) {
        char *p = (char *)std::malloc(sz[i & 1023]);
        p[0] = 1;
        benchmark::DoNotOptimize(p);
        std::free(p);
        i++;
    }
    st.SetItemsProcessed(st.iterations());
}

void batch_malloc(benchmark::State &st)
{
    const auto &sz = sizes();
    const auto &sh = shuffle();
    std::vector<char *> p(kBatch);
    size_t base = (size_t)st.thread_index() * 97;
    for (auto _ : st) {
        for (size_t k = 0; k < kBatch; k++) {
            p[k] = (char *)std::malloc(sz[(base + k) & 1023]);
            p[k][0] = 1;
        }
        benchmark::ClobberMemory();
        for (size_t k = 0; k < kBatch; k++)
            std::free(p[sh[k]]);
        base += kBatch;
    }
    st.SetItemsProcessed(st.iterations() * (int64_t)kBatch);
}

template <ca_arena_freelist Kind, bool File> void pair_arena(benchmark::State &st)
{
    ca_arena *a = arena<Kind, File, 0>(st.threads());
    if (!a) {
        st.SkipWithError("arena create failed");
        return;
    }
    const auto &sz = sizes();
    size_t i = (size_t)st.thread_index() * 97;
    for (auto _ : st) {
        uint64_t off;
        size_t s = sz[i & 1023];
        if (ca_arena_alloc(a, s, 16, &off)) {
            st.SkipWithError("arena exhausted");
            break;
        }
        char *p = (char *)ca_arena_ptr(a, off);
        p[0] = 1;
        benchmark::DoNotOptimize(p);
        ca_arena_free(a, off, s);
        i++;
    }
    st.SetItemsProcessed(st.iterations());
}

template <ca_arena_freelist Kind, bool File> void batch_arena(benchmark::State &st)
{
    ca_arena *a = arena<Kind, File, 1>(st.threads());
    if (!a) {
        st.SkipWithError("arena create failed");
        return;
    }
    const auto &sz = sizes();
    const auto &sh = shuffle();
    std::vector<uint64_t> off(kBatch);
    size_t base = (size_t)st.thread_index() * 97;
    for (auto _ : st) {
        for (size_t k = 0; k < kBatch; k++) {
            if (ca_arena_alloc(a, sz[(base + k) & 1023], 16, &off[k])) {
                st.SkipWithError("arena exhausted");
                return;
            }
            ((char *)ca_arena_ptr(a, off[k]))[0] = 1;
        }
        benchmark::ClobberMemory();
        for (size_t k = 0; k < kBatch; k++)
            ca_arena_free(a, off[sh[k]], sz[(base + sh[k]) & 1023]);
        base += kBatch;
    }
    st.SetItemsProcessed(st.iterations() * (int64_t)kBatch);
}

constexpr auto NONE = CA_ARENA_FREELIST_NONE;
constexpr auto OPT = CA_ARENA_FREELIST_OPTIMISTIC;
constexpr auto PES = CA_ARENA_FREELIST_PESSIMISTIC;

} // namespace

BENCHMARK(pair_malloc)->Name("pair/malloc")->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK(pair_arena<NONE, false>)->Name("pair/ctxalloc-none-heap")->Threads(1)->UseRealTime();
BENCHMARK(pair_arena<NONE, true>)->Name("pair/ctxalloc-none-file")->Threads(1)->UseRealTime();
BENCHMARK(pair_arena<OPT, false>)->Name("pair/ctxalloc-optimistic-heap")->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK(pair_arena<OPT, true>)->Name("pair/ctxalloc-optimistic-file")->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK(pair_arena<PES, false>)->Name("pair/ctxalloc-pessimistic-heap")->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK(pair_arena<PES, true>)->Name("pair/ctxalloc-pessimistic-file")->Threads(1)->Threads(2)->UseRealTime();

BENCHMARK(batch_malloc)->Name("batch/malloc")->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK(batch_arena<OPT, false>)->Name("batch/ctxalloc-optimistic-heap")->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK(batch_arena<OPT, true>)->Name("batch/ctxalloc-optimistic-file")->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK(batch_arena<PES, false>)->Name("batch/ctxalloc-pessimistic-heap")->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK(batch_arena<PES, true>)->Name("batch/ctxalloc-pessimistic-file")->Threads(1)->Threads(2)->UseRealTime();

BENCHMARK_MAIN();
