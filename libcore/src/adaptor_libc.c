/* SPDX-License-Identifier: MIT */
/*
 * The libc adaptor: the process's malloc family seen as a ca_allocator.
 *
 * Blocks with align <= CA_ALIGN_DEFAULT come from malloc and resize with
 * realloc (which leaves the block intact when it fails). Larger alignments
 * come from posix_memalign; realloc cannot keep them, so those resize by
 * allocate-copy-free. Size 0 is served as 1 byte so that every call gives a
 * unique pointer. In-place resize succeeds only within malloc_usable_size.
 *
 * Concurrency: stateless; as thread-safe as the malloc underneath.
 */
#include <ctxalloc/core.h>

#include <malloc.h>
#include <stdlib.h>

static void *libc_alloc(ca_allocator *a, size_t size, size_t align, size_t *usable)
{
    (void)a;
    void *p;
    if (ca_unlikely(!ca_is_pow2(align))) {
        errno = EINVAL;
        return NULL;
    }
    if (size == 0)
        size = 1;
    if (align <= CA_ALIGN_DEFAULT) {
        p = malloc(size);
        if (!p) {
            errno = ENOMEM;
            return NULL;
        }
    } else {
        int e = posix_memalign(&p, align < sizeof(void *) ? sizeof(void *) : align, size);
        if (e) {
            errno = e;
            return NULL;
        }
    }
    if (usable)
        *usable = malloc_usable_size(p);
    return p;
}

static void libc_free(ca_allocator *a, void *p, size_t size, size_t align)
{
    (void)a, (void)size, (void)align;
    free(p);
}

static void libc_free_unsized(ca_allocator *a, void *p)
{
    (void)a;
    free(p);
}

static size_t libc_usable_size(const ca_allocator *a, const void *p)
{
    (void)a;
    return malloc_usable_size((void *)p);
}

static void *libc_resize(ca_allocator *a, void *p, size_t old_size, size_t new_size, size_t align, unsigned flags,
                         size_t *usable)
{
    if (!ca_is_pow2(align)) {
        errno = EINVAL;
        return NULL;
    }
    if (!p || (flags & CA_RESIZE_IN_PLACE) || align > CA_ALIGN_DEFAULT)
        return ca_resize_generic(a, p, old_size, new_size, align, flags, usable);
    void *q = realloc(p, new_size ? new_size : 1);
    if (!q) {
        errno = ENOMEM;
        return NULL;
    }
    if (usable)
        *usable = malloc_usable_size(q);
    return q;
}

static const ca_allocator_ops libc_ops = {
    .name = "libc",
    .caps = CA_CAP_THREAD_SAFE | CA_CAP_UNSIZED,
    .alloc = libc_alloc,
    .free = libc_free,
    .free_unsized = libc_free_unsized,
    .usable_size = libc_usable_size,
    .resize = libc_resize,
};

static ca_allocator libc_allocator = {&libc_ops};

ca_allocator *ca_libc_allocator(void) { return &libc_allocator; }
