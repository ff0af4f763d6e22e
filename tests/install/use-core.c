/* SPDX-License-Identifier: MIT */
/* Uses libcore through its installed header only; valid C11 and C++17. */
#include <ctxalloc/core.h>
#include <stdio.h>

int main(void)
{
    ca_allocator *a = ca_libc_allocator();
    char *p = (char *)ca_alloc(a, 100, 64);
    if (!p || !ca_is_aligned((uintptr_t)p, 64))
        return 1;
    p = (char *)ca_resize(a, p, 100, 1000, 64, 0);
    if (!p)
        return 2;
    ca_free(a, p, 1000, 64);

    ca_header_allocator h;
    ca_locked_allocator l;
    if (ca_header_init(&h, a) || ca_locked_init(&l, &h.base, CA_LOCK_SPIN))
        return 3;
    void *q = ca_alloc(&l.base, 10, 16);
    if (ca_usable_size(&l.base, q) != 10)
        return 4;
    ca_free_unsized(&l.base, q);
    ca_locked_destroy(&l);

    size_t r;
    if (!ca_mul_overflows(SIZE_MAX, 2, &r))
        return 5;
    ca_stats st;
    ca_stats_init(&st, "consumer");
    char buf[512];
    if (ca_stats_format_buf(&st, CA_STATS_JSON, buf, sizeof buf) >= sizeof buf)
        return 6;
    static int owner;
    void *region = (void *)((uintptr_t)1 << 40);
    if (ca_owner_register(region, CA_OWNER_GRANULE, &owner) || ca_owner_lookup(region) != &owner)
        return 7;
    ca_owner_unregister(region, CA_OWNER_GRANULE, &owner);
    puts(buf);
    return 0;
}
