/* SPDX-License-Identifier: MIT */
/*
 * Example: every allocator of the suite behind malloc, each with the same
 * one call (ca_switch_adopt), selected as this thread's allocator.
 *
 * Build: cc adopt_each.c $(pkg-config --cflags --libs --static ctxalloc-switch \
 *            ctxalloc-bump ctxalloc-bitset ctxalloc-rbtree ctxalloc-arena ctxalloc-source)
 */
#include <ctxalloc/arena.h>
#include <ctxalloc/binned.h>
#include <ctxalloc/binned/large.h>
#include <ctxalloc/bitset.h>
#include <ctxalloc/bump.h>
#include <ctxalloc/rbtree.h>
#include <ctxalloc/source.h>
#include <ctxalloc/switch.h>
#include <stdio.h>
#include <string.h>

/* Adopt a, let this thread's mallocs go to it, free them, undo. */
static int use(const char *what, ca_allocator *a)
{
    ca_switch_adopted ad;
    if (ca_switch_adopt(&ad, a) != 0) {
        printf("%s: %s\n", what, ca_last_error());
        return 1;
    }
    ca_switch_thread_set(&ad.base);
    char *p = ca_switch_malloc(100); /* malloc() with the override */
    char *q = ca_switch_realloc(ca_switch_calloc(4, 8), 200);
    int ok = p && q && ca_switch_owner(p) == ca_switch_owner(q);
    ca_switch_free(p);
    ca_switch_free(q);
    ca_switch_thread_set(NULL);
    if (ca_switch_unadopt(&ad) != 0) {
        printf("%s: %s\n", what, ca_last_error());
        return 1;
    }
    printf("%-14s %s\n", what, ok ? "ok" : "FAILED");
    return !ok;
}

int main(void)
{
    int bad = 0;
    ca_source *mm = ca_source_mmap_global();

    ca_bump b; /* free: the tip or nothing; realloc: tip growth or a copy */
    ca_bump_init(&b, mm, NULL);
    bad += use("bump", &b.base);

    ca_bump_shared sh; /* thread-safe */
    ca_bump_shared_init(&sh, mm, NULL);
    bad += use("shared bump", &sh.base);
    ca_bump loc; /* takes whole chunks from the shared one */
    ca_bump_init_local(&loc, &sh, NULL);
    bad += use("local bump", &loc.base);

    ca_bitset *bs = NULL;
    ca_bitset_options bo;
    ca_bitset_options_init(&bo);
    bo.block_size = 64;
    bo.region_size = (size_t)16 << 20;
    bo.source = mm;
    if (ca_bitset_create(&bs, &bo) == 0)
        bad += use("bitset", ca_bitset_allocator(bs));
    else
        bad += printf("bitset: not created\n") > 0;

    ca_rbtree t;
    ca_rbtree_options ro;
    ca_rbtree_options_init(&ro);
    ro.source = mm;
    ca_rbtree_init(&t, &ro);
    bad += use("rbtree", &t.base);

    ca_arena *ar = NULL; /* its allocator view; heap, anonymous or file backing */
    ca_arena_options ao;
    ca_arena_options_init(&ao);
    if (ca_arena_create(&ar, &ao) == 0)
        bad += use("arena", ca_arena_allocator(ar));
    else
        bad += printf("arena: not created\n") > 0;

    ca_binned *bi = NULL; /* registers itself: the adoption only forwards */
    ca_binned_options bio;
    ca_binned_options_init(&bio);
    bio.class_range_log2 = 24; /* 16 MiB of address space per size class */
    if (ca_binned_create(&bi, &bio) == 0)
        bad += use("binned", ca_binned_allocator(bi));
    else
        bad += printf("binned: not created\n") > 0;

    ca_binned_large *lg = NULL;
    if (ca_binned_large_create(&lg, NULL) == 0)
        bad += use("large tier", ca_binned_large_allocator(lg));
    else
        bad += printf("large tier: not created\n") > 0;

    ca_rbtree t2; /* a core adaptor over any of them: thread-safe with a lock */
    ca_rbtree_init(&t2, &ro);
    ca_locked_allocator lk;
    ca_locked_init(&lk, &t2.base, CA_LOCK_MUTEX);
    bad += use("locked rbtree", &lk.base);

    ca_locked_destroy(&lk);
    ca_rbtree_destroy(&t2);
    ca_binned_large_destroy(lg);
    ca_binned_destroy(bi);
    ca_arena_close(ar);
    ca_rbtree_destroy(&t);
    ca_bitset_destroy(bs);
    ca_bump_destroy(&loc);
    ca_bump_shared_destroy(&sh);
    ca_bump_destroy(&b);
    return bad != 0;
}
