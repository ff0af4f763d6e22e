/* SPDX-License-Identifier: MIT */
/*
 * Bad frees caught by the tags at checks=on: double free (also after the
 * block was merged into its free neighbour), interior pointer, foreign
 * pointer, size beyond the block. Each aborts with one line. With checks=off
 * the tests are skipped (nothing is checked then).
 */
#include <criterion/criterion.h>
#include <ctxalloc/rbtree.h>
#include <stdio.h>

#include "ca_death.h"

static ca_rbtree r;

static void double_free(void *arg)
{
    char *p = ca_rbtree_alloc(&r, 100, 16, NULL);
    ca_rbtree_alloc(&r, 100, 16, NULL);
    ca_rbtree_free(&r, p, 100, 16);
    *(char **)arg = p;
    ca_rbtree_free(&r, p, 100, 16);
}

static void double_free_merged(void *arg)
{
    char *a = ca_rbtree_alloc(&r, 100, 16, NULL);
    char *b = ca_rbtree_alloc(&r, 100, 16, NULL);
    ca_rbtree_alloc(&r, 100, 16, NULL);
    /* allocated back to front: b precedes a */
    ca_rbtree_free(&r, b, 100, 16);
    ca_rbtree_free(&r, a, 100, 16); /* a merges into b */
    *(char **)arg = a;
    ca_rbtree_free_unsized(&r, a);
}

static void interior(void *arg)
{
    char *p = ca_rbtree_alloc(&r, 1000, 16, NULL);
    memset(p, 0x5a, 1000);
    *(char **)arg = p + 32;
    ca_rbtree_free(&r, p + 32, 10, 16);
}

static void foreign(void *arg)
{
    static char buf[256] __attribute__((aligned(16)));
    ca_rbtree_alloc(&r, 100, 16, NULL);
    *(char **)arg = buf + 16;
    ca_rbtree_free_unsized(&r, buf + 16);
}

static void oversize(void *arg)
{
    char *p = ca_rbtree_alloc(&r, 100, 16, NULL);
    *(char **)arg = p;
    ca_rbtree_free(&r, p, 5000, 16);
}

static void expect_death(void (*fn)(void *), const char *what)
{
    if (CA_CHECKS < CA_CHECKS_ON)
        cr_skip_test("built with checks=off");
    ca_rbtree_init(&r, NULL);
    char *addr = NULL;
    ca_death_result res = ca_death_run(fn, &addr);
    cr_assert(res.aborted, "%s: did not abort; output: %s", what, res.out);
    char want[256];
    snprintf(want, sizeof want, "ctxalloc: rbtree: %s (address 0x", what);
    cr_assert(ca_death_has_line(&res, want), "%s: got: %s", what, res.out);
    cr_assert_eq(strchr(res.out, '\n'), res.out + strlen(res.out) - 1, "one line: %s", res.out);
    ca_rbtree_destroy(&r);
}

Test(rbtree_death, double_free) { expect_death(double_free, "double free"); }
Test(rbtree_death, double_free_after_merge) { expect_death(double_free_merged, "double free"); }
Test(rbtree_death, interior_pointer) { expect_death(interior, "free of an interior or corrupted pointer (bad block tag)"); }
Test(rbtree_death, foreign_pointer) { expect_death(foreign, "free of a pointer this allocator does not own"); }
Test(rbtree_death, size_beyond_block) { expect_death(oversize, "free with a size larger than the block"); }
