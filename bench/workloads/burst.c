/* SPDX-License-Identifier: MIT */
/*
 * Burst and memory return: allocate 1 GiB in small objects (16..256 B), free
 * all of it, stay idle for 2 seconds, then report the resident set. An
 * allocator that returns memory shows a small rss_after_idle; the peers keep
 * ~90% of the peak (bench/results/workloads.md). The RSS line is read by the runner and is
 * not part of the compared output. Usage: burst [scale]
 */
#include <unistd.h>

#include "wl.h"

int main(int argc, char **argv)
{
    double scale = wl_scale(argc, argv);
    size_t target = wl_scaled(scale, (size_t)1 << 30, (size_t)8 << 20);
    size_t cap = target / 16 + 1, n = 0, bytes = 0;
    void **obj = (void **)wl_malloc(cap * sizeof *obj);
    wl_rng r = {31337};
    while (bytes < target) {
        size_t sz = 16 + (size_t)wl_below(&r, 241);
        obj[n] = wl_malloc(sz);
        memset(obj[n], (int)(n & 0xff), sz < 64 ? sz : 64);
        bytes += sz;
        n++;
    }
    long peak = wl_rss_kib();
    for (size_t i = 0; i < n; i++)
        free(obj[i]);
    free(obj);
    unsigned idle = scale >= 0.5 ? 2 : 1;
    sleep(idle);
    long after = wl_rss_kib();
    printf("burst: %zu objects, %zu bytes freed ok\n", n, bytes);
    fprintf(stderr, "rss_peak_kib=%ld rss_after_idle_kib=%ld\n", peak, after);
    return 0;
}
