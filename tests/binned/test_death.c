/* SPDX-License-Identifier: MIT */
/* libbinned bad input, in every build: interior pointer, double free and a
 * pointer not from the allocator abort with one line naming the address
 * (and the class). test_hardening.c has the misuse of freed memory.
 * The default instance's cases run twice: on a class's first slots (from
 * the starter area) and past them (from the class's blocks), with the
 * same message (arg NULL or not). */
#include <criterion/criterion.h>

#include "binned_test.h"
#include "ca_death.h"

#include <unistd.h>

/* arg != NULL: the class of n bytes leaves its starter share first. */
static void past_starter_if(void *arg, size_t n)
{
    if (arg)
        binned_test_past_starter(n);
}

static void interior(void *arg)
{
    past_starter_if(arg, 40);
    char *p = ca_binned_default_malloc(40); /* class 48 (with checks=on's 8 guard bytes too) */
    ca_binned_default_free(p + 16);
}

static void double_free(void *arg)
{
    past_starter_if(arg, 100);
    void *p = ca_binned_default_malloc(100);
    ca_binned_default_free(p);
    ca_binned_default_free(p);
}

static void foreign(void *arg)
{
    (void)arg;
    static char buf[64];
    ca_binned_default_malloc(8); /* set up */
    ca_binned_default_free(buf + 16);
}

static void wild_in_window(void *arg)
{
    (void)arg;
    /* Inside the default instance's class range, far beyond what the class
     * mapped (the range is 2^24 B or more; the class mapped a few hundred
     * KiB): refused with a message by the range check, where reading the
     * unmapped shadow byte would fault. */
    binned_test_past_starter(64);
    char *p = ca_binned_default_malloc(64);
    ca_binned_default_free(p + ((size_t)12 << 20));
}

static void foreign_instance(void *arg)
{
    (void)arg;
    ca_binned *b = NULL;
    ca_binned_options o;
    ca_binned_options_init(&o);
    o.class_range_log2 = 24;
    ca_binned_create(&b, &o);
    void *p = ca_binned_default_malloc(64); /* default instance's block */
    ca_binned_free(b, p);
}

static ca_binned *no_tcache_instance(void)
{
    ca_binned_options o;
    ca_binned_options_init(&o);
    o.class_range_log2 = 24;
    o.flags = CA_BINNED_NO_TCACHE;
    ca_binned *b = NULL;
    ca_binned_create(&b, &o);
    return b;
}

static void double_free_no_tcache(void *arg)
{
    (void)arg;
    /* No thread cache: the slot is on its block's list when freed again. */
    ca_binned *b = no_tcache_instance();
    void *keep = ca_binned_alloc(b, 40, 16);
    void *p = ca_binned_alloc(b, 40, 16);
    ca_binned_free(b, p);
    ca_binned_free(b, p);
    (void)keep;
}

static void double_put_central(void *arg)
{
    (void)arg;
    /* The blocks' own check, behind the shadow's: a slot already on its
     * block's list comes back. */
    ca_binned *b = no_tcache_instance();
    void *keep = ca_binned_alloc(b, 40, 16);
    void *p = ca_binned_alloc(b, 40, 16);
    ca_binned_free(b, p);
    ca_binned__central_put(b, 2, &p, 1);
    (void)keep;
}

/* realloc of a freed block: in place (the same class) it would hand the
 * caller a block another malloc may hold; moved, it copies freed memory. */
static void realloc_freed_in_place(void *arg)
{
    past_starter_if(arg, 100);
    void *keep = ca_binned_default_malloc(100);
    void *p = ca_binned_default_malloc(100);
    ca_binned_default_free(p);
    (void)ca_binned_default_realloc(p, 104);
    (void)keep;
}

static void realloc_freed_moved(void *arg)
{
    past_starter_if(arg, 100);
    void *p = ca_binned_default_malloc(100);
    ca_binned_default_free(p);
    (void)ca_binned_default_realloc(p, 5000);
}

static void realloc_interior(void *arg)
{
    past_starter_if(arg, 100);
    char *p = (char *)ca_binned_default_malloc(100);
    (void)ca_binned_default_realloc(p + 16, 50);
}

static void resize_freed_instance(void *arg)
{
    (void)arg;
    ca_binned *b = no_tcache_instance();
    void *keep = ca_binned_alloc(b, 40, 16);
    void *p = ca_binned_alloc(b, 40, 16);
    ca_binned_free(b, p);
    ca_allocator *a = ca_binned_allocator(b);
    (void)ca_resize(a, p, 40, 44, 16, 0);
    (void)keep;
}

Test(binned_death, realloc_of_a_freed_block)
{
    static int past = 1;
    void *args[] = {NULL, &past};
    for (int i = 0; i < 2; i++) {
        void *arg = args[i];
        ca_death_result r = ca_death_run(realloc_freed_in_place, arg);
        cr_assert(r.aborted, "%s", r.out);
        cr_assert(ca_death_has_line(&r, "ctxalloc: binned: realloc of a freed block (class 112 B) (address 0x"),
                  "%s", r.out);
        r = ca_death_run(realloc_freed_moved, arg);
        cr_assert(r.aborted, "%s", r.out);
        cr_assert(ca_death_has_line(&r, "ctxalloc: binned: realloc of a freed block (class 112 B) (address 0x"),
                  "%s", r.out);
        r = ca_death_run(realloc_interior, arg);
        cr_assert(r.aborted, "%s", r.out);
        cr_assert(
            ca_death_has_line(&r, "ctxalloc: binned: realloc of an interior pointer (class 112 B) (address 0x"),
            "%s", r.out);
    }
    ca_death_result r = ca_death_run(resize_freed_instance, NULL);
    cr_assert(r.aborted, "%s", r.out);
    cr_assert(ca_death_has_line(&r, "ctxalloc: binned: realloc of a freed block (class 48 B) (address 0x"), "%s",
              r.out);
}

Test(binned_death, interior_pointer)
{
    static int past = 1;
    void *args[] = {NULL, &past};
    for (int i = 0; i < 2; i++) {
        ca_death_result r = ca_death_run(interior, args[i]);
        cr_assert(r.aborted, "%s", r.out);
        cr_assert(ca_death_has_line(&r, "ctxalloc: binned: free of an interior pointer (class 48 B) (address 0x"),
                  "%s", r.out);
    }
}

Test(binned_death, double_free)
{
    static int past = 1;
    void *args[] = {NULL, &past};
    for (int i = 0; i < 2; i++) {
        ca_death_result r = ca_death_run(double_free, args[i]);
        cr_assert(r.aborted, "%s", r.out);
        cr_assert(ca_death_has_line(&r, "ctxalloc: binned: double free (class 112 B) (address 0x"), "%s", r.out);
    }
}

Test(binned_death, foreign_pointer)
{
    ca_death_result r = ca_death_run(foreign, NULL);
    cr_assert(r.aborted, "%s", r.out);
    cr_assert(ca_death_has_line(&r, "ctxalloc: binned"), "%s", r.out);
    r = ca_death_run(wild_in_window, NULL);
    cr_assert(r.aborted, "a wild pointer into the unmapped class range: %s", r.out);
    cr_assert(ca_death_has_line(&r, "ctxalloc: binned"), "%s", r.out);
    r = ca_death_run(foreign_instance, NULL);
    cr_assert(r.aborted, "%s", r.out);
    cr_assert(ca_death_has_line(&r, "ctxalloc: binned"), "%s", r.out);
}

/* checks=on: the guard of a starter slot, as of a block's. */
static void starter_overflow(void *arg)
{
    (void)arg;
    char *p = ca_binned_default_malloc(100);
    if (!ca_binned__in_starter(ca_binned_default(), p))
        _exit(3);
    p[100] ^= 1;
    ca_binned_default_free(p);
}

Test(binned_death, overflow_of_a_starter_slot)
{
    if (CA_CHECKS < CA_CHECKS_ON)
        cr_skip_test("checks=off: no guard bytes after a block");
    ca_death_result r = ca_death_run(starter_overflow, NULL);
    cr_assert(r.aborted, "%s", r.out);
    cr_assert(ca_death_has_line(&r, "ctxalloc: binned: heap overflow past the end of a block (class 112 B)"), "%s",
              r.out);
}

Test(binned_death, double_free_without_tcache)
{
    ca_death_result r = ca_death_run(double_free_no_tcache, NULL);
    cr_assert(r.aborted, "%s", r.out);
    cr_assert(ca_death_has_line(&r, "ctxalloc: binned: double free (class 48 B) (address 0x"), "%s", r.out);
}

Test(binned_death, double_free_in_blocks)
{
    /* The blocks' own check is a second line behind the shadow's (which
     * every build runs on every free): checks=on and full only, so that a
     * release build's put back to the blocks reads no slot. */
    if (CA_CHECKS < CA_CHECKS_ON)
        cr_skip_test("the blocks' list check runs at checks=on and full");
    ca_death_result r = ca_death_run(double_put_central, NULL);
    cr_assert(r.aborted, "%s", r.out);
    cr_assert(ca_death_has_line(&r, "ctxalloc: binned: double free (slot already free in its block) (address 0x"),
              "%s", r.out);
}
