/* SPDX-License-Identifier: MIT */
/*
 * libbinned global recycler: a lock-free Treiber stack of bundles per class.
 *
 * Concurrency model: any number of threads push and pop at once. The head is
 * a (top, generation) pair changed only by a 16-byte compare-and-swap
 * (cmpxchg16b, inlined thanks to -mcx16). The generation is bumped on every
 * change, so a pop that read top = A and next = B cannot succeed after A was
 * popped, reused and pushed back meanwhile (the ABA problem): the pair it
 * compares against has an older generation. The head is read as two 8-byte
 * loads (generation first): a torn pair only makes the CAS fail. No 16-byte
 * atomic load is used, which would need a writable page (cmpxchg16b) or a
 * libatomic lock.
 *
 * A pop reads the second word of a bundle that another thread may already
 * have popped and be writing to: the value is discarded when the CAS fails,
 * and the memory stays mapped (the allocator never unmaps class ranges), so
 * the read is harmless. It is marked as not instrumented for TSan.
 *
 * Build flags for tests only: CA_BINNED_RECYCLER_NO_GEN keeps the generation
 * constant (ABA possible); CA_BINNED_RECYCLER_TEST_HOOK calls
 * ca_binned__recycler_test_hook() between reading the top and the CAS.
 */
#include "binned_internal.h"

#ifdef CA_BINNED_RECYCLER_TEST_HOOK
void ca_binned__recycler_test_hook(ca_binned__recycler *r);
#define RECYCLER_HOOK(r) ca_binned__recycler_test_hook(r)
#else
#define RECYCLER_HOOK(r) ((void)0)
#endif

#ifdef CA_BINNED_RECYCLER_NO_GEN
#define NEXT_GEN(g) (g)
#else
#define NEXT_GEN(g) ((g) + 1)
#endif

typedef unsigned __int128 u128;

static inline u128 pack(void *top, uint64_t gen) { return (u128)(uintptr_t)top | (u128)gen << 64; }

static inline bool cas_head(ca_binned__recycler *r, void *old_top, uint64_t old_gen, void *new_top,
                            uint64_t new_gen)
{
    return __sync_bool_compare_and_swap((u128 *)r, pack(old_top, old_gen), pack(new_top, new_gen));
}

static inline void read_head(ca_binned__recycler *r, void **top, uint64_t *gen)
{
    *gen = __atomic_load_n(&r->gen, __ATOMIC_ACQUIRE);
    *top = __atomic_load_n(&r->top, __ATOMIC_ACQUIRE);
}

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define NO_TSAN __attribute__((no_sanitize("thread")))
#endif
#endif
#ifndef NO_TSAN
#define NO_TSAN
#endif

/* The link of a bundle that may be in use by another thread by now. */
NO_TSAN __attribute__((noinline)) static void *read_link_racy(void *bundle)
{
    return *(void *volatile *)ca_binned__bundle_link(bundle);
}

void ca_binned__recycler_init(ca_binned__recycler *r)
{
    r->top = NULL;
    r->gen = 0;
}

void ca_binned__recycler_push(ca_binned__recycler *r, void *bundle)
{
    void *top;
    uint64_t gen;
    do {
        read_head(r, &top, &gen);
        __atomic_store_n(ca_binned__bundle_link(bundle), top, __ATOMIC_RELAXED);
    } while (!cas_head(r, top, gen, bundle, NEXT_GEN(gen)));
}

void *ca_binned__recycler_pop(ca_binned__recycler *r)
{
    void *top;
    uint64_t gen;
    for (;;) {
        read_head(r, &top, &gen);
        if (!top)
            return NULL;
        void *next = read_link_racy(top);
        RECYCLER_HOOK(r);
        if (cas_head(r, top, gen, next, NEXT_GEN(gen)))
            return top;
    }
}

void *ca_binned__recycler_take_all(ca_binned__recycler *r)
{
    void *top;
    uint64_t gen;
    do {
        read_head(r, &top, &gen);
        if (!top)
            return NULL;
    } while (!cas_head(r, top, gen, NULL, NEXT_GEN(gen)));
    return top;
}
