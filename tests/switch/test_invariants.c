/* SPDX-License-Identifier: MIT */
/*
 * libswitch invariants with the private header: ca_switch_check after every
 * operation of a seeded random sequence (CA_TEST_SEED, CA_TEST_SCALE) over
 * several contexts with a shadow model of each block's owner; the bootstrap
 * allocator on its own; the registry of adoptions.
 */
#include <criterion/criterion.h>

#include "ca_test.h"
#include "switch_test.h"
#include "switch_private.h"

#define NCTX 4
#define NLIVE 256

Test(invariants, random_ops_with_shadow_owner)
{
    static sw_ctx ctx[NCTX];
    for (int i = 0; i < NCTX; i++)
        cr_assert_eq(sw_ctx_init(&ctx[i]), 0);
    struct {
        char *p;
        size_t n;
        ca_allocator *owner;
    } live[NLIVE] = {{0}};
    ca_rng r = {ca_test_seed()};
    long ops = 4000 * (long)ca_test_scale();
    for (long op = 0; op < ops; op++) {
        int k = (int)ca_rng_below(&r, NLIVE);
        int which = (int)ca_rng_below(&r, NCTX + 1); /* NCTX = global */
        ca_allocator *sel = which == NCTX ? NULL : sw_ctx_alloc(&ctx[which]);
        if (ca_rng_below(&r, 2))
            ca_switch_context_set(sel);
        else
            ca_switch_thread_set(sel), ca_switch_context_set(NULL);
        ca_allocator *expect = sel ? sel : ca_switch_thread() ? ca_switch_thread() : ca_switch_global();
        cr_assert_eq(ca_switch_current(), expect);
        if (!live[k].p) {
            size_t n = (size_t)ca_rng_below(&r, ca_rng_below(&r, 8) ? 300 : 70000);
            int kind = (int)ca_rng_below(&r, 3);
            if (kind == 0) {
                live[k].p = (char *)ca_switch_malloc(n);
            } else if (kind == 1) {
                live[k].p = (char *)ca_switch_calloc(1, n);
                for (size_t i = 0; i < n; i++)
                    cr_assert_eq(live[k].p[i], 0);
            } else {
                live[k].p = (char *)ca_switch_aligned_alloc((size_t)1 << ca_rng_below(&r, 13), n);
            }
            cr_assert_not_null(live[k].p);
            live[k].n = n;
            live[k].owner = expect;
            ca_test_fill(live[k].p, n, (uint64_t)k);
        } else {
            cr_assert_eq(ca_switch_owner(live[k].p), live[k].owner, "op %ld: owner changed", op);
            cr_assert(ca_test_verify(live[k].p, live[k].n, (uint64_t)k), "op %ld: block corrupted", op);
            cr_assert_geq(ca_switch_usable_size(live[k].p), live[k].n);
            if (ca_rng_below(&r, 3) == 0) {
                size_t n = (size_t)ca_rng_below(&r, 5000) + 1;
                char *q = (char *)ca_switch_realloc(live[k].p, n);
                cr_assert_not_null(q);
                cr_assert(ca_test_verify(q, n < live[k].n ? n : live[k].n, (uint64_t)k));
                cr_assert_eq(ca_switch_owner(q), live[k].owner, "realloc keeps the owner");
                live[k].p = q;
                live[k].n = n;
                ca_test_fill(q, n, (uint64_t)k);
            } else {
                ca_switch_free(live[k].p);
                live[k].p = NULL;
            }
        }
        cr_assert_null(ca_switch_check());
    }
    for (int k = 0; k < NLIVE; k++)
        ca_switch_free(live[k].p);
    ca_switch_context_set(NULL);
    ca_switch_thread_set(NULL);
    for (int i = 0; i < NCTX; i++) {
        cr_assert_eq(ctx[i].pool.live, 0, "context %d leaked", i);
        sw_ctx_destroy(&ctx[i]);
    }
    cr_assert_null(ca_switch_check());
}

Test(invariants, bootstrap_allocator)
{
    ca_allocator *b = &ca_switch__boot_allocator;
    size_t used0 = ca_switch__g.boot_used;
    size_t u = 0;
    char *p = (char *)ca_alloc_usable(b, 100, 64, &u);
    cr_assert_not_null(p);
    cr_assert(ca_is_aligned((uintptr_t)p, 64));
    cr_assert(ca_switch__in_boot(p));
    cr_assert_eq(u, 100);
    cr_assert_eq(ca_usable_size(b, p), 100);
    cr_assert(ca_owns(b, p));
    cr_assert_eq(ca_switch_owner(p), b, "bootstrap blocks route to the bootstrap allocator");
    memset(p, 1, 100);
    char *q = (char *)ca_switch_realloc(p, 200);
    cr_assert_not_null(q);
    cr_assert_neq(ca_switch_owner(q), b, "realloc moves a block out of the bootstrap area");
    cr_assert_eq(q[99], 1);
    ca_switch_free(q);
    errno = 0;
    cr_assert_null(ca_alloc(b, 16, 3));
    cr_assert_eq(errno, EINVAL);
    errno = 0;
    cr_assert_null(ca_alloc(b, CA_SWITCH__BOOT_SIZE, 16));
    cr_assert_eq(errno, ENOMEM);
    cr_assert_null(ca_alloc(b, SIZE_MAX - 8, 16));
    cr_assert_gt(ca_switch__g.boot_used, used0);
    ca_stats st;
    cr_assert_eq(ca_stats_get(b, &st), 0);
    cr_assert_eq(st.bytes_in_use, ca_switch__g.boot_used);
    cr_assert_null(ca_switch_check());
}

Test(invariants, registry_of_adoptions)
{
    sw_ctx c[3];
    for (int i = 0; i < 3; i++)
        cr_assert_eq(sw_ctx_init(&c[i]), 0);
    int n = 0;
    for (ca_switch_adopted *a = ca_switch__g.adopted; a; a = a->next)
        n++;
    cr_assert_eq(n, 3);
    cr_assert_null(ca_switch__g.locals, "an adoption's local is not in the registry of locals");
    cr_assert_eq(sw_ctx_destroy(&c[1]), 0);
    cr_assert_eq(ca_switch__g.adopted, &c[2].ad);
    cr_assert_eq(c[2].ad.next, &c[0].ad);
    cr_assert_null(c[0].ad.next);
    cr_assert_null(ca_switch_check());
    cr_assert_eq(sw_ctx_destroy(&c[0]), 0);
    cr_assert_eq(sw_ctx_destroy(&c[2]), 0);
    cr_assert_null(ca_switch__g.adopted);
}

Test(invariants, thread_ids)
{
    cr_assert_neq(ca_switch__self(), 0);
    cr_assert_eq(ca_switch__self(), ca_switch__self());
    cr_assert_eq(ca_switch__g.init, 2 - (ca_switch__g.global == NULL) * 2, "global set iff initialised");
}
