/* SPDX-License-Identifier: MIT */
/* Crash test with two threads writing: a child runs two threads that each
 * allocate, fill, verify and free blocks of one file-backed arena (thread
 * caches on: chunks, bins, chain pushes to the shared list) while either of
 * them flushes now and then; it is SIGKILLed at a random point. The parent
 * reopens the file, which must succeed and pass ca_arena_check, and checks
 * that every block recorded at the last completed flush (and not freed
 * since) is intact. The child then resumes on the same file.
 *
 * The record (as in test_crash.c) is two tables in the user area, each with
 * a unique tag that becomes the flush's commit tag. A mutex of the child
 * guards the record only: a block is recorded after it is filled, marked
 * freed before it is freed, and a flush writes the live set of both threads
 * into the other table and flushes under that mutex. Allocation, filling and
 * freeing run outside it, so the other thread works on the arena while a
 * flush holds the list token and syncs.
 *
 * Iterations: 100 * CA_TEST_SCALE; each kill lands 0-4 ms after the start.
 * The second test runs the same with 2 KiB thread caches: the bins overflow
 * all the time, so chains go through the shared bins and every flush folds
 * them into the list it records. */
#include <criterion/criterion.h>
#include <ctxalloc/arena.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ca_test.h"

#define PER 64          /* live blocks per thread at most */
#define MAXR (2 * PER)
#define CRASH_MAXR MAXR
#include "arena_test_crash.h"

static size_t cache_bytes; /* 0: the default local_cache */

static const ca_arena_options *opts(void)
{
    static ca_arena_options o;
    crash_options(&o, 1u << 20, 43);
    if (cache_bytes)
        o.local_cache = cache_bytes;
    return &o;
}

/* ---- the child ---------------------------------------------------------- */

typedef struct child_state {
    ca_arena *a;
    pthread_mutex_t lock; /* the record: live[], n[], cur */
    rec live[2][PER];
    int n[2];
    table *cur;
    uint64_t seed;
} child_state;

static child_state cs;

/* Under cs.lock: write both live sets into the other table and flush. */
static void flush_locked(ca_rng *r)
{
    ca_arena *a = cs.a;
    table *next = cs.cur == &tables(a)[0] ? &tables(a)[1] : &tables(a)[0];
    uint64_t tag = ca_rng_next(r) | 1;
    __atomic_store_n(&next->seq, 0, __ATOMIC_SEQ_CST);
    next->n = 0;
    for (int t = 0; t < 2; t++)
        for (int i = 0; i < cs.n[t]; i++)
            next->r[next->n++] = cs.live[t][i];
    __atomic_store_n(&next->seq, tag, __ATOMIC_SEQ_CST);
    if (ca_arena_flush_tag(a, tag))
        _exit(5);
    if (ca_arena_commit_tag(a) != tag)
        _exit(7);
    cs.cur = next;
}

static void *writer(void *p)
{
    int me = (int)(intptr_t)p;
    ca_arena *a = cs.a;
    ca_rng r = {cs.seed * 31 + (uint64_t)me};
    for (uint64_t op = 0;; op++) {
        if (op % 24 == (uint64_t)me * 12) {
            pthread_mutex_lock(&cs.lock);
            flush_locked(&r);
            pthread_mutex_unlock(&cs.lock);
            continue;
        }
        int n = __atomic_load_n(&cs.n[me], __ATOMIC_RELAXED); /* only this thread changes its n */
        if (n < PER && ca_rng_below(&r, 100) < 60) {
            uint64_t off;
            size_t size = 1 + (size_t)ca_rng_below(&r, 700);
            if (ca_arena_alloc(a, size, 16, &off) == 0) {
                ca_test_fill(ca_arena_ptr(a, off), size, off);
                pthread_mutex_lock(&cs.lock);
                cs.live[me][n] = (rec){off, (uint32_t)size, 0};
                cs.n[me] = n + 1;
                pthread_mutex_unlock(&cs.lock);
                continue;
            }
        }
        if (!n)
            continue;
        int i = (int)ca_rng_below(&r, (uint64_t)n);
        rec b = cs.live[me][i];
        if (!ca_test_verify(ca_arena_ptr(a, b.off), b.size, b.off))
            _exit(9); /* another thread's block overlapped this one */
        pthread_mutex_lock(&cs.lock);
        for (uint64_t j = 0; cs.cur && j < cs.cur->n; j++)
            if (cs.cur->r[j].off == b.off)
                __atomic_store_n(&cs.cur->r[j].freed, 1, __ATOMIC_SEQ_CST);
        cs.live[me][i] = cs.live[me][n - 1];
        cs.n[me] = n - 1;
        pthread_mutex_unlock(&cs.lock);
        if (ca_arena_free(a, b.off, b.size))
            _exit(6);
    }
    return NULL;
}

static void child(const char *path, uint64_t seed)
{
    ca_arena *a = NULL;
    if (access(path, F_OK) != 0) {
        if (ca_arena_create_file(&a, path, opts(), NULL))
            _exit(3);
    } else if (ca_arena_open_file(&a, path, CA_ARENA_READ_WRITE, opts(), NULL)) {
        _exit(4);
    }
    cs.a = a;
    cs.seed = seed;
    pthread_mutex_init(&cs.lock, NULL);
    cs.cur = current(a);
    if (cs.cur == &tables(a)[2])
        _exit(8);
    /* the blocks of the recovered record stay live; the threads share them out */
    for (uint64_t i = 0; cs.cur && i < cs.cur->n; i++)
        if (!cs.cur->r[i].freed) {
            int t = (int)(i & 1);
            if (cs.n[t] < PER)
                cs.live[t][cs.n[t]++] = cs.cur->r[i];
        }
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, writer, (void *)(intptr_t)i);
    pthread_join(t[0], NULL); /* never returns: the parent kills the child */
    _exit(10);
}

/* ---- the parent --------------------------------------------------------- */

static void kill_cycles(void)
{
    char dir[256], path[300];
    const char *tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(dir, sizeof dir, "%s/ca-arena-crash2-XXXXXX", tmp);
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/arena", dir);
    uint64_t iters = 100 * ca_test_scale(), checked = 0;
    ca_rng r = {ca_test_seed()};
    for (uint64_t it = 0; it < iters; it++) {
        fflush(NULL);
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0)
            child(path, ca_test_seed() + it);
        struct timespec ts = {0, (long)ca_rng_below(&r, 4000) * 1000};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        int st;
        waitpid(pid, &st, 0);
        cr_assert(WIFSIGNALED(st), "iteration %llu: child exited with %d", (unsigned long long)it, WEXITSTATUS(st));
        if (access(path, F_OK) != 0)
            continue;
        ca_arena *a = NULL;
        ca_arena_error why = CA_ARENA_OK;
        int err = ca_arena_open_file(&a, path, CA_ARENA_READ_ONLY, opts(), &why);
        cr_assert_eq(err, 0, "iteration %llu: reopen failed: %s (errno %d)", (unsigned long long)it,
                     ca_arena_strerror(why), err);
        const char *bad = ca_arena_check(a);
        cr_assert_null(bad, "iteration %llu: %s", (unsigned long long)it, bad);
        table *tb = current(a);
        cr_assert(tb != &tables(a)[2], "iteration %llu: no table for the recovered commit tag", (unsigned long long)it);
        for (uint64_t i = 0; tb && i < tb->n; i++) {
            if (tb->r[i].freed)
                continue;
            cr_assert(ca_test_verify(ca_arena_ptr(a, tb->r[i].off), tb->r[i].size, tb->r[i].off),
                      "iteration %llu: flushed block at %llu (size %u) damaged", (unsigned long long)it,
                      (unsigned long long)tb->r[i].off, tb->r[i].size);
            checked++;
        }
        bool full = ca_arena_cursor(a) > ca_arena_capacity(a) - (ca_arena_capacity(a) >> 2);
        ca_arena_close(a);
        if (full)
            unlink(path);
    }
    cr_log_info("%llu kills, %llu flushed blocks verified", (unsigned long long)iters, (unsigned long long)checked);
    cr_assert_gt(checked, 0);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

Test(arena_crash_threads, two_writers_sigkill_at_random_points, .timeout = 280) { kill_cycles(); }

Test(arena_crash_threads, two_writers_through_the_shared_bins, .timeout = 280)
{
    cache_bytes = 2048;
    kill_cycles();
}
