/* SPDX-License-Identifier: MIT */
/* Uses libswitch through its installed header only; valid C11 and C++17.
 * The program's malloc stays glibc's (the override library is not linked):
 * it drives the switch through the ca_switch_* API. ctxalloc-switch requires
 * ctxalloc-binned, whose header is installed with it. */
#include <ctxalloc/binned.h>
#include <ctxalloc/switch.h>
#include <stdint.h>

static void *in_context(void *arg)
{
    return ca_switch_malloc((size_t)(uintptr_t)arg);
}

int main(void)
{
    ca_allocator *g = ca_switch_global();
    if (!g || ca_switch_current() != g || ca_switch_base() == NULL)
        return 1;
    char *p = (char *)ca_switch_malloc(100);
    if (!p || ca_switch_usable_size(p) < 100)
        return 2;
    p = (char *)ca_switch_realloc(p, 5000);
    if (!p)
        return 3;
    ca_switch_free(p);

    /* An allocator free() cannot route (libc's, behind a header) is refused... */
    ca_header_allocator h;
    if (ca_header_init(&h, ca_libc_allocator()) != 0)
        return 4;
    ca_allocator *prev = NULL;
    if (ca_switch_context_try_set(&h.base, &prev) != EINVAL || ca_switch_context() != NULL)
        return 5;

    /* ...an adopted one is routable: a context allocator for one call. */
    ca_binned_options o;
    ca_binned_options_init(&o);
    o.class_range_log2 = 24;
    ca_binned *b = NULL;
    ca_switch_adopted ad;
    if (ca_binned_create(&b, &o) != 0 || ca_switch_adopt(&ad, ca_binned_allocator(b)) != 0)
        return 10;
    void *q = ca_switch_with(&ad.base, in_context, (void *)(uintptr_t)64);
    /* A binned instance registers its own ranges: free() finds the instance. */
    if (!q || ca_switch_context() != NULL || ca_switch_owner(q) != ca_binned_allocator(b))
        return 11;
    ca_switch_free(q);
    if (ca_switch_unadopt(&ad) != 0)
        return 12;
    ca_binned_destroy(b);

    void *r = NULL;
    if (ca_switch_posix_memalign(&r, 3, 8) != EINVAL || r != NULL)
        return 6;
    if (ca_switch_posix_memalign(&r, 64, 8) != 0 || ((uintptr_t)r & 63) != 0)
        return 7;
    ca_switch_free(r);
    errno = 0;
    if (ca_switch_aligned_alloc(3, 8) != NULL || errno != EINVAL)
        return 8;
    volatile size_t huge = SIZE_MAX; /* hidden from alloc_size warnings */
    if (ca_switch_calloc(huge, 2) != NULL || errno != ENOMEM)
        return 9;
    return 0;
}
