/* SPDX-License-Identifier: MIT */
/* Uses libbinned through its installed header only; valid C11 and C++17. */
#include <ctxalloc/binned.h>
#include <stdio.h>
#include <string.h>

int main(void)
{
    char *p = (char *)ca_binned_default_malloc(100);
    if (!p || ca_binned_default_usable_size(p) < 100)
        return 1;
    strcpy(p, "binned");
    p = (char *)ca_binned_default_realloc(p, 100000);
    if (!p || strcmp(p, "binned") != 0)
        return 2;
    ca_binned_default_free(p);
    void *q = ca_binned_default_aligned_alloc(4096, 10);
    if (!q || !ca_is_aligned((uintptr_t)q, 4096))
        return 3;
    ca_binned_default_free(q);

    ca_binned_options o;
    ca_binned_options_init(&o);
    o.class_range_log2 = 26;
    ca_binned *b = NULL;
    if (ca_binned_create(&b, &o) != 0)
        return 4;
    ca_allocator *a = ca_binned_allocator(b);
    void *r = ca_alloc(a, 1000, 64);
    if (!r || ca_owner_lookup(r) != (void *)a)
        return 5;
    ca_free_unsized(a, r);
    ca_binned_trim(b);
    if (ca_binned_check(b) != NULL)
        return 6;
    ca_stats st;
    if (ca_binned_stats(b, &st) != 0 || st.allocs != 1 || st.frees != 1)
        return 7;
    ca_binned_destroy(b);
    puts("use-binned: ok");
    return 0;
}
