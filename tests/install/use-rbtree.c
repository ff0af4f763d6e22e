/* SPDX-License-Identifier: MIT */
/* Uses librbtree through its public header only; valid C11 and C++17.
 * Exits 0 on success. */
#include <ctxalloc/rbtree.h>
#include <stdio.h>
#include <string.h>

int main(void)
{
    ca_rbtree r;
    ca_rbtree_options opt;
    ca_rbtree_options_init(&opt);
    opt.region_size = 256 * 1024;
    if (ca_rbtree_init(&r, &opt) != 0)
        return 1;
    char *a = (char *)ca_rbtree_alloc(&r, 100, 16, NULL);
    char *b = (char *)ca_alloc(&r.base, 5000, 4096); /* through the generic interface */
    if (!a || !b || ((uintptr_t)b & 4095) != 0)
        return 2;
    strcpy(a, "hello");
    a = (char *)ca_rbtree_resize(&r, a, 100, 20000, 16, 0, NULL);
    if (!a || strcmp(a, "hello") != 0)
        return 3;
    ca_rbtree_free(&r, a, 20000, 16);
    ca_free_unsized(&r.base, b);
    ca_stats st;
    ca_rbtree_stats(&r, &st);
    if (st.bytes_in_use != 0 || ca_rbtree_check(&r) != NULL)
        return 4;
    ca_rbtree_destroy(&r);
    puts("use-rbtree: ok");
    return 0;
}
