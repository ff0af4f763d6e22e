/* SPDX-License-Identifier: MIT */
/*
 * The allocator contract of core.h as a reusable Criterion check: every
 * ca_allocator implementation runs ca_contract_check() on an instance.
 * It checks errors (EINVAL, ENOMEM), size 0, alignment, data preservation on
 * resize, that CA_RESIZE_IN_PLACE never moves, and that a failed resize
 * leaves the block valid and intact; the allocator's invariant walk
 * (ca_check, when it has one) holds with blocks live and after the frees.
 *
 * flags: CA_CONTRACT_SMALL_ONLY limits sizes to 4 KiB (fixed small regions);
 * CA_CONTRACT_NO_WALK for an allocator without an invariant walk (every
 * other one must have the ops table's check entry).
 */
#ifndef CA_CONTRACT_H
#define CA_CONTRACT_H

#include <criterion/criterion.h>
#include <ctxalloc/core.h>
#include <stdint.h>

#include "ca_test.h"

#define CA_CONTRACT_SMALL_ONLY 0x1u
#define CA_CONTRACT_NO_WALK    0x2u

static inline void ca_contract_check(ca_allocator *a, unsigned flags)
{
    size_t max = (flags & CA_CONTRACT_SMALL_ONLY) ? 4096 : 1u << 20;
    if (!(flags & CA_CONTRACT_NO_WALK))
        cr_assert_not_null(a->ops->check, "%s: no check entry in its ops table", ca_allocator_name(a));

    /* Bad alignments. */
    size_t bad_aligns[] = {0, 3, 24, (size_t)1 << 63 | 1};
    for (size_t i = 0; i < sizeof bad_aligns / sizeof *bad_aligns; i++) {
        errno = 0;
        cr_assert_null(ca_alloc(a, 16, bad_aligns[i]), "%s: align %zu accepted", ca_allocator_name(a), bad_aligns[i]);
        cr_assert_eq(errno, EINVAL, "%s: align %zu: errno %d", ca_allocator_name(a), bad_aligns[i], errno);
    }

    /* Impossible sizes. */
    size_t huge[] = {SIZE_MAX, SIZE_MAX - 15, SIZE_MAX / 2 + 1};
    for (size_t i = 0; i < sizeof huge / sizeof *huge; i++) {
        errno = 0;
        cr_assert_null(ca_alloc(a, huge[i], 16), "%s: size %zu accepted", ca_allocator_name(a), huge[i]);
        cr_assert_eq(errno, ENOMEM, "%s: size %zu: errno %d", ca_allocator_name(a), huge[i], errno);
    }

    /* Size 0: unique and freeable. */
    void *z1 = ca_alloc(a, 0, 16), *z2 = ca_alloc(a, 0, 16);
    cr_assert(z1 && z2 && z1 != z2, "%s: size 0 must give unique pointers", ca_allocator_name(a));
    ca_free(a, z2, 0, 16);
    ca_free(a, z1, 0, 16);

    /* Sizes and alignments; data survives while other blocks come and go. */
    void *ptrs[64];
    size_t sizes[64], aligns[64];
    ca_rng r = {42};
    for (int i = 0; i < 64; i++) {
        sizes[i] = 1 + (size_t)ca_rng_below(&r, i % 8 == 0 ? max : 512);
        aligns[i] = (size_t)1 << ca_rng_below(&r, 13);
        size_t usable = 0;
        ptrs[i] = ca_alloc_usable(a, sizes[i], aligns[i], &usable);
        cr_assert_not_null(ptrs[i], "%s: alloc %zu/%zu failed", ca_allocator_name(a), sizes[i], aligns[i]);
        cr_assert(usable >= sizes[i], "%s: usable %zu < size %zu", ca_allocator_name(a), usable, sizes[i]);
        cr_assert(ca_is_aligned((uintptr_t)ptrs[i], aligns[i]), "%s: %p not aligned to %zu", ca_allocator_name(a),
                  ptrs[i], aligns[i]);
        ca_test_fill(ptrs[i], sizes[i], (uint64_t)i);
        if (ca_allocator_caps(a) & CA_CAP_UNSIZED)
            cr_assert(ca_usable_size(a, ptrs[i]) >= sizes[i]);
    }
    for (int i = 0; i < 64; i++)
        cr_assert(ca_test_verify(ptrs[i], sizes[i], (uint64_t)i), "%s: block %d corrupted", ca_allocator_name(a), i);

    /* Resize keeps the prefix; in-place never moves. */
    for (int i = 0; i < 64; i += 2) {
        size_t nsz = sizes[i] * 2 + 1;
        void *q = ca_resize(a, ptrs[i], sizes[i], nsz, aligns[i], 0);
        cr_assert_not_null(q, "%s: grow failed", ca_allocator_name(a));
        cr_assert(ca_is_aligned((uintptr_t)q, aligns[i]));
        cr_assert(ca_test_verify(q, sizes[i], (uint64_t)i), "%s: grow lost data", ca_allocator_name(a));
        ptrs[i] = q;
        sizes[i] = nsz;
        ca_test_fill(q, nsz, (uint64_t)i);
    }
    for (int i = 1; i < 64; i += 2) {
        size_t nsz = sizes[i] / 2;
        void *q = ca_resize(a, ptrs[i], sizes[i], nsz, aligns[i], CA_RESIZE_IN_PLACE);
        if (q) {
            cr_assert_eq(q, ptrs[i], "%s: in-place shrink moved", ca_allocator_name(a));
            sizes[i] = nsz;
        }
        cr_assert(ca_test_verify(ptrs[i], sizes[i], (uint64_t)i), "%s: shrink lost data", ca_allocator_name(a));
    }
    /* In-place growth either stays or fails leaving the block intact. */
    for (int i = 0; i < 64; i++) {
        errno = 0;
        void *q = ca_resize(a, ptrs[i], sizes[i], sizes[i] + 4096, aligns[i], CA_RESIZE_IN_PLACE);
        if (q) {
            cr_assert_eq(q, ptrs[i], "%s: in-place grow moved", ca_allocator_name(a));
            ca_resize(a, q, sizes[i] + 4096, sizes[i], aligns[i], CA_RESIZE_IN_PLACE);
        } else {
            cr_assert_eq(errno, ENOMEM);
        }
        cr_assert(ca_test_verify(ptrs[i], sizes[i], (uint64_t)i), "%s: failed in-place grow lost data",
                  ca_allocator_name(a));
    }
    /* Impossible growth fails and leaves the block intact. */
    for (int i = 0; i < 64; i += 7) {
        errno = 0;
        cr_assert_null(ca_resize(a, ptrs[i], sizes[i], SIZE_MAX - 8, aligns[i], 0));
        cr_assert_eq(errno, ENOMEM, "%s: errno %d", ca_allocator_name(a), errno);
        cr_assert(ca_test_verify(ptrs[i], sizes[i], (uint64_t)i), "%s: failed grow lost data", ca_allocator_name(a));
    }
    const char *broken = ca_check(a);
    cr_assert_null(broken, "%s: invariant broken with blocks live: %s", ca_allocator_name(a), broken);
    for (int i = 63; i >= 0; i--)
        ca_free(a, ptrs[i], sizes[i], aligns[i]);
    ca_free(a, NULL, 0, 16); /* no-op */
    broken = ca_check(a);
    cr_assert_null(broken, "%s: invariant broken after the frees: %s", ca_allocator_name(a), broken);
}

#endif
