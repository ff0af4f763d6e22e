/* SPDX-License-Identifier: MIT */
/*
 * libbitset through its public header only: creation and its errors, the
 * allocator contract over a source and over a caller buffer, bad input,
 * the ca_allocator view (owns, usable size, reset, stats), the locked adaptor.
 */
#include <criterion/criterion.h>
#include <ctxalloc/bitset.h>
#include <stdlib.h>

#include "bitset_test.h"
#include "ca_contract.h"
#include "ca_test.h"

static int create(ca_bitset **b, size_t bs, size_t region, ca_source *src, void *buf)
{
    ca_bitset_options o;
    ca_bitset_options_init(&o);
    o.block_size = bs;
    o.region_size = region;
    o.source = src;
    o.buffer = buf;
    return ca_bitset_create(b, &o);
}

Test(api, create_errors)
{
    test_source src;
    test_source_init(&src);
    ca_bitset *b = NULL;
    static _Alignas(4096) unsigned char buf[1 << 16];
    cr_assert_eq(ca_bitset_create(NULL, NULL), EINVAL);
    cr_assert_eq(create(&b, 24, 4096, &src.base, NULL), EINVAL, "block size not a power of two");
    cr_assert_eq(create(&b, 8, 4096, &src.base, NULL), EINVAL, "block size below the minimum");
    cr_assert_eq(create(&b, (size_t)1 << 17, (size_t)1 << 20, &src.base, NULL), EINVAL, "block size too big");
    cr_assert_eq(create(&b, 64, 0, NULL, buf), EINVAL, "a buffer without its size");
    cr_assert_eq(create(&b, 64, 4096 + 32, &src.base, NULL), EINVAL, "region not a multiple of the block");
    cr_assert_eq(create(&b, 64, 4096, &src.base, buf), EINVAL, "both source and buffer");
    cr_assert_eq(create(&b, 64, 4096, NULL, buf + 16), EINVAL, "buffer not aligned to the block size");
    cr_assert_eq(create(&b, 64, SIZE_MAX & ~(size_t)63, &src.base, NULL), EINVAL, "too many blocks");
    cr_assert_null(b);
    cr_assert_eq(src.live, 0);

    /* The source failing: nothing leaks. */
    src.fail_after = 1;
    cr_assert_eq(create(&b, 64, 4096, &src.base, NULL), ENOMEM);
    src.fail_after = 2;
    cr_assert_eq(create(&b, 64, 4096, &src.base, NULL), ENOMEM);
    cr_assert_eq(src.live, 0);

    cr_assert_eq(ca_bitset_meta_size(4096, 24), 0);
    cr_assert_eq(ca_bitset_meta_size(4096 + 32, 64), 0);
    cr_assert_gt(ca_bitset_meta_size(4096, 64), 0);
}

Test(api, contract_over_source)
{
    test_source src;
    test_source_init(&src);
    ca_bitset *b = test_bitset_new(&src, (size_t)64 << 20, 64);
    cr_assert_not_null(b);
    ca_contract_check(ca_bitset_allocator(b), 0);
    cr_assert_null(ca_bitset_check(b));
    ca_bitset_destroy(b);
    cr_assert_eq(src.live, 0, "destroy released everything");
    cr_assert_eq(src.bytes, 0);
}

Test(api, contract_over_buffer_with_meta)
{
    size_t region = (size_t)32 << 20;
    void *buf = aligned_alloc(4096, region);
    size_t msz = ca_bitset_meta_size(region, 4096);
    void *meta = aligned_alloc(64, ca_align_up(msz, 64));
    ca_bitset_options o;
    ca_bitset_options_init(&o);
    o.block_size = 4096;
    o.region_size = region;
    o.buffer = buf;
    o.meta = meta;
    o.meta_size = msz - 1;
    ca_bitset *b = NULL;
    cr_assert_eq(ca_bitset_create(&b, &o), EINVAL, "meta too small");
    o.meta_size = msz;
    cr_assert_eq(ca_bitset_create(&b, &o), 0);
    cr_assert_eq((void *)b, meta, "the object lives in the caller's meta");
    ca_contract_check(ca_bitset_allocator(b), 0);
    ca_bitset_destroy(b);
    free(meta);
    free(buf);
}

Test(api, contract_over_buffer_mmap_meta)
{
    size_t region = (size_t)64 << 20;
    void *buf = aligned_alloc(16, region);
    ca_bitset *b = NULL;
    cr_assert_eq(create(&b, 16, region, NULL, buf), 0);
    ca_contract_check(ca_bitset_allocator(b), 0);
    ca_bitset_destroy(b);
    free(buf);
}

Test(api, bad_input)
{
    test_source src;
    test_source_init(&src);
    ca_bitset *b = test_bitset_new(&src, 1 << 20, 256);
    errno = 0;
    cr_assert_null(ca_bitset_alloc(b, 10, 3, NULL));
    cr_assert_eq(errno, EINVAL, "alignment not a power of two");
    errno = 0;
    cr_assert_null(ca_bitset_alloc(b, (1 << 20) + 1, 16, NULL));
    cr_assert_eq(errno, ENOMEM, "larger than the region");
    errno = 0;
    cr_assert_null(ca_bitset_alloc(b, SIZE_MAX - 100, 16, NULL));
    cr_assert_eq(errno, ENOMEM, "size -> block count overflows");
    errno = 0;
    cr_assert_null(ca_bitset_alloc(b, 256, (size_t)1 << 62, NULL));
    cr_assert_eq(errno, ENOMEM, "alignment beyond the region");

    size_t u = 0;
    void *z = ca_bitset_alloc(b, 0, 16, &u);
    void *z2 = ca_bitset_alloc(b, 0, 16, NULL);
    cr_assert(z && z2 && z != z2, "size 0 gives unique pointers");
    cr_assert_eq(u, 256);
    ca_bitset_free(b, z, 0);
    ca_bitset_free(b, z2, 0);
    ca_bitset_free(b, NULL, 0);
    ca_bitset_free_unsized(b, NULL);
    cr_assert_eq(ca_bitset_usable_size(b, NULL), 0);

    ca_stats st;
    ca_bitset_stats(b, &st);
    cr_assert_eq(st.failures, 4);
    ca_bitset_destroy(b);
}

Test(api, allocator_view)
{
    test_source src;
    test_source_init(&src);
    ca_bitset *b = test_bitset_new(&src, 1 << 20, 128);
    ca_allocator *a = ca_bitset_allocator(b);
    cr_assert_str_eq(ca_allocator_name(a), "bitset");
    cr_assert(ca_allocator_caps(a) & CA_CAP_UNSIZED);
    cr_assert_not(ca_allocator_caps(a) & CA_CAP_THREAD_SAFE);
    cr_assert_eq(ca_bitset_block_size(b), 128);
    cr_assert_eq(ca_bitset_nblocks(b), (1 << 20) / 128);

    void *p = ca_alloc(a, 1000, 16);
    cr_assert(ca_owns(a, p));
    cr_assert(ca_owns(a, (char *)ca_bitset_base(b) + (1 << 20) - 1));
    cr_assert_not(ca_owns(a, (char *)ca_bitset_base(b) + (1 << 20)));
    cr_assert_not(ca_owns(a, &src));
    cr_assert_not(ca_bitset_owns(b, NULL));
    cr_assert_eq(ca_usable_size(a, p), 1024);
    ca_free_unsized(a, p);

    for (int i = 0; i < 10; i++)
        cr_assert_not_null(ca_alloc(a, 300, 16));
    ca_stats st;
    cr_assert_eq(ca_stats_get(a, &st), 0);
    uint64_t v = 0;
    cr_assert(ca_stats_get_counter(&st, "blocks_in_use", &v));
    cr_assert_eq(v, 30);
    cr_assert_eq(st.bytes_in_use, 30 * 128);
    cr_assert(ca_stats_get_counter(&st, "largest_free_run", &v));
    cr_assert_eq(v, 8192 - 30);
    cr_assert_eq(ca_reset(a), 0);
    ca_stats_get(a, &st);
    cr_assert_eq(st.bytes_in_use, 0);
    cr_assert(ca_stats_get_counter(&st, "largest_free_run", &v));
    cr_assert_eq(v, 8192);
    cr_assert_null(ca_bitset_check(b));
    ca_bitset_destroy(b);
}

Test(api, locked_adaptor)
{
    test_source src;
    test_source_init(&src);
    ca_bitset *b = test_bitset_new(&src, (size_t)32 << 20, 64);
    ca_locked_allocator l;
    cr_assert_eq(ca_locked_init(&l, ca_bitset_allocator(b), CA_LOCK_MUTEX), 0);
    cr_assert(ca_allocator_caps(&l.base) & CA_CAP_THREAD_SAFE);
    ca_contract_check(&l.base, 0);
    ca_locked_destroy(&l);
    ca_bitset_destroy(b);
}

/* The statistics report every counter of CA_BITSET_COUNTERS, and only those. */
Test(api, stats_counters_listed)
{
    static const char *const names[] = CA_STATS_NAMES(CA_BITSET_COUNTERS);
    test_source src;
    test_source_init(&src);
    ca_bitset *b = test_bitset_new(&src, (size_t)1 << 20, 128);
    cr_assert_not_null(b);
    void *p = ca_bitset_alloc(b, 300, 16, NULL);
    cr_assert_not_null(p);
    ca_stats st;
    cr_assert_eq(ca_bitset_stats(b, &st), 0);
    const char *d = ca_test_counters_differ(&st, names, sizeof names / sizeof *names);
    cr_assert_null(d, "bitset stats: %s", d);
    ca_bitset_destroy(b);
}
