/* SPDX-License-Identifier: MIT */
/*
 * Placing values in a ca_bump: memdup, strdup, strndup and the array
 * builder that grows at the tip (the inline push is in <ctxalloc/bump.h>).
 *
 * Concurrency: none (the bump's owner thread).
 * Read first: ca_bump__array_push_slow.
 */
#include <string.h>

#include "bump_internal.h"

void *ca_bump_memdup(ca_bump *b, const void *src, size_t n)
{
    void *p = ca_bump_alloc(b, n, CA_ALIGN_DEFAULT);
    if (p && n)
        memcpy(p, src, n);
    return p;
}

char *ca_bump_strndup(ca_bump *b, const char *s, size_t n)
{
    size_t len = strnlen(s, n), bytes;
    if (ca_add_overflows(len, 1, &bytes)) {
        errno = ENOMEM;
        return NULL;
    }
    char *p = (char *)ca_bump_alloc(b, bytes, 1);
    if (p) {
        memcpy(p, s, len);
        p[len] = '\0';
    }
    return p;
}

char *ca_bump_strdup(ca_bump *b, const char *s) { return ca_bump_strndup(b, s, SIZE_MAX); }

int ca_bump_array_begin(ca_bump_array *a, ca_bump *b, size_t size, size_t align)
{
    if (!a || !b || size == 0 || !ca_is_pow2(align) || align > CA_BUMP_ALIGN_MAX)
        return EINVAL;
    a->bump = b;
    a->data = NULL;
    a->count = a->cap = 0;
    a->size = size;
    a->align = align;
    return 0;
}

/*
 * Not at the tip, or the chunk is full: move the items once to a block of
 * twice the capacity. When that block is the regular tip, the spare
 * capacity is handed back at once (the cursor stops after the new item), so
 * later pushes take the inline path and nothing is wasted; in an oversized
 * chunk the capacity is kept in `cap`.
 */
void *ca_bump__array_push_slow(ca_bump_array *a)
{
    ca_bump *b = a->bump;
    if (a->data && a->count < a->cap)
        return a->data + a->count++ * a->size;
    size_t ncap, bytes, have = a->count * a->size;
    if (ca_mul_overflows(a->count ? a->count : 4, 2, &ncap) || ca_mul_overflows(ncap, a->size, &bytes)) {
        errno = ENOMEM;
        return NULL;
    }
    /* Still at the tip but the chunk is full: the old copy is abandoned. */
    char *q = (char *)ca_bump_alloc(b, bytes, a->align);
    if (!q)
        return NULL;
    if (have)
        memcpy(q, a->data, have);
    a->data = q;
    if (q + bytes == b->cur) {
        b->cur = q + have + a->size;
        a->cap = a->count + 1;
    } else {
        a->cap = ncap;
    }
    return a->data + a->count++ * a->size;
}

void *ca_bump_array_finish(ca_bump_array *a, size_t *count)
{
    if (count)
        *count = a->count;
    if (a->data && a->cap > a->count)
        ca_bump_resize(a->bump, a->data, a->cap * a->size, a->count * a->size, a->align, CA_RESIZE_IN_PLACE);
    void *p = a->count ? a->data : NULL;
    a->data = NULL;
    a->count = a->cap = 0;
    return p;
}
