/* SPDX-License-Identifier: MIT */
/*
 * Every allocator of the suite behind malloc through ca_switch_adopt, as the
 * context and as the thread allocator:
 *   - malloc, calloc, realloc, posix_memalign, aligned_alloc, free and
 *     malloc_usable_size reach the owner (ca_switch_owner is the adoption);
 *   - frees from another thread (queued for single-thread allocators);
 *   - a fork in the middle of a seeded differential stress (>= 20,000
 *     operations, mixed selections over seven adoptions and the global
 *     allocator, a shadow model checking every block's contents and owner
 *     and that no two live blocks overlap);
 *   - bad input: NULL, adopting twice, undoing while selected or with live
 *     blocks, adopting a local owned by another thread, selecting what
 *     free() cannot route, lifetime errors (checks=off counts them).
 *
 * Built twice from this file: with SW_OVERRIDE the override library is
 * linked and the test calls malloc, free, ... themselves (builds without
 * sanitizers); without it, the ca_switch_* functions by name.
 */
#include <criterion/criterion.h>
#include <ctxalloc/arena.h>
#include <ctxalloc/binned.h>
#include <ctxalloc/binned/large.h>
#include <ctxalloc/bitset.h>
#include <ctxalloc/bump.h>
#include <ctxalloc/rbtree.h>
#include <ctxalloc/source.h>
#include <ctxalloc/switch.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ca_test.h"

#ifdef SW_OVERRIDE
#define X_MALLOC malloc
#define X_CALLOC calloc
#define X_REALLOC realloc
#define X_FREE free
#define X_MEMALIGN posix_memalign
#define X_ALIGNED aligned_alloc
#define X_USABLE malloc_usable_size
#else
#define X_MALLOC ca_switch_malloc
#define X_CALLOC ca_switch_calloc
#define X_REALLOC ca_switch_realloc
#define X_FREE ca_switch_free
#define X_MEMALIGN ca_switch_posix_memalign
#define X_ALIGNED ca_switch_aligned_alloc
#define X_USABLE ca_switch_usable_size
#endif

/* A failed assertion leaves the test early, perhaps with an allocator still
 * selected that is about to go away: the runner's own mallocs must not land
 * in it. */
static void clear_selection(void)
{
    ca_switch_context_set(NULL);
    ca_switch_thread_set(NULL);
}

TestSuite(adopt, .fini = clear_selection);

/* ------------------------------------------------------------------------
 * One maker per allocator kind
 * ------------------------------------------------------------------------ */

typedef struct subject {
    const char *name;
    ca_allocator *a;
    /* storage of the allocator (only the members the kind uses) */
    ca_bump bump;
    ca_bump_shared shared;
    ca_rbtree tree;
    ca_bitset *bitset;
    ca_arena *arena;
    ca_binned *binned;
    ca_binned_large *large;
    ca_locked_allocator locked;
    ca_header_allocator header;
    int kind;
} subject;

enum {
    K_BUMP_SOURCE,
    K_BUMP_PARENT,
    K_BUMP_SHARED,
    K_BUMP_LOCAL,
    K_BITSET,
    K_RBTREE,
    K_RBTREE_PARENT,
    K_ARENA_ANON,
    K_ARENA_HEAP,
    K_BINNED,
    K_LARGE,
    K_LOCKED_RBTREE,
    K_HEADER_BUMP,
    K_COUNT
};

static const char *const kind_names[K_COUNT] = {
    "bump over mmap", "bump over a parent allocator", "shared bump", "local bump of a shared one",
    "bitset", "rbtree over mmap", "rbtree over a parent allocator", "arena (anonymous)", "arena (heap)",
    "binned instance", "large tier", "locked adaptor over rbtree", "header adaptor over bump",
};

static void make(subject *s, int kind)
{
    memset(s, 0, sizeof *s);
    s->kind = kind;
    s->name = kind_names[kind];
    int e = 0;
    switch (kind) {
    case K_BUMP_SOURCE:
        e = ca_bump_init(&s->bump, ca_source_mmap_global(), NULL);
        s->a = &s->bump.base;
        break;
    case K_BUMP_PARENT:
        e = ca_bump_init_allocator(&s->bump, ca_libc_allocator(), NULL);
        s->a = &s->bump.base;
        break;
    case K_BUMP_SHARED:
        e = ca_bump_shared_init(&s->shared, ca_source_mmap_global(), NULL);
        s->a = &s->shared.base;
        break;
    case K_BUMP_LOCAL:
        e = ca_bump_shared_init(&s->shared, ca_source_mmap_global(), NULL);
        if (!e)
            e = ca_bump_init_local(&s->bump, &s->shared, NULL);
        s->a = &s->bump.base;
        break;
    case K_BITSET: {
        ca_bitset_options o;
        ca_bitset_options_init(&o);
        o.block_size = 64;
        o.region_size = (size_t)16 << 20;
        o.source = ca_source_mmap_global();
        e = ca_bitset_create(&s->bitset, &o);
        s->a = e ? NULL : ca_bitset_allocator(s->bitset);
        break;
    }
    case K_RBTREE:
    case K_RBTREE_PARENT:
    case K_LOCKED_RBTREE: {
        ca_rbtree_options o;
        ca_rbtree_options_init(&o);
        if (kind == K_RBTREE_PARENT)
            o.parent = ca_libc_allocator();
        else
            o.source = ca_source_mmap_global();
        e = ca_rbtree_init(&s->tree, &o);
        s->a = &s->tree.base;
        if (!e && kind == K_LOCKED_RBTREE) {
            e = ca_locked_init(&s->locked, &s->tree.base, CA_LOCK_MUTEX);
            s->a = &s->locked.base;
        }
        break;
    }
    case K_ARENA_ANON:
    case K_ARENA_HEAP: {
        ca_arena_options o;
        ca_arena_options_init(&o);
        o.capacity = (uint64_t)64 << 20;
        o.backing = kind == K_ARENA_ANON ? CA_ARENA_BACKING_ANON : CA_ARENA_BACKING_HEAP;
        e = ca_arena_create(&s->arena, &o);
        s->a = e ? NULL : ca_arena_allocator(s->arena);
        break;
    }
    case K_BINNED: {
        ca_binned_options o;
        ca_binned_options_init(&o);
        o.class_range_log2 = 24;
        e = ca_binned_create(&s->binned, &o);
        s->a = e ? NULL : ca_binned_allocator(s->binned);
        break;
    }
    case K_LARGE:
        e = ca_binned_large_create(&s->large, NULL);
        s->a = e ? NULL : ca_binned_large_allocator(s->large);
        break;
    case K_HEADER_BUMP:
        e = ca_bump_init(&s->bump, ca_source_mmap_global(), NULL);
        if (!e)
            e = ca_header_init(&s->header, &s->bump.base);
        s->a = &s->header.base;
        break;
    }
    cr_assert_eq(e, 0, "%s: cannot create (%d)", s->name, e);
}

static void unmake(subject *s)
{
    switch (s->kind) {
    case K_BUMP_SOURCE:
    case K_BUMP_PARENT:
    case K_HEADER_BUMP:
        ca_bump_destroy(&s->bump);
        break;
    case K_BUMP_SHARED:
        ca_bump_shared_destroy(&s->shared);
        break;
    case K_BUMP_LOCAL:
        ca_bump_destroy(&s->bump);
        ca_bump_shared_destroy(&s->shared);
        break;
    case K_BITSET:
        ca_bitset_destroy(s->bitset);
        break;
    case K_LOCKED_RBTREE:
        ca_locked_destroy(&s->locked);
        ca_rbtree_destroy(&s->tree);
        break;
    case K_RBTREE:
    case K_RBTREE_PARENT:
        ca_rbtree_destroy(&s->tree);
        break;
    case K_ARENA_ANON:
    case K_ARENA_HEAP:
        ca_arena_close(s->arena);
        break;
    case K_BINNED:
        ca_binned_destroy(s->binned);
        break;
    case K_LARGE:
        ca_binned_large_destroy(s->large);
        break;
    }
}

/* The owner free() must find for blocks of the adoption. */
static ca_allocator *expected_owner(ca_switch_adopted *ad, subject *s)
{
    unsigned need = CA_CAP_OWNER_MAP | CA_CAP_UNSIZED;
    return (ca_allocator_caps(s->a) & need) == need ? s->a : &ad->base;
}

/* ------------------------------------------------------------------------
 * The malloc family reaches the owner
 * ------------------------------------------------------------------------ */

typedef struct batch {
    void *p[64];
    int n;
} batch;

static void *free_batch(void *arg)
{
    batch *b = (batch *)arg;
    for (int i = 0; i < b->n; i++)
        X_FREE(b->p[i]);
    return NULL;
}

/* Run fn(arg) on a new thread. glibc allocates a new thread's TLS with
 * malloc, from the allocator selected at pthread_create, and keeps it with
 * the cached stack after the thread ends: the documented remedy is to start
 * threads with nothing selected. */
static void on_another_thread(void *(*fn)(void *), void *arg)
{
    ca_allocator *ctx = ca_switch_context(), *thr = ca_switch_thread();
    ca_switch_context_set(NULL);
    ca_switch_thread_set(NULL);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, fn, arg), 0);
    pthread_join(t, NULL);
    ca_switch_thread_set(thr);
    ca_switch_context_set(ctx);
}

static void select_it(ca_allocator *a, bool context)
{
    if (context)
        cr_assert_eq(ca_switch_context_try_set(a, NULL), 0);
    else
        cr_assert_eq(ca_switch_thread_try_set(a, NULL), 0);
}

static void family_reaches_owner(int kind, bool context)
{
    static subject s; /* not on the stack: it outlives a failed assertion */
    make(&s, kind);
    ca_switch_adopted ad;
    cr_assert_eq(ca_switch_adopt(&ad, s.a), 0, "%s: %s", s.name, ca_last_error());
    ca_allocator *owner = expected_owner(&ad, &s);
    select_it(&ad.base, context);
    cr_assert_eq(ca_switch_current(), &ad.base);

    char *p = (char *)X_MALLOC(100);
    cr_assert_not_null(p, "%s: malloc", s.name);
    cr_assert_eq(ca_switch_owner(p), owner, "%s: malloc's block is owned by the adoption", s.name);
    ca_test_fill(p, 100, 1);
    char *z = (char *)X_CALLOC(10, 30);
    cr_assert_not_null(z);
    cr_assert_eq(ca_switch_owner(z), owner, "%s: calloc", s.name);
    for (int i = 0; i < 300; i++)
        cr_assert_eq(z[i], 0, "%s: calloc zero-fills", s.name);
    cr_assert_geq(X_USABLE(z), 300, "%s: usable size", s.name);
    char *q = (char *)X_REALLOC(p, 3000);
    cr_assert_not_null(q, "%s: realloc", s.name);
    cr_assert(ca_test_verify(q, 100, 1), "%s: realloc keeps the contents", s.name);
    cr_assert_eq(ca_switch_owner(q), owner, "%s: realloc keeps the owner", s.name);
    cr_assert_geq(X_USABLE(q), 3000);
    q = (char *)X_REALLOC(q, 40);
    cr_assert(ca_test_verify(q, 40, 1), "%s: shrinking keeps the contents", s.name);
    void *m = NULL;
    cr_assert_eq(X_MEMALIGN(&m, 256, 500), 0, "%s: posix_memalign", s.name);
    cr_assert(ca_is_aligned((uintptr_t)m, 256));
    cr_assert_eq(ca_switch_owner(m), owner, "%s: posix_memalign", s.name);
    void *al = X_ALIGNED(64, 200);
    cr_assert_not_null(al);
    cr_assert(ca_is_aligned((uintptr_t)al, 64));
    cr_assert_eq(ca_switch_owner(al), owner);
    void *zero = X_MALLOC(0);
    cr_assert_not_null(zero, "%s: malloc(0) gives a unique pointer", s.name);
    cr_assert_eq(ca_switch_owner(zero), owner);
    X_FREE(zero);
    X_FREE(al);
    X_FREE(m);
    X_FREE(z);
    X_FREE(q);

    /* frees from another thread: queued to the owner (single-thread) or
     * freed there (thread-safe); the adoption counts them all */
    batch b = {.n = 64};
    for (int i = 0; i < b.n; i++) {
        b.p[i] = X_MALLOC((size_t)(16 + 40 * i));
        cr_assert_not_null(b.p[i]);
        cr_assert_eq(ca_switch_owner(b.p[i]), owner);
    }
    on_another_thread(free_batch, &b);
    void *after = X_MALLOC(24); /* drains the queue on the owner */
    X_FREE(after);
    cr_assert_eq(ca_switch_adopt_live(&ad), 0, "%s: every block counted back", s.name);
    cr_assert_null(ca_switch_check());

    /* undo: refused while selected, then done */
    cr_assert_eq(ca_switch_unadopt(&ad), EBUSY, "%s: undone while selected", s.name);
    cr_assert_not_null(strstr(ca_last_error(), "still selected"), "%s", ca_last_error());
    select_it(NULL, context);
    cr_assert_eq(ca_switch_unadopt(&ad), 0, "%s: %s", s.name, ca_last_error());
    cr_assert_null(ca_switch_check());
    unmake(&s);
}

#define FAMILY_TESTS(k, id)                                                                        \
    Test(adopt, id##_as_context) { family_reaches_owner(k, true); }                                \
    Test(adopt, id##_as_thread) { family_reaches_owner(k, false); }

FAMILY_TESTS(K_BUMP_SOURCE, bump)
FAMILY_TESTS(K_BUMP_PARENT, bump_parent)
FAMILY_TESTS(K_BUMP_SHARED, bump_shared)
FAMILY_TESTS(K_BUMP_LOCAL, bump_local)
FAMILY_TESTS(K_BITSET, bitset)
FAMILY_TESTS(K_RBTREE, rbtree)
FAMILY_TESTS(K_RBTREE_PARENT, rbtree_parent)
FAMILY_TESTS(K_ARENA_ANON, arena_anon)
FAMILY_TESTS(K_ARENA_HEAP, arena_heap)
FAMILY_TESTS(K_BINNED, binned)
FAMILY_TESTS(K_LARGE, large)
FAMILY_TESTS(K_LOCKED_RBTREE, locked_rbtree)
FAMILY_TESTS(K_HEADER_BUMP, header_bump)

/* ------------------------------------------------------------------------
 * Bump behind malloc: tip free, tip growth, reset ends every block
 * ------------------------------------------------------------------------ */

Test(adopt, bump_tip_free_and_growth)
{
    subject s;
    make(&s, K_BUMP_SOURCE);
    ca_switch_adopted ad;
    cr_assert_eq(ca_switch_adopt(&ad, s.a), 0, "%s", ca_last_error());
    select_it(&ad.base, true);
    char *a = (char *)X_MALLOC(64);
    char *b = (char *)X_MALLOC(64);
    ca_stats st0, st1;
    ca_stats_get(s.a, &st0);
    X_FREE(b); /* the tip: really reclaimed */
    char *c = (char *)X_MALLOC(64);
    cr_assert_eq(c, b, "a tip free is reused by the next allocation");
    ca_test_fill(c, 64, 3);
    char *g = (char *)X_REALLOC(c, 1000);
    cr_assert_eq(g, c, "realloc of the tip grows in place");
    cr_assert(ca_test_verify(g, 64, 3));
    X_FREE(a); /* not the tip: nothing to do, and nothing breaks */
    ca_stats_get(s.a, &st1);
    cr_assert_geq(st1.bytes_in_use, st0.bytes_in_use - 128);
    /* reset ends every block at once: by design for a bump, not an error */
    ca_switch_counters c0, c1;
    ca_switch_counters_get(&c0);
    ca_bump_reset(&s.bump);
    ca_switch_counters_get(&c1);
    cr_assert_eq(c1.lifetime_errors, c0.lifetime_errors);
    cr_assert_eq(ca_switch_adopt_live(&ad), 0);
    char *d = (char *)X_MALLOC(64);
    cr_assert_eq(ca_switch_owner(d), &ad.base);
    select_it(NULL, true);
    cr_assert_eq(ca_switch_unadopt(&ad), 0, "a bump may be undone with live blocks (free does nothing)");
    unmake(&s);
}

/* ------------------------------------------------------------------------
 * Differential stress with a fork in the middle
 * ------------------------------------------------------------------------ */

#define NSUBJ 7
#define NLIVE 512

typedef struct shadow {
    char *p;
    size_t n;
    uint64_t tag;
    ca_allocator *owner;
} shadow;

static shadow live[NLIVE];

static void no_overlap(const char *p, size_t n, int self)
{
    size_t len = n ? n : 1;
    for (int i = 0; i < NLIVE; i++) {
        if (i == self || !live[i].p)
            continue;
        size_t m = live[i].n ? live[i].n : 1;
        cr_assert(p + len <= live[i].p || live[i].p + m <= p, "block %p+%zu overlaps live block %p+%zu", (void *)p,
                  n, (void *)live[i].p, live[i].n);
    }
}

/* Child of the fork: every block intact, frees and allocations work. */
static int child_checks(ca_allocator *sel[], int nsel)
{
    for (int i = 0; i < NLIVE; i++) {
        if (!live[i].p)
            continue;
        if (!ca_test_verify(live[i].p, live[i].n, live[i].tag) || ca_switch_owner(live[i].p) != live[i].owner)
            return 1;
        if (i % 2)
            X_FREE(live[i].p), live[i].p = NULL;
    }
    for (int k = 0; k < nsel; k++) {
        if (ca_switch_context_try_set(sel[k], NULL) != 0)
            return 2;
        for (int j = 0; j < 50; j++) {
            char *p = (char *)X_MALLOC((size_t)(j * 37 + 1));
            if (!p)
                return 3;
            memset(p, 0x5a, (size_t)(j * 37 + 1));
            X_FREE(p);
        }
    }
    ca_switch_context_set(NULL);
    return 0;
}

Test(adopt, differential_stress_with_fork, .timeout = 120)
{
    static const int kinds[NSUBJ] = {K_RBTREE,     K_BUMP_SOURCE, K_BITSET,     K_BINNED,
                                     K_ARENA_ANON, K_LARGE,       K_BUMP_SHARED};
    static subject subj[NSUBJ];
    static ca_switch_adopted ad[NSUBJ];
    ca_allocator *sel[NSUBJ + 1];
    for (int i = 0; i < NSUBJ; i++) {
        make(&subj[i], kinds[i]);
        cr_assert_eq(ca_switch_adopt(&ad[i], subj[i].a), 0, "%s: %s", subj[i].name, ca_last_error());
        sel[i] = &ad[i].base;
    }
    sel[NSUBJ] = NULL; /* the global allocator */
    memset(live, 0, sizeof live);
    ca_rng r = {ca_test_seed()};
    long ops = 20000 * (long)ca_test_scale();
    batch remote = {.n = 0};
    for (long op = 0; op < ops; op++) {
        int k = (int)ca_rng_below(&r, NLIVE);
        int w = (int)ca_rng_below(&r, NSUBJ + 1);
        /* mixed selections: context, thread, or both cleared */
        switch (ca_rng_below(&r, 4)) {
        case 0:
            cr_assert_eq(ca_switch_context_try_set(sel[w], NULL), 0);
            break;
        case 1:
            cr_assert_eq(ca_switch_thread_try_set(sel[w], NULL), 0);
            ca_switch_context_set(NULL);
            break;
        default:
            break;
        }
        ca_allocator *cur = ca_switch_current();
        ca_allocator *expect = cur;
        for (int i = 0; i < NSUBJ; i++)
            if (cur == &ad[i].base)
                expect = expected_owner(&ad[i], &subj[i]);
        if (!live[k].p) {
            size_t n = (size_t)ca_rng_below(&r, ca_rng_below(&r, 8) ? 300 : 20000);
            char *p;
            switch (ca_rng_below(&r, 3)) {
            case 0:
                p = (char *)X_MALLOC(n);
                break;
            case 1:
                p = (char *)X_CALLOC(1, n);
                for (size_t i = 0; p && i < n; i++)
                    cr_assert_eq(p[i], 0, "op %ld: calloc", op);
                break;
            default: {
                void *m = NULL;
                cr_assert_eq(X_MEMALIGN(&m, (size_t)16 << ca_rng_below(&r, 6), n), 0, "op %ld", op);
                p = (char *)m;
            }
            }
            cr_assert_not_null(p, "op %ld: allocation of %zu failed", op, n);
            no_overlap(p, n, k);
            live[k] = (shadow){p, n, (uint64_t)op, ca_switch_owner(p)};
            if (expect != ca_switch_global())
                cr_assert_eq(live[k].owner, expect, "op %ld: block owned by its selection", op);
            ca_test_fill(p, n, live[k].tag);
        } else {
            cr_assert(ca_test_verify(live[k].p, live[k].n, live[k].tag), "op %ld: block corrupted", op);
            cr_assert_eq(ca_switch_owner(live[k].p), live[k].owner, "op %ld: owner changed", op);
            cr_assert_geq(X_USABLE(live[k].p), live[k].n);
            uint64_t act = ca_rng_below(&r, 6);
            if (act == 0) {
                size_t n = (size_t)ca_rng_below(&r, 6000) + 1;
                char *q = (char *)X_REALLOC(live[k].p, n);
                cr_assert_not_null(q, "op %ld: realloc", op);
                cr_assert(ca_test_verify(q, n < live[k].n ? n : live[k].n, live[k].tag), "op %ld: realloc", op);
                live[k].p = q;
                live[k].n = n;
                no_overlap(q, n, k);
                live[k].owner = ca_switch_owner(q);
                ca_test_fill(q, n, live[k].tag);
            } else if (act == 1 && remote.n < 64) {
                remote.p[remote.n++] = live[k].p; /* freed by another thread, in a batch */
                live[k].p = NULL;
            } else {
                X_FREE(live[k].p);
                live[k].p = NULL;
            }
        }
        if (remote.n == 64 || (op % 997 == 0 && remote.n)) {
            on_another_thread(free_batch, &remote);
            remote.n = 0;
        }
        if (op == ops / 2) {
            fflush(NULL);
            pid_t pid = fork();
            cr_assert_geq(pid, 0);
            if (pid == 0)
                _exit(child_checks(sel, NSUBJ));
            int st = 0;
            cr_assert_eq(waitpid(pid, &st, 0), pid);
            cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "fork child failed (%d)", st);
        }
        if (op % 64 == 0)
            cr_assert_null(ca_switch_check());
    }
    free_batch(&remote);
    for (int k = 0; k < NLIVE; k++)
        if (live[k].p)
            X_FREE(live[k].p);
    ca_switch_context_set(NULL);
    ca_switch_thread_set(NULL);
    void *g = X_MALLOC(0); /* nothing selected: the global allocator */
    cr_assert_eq(ca_switch_owner(g), ca_switch_global());
    X_FREE(g);
    for (int i = 0; i < NSUBJ; i++) {
        if (ad[i].flags & 0x2u)
            ca_switch_local_drain(&ad[i].local);
        cr_assert_eq(ca_switch_adopt_live(&ad[i]), 0, "%s: live blocks left", subj[i].name);
        cr_assert_eq(ca_switch_unadopt(&ad[i]), 0, "%s: %s", subj[i].name, ca_last_error());
        unmake(&subj[i]);
    }
    cr_assert_null(ca_switch_check());
}

/* ------------------------------------------------------------------------
 * Bad input
 * ------------------------------------------------------------------------ */

Test(adopt, bad_input)
{
    ca_switch_adopted ad, ad2;
    cr_assert_eq(ca_switch_adopt(NULL, ca_libc_allocator()), EINVAL);
    cr_assert_eq(ca_switch_adopt(&ad, NULL), EINVAL);
    cr_assert_not_null(strstr(ca_last_error(), "NULL allocator"));
    cr_assert_eq(ca_switch_unadopt(NULL), EINVAL);
    /* libc's allocator cannot report its memory */
    cr_assert_eq(ca_switch_adopt(&ad, ca_libc_allocator()), ENOTSUP);
    cr_assert_not_null(strstr(ca_last_error(), "cannot report its memory"), "%s",
                       ca_last_error());
    subject s;
    make(&s, K_RBTREE);
    cr_assert_eq(ca_switch_adopt(&ad, s.a), 0);
    cr_assert_eq(ca_switch_adopt(&ad, s.a), EBUSY, "the same storage twice");
    cr_assert_eq(ca_switch_adopt(&ad2, s.a), EBUSY, "the same allocator twice");
    cr_assert_not_null(strstr(ca_last_error(), "already adopted"), "%s", ca_last_error());
    cr_assert_eq(ca_switch_adopt(&ad2, &ad.base), EINVAL, "an adoption of an adoption");
    /* live blocks: undo refused with the count */
    cr_assert_eq(ca_switch_context_try_set(&ad.base, NULL), 0);
    void *p = X_MALLOC(10), *q = X_MALLOC(20);
    ca_switch_context_set(NULL);
    cr_assert_eq(ca_switch_unadopt(&ad), EBUSY);
    cr_assert_not_null(strstr(ca_last_error(), "2 live blocks"), "%s", ca_last_error());
    X_FREE(p);
    X_FREE(q);
    cr_assert_eq(ca_switch_unadopt(&ad), 0);
    cr_assert_eq(ca_switch_unadopt(&ad), EINVAL, "undone twice");
    /* an undone adoption is not routable any more */
    ca_allocator *prev = (ca_allocator *)1;
    cr_assert_eq(ca_switch_context_try_set(&ad.base, &prev), EINVAL);
    cr_assert_null(prev);
    cr_assert_null(ca_switch_context());
    unmake(&s);
}

static int foreign_result;
static char foreign_message[CA_LAST_ERROR_MAX];

static void *adopt_foreign_local(void *arg)
{
    ca_switch_adopted ad;
    foreign_result = ca_switch_adopt(&ad, *(ca_allocator **)arg);
    snprintf(foreign_message, sizeof foreign_message, "%s", ca_last_error() ? ca_last_error() : "(none)");
    return NULL;
}

Test(adopt, local_of_another_thread)
{
    subject s;
    make(&s, K_RBTREE);
    ca_switch_local l;
    cr_assert_eq(ca_switch_local_init(&l, s.a), 0);
    static ca_allocator *arg;
    arg = &l.base;
    on_another_thread(adopt_foreign_local, &arg);
    cr_assert_eq(foreign_result, EPERM);
    /* a hand-made local is not routable by itself, but its owner can adopt it */
    cr_assert_eq(ca_switch_context_try_set(&l.base, NULL), EINVAL);
    ca_switch_adopted ad;
    cr_assert_eq(ca_switch_adopt(&ad, &l.base), 0, "%s", ca_last_error());
    cr_assert_eq(ca_switch_context_try_set(&ad.base, NULL), 0);
    void *p = X_MALLOC(100);
    cr_assert_eq(ca_switch_owner(p), &ad.base);
    X_FREE(p);
    ca_switch_context_set(NULL);
    cr_assert_eq(ca_switch_unadopt(&ad), 0);
    ca_switch_local_destroy(&l);
    unmake(&s);
}

Test(adopt, setters_refuse_unroutable)
{
    subject s;
    make(&s, K_RBTREE);
    ca_allocator *prev = (ca_allocator *)1;
    cr_assert_eq(ca_switch_context_try_set(s.a, &prev), EINVAL, "an rbtree free() cannot route");
    cr_assert_null(prev);
    cr_assert_eq(ca_switch_thread_try_set(s.a, NULL), EINVAL);
    cr_assert_null(ca_switch_context());
    cr_assert_null(ca_switch_thread());
    /* a binned instance registers itself: routable as it is */
    subject b;
    make(&b, K_BINNED);
    cr_assert_eq(ca_switch_context_try_set(b.a, NULL), 0);
    void *p = X_MALLOC(50);
    cr_assert_eq(ca_switch_owner(p), b.a);
    X_FREE(p);
    ca_switch_context_set(NULL);
    unmake(&b);
    unmake(&s);
}

#if CA_CHECKS == CA_CHECKS_OFF
/* checks=off: refusals and lifetime errors are counted, never corrupting. */
Test(adopt, release_counts_refusals_and_lifetime_errors)
{
    subject s;
    make(&s, K_RBTREE);
    ca_switch_counters c0, c1;
    ca_switch_counters_get(&c0);
    errno = 0;
    cr_assert_null(ca_switch_context_set(s.a), "refused: the previous selection is kept");
    cr_assert_eq(errno, EINVAL);
    cr_assert_null(ca_switch_context());
    ca_switch_adopted ad;
    cr_assert_eq(ca_switch_adopt(&ad, s.a), 0);
    ca_switch_context_set(&ad.base);
    char *p = (char *)X_MALLOC(64);
    ca_switch_context_set(NULL);
    ca_rbtree_destroy(&s.tree); /* with a live block */
    ca_switch_counters_get(&c1);
    cr_assert_eq(c1.refused_selections, c0.refused_selections + 1);
    cr_assert_eq(c1.lifetime_errors, c0.lifetime_errors + 1);
#if !defined(SW_BASE_BINNED) || SW_BASE_BINNED
    cr_assert_str_eq(ca_allocator_name(ca_switch_owner(p)), "switch-retired", "its pages are retired");
    X_FREE(p); /* the block's allocator is gone: reported as exactly that, nothing touched */
    ca_switch_counters_get(&c1);
    cr_assert_eq(c1.retired_frees, c0.retired_frees + 1);
#else
    /* A base that does not register its memory (glibc, jemalloc) may own
     * those pages by now: they are unowned, not retired, and the block is
     * not freed (it would go to the base). */
    cr_assert_neq(ca_switch_owner(p), &ad.base);
#endif
    errno = 0;
    cr_assert_eq(ca_switch_context_try_set(&ad.base, NULL), EINVAL, "a destroyed allocator is not routable");
    cr_assert_eq(ca_switch_unadopt(&ad), 0);
}
#endif

/* The reason of a refused adoption is the calling thread's last error and
 * names the allocator; a refusal in another thread is not seen here. */
Test(adopt, refusals_set_the_last_error)
{
    subject s;
    make(&s, K_RBTREE);
    ca_switch_local l;
    cr_assert_eq(ca_switch_local_init(&l, s.a), 0);
    static ca_allocator *arg;
    arg = &l.base;
    ca_last_error_clear();
    on_another_thread(adopt_foreign_local, &arg);
    cr_assert_eq(foreign_result, EPERM);
    cr_assert_not_null(strstr(foreign_message, "switch: "), "%s", foreign_message);
    cr_assert_not_null(strstr(foreign_message, "owned by another thread"), "%s", foreign_message);
    cr_assert_null(ca_last_error(), "another thread's refusal: %s", ca_last_error());
    ca_switch_local_destroy(&l);
    unmake(&s);

    /* Refused by the listener while attaching (a region that is not whole
     * pages): its own reason, naming the range. */
    static _Alignas(4096) unsigned char buf[3 * 4096];
    ca_bitset_options o;
    ca_bitset_options_init(&o);
    o.buffer = buf + 64;
    o.region_size = 8192;
    ca_bitset *b = NULL;
    cr_assert_eq(ca_bitset_create(&b, &o), 0);
    ca_switch_adopted ad;
    cr_assert_eq(ca_switch_adopt(&ad, ca_bitset_allocator(b)), EINVAL);
    cr_assert_not_null(strstr(ca_last_error(), "switch: bitset: range 0x"), "%s", ca_last_error());
    cr_assert_not_null(strstr(ca_last_error(), "is not whole 4 KiB pages"), "%s", ca_last_error());
    ca_bitset_destroy(b);
}
