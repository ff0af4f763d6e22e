/* SPDX-License-Identifier: MIT */
/*
 * Lock hooks (ca_fork_hook_register_locks) wait for a second thread: a fork
 * of a process that has one runs none of them (pthread_atfork is not called
 * at all, which keeps libc's code and data for it out of a small program),
 * creating a thread does not register them by itself, the first ranked lock
 * taken afterwards does, and from then on every fork runs them. Plain hooks
 * (ca_fork_hook_register) register at once. A plain program: Criterion's
 * runner has threads of its own.
 */
#include <ctxalloc/core.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>
#if defined(__has_include)
#if __has_include(<sys/single_threaded.h>)
#include <sys/single_threaded.h>
#define HAVE_SINGLE_THREADED 1
#endif
#endif

#include "ca_test.h"
#include "ca_tt.h"

static int prepares, children_ok;
static void lock_prep(void) { prepares++; }
static void lock_child(void) { children_ok = 1; }

/* Prepares one fork ran in the parent; *child_ran: the child handler ran in the child. */
static int fork_and_count(int *child_ran)
{
    int before = prepares;
    pid_t pid = fork();
    if (pid == 0)
        _exit(children_ok ? 3 : 0);
    int st = 0;
    waitpid(pid, &st, 0);
    *child_ran = WIFEXITED(st) && WEXITSTATUS(st) == 3;
    return prepares - before;
}

static void *idle_thread(void *arg) { return arg; }

static void take_a_ranked_lock(void)
{
    static int word;
    ca_lock_acquire_ranked(&word, CA_LOCK_RANK_SWITCH_REGISTRY, "test");
    ca_lock_release_ranked(&word, CA_LOCK_RANK_SWITCH_REGISTRY);
}

CA_TT(lock_hooks_wait_for_a_second_thread)
{
#ifdef HAVE_SINGLE_THREADED
    if (!__libc_single_threaded) {
        /* a sanitizer runtime may have started a thread of its own */
        printf("skip: the process does not start with one thread here\n");
        return;
    }
    CA_TT_ASSERT(ca_fork_hook_register_locks(lock_prep, NULL, lock_child, CA_LOCK_RANK_SWITCH_REGISTRY) == 0,
                 "registered");
    int child_ran = 0;
    take_a_ranked_lock();
    CA_TT_ASSERT(fork_and_count(&child_ran) == 0 && !child_ran, "one thread: no handler runs");
    pthread_t t;
    CA_TT_ASSERT(pthread_create(&t, NULL, idle_thread, NULL) == 0 && pthread_join(t, NULL) == 0, "thread");
    CA_TT_ASSERT(!__libc_single_threaded, "libc knows of the thread");
    CA_TT_ASSERT(fork_and_count(&child_ran) == 0, "no ranked lock taken since the thread: not registered yet");
    take_a_ranked_lock();
    CA_TT_ASSERT(fork_and_count(&child_ran) == 1 && child_ran, "registered at the first lock: both handlers run");
    CA_TT_ASSERT(fork_and_count(&child_ran) == 1 && child_ran, "and at every fork after it");
#else
    CA_TT_ASSERT(ca_fork_hook_register_locks(lock_prep, NULL, lock_child, CA_LOCK_RANK_SWITCH_REGISTRY) == 0,
                 "registered");
    int child_ran = 0;
    CA_TT_ASSERT(fork_and_count(&child_ran) == 1 && child_ran,
                 "no single-thread flag in libc: registered at once");
#endif
}
