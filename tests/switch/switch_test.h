/* SPDX-License-Identifier: MIT */
/*
 * Test fixtures for libswitch (header-only, not installed):
 *   - sw_mmap_source: a thread-safe anonymous-mmap ca_source (page granule,
 *     reserve / commit / decommit), standing in for libsource;
 *   - sw_pool: a single-thread allocator with unsized free, built on a
 *     ca_source: 1 MiB chunks, power-of-two classes with free lists, a
 *     16-byte header per block that records the class and a live flag, and
 *     a count of live blocks (so tests can see where a free went);
 *   - sw_ctx: pool + mmap source adopted by the switch (ca_switch_adopt),
 *     the complete "thread or context allocator" of the README.
 * No libc malloc is used by the fixtures.
 */
#ifndef SWITCH_TEST_H
#define SWITCH_TEST_H

#include <ctxalloc/switch.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* ---------------------------------------------------------------- source */

typedef struct sw_mmap_source {
    ca_source base;
    unsigned long obtains, releases; /* __atomic */
} sw_mmap_source;

static inline int sw_map(size_t size, size_t align, int prot, void **out)
{
    size_t span = size + align;
    char *p = (char *)mmap(NULL, span, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return ENOMEM;
    char *a = (char *)ca_ptr_align_up(p, align);
    if (a > p)
        munmap(p, (size_t)(a - p));
    if ((size_t)(a - p) < align)
        munmap(a + size, align - (size_t)(a - p));
    *out = a;
    return 0;
}

static inline int sw_src_obtain(ca_source *s, size_t size, size_t align, void **out)
{
    int e = ca_source_check_request(s, size, align);
    if (e)
        return e;
    if ((e = sw_map(size, align, PROT_READ | PROT_WRITE, out)) == 0)
        __atomic_fetch_add(&((sw_mmap_source *)s)->obtains, 1, __ATOMIC_RELAXED);
    return e;
}

static inline int sw_src_reserve(ca_source *s, size_t size, size_t align, void **out)
{
    int e = ca_source_check_request(s, size, align);
    return e ? e : sw_map(size, align, PROT_NONE, out);
}

static inline int sw_src_release(ca_source *s, void *p, size_t size)
{
    __atomic_fetch_add(&((sw_mmap_source *)s)->releases, 1, __ATOMIC_RELAXED);
    return munmap(p, size) ? errno : 0;
}

static inline int sw_src_commit(ca_source *s, void *p, size_t size)
{
    (void)s;
    return mprotect(p, size, PROT_READ | PROT_WRITE) ? errno : 0;
}

static inline int sw_src_decommit(ca_source *s, void *p, size_t size)
{
    (void)s;
    return madvise(p, size, MADV_DONTNEED) ? errno : 0;
}

static const ca_source_ops sw_mmap_ops = {
    "test-mmap", CA_SOURCE_THREAD_SAFE | CA_SOURCE_ZEROED, sw_src_obtain, sw_src_release, sw_src_reserve,
    sw_src_commit, sw_src_decommit, NULL, NULL,
};

static inline void sw_mmap_source_init(sw_mmap_source *s)
{
    memset(s, 0, sizeof *s);
    s->base.ops = &sw_mmap_ops;
    s->base.granule = 4096;
}

/* ------------------------------------------------------------------ pool */

#define SW_POOL_CHUNK ((size_t)1 << 20)
#define SW_POOL_CLASSES 48
#define SW_POOL_MAGIC 0x5057u

typedef struct sw_pool_header {
    uint16_t magic;
    uint8_t cls;     /* raw block is 1 << cls bytes */
    uint8_t live;    /* 1 while handed out */
    uint32_t offset; /* user pointer - raw block */
    uint64_t pad;
} sw_pool_header;

#define SW_POOL_MAX_RANGES 1024

typedef struct sw_pool {
    ca_allocator base;
    ca_source *src;
    struct {
        char *base;
        size_t size;
    } ranges[SW_POOL_MAX_RANGES]; /* every range obtained (never returned) */
    int nranges;
    ca_listener *listener;        /* attached listener (libswitch's adoption) */
    char *cur, *end;              /* bump region of the current chunk */
    void *free[SW_POOL_CLASSES];  /* raw blocks per class */
    long live;                    /* blocks handed out */
    long allocs, frees;
    unsigned long owner_thread;   /* (pthread_t) that created it; single-thread use */
} sw_pool;

static inline sw_pool_header *sw_hdr(const void *p) { return (sw_pool_header *)p - 1; }

/* Obtain a range, record it and report it to the listener (which may refuse). */
static inline int sw_pool_obtain(sw_pool *p, size_t span, size_t g, char **out)
{
    if (p->nranges == SW_POOL_MAX_RANGES)
        return ENOMEM;
    int e = ca_source_obtain(p->src, span, g, (void **)out);
    if (e)
        return e;
    if (p->listener && p->listener->added && (e = p->listener->added(p->listener, *out, span)) != 0) {
        ca_source_release(p->src, *out, span);
        return e;
    }
    p->ranges[p->nranges].base = *out;
    p->ranges[p->nranges].size = span;
    p->nranges++;
    return 0;
}

static inline int sw_pool_listen(ca_allocator *a, ca_listener *l)
{
    sw_pool *p = (sw_pool *)a;
    if (l && p->listener)
        return EBUSY;
    if (!l) {
        for (int i = 0; p->listener && i < p->nranges; i++)
            if (p->listener->removed)
                p->listener->removed(p->listener, p->ranges[i].base, p->ranges[i].size);
        p->listener = NULL;
        return 0;
    }
    for (int i = 0; i < p->nranges; i++) {
        int e = l->added ? l->added(l, p->ranges[i].base, p->ranges[i].size) : 0;
        if (e) {
            while (i-- > 0)
                if (l->removed)
                    l->removed(l, p->ranges[i].base, p->ranges[i].size);
            return e;
        }
    }
    p->listener = l;
    return 0;
}

static inline void *sw_pool_alloc(ca_allocator *a, size_t size, size_t align, size_t *usable)
{
    sw_pool *p = (sw_pool *)a;
    if (!ca_is_pow2(align)) {
        errno = EINVAL;
        return NULL;
    }
    if (align < 16)
        align = 16;
    size_t need, cls_size;
    if (ca_add_overflows(size, sizeof(sw_pool_header) + align - 16, &need) || ca_next_pow2_overflows(need, &cls_size) ||
        cls_size > ((size_t)1 << 40)) {
        errno = ENOMEM;
        return NULL;
    }
    if (cls_size < 32)
        cls_size = 32;
    unsigned cls = ca_log2(cls_size);
    char *raw = (char *)p->free[cls];
    if (raw) {
        p->free[cls] = *(void **)(void *)raw;
    } else if (cls_size >= SW_POOL_CHUNK / 4) {
        size_t g = ca_source_granule(p->src), span;
        int e = ENOMEM;
        if (ca_align_up_overflows(cls_size, g, &span) || (e = sw_pool_obtain(p, span, g, &raw)) != 0) {
            errno = e;
            return NULL;
        }
    } else {
        char *c = (char *)ca_ptr_align_up(p->cur, cls_size < 4096 ? cls_size : 4096);
        if (!p->cur || c + cls_size > p->end) {
            size_t g = ca_source_granule(p->src);
            size_t span = SW_POOL_CHUNK > g ? SW_POOL_CHUNK : g;
            char *fresh;
            int e = sw_pool_obtain(p, span, g, &fresh);
            if (e) {
                errno = e;
                return NULL;
            }
            p->cur = fresh;
            p->end = p->cur + span;
            c = p->cur;
        }
        raw = c;
        p->cur = c + cls_size;
    }
    char *user = (char *)ca_ptr_align_up(raw + sizeof(sw_pool_header), align);
    sw_pool_header *h = sw_hdr(user);
    h->magic = SW_POOL_MAGIC;
    h->cls = (uint8_t)cls;
    h->live = 1;
    h->offset = (uint32_t)(user - raw);
    p->live++;
    p->allocs++;
    if (usable)
        *usable = cls_size - h->offset;
    return user;
}

static inline size_t sw_pool_usable(const ca_allocator *a, const void *u)
{
    (void)a;
    const sw_pool_header *h = sw_hdr(u);
    return ((size_t)1 << h->cls) - h->offset;
}

static inline void sw_pool_free_unsized(ca_allocator *a, void *u)
{
    sw_pool *p = (sw_pool *)a;
    if (!u)
        return;
    sw_pool_header *h = sw_hdr(u);
    if (h->magic != SW_POOL_MAGIC || !h->live) {
        fprintf(stderr, "sw_pool: bad or double free %p\n", u);
        abort();
    }
    h->live = 0;
    unsigned cls = h->cls; /* the header is overwritten by the link below */
    char *raw = (char *)u - h->offset;
    *(void **)(void *)raw = p->free[cls];
    p->free[cls] = raw;
    p->live--;
    p->frees++;
}

static inline void sw_pool_free(ca_allocator *a, void *u, size_t size, size_t align)
{
    (void)size, (void)align;
    sw_pool_free_unsized(a, u);
}

static inline void *sw_pool_resize(ca_allocator *a, void *u, size_t old, size_t n, size_t align, unsigned flags,
                                   size_t *usable)
{
    if (!u)
        return sw_pool_alloc(a, n, align, usable);
    size_t have = sw_pool_usable(a, u);
    if (n <= have) {
        if (usable)
            *usable = have;
        return u;
    }
    if (flags & CA_RESIZE_IN_PLACE) {
        errno = ENOMEM;
        return NULL;
    }
    void *q = sw_pool_alloc(a, n, align, usable);
    if (!q)
        return NULL;
    memcpy(q, u, old < have ? old : have);
    sw_pool_free_unsized(a, u);
    return q;
}

static inline int sw_pool_stats(const ca_allocator *a, ca_stats *out)
{
    const sw_pool *p = (const sw_pool *)a;
    ca_stats_init(out, "test-pool");
    out->allocs = (uint64_t)p->allocs;
    out->frees = (uint64_t)p->frees;
    return 0;
}

static const ca_allocator_ops sw_pool_ops = {
    "test-pool", CA_CAP_UNSIZED, sw_pool_alloc, sw_pool_free, sw_pool_free_unsized, sw_pool_usable,
    sw_pool_resize, NULL, NULL, sw_pool_stats, sw_pool_listen, NULL,
};

/* Give every range back, reporting destroyed() then removed() to a listener. */
static inline void sw_pool_destroy(sw_pool *p)
{
    ca_listener *l = p->listener;
    if (l && l->destroyed)
        l->destroyed(l);
    for (int i = 0; i < p->nranges; i++) {
        if (l && l->removed)
            l->removed(l, p->ranges[i].base, p->ranges[i].size);
        ca_source_release(p->src, p->ranges[i].base, p->ranges[i].size);
    }
    p->nranges = 0;
    p->listener = NULL;
    p->base.ops = NULL;
}

static inline void sw_pool_init(sw_pool *p, ca_source *src)
{
    memset(p, 0, sizeof *p);
    p->base.ops = &sw_pool_ops;
    p->src = src;
}

/* --------------------------------------------------- context allocator */

/* A complete thread / context allocator: pool on an mmap source, adopted by
 * the switch (which registers its chunks and queues frees from other
 * threads). Chunks are not returned (the test process ends soon). */
typedef struct sw_ctx {
    sw_mmap_source mm;
    sw_pool pool;
    ca_switch_adopted ad;
} sw_ctx;

static inline int sw_ctx_init(sw_ctx *c)
{
    sw_mmap_source_init(&c->mm);
    sw_pool_init(&c->pool, &c->mm.base);
    return ca_switch_adopt(&c->ad, &c->pool.base);
}

static inline ca_allocator *sw_ctx_alloc(sw_ctx *c) { return &c->ad.base; }

/* Undo the adoption (0, or EBUSY while selected or with live blocks). */
static inline int sw_ctx_destroy(sw_ctx *c) { return ca_switch_unadopt(&c->ad); }

#endif
