/* SPDX-License-Identifier: MIT */
/* libbinned basics: every class boundary, alignment sweep, usable size,
 * size 0, overflow, resize in place, the large-tier threshold. */
#include <criterion/criterion.h>
#include <sys/auxv.h>
#include <time.h>

#include "binned_internal.h"
#include "ca_test.h"

static ca_binned *inst(void)
{
    ca_binned_options o;
    ca_binned_options_init(&o);
    o.class_range_log2 = 26;
    ca_binned *b = NULL;
    cr_assert_eq(ca_binned_create(&b, &o), 0);
    return b;
}

Test(binned_basic, class_table)
{
    size_t prev = 0;
    for (unsigned i = 0; i < CA_BINNED__NCLASSES; i++) {
        const ca_binned__class_info *ci = &ca_binned__classes[i];
        cr_assert_gt(ci->size, prev, "class %u not increasing", i);
        cr_assert_eq(ci->size % 8, 0);
        if (ci->size >= 128)
            cr_assert_eq(ci->size % 16, 0, "class %u: %u not a multiple of 16", i, ci->size);
        /* Internal waste: a request of prev + 1 bytes (with 8-byte alignment)
         * wastes less than 12.5% of the class above 64 B. */
        if (prev >= 64)
            cr_assert_lt((double)(ci->size - prev - 1) / ci->size, 0.125, "class %u waste", i);
        /* The rules written in classes.c. */
        unsigned shift = 16;
        while (((size_t)1 << shift) < 8 * (size_t)ci->size)
            shift++;
        cr_assert_eq(ci->block_shift, shift, "class %u block", i);
        cr_assert_eq(ci->nslots, ((size_t)1 << shift) / ci->size);
        size_t batch = 32768 / ci->size;
        batch = batch < 1 ? 1 : batch > 64 ? 64 : batch;
        cr_assert_eq(ci->batch, batch, "class %u batch", i);
        cr_assert_eq(ci->cache_max, 2 * batch);
        cr_assert_eq(ci->recip, (((uint64_t)1 << 40) + ci->size - 1) / ci->size);
        cr_assert_geq(ci->nslots, 8);
        cr_assert_leq(ci->nslots, 4096);
        cr_assert_geq((size_t)ci->nslots * ci->size, ((size_t)1 << ci->block_shift) * 7 / 8,
                      "class %u: block tail waste", i);
        cr_assert_eq(ca_binned__class_of(ci->size), i);
        cr_assert_eq(ca_binned__class_of(prev + 1), i);
        cr_assert_eq(ca_binned_class_size(i), ci->size);
        prev = ci->size;
    }
    cr_assert_eq(prev, CA_BINNED_SMALL_MAX);
    for (size_t n = 0; n <= CA_BINNED__LUT_MAX; n++) {
        cr_assert_eq(ca_binned__lut8[(n + 7) >> 3], ca_binned__class_of(n), "lut8 %zu", n);
        cr_assert_eq(ca_binned__lut16[(n + 15) >> 4], ca_binned__class_of(ca_align_up(n, 16)), "lut16 %zu", n);
        cr_assert_eq(ca_binned__lut_malloc[n], ca_binned__class_of(ca_align_up(n, 16)), "lut_malloc %zu", n);
    }
}

Test(binned_basic, every_class_boundary)
{
    ca_binned *b = inst();
    for (unsigned i = 0; i < CA_BINNED__NCLASSES; i++) {
        size_t s = ca_binned__classes[i].size;
        size_t sizes[3] = {s - 1, s, s + 1};
        for (int k = 0; k < 3; k++) {
            for (size_t al = 8; al <= 16; al <<= 1) {
                void *p = ca_binned_alloc(b, sizes[k], al);
                cr_assert_not_null(p, "size %zu", sizes[k]);
                size_t u = ca_binned_usable_size(b, p);
                cr_assert_geq(u, sizes[k]);
                cr_assert(ca_is_aligned((uintptr_t)p, al));
                /* checks=off: the class size; on: the request (a guard follows it). */
                if (CA_BINNED__GUARD && sizes[k] <= CA_BINNED_SMALL_MAX - CA_BINNED__GUARD)
                    cr_assert_eq(u, sizes[k]);
                else if (!CA_BINNED__GUARD && sizes[k] <= CA_BINNED_SMALL_MAX && al == 8)
                    cr_assert_eq(u, ca_binned__classes[ca_binned__class_of(sizes[k])].size);
                memset(p, 0x5a, u);
                ca_binned_free(b, p);
            }
        }
    }
    cr_assert_null(ca_binned_check(b));
    ca_binned_destroy(b);
}

Test(binned_basic, malloc_is_16_aligned)
{
    for (size_t n = 0; n < 3000; n++) {
        void *p = ca_binned_default_malloc(n);
        cr_assert(ca_is_aligned((uintptr_t)p, 16), "malloc(%zu) = %p", n, p);
        cr_assert_geq(ca_binned_default_usable_size(p), n);
        ca_binned_default_free(p);
    }
}

Test(binned_basic, alignment_sweep)
{
    ca_binned *b = inst();
    for (size_t al = 1; al <= ((size_t)1 << 21); al <<= 1) {
        size_t sizes[] = {0, 1, 7, 100, al - 1 ? al - 1 : 1, al, al + 1, 3 * al, 70000};
        for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
            void *p = ca_binned_alloc(b, sizes[k], al);
            cr_assert_not_null(p, "size %zu align %zu", sizes[k], al);
            cr_assert(ca_is_aligned((uintptr_t)p, al), "size %zu align %zu: %p", sizes[k], al, p);
            cr_assert_geq(ca_binned_usable_size(b, p), sizes[k]);
            memset(p, 1, sizes[k]);
            ca_binned_free(b, p);
        }
    }
    errno = 0;
    cr_assert_null(ca_binned_alloc(b, 8, 48));
    cr_assert_eq(errno, EINVAL);
    cr_assert_null(ca_binned_check(b));
    ca_binned_destroy(b);
}

Test(binned_basic, distinct_and_intact)
{
    ca_binned *b = inst();
    enum { N = 3000 };
    static void *p[N];
    static size_t sz[N];
    ca_rng r = {ca_test_seed()};
    for (int i = 0; i < N; i++) {
        sz[i] = (size_t)ca_rng_below(&r, i % 50 ? 2048 : 300000);
        p[i] = ca_binned_alloc(b, sz[i], 16);
        cr_assert_not_null(p[i]);
        ca_test_fill(p[i], sz[i], (uint64_t)i);
    }
    for (int i = 0; i < N; i++)
        cr_assert(ca_test_verify(p[i], sz[i], (uint64_t)i), "block %d overwritten", i);
    cr_assert_null(ca_binned_check(b));
    for (int i = 0; i < N; i += 2)
        ca_binned_free(b, p[i]);
    cr_assert_null(ca_binned_check(b));
    for (int i = 1; i < N; i += 2) {
        cr_assert(ca_test_verify(p[i], sz[i], (uint64_t)i));
        ca_binned_free(b, p[i]);
    }
    cr_assert_null(ca_binned_check(b));
    ca_binned_destroy(b);
}

Test(binned_basic, resize_in_place)
{
    ca_binned *b = inst();
    ca_allocator *a = ca_binned_allocator(b);
    void *p = ca_alloc(a, 100, 16); /* class 112 */
    size_t cap = 112 - CA_BINNED__GUARD; /* checks=on keeps a guard after the request */
    cr_assert_eq(ca_resize(a, p, 100, cap, 16, CA_RESIZE_IN_PLACE), p);
    errno = 0;
    cr_assert_null(ca_resize(a, p, cap, cap + 1, 16, CA_RESIZE_IN_PLACE));
    cr_assert_eq(errno, ENOMEM);
    cr_assert_eq(ca_resize(a, p, cap, 8, 16, CA_RESIZE_IN_PLACE), p);
    void *q = ca_resize(a, p, 8, 8, 16, 0); /* shrink far below: moves */
    cr_assert_neq(q, p);
    cr_assert_eq(ca_usable_size(a, q), CA_BINNED__GUARD ? 8 : 16);
    ca_free(a, q, 8, 16);
    ca_binned_destroy(b);
}

Test(binned_basic, overflow_and_huge)
{
    ca_binned *b = inst();
    size_t bad[] = {SIZE_MAX, SIZE_MAX - 15, SIZE_MAX / 2 + 1, ((size_t)1 << 62)};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        for (size_t al = 8; al <= 4096; al <<= 3) {
            errno = 0;
            cr_assert_null(ca_binned_alloc(b, bad[i], al));
            cr_assert_eq(errno, ENOMEM);
        }
    ca_binned_destroy(b);
}

Test(binned_basic, size_zero_unique)
{
    ca_binned *b = inst();
    void *p[64];
    for (int i = 0; i < 64; i++) {
        p[i] = ca_binned_alloc(b, 0, 1);
        for (int j = 0; j < i; j++)
            cr_assert_neq(p[i], p[j]);
    }
    for (int i = 0; i < 64; i++)
        ca_binned_free(b, p[i]);
    ca_binned_destroy(b);
}

/* The clock of the decay passes is the vDSO's clock_gettime, called without
 * libc's wrapper (whose page of libc a small program would fault in only
 * for it), and reads what clock_gettime reads. */
Test(binned_basic, clock_reads_the_vdso)
{
    if (getauxval(AT_SYSINFO_EHDR) && !ca_test_under_valgrind())
        cr_assert(ca_binned__clock_is_vdso(), "a vDSO is mapped: its clock_gettime is the one called");
    clockid_t ids[] = {CLOCK_MONOTONIC, CLOCK_MONOTONIC_COARSE};
    for (unsigned k = 0; k < 2; k++) {
        struct timespec a, t, z;
        clock_gettime(ids[k], &a);
        ca_binned__clock(ids[k], &t);
        clock_gettime(ids[k], &z);
        uint64_t na = (uint64_t)a.tv_sec * 1000000000u + (uint64_t)a.tv_nsec;
        uint64_t nt = (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
        uint64_t nz = (uint64_t)z.tv_sec * 1000000000u + (uint64_t)z.tv_nsec;
        cr_assert(na <= nt && nt <= nz, "clock %d: %llu <= %llu <= %llu", (int)ids[k], (unsigned long long)na,
                  (unsigned long long)nt, (unsigned long long)nz);
    }
}
