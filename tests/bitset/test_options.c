/* SPDX-License-Identifier: MIT */
/* libbitset options: all-zero options (and NULL) are the documented
 * defaults, block size, region size and memory included; invalid values
 * create nothing. */
#include <criterion/criterion.h>
#include <ctxalloc/bitset.h>

#include "bitset_test.h"
#include "ca_test.h"

/* What a bitset made from zero options resolved to, and that it works. */
static void assert_defaults(ca_bitset *b)
{
    cr_assert_eq(ca_bitset_block_size(b), 64);
    cr_assert_eq(ca_bitset_nblocks(b), ((size_t)1 << 20) / 64);
    cr_assert(ca_is_aligned((uintptr_t)ca_bitset_base(b), CA_OWNER_PAGE), "own memory: whole pages");
    void *p = ca_bitset_alloc(b, 1000, 16, NULL);
    cr_assert_not_null(p);
    cr_assert(ca_bitset_owns(b, p));
    memset(p, 0x5a, 1000);
    cr_assert_eq(ca_bitset_usable_size(b, p), 1024);
    ca_bitset_free_unsized(b, p);
    ca_stats st;
    cr_assert_eq(ca_bitset_stats(b, &st), 0);
    cr_assert_geq(st.bytes_reserved, (uint64_t)1 << 20);
    cr_assert_null(ca_bitset_check(b));
}

Test(bitset_options, zero_null_and_init_are_the_defaults)
{
    ca_bitset_options z, i;
    memset(&z, 0, sizeof z);
    ca_bitset_options_init(&i);
    cr_assert_eq(memcmp(&z, &i, sizeof z), 0, "ca_bitset_options_init fills zeros: the defaults");
    const ca_bitset_options *each[] = {&z, NULL, &i};
    for (int k = 0; k < 3; k++) {
        ca_bitset *b = NULL;
        cr_assert_eq(ca_bitset_create(&b, each[k]), 0, "options %d", k);
        assert_defaults(b);
        ca_bitset_destroy(b);
    }
}

Test(bitset_options, zero_sizes_over_a_source)
{
    /* A source with the sizes left at 0: the default sizes from it. */
    test_source src;
    test_source_init(&src);
    ca_bitset_options o;
    ca_bitset_options_init(&o);
    o.source = &src.base;
    ca_bitset *b = NULL;
    cr_assert_eq(ca_bitset_create(&b, &o), 0);
    cr_assert_eq(ca_bitset_block_size(b), 64);
    cr_assert_eq(ca_bitset_nblocks(b), ((size_t)1 << 20) / 64);
    ca_bitset_destroy(b);
    cr_assert_eq(src.live, 0);
}

Test(bitset_options, invalid_values_create_nothing)
{
    static _Alignas(4096) unsigned char buf[1 << 16];
    ca_bitset_options o;
    ca_bitset *b = NULL;
    ca_bitset_options_init(&o);
    o.block_size = 24;
    cr_assert_eq(ca_bitset_create(&b, &o), EINVAL);
    ca_bitset_options_init(&o);
    o.region_size = 4096 + 32; /* not a multiple of the default block */
    cr_assert_eq(ca_bitset_create(&b, &o), EINVAL);
    ca_bitset_options_init(&o);
    o.buffer = buf; /* a buffer needs its size */
    cr_assert_eq(ca_bitset_create(&b, &o), EINVAL);
    ca_bitset_options_init(&o);
    o.meta = buf; /* meta without a buffer */
    o.meta_size = sizeof buf;
    cr_assert_eq(ca_bitset_create(&b, &o), EINVAL);
    cr_assert_null(b);
    cr_assert_eq(ca_bitset_create(NULL, NULL), EINVAL);
}

Test(bitset_options, own_memory_is_aligned_and_given_back)
{
    long maps = ca_test_count_maps();
    ca_bitset_options o;
    ca_bitset_options_init(&o);
    o.block_size = CA_BITSET_BLOCK_MAX; /* region left at 0: the default size */
    ca_bitset *b = NULL;
    cr_assert_eq(ca_bitset_create(&b, &o), 0);
    cr_assert(ca_is_aligned((uintptr_t)ca_bitset_base(b), CA_BITSET_BLOCK_MAX));
    cr_assert_eq(ca_bitset_nblocks(b), CA_BITSET_REGION_DEFAULT / CA_BITSET_BLOCK_MAX);
    void *p = ca_bitset_alloc(b, 100000, 16, NULL);
    cr_assert_not_null(p);
    memset(p, 1, 100000);
    void *base = ca_bitset_base(b);
    ca_bitset_destroy(b);
    cr_assert_not(ca_test_is_mapped(base, CA_BITSET_REGION_DEFAULT), "destroy unmapped the region");
    /* The line count also sees the metadata mapping; valgrind places and
     * merges the client's mappings its own way, so only the range check runs
     * under it. */
    if (maps >= 0 && !ca_test_under_valgrind())
        cr_assert_eq(ca_test_count_maps(), maps, "destroy unmapped the region and the metadata");
}
