/* SPDX-License-Identifier: MIT */
/* libarena through its public header only: the allocator contract for every
 * backing and free-list kind, argument errors, offsets and the user area. */
#include <criterion/criterion.h>
#include <ctxalloc/arena.h>
#include <ctxalloc/source.h>
#include <stdlib.h>
#include <unistd.h>

#include "ca_contract.h"
#include "ca_test.h"

static ca_arena *make(ca_arena_freelist kind, unsigned bits, ca_arena_backing backing, uint64_t cap)
{
    ca_arena_options o;
    ca_arena_options_init(&o);
    o.freelist = kind;
    o.offset_bits = bits;
    o.backing = backing;
    o.capacity = cap;
    ca_arena *a = NULL;
    cr_assert_eq(ca_arena_create(&a, &o), 0);
    return a;
}

Test(arena_api, contract_every_kind_width_backing)
{
    for (int k = CA_ARENA_FREELIST_NONE; k <= CA_ARENA_FREELIST_PESSIMISTIC; k++)
        for (int w = 0; w < 2; w++)
            for (int b = 0; b < 2; b++) {
                ca_arena *a = make((ca_arena_freelist)k, w ? 64 : 32, (ca_arena_backing)b, 64u << 20);
                ca_contract_check(ca_arena_allocator(a), 0);
                cr_assert_null(ca_arena_check(a), "%s", ca_arena_check(a));
                cr_assert_eq(ca_arena_close(a), 0);
            }
}

Test(arena_api, defaults_and_bad_options)
{
    ca_arena *a = NULL;
    cr_assert_eq(ca_arena_create(&a, NULL), 0);
    cr_assert_eq(ca_arena_capacity(a), 1u << 20);
    cr_assert_eq(ca_arena_freelist_kind(a), CA_ARENA_FREELIST_OPTIMISTIC);
    cr_assert_eq(ca_arena_offset_bits(a), 64);
    cr_assert(ca_allocator_caps(ca_arena_allocator(a)) & CA_CAP_THREAD_SAFE);
    ca_arena_close(a);
    cr_assert_eq(ca_arena_close(NULL), 0);

    ca_arena_options o;
    ca_arena_options_init(&o);
    o.offset_bits = 48;
    cr_assert_eq(ca_arena_create(&a, &o), EINVAL);
    ca_arena_options_init(&o);
    o.offset_bits = 32;
    o.capacity = (uint64_t)8 << 30; /* beyond 4 GiB needs 64-bit offsets */
    cr_assert_eq(ca_arena_create(&a, &o), EINVAL);
    ca_arena_options_init(&o);
    o.min_segment = 24;
    cr_assert_eq(ca_arena_create(&a, &o), EINVAL);
    ca_arena_options_init(&o);
    o.freelist = CA_ARENA_FREELIST_ANY;
    cr_assert_eq(ca_arena_create(&a, &o), EINVAL);
    ca_arena_options_init(&o);
    o.capacity = 4096; /* no room after the header */
    cr_assert_eq(ca_arena_create(&a, &o), EINVAL);
    ca_arena_options_init(&o);
    o.user_size = SIZE_MAX - 100;
    cr_assert_eq(ca_arena_create(&a, &o), EINVAL);
    cr_assert_eq(ca_arena_create(NULL, NULL), EINVAL);
}

Test(arena_api, alloc_errors)
{
    ca_arena *a = make(CA_ARENA_FREELIST_PESSIMISTIC, 64, CA_ARENA_BACKING_HEAP, 1u << 20);
    uint64_t off = 0;
    cr_assert_eq(ca_arena_alloc(a, 16, 3, &off), EINVAL);
    cr_assert_eq(ca_arena_alloc(a, 16, 0, &off), EINVAL);
    cr_assert_eq(ca_arena_alloc(a, 16, 8192, &off), EINVAL);
    cr_assert_eq(ca_arena_alloc(a, SIZE_MAX, 16, &off), ENOMEM);
    cr_assert_eq(ca_arena_alloc(a, SIZE_MAX - 8, 16, &off), ENOMEM);
    cr_assert_eq(ca_arena_alloc(a, 2u << 20, 16, &off), ENOMEM);
    cr_assert_eq(ca_arena_alloc(a, 0, 1, &off), 0);
    cr_assert_neq(off, 0);
    uint64_t off2;
    cr_assert_eq(ca_arena_alloc(a, 0, 1, &off2), 0);
    cr_assert_neq(off, off2);
    cr_assert_eq(ca_arena_free(a, off2, 0), 0);
    cr_assert_eq(ca_arena_free(a, off, 0), 0);
    /* out-of-range offsets are refused */
    cr_assert_eq(ca_arena_free(a, 8, 16), EINVAL);
    cr_assert_eq(ca_arena_free(a, ca_arena_capacity(a) - 16, 16), EINVAL);
    cr_assert_eq(ca_arena_free(a, ca_arena_data_start(a) + 8, 16), EINVAL);
    cr_assert_eq(ca_arena_free(a, ca_arena_data_start(a), SIZE_MAX), EINVAL);
    cr_assert_eq(ca_arena_free(a, 0, 16), 0);
    ca_stats st;
    cr_assert_eq(ca_arena_stats(a, &st), 0);
    cr_assert_eq(st.failures, 6);
    cr_assert_eq(st.bytes_in_use, 0);
    ca_arena_close(a);
}

Test(arena_api, offsets_and_pointers)
{
    ca_arena_options o;
    ca_arena_options_init(&o);
    o.user_size = 100;
    ca_arena *a = NULL;
    o.local_cache = CA_ARENA_LOCAL_CACHE_OFF; /* so that the free below rewinds the shared cursor itself */
    cr_assert_eq(ca_arena_create(&a, &o), 0);
    size_t us = 0;
    unsigned char *u = (unsigned char *)ca_arena_user_area(a, &us);
    cr_assert(u && us == 100);
    memset(u, 0xab, us);
    uint64_t off;
    cr_assert_eq(ca_arena_alloc(a, 100, 64, &off), 0);
    cr_assert_eq(off % 64, 0);
    cr_assert_geq(off, ca_arena_data_start(a));
    void *p = ca_arena_ptr(a, off);
    cr_assert(ca_is_aligned((uintptr_t)p, 64));
    cr_assert_eq(ca_arena_offset(a, p), off);
    cr_assert_null(ca_arena_ptr(a, 0));
    cr_assert_null(ca_arena_ptr(a, ca_arena_capacity(a)));
    cr_assert_eq(ca_arena_offset(a, &us), 0);
    cr_assert(ca_owns(ca_arena_allocator(a), p));
    cr_assert_not(ca_owns(ca_arena_allocator(a), &us));
    for (size_t i = 0; i < us; i++)
        cr_assert_eq(u[i], 0xab);
    cr_assert_eq(ca_arena_free(a, off, 100), 0);
    cr_assert_eq(ca_arena_cursor(a), ca_arena_data_start(a));
    cr_assert_eq(ca_arena_flush(a), 0); /* memory arenas: nothing to do */
    ca_arena_close(a);
}

Test(arena_api, own_source_and_strerror)
{
    ca_source_heap hs;
    cr_assert_eq(ca_source_heap_init(&hs, NULL), 0);
    ca_arena_options o;
    ca_arena_options_init(&o);
    o.source = &hs.base;
    ca_arena *a = NULL;
    cr_assert_eq(ca_arena_create(&a, &o), 0);
    ca_stats st;
    ca_source_stats(&hs.base, &st);
    cr_assert_eq(st.bytes_in_use, ca_arena_capacity(a));
    ca_arena_close(a);
    ca_source_stats(&hs.base, &st);
    cr_assert_eq(st.bytes_in_use, 0);
    ca_source_heap_destroy(&hs);
    for (int e = 0; e <= CA_ARENA_E_COUNT; e++) {
        const char *m = ca_arena_strerror((ca_arena_error)e);
        cr_assert(m && *m);
    }
    cr_assert_str_eq(ca_arena_strerror(CA_ARENA_E_MAGIC), "wrong magic: not an arena file");
}

/* The statistics report every counter of CA_ARENA_COUNTERS, and only those. */
Test(arena_api, stats_counters_listed)
{
    static const char *const names[] = CA_STATS_NAMES(CA_ARENA_COUNTERS);
    ca_arena *a = make(CA_ARENA_FREELIST_OPTIMISTIC, 64, CA_ARENA_BACKING_HEAP, 1u << 20);
    uint64_t off;
    cr_assert_eq(ca_arena_alloc(a, 100, 16, &off), 0);
    ca_stats st;
    cr_assert_eq(ca_arena_stats(a, &st), 0);
    const char *d = ca_test_counters_differ(&st, names, sizeof names / sizeof *names);
    cr_assert_null(d, "arena stats: %s", d);
    cr_assert_eq(ca_arena_close(a), 0);
}
