/* SPDX-License-Identifier: MIT */
/* checks=on: invalid and double frees through the allocator view abort with
 * one line naming the problem. */
#include <criterion/criterion.h>
#include <ctxalloc/arena.h>

#include "ca_death.h"

static ca_arena *make(ca_arena_freelist kind)
{
    ca_arena_options o;
    ca_arena_options_init(&o);
    o.freelist = kind;
    ca_arena *a = NULL;
    cr_assert_eq(ca_arena_create(&a, &o), 0);
    return a;
}

static void double_free(void *arg)
{
    ca_arena *a = make((ca_arena_freelist)(intptr_t)arg);
    ca_allocator *al = ca_arena_allocator(a);
    void *x = ca_alloc(al, 64, 16);
    void *keep = ca_alloc(al, 64, 16);
    (void)keep;
    ca_free(al, x, 64, 16);
    ca_free(al, x, 64, 16);
}

static void foreign_free(void *arg)
{
    ca_arena *a = make(CA_ARENA_FREELIST_OPTIMISTIC);
    static char buf[64];
    ca_free(ca_arena_allocator(a), buf, 64, 16);
}

static void beyond_cursor_free(void *arg)
{
    ca_arena *a = make(CA_ARENA_FREELIST_NONE);
    ca_allocator *al = ca_arena_allocator(a);
    void *x = ca_alloc(al, 64, 16);
    ca_free(al, x, 64, 16); /* rewinds */
    ca_free(al, x, 64, 16); /* now beyond the cursor */
}

Test(arena_death, double_free)
{
    if (CA_CHECKS < 1)
        return; /* the checks are compiled out at checks=off */
    for (intptr_t k = CA_ARENA_FREELIST_OPTIMISTIC; k <= CA_ARENA_FREELIST_PESSIMISTIC; k++) {
        ca_death_result r = ca_death_run(double_free, (void *)k);
        cr_assert(r.aborted, "kind %d: %s", (int)k, r.out);
        cr_assert(strstr(r.out, "ctxalloc: arena: double free"), "%s", r.out);
    }
}

Test(arena_death, foreign_and_beyond_cursor)
{
    if (CA_CHECKS < 1)
        return;
    ca_death_result r = ca_death_run(foreign_free, NULL);
    cr_assert(r.aborted && strstr(r.out, "outside the arena"), "%s", r.out);
    r = ca_death_run(beyond_cursor_free, NULL);
    cr_assert(r.aborted && strstr(r.out, "invalid free"), "%s", r.out);
}
