/* SPDX-License-Identifier: MIT */
/* Large-object tier: the background purge thread — explicit start/stop,
 * lazy start, the work it does, and fork (stopped before, not running in
 * the child, restarted lazily in parent and child). */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ca_test.h"
#include "large_internal.h"

static uint64_t counter(ca_binned_large *l, const char *name)
{
    ca_stats st;
    uint64_t v = 0;
    ca_binned_large_stats(l, &st);
    ca_stats_get_counter(&st, name, &v);
    return v;
}

static int thread_count(void)
{
    DIR *d = opendir("/proc/self/task");
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static void nap_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static ca_binned_large *make(unsigned flags, unsigned decay_ms)
{
    ca_binned_large_options o;
    memset(&o, 0, sizeof o);
    o.flags = flags | CA_BINNED_LARGE_NO_CACHE;
    o.dirty_decay_ms = decay_ms;
    o.unmap_decay_ms = 3600000;
    ca_binned_large *l = NULL;
    cr_assert_eq(ca_binned_large_create(&l, &o), 0);
    return l;
}

Test(binned_large_background, start_stop)
{
    ca_binned_large *l = make(0, 3600000);
    int t0 = thread_count();
    cr_assert_not(ca_binned_large_background_running(l));
    cr_assert_eq(ca_binned_large_background_start(l), 0);
    cr_assert(ca_binned_large_background_running(l));
    cr_assert_eq(thread_count(), t0 + 1);
    cr_assert_eq(ca_binned_large_background_start(l), 0, "a second start is a no-op");
    cr_assert_eq(thread_count(), t0 + 1);
    ca_binned_large_background_stop(l);
    cr_assert_not(ca_binned_large_background_running(l));
    cr_assert_eq(thread_count(), t0);
    ca_binned_large_background_stop(l); /* no-op */
    /* explicit stop is not undone by frees */
    void *p = ca_binned_large_alloc(l, 1 << 20, 16, NULL);
    ca_binned_large_free(l, p);
    cr_assert_not(ca_binned_large_background_running(l));
    cr_assert_eq(ca_binned_large_background_start(l), 0);
    ca_binned_large_destroy(l); /* stops and joins */
    cr_assert_eq(thread_count(), t0);
}

Test(binned_large_background, lazy_start_and_purge)
{
    ca_binned_large *l = make(CA_BINNED_LARGE_BACKGROUND, 5);
    void *p = ca_binned_large_alloc(l, 4 << 20, 16, NULL);
    memset(p, 1, 4 << 20);
    cr_assert_not(ca_binned_large_background_running(l), "not started before the first dirty free");
    ca_binned_large_free(l, p);
    cr_assert(ca_binned_large_background_running(l), "started by the first dirty free");
    /* the thread purges the decayed area without any further call */
    for (int i = 0; i < 20000 && counter(l, "purged_bytes") < (4u << 20); i++)
        nap_ms(1);
    cr_assert_eq(counter(l, "purged_bytes"), 4 << 20);
    cr_assert_eq(counter(l, "dirty_bytes"), 0);
    cr_assert_gt(counter(l, "background_runs"), 0);
    cr_assert_null(ca_binned_large_check(l));
    ca_binned_large_destroy(l);
}

Test(binned_large_background, fork)
{
    ca_binned_large *l = make(0, 3600000);
    cr_assert_eq(ca_binned_large_background_start(l), 0);
    void *keep = ca_binned_large_alloc(l, 1 << 20, 16, NULL);
    memset(keep, 0x42, 1 << 20);
    int t0 = thread_count();
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        /* child: the thread did not survive; the tier works and restarts it lazily */
        int ok = !ca_binned_large_background_running(l) && thread_count() == 1;
        ok &= ((unsigned char *)keep)[12345] == 0x42;
        void *p = ca_binned_large_alloc(l, 2 << 20, 16, NULL);
        ok &= p != NULL;
        memset(p, 1, 2 << 20);
        ca_binned_large_free(l, p);
        ca_binned_large_free(l, keep);
        ok &= ca_binned_large_background_running(l);
        ok &= ca_binned_large_check(l) == NULL;
        ca_binned_large_background_stop(l);
        _exit(ok ? 0 : 1);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child failed");
    /* parent: stopped around fork; the next dirty free restarts it */
    cr_assert_eq(thread_count(), t0 - 1);
    cr_assert_not(ca_binned_large_background_running(l));
    ca_binned_large_free(l, keep);
    cr_assert(ca_binned_large_background_running(l));
    cr_assert_null(ca_binned_large_check(l));
    ca_binned_large_destroy(l);
}

Test(binned_large_background, process_tier_exit)
{
    /* the process-wide tier starts its thread lazily; exit stops it (the
     * destructor runs in the child, which must exit 0 cleanly) */
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        ca_binned_large *l = ca_binned_large_default();
        void *p = ca_binned_large_alloc(l, 1 << 20, 16, NULL);
        ca_binned_large_flush_cache(l);
        ca_binned_large_free(l, p);
        ca_binned_large_flush_cache(l);
        exit(ca_binned_large_background_running(l) ? 0 : 3);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d", st);
}
