// SPDX-License-Identifier: MIT
// Core benchmarks: the malloc/free fast-path pair and a random-free pattern
// on the process malloc (the baselines) and through the core adaptors (the
// cost of the ops-table dispatch, the header and the lock), plus an
// ownership-map lookup.
#include <benchmark/benchmark.h>
#include <ctxalloc/core.h>
#include <sys/mman.h>

#include <cstdlib>
#include <vector>

#include "ca_bench.h"

namespace {

const std::vector<size_t> kSizes = ca_bench::cycling_sizes();

// One allocation and its free per iteration, sizes cycling 16..512.
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

void pair_allocator(benchmark::State &st, ca_allocator *a)
{
    size_t i = 0;
    for (auto _ : st) {
        void *p = ca_alloc(a, kSizes[i], 16);
        benchmark::DoNotOptimize(p);
        ca_free(a, p, kSizes[i], 16);
        if (++i == kSizes.size())
            i = 0;
    }
    st.SetItemsProcessed(st.iterations());
}

void pair_libc(benchmark::State &st) { pair_allocator(st, ca_libc_allocator()); }
BENCHMARK(pair_libc)->Name("pair/ctxalloc-libc-adaptor");

void pair_header(benchmark::State &st)
{
    ca_header_allocator h;
    ca_header_init(&h, ca_libc_allocator());
    size_t i = 0;
    for (auto _ : st) {
        void *p = ca_header_malloc(&h, kSizes[i]);
        benchmark::DoNotOptimize(p);
        ca_header_free(&h, p);
        if (++i == kSizes.size())
            i = 0;
    }
    st.SetItemsProcessed(st.iterations());
}
BENCHMARK(pair_header)->Name("pair/ctxalloc-header-adaptor");

void pair_locked(benchmark::State &st, ca_lock_kind kind)
{
    ca_locked_allocator l;
    ca_locked_init(&l, ca_libc_allocator(), kind);
    pair_allocator(st, &l.base);
    ca_locked_destroy(&l);
}
void pair_locked_mutex(benchmark::State &st) { pair_locked(st, CA_LOCK_MUTEX); }
void pair_locked_spin(benchmark::State &st) { pair_locked(st, CA_LOCK_SPIN); }
BENCHMARK(pair_locked_mutex)->Name("pair/ctxalloc-locked-mutex");
BENCHMARK(pair_locked_spin)->Name("pair/ctxalloc-locked-spin");

// Allocate 1,000 objects of 16..1024 bytes, free them in random order.
constexpr size_t kRandomN = 1000;

struct random_plan {
    std::vector<size_t> sizes, order;
    random_plan()
    {
        ca_bench::rng r{12345};
        for (size_t i = 0; i < kRandomN; i++)
            sizes.push_back(16 + r.below(1009));
        for (size_t i = 0; i < kRandomN; i++)
            order.push_back(i);
        for (size_t i = kRandomN - 1; i > 0; i--)
            std::swap(order[i], order[r.below(i + 1)]);
    }
};
const random_plan kPlan;

void random_free_malloc(benchmark::State &st)
{
    std::vector<void *> p(kRandomN);
    for (auto _ : st) {
        for (size_t i = 0; i < kRandomN; i++)
            p[i] = std::malloc(kPlan.sizes[i]);
        benchmark::ClobberMemory();
        for (size_t i = 0; i < kRandomN; i++)
            std::free(p[kPlan.order[i]]);
    }
    st.SetItemsProcessed(st.iterations() * kRandomN * 2);
}
BENCHMARK(random_free_malloc)->Name("random_free/malloc");

void random_free_header(benchmark::State &st)
{
    ca_header_allocator h;
    ca_header_init(&h, ca_libc_allocator());
    std::vector<void *> p(kRandomN);
    for (auto _ : st) {
        for (size_t i = 0; i < kRandomN; i++)
            p[i] = ca_header_malloc(&h, kPlan.sizes[i]);
        benchmark::ClobberMemory();
        for (size_t i = 0; i < kRandomN; i++)
            ca_header_free(&h, p[kPlan.order[i]]);
    }
    st.SetItemsProcessed(st.iterations() * kRandomN * 2);
}
BENCHMARK(random_free_header)->Name("random_free/ctxalloc-header-adaptor");

// Ownership-map lookups over a registered 1 GiB range (no memory touched).
void owner_lookup(benchmark::State &st)
{
    static int owner;
    size_t size = (size_t)1 << 30;
    void *r = mmap(nullptr, size + CA_OWNER_GRANULE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    char *base = (char *)ca_ptr_align_up(r, CA_OWNER_GRANULE);
    if (ca_owner_register(base, size, &owner) != 0) {
        st.SkipWithError("register failed");
        return;
    }
    ca_bench::rng g{7};
    std::vector<char *> addrs;
    for (int i = 0; i < 4096; i++)
        addrs.push_back(base + g.below(size));
    size_t i = 0;
    for (auto _ : st) {
        benchmark::DoNotOptimize(ca_owner_lookup(addrs[i]));
        i = (i + 1) & 4095;
    }
    st.SetItemsProcessed(st.iterations());
    ca_owner_unregister(base, size, &owner);
    munmap(r, size + CA_OWNER_GRANULE);
}
BENCHMARK(owner_lookup)->Name("owner_lookup/ctxalloc-owner-map");

} // namespace

BENCHMARK_MAIN();
