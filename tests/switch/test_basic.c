/* SPDX-License-Identifier: MIT */
/*
 * libswitch basics: the allocator contract for the base allocator and for a
 * ca_switch_local, realloc routing (shrink in place, stays with its owner,
 * leaves another thread's local), usable sizes through the owner, the
 * remote-free queue on one extra thread, the owner source's release path.
 */
#include <criterion/criterion.h>
#include <ctxalloc/switch.h>
#include <pthread.h>

#include "ca_contract.h"
#include "switch_test.h"

Test(basic, contract_base)
{
#if defined(SW_BASE_BINNED) && !SW_BASE_BINNED
    /* glibc or jemalloc behind the switch (-Dglobal): no invariant walk */
    ca_contract_check(ca_switch_base(), CA_CONTRACT_NO_WALK);
#else
    ca_contract_check(ca_switch_base(), 0);
#endif
}

Test(basic, contract_local)
{
    sw_ctx c;
    cr_assert_eq(sw_ctx_init(&c), 0);
    ca_contract_check(sw_ctx_alloc(&c), 0);
    cr_assert_eq(c.pool.live, 0);
    sw_ctx_destroy(&c);
}

Test(basic, realloc_shrink_in_place_and_owner_kept)
{
    sw_ctx c, other;
    cr_assert_eq(sw_ctx_init(&c), 0);
    cr_assert_eq(sw_ctx_init(&other), 0);
    ca_switch_context_set(sw_ctx_alloc(&c));
    char *p = (char *)ca_switch_malloc(1000);
    memset(p, 'x', 1000);
    ca_switch_context_set(sw_ctx_alloc(&other));
    char *q = (char *)ca_switch_realloc(p, 100);
    cr_assert_eq(q, p, "a shrink stays in place");
    cr_assert_eq(ca_switch_owner(q), sw_ctx_alloc(&c));
    q = (char *)ca_switch_realloc(q, 100000);
    cr_assert_not_null(q);
    cr_assert_eq(ca_switch_owner(q), sw_ctx_alloc(&c), "a grow stays with the owner");
    for (int i = 0; i < 100; i++)
        cr_assert_eq(q[i], 'x');
    cr_assert_geq(ca_switch_usable_size(q), 100000);
    ca_switch_context_set(NULL);
    cr_assert_eq(other.pool.live, 0);
    errno = 0;
    cr_assert_null(ca_switch_realloc(q, SIZE_MAX / 2));
    cr_assert_eq(errno, ENOMEM);
    cr_assert_eq(q[99], 'x', "failed realloc leaves the block intact");
    cr_assert_null(ca_switch_realloc(q, 0));
    cr_assert_eq(c.pool.live, 0);
    sw_ctx_destroy(&c);
    sw_ctx_destroy(&other);
}

typedef struct cross {
    sw_ctx *ctx;
    void *block;
    void *result;
} cross;

static void *realloc_on_other_thread(void *arg)
{
    cross *x = (cross *)arg;
    x->result = ca_switch_realloc(x->block, 3000);
    return NULL;
}

static void *free_on_other_thread(void *arg)
{
    cross *x = (cross *)arg;
    ca_switch_free(x->block);
    return NULL;
}

Test(basic, realloc_from_another_thread_moves_out)
{
    sw_ctx c;
    cr_assert_eq(sw_ctx_init(&c), 0);
    ca_switch_context_set(sw_ctx_alloc(&c));
    char *p = (char *)ca_switch_malloc(200);
    ca_switch_context_set(NULL);
    memset(p, 7, 200);
    cross x = {&c, p, NULL};
    pthread_t th;
    pthread_create(&th, NULL, realloc_on_other_thread, &x);
    pthread_join(th, NULL);
    cr_assert_not_null(x.result);
    cr_assert_neq(x.result, p);
    cr_assert_eq(ca_switch_owner(x.result), ca_switch_global(), "moved to the other thread's selection");
    for (int i = 0; i < 200; i++)
        cr_assert_eq(((char *)x.result)[i], 7);
    cr_assert_eq(ca_switch_local_pending(&c.ad.local), 1, "the old block waits in the queue");
    cr_assert_eq(c.pool.live, 1);
    cr_assert_eq(ca_switch_local_drain(&c.ad.local), 1);
    cr_assert_eq(c.pool.live, 0);
    ca_switch_free(x.result);
    sw_ctx_destroy(&c);
}

Test(basic, remote_free_drained_on_next_alloc)
{
    sw_ctx c;
    cr_assert_eq(sw_ctx_init(&c), 0);
    ca_switch_thread_set(sw_ctx_alloc(&c));
    void *p = ca_switch_malloc(0);
    cr_assert_not_null(p);
    cross x = {&c, p, NULL};
    pthread_t th;
    pthread_create(&th, NULL, free_on_other_thread, &x);
    pthread_join(th, NULL);
    cr_assert_eq(c.pool.live, 1, "not freed by the other thread");
    cr_assert_eq(ca_switch_local_pending(&c.ad.local), 1);
    ca_switch_counters k;
    ca_switch_counters_get(&k);
    cr_assert_geq(k.remote_frees, 1);
    void *q = ca_switch_malloc(16);
    cr_assert_eq(ca_switch_local_pending(&c.ad.local), 0, "drained by the owner's next allocation");
    cr_assert_eq(c.pool.live, 1);
    ca_switch_free(q);
    cr_assert_eq(c.pool.live, 0);
    ca_switch_thread_set(NULL);
    sw_ctx_destroy(&c);
}

Test(basic, adopt_moves_ownership)
{
    sw_ctx c;
    cr_assert_eq(sw_ctx_init(&c), 0);
    ca_switch_context_set(sw_ctx_alloc(&c));
    void *p = ca_switch_malloc(50);
    ca_switch_context_set(NULL);
    cross x = {&c, p, NULL};
    pthread_t th;
    pthread_create(&th, NULL, free_on_other_thread, &x);
    pthread_join(th, NULL);
    cr_assert_eq(ca_switch_local_pending(&c.ad.local), 1);
    ca_switch_local_adopt(&c.ad.local);
    cr_assert_eq(ca_switch_local_pending(&c.ad.local), 0, "adopt drains");
    cr_assert_eq(c.pool.live, 0);
    sw_ctx_destroy(&c);
}

Test(basic, unowned_pointer_goes_to_base)
{
    /* glibc's malloc here is the program's (no override): such pointers have
     * no owner and are handed to the base allocator, which is glibc in
     * -Dglobal=libc builds. Only then is this meaningful. */
    ca_allocator *base = ca_switch_base();
    if (strcmp(ca_allocator_name(base), "glibc") != 0)
        cr_skip_test("base is %s", ca_allocator_name(base));
    void *p = malloc(123);
    cr_assert_eq(ca_switch_owner(p), base);
    cr_assert_geq(ca_switch_usable_size(p), 123);
    p = ca_switch_realloc(p, 5000);
    cr_assert_not_null(p);
    ca_switch_free(p);
}

Test(basic, source_release_unregisters)
{
    sw_mmap_source mm;
    sw_mmap_source_init(&mm);
    ca_switch_source s;
    static int owner;
    cr_assert_eq(ca_switch_source_init(&s, &mm.base, &owner), 0);
    void *r;
    cr_assert_eq(ca_source_reserve(&s.base, CA_OWNER_GRANULE * 4, CA_OWNER_GRANULE, &r), 0);
    cr_assert_eq(ca_owner_lookup(r), &owner);
    cr_assert_eq(ca_source_commit(&s.base, r, CA_OWNER_GRANULE), 0);
    memset(r, 1, CA_OWNER_GRANULE);
    cr_assert_eq(ca_source_decommit(&s.base, r, CA_OWNER_GRANULE), 0);
    ca_stats st;
    ca_source_stats(&s.base, &st);
    uint64_t ranges = 0;
    cr_assert(ca_stats_get_counter(&st, "owner_ranges", &ranges));
    cr_assert_eq(ranges, 1);
    cr_assert_eq(ca_source_release(&s.base, r, CA_OWNER_GRANULE * 4), 0);
    cr_assert_null(ca_owner_lookup(r));
    cr_assert_eq(ca_source_release(&s.base, (char *)r + 1, CA_OWNER_GRANULE), EINVAL);
}

/* ------------------------------------------------------------ statistics */

/* st holds exactly the counters of names[0..n) (the fixtures' allocators
 * and source set none of their own). */
static void expect_counters(const ca_stats *st, const char *const *names, size_t n, const char *what)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t v;
        cr_assert(ca_stats_get_counter(st, names[i], &v), "%s: no counter %s", what, names[i]);
    }
    cr_assert_eq(st->ncounters, n, "%s: %u counters, %zu listed", what, st->ncounters, n);
    cr_assert_eq(st->counters_dropped, 0, "%s", what);
}

/* Each layer of the switch adds the counters of its list over its inner's. */
Test(basic, stats_counters_listed)
{
    /* the test pool is single-thread: the adoption goes through a local */
#define ADOPTED_OVER_LOCAL(X) CA_SWITCH_LOCAL_COUNTERS(X) CA_SWITCH_ADOPTED_COUNTERS(X)
    static const char *const adopted[] = CA_STATS_NAMES(ADOPTED_OVER_LOCAL);
    static const char *const local[] = CA_STATS_NAMES(CA_SWITCH_LOCAL_COUNTERS);
    static const char *const source[] = CA_STATS_NAMES(CA_SWITCH_SOURCE_COUNTERS);
    ca_stats st;

    sw_ctx c;
    cr_assert_eq(sw_ctx_init(&c), 0);
    cr_assert_eq(ca_stats_get(sw_ctx_alloc(&c), &st), 0);
    expect_counters(&st, adopted, sizeof adopted / sizeof *adopted, "adoption");
    cr_assert_eq(sw_ctx_destroy(&c), 0);

    sw_mmap_source mm;
    sw_mmap_source_init(&mm);
    sw_pool pool;
    sw_pool_init(&pool, &mm.base);
    ca_switch_local l;
    cr_assert_eq(ca_switch_local_init(&l, &pool.base), 0);
    cr_assert_eq(ca_stats_get(&l.base, &st), 0);
    expect_counters(&st, local, sizeof local / sizeof *local, "local");
    ca_switch_local_destroy(&l);
    sw_pool_destroy(&pool);

    ca_switch_source s;
    static int owner;
    cr_assert_eq(ca_switch_source_init(&s, &mm.base, &owner), 0);
    (void)ca_source_stats(&s.base, &st); /* the test source keeps no statistics: ENOTSUP */
    expect_counters(&st, source, sizeof source / sizeof *source, "source");
}

/* An allocator from outside the suite that sets more counters than a
 * component may (22 of its own; the adoption and its local add theirs, past
 * the 24 a ca_stats holds): what does not fit is counted, in its row and in
 * the total, and the total row of the report prints it. */
enum { WIDE_COUNTERS = 22 };
static int wide_stats(const ca_allocator *a, ca_stats *out)
{
    static char names[WIDE_COUNTERS][8];
    int e = sw_pool_stats(a, out);
    for (unsigned i = 0; i < WIDE_COUNTERS; i++) {
        snprintf(names[i], sizeof names[i], "wide%u", i);
        ca_stats_set_counter(out, names[i], i);
    }
    return e;
}

Test(basic, stats_total_reports_dropped_counters)
{
    static ca_allocator_ops wide_ops;
    wide_ops = sw_pool_ops;
    wide_ops.stats = wide_stats;
    sw_ctx c;
    sw_mmap_source_init(&c.mm);
    sw_pool_init(&c.pool, &c.mm.base);
    c.pool.base.ops = &wide_ops;
    cr_assert_eq(ca_switch_adopt(&c.ad, &c.pool.base), 0, "%s", ca_last_error());

    ca_stats st;
    cr_assert_eq(ca_stats_get(sw_ctx_alloc(&c), &st), 0);
    cr_assert_eq(st.ncounters, CA_STATS_MAX_COUNTERS);
    static const char *const layers[] = CA_STATS_NAMES(ADOPTED_OVER_LOCAL);
    cr_assert_eq(st.counters_dropped, WIDE_COUNTERS + sizeof layers / sizeof *layers - CA_STATS_MAX_COUNTERS);

    ca_stats total;
    cr_assert_eq(ca_switch_stats_total(&total), 0);
    cr_assert_geq(total.counters_dropped, st.counters_dropped);
    cr_assert_eq(total.ncounters, CA_STATS_MAX_COUNTERS);

    FILE *f = tmpfile();
    cr_assert_not_null(f);
    cr_assert_eq(ca_switch_stats_write(fileno(f), CA_STATS_TEXT), 0);
    static char text[1 << 16];
    rewind(f);
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    char *row = strstr(text, "== total\n");
    cr_assert_not_null(row, "%s", text);
    char *next = strstr(row + 1, "== ");
    char *dropped = strstr(row, "\ncounters_dropped: ");
    cr_assert(dropped && (!next || dropped < next), "the total row prints counters_dropped:\n%s", text);
    cr_assert_eq(strtoull(dropped + 19, NULL, 10), total.counters_dropped);

    cr_assert_eq(sw_ctx_destroy(&c), 0);
}
