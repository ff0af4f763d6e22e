/* SPDX-License-Identifier: MIT */
/*
 * Thread churn (the glibc-thread / thread-recreation pattern): thousands of
 * short-lived threads, two at a time, each allocating a few hundred objects,
 * freeing most and handing the rest to the main thread, which frees them
 * later (objects outlive their thread). Usage: churn [scale]
 */
#include <pthread.h>

#include "wl.h"

#define PER_THREAD 300
#define KEEP 20

typedef struct job {
    uint64_t seed;
    void *kept[KEEP];
    size_t kept_size[KEEP];
} job;

static void *worker(void *arg)
{
    job *j = (job *)arg;
    wl_rng r = {j->seed};
    void *obj[PER_THREAD];
    size_t size[PER_THREAD];
    for (int i = 0; i < PER_THREAD; i++) {
        size[i] = wl_powerlaw(&r, 8, 4096);
        obj[i] = wl_malloc(size[i]);
        wl_mark(obj[i], size[i], (uint64_t)i);
    }
    for (int i = 0; i < PER_THREAD; i++) {
        if (i < KEEP) {
            j->kept[i] = obj[i];
            j->kept_size[i] = size[i];
        } else {
            wl_check(obj[i], size[i], (uint64_t)i);
            free(obj[i]);
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    size_t threads = wl_scaled(wl_scale(argc, argv), 30000, 20);
    job jobs[2];
    unsigned long long kept = 0;
    for (size_t n = 0; n < threads; n += 2) {
        pthread_t t[2];
        for (int k = 0; k < 2; k++) {
            jobs[k].seed = n + (uint64_t)k;
            if (pthread_create(&t[k], NULL, worker, &jobs[k]) != 0) {
                perror("pthread_create");
                return 2;
            }
        }
        for (int k = 0; k < 2; k++) {
            pthread_join(t[k], NULL);
            for (int i = 0; i < KEEP; i++) {
                wl_check(jobs[k].kept[i], jobs[k].kept_size[i], (uint64_t)i);
                free(jobs[k].kept[i]);
                kept++;
            }
        }
    }
    printf("churn: %zu threads, %llu objects outlived their thread ok\n", threads, kept);
    return 0;
}
