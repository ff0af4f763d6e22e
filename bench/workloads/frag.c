/* SPDX-License-Identifier: MIT */
/*
 * Fragmentation: allocate many small objects, free every other one, then
 * allocate larger objects of the same total size. An allocator that cannot
 * reuse the holes for the larger size class grows its footprint; peak RSS
 * (measured by the runner) shows it. Usage: frag [scale]
 */
#include "wl.h"

int main(int argc, char **argv)
{
    double scale = wl_scale(argc, argv);
    size_t n = wl_scaled(scale, 8000000, 20000);
    void **obj = (void **)wl_malloc(n * sizeof *obj);
    wl_rng r = {2718};
    for (size_t i = 0; i < n; i++) {
        obj[i] = wl_malloc(48);
        wl_mark(obj[i], 48, i);
    }
    for (size_t i = 0; i < n; i += 2) {
        wl_check(obj[i], 48, i);
        free(obj[i]);
        obj[i] = NULL;
    }
    size_t m = n / 8;
    void **big = (void **)wl_malloc(m * sizeof *big);
    for (size_t i = 0; i < m; i++) {
        size_t sz = 128 + (size_t)wl_below(&r, 129);
        big[i] = wl_malloc(sz);
        wl_mark(big[i], sz < 16 ? sz : 16, i);
    }
    for (size_t i = 1; i < n; i += 2) {
        wl_check(obj[i], 48, i);
        free(obj[i]);
    }
    for (size_t i = 0; i < m; i++)
        free(big[i]);
    free(big);
    free(obj);
    printf("frag: %zu small, %zu large ok\n", n, m);
    return 0;
}
