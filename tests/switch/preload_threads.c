/* SPDX-License-Identifier: MIT */
/*
 * A threaded program that knows nothing of ctxalloc, run under
 * LD_PRELOAD=libctxalloc.so by preload_programs.sh: producer /
 * consumer threads passing malloc'd strings, realloc growth, a fork while
 * the threads run, C++-style churn through calloc and free. Prints a
 * checksum that must match the run without preload.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define NQ 1024
#define ITEMS 200000

static char *queue[NQ];
static uint64_t sums[4];

static void *producer(void *arg)
{
    int id = (int)(intptr_t)arg;
    for (int i = id; i < ITEMS; i += 2) {
        char *s = malloc(32);
        snprintf(s, 32, "%d", i);
        char *old = __atomic_exchange_n(&queue[i % NQ], s, __ATOMIC_ACQ_REL);
        if (old) {
            sums[id] += (uint64_t)strtol(old, NULL, 10);
            free(old);
        }
    }
    return NULL;
}

static void *grower(void *arg)
{
    int id = (int)(intptr_t)arg;
    char *buf = NULL;
    size_t n = 0;
    for (int i = 0; i < 20000; i++) {
        buf = realloc(buf, n + 8);
        memcpy(buf + n, "abcdefgh", 8);
        n += 8;
        if (n > 65536) {
            for (size_t k = 0; k < n; k++)
                sums[id] += (unsigned char)buf[k];
            n = 0;
        }
    }
    free(buf);
    return NULL;
}

int main(void)
{
    pthread_t th[4];
    pthread_create(&th[0], NULL, producer, (void *)(intptr_t)0);
    pthread_create(&th[1], NULL, producer, (void *)(intptr_t)1);
    pthread_create(&th[2], NULL, grower, (void *)(intptr_t)2);
    pthread_create(&th[3], NULL, grower, (void *)(intptr_t)3);
    pid_t pid = fork();
    if (pid == 0) {
        void *v[1000];
        for (int i = 0; i < 1000; i++)
            v[i] = calloc((size_t)i + 1, 4);
        for (int i = 0; i < 1000; i++)
            free(v[i]);
        _exit(0);
    }
    int st = 1;
    waitpid(pid, &st, 0);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    uint64_t rest = 0;
    for (int k = 0; k < NQ; k++)
        if (queue[k]) {
            rest += (uint64_t)strtol(queue[k], NULL, 10);
            free(queue[k]);
        }
    /* Every number was summed exactly once, whoever freed it. */
    uint64_t total = sums[0] + sums[1] + rest;
    printf("numbers %s child %d grown %llu\n",
           total == (uint64_t)ITEMS * (ITEMS - 1) / 2 ? "ok" : "WRONG", st,
           (unsigned long long)(sums[2] + sums[3]));
    return 0;
}
