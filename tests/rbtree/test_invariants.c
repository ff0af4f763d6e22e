/* SPDX-License-Identifier: MIT */
/*
 * Invariants with the private header: the red-black tree alone (random
 * insert / delete / search, ca_rbtree__tree_check after every operation,
 * best fit and minimum compared with a brute-force answer), then the whole
 * allocator with ca_rbtree_check after every operation.
 */
#include <criterion/criterion.h>
#include <stdalign.h>

#include "ca_test.h"
#include "rbtree_internal.h"

/* A free block as tree.c sees it: header word, tag, node. */
typedef struct fake_block {
    alignas(16) size_t word;
    uintptr_t tag;
    rbt_node node;
} fake_block;

#define NNODES 600

static fake_block blocks[NNODES];
static bool in_tree[NNODES];

static size_t brute_best(size_t want, bool exact_min)
{
    size_t best = SIZE_MAX;
    int at = -1;
    for (int i = 0; i < NNODES; i++) {
        if (!in_tree[i])
            continue;
        size_t s = blocks[i].word;
        if ((exact_min || s >= want) && (s < best || (s == best && at > i))) {
            best = s;
            at = i;
        }
    }
    return at < 0 ? SIZE_MAX : (size_t)at;
}

Test(rbtree_invariants, tree_alone_100k_ops)
{
    rbt_node *root = NULL;
    ca_rng rng = {ca_test_seed()};
    size_t live = 0;
    uint64_t ops = 100000 * ca_test_scale();
    for (uint64_t op = 0; op < ops; op++) {
        int i = (int)ca_rng_below(&rng, NNODES);
        unsigned kind = (unsigned)ca_rng_below(&rng, 4);
        if (kind == 0) { /* search */
            rbt_node *f = ca_rbtree__tree_find(root, &blocks[i].node);
            cr_assert_eq(f != NULL, in_tree[i], "op %llu: find(%d) wrong", (unsigned long long)op, i);
            size_t want = 64 + 16 * ca_rng_below(&rng, 400);
            rbt_node *b = ca_rbtree__tree_best(root, want);
            size_t at = brute_best(want, false);
            cr_assert_eq(b, at == SIZE_MAX ? NULL : &blocks[at].node, "op %llu: best(%zu) wrong",
                         (unsigned long long)op, want);
            rbt_node *m = ca_rbtree__tree_min_size(root);
            at = brute_best(0, true);
            cr_assert_eq(m, at == SIZE_MAX ? NULL : &blocks[at].node, "op %llu: min wrong", (unsigned long long)op);
            continue;
        }
        if (in_tree[i]) {
            ca_rbtree__tree_remove(&root, &blocks[i].node);
            in_tree[i] = false;
            live--;
        } else {
            /* few distinct sizes, so ties (lowest address wins) are common */
            blocks[i].word = 64 + 16 * ca_rng_below(&rng, 400);
            ca_rbtree__tree_insert(&root, &blocks[i].node);
            in_tree[i] = true;
            live++;
        }
        size_t count;
        const char *what = ca_rbtree__tree_check(root, &count);
        cr_assert_null(what, "op %llu: %s (seed %llu)", (unsigned long long)op, what,
                       (unsigned long long)ca_test_seed());
        cr_assert_eq(count, live);
    }
    /* in-order iteration visits every node by address */
    size_t n = 0;
    for (rbt_node *x = ca_rbtree__tree_first(root); x; x = ca_rbtree__tree_next(x)) {
        rbt_node *nx = ca_rbtree__tree_next(x);
        cr_assert(!nx || (uintptr_t)nx > (uintptr_t)x);
        n++;
    }
    cr_assert_eq(n, live);
}

Test(rbtree_invariants, tree_check_detects_damage)
{
    rbt_node *root = NULL;
    for (int i = 0; i < 16; i++) {
        blocks[i].word = 64 + 16 * (size_t)i;
        ca_rbtree__tree_insert(&root, &blocks[i].node);
    }
    size_t count;
    cr_assert_null(ca_rbtree__tree_check(root, &count));
    size_t saved = root->max;
    root->max = 1;
    cr_assert_not_null(ca_rbtree__tree_check(root, &count), "stale augmentation detected");
    root->max = saved;
    root->parent_color &= ~(uintptr_t)1; /* paint the root red */
    cr_assert_not_null(ca_rbtree__tree_check(root, &count), "red root detected");
    root->parent_color |= 1;
    rbt_node *l = root->left;
    root->left = root->right;
    root->right = l;
    cr_assert_not_null(ca_rbtree__tree_check(root, &count), "order violation detected");
}

Test(rbtree_invariants, allocator_check_after_every_op)
{
    ca_rbtree r;
    ca_rbtree_options o;
    ca_rbtree_options_init(&o);
    o.region_size = 256 * 1024;
    cr_assert_eq(ca_rbtree_init(&r, &o), 0);
    enum { N = 400 };
    void *p[N] = {0};
    size_t sz[N] = {0};
    ca_rng rng = {ca_test_seed() + 1};
    uint64_t ops = 20000 * ca_test_scale();
    for (uint64_t op = 0; op < ops; op++) {
        size_t i = ca_rng_below(&rng, N);
        unsigned kind = (unsigned)ca_rng_below(&rng, 10);
        size_t s = ca_rng_below(&rng, 4) == 0 ? ca_rng_below(&rng, 70000) : ca_rng_below(&rng, 600);
        size_t align = ca_rng_below(&rng, 8) == 0 ? (size_t)1 << ca_rng_below(&rng, 14) : 16;
        if (!p[i]) {
            p[i] = ca_rbtree_alloc(&r, s, align, NULL);
            cr_assert_not_null(p[i]);
            sz[i] = s;
            ca_test_fill(p[i], s < 64 ? s : 64, i);
        } else if (kind < 4) {
            void *q = ca_rbtree_resize(&r, p[i], sz[i], s, 16, kind == 0 ? CA_RESIZE_IN_PLACE : 0, NULL);
            if (q) {
                size_t keep = sz[i] < s ? sz[i] : s;
                cr_assert(ca_test_verify(q, keep < 64 ? keep : 64, i), "op %llu: resize lost data",
                          (unsigned long long)op);
                p[i] = q;
                sz[i] = s;
                ca_test_fill(q, s < 64 ? s : 64, i);
            } else {
                cr_assert_eq(kind, 0);
                cr_assert(ca_test_verify(p[i], sz[i] < 64 ? sz[i] : 64, i));
            }
        } else {
            cr_assert(ca_test_verify(p[i], sz[i] < 64 ? sz[i] : 64, i), "op %llu: data lost", (unsigned long long)op);
            if (kind & 1)
                ca_rbtree_free(&r, p[i], sz[i], 16);
            else
                ca_rbtree_free_unsized(&r, p[i]);
            p[i] = NULL;
        }
        const char *what = ca_rbtree_check(&r);
        cr_assert_null(what, "op %llu: %s (seed %llu)", (unsigned long long)op, what,
                       (unsigned long long)ca_test_seed());
    }
    for (size_t i = 0; i < N; i++)
        ca_rbtree_free_unsized(&r, p[i]);
    cr_assert_null(ca_rbtree_check(&r));
    ca_stats st;
    ca_rbtree_stats(&r, &st);
    cr_assert_eq(st.bytes_in_use, 0);
    uint64_t regions = 0;
    ca_stats_get_counter(&st, "regions", &regions);
    cr_assert_leq(regions, 1, "all regions but the hysteresis one returned");
    ca_rbtree_destroy(&r);
}

Test(rbtree_invariants, check_detects_corruption)
{
    ca_rbtree r;
    ca_rbtree_init(&r, NULL);
    char *a = ca_rbtree_alloc(&r, 100, 16, NULL);
    char *b = ca_rbtree_alloc(&r, 100, 16, NULL);
    char *c = ca_rbtree_alloc(&r, 100, 16, NULL);
    ca_rbtree_free(&r, b, 100, 16);
    cr_assert_null(ca_rbtree_check(&r));
    void *bb = b - RBT_HDR;
    size_t saved = *rbt_footer(bb);
    *rbt_footer(bb) = 0;
    cr_assert_not_null(ca_rbtree_check(&r), "bad footer detected");
    *rbt_footer(bb) = saved;
    /* Fake "a is free" without merging: adjacent free blocks. a's header is
     * outside the object alloc returned: escape a so the compiler (malloc
     * attribute) keeps the store before the check. */
    __asm__ volatile("" : : "r"(a) : "memory");
    void *ab = a - RBT_HDR;
    size_t w = *rbt_word(ab);
    *rbt_word(ab) = w | RBT_FREE;
    cr_assert_not_null(ca_rbtree_check(&r));
    *rbt_word(ab) = w;
    cr_assert_null(ca_rbtree_check(&r));
    ca_rbtree_free(&r, a, 100, 16);
    ca_rbtree_free(&r, c, 100, 16);
    ca_rbtree_destroy(&r);
}
