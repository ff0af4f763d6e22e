/* SPDX-License-Identifier: MIT */
/* Large-object tier, checks=on: a double free, an interior pointer and a
 * pointer from elsewhere abort with one line naming the address. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "ca_death.h"
#include "large_internal.h"

static ca_binned_large *make(void)
{
    ca_binned_large *l = NULL;
    cr_assert_eq(ca_binned_large_create(&l, NULL), 0);
    return l;
}

static void double_free(void *arg)
{
    ca_binned_large *l = (ca_binned_large *)arg;
    void *p = ca_binned_large_alloc(l, 100000, 16, NULL);
    ca_binned_large_free(l, p);
    ca_binned_large_free(l, p);
}

static void double_free_direct(void *arg)
{
    ca_binned_large *l = (ca_binned_large *)arg;
    void *p = ca_binned_large_alloc(l, (size_t)2 << 30, 16, NULL);
    ca_binned__large_rgn *r = ca_binned__large_map_get(p);
    ca_binned_large_free(l, p);
    (void)r;
    ca_binned_large_free(l, p); /* unmapped: no longer in the region map */
}

static void interior(void *arg)
{
    ca_binned_large *l = (ca_binned_large *)arg;
    char *p = (char *)ca_binned_large_alloc(l, 100000, 16, NULL);
    ca_binned_large_free(l, p + 4096);
}

static void foreign(void *arg)
{
    static char buf[100];
    ca_binned_large_free((ca_binned_large *)arg, buf);
}

static void other_tier(void *arg)
{
    ca_binned_large *l2 = make();
    void *p = ca_binned_large_alloc(l2, 100000, 16, NULL);
    ca_binned_large_free((ca_binned_large *)arg, p);
}

static void expect(void (*fn)(void *), const char *what)
{
    ca_binned_large *l = make();
    ca_death_result r = ca_death_run(fn, l);
    if (CA_CHECKS >= CA_CHECKS_ON) {
        cr_assert(r.aborted, "%s: no abort; output: %s", what, r.out);
        char prefix[128];
        snprintf(prefix, sizeof prefix, "ctxalloc: binned-large: %s (address 0x", what);
        cr_assert(ca_death_has_line(&r, prefix), "%s: output was: %s", what, r.out);
    } else {
        cr_assert_not(r.aborted, "%s: checks=off ignores it", what);
    }
    ca_binned_large_destroy(l);
}

Test(binned_large_death, double_free) { expect(double_free, "double free"); }
Test(binned_large_death, double_free_direct) { expect(double_free_direct, "free of a pointer not from this tier"); }
Test(binned_large_death, interior_pointer) { expect(interior, "free of an interior pointer"); }
Test(binned_large_death, foreign_pointer) { expect(foreign, "free of a pointer not from this tier"); }
Test(binned_large_death, other_tier) { expect(other_tier, "free of a pointer not from this tier"); }
