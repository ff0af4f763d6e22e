/* SPDX-License-Identifier: MIT */
/* Crash test: a child allocates, frees and flushes a file-backed arena and is
 * SIGKILLed at a random point; the parent reopens the file, which must
 * succeed, and checks that every allocation recorded at the last completed
 * flush (and not freed since) is intact. The child then resumes on the same
 * file, so recoveries follow recoveries.
 *
 * The record of allocations lives in the arena's user area: two tables, each
 * with a unique tag. Before a flush the child writes the live set into the
 * table that is not current, with a new tag, then flushes with that tag as
 * the commit tag (ca_arena_flush_tag). After a recovery the table whose tag
 * is the recovered commit tag describes the file. A free marks the record
 * in the current table before freeing.
 *
 * Iterations: 200 * CA_TEST_SCALE (default 200; CA_TEST_SCALE=5 is the long
 * mode of 1,000 kills). Each kill lands 0-4 ms after the child starts. */
#include <criterion/criterion.h>
#include <ctxalloc/arena.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ca_test.h"

#define MAXR 128
#define CRASH_MAXR MAXR
#include "arena_test_crash.h"

static const ca_arena_options *opts(void)
{
    static ca_arena_options o;
    crash_options(&o, 512u << 10, 42);
    return &o;
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
    rec live[MAXR];
    int n = 0;
    table *cur = current(a);
    if (cur == &tables(a)[2])
        _exit(8);
    for (uint64_t i = 0; cur && i < cur->n; i++)
        if (!cur->r[i].freed)
            live[n++] = cur->r[i];
    ca_rng r = {seed};
    for (uint64_t op = 0;; op++) {
        if (op % 16 == 0) {
            table *next = cur == &tables(a)[0] ? &tables(a)[1] : &tables(a)[0];
            uint64_t tag = ca_rng_next(&r) | 1;
            __atomic_store_n(&next->seq, 0, __ATOMIC_SEQ_CST);
            next->n = (uint64_t)n;
            memcpy(next->r, live, (size_t)n * sizeof live[0]);
            __atomic_store_n(&next->seq, tag, __ATOMIC_SEQ_CST);
            if (ca_arena_flush_tag(a, tag))
                _exit(5);
            if (ca_arena_commit_tag(a) != tag)
                _exit(7);
            cur = next;
            continue;
        }
        if (n < MAXR && ca_rng_below(&r, 100) < 60) {
            uint64_t off;
            size_t size = 1 + (size_t)ca_rng_below(&r, 512);
            if (ca_arena_alloc(a, size, 16, &off) == 0) {
                ca_test_fill(ca_arena_ptr(a, off), size, off);
                live[n].off = off;
                live[n].size = (uint32_t)size;
                live[n].freed = 0;
                n++;
                continue;
            }
        }
        if (!n)
            continue;
        int i = (int)ca_rng_below(&r, (uint64_t)n);
        for (uint64_t j = 0; cur && j < cur->n; j++)
            if (cur->r[j].off == live[i].off)
                __atomic_store_n(&cur->r[j].freed, 1, __ATOMIC_SEQ_CST);
        if (ca_arena_free(a, live[i].off, live[i].size))
            _exit(6);
        live[i] = live[--n];
    }
}

Test(arena_crash, sigkill_at_random_points, .timeout = 280)
{
    char dir[256], path[300];
    const char *t = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(dir, sizeof dir, "%s/ca-arena-crash-XXXXXX", t);
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/arena", dir);
    uint64_t iters = 200 * ca_test_scale(), checked = 0, recovered_dirty = 0;
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
        cr_assert(WIFSIGNALED(st), "iteration %llu: child exited with %d", (unsigned long long)it,
                  WEXITSTATUS(st));
        if (access(path, F_OK) != 0)
            continue; /* killed before the file existed */
        ca_arena *a = NULL;
        ca_arena_error why = CA_ARENA_OK;
        int err = ca_arena_open_file(&a, path, CA_ARENA_READ_ONLY, opts(), &why);
        if (err) {
            char cmd[700];
            snprintf(cmd, sizeof cmd, "cp '%s' '%s.fail'", path, path);
            (void)!system(cmd);
        }
        cr_assert_eq(err, 0, "iteration %llu: reopen failed: %s (errno %d)", (unsigned long long)it,
                     ca_arena_strerror(why), err);
        const char *bad = ca_arena_check(a);
        cr_assert_null(bad, "iteration %llu: %s", (unsigned long long)it, bad);
        uint64_t seq = ca_arena_flush_seq(a);
        table *tb = current(a);
        cr_assert(tb != &tables(a)[2], "iteration %llu: no table for the recovered commit tag", (unsigned long long)it);
        for (uint64_t i = 0; tb && i < tb->n; i++) {
            if (tb->r[i].freed)
                continue;
            cr_assert(ca_test_verify(ca_arena_ptr(a, tb->r[i].off), tb->r[i].size, tb->r[i].off),
                      "iteration %llu: flushed block at %llu (size %u) damaged; seq %llu, table %llu",
                      (unsigned long long)it, (unsigned long long)tb->r[i].off, tb->r[i].size,
                      (unsigned long long)seq, (unsigned long long)tb->seq);
            checked++;
        }
        ca_stats s;
        ca_arena_stats(a, &s);
        uint64_t disc = 0;
        ca_stats_get_counter(&s, "discarded", &disc);
        recovered_dirty += disc > 0;
        bool full = ca_arena_cursor(a) > ca_arena_capacity(a) - (ca_arena_capacity(a) >> 2);
        ca_arena_close(a);
        if (full)
            unlink(path); /* start over with a fresh file */
    }
    cr_log_info("%llu kills, %llu flushed blocks verified", (unsigned long long)iters, (unsigned long long)checked);
    cr_assert_gt(checked, 0);
    (void)recovered_dirty;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir); /* includes temporaries of creates that were killed */
    cr_assert_eq(system(cmd), 0);
}
