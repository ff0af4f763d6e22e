/* SPDX-License-Identifier: MIT */
/*
 * The three check tiers. CA_CHECKS is set per translation unit, so this file
 * defines it itself (full) and checks the exact one-line report; a second
 * part checks that lower tiers compile to nothing.
 */
/* The level the libraries were built with (tests/core/meson.build passes the
 * build's CA_CHECKS), captured before this file raises its own level. */
enum { core_built_checks = CA_CHECKS };
#undef CA_CHECKS
#define CA_CHECKS CA_CHECKS_FULL
#include <criterion/criterion.h>
#include <ctxalloc/core.h>

#include "ca_death.h"
#include "ca_test.h"

static void fail_assert(void *arg)
{
    CA_ASSERT(arg == NULL, "core", arg, "the argument was not NULL");
}

static void fail_check(void *arg)
{
    int x = 1;
    CA_CHECK(x == 2, "bump", (void *)(uintptr_t)0xdeadbeef, "double free");
    (void)arg;
}

static void fail_full(void *arg)
{
    CA_CHECK_FULL(false, "rbtree", (void *)(uintptr_t)0x10, "two adjacent free blocks");
    (void)arg;
}

static void pass_all(void *arg)
{
    CA_ASSERT(true, "core", arg, "never");
    CA_CHECK(true, "core", arg, "never");
    CA_CHECK_FULL(true, "core", arg, "never");
}

static void unsized_on_sized(void *arg)
{
    static ca_allocator_ops ops;
    ops = *ca_libc_allocator()->ops;
    ops.free_unsized = NULL;
    ca_allocator a = {&ops};
    ca_free_unsized(&a, arg);
}

static void header_double_free(void *arg)
{
    (void)arg;
    ca_header_allocator h;
    ca_header_init(&h, ca_libc_allocator());
    /* 64-byte alignment puts the header 48 bytes into the inner block, out of
     * reach of the inner allocator's own free-list words. */
    void *p = ca_alloc(&h.base, 24, 64);
    ca_free_unsized(&h.base, p);
    ca_free_unsized(&h.base, p);
}

Test(death, header_double_free_caught)
{
    /* libcore itself is built with the configured checks level. */
    if (core_built_checks < CA_CHECKS_ON)
        cr_skip_test("libcore built with checks=off");
    if (CA_TEST_UNDER_ASAN || ca_test_under_valgrind()) /* both report the read of the freed header */
        cr_skip_test("under AddressSanitizer or valgrind the freed header is poisoned");
    ca_death_result r = ca_death_run(header_double_free, NULL);
    cr_assert(r.aborted);
    cr_assert(ca_death_has_line(&r, "ctxalloc: header: pointer not from this header allocator (bad tag) (address 0x"),
              "got: %s", r.out);
}

static void report_only(void *arg)
{
    ca_check_report("bitset", arg, "largest free run is stale", "x.c", 7);
}

Test(death, report_does_not_abort)
{
    ca_death_result r = ca_death_run(report_only, (void *)(uintptr_t)0xab);
    cr_assert_not(r.aborted);
    cr_assert_str_eq(r.out, "ctxalloc: bitset: largest free run is stale (address 0xab) at x.c:7\n");
}

Test(death, assert_exact_line)
{
    ca_death_result r = ca_death_run(fail_assert, (void *)(uintptr_t)0x1234);
    cr_assert(r.aborted);
    char want[256];
    snprintf(want, sizeof want, "ctxalloc: core: the argument was not NULL (address 0x1234) at %s:", __FILE__);
    cr_assert(ca_death_has_line(&r, want), "got: %s", r.out);
    /* exactly one line */
    cr_assert_eq(strchr(r.out, '\n'), r.out + strlen(r.out) - 1, "got: %s", r.out);
}

Test(death, check_tier)
{
    ca_death_result r = ca_death_run(fail_check, NULL);
    cr_assert(r.aborted);
    cr_assert(ca_death_has_line(&r, "ctxalloc: bump: double free (address 0xdeadbeef) at "), "got: %s", r.out);
}

Test(death, full_tier)
{
    ca_death_result r = ca_death_run(fail_full, NULL);
    cr_assert(r.aborted);
    cr_assert(ca_death_has_line(&r, "ctxalloc: rbtree: two adjacent free blocks (address 0x10) at "), "got: %s",
              r.out);
}

Test(death, passing_checks_do_not_abort)
{
    ca_death_result r = ca_death_run(pass_all, NULL);
    cr_assert_not(r.aborted);
    cr_assert_str_eq(r.out, "");
}

Test(death, unsized_free_without_capability)
{
    ca_death_result r = ca_death_run(unsized_on_sized, (void *)(uintptr_t)0x40);
    cr_assert(r.aborted);
    cr_assert(ca_death_has_line(&r, "ctxalloc: core: unsized free on an allocator without CA_CAP_UNSIZED "
                                    "(address 0x40) at "),
              "got: %s", r.out);
}

/* CA_CHECK_WALK: the one way a component runs its walk under checks=full. */
static const char *walk_broken(const int *x) { return *x ? "counter off by one" : NULL; }

static void fail_walk(void *arg)
{
    static const int one = 1;
    (void)arg;
    CA_CHECK_WALK("arena", &one, walk_broken);
}

static void pass_walk(void *arg)
{
    static const int zero = 0;
    (void)arg;
    CA_CHECK_WALK("arena", &zero, walk_broken);
}

Test(death, walk_reports_what_the_check_names)
{
    ca_death_result r = ca_death_run(fail_walk, NULL);
    cr_assert(r.aborted);
    cr_assert(ca_death_has_line(&r, "ctxalloc: arena: counter off by one (address 0x"), "got: %s", r.out);
    r = ca_death_run(pass_walk, NULL);
    cr_assert_not(r.aborted);
    cr_assert_str_eq(r.out, "");
}
