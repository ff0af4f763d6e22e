// SPDX-License-Identifier: MIT
// libsource benchmarks, beside mmap/munmap called directly ("mmap-direct")
// and the process malloc ("malloc"):
//   obtain_release/<size>   obtain + release of 64 KiB, 2 MiB (memory not
//                           touched) and 1 GiB (reserve + release)
//   commit_decommit_page    commit, touch every page, decommit a 256 KiB
//                           range; items = pages, so time/item = per page
//   slot_pair               slot arena get + put of a 64-byte slot
// ctxalloc-file uses $TMPDIR or /tmp (a disk here), ctxalloc-file-shm /dev/shm.
#include <benchmark/benchmark.h>
#include <ctxalloc/source.h>
#include <sys/mman.h>

#include <cstdlib>
#include <cstring>

#include "ca_bench.h"

namespace {

constexpr size_t KiB = 1024, MiB = 1024 * KiB, GiB = 1024 * MiB;

enum Impl { DIRECT, MMAP, MMAP_THP, FILE_SRC, FILE_SHM, HEAP, BUFFER, MALLOC };

struct Sources {
    ca_source_mmap m, thp;
    ca_source_file f, fshm;
    ca_source_heap h;
    ca_source_buffer b;
    char *buf = nullptr;
    Sources()
    {
        ca_source_mmap_init(&m, nullptr);
        ca_source_mmap_options o;
        std::memset(&o, 0, sizeof o);
        o.huge = CA_SOURCE_HUGE_1G;
        ca_source_mmap_init(&thp, &o);
        ca_source_file_init(&f, nullptr);
        ca_source_file_options fo;
        std::memset(&fo, 0, sizeof fo);
        fo.dir = "/dev/shm";
        ca_source_file_init(&fshm, &fo);
        ca_source_heap_init(&h, nullptr);
        buf = static_cast<char *>(std::aligned_alloc(4096, 8 * MiB));
        ca_source_buffer_init(&b, buf, 8 * MiB, nullptr);
    }
    ca_source *get(Impl i)
    {
        switch (i) {
        case MMAP: return &m.base;
        case MMAP_THP: return &thp.base;
        case FILE_SRC: return &f.base;
        case FILE_SHM: return &fshm.base;
        case HEAP: return &h.base;
        case BUFFER: return &b.base;
        default: return nullptr;
        }
    }
};

Sources &sources()
{
    static Sources s;
    return s;
}

void obtain_release(benchmark::State &st, Impl impl, size_t size)
{
    ca_source *src = sources().get(impl);
    for (auto _ : st) {
        void *p = nullptr;
        if (impl == DIRECT) {
            p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            benchmark::DoNotOptimize(p);
            munmap(p, size);
        } else if (impl == MALLOC) {
            p = std::malloc(size);
            benchmark::DoNotOptimize(p);
            std::free(p);
        } else {
            if (ca_source_obtain(src, size, 4096, &p) != 0) {
                st.SkipWithError("obtain failed");
                break;
            }
            benchmark::DoNotOptimize(p);
            ca_source_release(src, p, size);
        }
        benchmark::ClobberMemory();
    }
    st.SetItemsProcessed(st.iterations());
}

// 1 GiB: address space only (reserve), as a large allocator would take it.
void reserve_release_1g(benchmark::State &st, Impl impl)
{
    ca_source *src = sources().get(impl);
    for (auto _ : st) {
        void *p = nullptr;
        if (impl == DIRECT) {
            p = mmap(nullptr, GiB, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
            benchmark::DoNotOptimize(p);
            munmap(p, GiB);
        } else {
            if (ca_source_reserve(src, GiB, 4096, &p) != 0) {
                st.SkipWithError("reserve failed");
                break;
            }
            benchmark::DoNotOptimize(p);
            ca_source_release(src, p, GiB);
        }
    }
    st.SetItemsProcessed(st.iterations());
}

void commit_decommit_page(benchmark::State &st, Impl impl, unsigned decommit)
{
    const size_t n = 256 * KiB, page = 4096;
    ca_source_mmap own;
    ca_source *src = sources().get(impl);
    if (impl == MMAP) {
        ca_source_mmap_options o;
        std::memset(&o, 0, sizeof o);
        o.decommit = decommit;
        ca_source_mmap_init(&own, &o);
        src = &own.base;
    }
    void *p = nullptr;
    if (impl == DIRECT)
        p = mmap(nullptr, n, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    else
        ca_source_reserve(src, n, page, &p);
    char *c = static_cast<char *>(p);
    for (auto _ : st) {
        if (impl == DIRECT)
            mprotect(p, n, PROT_READ | PROT_WRITE);
        else
            ca_source_commit(src, p, n);
        for (size_t off = 0; off < n; off += page)
            c[off] = 1;
        benchmark::ClobberMemory();
        if (impl == DIRECT)
            madvise(p, n, MADV_DONTNEED);
        else
            ca_source_decommit(src, p, n);
    }
    if (impl == DIRECT)
        munmap(p, n);
    else
        ca_source_release(src, p, n);
    if (impl == MMAP)
        ca_source_mmap_destroy(&own);
    st.SetItemsProcessed(st.iterations() * (n / page));
}

void slot_pair(benchmark::State &st, bool ours)
{
    ca_source_slots s;
    ca_source_slots_options o;
    std::memset(&o, 0, sizeof o);
    o.slot_size = 64;
    ca_source_slots_init(&s, ca_source_mmap_global(), &o);
    ca_source_slots_put(&s, ca_source_slots_get(&s));
    for (auto _ : st) {
        void *p = ours ? ca_source_slots_get(&s) : std::malloc(64);
        benchmark::DoNotOptimize(p);
        if (ours)
            ca_source_slots_put(&s, p);
        else
            std::free(p);
    }
    ca_source_slots_destroy(&s);
    st.SetItemsProcessed(st.iterations());
}

} // namespace

#define OR(sz, label)                                                                              \
    BENCHMARK_CAPTURE(obtain_release, label##_mmap_direct, DIRECT, sz)->Name("obtain_release_" #label "/mmap-direct"); \
    BENCHMARK_CAPTURE(obtain_release, label##_malloc, MALLOC, sz)->Name("obtain_release_" #label "/malloc");           \
    BENCHMARK_CAPTURE(obtain_release, label##_mmap, MMAP, sz)->Name("obtain_release_" #label "/ctxalloc-mmap");        \
    BENCHMARK_CAPTURE(obtain_release, label##_thp, MMAP_THP, sz)->Name("obtain_release_" #label "/ctxalloc-mmap-huge"); \
    BENCHMARK_CAPTURE(obtain_release, label##_file, FILE_SRC, sz)->Name("obtain_release_" #label "/ctxalloc-file");    \
    BENCHMARK_CAPTURE(obtain_release, label##_shm, FILE_SHM, sz)->Name("obtain_release_" #label "/ctxalloc-file-shm"); \
    BENCHMARK_CAPTURE(obtain_release, label##_heap, HEAP, sz)->Name("obtain_release_" #label "/ctxalloc-heap");        \
    BENCHMARK_CAPTURE(obtain_release, label##_buffer, BUFFER, sz)->Name("obtain_release_" #label "/ctxalloc-buffer")

OR(64 * KiB, 64k);
OR(2 * MiB, 2m);

BENCHMARK_CAPTURE(reserve_release_1g, direct, DIRECT)->Name("obtain_release_1g_reserved/mmap-direct");
BENCHMARK_CAPTURE(reserve_release_1g, mmap, MMAP)->Name("obtain_release_1g_reserved/ctxalloc-mmap");
BENCHMARK_CAPTURE(reserve_release_1g, huge, MMAP_THP)->Name("obtain_release_1g_reserved/ctxalloc-mmap-huge");
BENCHMARK_CAPTURE(reserve_release_1g, file, FILE_SRC)->Name("obtain_release_1g_reserved/ctxalloc-file");
// Sources without reserve: 1 GiB obtained (not touched); the buffer source
// cannot hold 1 GiB and has no row.
BENCHMARK_CAPTURE(obtain_release, 1g_heap, HEAP, GiB)->Name("obtain_release_1g/ctxalloc-heap");
BENCHMARK_CAPTURE(obtain_release, 1g_mmap, MMAP, GiB)->Name("obtain_release_1g/ctxalloc-mmap");
BENCHMARK_CAPTURE(obtain_release, 1g_direct, DIRECT, GiB)->Name("obtain_release_1g/mmap-direct");
BENCHMARK_CAPTURE(obtain_release, 1g_malloc, MALLOC, GiB)->Name("obtain_release_1g/malloc");

BENCHMARK_CAPTURE(commit_decommit_page, direct, DIRECT, 0u)->Name("commit_decommit_page/mmap-direct");
BENCHMARK_CAPTURE(commit_decommit_page, dontneed, MMAP, unsigned(CA_SOURCE_DECOMMIT_DONTNEED))
    ->Name("commit_decommit_page/ctxalloc-mmap-dontneed");
BENCHMARK_CAPTURE(commit_decommit_page, free, MMAP, unsigned(CA_SOURCE_DECOMMIT_FREE))
    ->Name("commit_decommit_page/ctxalloc-mmap-free");
BENCHMARK_CAPTURE(commit_decommit_page, file, FILE_SRC, 0u)->Name("commit_decommit_page/ctxalloc-file");
BENCHMARK_CAPTURE(commit_decommit_page, shm, FILE_SHM, 0u)->Name("commit_decommit_page/ctxalloc-file-shm");

BENCHMARK_CAPTURE(slot_pair, malloc, false)->Name("slot_pair/malloc");
BENCHMARK_CAPTURE(slot_pair, slots, true)->Name("slot_pair/ctxalloc-slots");

BENCHMARK_MAIN();
