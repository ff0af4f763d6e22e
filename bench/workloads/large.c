/* SPDX-License-Identifier: MIT */
/*
 * Large objects (the malloc-large pattern): a live set of 20 objects of
 * 64 KiB..8 MiB replaced at random; each new object has one byte written per
 * 4 KiB page, so an allocator that returns memory to the OS and refaults it
 * pays for every page. Two threads. Usage: large [scale]
 */
#include <pthread.h>

#include "wl.h"

#define LIVE 20

static size_t rounds;

static void *worker(void *arg)
{
    wl_rng r = {500 + (uint64_t)(intptr_t)arg};
    char *obj[LIVE] = {0};
    size_t size[LIVE] = {0};
    for (size_t n = 0; n < rounds; n++) {
        size_t i = (size_t)wl_below(&r, LIVE);
        if (obj[i]) {
            wl_check(obj[i], size[i], i);
            free(obj[i]);
        }
        size[i] = (64u << 10) + (size_t)wl_below(&r, (8u << 20) - (64u << 10));
        obj[i] = (char *)wl_malloc(size[i]);
        for (size_t k = 0; k < size[i]; k += 4096)
            obj[i][k] = (char)k;
        wl_mark(obj[i], size[i], i);
    }
    for (int i = 0; i < LIVE; i++)
        free(obj[i]);
    return NULL;
}

int main(int argc, char **argv)
{
    rounds = wl_scaled(wl_scale(argc, argv), 20000, 30);
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, worker, (void *)(intptr_t)i);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    printf("large: %zu replacements per thread ok\n", rounds);
    return 0;
}
