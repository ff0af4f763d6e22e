/* SPDX-License-Identifier: MIT */
/* Layout and overflow helpers at every edge. */
#include <criterion/criterion.h>
#include <ctxalloc/core.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

Test(layout, is_pow2)
{
    cr_assert_not(ca_is_pow2(0));
    cr_assert(ca_is_pow2(1));
    cr_assert(ca_is_pow2(2));
    cr_assert_not(ca_is_pow2(3));
    cr_assert(ca_is_pow2((size_t)1 << 63));
    cr_assert_not(ca_is_pow2(SIZE_MAX));
    cr_assert_not(ca_is_pow2(((size_t)1 << 63) + 1));
}

Test(layout, add_mul_overflow)
{
    size_t r;
    cr_assert_not(ca_add_overflows(SIZE_MAX - 1, 1, &r));
    cr_assert_eq(r, SIZE_MAX);
    cr_assert(ca_add_overflows(SIZE_MAX, 1, &r));
    cr_assert(ca_add_overflows(SIZE_MAX / 2 + 1, SIZE_MAX / 2 + 1, &r));
    cr_assert_not(ca_mul_overflows(SIZE_MAX, 1, &r));
    cr_assert_eq(r, SIZE_MAX);
    cr_assert_not(ca_mul_overflows(0, SIZE_MAX, &r));
    cr_assert_eq(r, 0);
    cr_assert(ca_mul_overflows(SIZE_MAX / 2 + 1, 2, &r));
    cr_assert(ca_mul_overflows((size_t)1 << 32, (size_t)1 << 32, &r));
    cr_assert_not(ca_mul_overflows((size_t)1 << 31, (size_t)1 << 32, &r));
    cr_assert_eq(r, (size_t)1 << 63);
}

Test(layout, align_up)
{
    size_t r;
    cr_assert_not(ca_align_up_overflows(0, 16, &r));
    cr_assert_eq(r, 0);
    cr_assert_not(ca_align_up_overflows(1, 16, &r));
    cr_assert_eq(r, 16);
    cr_assert_not(ca_align_up_overflows(16, 16, &r));
    cr_assert_eq(r, 16);
    cr_assert_not(ca_align_up_overflows(17, 1, &r));
    cr_assert_eq(r, 17);
    cr_assert(ca_align_up_overflows(SIZE_MAX, 16, &r));
    cr_assert(ca_align_up_overflows(SIZE_MAX - 14, 16, &r));
    cr_assert_not(ca_align_up_overflows(SIZE_MAX - 15, 16, &r));
    cr_assert_eq(r, SIZE_MAX - 15);
    cr_assert(ca_align_up_overflows(1, (size_t)1 << 63, &r) == false && r == (size_t)1 << 63);
    cr_assert(ca_align_up_overflows(((size_t)1 << 63) + 1, (size_t)1 << 63, &r));
    /* alignment larger than a page */
    cr_assert_not(ca_align_up_overflows(4097, 1 << 21, &r));
    cr_assert_eq(r, (size_t)1 << 21);
    cr_assert_eq(ca_align_down(4097, 4096), 4096);
    cr_assert(ca_is_aligned(8192, 4096));
    cr_assert_not(ca_is_aligned(8193, 4096));
}

Test(layout, layout_valid)
{
    cr_assert_eq(ca_layout_valid(0, 1), 0);
    cr_assert_eq(ca_layout_valid(SIZE_MAX, 16), 0);
    cr_assert_eq(ca_layout_valid(16, 0), EINVAL);
    cr_assert_eq(ca_layout_valid(16, 3), EINVAL);
    cr_assert_eq(ca_layout_valid(16, 48), EINVAL);
    cr_assert_eq(ca_layout_valid(16, (size_t)1 << 30), 0);
    cr_assert_eq(ca_layout_valid(16, SIZE_MAX), EINVAL);
}

Test(layout, log2_next_pow2)
{
    size_t r;
    cr_assert_eq(ca_log2(1), 0);
    cr_assert_eq(ca_log2(4096), 12);
    cr_assert_eq(ca_log2(4097), 12);
    cr_assert_eq(ca_log2(SIZE_MAX), 63);
    cr_assert_not(ca_next_pow2_overflows(0, &r));
    cr_assert_eq(r, 1);
    cr_assert_not(ca_next_pow2_overflows(5, &r));
    cr_assert_eq(r, 8);
    cr_assert_not(ca_next_pow2_overflows(8, &r));
    cr_assert_eq(r, 8);
    cr_assert_not(ca_next_pow2_overflows((size_t)1 << 63, &r));
    cr_assert_eq(r, (size_t)1 << 63);
    cr_assert(ca_next_pow2_overflows(((size_t)1 << 63) + 1, &r));
    cr_assert(ca_next_pow2_overflows(SIZE_MAX, &r));
}

Test(layout, padded_and_pages)
{
    size_t r;
    cr_assert_not(ca_padded_size_overflows(100, 64, 16, &r));
    cr_assert_eq(r, 148);
    cr_assert_not(ca_padded_size_overflows(100, 8, 16, &r));
    cr_assert_eq(r, 100);
    cr_assert(ca_padded_size_overflows(SIZE_MAX - 10, 64, 16, &r));
    size_t pg = ca_page_size();
    cr_assert(ca_is_pow2(pg) && pg >= CA_PAGE_SIZE_MIN);
    cr_assert_eq((long)pg, sysconf(_SC_PAGESIZE), "read from AT_PAGESZ: the same number as sysconf");
    cr_assert_not(ca_page_round_overflows(1, &r));
    cr_assert_eq(r, pg);
    cr_assert(ca_page_round_overflows(SIZE_MAX - 1, &r));
}

Test(layout, version_matches_the_build)
{
    /* One version: the header's macros, the library's ca_version() and the
     * project version in meson.build (the .pc files carry it). */
    cr_assert_str_eq(ca_version(), CA_VERSION_STRING);
    cr_assert_str_eq(CA_VERSION_STRING, CA_TEST_PROJECT_VERSION);
    char buf[32];
    snprintf(buf, sizeof buf, "%d.%d.%d", CA_VERSION_MAJOR, CA_VERSION_MINOR, CA_VERSION_PATCH);
    cr_assert_str_eq(buf, CA_VERSION_STRING);
    cr_assert_eq(CA_VERSION_NUMBER, CA_VERSION_MAJOR * 10000 + CA_VERSION_MINOR * 100 + CA_VERSION_PATCH);
}
