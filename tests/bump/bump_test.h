/* SPDX-License-Identifier: MIT */
/*
 * Test sources for libbump (which does not link libsource): an anonymous
 * mmap source that counts live blocks and bytes and can be told to fail,
 * so tests see every chunk the bump obtains and returns; and a one-slot
 * source that, like libsource's slot arena, gives exactly one granule per
 * obtain and refuses any other size with EINVAL.
 */
#ifndef BUMP_TEST_H
#define BUMP_TEST_H

#include <ctxalloc/core.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

typedef struct test_source {
    ca_source base;
    long live;          /* blocks obtained and not released (atomic) */
    long obtains;       /* total obtains (atomic) */
    long releases;      /* total releases (atomic) */
    long bytes;         /* bytes live (atomic) */
    long fail_after;    /* obtains left before ENOMEM; < 0: never fail */
} test_source;

static int ts_obtain(ca_source *s, size_t size, size_t align, void **out)
{
    test_source *t = (test_source *)s;
    int e = ca_source_check_request(s, size, align);
    if (e)
        return e;
    if (__atomic_load_n(&t->fail_after, __ATOMIC_RELAXED) == 0)
        return ENOMEM;
    if (__atomic_load_n(&t->fail_after, __ATOMIC_RELAXED) > 0)
        __atomic_fetch_sub(&t->fail_after, 1, __ATOMIC_RELAXED);
    size_t map = size + (align > 4096 ? align : 0);
    char *p = (char *)mmap(NULL, map, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return ENOMEM;
    char *q = (char *)ca_align_up((uintptr_t)p, align);
    if (q > p)
        munmap(p, (size_t)(q - p));
    if (q + size < p + map)
        munmap(q + size, (size_t)(p + map - (q + size)));
    __atomic_fetch_add(&t->live, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&t->obtains, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&t->bytes, (long)size, __ATOMIC_RELAXED);
    *out = q;
    return 0;
}

static int ts_release(ca_source *s, void *p, size_t size)
{
    test_source *t = (test_source *)s;
    if (munmap(p, size) != 0)
        return EINVAL;
    __atomic_fetch_sub(&t->live, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&t->releases, 1, __ATOMIC_RELAXED);
    __atomic_fetch_sub(&t->bytes, (long)size, __ATOMIC_RELAXED);
    return 0;
}

static const ca_source_ops ts_ops = {"test-mmap", CA_SOURCE_THREAD_SAFE | CA_SOURCE_ZEROED, ts_obtain, ts_release,
                                     NULL, NULL, NULL, NULL, NULL};

static inline void test_source_init(test_source *t)
{
    t->base.ops = &ts_ops;
    t->base.granule = 4096;
    t->live = t->obtains = t->releases = t->bytes = 0;
    t->fail_after = -1;
}

/* One granule per obtain (granule = slot, any power of two >= 16), aligned
 * to the slot; other sizes or larger alignments: EINVAL. Backed by the
 * test mmap source (slots of at least a page) or by aligned_alloc. */
typedef struct test_slot_source {
    ca_source base;
    long live;     /* slots out */
    long refused;  /* obtains refused with EINVAL */
} test_slot_source;

static int tss_obtain(ca_source *s, size_t size, size_t align, void **out)
{
    test_slot_source *t = (test_slot_source *)s;
    if (size != s->granule || !ca_is_pow2(align) || align > s->granule) {
        __atomic_fetch_add(&t->refused, 1, __ATOMIC_RELAXED);
        return EINVAL;
    }
    void *p = aligned_alloc(s->granule, s->granule);
    if (!p)
        return ENOMEM;
    memset(p, 0, s->granule);
    __atomic_fetch_add(&t->live, 1, __ATOMIC_RELAXED);
    *out = p;
    return 0;
}

static int tss_release(ca_source *s, void *p, size_t size)
{
    test_slot_source *t = (test_slot_source *)s;
    if (!p || size != s->granule)
        return EINVAL;
    free(p);
    __atomic_fetch_sub(&t->live, 1, __ATOMIC_RELAXED);
    return 0;
}

static const ca_source_ops tss_ops = {"test-slots", CA_SOURCE_ZEROED, tss_obtain, tss_release,
                                      NULL, NULL, NULL, NULL, NULL};

static inline void test_slot_source_init(test_slot_source *t, size_t slot)
{
    t->base.ops = &tss_ops;
    t->base.granule = slot;
    t->live = t->refused = 0;
}

#endif
