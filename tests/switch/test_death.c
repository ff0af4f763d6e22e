/* SPDX-License-Identifier: MIT */
/*
 * Bad input that must abort with one line: checks=on detections (a local
 * used by a thread that does not own it, a block queued twice, a free of a
 * pointer no allocator owns when the base registers all its memory) and
 * always-on asserts (realloc of such a pointer, a bad bootstrap pointer).
 */
#include <criterion/criterion.h>
#include <pthread.h>

#include "ca_death.h"
#include "switch_test.h"
#include "switch_private.h"

#define NEED_CHECKS()                                                                              \
    do {                                                                                           \
        if (CA_CHECKS < CA_CHECKS_ON)                                                              \
            cr_skip_test("libswitch built with checks=off");                                       \
    } while (0)

static sw_ctx ctx;

static void *alloc_on_other_thread(void *arg)
{
    (void)arg;
    ca_alloc(sw_ctx_alloc(&ctx), 10, 16);
    return NULL;
}

static void foreign_thread_alloc(void *arg)
{
    (void)arg;
    sw_ctx_init(&ctx);
    pthread_t t;
    pthread_create(&t, NULL, alloc_on_other_thread, NULL);
    pthread_join(t, NULL);
}

Test(death, local_used_by_a_thread_that_does_not_own_it)
{
    NEED_CHECKS();
    ca_death_result r = ca_death_run(foreign_thread_alloc, NULL);
    cr_assert(r.aborted, "%s", r.out);
    cr_assert(ca_death_has_line(&r, "ctxalloc: switch: ca_switch_local allocated from by a thread that does not own it"),
              "%s", r.out);
}

static void *free_twice_remote(void *arg)
{
    ca_switch_free(arg);
    ca_switch_free(arg);
    return NULL;
}

static void remote_double_free(void *arg)
{
    (void)arg;
    sw_ctx_init(&ctx);
    void *p = ca_alloc(sw_ctx_alloc(&ctx), 10, 16);
    pthread_t t;
    pthread_create(&t, NULL, free_twice_remote, p);
    pthread_join(t, NULL);
}

Test(death, double_free_across_threads)
{
    NEED_CHECKS();
    ca_death_result r = ca_death_run(remote_double_free, NULL);
    cr_assert(r.aborted, "%s", r.out);
    cr_assert(ca_death_has_line(&r, "ctxalloc: switch: double free (block already in the remote queue)"), "%s",
              r.out);
}

static char not_a_heap_block[64] __attribute__((aligned(16)));

static void foreign_free(void *arg)
{
    (void)arg;
    (void)ca_switch_base();
    ca_switch__g.base_registers = true; /* as with libbinned */
    ca_switch_free(not_a_heap_block + 16);
}

Test(death, free_of_a_pointer_no_allocator_owns)
{
    NEED_CHECKS();
    ca_death_result r = ca_death_run(foreign_free, NULL);
    cr_assert(r.aborted, "%s", r.out);
    cr_assert(ca_death_has_line(&r, "ctxalloc: switch: free of a pointer no allocator owns"), "%s", r.out);
}

static void foreign_realloc(void *arg)
{
    (void)arg;
    (void)ca_switch_base();
    ca_switch__g.base_registers = true;
    ca_switch_realloc(not_a_heap_block + 16, 100);
}

Test(death, realloc_of_a_pointer_no_allocator_owns)
{
    ca_death_result r = ca_death_run(foreign_realloc, NULL);
    cr_assert(r.aborted, "%s", r.out);
    cr_assert(ca_death_has_line(&r, "ctxalloc: switch: realloc of a pointer no allocator owns"), "%s", r.out);
}

static void bad_bootstrap_pointer(void *arg)
{
    (void)arg;
    ca_switch_usable_size(ca_switch__boot_area + CA_SWITCH__BOOT_SIZE - 64);
}

Test(death, bad_bootstrap_pointer)
{
    ca_death_result r = ca_death_run(bad_bootstrap_pointer, NULL);
    cr_assert(r.aborted, "%s", r.out);
    cr_assert(ca_death_has_line(&r, "ctxalloc: switch: not a bootstrap block"), "%s", r.out);
}

static void foreign_free_off(void *arg)
{
    (void)arg;
    (void)ca_switch_base();
    ca_switch__g.base_registers = true;
    ca_switch_counters c0, c1;
    ca_switch_counters_get(&c0);
    ca_switch_free(not_a_heap_block + 16);
    ca_switch_counters_get(&c1);
    if (c1.unowned_frees != c0.unowned_frees + 1)
        abort();
}

Test(death, checks_off_ignores_and_counts_foreign_free)
{
    if (CA_CHECKS >= CA_CHECKS_ON)
        cr_skip_test("libswitch built with checks on");
    ca_death_result r = ca_death_run(foreign_free_off, NULL);
    cr_assert_not(r.aborted, "%s", r.out);
}

/* ------------------------------------------------------------------------
 * Selection and lifetime (ca_switch_adopt)
 * ------------------------------------------------------------------------ */

static void select_unroutable(void *arg)
{
    (void)arg;
    static sw_mmap_source mm;
    static sw_pool pool;
    sw_mmap_source_init(&mm);
    sw_pool_init(&pool, &mm.base);
    ca_switch_context_set(&pool.base);
}

Test(death, selecting_an_allocator_free_cannot_route)
{
    NEED_CHECKS();
    ca_death_result r = ca_death_run(select_unroutable, NULL);
    cr_assert(r.aborted, "%s", r.out);
    cr_assert(ca_death_has_line(&r, "ctxalloc: switch: selected allocator is not routable by free(): adopt it "
                                    "first (ca_switch_adopt)"),
              "%s", r.out);
}

static void destroy_with_live(void *arg)
{
    (void)arg;
    sw_ctx_init(&ctx);
    void *p = ca_alloc(sw_ctx_alloc(&ctx), 10, 16);
    void *q = ca_alloc(sw_ctx_alloc(&ctx), 10, 16);
    (void)p, (void)q;
    sw_pool_destroy(&ctx.pool);
}

Test(death, destroy_with_live_blocks_names_the_count)
{
    NEED_CHECKS();
    ca_death_result r = ca_death_run(destroy_with_live, NULL);
    cr_assert(r.aborted, "%s", r.out);
    cr_assert(ca_death_has_line(&r, "ctxalloc: switch: test-pool destroyed with 2 live blocks"), "%s", r.out);
}

static void destroy_while_selected(void *arg)
{
    (void)arg;
    sw_ctx_init(&ctx);
    ca_switch_thread_set(sw_ctx_alloc(&ctx));
    sw_pool_destroy(&ctx.pool);
}

Test(death, destroy_while_selected)
{
    NEED_CHECKS();
    ca_death_result r = ca_death_run(destroy_while_selected, NULL);
    cr_assert(r.aborted, "%s", r.out);
    cr_assert(ca_death_has_line(&r, "ctxalloc: switch: test-pool destroyed while selected by 1 threads or contexts"),
              "%s", r.out);
}

static void free_after_destroy(void *arg)
{
    (void)arg;
    sw_ctx_init(&ctx);
    void *p = ca_alloc(sw_ctx_alloc(&ctx), 10, 16);
    ca_switch_free(p);
    sw_pool_destroy(&ctx.pool);
    ca_switch_free(p); /* the allocator is gone */
}

Test(death, free_of_a_block_whose_allocator_was_destroyed)
{
    NEED_CHECKS();
    ca_death_result r = ca_death_run(free_after_destroy, NULL);
    cr_assert(r.aborted, "%s", r.out);
    cr_assert(ca_death_has_line(&r, "ctxalloc: switch: free of a block whose allocator was destroyed"), "%s", r.out);
}

static void realloc_after_destroy(void *arg)
{
    (void)arg;
    sw_ctx_init(&ctx);
    void *p = ca_alloc(sw_ctx_alloc(&ctx), 10, 16);
    ca_switch_free(p);
    sw_pool_destroy(&ctx.pool);
    p = ca_switch_realloc(p, 100);
}

Test(death, realloc_after_destroy_in_every_build)
{
#if defined(SW_BASE_BINNED) && !SW_BASE_BINNED
    cr_skip_test("the glibc and jemalloc bases do not register their memory: a destroyed allocator's pages "
                 "count as unowned (they may be the base's by now), so the realloc goes to the base");
#endif
    ca_death_result r = ca_death_run(realloc_after_destroy, NULL);
    cr_assert(r.aborted, "%s", r.out);
    cr_assert(ca_death_has_line(&r, "ctxalloc: switch: realloc of a block whose allocator was destroyed"), "%s",
              r.out);
}
