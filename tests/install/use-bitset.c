/* SPDX-License-Identifier: MIT */
/* Uses libbitset through its installed header only; valid C11 and C++17. */
#include <ctxalloc/bitset.h>
#include <stdio.h>
#include <stdlib.h>

int main(void)
{
    size_t region = (size_t)1 << 20;
    void *buf = aligned_alloc(256, region);
    if (!buf)
        return 1;
    ca_bitset_options o;
    ca_bitset_options_init(&o);
    o.block_size = 256;
    o.region_size = region;
    o.buffer = buf;
    ca_bitset *b = NULL;
    if (ca_bitset_create(&b, &o) != 0)
        return 2;

    char *p = (char *)ca_bitset_alloc(b, 1000, 16, NULL); /* a run of 4 blocks */
    if (!p || ca_bitset_usable_size(b, p) != 1024)
        return 3;
    p[0] = 'x';
    char *q = (char *)ca_bitset_resize(b, p, 1000, 3000, 16, CA_RESIZE_IN_PLACE, NULL);
    if (q != p || p[0] != 'x')
        return 4;
    ca_bitset_free_unsized(b, q);

    ca_locked_allocator l;
    if (ca_locked_init(&l, ca_bitset_allocator(b), CA_LOCK_MUTEX))
        return 5;
    void *r = ca_alloc(&l.base, 100, 4096);
    if (!r || !ca_is_aligned((uintptr_t)r, 4096))
        return 6;
    ca_free(&l.base, r, 100, 4096);
    ca_locked_destroy(&l);

    ca_stats st;
    ca_bitset_stats(b, &st);
    uint64_t lfr = 0;
    if (!ca_stats_get_counter(&st, "largest_free_run", &lfr) || lfr != region / 256)
        return 7;
    if (ca_bitset_check(b) != NULL)
        return 8;
    char out[1024];
    ca_stats_format_buf(&st, CA_STATS_JSON, out, sizeof out);
    puts(out);
    ca_bitset_destroy(b);
    free(buf);
    return 0;
}
