/* SPDX-License-Identifier: MIT */
/*
 * The allocator source: any ca_allocator serving as a ca_source, so that a
 * component that takes memory from sources (bump chunks, rbtree regions)
 * reaches an allocator through the same one code path. The contract is in
 * core.h, next to ca_allocator_source.
 *
 * Each range is one block of the inner allocator. A release is given no
 * alignment, yet ca_free wants the one ca_alloc was given: so the alignment
 * a range is asked for is a function of its size alone (range_align), and
 * obtain refuses an alignment beyond it.
 *
 * Concurrency: no state but the counters, which are __atomic (relaxed), so
 * the adaptor is exactly as thread-safe as the inner allocator; its ops
 * table says so (CA_SOURCE_THREAD_SAFE when inner has CA_CAP_THREAD_SAFE).
 * The invariant walk wants no other thread inside, as every walk.
 */
#include <ctxalloc/core.h>

static int as_obtain(ca_source *src, size_t size, size_t align, void **out);
static int as_release(ca_source *src, void *p, size_t size);
static int as_stats(const ca_source *src, ca_stats *out);
static const char *as_check(const ca_source *src);

#define AS_OPS(caps_)                                                                                             \
    {                                                                                                             \
        .name = "allocator-source", .caps = (caps_), .obtain = as_obtain, .release = as_release, .reserve = NULL, \
        .commit = NULL, .decommit = NULL, .stats = as_stats, .check = as_check,                                   \
    }
static const ca_source_ops as_ops = AS_OPS(0);
static const ca_source_ops as_ops_thread_safe = AS_OPS(CA_SOURCE_THREAD_SAFE);

static ca_allocator_source *from(ca_source *s) { return (ca_allocator_source *)(void *)s; }
static const ca_allocator_source *from_const(const ca_source *s)
{
    return (const ca_allocator_source *)(const void *)s;
}

/* The alignment a range of `size` bytes is asked for and freed with. */
static size_t range_align(size_t size)
{
    return size >= CA_OWNER_PAGE ? CA_OWNER_PAGE : CA_ALLOCATOR_SOURCE_GRANULE;
}

static int refuse(ca_allocator_source *s, int e)
{
    __atomic_add_fetch(&s->failures, 1, __ATOMIC_RELAXED);
    return e;
}

static int as_obtain(ca_source *src, size_t size, size_t align, void **out)
{
    ca_allocator_source *s = from(src);
    int e = ca_source_check_request(src, size, align);
    if (e)
        return refuse(s, e);
    size_t a = range_align(size);
    if (align > a)
        return refuse(s, EINVAL);
    void *p = ca_alloc(s->inner, size, a);
    if (!p)
        return refuse(s, ENOMEM);
    uint64_t n = __atomic_add_fetch(&s->in_use, size, __ATOMIC_RELAXED);
    uint64_t peak = __atomic_load_n(&s->peak, __ATOMIC_RELAXED);
    while (n > peak && !__atomic_compare_exchange_n(&s->peak, &peak, n, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
        ;
    __atomic_add_fetch(&s->obtains, 1, __ATOMIC_RELAXED);
    *out = p;
    return 0;
}

static int as_release(ca_source *src, void *p, size_t size)
{
    ca_allocator_source *s = from(src);
    if (!p || size == 0 || (size & (CA_ALLOCATOR_SOURCE_GRANULE - 1)) != 0 ||
        !ca_is_aligned((uintptr_t)p, range_align(size)))
        return refuse(s, EINVAL);
    ca_free(s->inner, p, size, range_align(size));
    __atomic_sub_fetch(&s->in_use, size, __ATOMIC_RELAXED);
    __atomic_add_fetch(&s->releases, 1, __ATOMIC_RELAXED);
    return 0;
}

static int as_stats(const ca_source *src, ca_stats *out)
{
    const ca_allocator_source *s = from_const(src);
    ca_stats_init(out, src->ops->name);
    uint64_t n = __atomic_load_n(&s->in_use, __ATOMIC_RELAXED);
    out->bytes_in_use = out->bytes_reserved = out->bytes_committed = n;
    out->peak_in_use = __atomic_load_n(&s->peak, __ATOMIC_RELAXED);
    out->allocs = __atomic_load_n(&s->obtains, __ATOMIC_RELAXED);
    out->frees = __atomic_load_n(&s->releases, __ATOMIC_RELAXED);
    out->failures = __atomic_load_n(&s->failures, __ATOMIC_RELAXED);
    return 0;
}

static const char *as_check(const ca_source *src)
{
    const ca_allocator_source *s = from_const(src);
    CA_CHECK_EXPECT(src->ops == &as_ops || src->ops == &as_ops_thread_safe, "not an initialised allocator source");
    CA_CHECK_EXPECT(src->granule == CA_ALLOCATOR_SOURCE_GRANULE && s->inner, "allocator source fields broken");
    uint64_t n = __atomic_load_n(&s->in_use, __ATOMIC_RELAXED);
    uint64_t obtains = __atomic_load_n(&s->obtains, __ATOMIC_RELAXED);
    uint64_t releases = __atomic_load_n(&s->releases, __ATOMIC_RELAXED);
    CA_CHECK_EXPECT(releases <= obtains, "allocator source: more releases than obtains");
    CA_CHECK_EXPECT((n == 0) == (obtains == releases),
                    "allocator source: bytes in use disagree with the ranges out");
    CA_CHECK_EXPECT(n <= __atomic_load_n(&s->peak, __ATOMIC_RELAXED),
                    "allocator source: bytes in use above the peak");
    return ca_check(s->inner);
}

int ca_allocator_source_init(ca_allocator_source *s, ca_allocator *inner)
{
    if (!s || !inner)
        return EINVAL;
    memset(s, 0, sizeof *s);
    s->base.ops = (ca_allocator_caps(inner) & CA_CAP_THREAD_SAFE) ? &as_ops_thread_safe : &as_ops;
    s->base.granule = CA_ALLOCATOR_SOURCE_GRANULE;
    s->inner = inner;
    return 0;
}
