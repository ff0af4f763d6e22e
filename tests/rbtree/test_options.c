/* SPDX-License-Identifier: MIT */
/* librbtree options: all-zero options (and NULL) are the documented
 * defaults (libc parent, CA_RBTREE_REGION_DEFAULT); invalid values
 * initialise nothing. */
#include <criterion/criterion.h>
#include <ctxalloc/rbtree.h>

#include "ca_test.h"
#include "rbtree_test.h"

Test(rbtree_options, init_is_all_zero)
{
    ca_rbtree_options o, z;
    memset(&o, 0xa5, sizeof o);
    memset(&z, 0, sizeof z);
    ca_rbtree_options_init(&o);
    cr_assert_eq(memcmp(&o, &z, sizeof o), 0, "ca_rbtree_options_init fills zeros: the defaults");
}

Test(rbtree_options, zero_null_and_init_are_the_defaults)
{
    ca_rbtree_options z, i;
    memset(&z, 0, sizeof z);
    ca_rbtree_options_init(&i);
    const ca_rbtree_options *each[] = {&z, NULL, &i};
    for (int k = 0; k < 3; k++) {
        ca_rbtree r;
        cr_assert_eq(ca_rbtree_init(&r, each[k]), 0, "options %d", k);
        cr_assert_eq(r.region_size, CA_RBTREE_REGION_DEFAULT);
        cr_assert_eq(r.source, &r.adaptor.base, "regions from the libc allocator, through the adaptor");
        cr_assert_eq(r.adaptor.inner, ca_libc_allocator());
        void *p = ca_rbtree_alloc(&r, 100, 16, NULL);
        cr_assert_not_null(p);
        ca_stats st;
        cr_assert_eq(ca_rbtree_stats(&r, &st), 0);
        cr_assert_eq(st.bytes_reserved, CA_RBTREE_REGION_DEFAULT, "one region of the default size");
        ca_rbtree_free_unsized(&r, p);
        cr_assert_null(ca_rbtree_check(&r));
        ca_rbtree_destroy(&r);
    }
}

Test(rbtree_options, invalid_values_initialise_nothing)
{
    rbt_test_source src;
    rbt_test_source_init(&src);
    ca_rbtree_options o;
    ca_rbtree_options_init(&o);
    o.source = &src.base;
    o.parent = ca_libc_allocator();
    ca_rbtree r;
    memset(&r, 0x5a, sizeof r);
    cr_assert_eq(ca_rbtree_init(&r, &o), EINVAL);
    cr_assert_eq(src.live, 0);
}
