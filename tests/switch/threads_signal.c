/* SPDX-License-Identifier: MIT */
/*
 * malloc from a signal handler that interrupted malloc on the same thread
 * (override linked: the program's malloc is the switch). A profiling timer
 * fires every 50 us while the thread allocates and frees blocks of every
 * size; the handler mallocs and frees too. Whatever the handler interrupts,
 * the allocator must either complete or abort with its one-line message; it
 * must never spin (an alarm kills a child that does not finish in time, and
 * the test then fails).
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "ca_death.h"
#include "ca_test.h"
#include "ca_tt.h"

static volatile long handled;

static void on_prof(int sig)
{
    (void)sig;
    char *p = malloc(100 + (size_t)(handled % 5000));
    if (p) {
        memset(p, 7, 100);
        free(p);
    }
    handled++;
}

static void interrupted_malloc(void *arg)
{
    (void)arg;
    alarm(30); /* a spinning child dies of SIGALRM */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_prof;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGPROF, &sa, NULL);
    struct itimerval it = {{0, 50}, {0, 50}};
    setitimer(ITIMER_PROF, &it, NULL);
    static void *keep[4096];
    long target = 2000 * (long)ca_test_scale(); /* the timer ticks at most every 1 to 4 ms */
    for (long i = 0; handled < target; i++) {
        int k = (int)(i * 7919 % 4096);
        free(keep[k]);
        keep[k] = malloc((size_t)(i % 3000) + 1);
    }
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_PROF, &off, NULL);
}

CA_TT(malloc_in_a_handler_that_interrupted_malloc)
{
    ca_death_result r = ca_death_run(interrupted_malloc, NULL);
    bool clean = r.exited0;
    /* the usual report is the lock's ("malloc re-entered ..."); a handler
     * that lands between two steps of a cache operation may instead be
     * caught by another of the allocator's checks: any one-line report */
    bool reported = r.aborted && ca_death_has_line(&r, "ctxalloc: ");
    CA_TT_ASSERT(clean || reported, "neither completed nor reported (aborted %d): %s", (int)r.aborted, r.out);
    CA_TT_OPS(1);
}
