/* SPDX-License-Identifier: MIT */
/*
 * A counting, failing ca_allocator for tests of whatever takes memory from an
 * allocator (core's allocator source, bumps and rbtrees over a parent). It
 * remembers every live block with the size and alignment it was asked for,
 * counts frees that do not give exactly those back (or free a block it never
 * gave), and can be told to fail from the n-th allocation on with a chosen
 * errno. Blocks come from posix_memalign. Single thread; at most
 * CA_COUNTING_MAX blocks live (beyond: NULL + ENOMEM).
 */
#ifndef CA_COUNTING_H
#define CA_COUNTING_H

#include <ctxalloc/core.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define CA_COUNTING_MAX 1024

typedef struct ca_counting_allocator {
    ca_allocator base;
    long allocs;      /* successful allocations */
    long frees;       /* frees that matched a live block */
    long refused;     /* allocations failed on purpose */
    long mismatches;  /* frees of an unknown block or with another size / alignment */
    long fail_after;  /* allocations left before failing; < 0: never fail */
    int fail_errno;   /* errno of a failure on purpose (0: ENOMEM) */
    size_t max_align; /* largest alignment asked for */
    size_t last_size, last_align;
    size_t live_bytes;
    int n; /* live blocks in blk[0..n) */
    struct {
        void *p;
        size_t size, align;
    } blk[CA_COUNTING_MAX];
} ca_counting_allocator;

static void *ca_counting__alloc(ca_allocator *a, size_t size, size_t align, size_t *usable)
{
    ca_counting_allocator *c = (ca_counting_allocator *)a;
    void *p = NULL;
    if (!ca_is_pow2(align)) {
        errno = EINVAL;
        return NULL;
    }
    if (c->fail_after == 0) {
        c->refused++;
        errno = c->fail_errno ? c->fail_errno : ENOMEM;
        return NULL;
    }
    if (c->fail_after > 0)
        c->fail_after--;
    if (c->n == CA_COUNTING_MAX ||
        posix_memalign(&p, align < sizeof(void *) ? sizeof(void *) : align, size ? size : 1)) {
        errno = ENOMEM;
        return NULL;
    }
    c->blk[c->n].p = p;
    c->blk[c->n].size = size;
    c->blk[c->n].align = align;
    c->n++;
    c->allocs++;
    c->live_bytes += size;
    c->last_size = size;
    c->last_align = align;
    if (align > c->max_align)
        c->max_align = align;
    if (usable)
        *usable = size;
    return p;
}

static void ca_counting__free(ca_allocator *a, void *p, size_t size, size_t align)
{
    ca_counting_allocator *c = (ca_counting_allocator *)a;
    if (!p)
        return;
    int i = 0;
    while (i < c->n && c->blk[i].p != p)
        i++;
    if (i == c->n || c->blk[i].size != size || c->blk[i].align != align) {
        c->mismatches++;
        return; /* kept: the block stays live and counted */
    }
    c->live_bytes -= size;
    c->blk[i] = c->blk[--c->n];
    c->frees++;
    free(p);
}

static const ca_allocator_ops ca_counting__ops = {
    .name = "test-counting", .caps = 0, .alloc = ca_counting__alloc, .free = ca_counting__free};

/* Set up c (caller storage): no failures, nothing live. */
static inline void ca_counting_init(ca_counting_allocator *c)
{
    memset(c, 0, sizeof *c);
    c->base.ops = &ca_counting__ops;
    c->fail_after = -1;
}

/* Free whatever is still live (a test's cleanup after it checked c->n). */
static inline void ca_counting_drain(ca_counting_allocator *c)
{
    while (c->n > 0)
        free(c->blk[--c->n].p);
    c->live_bytes = 0;
}

#endif
