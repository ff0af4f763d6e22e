/* SPDX-License-Identifier: MIT */
/*
 * A small ca_source over mmap for librbtree's tests (librbtree must not
 * depend on libsource): counts live regions and bytes so tests can see
 * regions come and go, and can be told to fail.
 */
#ifndef RBTREE_TEST_H
#define RBTREE_TEST_H

#include <ctxalloc/core.h>
#include <sys/mman.h>

typedef struct rbt_test_source {
    ca_source base;
    long live;        /* regions obtained and not released (atomic) */
    size_t live_bytes; /* atomic */
    int fail;         /* obtain fails with ENOMEM when set */
} rbt_test_source;

static int rbt_ts_obtain(ca_source *s, size_t size, size_t align, void **out)
{
    rbt_test_source *t = (rbt_test_source *)s;
    int e = ca_source_check_request(s, size, align);
    if (e)
        return e;
    if (t->fail)
        return ENOMEM;
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return ENOMEM;
    __atomic_add_fetch(&t->live, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&t->live_bytes, size, __ATOMIC_RELAXED);
    *out = p;
    return 0;
}

static int rbt_ts_release(ca_source *s, void *p, size_t size)
{
    rbt_test_source *t = (rbt_test_source *)s;
    __atomic_sub_fetch(&t->live, 1, __ATOMIC_RELAXED);
    __atomic_sub_fetch(&t->live_bytes, size, __ATOMIC_RELAXED);
    return munmap(p, size) ? errno : 0;
}

static const ca_source_ops rbt_ts_ops = {"rbt-test-mmap", CA_SOURCE_THREAD_SAFE | CA_SOURCE_ZEROED,
                                         rbt_ts_obtain, rbt_ts_release, NULL, NULL, NULL, NULL, NULL};

static inline void rbt_test_source_init(rbt_test_source *t)
{
    memset(t, 0, sizeof *t);
    t->base.ops = &rbt_ts_ops;
    t->base.granule = 4096;
}

#endif
