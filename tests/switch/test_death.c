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
#include "sw_helpers.h"
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
