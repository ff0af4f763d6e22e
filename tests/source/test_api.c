/* SPDX-License-Identifier: MIT */
/* libsource through its public header only: every source's round trip,
 * bad input with the documented errno, statistics. */
#include <ctxalloc/source.h>

#include <criterion/criterion.h>
#include <stdlib.h>

#include "ca_test.h"

static size_t page;

static void setup(void) { page = ca_page_size(); }

TestSuite(source_api, .init = setup);

Test(source_api, mmap_round_trip)
{
    ca_source_mmap m;
    cr_assert_eq(ca_source_mmap_init(&m, NULL), 0);
    cr_assert_eq(ca_source_granule(&m.base), page);
    void *p = NULL;
    cr_assert_eq(ca_source_obtain(&m.base, 8 * page, page, &p), 0);
    ca_test_fill(p, 8 * page, 1);
    cr_assert(ca_test_verify(p, 8 * page, 1));
    cr_assert_eq(ca_source_release(&m.base, p, 8 * page), 0);
    ca_stats st;
    cr_assert_eq(ca_source_stats(&m.base, &st), 0);
    cr_assert_eq(st.allocs, 1);
    cr_assert_eq(st.frees, 1);
    cr_assert_eq(st.bytes_in_use, 0);
    cr_assert_eq(st.bytes_reserved, 0);
    cr_assert_null(ca_source_check(&m.base));
    ca_source_mmap_destroy(&m);
}

Test(source_api, mmap_bad_input)
{
    ca_source_mmap m;
    cr_assert_eq(ca_source_mmap_init(&m, NULL), 0);
    void *p = (void *)0x1;
    cr_assert_eq(ca_source_obtain(&m.base, 0, page, &p), EINVAL);
    cr_assert_eq(ca_source_obtain(&m.base, page + 1, page, &p), EINVAL);
    cr_assert_eq(ca_source_obtain(&m.base, page, 3 * page, &p), EINVAL);
    cr_assert_eq(ca_source_obtain(&m.base, SIZE_MAX & ~(page - 1), (size_t)1 << 40, &p), ENOMEM);
    cr_assert_eq(p, (void *)0x1);
    ca_stats st;
    ca_source_stats(&m.base, &st);
    cr_assert_eq(st.allocs, 0);
    ca_source_mmap_destroy(&m);
}

Test(source_api, global_is_shared)
{
    ca_source *g = ca_source_mmap_global();
    cr_assert_eq(g, ca_source_mmap_global());
    void *p;
    cr_assert_eq(ca_source_obtain(g, page, page, &p), 0);
    cr_assert_eq(ca_source_release(g, p, page), 0);
}
