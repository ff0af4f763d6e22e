/* SPDX-License-Identifier: MIT */
/*
 * Core's lock word (ca_lock_acquire / ca_lock_release): mutual exclusion
 * with more threads than cores, a waiter that sleeps in the kernel instead
 * of spinning or yielding (its CPU time while the lock is held elsewhere
 * stays near zero: a spin-and-yield lock burns the whole wait), release
 * wakes it, and errno survives the sleeping path. Runs under TSan.
 */
#include <ctxalloc/core.h>
#include <pthread.h>
#include <time.h>

#include "ca_test.h"
#include "ca_tt.h"

static int word;
static long counter;

static void *excl_worker(void *arg)
{
    long n = (long)(intptr_t)arg;
    for (long i = 0; i < n; i++) {
        ca_lock_acquire(&word, "test");
        long c = counter;
        for (int k = 0; k < 10; k++)
            __asm__ volatile("" ::: "memory");
        counter = c + 1;
        ca_lock_release(&word);
        CA_TT_OPS(1);
    }
    return NULL;
}

CA_TT(excludes_with_more_threads_than_cores)
{
    enum { T = 8 };
    long n = 20000 * (long)ca_test_scale();
    pthread_t t[T];
    counter = 0;
    for (int i = 0; i < T; i++)
        pthread_create(&t[i], NULL, excl_worker, (void *)(intptr_t)n);
    for (int i = 0; i < T; i++)
        pthread_join(t[i], NULL);
    CA_TT_ASSERT(counter == T * n, "count %ld of %ld", counter, T * n);
    CA_TT_ASSERT(word == 0, "lock word %#x after the last release", word);
}

static double thread_cpu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static double waiter_cpu_ms;
static int waiter_errno;
static int waiter_in;

static void *waiter(void *arg)
{
    (void)arg;
    double c0 = thread_cpu_ms();
    __atomic_store_n(&waiter_in, 1, __ATOMIC_RELEASE);
    errno = 4242;
    ca_lock_acquire(&word, "test");
    waiter_errno = errno;
    waiter_cpu_ms = thread_cpu_ms() - c0;
    ca_lock_release(&word);
    return NULL;
}

CA_TT(waiter_sleeps_and_is_woken)
{
    ca_lock_acquire(&word, "test");
    pthread_t t;
    pthread_create(&t, NULL, waiter, NULL);
    while (!__atomic_load_n(&waiter_in, __ATOMIC_ACQUIRE))
        ;
    struct timespec hold = {0, 400 * 1000000L};
    nanosleep(&hold, NULL);
    CA_TT_ASSERT(__atomic_load_n(&word, __ATOMIC_RELAXED) & CA_LOCK__SLEEPERS, "the waiter did not go to sleep");
    ca_lock_release(&word); /* must wake it: the join below would hang otherwise */
    pthread_join(t, NULL);
    CA_TT_ASSERT(waiter_cpu_ms < 100, "the waiter used %.1f ms of CPU during a 400 ms wait", waiter_cpu_ms);
    CA_TT_ASSERT(waiter_errno == 4242, "errno %d after a sleeping acquire", waiter_errno);
    CA_TT_ASSERT(word == 0, "lock word %#x", word);
}

CA_TT(try_fails_while_held)
{
    CA_TT_ASSERT(ca_lock_try(&word), "free lock");
    CA_TT_ASSERT(!ca_lock_try(&word), "held lock taken again");
    ca_lock_release(&word);
    CA_TT_ASSERT(word == 0, "released");
}
