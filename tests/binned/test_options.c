/* SPDX-License-Identifier: MIT */
/* libbinned options: all-zero options (and NULL) are the documented
 * defaults; the explicit spellings of what a zero field used to mean;
 * invalid values create nothing. */
#include <criterion/criterion.h>
#include <ctxalloc/binned.h>

#include "binned_internal.h"
#include "ca_test.h"

/* The class of 64-byte blocks and its recycler bound for `bytes`. */
static uint64_t rec_max_for(size_t bytes)
{
    unsigned c = ca_binned__class_of(64);
    size_t bundle = (size_t)ca_binned__classes[c].batch * ca_binned__classes[c].size;
    return bytes / bundle < 2 ? 2 : bytes / bundle;
}

static ca_binned *make(const ca_binned_options *o)
{
    ca_binned *b = NULL;
    cr_assert_eq(ca_binned_create(&b, o), 0);
    cr_assert_not_null(b);
    /* Classes are set up on first use: these tests read their budgets. */
    for (unsigned c = 0; c < CA_BINNED__NCLASSES; c++)
        ca_binned__class_ready(b, c);
    return b;
}

Test(binned_options, init_is_all_zero)
{
    ca_binned_options o, z;
    memset(&o, 0xa5, sizeof o);
    memset(&z, 0, sizeof z);
    ca_binned_options_init(&o);
    cr_assert_eq(memcmp(&o, &z, sizeof o), 0, "ca_binned_options_init fills zeros: the defaults");
}

Test(binned_options, zero_null_and_init_are_the_defaults)
{
    ca_binned_options z, i;
    memset(&z, 0, sizeof z);
    ca_binned_options_init(&i);
    const ca_binned_options *each[] = {&z, NULL, &i};
    unsigned c = ca_binned__class_of(64);
    for (int k = 0; k < 3; k++) {
        ca_binned *b = make(each[k]);
        cr_assert_eq(b->class_shift, 34, "options %d", k);
        cr_assert_eq(b->decay_ns, (uint64_t)1000 * 1000000u);
        cr_assert_eq(b->empty_keep, (size_t)1 << 20);
        cr_assert_eq(b->pressure_bytes, 0);
        cr_assert_eq(b->classes[c].rec_max, rec_max_for((size_t)256 << 10));
        cr_assert_eq(b->classes[c].keep, ((size_t)1 << 20) >> ca_binned__classes[c].block_shift);
        cr_assert(b->own_src_used);
        cr_assert_eq(b->flags, 0);
        void *p = ca_binned_alloc(b, 64, 16);
        cr_assert_not_null(p);
        ca_binned_free(b, p);
        cr_assert_null(ca_binned_check(b));
        ca_binned_destroy(b);
    }
}

/* ------------------------------------------------------------------------
 * What a zero used to mean, spelled out
 * ------------------------------------------------------------------------ */

static ca_binned_options small(void)
{
    ca_binned_options o;
    ca_binned_options_init(&o);
    o.class_range_log2 = 26;
    return o;
}

Test(binned_options, decay_shortest_and_never)
{
    ca_binned_options o = small();
    o.decay_ms = 1; /* what 0 used to give: the shortest decay */
    ca_binned *b = make(&o);
    cr_assert_eq(b->decay_ns, 1000000u);
    ca_binned_destroy(b);
    o.decay_ms = CA_BINNED_DECAY_NEVER;
    b = make(&o);
    cr_assert_eq(b->decay_ns, 0, "no decay by age");
    ca_binned_destroy(b);
    o.decay_ms = 0;
    b = make(&o);
    cr_assert_eq(b->decay_ns, (uint64_t)CA_BINNED_DECAY_MS_DEFAULT * 1000000u);
    ca_binned_destroy(b);
}

Test(binned_options, empty_keep_none)
{
    ca_binned_options o = small();
    o.empty_keep = CA_BINNED_EMPTY_KEEP_NONE;
    ca_binned *b = make(&o);
    cr_assert_eq(b->empty_keep, 0);
    for (unsigned c = 0; c < CA_BINNED__NCLASSES; c++)
        cr_assert_eq(b->classes[c].keep, 0, "class %u keeps no EMPTY block", c);
    ca_binned_destroy(b);
    o.empty_keep = (size_t)4 << 20;
    b = make(&o);
    cr_assert_eq(b->empty_keep, (size_t)4 << 20);
    ca_binned_destroy(b);
}

Test(binned_options, recycler_min)
{
    ca_binned_options o = small();
    o.recycler_bytes = CA_BINNED_RECYCLER_MIN;
    ca_binned *b = make(&o);
    for (unsigned c = 0; c < CA_BINNED__NCLASSES; c++)
        cr_assert_eq(b->classes[c].rec_max, 2, "class %u: two bundles", c);
    ca_binned_destroy(b);
    o.recycler_bytes = (size_t)1 << 20;
    b = make(&o);
    cr_assert_eq(b->classes[ca_binned__class_of(64)].rec_max, rec_max_for((size_t)1 << 20));
    ca_binned_destroy(b);
}

Test(binned_options, invalid_values_create_nothing)
{
    ca_binned_options o = small();
    ca_binned *b = NULL;
    o.class_range_log2 = 23;
    cr_assert_eq(ca_binned_create(&b, &o), EINVAL);
    o = small();
    o.huge = CA_SOURCE_HUGE_1G + 1;
    cr_assert_eq(ca_binned_create(&b, &o), EINVAL);
    o = small();
    o.flags = 0x80;
    cr_assert_eq(ca_binned_create(&b, &o), EINVAL);
    cr_assert_null(b);
}

/* ------------------------------------------------------------------------
 * CA_BINNED_LARGE_FROM_SOURCE: the large tier's regions from the given
 * source (a NUMA-bound source then covers both tiers)
 * ------------------------------------------------------------------------ */

Test(binned_options, large_from_source)
{
    for (int with = 0; with < 2; with++) {
        ca_source_mmap src;
        ca_source_mmap_options mo;
        memset(&mo, 0, sizeof mo);
        mo.flags = CA_SOURCE_MMAP_NORESERVE;
        mo.decommit = CA_SOURCE_DECOMMIT_DONTNEED;
        cr_assert_eq(ca_source_mmap_init(&src, &mo), 0);
        ca_binned_options o = small();
        o.source = &src.base;
        o.flags = with ? CA_BINNED_LARGE_FROM_SOURCE : 0;
        ca_binned *b = make(&o);
        cr_assert_eq(ca_binned_flags(b), o.flags);
        ca_stats before, after;
        cr_assert_eq(ca_source_stats(&src.base, &before), 0);
        char *p = (char *)ca_binned_alloc(b, (size_t)1 << 20, 16);
        cr_assert_not_null(p);
        memset(p, 1, (size_t)1 << 20);
        cr_assert_eq(ca_source_stats(&src.base, &after), 0);
        uint64_t grew = after.bytes_in_use - before.bytes_in_use;
        if (with)
            cr_assert_geq(grew, (uint64_t)1 << 20, "the large tier took %llu bytes from the source",
                          (unsigned long long)grew);
        else
            cr_assert_lt(grew, (uint64_t)1 << 20, "the large tier used the given source without the flag");
        cr_assert(ca_binned_owns(b, p));
        ca_binned_free(b, p);
        cr_assert_null(ca_binned_check(b));
        ca_binned_destroy(b);
        ca_source_mmap_destroy(&src);
    }
}

Test(binned_options, large_from_source_needs_a_source)
{
    ca_binned_options o = small();
    o.flags = CA_BINNED_LARGE_FROM_SOURCE;
    ca_binned *b = (ca_binned *)1;
    cr_assert_eq(ca_binned_create(&b, &o), EINVAL);
    cr_assert_eq(b, (ca_binned *)1, "nothing created");
    cr_assert_eq(ca_binned_flags(ca_binned_default()) & ~(CA_BINNED_BACKGROUND | CA_BINNED_STARTER), 0);
}
