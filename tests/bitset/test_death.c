/* SPDX-License-Identifier: MIT */
/*
 * Bad frees abort at checks >= on with one line naming the block index:
 * double free, a pointer inside a run, inside a block, outside the region,
 * a size that does not match the run. Outside the region aborts at every
 * level (the maps would be written out of bounds). Built with the same
 * CA_CHECKS as the library (ca_build_args); the checks=on cases are skipped
 * in a checks=off build.
 */
#include <criterion/criterion.h>

#include "bitset_test.h"
#include "ca_death.h"

static ca_bitset *b;
static unsigned char *p; /* a live run of 3 blocks at block 5 */
static test_source src;

static void setup(void)
{
    test_source_init(&src);
    b = test_bitset_new(&src, 1 << 20, 64);
    for (int i = 0; i < 5; i++)
        ca_bitset_alloc(b, 64, 16, NULL);
    p = ca_bitset_alloc(b, 3 * 64, 16, NULL);
}

TestSuite(death, .init = setup);

static void double_free_sized(void *arg)
{
    ca_bitset_free(b, p, 3 * 64);
    ca_bitset_free(b, p, 3 * 64);
}
static void double_free_unsized(void *arg)
{
    ca_bitset_free_unsized(b, p);
    ca_bitset_free_unsized(b, p);
}
static void inside_run(void *arg) { ca_bitset_free_unsized(b, p + 64); }
static void inside_block(void *arg) { ca_bitset_free(b, p + 8, 64); }
static void outside(void *arg) { ca_bitset_free(b, (char *)ca_bitset_base(b) + (1 << 20), 64); }
static void wrong_size(void *arg) { ca_bitset_free(b, p, 64); }
static void usable_of_free(void *arg) { ca_bitset_usable_size(b, (char *)ca_bitset_base(b) + 64 * 100); }
static void through_ops(void *arg)
{
    ca_allocator *a = ca_bitset_allocator(b);
    ca_free(a, p, 3 * 64, 16);
    ca_free(a, p, 3 * 64, 16);
}

static void expect(void (*fn)(void *), const char *what)
{
    ca_death_result r = ca_death_run(fn, NULL);
    cr_assert(r.aborted, "no abort; output: %s", r.out);
    char want[256];
    snprintf(want, sizeof want, "ctxalloc: bitset: %s (address 0x", what);
    cr_assert(ca_death_has_line(&r, want), "want \"%s\", got: %s", want, r.out);
}

#define NEED_CHECKS()                                                                              \
    do {                                                                                           \
        if (CA_CHECKS < CA_CHECKS_ON)                                                              \
            cr_skip_test("checks=off build");                                                      \
    } while (0)

Test(death, double_free_names_block)
{
    NEED_CHECKS();
    expect(double_free_sized, "double free of block 5");
    expect(double_free_unsized, "double free of block 5");
    expect(through_ops, "double free of block 5");
}

Test(death, pointer_inside_run)
{
    NEED_CHECKS();
    expect(inside_run, "pointer inside a run, not at its start: block 6");
}

Test(death, pointer_inside_block)
{
    NEED_CHECKS();
    expect(inside_block, "pointer not at a block boundary, inside block 5");
}

Test(death, size_mismatch)
{
    NEED_CHECKS();
    expect(wrong_size, "free size does not match the run at block 5");
}

Test(death, usable_size_of_free_block)
{
    NEED_CHECKS();
    expect(usable_of_free, "usable size of free block 100");
}

Test(death, outside_region_always)
{
    expect(outside, "pointer outside the region");
}

static void correct_frees(void *arg)
{
    ca_bitset_free(b, p, 3 * 64);
    void *q = ca_bitset_alloc(b, 100, 16, NULL);
    ca_bitset_free_unsized(b, q);
}

Test(death, correct_use_does_not_abort)
{
    ca_death_result r = ca_death_run(correct_frees, NULL);
    cr_assert_not(r.aborted);
    cr_assert_str_eq(r.out, "");
}
