/* SPDX-License-Identifier: MIT */
/*
 * Start-up footprint: a program that allocates a few KB (64 blocks of 16 to
 * 520 B) and ends. Reports its address space (VSZ) and resident set on
 * stderr as "vsz_kib=N rss_kib=N", read by the runner; stdout is the
 * compared output. What the allocator costs a small program before it does
 * anything. Usage: startup [scale] (the scale is ignored).
 */
#include "wl.h"

int main(void)
{
    void *p[64];
    size_t total = 0;
    for (int i = 0; i < 64; i++) {
        size_t sz = 16 + (size_t)i * 8;
        p[i] = wl_malloc(sz);
        memset(p[i], i, sz);
        total += sz;
    }
    long vsz = 0, res = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &vsz, &res) != 2)
            vsz = res = 0;
        fclose(f);
    }
    for (int i = 0; i < 64; i++)
        free(p[i]);
    printf("startup: %zu bytes in 64 blocks\n", total);
    fprintf(stderr, "vsz_kib=%ld rss_kib=%ld\n", vsz * 4, res * 4);
    return 0;
}
