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
    ca_contract_check(ca_switch_base(), 0);
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
