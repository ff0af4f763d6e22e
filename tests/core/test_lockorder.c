/* SPDX-License-Identifier: MIT */
/*
 * Lock order (core.h, "Lock order"): under checks=on a ranked acquire out of
 * order aborts with one line naming both locks; in order, "several" ranks
 * and try-acquires pass. Fork hooks (core.h, "Fork hooks"): prepare handlers
 * by rising rank, parent and child handlers in the reverse order.
 *
 * The check lives in core.h's inline functions, so this file sets its own
 * level (on) whatever the build's.
 */
#undef CA_CHECKS
#define CA_CHECKS CA_CHECKS_ON
#include <criterion/criterion.h>
#include <ctxalloc/core.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ca_death.h"

static int instances, reg_a, reg_b, cls_a, cls_b;

static void in_order(void *arg)
{
    (void)arg;
    ca_lock_acquire_ranked(&instances, CA_LOCK_RANK_BINNED_INSTANCES, "test");
    ca_lock_acquire_ranked(&reg_a, CA_LOCK_RANK_BINNED_REGISTRY, "test");
    ca_lock_acquire_ranked(&cls_a, CA_LOCK_RANK_BINNED_CLASS, "test");
    ca_lock_release_ranked(&cls_a, CA_LOCK_RANK_BINNED_CLASS);
    ca_lock_release_ranked(&reg_a, CA_LOCK_RANK_BINNED_REGISTRY);
    ca_lock_release_ranked(&instances, CA_LOCK_RANK_BINNED_INSTANCES);
    /* After letting go, a lower rank is fine again. */
    ca_lock_acquire_ranked(&cls_a, CA_LOCK_RANK_BINNED_CLASS, "test");
    ca_lock_release_ranked(&cls_a, CA_LOCK_RANK_BINNED_CLASS);
    ca_lock_acquire_ranked(&instances, CA_LOCK_RANK_BINNED_INSTANCES, "test");
    ca_lock_release_ranked(&instances, CA_LOCK_RANK_BINNED_INSTANCES);
}

static void out_of_order(void *arg)
{
    (void)arg;
    ca_lock_acquire_ranked(&cls_a, CA_LOCK_RANK_BINNED_CLASS, "test");
    ca_lock_acquire_ranked(&instances, CA_LOCK_RANK_BINNED_INSTANCES, "test");
}

static void same_rank_twice(void *arg)
{
    (void)arg;
    int a = 0, b = 0;
    ca_lock_acquire_ranked(&a, CA_LOCK_RANK_SWITCH_REGISTRY, "test");
    ca_lock_acquire_ranked(&b, CA_LOCK_RANK_SWITCH_REGISTRY, "test");
}

static void several_of_one_rank(void *arg)
{
    (void)arg;
    ca_lock_acquire_ranked(&reg_a, CA_LOCK_RANK_BINNED_REGISTRY, "test");
    ca_lock_acquire_ranked(&reg_b, CA_LOCK_RANK_BINNED_REGISTRY, "test");
    ca_lock_acquire_ranked(&cls_a, CA_LOCK_RANK_BINNED_CLASS, "test");
    ca_lock_acquire_ranked(&cls_b, CA_LOCK_RANK_BINNED_CLASS, "test");
    ca_lock_release_ranked(&cls_b, CA_LOCK_RANK_BINNED_CLASS);
    ca_lock_release_ranked(&cls_a, CA_LOCK_RANK_BINNED_CLASS);
    ca_lock_release_ranked(&reg_b, CA_LOCK_RANK_BINNED_REGISTRY);
    ca_lock_release_ranked(&reg_a, CA_LOCK_RANK_BINNED_REGISTRY);
}

/* A try never waits: out of order is allowed, and what it took counts. */
static void try_then_lower(void *arg)
{
    bool then_lower = arg != NULL;
    ca_lock_acquire_ranked(&cls_a, CA_LOCK_RANK_BINNED_CLASS, "test");
    if (!ca_lock_try_ranked(&reg_a, CA_LOCK_RANK_BINNED_REGISTRY, "test"))
        _exit(3);
    ca_lock_release_ranked(&cls_a, CA_LOCK_RANK_BINNED_CLASS);
    if (then_lower) /* reg_a (5) is still held */
        ca_lock_acquire_ranked(&instances, CA_LOCK_RANK_BINNED_INSTANCES, "test");
    ca_lock_release_ranked(&reg_a, CA_LOCK_RANK_BINNED_REGISTRY);
}

static void reentered(void *arg)
{
    (void)arg;
    ca_lock_acquire_ranked(&cls_a, CA_LOCK_RANK_BINNED_CLASS, "test");
    ca_lock_acquire_ranked(&cls_a, CA_LOCK_RANK_BINNED_CLASS, "test");
}

static void mutex_out_of_order(void *arg)
{
    (void)arg;
    static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    ca_lock_acquire_ranked(&cls_a, CA_LOCK_RANK_CORE_WINDOWS, "test");
    ca_lock_rank_enter(&m, CA_LOCK_RANK_SOURCE_FILE, true, "test");
    pthread_mutex_lock(&m);
}

static void child_reset(void *arg)
{
    (void)arg;
    ca_lock_acquire_ranked(&cls_a, CA_LOCK_RANK_BINNED_CLASS, "test");
    ca_lock_reset_ranked(&cls_a, CA_LOCK_RANK_BINNED_CLASS);
    ca_lock_acquire_ranked(&instances, CA_LOCK_RANK_BINNED_INSTANCES, "test");
}

Test(lockorder, in_order_passes)
{
    ca_death_result r = ca_death_run(in_order, NULL);
    cr_assert(r.exited0, "%s", r.out);
}

Test(lockorder, out_of_order_aborts_naming_both_locks)
{
    ca_death_result r = ca_death_run(out_of_order, NULL);
    cr_assert(r.aborted, "%s", r.out);
    cr_assert(ca_death_has_line(&r, "ctxalloc: test: lock order: taking binned instance list (rank 5) while "
                                    "holding binned size class (rank 7) (address 0x"),
              "%s", r.out);
}

Test(lockorder, same_rank_aborts_unless_several)
{
    ca_death_result r = ca_death_run(same_rank_twice, NULL);
    cr_assert(r.aborted, "%s", r.out);
    cr_assert(ca_death_has_line(&r, "ctxalloc: test: lock order: taking switch registry (rank 1) while holding "
                                    "switch registry (rank 1)"),
              "%s", r.out);
    r = ca_death_run(several_of_one_rank, NULL);
    cr_assert(r.exited0, "%s", r.out);
}

Test(lockorder, try_is_exempt_but_recorded)
{
    ca_death_result r = ca_death_run(try_then_lower, NULL);
    cr_assert(r.exited0, "%s", r.out);
    r = ca_death_run(try_then_lower, &r);
    cr_assert(r.aborted, "%s", r.out);
    cr_assert(ca_death_has_line(&r, "ctxalloc: test: lock order: taking binned instance list (rank 5) while "
                                    "holding binned thread registry (rank 6)"),
              "%s", r.out);
}

Test(lockorder, reentry_keeps_the_lock_word_report)
{
    ca_death_result r = ca_death_run(reentered, NULL);
    cr_assert(r.aborted, "%s", r.out);
    cr_assert(ca_death_has_line(&r, "ctxalloc: test: malloc re-entered while this thread holds an allocator lock"),
              "%s", r.out);
}

Test(lockorder, mutexes_are_ranked_too)
{
    ca_death_result r = ca_death_run(mutex_out_of_order, NULL);
    cr_assert(r.aborted, "%s", r.out);
    cr_assert(ca_death_has_line(&r, "ctxalloc: test: lock order: taking file source offsets (rank 22) while "
                                    "holding ownership-map windows (rank 25)"),
              "%s", r.out);
}

Test(lockorder, reset_drops_the_lock_from_the_record)
{
    ca_death_result r = ca_death_run(child_reset, NULL);
    cr_assert(r.exited0, "%s", r.out);
}

/* --- fork hooks ----------------------------------------------------------- */

static char order_log[64];
static unsigned order_len;
static void note(char c)
{
    if (order_len + 1 < sizeof order_log)
        order_log[order_len++] = c;
}
static void prep_a(void) { note('a'); }
static void prep_b(void) { note('b'); }
static void prep_c(void) { note('c'); }
static void prep_d(void) { note('d'); }
static void back_a(void) { note('A'); }
static void back_b(void) { note('B'); }
static void back_c(void) { note('C'); }
static void back_d(void) { note('D'); }

Test(forkhooks, prepare_by_rank_parent_and_child_in_reverse)
{
    /* Registered out of rank order; b and d share a rank (registration order). */
    cr_assert_eq(ca_fork_hook_register(prep_c, back_c, back_c, 9), 0);
    cr_assert_eq(ca_fork_hook_register(prep_a, back_a, back_a, 1), 0);
    cr_assert_eq(ca_fork_hook_register(prep_b, back_b, back_b, 4), 0);
    cr_assert_eq(ca_fork_hook_register(prep_d, back_d, back_d, 4), 0);
    cr_assert_eq(ca_fork_hook_register(prep_b, back_b, back_b, 4), 0, "a second registration is a no-op");
    fflush(NULL);
    order_len = 0;
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t pid = fork();
    if (pid == 0) {
        order_log[order_len] = '\0';
        (void)!write(fds[1], order_log, order_len);
        _exit(0);
    }
    close(fds[1]);
    char child[64] = {0};
    cr_assert_gt(read(fds[0], child, sizeof child - 1), 0);
    close(fds[0]);
    int st;
    waitpid(pid, &st, 0);
    order_log[order_len] = '\0';
    cr_assert_str_eq(order_log, "abdcCDBA", "parent: prepares by rank, then the reverse");
    cr_assert_str_eq(child, "abdcCDBA", "child: prepares by rank, then the reverse");
}

static void nop(void) {}

Test(forkhooks, table_full)
{
    static void (*const fns[])(void) = {prep_a, prep_b, prep_c, prep_d, back_a, back_b, back_c, back_d};
    for (unsigned i = 0; i < CA_FORK_HOOKS; i++)
        cr_assert_eq(ca_fork_hook_register(fns[i], nop, NULL, i), 0);
    cr_assert_eq(ca_fork_hook_register(nop, nop, nop, 1), ENOSPC);
}

/* --- once ------------------------------------------------------------------ */

static int once_word, once_runs, once_value;

static void *once_thread(void *arg)
{
    (void)arg;
    if (ca_once_begin(&once_word)) {
        __atomic_fetch_add(&once_runs, 1, __ATOMIC_RELAXED);
        usleep(50 * 1000); /* the others spin, then sleep */
        once_value = 42;
        ca_once_finish(&once_word);
    }
    /* Either this thread ran the set-up or it waited for it. */
    return (void *)(uintptr_t)(ca_once_done(&once_word) && once_value == 42);
}

Test(once, one_thread_runs_the_set_up_and_the_others_wait)
{
    pthread_t th[6];
    for (int i = 0; i < 6; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, once_thread, NULL), 0);
    for (int i = 0; i < 6; i++) {
        void *ok = NULL;
        pthread_join(th[i], &ok);
        cr_assert(ok != NULL, "thread %d returned before the set-up was visible", i);
    }
    cr_assert_eq(once_runs, 1);
    cr_assert_eq(ca_once_begin(&once_word), false, "done: nothing to run");
}
