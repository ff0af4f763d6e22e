// SPDX-License-Identifier: MIT
// libbitset benchmarks: allocate and free runs of 1 and 8 blocks (64-byte
// blocks) in a half-full 1 GiB region, against
//   - linear-scan: the same free map without summary levels, searched word by
//     word from the start (the seed's approach; implemented here, with the
//     same in-word run test so that only the summary levels differ);
//   - malloc: the same batch of 64-byte / 512-byte allocations on the process
//     malloc, with a 64 MiB live set of the same size allocated first (the
//     layout does not apply to malloc: its front and scattered rows are the
//     same work, kept under both workload names for the comparison table).
//
// Each iteration allocates a batch of 32 runs, then frees them newest first;
// items are alloc+free pairs. Two half-full layouts:
//   front      the first half of the region is allocated, the second free
//              (first fit must get past 8 M allocated blocks);
//   scattered  a random half of the blocks is allocated (every word has free
//              blocks: summaries cannot skip anything).
// The 1 GiB region is reserved with mmap(MAP_NORESERVE) by a source defined
// here; the allocator never touches region memory, only its maps.
#include <benchmark/benchmark.h>
#include <ctxalloc/bitset.h>
#include <sys/mman.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "ca_bench.h"

namespace {

constexpr size_t kRegion = size_t(1) << 30;
constexpr size_t kBlock = 64;
constexpr size_t kBlocks = kRegion / kBlock;
constexpr size_t kBatch = 32;

// --- a source over anonymous mmap, reserved without swap accounting --------
int mmap_obtain(ca_source *s, size_t size, size_t align, void **out)
{
    if (ca_source_check_request(s, size, align))
        return EINVAL;
    size_t total = size + (align > s->granule ? align : 0);
    void *p = mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return ENOMEM;
    auto *b = static_cast<unsigned char *>(p);
    auto *a = static_cast<unsigned char *>(ca_ptr_align_up(p, align));
    if (a > b)
        munmap(b, size_t(a - b));
    if (a + size < b + total)
        munmap(a + size, size_t(b + total - (a + size)));
    *out = a;
    return 0;
}

int mmap_release(ca_source *, void *p, size_t size) { return munmap(p, size) ? errno : 0; }

const ca_source_ops kMmapOps = {"bench-mmap", CA_SOURCE_ZEROED, mmap_obtain, mmap_release,
                                nullptr,      nullptr,          nullptr,     nullptr, nullptr};

// --- the linear-scan reference: one free bit per block, no summaries --------
struct LinearScan {
    std::vector<uint64_t> words; // 1 = free; one extra zero word at the end
    size_t nblocks;

    explicit LinearScan(size_t n) : words((n + 63) / 64 + 1, ~uint64_t(0)), nblocks(n)
    {
        words.back() = 0;
        if (n % 64)
            words[words.size() - 2] = ~uint64_t(0) >> (64 - n % 64);
    }

    static uint64_t run_starts(unsigned __int128 x, size_t k)
    {
        size_t have = 1;
        while (have < k) {
            size_t sh = have < k - have ? have : k - have;
            x &= x >> sh;
            have += sh;
        }
        return uint64_t(x);
    }

    void mark(size_t i, size_t k, bool free_)
    {
        for (size_t j = i; j < i + k; j++) {
            uint64_t bit = uint64_t(1) << (j & 63);
            if (free_)
                words[j >> 6] |= bit;
            else
                words[j >> 6] &= ~bit;
        }
    }

    // First fit of k <= 64 free blocks: every word from the first.
    size_t alloc(size_t k)
    {
        size_t n = words.size() - 1;
        for (size_t w = 0; w < n; w++) {
            if (!words[w])
                continue;
            unsigned __int128 x = words[w] | (static_cast<unsigned __int128>(words[w + 1]) << 64);
            uint64_t m = run_starts(x, k);
            if (m) {
                size_t i = (w << 6) + size_t(__builtin_ctzll(m));
                mark(i, k, false);
                return i;
            }
        }
        return SIZE_MAX;
    }

    void free(size_t i, size_t k) { mark(i, k, true); }
};

// --- layouts ---------------------------------------------------------------
enum Layout { kFront, kScattered };

// Allocated blocks of the half-full layout, as a bitmap (1 = allocated).
std::vector<uint64_t> layout_bits(Layout l)
{
    std::vector<uint64_t> used(kBlocks / 64, 0);
    if (l == kFront) {
        for (size_t w = 0; w < used.size() / 2; w++)
            used[w] = ~uint64_t(0);
    } else {
        ca_bench::rng r{12345};
        for (auto &w : used) {
            w = r.next(); // each block allocated with probability 1/2

        }
    }
    return used;
}

struct Bitset {
    ca_source src{&kMmapOps, 0};
    ca_bitset *b = nullptr;

    explicit Bitset(Layout l)
    {
        src.granule = ca_page_size();
        ca_bitset_options o;
        ca_bitset_options_init(&o);
        o.block_size = kBlock;
        o.region_size = kRegion;
        o.source = &src;
        if (ca_bitset_create(&b, &o) != 0)
            std::abort();
        // Build the layout by allocating every allocated stretch as one run.
        std::vector<uint64_t> used = layout_bits(l);
        std::vector<std::pair<size_t, size_t>> runs;
        size_t i = 0;
        while (i < kBlocks) {
            if (!((used[i >> 6] >> (i & 63)) & 1)) {
                i++;
                continue;
            }
            size_t j = i;
            while (j < kBlocks && ((used[j >> 6] >> (j & 63)) & 1))
                j++;
            runs.emplace_back(i, j - i);
            i = j;
        }
        // First fit from an empty region places runs in order when each gap
        // is held by a temporary run, freed at the end.
        std::vector<void *> gaps;
        size_t pos = 0;
        for (auto &r : runs) {
            if (r.first > pos)
                gaps.push_back(ca_bitset_alloc(b, (r.first - pos) * kBlock, 16, nullptr));
            if (!ca_bitset_alloc(b, r.second * kBlock, 16, nullptr))
                std::abort();
            pos = r.first + r.second;
        }
        for (void *g : gaps)
            ca_bitset_free_unsized(b, g);
    }
    ~Bitset() { ca_bitset_destroy(b); }
};

void batch_bitset(benchmark::State &st, Layout l, size_t k)
{
    Bitset bs(l);
    void *ps[kBatch];
    for (auto _ : st) {
        for (size_t i = 0; i < kBatch; i++) {
            ps[i] = ca_bitset_alloc(bs.b, k * kBlock, 16, nullptr);
            benchmark::DoNotOptimize(ps[i]);
        }
        for (size_t i = kBatch; i-- > 0;)
            ca_bitset_free(bs.b, ps[i], k * kBlock);
        benchmark::ClobberMemory();
    }
    st.SetItemsProcessed(int64_t(st.iterations() * kBatch));
}

void batch_linear(benchmark::State &st, Layout l, size_t k)
{
    LinearScan ls(kBlocks);
    std::vector<uint64_t> used = layout_bits(l);
    for (size_t w = 0; w < used.size(); w++)
        ls.words[w] = ~used[w];
    size_t idx[kBatch];
    for (auto _ : st) {
        for (size_t i = 0; i < kBatch; i++) {
            idx[i] = ls.alloc(k);
            benchmark::DoNotOptimize(idx[i]);
        }
        for (size_t i = kBatch; i-- > 0;)
            ls.free(idx[i], k);
        benchmark::ClobberMemory();
    }
    st.SetItemsProcessed(int64_t(st.iterations() * kBatch));
}

void batch_malloc(benchmark::State &st, size_t k)
{
    size_t size = k * kBlock;
    std::vector<void *> live((size_t(64) << 20) / size);
    for (auto &p : live)
        p = std::malloc(size);
    void *ps[kBatch];
    for (auto _ : st) {
        for (size_t i = 0; i < kBatch; i++) {
            ps[i] = std::malloc(size);
            benchmark::DoNotOptimize(ps[i]);
        }
        for (size_t i = kBatch; i-- > 0;)
            std::free(ps[i]);
        benchmark::ClobberMemory();
    }
    for (auto p : live)
        std::free(p);
    st.SetItemsProcessed(int64_t(st.iterations() * kBatch));
}

#define LAYOUT_ROWS(name, layout, k)                                                               \
    BENCHMARK_CAPTURE(batch_bitset, name##_b, layout, k)->Name(#name "/ctxalloc-bitset");          \
    BENCHMARK_CAPTURE(batch_linear, name##_l, layout, k)->Name(#name "/linear-scan");             \
    BENCHMARK_CAPTURE(batch_malloc, name##_m, k)->Name(#name "/malloc");

LAYOUT_ROWS(run1_front, kFront, 1)
LAYOUT_ROWS(run8_front, kFront, 8)
LAYOUT_ROWS(run1_scattered, kScattered, 1)
LAYOUT_ROWS(run8_scattered, kScattered, 8)

} // namespace

BENCHMARK_MAIN();
