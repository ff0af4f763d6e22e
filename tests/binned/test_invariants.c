/* SPDX-License-Identifier: MIT */
/* libbinned invariants: the bit tree against a shadow bitmap, and
 * ca_binned_check after every operation of a seeded sequence; broken
 * states must be reported. */
#include <criterion/criterion.h>
#include <sys/mman.h>

#include "binned_internal.h"
#include "ca_test.h"

static ca_binned *inst(void)
{
    ca_binned_options o;
    ca_binned_options_init(&o);
    o.class_range_log2 = 26;
    ca_binned *b = NULL;
    cr_assert_eq(ca_binned_create(&b, &o), 0);
    return b;
}

Test(binned_invariants, bit_tree_against_shadow)
{
    static ca_binned__tree t;
    static unsigned char shadow[CA_BINNED__TREE_BITS];
    memset(&t, 0, sizeof t);
    ca_rng r = {ca_test_seed()};
    for (int op = 0; op < 200000; op++) {
        unsigned i = (unsigned)ca_rng_below(&r, op % 3 ? 300 : CA_BINNED__TREE_BITS);
        if (ca_rng_below(&r, 2)) {
            ca_binned__tree_set(&t, i);
            shadow[i] = 1;
        } else {
            ca_binned__tree_clear(&t, i);
            shadow[i] = 0;
        }
        if (op % 97 == 0) {
            long first = -1;
            for (unsigned k = 0; k < CA_BINNED__TREE_BITS; k++)
                if (shadow[k]) {
                    first = k;
                    break;
                }
            cr_assert_eq(ca_binned__tree_first(&t), first);
            unsigned from = (unsigned)ca_rng_below(&r, CA_BINNED__TREE_BITS);
            long nx = -1;
            for (unsigned k = from; k < CA_BINNED__TREE_BITS; k++)
                if (shadow[k]) {
                    nx = k;
                    break;
                }
            cr_assert_eq(ca_binned__tree_next(&t, from), nx, "next from %u", from);
            long pv = -1;
            for (long k = from; k >= 0; k--)
                if (shadow[k]) {
                    pv = k;
                    break;
                }
            cr_assert_eq(ca_binned__tree_prev(&t, from), pv, "prev from %u", from);
            cr_assert_eq(ca_binned__tree_test(&t, i), shadow[i]);
        }
    }
}

Test(binned_invariants, chain_beyond_one_tree)
{
    enum { NT = 5 };
    static ca_binned__tree trees[NT];
    ca_binned__chain c = {0, NT, &trees[NT - 1]}; /* tree t at tree0 - t */
    size_t idx[] = {70000, 16384, 16383, 3, 81919, 40000};
    for (size_t k = 0; k < 6; k++)
        ca_binned__chain_set(&c, idx[k]);
    cr_assert_eq(ca_binned__chain_first(&c), 3);
    cr_assert_eq(ca_binned__chain_next(&c, 4), 16383);
    cr_assert_eq(ca_binned__chain_next(&c, 16384), 16384);
    cr_assert_eq(ca_binned__chain_next(&c, 16385), 40000);
    cr_assert_eq(ca_binned__chain_next(&c, 70001), 81919);
    /* and downwards, as the purge of the excess walks */
    cr_assert_eq(ca_binned__chain_last(&c), 81919);
    cr_assert_eq(ca_binned__chain_prev(&c, 81918), 70000);
    cr_assert_eq(ca_binned__chain_prev(&c, 69999), 40000);
    cr_assert_eq(ca_binned__chain_prev(&c, 16384), 16384);
    cr_assert_eq(ca_binned__chain_prev(&c, 16383), 16383);
    cr_assert_eq(ca_binned__chain_prev(&c, 16382), 3);
    cr_assert_eq(ca_binned__chain_prev(&c, 2), -1);
    cr_assert_eq(ca_binned__chain_prev(&c, (size_t)NT * CA_BINNED__TREE_BITS + 5), 81919);
    ca_binned__chain_clear(&c, 3);
    ca_binned__chain_clear(&c, 16383);
    cr_assert_eq(ca_binned__chain_first(&c), 16384);
    cr_assert_eq(c.summary, 0x16u); /* trees 1, 2 and 4 */
    for (size_t k = 0; k < 6; k++)
        ca_binned__chain_clear(&c, idx[k]);
    cr_assert_eq(c.summary, 0);
    cr_assert_eq(ca_binned__chain_first(&c), -1);
}

Test(binned_invariants, check_after_every_op)
{
    ca_binned *b = inst();
    enum { N = 256 };
    void *live[N] = {0};
    size_t sz[N] = {0};
    ca_rng r = {ca_test_seed()};
    int ops = 3000 * (int)ca_test_scale();
    for (int op = 0; op < ops; op++) {
        unsigned k = (unsigned)ca_rng_below(&r, N);
        if (live[k]) {
            cr_assert(ca_test_verify(live[k], sz[k], k));
            ca_binned_free(b, live[k]);
            live[k] = NULL;
        } else {
            unsigned pick = (unsigned)ca_rng_below(&r, 10);
            sz[k] = pick < 7 ? (size_t)ca_rng_below(&r, 600) : pick < 9 ? (size_t)ca_rng_below(&r, 20000)
                                                                       : (size_t)ca_rng_below(&r, 400000);
            live[k] = ca_binned_alloc(b, sz[k], (size_t)1 << ca_rng_below(&r, 7));
            cr_assert_not_null(live[k]);
            ca_test_fill(live[k], sz[k], k);
        }
        if (op % 500 == 250)
            ca_binned_trim(b);
        if (op % 700 == 350)
            ca_binned_thread_flush(b);
        const char *err = ca_binned_check(b);
        cr_assert_null(err, "op %d: %s", op, err);
    }
    for (unsigned k = 0; k < N; k++)
        ca_binned_free(b, live[k]);
    ca_binned_trim(b);
    cr_assert_null(ca_binned_check(b));
    ca_stats s;
    ca_binned_stats(b, &s);
    cr_assert_eq(s.bytes_in_use, 0);
    ca_binned_destroy(b);
}

/* Each corruption is found by the walk. */
Test(binned_invariants, check_finds_corruption)
{
    ca_binned *b = inst();
    void *p = ca_binned_alloc(b, 40, 16), *q = ca_binned_alloc(b, 40, 16);
    cr_assert_null(ca_binned_check(b));
    ca_binned__class *c = &b->classes[2];

    /* A tree bit flipped. */
    ca_binned__chain_clear(&c->free_tree, 0);
    cr_assert_not_null(ca_binned_check(b));
    ca_binned__chain_set(&c->free_tree, 0);
    cr_assert_null(ca_binned_check(b));

    /* A free count off by one. */
    c->meta[0] += 1;
    cr_assert_not_null(ca_binned_check(b));
    c->meta[0] -= 1;
    cr_assert_null(ca_binned_check(b));

    /* A slot both in the cache and handed out (its shadow still says so). */
    ca_binned__tcache *tc = (ca_binned__tcache *)pthread_getspecific(b->key);
    cr_assert_not_null(tc);
    ca_binned__bin *bin = &tc->bins[2];
    *bin->top++ = q;
    cr_assert_not_null(ca_binned_check(b));
    bin->top--;
    cr_assert_null(ca_binned_check(b));

    /* The same slot in the cache twice. */
    ca_binned_free(b, p);
    cr_assert_null(ca_binned_check(b));
    *bin->top++ = p;
    cr_assert_not_null(ca_binned_check(b));
    bin->top--;
    cr_assert_null(ca_binned_check(b));

    /* A block free-list link without its tag. */
    ca_binned_trim(b); /* p goes back to its block's list */
    cr_assert_null(ca_binned_check(b));
    uint64_t saved = *(uint64_t *)p;
    *(uint32_t *)p ^= 1;
    cr_assert_not_null(ca_binned_check(b));
    *(uint64_t *)p = saved;
    cr_assert_null(ca_binned_check(b));

    /* A free slot marked handed out in the shadow, a wrong mark, a mark
     * between slot starts. */
    uint8_t *sh = ca_binned__shadow(b, p);
    cr_assert_eq(*sh, 0);
    *sh = ca_binned__live_mark(p);
    cr_assert_not_null(ca_binned_check(b));
    *sh = 0;
    cr_assert_null(ca_binned_check(b));
    uint8_t *shq = ca_binned__shadow(b, q);
    cr_assert_eq(*shq, ca_binned__live_mark(q));
    *shq ^= 0x10;
    cr_assert_not_null(ca_binned_check(b));
    *shq ^= 0x10;
    cr_assert_null(ca_binned_check(b));
    uint8_t *mid = ca_binned__shadow(b, (char *)q + 16);
    *mid = 1;
    cr_assert_not_null(ca_binned_check(b));
    *mid = 0;
    cr_assert_null(ca_binned_check(b));
    ca_binned_free(b, q);
    ca_binned_destroy(b);
}
