/* SPDX-License-Identifier: MIT */
/*
 * Producer/consumer workload (the xmalloc-test pattern): producer threads
 * allocate objects and pass them in batches through a queue to consumer
 * threads, which verify and free them. Every free is a remote free.
 * Usage: xmalloc [scale]
 */
#include <pthread.h>

#include "wl.h"

#define PAIRS 2
#define BATCH 256
#define QCAP 64 /* batches in flight per pair */

typedef struct batch {
    void *obj[BATCH];
    size_t size[BATCH];
    uint64_t tag[BATCH];
} batch;

typedef struct queue {
    pthread_mutex_t mu;
    pthread_cond_t nonempty, nonfull;
    batch *items[QCAP];
    unsigned head, tail, count;
    int done;
} queue;

static queue qs[PAIRS];
static size_t batches_per_producer;
static unsigned long long freed[PAIRS];

static void push(queue *q, batch *b)
{
    pthread_mutex_lock(&q->mu);
    while (q->count == QCAP)
        pthread_cond_wait(&q->nonfull, &q->mu);
    q->items[q->tail] = b;
    q->tail = (q->tail + 1) % QCAP;
    q->count++;
    pthread_cond_signal(&q->nonempty);
    pthread_mutex_unlock(&q->mu);
}

static batch *pop(queue *q)
{
    pthread_mutex_lock(&q->mu);
    while (q->count == 0 && !q->done)
        pthread_cond_wait(&q->nonempty, &q->mu);
    batch *b = NULL;
    if (q->count) {
        b = q->items[q->head];
        q->head = (q->head + 1) % QCAP;
        q->count--;
        pthread_cond_signal(&q->nonfull);
    }
    pthread_mutex_unlock(&q->mu);
    return b;
}

static void *producer(void *arg)
{
    int id = (int)(intptr_t)arg;
    wl_rng r = {77 + (uint64_t)id};
    for (size_t n = 0; n < batches_per_producer; n++) {
        batch *b = (batch *)wl_malloc(sizeof *b);
        for (int i = 0; i < BATCH; i++) {
            size_t sz = 8 + (size_t)wl_below(&r, 249);
            b->obj[i] = wl_malloc(sz);
            b->size[i] = sz;
            b->tag[i] = wl_next(&r);
            wl_mark(b->obj[i], sz, b->tag[i]);
        }
        push(&qs[id], b);
    }
    pthread_mutex_lock(&qs[id].mu);
    qs[id].done = 1;
    pthread_cond_broadcast(&qs[id].nonempty);
    pthread_mutex_unlock(&qs[id].mu);
    return NULL;
}

static void *consumer(void *arg)
{
    int id = (int)(intptr_t)arg;
    batch *b;
    while ((b = pop(&qs[id]))) {
        for (int i = 0; i < BATCH; i++) {
            wl_check(b->obj[i], b->size[i], b->tag[i]);
            free(b->obj[i]);
        }
        free(b);
        freed[id] += BATCH;
    }
    return NULL;
}

int main(int argc, char **argv)
{
    batches_per_producer = wl_scaled(wl_scale(argc, argv), 40000, 4);
    pthread_t p[PAIRS], c[PAIRS];
    for (int i = 0; i < PAIRS; i++) {
        pthread_mutex_init(&qs[i].mu, NULL);
        pthread_cond_init(&qs[i].nonempty, NULL);
        pthread_cond_init(&qs[i].nonfull, NULL);
    }
    for (int i = 0; i < PAIRS; i++) {
        pthread_create(&c[i], NULL, consumer, (void *)(intptr_t)i);
        pthread_create(&p[i], NULL, producer, (void *)(intptr_t)i);
    }
    unsigned long long total = 0;
    for (int i = 0; i < PAIRS; i++) {
        pthread_join(p[i], NULL);
        pthread_join(c[i], NULL);
        total += freed[i];
    }
    printf("xmalloc: %llu objects passed and freed ok\n", total);
    return 0;
}
