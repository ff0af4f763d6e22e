/* SPDX-License-Identifier: MIT */
/*
 * Server-like workload (the larson pattern): each thread owns an array of
 * slots and replaces random objects (16..512 B) in it; after a number of
 * rounds it exits and its array is handed to a freshly created thread, so
 * objects are freed by threads other than the ones that allocated them.
 * Four threads run at a time; each generation replaces the previous one.
 * Usage: larson [scale]
 */
#include <pthread.h>

#include "wl.h"

#define THREADS 4
#define SLOTS 2000

typedef struct gen {
    void *obj[SLOTS];
    size_t size[SLOTS];
    uint64_t tag[SLOTS];
    wl_rng rng;
    size_t rounds;
    unsigned long long ops;
} gen;

static void *worker(void *arg)
{
    gen *g = (gen *)arg;
    for (size_t r = 0; r < g->rounds; r++) {
        size_t i = (size_t)wl_below(&g->rng, SLOTS);
        if (g->obj[i]) {
            wl_check(g->obj[i], g->size[i], g->tag[i]);
            free(g->obj[i]);
        }
        size_t sz = 16 + (size_t)wl_below(&g->rng, 497);
        g->obj[i] = wl_malloc(sz);
        g->size[i] = sz;
        g->tag[i] = wl_next(&g->rng);
        wl_mark(g->obj[i], sz, g->tag[i]);
        g->ops++;
    }
    return NULL;
}

int main(int argc, char **argv)
{
    double scale = wl_scale(argc, argv);
    static gen gens[THREADS];
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) {
        gens[i].rng.s = 1000 + (uint64_t)i;
        gens[i].rounds = 20000;
        /* fill the array first, as larson does */
        for (int k = 0; k < SLOTS; k++) {
            size_t sz = 16 + (size_t)wl_below(&gens[i].rng, 497);
            gens[i].obj[k] = wl_malloc(sz);
            gens[i].size[k] = sz;
            gens[i].tag[k] = wl_next(&gens[i].rng);
            wl_mark(gens[i].obj[k], sz, gens[i].tag[k]);
        }
    }
    size_t generations = wl_scaled(scale, 600, 2);
    for (size_t g = 0; g < generations; g++) {
        for (int i = 0; i < THREADS; i++)
            if (pthread_create(&t[i], NULL, worker, &gens[i]) != 0) {
                perror("pthread_create");
                return 2;
            }
        for (int i = 0; i < THREADS; i++)
            pthread_join(t[i], NULL);
    }
    unsigned long long ops = 0;
    for (int i = 0; i < THREADS; i++) {
        ops += gens[i].ops;
        for (int k = 0; k < SLOTS; k++) {
            wl_check(gens[i].obj[k], gens[i].size[k], gens[i].tag[k]);
            free(gens[i].obj[k]);
        }
    }
    printf("larson: %llu replacements ok\n", ops);
    return 0;
}
