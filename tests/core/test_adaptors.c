/* SPDX-License-Identifier: MIT */
/* Every core adaptor against the allocator contract, plus each one's own rules. */
#include <criterion/criterion.h>
#include <ctxalloc/core.h>
#include <malloc.h>
#include <stdlib.h>

#include "ca_contract.h"

Test(libc, contract) { ca_contract_check(ca_libc_allocator(), CA_CONTRACT_NO_WALK); }

Test(libc, caps_and_usable)
{
    ca_allocator *a = ca_libc_allocator();
    cr_assert(ca_allocator_caps(a) & CA_CAP_THREAD_SAFE);
    cr_assert(ca_allocator_caps(a) & CA_CAP_UNSIZED);
    size_t u = 0;
    void *p = ca_alloc_usable(a, 100, 8, &u);
    cr_assert(p && u >= 100 && u == malloc_usable_size(p));
    ca_free_unsized(a, p);
    cr_assert_eq(ca_reset(a), ENOTSUP);
}

Test(libc, resize_realloc_failure_keeps_block)
{
    ca_allocator *a = ca_libc_allocator();
    char *p = (char *)ca_alloc(a, 64, 16);
    memset(p, 0x5a, 64);
    errno = 0;
    cr_assert_null(ca_resize(a, p, 64, SIZE_MAX / 2, 16, 0));
    cr_assert_eq(errno, ENOMEM);
    for (int i = 0; i < 64; i++)
        cr_assert_eq(p[i], 0x5a);
    /* big alignment: moved by copy, keeps alignment and data */
    char *q = (char *)ca_alloc(a, 100, 4096);
    memset(q, 7, 100);
    q = (char *)ca_resize(a, q, 100, 10000, 4096, 0);
    cr_assert(q && ca_is_aligned((uintptr_t)q, 4096));
    for (int i = 0; i < 100; i++)
        cr_assert_eq(q[i], 7);
    ca_free(a, q, 10000, 4096);
    ca_free(a, p, 64, 16);
}

Test(libc, zeroed_overflow)
{
    ca_allocator *a = ca_libc_allocator();
    errno = 0;
    cr_assert_null(ca_alloc_zeroed(a, SIZE_MAX / 2, 3, 16));
    cr_assert_eq(errno, ENOMEM);
    unsigned char *p = (unsigned char *)ca_alloc_zeroed(a, 100, 10, 16);
    cr_assert_not_null(p);
    for (int i = 0; i < 1000; i++)
        cr_assert_eq(p[i], 0);
    ca_free(a, p, 1000, 16);
}

Test(header, contract)
{
    ca_header_allocator h;
    cr_assert_eq(ca_header_init(&h, ca_libc_allocator()), 0);
    ca_contract_check(&h.base, CA_CONTRACT_NO_WALK); /* libc inside: nothing to walk */
}

Test(header, init_rejects_null)
{
    ca_header_allocator h;
    cr_assert_eq(ca_header_init(&h, NULL), EINVAL);
    cr_assert_eq(ca_header_init(NULL, ca_libc_allocator()), EINVAL);
}

Test(header, malloc_family)
{
    ca_header_allocator h;
    ca_header_init(&h, ca_libc_allocator());
    cr_assert(ca_allocator_caps(&h.base) & CA_CAP_UNSIZED);
    cr_assert(ca_allocator_caps(&h.base) & CA_CAP_THREAD_SAFE); /* inherited from libc */
    char *p = (char *)ca_header_malloc(&h, 10);
    cr_assert(p && ca_is_aligned((uintptr_t)p, 16));
    cr_assert_eq(ca_usable_size(&h.base, p), 10);
    memcpy(p, "123456789", 10);
    p = (char *)ca_header_realloc(&h, p, 5000);
    cr_assert_str_eq(p, "123456789");
    cr_assert_eq(ca_usable_size(&h.base, p), 5000);
    errno = 0;
    cr_assert_null(ca_header_realloc(&h, p, SIZE_MAX - 4));
    cr_assert_eq(errno, ENOMEM);
    cr_assert_str_eq(p, "123456789");
    cr_assert_null(ca_header_realloc(&h, p, 0)); /* frees */
    void *q = ca_header_aligned_alloc(&h, 1 << 16, 3);
    cr_assert(q && ca_is_aligned((uintptr_t)q, 1 << 16));
    ca_header_free(&h, q);
    errno = 0;
    cr_assert_null(ca_header_aligned_alloc(&h, 48, 3));
    cr_assert_eq(errno, EINVAL);
    int *z = (int *)ca_header_calloc(&h, 100, sizeof(int));
    for (int i = 0; i < 100; i++)
        cr_assert_eq(z[i], 0);
    ca_header_free(&h, z);
    errno = 0;
    cr_assert_null(ca_header_calloc(&h, SIZE_MAX / 4, 8));
    cr_assert_eq(errno, ENOMEM);
    ca_header_free(&h, NULL);
    p = (char *)ca_header_realloc(&h, NULL, 7); /* realloc(NULL) = malloc */
    cr_assert_not_null(p);
    ca_header_free(&h, p);
}

Test(header, realloc_keeps_big_alignment)
{
    ca_header_allocator h;
    ca_header_init(&h, ca_libc_allocator());
    char *p = (char *)ca_alloc(&h.base, 100, 8192);
    memset(p, 3, 100);
    p = (char *)ca_header_realloc(&h, p, 100000);
    cr_assert(ca_is_aligned((uintptr_t)p, 8192));
    for (int i = 0; i < 100; i++)
        cr_assert_eq(p[i], 3);
    ca_free_unsized(&h.base, p);
}

static void run_locked_contract(ca_lock_kind kind)
{
    ca_header_allocator h;
    ca_locked_allocator l;
    ca_header_init(&h, ca_libc_allocator());
    cr_assert_eq(ca_locked_init(&l, &h.base, kind), 0);
    cr_assert(ca_allocator_caps(&l.base) & CA_CAP_THREAD_SAFE);
    cr_assert(ca_allocator_caps(&l.base) & CA_CAP_UNSIZED);
    ca_contract_check(&l.base, CA_CONTRACT_NO_WALK);
    void *p = ca_alloc(&l.base, 33, 16);
    cr_assert_eq(ca_usable_size(&l.base, p), 33);
    ca_free_unsized(&l.base, p);
    ca_stats st;
    cr_assert_eq(ca_stats_get(&l.base, &st), ENOTSUP); /* libc keeps no stats */
    ca_locked_destroy(&l);
}

Test(locked, contract_mutex) { run_locked_contract(CA_LOCK_MUTEX); }
Test(locked, contract_spin) { run_locked_contract(CA_LOCK_SPIN); }

Test(locked, init_rejects)
{
    ca_locked_allocator l;
    cr_assert_eq(ca_locked_init(&l, NULL, CA_LOCK_MUTEX), EINVAL);
    cr_assert_eq(ca_locked_init(&l, ca_libc_allocator(), (ca_lock_kind)7), EINVAL);
}

Test(generic_resize, in_place_and_move)
{
    /* An allocator without a resize op goes through ca_resize_generic. */
    static ca_allocator_ops ops;
    ops = *ca_libc_allocator()->ops;
    ops.resize = NULL;
    ops.usable_size = NULL;
    ops.free_unsized = NULL;
    ops.caps = 0;
    ca_allocator a = {&ops};
    char *p = (char *)ca_alloc(&a, 100, 16);
    memset(p, 9, 100);
    cr_assert_eq(ca_resize(&a, p, 100, 50, 16, CA_RESIZE_IN_PLACE), p);
    errno = 0;
    cr_assert_null(ca_resize(&a, p, 100, 101, 16, CA_RESIZE_IN_PLACE));
    cr_assert_eq(errno, ENOMEM);
    errno = 0;
    cr_assert_null(ca_resize(&a, p, 100, 101, 5, 0));
    cr_assert_eq(errno, EINVAL);
    char *q = (char *)ca_resize(&a, p, 100, 200, 16, 0);
    cr_assert_not_null(q);
    for (int i = 0; i < 100; i++)
        cr_assert_eq(q[i], 9);
    ca_free(&a, q, 200, 16);
    q = (char *)ca_resize(&a, NULL, 0, 10, 16, 0);
    cr_assert_not_null(q);
    ca_free(&a, q, 10, 16);
}

/* ca_check and the adaptors' check entries: the inner walk's verdict comes
 * through the header and locked adaptors, and no entry means nothing to walk. */
static const char *verdict;
static const char *fake_check(ca_allocator *a)
{
    (void)a;
    return verdict;
}

Test(check, dispatch_through_adaptors)
{
    ca_allocator_ops ops = *ca_libc_allocator()->ops;
    cr_assert_null(ops.check, "libc has no invariant walk");
    cr_assert_null(ca_check(ca_libc_allocator()));
    ops.check = fake_check;
    ca_allocator inner = {&ops};
    ca_header_allocator h;
    ca_locked_allocator l;
    cr_assert_eq(ca_header_init(&h, &inner), 0);
    cr_assert_eq(ca_locked_init(&l, &h.base, CA_LOCK_SPIN), 0);
    verdict = NULL;
    cr_assert_null(ca_check(&inner));
    cr_assert_null(ca_check(&h.base));
    cr_assert_null(ca_check(&l.base));
    verdict = "free list has a cycle";
    cr_assert_str_eq(ca_check(&inner), verdict);
    cr_assert_str_eq(ca_check(&h.base), verdict);
    cr_assert_str_eq(ca_check(&l.base), verdict);
    cr_assert_eq(l.spin, 0, "the locked walk released its lock");
    ca_locked_destroy(&l);
    /* an inner without a walk: the adaptors have none either */
    ca_header_allocator h2;
    cr_assert_eq(ca_header_init(&h2, ca_libc_allocator()), 0);
    cr_assert_null(h2.ops.check);
    cr_assert_null(ca_check(&h2.base));
}
