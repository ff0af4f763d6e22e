/* SPDX-License-Identifier: MIT */
/*
 * The malloc family itself: the only global symbols of ctxalloc without the
 * ca_ prefix. This file is the whole of the override library
 * (libctxalloc-switch-override.a, linked with --whole-archive) and part of
 * the preload object (libctxalloc.so). Each function forwards to its
 * ca_switch_* counterpart (family.c), which documents the semantics.
 *
 * glibc's introspection calls report ctxalloc's statistics (the "total" of
 * ca_switch_stats_total), not glibc's empty arena:
 *   mallinfo2 / mallinfo  arena = bytes committed, uordblks = bytes in use,
 *                         fordblks = committed - in use (held, free),
 *                         hblkhd = bytes of the large tier in use (0 without
 *                         libbinned), usmblks = peak in use; the counts of
 *                         chunks (ordblks, smblks, hblks) and fsmblks,
 *                         keepcost are 0. mallinfo clamps to int.
 *   malloc_stats          glibc's layout on stderr: system bytes (committed)
 *                         and in-use bytes, then the large-tier figures.
 *   malloc_info           an XML document of the same figures in glibc's
 *                         elements (system = committed, aspace = reserved,
 *                         count = live blocks) plus an <inuse> element with
 *                         bytes in use, peak, allocations and frees; options
 *                         must be 0, else EINVAL.
 *   mallopt               no parameter applies (ctxalloc's tuning is its
 *                         environment variables): returns 0, glibc's "error".
 *   free_sized / free_aligned_sized (C23)  free; the size and alignment are
 *                         not needed to find the block.
 *
 * Concurrency: as ca_switch_*. C++ operator new / delete reach these through
 * libstdc++, which calls malloc and free.
 */
#include <ctxalloc/switch.h>

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define CA_EXPORT __attribute__((visibility("default")))

CA_EXPORT void *malloc(size_t size) { return ca_switch_malloc(size); }

CA_EXPORT void free(void *p) { ca_switch_free(p); }

CA_EXPORT void *calloc(size_t n, size_t size) { return ca_switch_calloc(n, size); }

CA_EXPORT void *realloc(void *p, size_t size) { return ca_switch_realloc(p, size); }

CA_EXPORT void *reallocarray(void *p, size_t n, size_t size) { return ca_switch_reallocarray(p, n, size); }

CA_EXPORT int posix_memalign(void **out, size_t align, size_t size)
{
    return ca_switch_posix_memalign(out, align, size);
}

CA_EXPORT void *aligned_alloc(size_t align, size_t size) { return ca_switch_aligned_alloc(align, size); }

CA_EXPORT void *memalign(size_t align, size_t size) { return ca_switch_memalign(align, size); }

CA_EXPORT void *valloc(size_t size) { return ca_switch_valloc(size); }

CA_EXPORT void *pvalloc(size_t size) { return ca_switch_pvalloc(size); }

CA_EXPORT size_t malloc_usable_size(void *p) { return ca_switch_usable_size(p); }

CA_EXPORT int malloc_trim(size_t pad) { return ca_switch_trim(pad); }

CA_EXPORT void free_sized(void *p, size_t size);
CA_EXPORT void free_aligned_sized(void *p, size_t align, size_t size);

CA_EXPORT void free_sized(void *p, size_t size)
{
    (void)size;
    ca_switch_free(p);
}

CA_EXPORT void free_aligned_sized(void *p, size_t align, size_t size)
{
    (void)align, (void)size;
    ca_switch_free(p);
}

static void totals(ca_stats *t, uint64_t *large)
{
    ca_switch_stats_total(t);
    if (!ca_stats_get_counter(t, "large_in_use", large))
        *large = 0;
}

CA_EXPORT struct mallinfo2 mallinfo2(void)
{
    ca_stats t;
    uint64_t large;
    totals(&t, &large);
    struct mallinfo2 m = {0};
    m.arena = t.bytes_committed;
    m.uordblks = t.bytes_in_use;
    m.fordblks = t.bytes_committed > t.bytes_in_use ? t.bytes_committed - t.bytes_in_use : 0;
    m.hblkhd = large;
    m.usmblks = t.peak_in_use;
    return m;
}

static int clamp_int(size_t v) { return v > (size_t)0x7fffffff ? 0x7fffffff : (int)v; }

CA_EXPORT struct mallinfo mallinfo(void)
{
    struct mallinfo2 m2 = mallinfo2();
    struct mallinfo m = {0};
    m.arena = clamp_int(m2.arena);
    m.uordblks = clamp_int(m2.uordblks);
    m.fordblks = clamp_int(m2.fordblks);
    m.hblkhd = clamp_int(m2.hblkhd);
    m.usmblks = clamp_int(m2.usmblks);
    return m;
}

CA_EXPORT void malloc_stats(void)
{
    ca_stats t;
    uint64_t large;
    totals(&t, &large);
    char buf[512];
    int n = snprintf(buf, sizeof buf,
                     "Arena 0:\nsystem bytes     = %10llu\nin use bytes     = %10llu\n"
                     "Total (incl. mmap):\nsystem bytes     = %10llu\nin use bytes     = %10llu\n"
                     "max mmap regions = %10d\nmax mmap bytes   = %10llu\n",
                     (unsigned long long)t.bytes_committed, (unsigned long long)t.bytes_in_use,
                     (unsigned long long)t.bytes_committed, (unsigned long long)t.bytes_in_use, 0,
                     (unsigned long long)large);
    if (n > 0)
        (void)!write(2, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

CA_EXPORT int malloc_info(int options, FILE *fp)
{
    if (options != 0 || !fp) {
        errno = EINVAL;
        return -1;
    }
    ca_stats t;
    uint64_t large;
    totals(&t, &large);
    unsigned long long committed = t.bytes_committed, in_use = t.bytes_in_use, reserved = t.bytes_reserved;
    unsigned long long held = committed > in_use ? committed - in_use : 0;
    int r = fprintf(fp,
                    "<malloc version=\"ctxalloc-1\">\n"
                    "<heap nr=\"0\">\n"
                    "<total type=\"rest\" count=\"%llu\" size=\"%llu\"/>\n"
                    "<system type=\"current\" size=\"%llu\"/>\n"
                    "<system type=\"max\" size=\"%llu\"/>\n"
                    "<aspace type=\"total\" size=\"%llu\"/>\n"
                    "</heap>\n"
                    "<total type=\"rest\" count=\"%llu\" size=\"%llu\"/>\n"
                    "<total type=\"mmap\" count=\"0\" size=\"%llu\"/>\n"
                    "<system type=\"current\" size=\"%llu\"/>\n"
                    "<system type=\"max\" size=\"%llu\"/>\n"
                    "<aspace type=\"total\" size=\"%llu\"/>\n"
                    "<inuse size=\"%llu\" peak=\"%llu\" allocs=\"%llu\" frees=\"%llu\"/>\n"
                    "</malloc>\n",
                    (unsigned long long)(t.allocs - t.frees), held, committed, committed, reserved,
                    (unsigned long long)(t.allocs - t.frees), held, (unsigned long long)large, committed,
                    committed, reserved, in_use, (unsigned long long)t.peak_in_use, (unsigned long long)t.allocs,
                    (unsigned long long)t.frees);
    return r < 0 ? -1 : 0;
}

CA_EXPORT int mallopt(int param, int value)
{
    (void)param, (void)value;
    return 0;
}
