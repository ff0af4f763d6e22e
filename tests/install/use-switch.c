/* SPDX-License-Identifier: MIT */
/* Uses libswitch through its installed header only; valid C11 and C++17.
 * The program's malloc stays glibc's (the override library is not linked):
 * it drives the switch through the ca_switch_* API. */
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

    /* A context allocator for one call, restored afterwards. */
    ca_header_allocator h;
    if (ca_header_init(&h, ca_libc_allocator()) != 0)
        return 4;
    void *q = ca_switch_with(&h.base, in_context, (void *)(uintptr_t)64);
    if (!q || ca_switch_context() != NULL)
        return 5;
    ca_free_unsized(&h.base, q);

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
