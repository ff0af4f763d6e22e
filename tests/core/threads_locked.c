/* SPDX-License-Identifier: MIT */
/*
 * The locked adaptor really excludes: threads call a deliberately unsafe
 * inner allocator that detects overlapping calls and loses counter updates
 * when entered concurrently. Both kinds of lock must give zero overlaps and
 * an exact count. Runs under TSan, which also reports the race if the lock
 * is broken.
 */
#include <ctxalloc/core.h>
#include <pthread.h>
#include <sched.h>

#include "ca_test.h"
#include "ca_tt.h"

typedef struct unsafe {
    ca_allocator base;
    int inside;        /* set while a call runs; seeing it set = overlap */
    long count;        /* non-atomic read-modify-write with a window */
    long overlaps;
} unsafe;

static void enter(unsafe *u)
{
    if (u->inside)
        u->overlaps++;
    u->inside = 1;
    long c = u->count;
    for (int i = 0; i < 20; i++)
        __asm__ volatile("" ::: "memory");
    if ((c & 63) == 0)
        sched_yield(); /* widen the window on 2 cores */
    u->count = c + 1;
    u->inside = 0;
}

static char block[64];
static void *unsafe_alloc(ca_allocator *a, size_t size, size_t align, size_t *usable)
{
    enter((unsafe *)a);
    if (usable)
        *usable = size;
    return block;
}
static void unsafe_free(ca_allocator *a, void *p, size_t size, size_t align) { enter((unsafe *)a); }

static const ca_allocator_ops unsafe_ops = {.name = "unsafe", .alloc = unsafe_alloc, .free = unsafe_free};

#define THREADS 4
static ca_locked_allocator lk;
static long per_thread;

static void *worker(void *arg)
{
    for (long i = 0; i < per_thread; i++) {
        CA_TT_OPS(2);
        void *p = ca_alloc(&lk.base, 8, 8);
        ca_free(&lk.base, p, 8, 8);
    }
    return arg;
}

static int run(ca_lock_kind kind, long *count, long *overlaps)
{
    unsafe u = {{&unsafe_ops}, 0, 0, 0};
    if (ca_locked_init(&lk, &u.base, kind))
        return -1;
    per_thread = 20000 * (long)ca_test_scale();
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, worker, NULL);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    ca_locked_destroy(&lk);
    *count = u.count;
    *overlaps = u.overlaps;
    return 0;
}

CA_TT(mutex_excludes)
{
    long c, o;
    CA_TT_ASSERT(run(CA_LOCK_MUTEX, &c, &o) == 0, "init");
    CA_TT_ASSERT(o == 0, "%ld overlapping calls", o);
    CA_TT_ASSERT(c == 2L * THREADS * per_thread, "count %ld", c);
}

CA_TT(spin_excludes)
{
    long c, o;
    CA_TT_ASSERT(run(CA_LOCK_SPIN, &c, &o) == 0, "init");
    CA_TT_ASSERT(o == 0, "%ld overlapping calls", o);
    CA_TT_ASSERT(c == 2L * THREADS * per_thread, "count %ld", c);
}
