/* SPDX-License-Identifier: MIT */
/* With CA_CHECKS off, CA_CHECK and CA_CHECK_FULL never fire (but still compile);
 * with on, CA_CHECK fires and CA_CHECK_FULL does not. */
#undef CA_CHECKS
#define CA_CHECKS CA_CHECKS_ON
#include <criterion/criterion.h>
#include <ctxalloc/core.h>

#include "ca_death.h"

static void full_is_off(void *arg)
{
    CA_CHECK_FULL(false, "core", arg, "must not fire at level on");
}

static void on_fires(void *arg)
{
    CA_CHECK(false, "core", arg, "fires at level on");
}

Test(tiers, level_on)
{
    ca_death_result r = ca_death_run(full_is_off, NULL);
    cr_assert_not(r.aborted, "got: %s", r.out);
    r = ca_death_run(on_fires, NULL);
    cr_assert(r.aborted);
    cr_assert(ca_death_has_line(&r, "ctxalloc: core: fires at level on (address 0x0) at "), "got: %s", r.out);
}

/* The level is read where each macro expands: from here on the file is
 * compiled as a checks=off translation unit would be. */
#undef CA_CHECKS
#define CA_CHECKS CA_CHECKS_OFF

static void off_is_silent(void *arg)
{
    CA_CHECK(false, "core", arg, "must not fire at level off");
    CA_CHECK_FULL(false, "core", arg, "must not fire at level off");
}

static void assert_fires_when_off(void *arg)
{
    CA_ASSERT(false, "core", arg, "CA_ASSERT fires at every level");
}

Test(tiers, level_off)
{
    ca_death_result r = ca_death_run(off_is_silent, NULL);
    cr_assert_not(r.aborted, "got: %s", r.out);
    r = ca_death_run(assert_fires_when_off, NULL);
    cr_assert(r.aborted);
    cr_assert(ca_death_has_line(&r, "ctxalloc: core: CA_ASSERT fires at every level (address 0x0) at "), "got: %s",
              r.out);
}
