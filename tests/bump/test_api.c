/* SPDX-License-Identifier: MIT */
/* Every bump flavour through the public header only: the allocator contract,
 * the ops-table flags, stats, and the placing helpers. */
#include <criterion/criterion.h>
#include <ctxalloc/bump.h>

#include "bump_test.h"
#include "ca_contract.h"
#include "ca_test.h"

Test(api, contract_source)
{
    test_source ts;
    test_source_init(&ts);
    ca_bump b;
    cr_assert_eq(ca_bump_init(&b, &ts.base, NULL), 0);
    ca_contract_check(&b.base, 0);
    cr_assert_null(ca_bump_check(&b));
    ca_bump_destroy(&b);
    cr_assert_eq(ts.live, 0, "chunks leaked: %ld", ts.live);
}

Test(api, contract_allocator)
{
    ca_bump b;
    cr_assert_eq(ca_bump_init_allocator(&b, ca_libc_allocator(), NULL), 0);
    ca_contract_check(&b.base, 0);
    ca_bump_destroy(&b);
}

Test(api, contract_fixed)
{
    static char buf[16 << 20];
    ca_bump b;
    cr_assert_eq(ca_bump_init_fixed(&b, buf, sizeof buf), 0);
    ca_contract_check(&b.base, 0);
    cr_assert_null(ca_bump_check(&b));
    ca_bump_destroy(&b);
}

Test(api, contract_fixed_source)
{
    test_source ts;
    test_source_init(&ts);
    ca_bump b;
    cr_assert_eq(ca_bump_init_fixed_source(&b, &ts.base, 16 << 20), 0);
    ca_contract_check(&b.base, 0);
    ca_bump_destroy(&b);
    cr_assert_eq(ts.live, 0);
}

Test(api, contract_shared)
{
    test_source ts;
    test_source_init(&ts);
    ca_bump_shared s;
    cr_assert_eq(ca_bump_shared_init(&s, &ts.base, NULL), 0);
    cr_assert(ca_allocator_caps(&s.base) & CA_CAP_THREAD_SAFE);
    ca_contract_check(&s.base, 0);
    cr_assert_null(ca_bump_shared_check(&s));
    ca_bump_shared_destroy(&s);
    cr_assert_eq(ts.live, 0);
}

Test(api, contract_local_from_shared)
{
    ca_bump_shared s;
    cr_assert_eq(ca_bump_shared_init_allocator(&s, ca_libc_allocator(), NULL), 0);
    ca_bump b;
    cr_assert_eq(ca_bump_init_local(&b, &s, NULL), 0);
    ca_contract_check(&b.base, 0);
    cr_assert_null(ca_bump_check(&b));
    ca_bump_destroy(&b);
    cr_assert_null(ca_bump_shared_check(&s));
    ca_bump_shared_destroy(&s);
}

Test(api, contract_from_cache)
{
    test_source ts;
    test_source_init(&ts);
    ca_bump_cache c;
    cr_assert_eq(ca_bump_cache_init(&c, &ts.base, NULL, 2), 0);
    ca_bump b;
    cr_assert_eq(ca_bump_cache_take(&c, &b), 0);
    ca_contract_check(&b.base, 0);
    ca_bump_cache_put(&c, &b);
    cr_assert_null(ca_bump_cache_check(&c));
    ca_bump_cache_destroy(&c);
    cr_assert_eq(ts.live, 0);
}

Test(api, caps_reset_stats)
{
    ca_bump b;
    ca_bump_init_allocator(&b, ca_libc_allocator(), NULL);
    cr_assert_str_eq(ca_allocator_name(&b.base), "bump");
    cr_assert(ca_allocator_caps(&b.base) & CA_CAP_FREE_NOOP);
    cr_assert_not(ca_allocator_caps(&b.base) & CA_CAP_THREAD_SAFE);
    void *p = ca_alloc(&b.base, 100, 8);
    cr_assert(ca_owns(&b.base, p));
    int x;
    cr_assert_not(ca_owns(&b.base, &x));
    ca_stats st;
    cr_assert_eq(ca_stats_get(&b.base, &st), 0);
    cr_assert_str_eq(st.name, "bump");
    cr_assert_eq(st.bytes_in_use, 100);
    cr_assert_eq(st.allocs, 1);
    cr_assert_geq(st.bytes_reserved, 4096);
    cr_assert_eq(ca_reset(&b.base), 0);
    cr_assert_eq(ca_stats_get(&b.base, &st), 0);
    cr_assert_eq(st.bytes_in_use, 0);
    uint64_t v;
    cr_assert(ca_stats_get_counter(&st, "resets", &v) && v == 1);
    cr_assert(ca_stats_get_counter(&st, "wasted_tail", &v));
    cr_assert(ca_stats_get_counter(&st, "chunk_bytes", &v) && v >= 4096);
    ca_bump_destroy(&b);
}

Test(api, placing_values)
{
    ca_bump b;
    ca_bump_init_allocator(&b, ca_libc_allocator(), NULL);
    char *s = ca_bump_strdup(&b, "hello");
    cr_assert_str_eq(s, "hello");
    char *t = ca_bump_strndup(&b, "hello world", 5);
    cr_assert_str_eq(t, "hello");
    cr_assert_str_eq(ca_bump_strndup(&b, "ab", 10), "ab");
    int v[4] = {1, 2, 3, 4};
    int *d = (int *)ca_bump_memdup(&b, v, sizeof v);
    cr_assert(d != v && memcmp(d, v, sizeof v) == 0);
    cr_assert(ca_is_aligned((uintptr_t)d, 16));
    typedef struct point {
        double x, y;
        long id;
    } point;
    point *pt = CA_BUMP_NEW(&b, point);
    cr_assert(pt && pt->x == 0 && pt->id == 0 && ca_is_aligned((uintptr_t)pt, __alignof__(point)));
    long *arr = CA_BUMP_NEW_ARRAY(&b, long, 100);
    for (int i = 0; i < 100; i++)
        cr_assert_eq(arr[i], 0);
    errno = 0;
    cr_assert_null(CA_BUMP_NEW_ARRAY(&b, long, SIZE_MAX / 4));
    cr_assert_eq(errno, ENOMEM);
    ca_bump_destroy(&b);
}

/* Each kind's statistics report every counter of its list, and only those:
 * CA_BUMP_COUNTERS (a bump, also one taken from a cache),
 * CA_BUMP_SHARED_COUNTERS, CA_BUMP_CACHE_COUNTERS. */
Test(api, stats_counters_listed)
{
    static const char *const local[] = CA_STATS_NAMES(CA_BUMP_COUNTERS);
    static const char *const shared[] = CA_STATS_NAMES(CA_BUMP_SHARED_COUNTERS);
    static const char *const cache[] = CA_STATS_NAMES(CA_BUMP_CACHE_COUNTERS);
    ca_stats st;
    const char *d;

    ca_bump b;
    ca_bump_init_allocator(&b, ca_libc_allocator(), NULL);
    cr_assert_not_null(ca_alloc(&b.base, 100, 8));
    cr_assert_eq(ca_bump_stats(&b, &st), 0);
    d = ca_test_counters_differ(&st, local, sizeof local / sizeof *local);
    cr_assert_null(d, "bump stats: %s", d);
    ca_bump_destroy(&b);

    ca_bump_shared s;
    cr_assert_eq(ca_bump_shared_init_allocator(&s, ca_libc_allocator(), NULL), 0);
    cr_assert_not_null(ca_alloc(&s.base, 100, 8));
    cr_assert_eq(ca_bump_shared_stats(&s, &st), 0);
    d = ca_test_counters_differ(&st, shared, sizeof shared / sizeof *shared);
    cr_assert_null(d, "shared stats: %s", d);
    ca_bump_shared_destroy(&s);

    test_source ts;
    test_source_init(&ts);
    ca_bump_cache c;
    cr_assert_eq(ca_bump_cache_init(&c, &ts.base, NULL, 2), 0);
    cr_assert_eq(ca_bump_cache_take(&c, &b), 0);
    cr_assert_eq(ca_stats_get(&b.base, &st), 0);
    d = ca_test_counters_differ(&st, local, sizeof local / sizeof *local);
    cr_assert_null(d, "bump-from-cache stats: %s", d);
    ca_bump_cache_put(&c, &b);
    cr_assert_eq(ca_bump_cache_stats(&c, &st), 0);
    d = ca_test_counters_differ(&st, cache, sizeof cache / sizeof *cache);
    cr_assert_null(d, "cache stats: %s", d);
    ca_bump_cache_destroy(&c);
}
