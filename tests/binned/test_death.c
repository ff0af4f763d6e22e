/* SPDX-License-Identifier: MIT */
/* libbinned bad input with checks=on: interior pointer, double free and a
 * pointer not from the allocator abort with one line naming the address
 * (and the class). With checks=off these tests only check that the build
 * says so (the fast path does not look; see the header). */
#include <criterion/criterion.h>

#include "binned_internal.h"
#include "ca_death.h"

static void interior(void *arg)
{
    (void)arg;
    char *p = ca_binned_malloc(40); /* class 48 */
    ca_binned_free(p + 16);
}

static void double_free(void *arg)
{
    (void)arg;
    void *p = ca_binned_malloc(100);
    ca_binned_free(p);
    ca_binned_free(p);
}

static void foreign(void *arg)
{
    (void)arg;
    static char buf[64];
    ca_binned_malloc(8); /* set up */
    ca_binned_free(buf + 16);
}

static void foreign_instance(void *arg)
{
    (void)arg;
    ca_binned *b = NULL;
    ca_binned_options o;
    ca_binned_options_default(&o);
    o.class_range_log2 = 24;
    ca_binned_create(&b, &o);
    void *p = ca_binned_malloc(64); /* default instance's block */
    ca_binned_dealloc(b, p);
}

static void double_free_central(void *arg)
{
    (void)arg;
    /* A double free that reaches the blocks: caught in every build. */
    ca_binned_options o;
    ca_binned_options_default(&o);
    o.class_range_log2 = 24;
    o.flags = CA_BINNED_NO_TCACHE;
    ca_binned *b = NULL;
    ca_binned_create(&b, &o);
    void *keep = ca_binned_alloc(b, 64, 16);
    void *p = ca_binned_alloc(b, 64, 16);
    ca_binned_dealloc(b, p);
    ((uintptr_t *)p)[1] = 0; /* defeat the checks=on canary */
    ca_binned_dealloc(b, p);
    (void)keep;
}

Test(binned_death, interior_pointer)
{
    if (CA_CHECKS < CA_CHECKS_ON)
        cr_skip("checks=off: not detected on the fast path (documented)");
    ca_death_result r = ca_death_run(interior, NULL);
    cr_assert(r.aborted, "%s", r.out);
    cr_assert(ca_death_has_line(&r, "ctxalloc: binned: free of an interior pointer (class 48 B) (address 0x"),
              "%s", r.out);
}

Test(binned_death, double_free)
{
    if (CA_CHECKS < CA_CHECKS_ON)
        cr_skip("checks=off: not detected on the fast path (documented)");
    ca_death_result r = ca_death_run(double_free, NULL);
    cr_assert(r.aborted, "%s", r.out);
    cr_assert(ca_death_has_line(&r, "ctxalloc: binned: double free (class 112 B) (address 0x"), "%s", r.out);
}

Test(binned_death, foreign_pointer)
{
    ca_death_result r = ca_death_run(foreign, NULL);
    cr_assert(r.aborted, "%s", r.out);
    cr_assert(ca_death_has_line(&r, "ctxalloc: binned"), "%s", r.out);
    r = ca_death_run(foreign_instance, NULL);
    cr_assert(r.aborted, "%s", r.out);
    cr_assert(ca_death_has_line(&r, "ctxalloc: binned"), "%s", r.out);
}

Test(binned_death, double_free_in_blocks)
{
    ca_death_result r = ca_death_run(double_free_central, NULL);
    cr_assert(r.aborted, "%s", r.out);
    cr_assert(ca_death_has_line(&r, "ctxalloc: binned: double free (slot already free in its block) (address 0x"),
              "%s", r.out);
}
