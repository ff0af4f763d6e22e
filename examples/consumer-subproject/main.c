/* SPDX-License-Identifier: MIT */
/*
 * A program that takes ctxalloc as a Meson subproject:
 *   dependency('ctxalloc-core') and dependency('ctxalloc-bump') with
 *   subprojects/ctxalloc.wrap
 * It gives unsized free to the libc adaptor through the header adaptor,
 * makes it thread-safe with the locked adaptor and prints the stats.
 */
#include <ctxalloc/bump.h>
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
    char *t = (char *)ca_resize(&l.base, s, 32, 4096, 16, 0);
    if (!t) { /* s is still valid and intact */
        ca_free_unsized(&l.base, s);
        return 3;
    }
    s = t;
    if (strcmp(s, "hello from ctxalloc") != 0)
        return 3;
    ca_bump b; /* and a bump allocator from the second dependency */
    if (ca_bump_init_allocator(&b, &l.base, NULL) != 0 || !ca_bump_strdup(&b, "bump"))
        return 4;
    ca_bump_destroy(&b);
    printf("%s (%zu usable bytes)\n", s, ca_usable_size(&l.base, s));
    ca_free_unsized(&l.base, s);
    ca_locked_destroy(&l);
    return 0;
}
