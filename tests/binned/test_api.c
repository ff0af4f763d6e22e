/* SPDX-License-Identifier: MIT */
/* libbinned through its public header only: the allocator contract on the
 * default and a created instance, the malloc-style entry points, options. */
#include <criterion/criterion.h>
#include <ctxalloc/binned.h>
#include <pthread.h>

#include "ca_contract.h"
#include "ca_test.h"

static ca_binned *small_instance(void)
{
    ca_binned_options o;
    ca_binned_options_init(&o);
    o.class_range_log2 = 26;
    ca_binned *b = NULL;
    cr_assert_eq(ca_binned_create(&b, &o), 0);
    cr_assert_not_null(b);
    return b;
}

Test(binned_api, contract_default)
{
    ca_allocator *a = ca_binned_allocator(ca_binned_default());
    cr_assert_eq(ca_allocator_caps(a) & (CA_CAP_THREAD_SAFE | CA_CAP_UNSIZED), CA_CAP_THREAD_SAFE | CA_CAP_UNSIZED);
    cr_assert_str_eq(ca_allocator_name(a), "binned");
    ca_contract_check(a, 0);
    cr_assert_null(ca_binned_check(ca_binned_default()));
}

Test(binned_api, contract_created)
{
    ca_binned *b = small_instance();
    ca_contract_check(ca_binned_allocator(b), 0);
    cr_assert_null(ca_binned_check(b));
    ca_binned_destroy(b);
}

Test(binned_api, contract_no_tcache)
{
    ca_binned_options o;
    ca_binned_options_init(&o);
    o.class_range_log2 = 26;
    o.flags = CA_BINNED_NO_TCACHE | CA_BINNED_NO_OWNER_MAP;
    ca_binned *b = NULL;
    cr_assert_eq(ca_binned_create(&b, &o), 0);
    ca_contract_check(ca_binned_allocator(b), 0);
    cr_assert_null(ca_binned_check(b));
    ca_binned_destroy(b);
}

Test(binned_api, bad_options)
{
    ca_binned_options o;
    ca_binned *b = NULL;
    ca_binned_options_init(&o);
    o.class_range_log2 = 20;
    cr_assert_eq(ca_binned_create(&b, &o), EINVAL);
    o.class_range_log2 = 40;
    cr_assert_eq(ca_binned_create(&b, &o), EINVAL);
    ca_binned_options_init(&o);
    o.flags = 0x100;
    cr_assert_eq(ca_binned_create(&b, &o), EINVAL);
    cr_assert_null(b);
    cr_assert_eq(ca_binned_create(NULL, NULL), EINVAL);
    ca_binned_destroy(NULL);
}

Test(binned_api, malloc_family)
{
    errno = 0;
    void *z1 = ca_binned_default_malloc(0), *z2 = ca_binned_default_malloc(0);
    cr_assert(z1 && z2 && z1 != z2);
    /* checks=on reports the request itself (guard bytes follow it) */
    cr_assert_geq(ca_binned_default_usable_size(z1), CA_CHECKS >= CA_CHECKS_ON ? 0 : 1);
    ca_binned_default_free(z1);
    ca_binned_default_free(z2);
    cr_assert_eq(ca_binned_default_usable_size(NULL), 0);

    errno = 1234;
    ca_binned_default_free(NULL);
    void *p = ca_binned_default_malloc(100);
    ca_binned_default_free(p);
    cr_assert_eq(errno, 1234, "free must preserve errno");

    errno = 0;
    cr_assert_null(ca_binned_default_malloc(SIZE_MAX));
    cr_assert_eq(errno, ENOMEM);
    errno = 0;
    cr_assert_null(ca_binned_default_calloc(SIZE_MAX / 2, 3));
    cr_assert_eq(errno, ENOMEM);

    unsigned char *c = ca_binned_default_calloc(100, 7);
    cr_assert_not_null(c);
    for (int i = 0; i < 700; i++)
        cr_assert_eq(c[i], 0);
    memset(c, 0xab, 700);
    ca_binned_default_free(c);
    c = ca_binned_default_calloc(700, 1); /* likely the same slot again: must be zero */
    for (int i = 0; i < 700; i++)
        cr_assert_eq(c[i], 0);
    ca_binned_default_free(c);

    errno = 0;
    cr_assert_null(ca_binned_default_aligned_alloc(3, 8));
    cr_assert_eq(errno, EINVAL);
    errno = 0;
    cr_assert_null(ca_binned_default_aligned_alloc(0, 8));
    cr_assert_eq(errno, EINVAL);
    for (size_t al = 1; al <= ((size_t)1 << 22); al <<= 1) {
        void *q = ca_binned_default_aligned_alloc(al, 24);
        cr_assert_not_null(q);
        cr_assert(ca_is_aligned((uintptr_t)q, al), "align %zu", al);
        cr_assert(ca_binned_default_owns(q));
        ca_binned_default_free(q);
    }
}

Test(binned_api, realloc_semantics)
{
    char *p = ca_binned_default_realloc(NULL, 10);
    cr_assert_not_null(p);
    memcpy(p, "abcdefghi", 10);
    char *q = ca_binned_default_realloc(p, 12); /* same class: in place */
    cr_assert_eq(q, p);
    q = ca_binned_default_realloc(q, 5000);
    cr_assert_not_null(q);
    cr_assert_str_eq(q, "abcdefghi");
    q = ca_binned_default_realloc(q, 1 << 20); /* to the large tier */
    cr_assert_str_eq(q, "abcdefghi");
    q = ca_binned_default_realloc(q, 20); /* back to a class */
    cr_assert_str_eq(q, "abcdefghi");
    errno = 0;
    cr_assert_null(ca_binned_default_realloc(q, SIZE_MAX - 4096));
    cr_assert_eq(errno, ENOMEM);
    cr_assert_str_eq(q, "abcdefghi", "failed realloc must leave the block intact");
    cr_assert_null(ca_binned_default_realloc(q, 0)); /* frees */
}

Test(binned_api, classes_and_stats)
{
    cr_assert_eq(ca_binned_class_size(0), 16);
    cr_assert_eq(ca_binned_class_size(CA_BINNED_NCLASSES - 1), CA_BINNED_SMALL_MAX);
    cr_assert_eq(ca_binned_class_size(CA_BINNED_NCLASSES), 0);
    cr_assert_eq(ca_binned_size_class(0), 0);
    /* checks=on: 8 guard bytes follow every small request */
    size_t guard = CA_CHECKS >= CA_CHECKS_ON ? 8 : 0;
    cr_assert_eq(ca_binned_size_class(CA_BINNED_SMALL_MAX - guard), CA_BINNED_NCLASSES - 1);
    cr_assert_eq(ca_binned_size_class(CA_BINNED_SMALL_MAX - guard + 1), CA_BINNED_NCLASSES);

    ca_binned *b = small_instance();
    void *p[100];
    for (int i = 0; i < 100; i++)
        p[i] = ca_binned_alloc(b, 40, 16);
    ca_stats s;
    cr_assert_eq(ca_binned_stats(b, &s), 0);
    cr_assert_str_eq(s.name, "binned");
    cr_assert_geq(s.allocs, 100);
    cr_assert_eq(ca_stats_get(ca_binned_allocator(b), &s), 0);
    cr_assert_eq(ca_binned_class_stats(b, 2, &s), 0);
    cr_assert_eq(s.allocs, 100);
    cr_assert_geq(s.bytes_in_use, 100 * 48);
    cr_assert_eq(ca_binned_class_stats(b, CA_BINNED_NCLASSES, &s), EINVAL);
    for (int i = 0; i < 100; i++)
        ca_binned_free(b, p[i]);
    cr_assert_eq(ca_binned_class_stats(b, 2, &s), 0);
    cr_assert_eq(s.frees, 100);
    cr_assert_eq(s.bytes_in_use, 0);
    ca_binned_thread_flush(b);
    ca_binned_trim(b);
    cr_assert_null(ca_binned_check(b));
    ca_binned_destroy(b);
}

Test(binned_api, owner_map)
{
    ca_binned *d = ca_binned_default();
    void *p = ca_binned_default_malloc(64), *q = ca_binned_default_malloc(1 << 20);
    cr_assert_eq(ca_owner_lookup(p), (void *)ca_binned_allocator(d));
    cr_assert_eq(ca_owner_lookup(q), (void *)ca_binned_allocator(d));
    cr_assert(ca_owns(ca_binned_allocator(d), p));
    cr_assert(ca_owns(ca_binned_allocator(d), q));
    int local;
    cr_assert_not(ca_binned_default_owns(&local));
    /* libswitch's routing: the owner's unsized free. */
    ca_free_unsized((ca_allocator *)ca_owner_lookup(p), p);
    ca_free_unsized((ca_allocator *)ca_owner_lookup(q), q);
}

static void *else_seen[4];
static int else_calls;
static void else_other(void *p)
{
    if (else_calls < 4)
        else_seen[else_calls] = p;
    else_calls++;
}

Test(binned_api, free_else_routes_what_is_not_a_small_block)
{
    /* Small blocks of the default instance are freed without the callback;
     * NULL, a large block, a created instance's block and memory of nobody
     * go to it untouched. */
    void *small = ca_binned_default_malloc(200);
    cr_assert_not_null(small);
    ca_stats s0, s1;
    ca_binned_stats(ca_binned_default(), &s0);
    ca_binned_default_free_else(small, else_other);
    ca_binned_stats(ca_binned_default(), &s1);
    cr_assert_eq(else_calls, 0, "a small block of the default instance was routed away");
    cr_assert_eq(s1.frees, s0.frees + 1, "the small block was freed");

    void *large = ca_binned_default_malloc((size_t)1 << 20);
    ca_binned *b = small_instance();
    void *other = ca_binned_alloc(b, 64, 16);
    static char stack_like[64];
    ca_binned_default_free_else(NULL, else_other);
    ca_binned_default_free_else(large, else_other);
    ca_binned_default_free_else(other, else_other);
    ca_binned_default_free_else(stack_like + 16, else_other);
    cr_assert_eq(else_calls, 4);
    cr_assert_eq(else_seen[0], NULL);
    cr_assert_eq(else_seen[1], large);
    cr_assert_eq(else_seen[2], other);
    cr_assert_eq(else_seen[3], stack_like + 16);
    ca_binned_default_free(large);
    ca_binned_free(b, other);
    cr_assert_null(ca_binned_check(b));
    ca_binned_destroy(b);
}

/* The statistics report every counter of their list, and only those:
 * CA_BINNED_COUNTERS for the instance, CA_BINNED_CLASS_COUNTERS per class. */
Test(binned_api, stats_counters_listed)
{
    static const char *const all[] = CA_STATS_NAMES(CA_BINNED_COUNTERS);
    static const char *const cls[] = CA_STATS_NAMES(CA_BINNED_CLASS_COUNTERS);
    ca_binned *b = small_instance();
    void *p = ca_binned_alloc(b, 40, 16);
    cr_assert_not_null(p);
    ca_stats st;
    cr_assert_eq(ca_binned_stats(b, &st), 0);
    const char *d = ca_test_counters_differ(&st, all, sizeof all / sizeof *all);
    cr_assert_null(d, "binned stats: %s", d);
    cr_assert_eq(ca_binned_class_stats(b, 2, &st), 0);
    d = ca_test_counters_differ(&st, cls, sizeof cls / sizeof *cls);
    cr_assert_null(d, "class stats: %s", d);
    ca_binned_free(b, p);
    ca_binned_destroy(b);
}

/* A thread that exits with a few cached slots of a class hands them on as
 * one partial bundle through the recycler (no class lock now, none for the
 * next thread's refill); before, anything short of a whole batch went back
 * to the blocks. */
static void *g_kept[5];

static void *alloc_free_exit(void *arg)
{
    ca_binned *b = (ca_binned *)arg;
    void *p[10];
    for (int i = 0; i < 10; i++)
        p[i] = ca_binned_alloc(b, 100, 16);
    for (int i = 0; i < 5; i++)
        ca_binned_free(b, p[i]);
    memcpy(g_kept, p + 5, sizeof g_kept);
    return NULL;
}

Test(binned_api, exiting_thread_cache_goes_to_the_recycler)
{
    ca_binned *b = small_instance();
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, alloc_free_exit, b), 0);
    cr_assert_eq(pthread_join(t, NULL), 0);
    ca_stats st;
    cr_assert_eq(ca_binned_stats(b, &st), 0);
    /* The class serving 100 B is 112 B; the first refill carved what the
     * bin's starter array holds (16 slots, CA_BINNED__BIN_STARTER), 10 went
     * out and 5 came back: the 11 cached ones are in the recycler, as one
     * partial bundle. */
    uint64_t recycled = 0, cached = 16 - 10 + 5;
    cr_assert(ca_stats_get_counter(&st, "recycled_bytes", &recycled));
    cr_assert_eq(recycled, cached * ca_binned_class_size(ca_binned_size_class(100)), "%llu",
                 (unsigned long long)recycled);
    for (int i = 0; i < 5; i++)
        ca_binned_free(b, g_kept[i]);
    cr_assert_null(ca_binned_check(b));
    ca_binned_destroy(b);
}
