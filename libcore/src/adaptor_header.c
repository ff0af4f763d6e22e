/* SPDX-License-Identifier: MIT */
/*
 * The header adaptor: unsized free and usable size over any allocator.
 *
 * Layout of a block, with A = max(align, 16):
 *
 *   inner block start                         user pointer (aligned to A)
 *   |<-------------- A bytes -------------->| |<---- size bytes ---->|
 *   [ unused (A - 16) ][ hdr.size ][ hdr.align ][ user data           ]
 *
 * The inner allocator is asked for (A + size) bytes aligned to A, so the
 * user pointer is inner + A and the 16-byte header sits right before it.
 * hdr.align holds A; a canary bit pattern in its upper bits catches frees of
 * pointers that did not come from this adaptor (checks=on).
 *
 * The ops table is built per instance: owns, reset, stats, listen and check
 * exist exactly
 * when the inner allocator has them.
 *
 * Concurrency: no state of its own; the inner allocator's rules apply.
 */
#include <ctxalloc/core.h>

#include <stdlib.h>

typedef struct hdr {
    size_t size;  /* bytes requested by the caller */
    size_t align; /* A (low bits) | HDR_TAG (high bits) */
} hdr;
CA_STATIC_ASSERT(sizeof(hdr) == CA_ALIGN_DEFAULT, "header must be one default alignment unit");

#define HDR_TAG      ((size_t)0xCA11u << 48)
#define HDR_TAG_MASK ((size_t)0xFFFFu << 48)

/* User pointers are aligned to at least 16, so the header is aligned too. */
static hdr *hdr_of(const void *p) { return (hdr *)(void *)((char *)(uintptr_t)p - sizeof(hdr)); }

static size_t hdr_align(const hdr *h)
{
    CA_CHECK((h->align & HDR_TAG_MASK) == HDR_TAG, "header", h + 1,
             "pointer not from this header allocator (bad tag)");
    return h->align & ~HDR_TAG_MASK;
}

static void *header_alloc(ca_allocator *a, size_t size, size_t align, size_t *usable)
{
    ca_header_allocator *h = (ca_header_allocator *)a;
    if (!ca_is_pow2(align)) {
        errno = EINVAL;
        return NULL;
    }
    size_t A = align < CA_ALIGN_DEFAULT ? CA_ALIGN_DEFAULT : align, total;
    if (A >= ((size_t)1 << 48) || ca_add_overflows(size, A, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    char *base = (char *)ca_alloc(h->inner, total, A);
    if (!base)
        return NULL;
    char *user = base + A;
    hdr *hd = hdr_of(user);
    hd->size = size;
    hd->align = A | HDR_TAG;
    if (usable)
        *usable = size;
    return user;
}

static void header_free_unsized(ca_allocator *a, void *p)
{
    ca_header_allocator *h = (ca_header_allocator *)a;
    if (!p)
        return;
    hdr *hd = hdr_of(p);
    size_t A = hdr_align(hd);
    size_t size = hd->size;
    hd->align = 0; /* a second free of p then fails the tag check */
    ca_free(h->inner, (char *)p - A, size + A, A);
}

static void header_free(ca_allocator *a, void *p, size_t size, size_t align)
{
    (void)size, (void)align;
    header_free_unsized(a, p);
}

static size_t header_usable_size(const ca_allocator *a, const void *p)
{
    (void)a;
    return hdr_of(p)->size;
}

static void *header_resize(ca_allocator *a, void *p, size_t old_size, size_t new_size, size_t align,
                           unsigned flags, size_t *usable)
{
    ca_header_allocator *h = (ca_header_allocator *)a;
    (void)old_size;
    if (!ca_is_pow2(align)) {
        errno = EINVAL;
        return NULL;
    }
    if (!p)
        return (flags & CA_RESIZE_IN_PLACE) ? (errno = ENOMEM, NULL) : header_alloc(a, new_size, align, usable);
    hdr *hd = hdr_of(p);
    size_t A = hdr_align(hd), cur = hd->size, total;
    if (align > A) {
        /* Stronger alignment than the block has: only a move can give it. */
        if (flags & CA_RESIZE_IN_PLACE) {
            errno = ENOMEM;
            return NULL;
        }
        void *q = header_alloc(a, new_size, align, usable);
        if (!q)
            return NULL;
        memcpy(q, p, cur < new_size ? cur : new_size);
        header_free_unsized(a, p);
        return q;
    }
    if (ca_add_overflows(new_size, A, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    char *base = (char *)p - A;
    char *nb = (char *)ca_resize(h->inner, base, cur + A, total, A, flags);
    if (!nb)
        return NULL; /* inner left the block intact, header included */
    hdr_of(nb + A)->size = new_size;
    if (usable)
        *usable = new_size;
    return nb + A;
}

static bool header_owns(const ca_allocator *a, const void *p)
{
    const ca_header_allocator *h = (const ca_header_allocator *)a;
    return ca_owns(h->inner, p); /* p lies inside the inner block */
}

static void header_reset(ca_allocator *a)
{
    ca_header_allocator *h = (ca_header_allocator *)a;
    h->inner->ops->reset(h->inner);
}

static int header_stats(const ca_allocator *a, ca_stats *out)
{
    const ca_header_allocator *h = (const ca_header_allocator *)a;
    return h->inner->ops->stats(h->inner, out);
}

static int header_listen(ca_allocator *a, ca_listener *l)
{
    ca_header_allocator *h = (ca_header_allocator *)a;
    return h->inner->ops->listen(h->inner, l);
}

static const char *header_check(ca_allocator *a)
{
    ca_header_allocator *h = (ca_header_allocator *)a;
    return h->inner->ops->check(h->inner);
}

int ca_header_init(ca_header_allocator *h, ca_allocator *inner)
{
    if (!h || !inner)
        return EINVAL;
    const ca_allocator_ops *in = inner->ops;
    memset(&h->ops, 0, sizeof h->ops);
    h->ops.name = "header";
    h->ops.caps = CA_CAP_UNSIZED | (in->caps & (CA_CAP_THREAD_SAFE | CA_CAP_FREE_NOOP));
    h->ops.alloc = header_alloc;
    h->ops.free = header_free;
    h->ops.free_unsized = header_free_unsized;
    h->ops.usable_size = header_usable_size;
    h->ops.resize = header_resize;
    h->ops.owns = in->owns ? header_owns : NULL;
    h->ops.reset = in->reset ? header_reset : NULL;
    h->ops.stats = in->stats ? header_stats : NULL;
    h->ops.listen = in->listen ? header_listen : NULL;
    h->ops.check = in->check ? header_check : NULL;
    h->base.ops = &h->ops;
    h->inner = inner;
    return 0;
}

void *ca_header_malloc(ca_header_allocator *h, size_t size)
{
    return header_alloc(&h->base, size, CA_ALIGN_DEFAULT, NULL);
}

void *ca_header_calloc(ca_header_allocator *h, size_t n, size_t size)
{
    return ca_alloc_zeroed(&h->base, n, size, CA_ALIGN_DEFAULT);
}

void *ca_header_aligned_alloc(ca_header_allocator *h, size_t align, size_t size)
{
    return header_alloc(&h->base, size, align, NULL);
}

void *ca_header_realloc(ca_header_allocator *h, void *p, size_t size)
{
    if (p && size == 0) {
        header_free_unsized(&h->base, p);
        return NULL;
    }
    return header_resize(&h->base, p, 0, size, CA_ALIGN_DEFAULT, 0, NULL);
}

void ca_header_free(ca_header_allocator *h, void *p) { header_free_unsized(&h->base, p); }
