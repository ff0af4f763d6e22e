/* SPDX-License-Identifier: MIT */
/* Every bump flavour through the public header only: the allocator contract,
 * the ops-table flags, stats, and the placing helpers. */
#include <criterion/criterion.h>
#include <ctxalloc/bump.h>

#include "bump_test.h"
#include "ca_contract.h"
#include "ca_counting.h"
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

Test(api, contract_allocator_source)
{
    ca_allocator_source as;
    cr_assert_eq(ca_allocator_source_init(&as, ca_libc_allocator()), 0);
    ca_bump b;
    cr_assert_eq(ca_bump_init(&b, &as.base, NULL), 0);
    ca_contract_check(&b.base, 0);
    ca_bump_destroy(&b);
    ca_stats st;
    cr_assert_eq(ca_source_stats(&as.base, &st), 0);
    cr_assert_eq(st.bytes_in_use, 0, "chunks leaked: %llu bytes", (unsigned long long)st.bytes_in_use);
    cr_assert_gt(st.allocs, 0);
    cr_assert_null(ca_source_check(&as.base));
}

/* The same allocations, rewinds and frees on a bump. Page alignment only
 * for oversized blocks (chunks of their own, whole pages), so that where
 * the allocator put a chunk below a page (64-aligned) changes nothing. */
static void drive(ca_bump *b)
{
    ca_bump_mark m;
    for (int i = 0; i < 3000; i++) {
        size_t size = i % 400 == 0 ? 30000 : 8 + (size_t)(i % 97) * 8;
        size_t align = i % 400 == 0 ? 4096 : i % 50 == 0 ? 64 : 8;
        void *p = ca_bump_alloc(b, size, align);
        cr_assert_not_null(p);
        memset(p, 0x5a, size);
        if (i % 7 == 0)
            ca_bump_free(b, p, size);
        if (i == 1000)
            cr_assert_eq(ca_bump_save(b, &m), 0);
        if (i == 2000)
            cr_assert_eq(ca_bump_rewind(b, &m), 0);
    }
}

static void assert_same_stats(const ca_bump *x, const ca_bump *y)
{
    ca_stats a, b;
    cr_assert_eq(ca_bump_stats(x, &a), 0);
    cr_assert_eq(ca_bump_stats(y, &b), 0);
    cr_assert_eq(a.bytes_in_use, b.bytes_in_use);
    cr_assert_eq(a.bytes_reserved, b.bytes_reserved);
    cr_assert_eq(a.peak_in_use, b.peak_in_use);
    cr_assert_eq(a.allocs, b.allocs);
    cr_assert_eq(a.frees, b.frees);
    cr_assert_eq(a.failures, b.failures);
    cr_assert_eq(a.ncounters, b.ncounters);
    for (unsigned i = 0; i < a.ncounters; i++)
        cr_assert_eq(a.counters[i].value, b.counters[i].value, "counter %s differs", a.counters[i].name);
}

/*
 * A bump made over an allocator is a bump over an allocator source, with
 * the chunks the allocator backing always gave: ca_bump_init_allocator and
 * ca_bump_init over an explicit ca_allocator_source ask their allocators for
 * the same blocks (whole pages aligned to a page from a page on, 64-byte
 * multiples aligned to 64 below), report the same statistics and free every
 * chunk with the size and alignment it was asked with; a failing allocator
 * gives NULL + ENOMEM and leaves the bump as it was.
 */
Test(api, allocator_backing_is_an_allocator_source)
{
    static ca_counting_allocator ca, cb;
    ca_counting_init(&ca);
    ca_counting_init(&cb);
    ca_allocator_source as;
    cr_assert_eq(ca_allocator_source_init(&as, &cb.base), 0);
    ca_bump_options o = {256, 64 << 10};
    ca_bump x, y;
    cr_assert_eq(ca_bump_init_allocator(&x, &ca.base, &o), 0);
    cr_assert_eq(ca_bump_init(&y, &as.base, &o), 0);
    cr_assert_eq(x.source, &x.adaptor.base, "the allocator is reached through the bump's own source");
    drive(&x);
    drive(&y);
    cr_assert_null(ca_bump_check(&x));
    cr_assert_null(ca_bump_check(&y));
    cr_assert_eq(ca.n, cb.n);
    cr_assert_eq(ca.allocs, cb.allocs);
    cr_assert_eq(ca.frees, cb.frees);
    bool small = false, large = false;
    for (int i = 0; i < ca.n; i++) {
        size_t size = ca.blk[i].size, align = ca.blk[i].align;
        cr_assert_eq(size, cb.blk[i].size);
        cr_assert_eq(align, cb.blk[i].align);
        if (size >= CA_OWNER_PAGE) {
            cr_assert(align == CA_OWNER_PAGE && size % CA_OWNER_PAGE == 0, "chunk (%zu, %zu)", size, align);
            large = true;
        } else {
            cr_assert(align == CA_BUMP_CHUNK_HEADER && size % CA_BUMP_CHUNK_HEADER == 0, "chunk (%zu, %zu)",
                      size, align);
            small = true;
        }
    }
    cr_assert(small && large, "both chunk shapes seen");
    assert_same_stats(&x, &y);
    ca_stats st, sx;
    cr_assert_eq(ca_source_stats(x.source, &st), 0);
    cr_assert_eq(ca_bump_stats(&x, &sx), 0);
    cr_assert_eq(st.bytes_in_use, ca.live_bytes);
    cr_assert_eq(st.bytes_in_use, sx.bytes_reserved, "the source holds exactly the bump's chunks");

    /* Failures: an oversized chunk, then the first regular chunk after a
     * final reset; the parent's own errno does not leak through. */
    ca.fail_after = 0;
    ca.fail_errno = EPERM;
    long live = ca.n;
    ca_bump_chunk *chunk = x.chunk, *big = x.big;
    errno = 0;
    cr_assert_null(ca_bump_alloc(&x, 1 << 20, 16));
    cr_assert_eq(errno, ENOMEM);
    cr_assert(x.chunk == chunk && x.big == big && ca.n == live, "a failed obtain changed the bump");
    cr_assert_null(ca_bump_check(&x));
    ca_bump_reset_final(&x);
    cr_assert_eq(ca.n, 0);
    errno = 0;
    cr_assert_null(ca_bump_alloc(&x, 100, 8));
    cr_assert_eq(errno, ENOMEM);
    cr_assert_null(x.chunk);
    cr_assert_null(ca_bump_check(&x));
    cr_assert_eq(ca_bump_stats(&x, &sx), 0);
    cr_assert_eq(sx.failures, 2);
    ca.fail_after = -1;
    cr_assert_not_null(ca_bump_alloc(&x, 100, 8));

    ca_bump_destroy(&x);
    ca_bump_destroy(&y);
    cr_assert_eq(ca.mismatches, 0, "chunks freed with another size or alignment");
    cr_assert_eq(cb.mismatches, 0);
    cr_assert_eq(ca.n, 0, "every chunk back to the parent");
    cr_assert_eq(cb.n, 0);
    cr_assert_null(ca_source_check(&as.base));
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
