/* SPDX-License-Identifier: MIT */
/*
 * Mixed sizes with a large live set (the mstress / cfrac-like pattern of
 * many small and some big objects): 100,000 live objects of 8 B..64 KiB drawn
 * from a power law, replaced at random; every object is verified on free.
 * Usage: mixed [scale]
 */
#include "wl.h"

#define LIVE 100000

int main(int argc, char **argv)
{
    size_t rounds = wl_scaled(wl_scale(argc, argv), 4000000, 20000);
    size_t live = rounds < LIVE * 4 ? rounds / 4 : LIVE;
    void **obj = (void **)wl_malloc(live * sizeof *obj);
    size_t *size = (size_t *)wl_malloc(live * sizeof *size);
    wl_rng r = {4242};
    unsigned long long bytes = 0;
    for (size_t i = 0; i < live; i++) {
        size[i] = wl_powerlaw(&r, 8, 65536);
        obj[i] = wl_malloc(size[i]);
        wl_mark(obj[i], size[i], i);
    }
    for (size_t n = 0; n < rounds; n++) {
        size_t i = (size_t)wl_below(&r, live);
        wl_check(obj[i], size[i], i);
        free(obj[i]);
        size[i] = wl_powerlaw(&r, 8, 65536);
        obj[i] = wl_malloc(size[i]);
        wl_mark(obj[i], size[i], i);
        bytes += size[i];
    }
    for (size_t i = 0; i < live; i++) {
        wl_check(obj[i], size[i], i);
        free(obj[i]);
    }
    free(obj);
    free(size);
    printf("mixed: %zu replacements, %llu bytes allocated ok\n", rounds, bytes);
    return 0;
}
