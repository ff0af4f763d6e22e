/* SPDX-License-Identifier: MIT */
/*
 * The allocator source (core.h): ranges obtained and released through a
 * counting allocator, the alignment a range is asked for and freed with (a
 * function of its size), alignments honoured or refused with EINVAL, a
 * failing allocator giving ENOMEM with nothing held, refused releases,
 * the optional operations, statistics and the invariant walk.
 */
#include <criterion/criterion.h>
#include <ctxalloc/core.h>

#include "ca_counting.h"
#include "ca_test.h"

#define PAGE CA_OWNER_PAGE
#define G    CA_ALLOCATOR_SOURCE_GRANULE

static ca_counting_allocator cnt;
static ca_allocator_source src;

static void setup(void)
{
    ca_counting_init(&cnt);
    cr_assert_eq(ca_allocator_source_init(&src, &cnt.base), 0);
}

static void teardown(void) { ca_counting_drain(&cnt); }

TestSuite(allocator_source, .init = setup, .fini = teardown);

Test(allocator_source, init_and_shape)
{
    ca_allocator_source s;
    cr_assert_eq(ca_allocator_source_init(NULL, &cnt.base), EINVAL);
    cr_assert_eq(ca_allocator_source_init(&s, NULL), EINVAL);
    cr_assert_eq(ca_source_granule(&src.base), G);
    cr_assert_eq(G, 64);
    cr_assert_eq(src.base.ops->caps, 0u, "a single-thread allocator gives a single-thread source");
    cr_assert_eq(ca_allocator_source_init(&s, ca_libc_allocator()), 0);
    cr_assert_eq(s.base.ops->caps, CA_SOURCE_THREAD_SAFE, "thread safety follows the allocator's; never zeroed");
    cr_assert_eq(cnt.allocs, 0, "nothing is obtained at init");
}

/* Every range is one block of the allocator, asked for and freed with the
 * alignment its size gives: a page from a page on, the granule below. */
Test(allocator_source, ranges_are_allocator_blocks)
{
    static const size_t sizes[] = {64, 128, 192, 1024, 4032, 4096, 4160, 8192, 12288, (size_t)1 << 20};
    enum { N = sizeof sizes / sizeof *sizes };
    void *p[N];
    size_t total = 0;
    for (int i = 0; i < N; i++) {
        size_t want = sizes[i] >= PAGE ? PAGE : G;
        cr_assert_eq(ca_source_obtain(&src.base, sizes[i], G, &p[i]), 0, "size %zu", sizes[i]);
        cr_assert_eq(cnt.last_size, sizes[i]);
        cr_assert_eq(cnt.last_align, want, "size %zu asked with alignment %zu", sizes[i], cnt.last_align);
        cr_assert(ca_is_aligned((uintptr_t)p[i], want));
        memset(p[i], 0xa5, sizes[i]); /* usable, all of it */
        total += sizes[i];
    }
    cr_assert_eq(cnt.n, N);
    cr_assert_eq(cnt.live_bytes, total);
    ca_stats st;
    cr_assert_eq(ca_source_stats(&src.base, &st), 0);
    cr_assert_str_eq(st.name, "allocator-source");
    cr_assert_eq(st.bytes_in_use, total);
    cr_assert_eq(st.bytes_reserved, total);
    cr_assert_eq(st.bytes_committed, total);
    cr_assert_eq(st.allocs, N);
    cr_assert_eq(st.ncounters, 0, "no named counters");
    cr_assert_null(ca_source_check(&src.base));
    for (int i = N - 1; i >= 0; i--)
        cr_assert_eq(ca_source_release(&src.base, p[i], sizes[i]), 0);
    cr_assert_eq(cnt.mismatches, 0, "a range freed with another size or alignment than it was asked with");
    cr_assert_eq(cnt.n, 0, "every block back");
    cr_assert_eq(ca_source_stats(&src.base, &st), 0);
    cr_assert_eq(st.bytes_in_use, 0);
    cr_assert_eq(st.peak_in_use, total);
    cr_assert_eq(st.frees, N);
    cr_assert_eq(st.failures, 0);
    cr_assert_null(ca_source_check(&src.base));
}

/* Alignments up to the range's own are honoured; above it, EINVAL without
 * a call to the allocator; so are requests the source contract forbids. */
Test(allocator_source, alignments_honoured_or_refused)
{
    void *p;
    cr_assert_eq(ca_source_obtain(&src.base, 64, 16, &p), 0);
    cr_assert(ca_is_aligned((uintptr_t)p, G), "at least the granule alignment");
    cr_assert_eq(ca_source_release(&src.base, p, 64), 0);
    cr_assert_eq(ca_source_obtain(&src.base, 2 * PAGE, PAGE, &p), 0);
    cr_assert(ca_is_aligned((uintptr_t)p, PAGE));
    cr_assert_eq(ca_source_release(&src.base, p, 2 * PAGE), 0);
    long allocs = cnt.allocs;
    struct {
        size_t size, align;
    } bad[] = {
        {128, 128},       /* above the granule for a range below a page */
        {PAGE - G, PAGE}, /* likewise */
        {PAGE, 2 * PAGE}, /* above a page */
        {(size_t)1 << 20, (size_t)1 << 20},
        {0, 64},   /* size 0 */
        {100, 64}, /* not a granule multiple */
        {64, 3},   /* not a power of two */
        {64, 0},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        p = &cnt;
        cr_assert_eq(ca_source_obtain(&src.base, bad[i].size, bad[i].align, &p), EINVAL, "(%zu, %zu) accepted",
                     bad[i].size, bad[i].align);
        cr_assert_eq(p, (void *)&cnt, "*out written on failure");
    }
    cr_assert_eq(cnt.allocs, allocs, "the allocator was asked for a refused request");
    ca_stats st;
    ca_source_stats(&src.base, &st);
    cr_assert_eq(st.failures, sizeof bad / sizeof *bad);
    cr_assert_eq(st.bytes_in_use, 0);
    cr_assert_null(ca_source_check(&src.base));
}

/* A failing allocator: ENOMEM whatever errno it failed with, nothing held,
 * and the source works again once the allocator does. */
Test(allocator_source, failing_allocator_gives_enomem)
{
    void *p = NULL;
    int errnos[] = {ENOMEM, EINVAL, EPERM};
    for (size_t i = 0; i < sizeof errnos / sizeof *errnos; i++) {
        cnt.fail_after = 0;
        cnt.fail_errno = errnos[i];
        p = &cnt;
        cr_assert_eq(ca_source_obtain(&src.base, PAGE, PAGE, &p), ENOMEM, "allocator failing with %d", errnos[i]);
        cr_assert_eq(p, (void *)&cnt);
    }
    cr_assert_eq(cnt.refused, 3);
    cr_assert_eq(cnt.n, 0, "nothing held after a failure");
    ca_stats st;
    ca_source_stats(&src.base, &st);
    cr_assert_eq(st.failures, 3);
    cr_assert_eq(st.allocs, 0);
    cr_assert_eq(st.bytes_in_use, 0);
    cr_assert_null(ca_source_check(&src.base));
    /* The n-th allocation fails: the ranges before it stay and go back. */
    cnt.fail_after = 2;
    void *a, *b;
    cr_assert_eq(ca_source_obtain(&src.base, 128, 64, &a), 0);
    cr_assert_eq(ca_source_obtain(&src.base, PAGE, 64, &b), 0);
    cr_assert_eq(ca_source_obtain(&src.base, PAGE, 64, &p), ENOMEM);
    cnt.fail_after = -1;
    cr_assert_eq(ca_source_obtain(&src.base, PAGE, 64, &p), 0);
    cr_assert_eq(ca_source_release(&src.base, a, 128), 0);
    cr_assert_eq(ca_source_release(&src.base, b, PAGE), 0);
    cr_assert_eq(ca_source_release(&src.base, p, PAGE), 0);
    cr_assert_eq(cnt.n, 0);
    cr_assert_eq(cnt.mismatches, 0);
    cr_assert_null(ca_source_check(&src.base));
}

Test(allocator_source, bad_releases_free_nothing)
{
    void *p;
    cr_assert_eq(ca_source_obtain(&src.base, 2 * PAGE, PAGE, &p), 0);
    cr_assert_eq(ca_source_release(&src.base, NULL, PAGE), EINVAL);
    cr_assert_eq(ca_source_release(&src.base, p, 0), EINVAL);
    cr_assert_eq(ca_source_release(&src.base, p, 2 * PAGE + 8), EINVAL, "not a granule multiple");
    cr_assert_eq(ca_source_release(&src.base, (char *)p + G, PAGE), EINVAL, "not aligned as its size says");
    cr_assert_eq(cnt.n, 1, "nothing freed");
    cr_assert_eq(cnt.mismatches, 0, "the allocator was not called");
    ca_stats st;
    ca_source_stats(&src.base, &st);
    cr_assert_eq(st.failures, 4);
    cr_assert_eq(st.bytes_in_use, 2 * PAGE);
    cr_assert_eq(ca_source_release(&src.base, p, 2 * PAGE), 0);
    cr_assert_eq(cnt.n, 0);
}

Test(allocator_source, optional_operations)
{
    void *p = &cnt;
    cr_assert_eq(ca_source_reserve(&src.base, PAGE, PAGE, &p), ENOTSUP);
    cr_assert_eq(p, (void *)&cnt);
    cr_assert_eq(ca_source_obtain(&src.base, PAGE, PAGE, &p), 0);
    cr_assert_eq(ca_source_commit(&src.base, p, PAGE), 0, "memory is always committed");
    cr_assert_eq(ca_source_decommit(&src.base, p, PAGE), ENOTSUP);
    memset(p, 1, PAGE);
    cr_assert_eq(ca_source_release(&src.base, p, PAGE), 0);
    cr_assert_eq(cnt.n, 0);
}

/* The walk: the adaptor's counters, then the allocator's own verdict. */
static const char *verdict;
static const char *fake_check(ca_allocator *a)
{
    (void)a;
    return verdict;
}

Test(allocator_source, check_forwards_and_sees_counters)
{
    static ca_allocator_ops ops;
    ops = *cnt.base.ops;
    ops.check = fake_check;
    cnt.base.ops = &ops;
    verdict = NULL;
    cr_assert_null(ca_source_check(&src.base));
    verdict = "free list has a cycle";
    cr_assert_str_eq(ca_source_check(&src.base), verdict);
    verdict = NULL;
    void *p;
    cr_assert_eq(ca_source_obtain(&src.base, PAGE, PAGE, &p), 0);
    cr_assert_null(ca_source_check(&src.base));
    src.releases = src.obtains + 1;
    cr_assert_not_null(ca_source_check(&src.base), "more releases than obtains goes unnoticed");
    src.releases = src.obtains;
    cr_assert_not_null(ca_source_check(&src.base), "bytes in use with no range out goes unnoticed");
    src.releases = 0;
    src.peak = 0;
    cr_assert_not_null(ca_source_check(&src.base), "bytes in use above the peak goes unnoticed");
    src.peak = PAGE;
    cr_assert_null(ca_source_check(&src.base));
    cr_assert_eq(ca_source_release(&src.base, p, PAGE), 0);
}

/* Over the process malloc, from several sizes in a row, with writes. */
Test(allocator_source, over_libc)
{
    ca_allocator_source s;
    cr_assert_eq(ca_allocator_source_init(&s, ca_libc_allocator()), 0);
    void *p[64];
    size_t sz[64];
    ca_rng r = {ca_test_seed()};
    for (int i = 0; i < 64; i++) {
        sz[i] = G * (1 + ca_rng_below(&r, 300));
        cr_assert_eq(ca_source_obtain(&s.base, sz[i], G, &p[i]), 0);
        cr_assert(ca_is_aligned((uintptr_t)p[i], sz[i] >= PAGE ? PAGE : G));
        ca_test_fill(p[i], sz[i], (uint64_t)i);
    }
    for (int i = 0; i < 64; i++) {
        cr_assert(ca_test_verify(p[i], sz[i], (uint64_t)i), "range %d overlaps another", i);
        cr_assert_eq(ca_source_release(&s.base, p[i], sz[i]), 0);
    }
    ca_stats st;
    ca_source_stats(&s.base, &st);
    cr_assert_eq(st.bytes_in_use, 0);
    cr_assert_eq(st.allocs, 64);
    cr_assert_eq(st.frees, 64);
    cr_assert_null(ca_source_check(&s.base));
}
