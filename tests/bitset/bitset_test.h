/* SPDX-License-Identifier: MIT */
/*
 * Helpers of libbitset's tests: a small ca_source over anonymous mmap (the
 * component must not depend on libsource), with counters and fault
 * injection, and shortcuts to create allocators over it or over a buffer.
 */
#ifndef BITSET_TEST_H
#define BITSET_TEST_H

#include <ctxalloc/bitset.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

typedef struct test_source {
    ca_source base;
    long live;       /* obtains minus releases */
    size_t bytes;    /* bytes currently obtained */
    int fail_after;  /* > 0: the fail_after-th obtain from now fails with ENOMEM */
} test_source;

static int test_source_obtain(ca_source *s, size_t size, size_t align, void **out)
{
    test_source *t = (test_source *)s;
    int e = ca_source_check_request(s, size, align);
    if (e)
        return e;
    if (t->fail_after > 0 && --t->fail_after == 0)
        return ENOMEM;
    size_t extra = align > s->granule ? align : 0, total;
    if (ca_add_overflows(size, extra, &total))
        return ENOMEM;
    unsigned char *p = (unsigned char *)mmap(NULL, total, PROT_READ | PROT_WRITE,
                                             MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return ENOMEM;
    unsigned char *a = (unsigned char *)ca_ptr_align_up(p, align);
    if (a > p)
        munmap(p, (size_t)(a - p));
    if (a + size < p + total)
        munmap(a + size, (size_t)(p + total - (a + size)));
    t->live++;
    t->bytes += size;
    *out = a;
    return 0;
}

static int test_source_release(ca_source *s, void *p, size_t size)
{
    test_source *t = (test_source *)s;
    int e = ca_source_check_request(s, size, s->granule);
    if (e || !p)
        return EINVAL;
    munmap(p, size);
    t->live--;
    t->bytes -= size;
    return 0;
}

static const ca_source_ops test_source_ops = {
    "test-mmap", CA_SOURCE_ZEROED, test_source_obtain, test_source_release, NULL, NULL, NULL, NULL, NULL,
};

static inline void test_source_init(test_source *t)
{
    memset(t, 0, sizeof *t);
    t->base.ops = &test_source_ops;
    t->base.granule = ca_page_size();
}

/* An allocator of region_size bytes in blocks of bs over the mmap source;
 * aborts the test process when creation fails (never returns NULL). */
static inline ca_bitset *test_bitset_new(test_source *src, size_t region_size, size_t bs)
{
    ca_bitset_options o;
    ca_bitset_options_init(&o);
    o.block_size = bs;
    o.region_size = region_size;
    o.source = &src->base;
    ca_bitset *b = NULL;
    if (ca_bitset_create(&b, &o) != 0 || !b)
        abort();
    return b;
}

#endif
