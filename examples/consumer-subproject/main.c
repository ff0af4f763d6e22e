/* SPDX-License-Identifier: MIT */
/*
 * A program that takes ctxalloc as a Meson subproject:
 *   dependency('ctxalloc-core') with subprojects/ctxalloc.wrap
 * It gives unsized free to the libc adaptor through the header adaptor,
 * makes it thread-safe with the locked adaptor and prints the stats.
 */
#include <ctxalloc/core.h>
#include <stdio.h>
#include <string.h>

int main(void)
{
    ca_header_allocator h;
    ca_locked_allocator l;
    if (ca_header_init(&h, ca_libc_allocator()) != 0 || ca_locked_init(&l, &h.base, CA_LOCK_MUTEX) != 0)
        return 1;
    char *s = (char *)ca_alloc(&l.base, 32, 16);
    if (!s)
        return 2;
    strcpy(s, "hello from ctxalloc");
    s = (char *)ca_resize(&l.base, s, 32, 4096, 16, 0);
    if (!s || strcmp(s, "hello from ctxalloc") != 0)
        return 3;
    printf("%s (%zu usable bytes)\n", s, ca_usable_size(&l.base, s));
    ca_free_unsized(&l.base, s);
    ca_locked_destroy(&l);
    return 0;
}
