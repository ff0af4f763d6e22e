/* SPDX-License-Identifier: MIT */
/*
 * Fork hooks: the suite's one pthread_atfork registration (contract in
 * core.h, "Fork hooks").
 *
 * The table is append-only: a registration claims the next slot under
 * table_lock (a leaf: nothing else is taken while it is held), fills it,
 * then publishes the new count (release). Published slots never change, so
 * the handlers read them without a lock. The prepare handler reads the
 * count once and keeps it in a thread-local for the parent or child handler
 * of the same fork (the same thread runs both): a hook registered during
 * a fork joins at the next fork, never halfway through this one. Forks in
 * several threads at once each keep their own count.
 *
 * Order: prepare hooks by rising rank (equal ranks in registration order),
 * parent and child hooks in exactly the reverse order.
 *
 * Nothing here allocates (pthread_atfork itself may: it is called once,
 * outside table_lock).
 *
 * Lock hooks (ca_fork_hook_register_locks) wait for a second thread: while
 * the process has one, the table fills but pthread_atfork is not called and
 * ca_core__fork_waiting is 1; the first ranked lock taken once glibc's
 * __libc_single_threaded is false calls ca_core__fork_arm, which clears
 * the flag (so that the malloc inside pthread_atfork, which takes locks,
 * does not come back here) and registers. Why a lock and not the thread's
 * creation: ctxalloc does not see pthread_create, and a fork can only find
 * held a lock that was taken after such a check.
 */
#include <ctxalloc/core.h>

#if defined(__has_include)
#if __has_include(<sys/single_threaded.h>)
#include <sys/single_threaded.h>
#define HAVE_SINGLE_THREADED 1
#endif
#endif

typedef struct hook {
    void (*prepare)(void);
    void (*parent)(void);
    void (*child)(void);
    unsigned rank;
} hook;

static hook table[CA_FORK_HOOKS];
static unsigned published; /* slots [0, published) are complete */
static int table_lock;
static int atfork_state; /* 0 not registered, 1 being registered, 2 registered */
static __thread unsigned fork_count __attribute__((tls_model("initial-exec")));
int ca_core__fork_waiting; /* 1: lock hooks wait for a second thread; __atomic */

/* Whether the process is known to have one thread (false when libc cannot
 * tell: then hooks register at once). */
static bool single_threaded(void)
{
#ifdef HAVE_SINGLE_THREADED
    return __atomic_load_n(&__libc_single_threaded, __ATOMIC_RELAXED) != 0;
#else
    return false;
#endif
}

/* The slot after `prev` in prepare order (prev = n: the first), or n. */
static unsigned next_up(unsigned prev, unsigned n)
{
    unsigned best = n;
    for (unsigned i = 0; i < n; i++) {
        bool after = prev == n || table[i].rank > table[prev].rank ||
                     (table[i].rank == table[prev].rank && i > prev);
        bool before_best = best == n || table[i].rank < table[best].rank;
        if (after && before_best)
            best = i;
    }
    return best;
}

/* The slot before `next` in prepare order (next = n: the last), or n. */
static unsigned next_down(unsigned next, unsigned n)
{
    unsigned best = n;
    for (unsigned i = 0; i < n; i++) {
        bool before = next == n || table[i].rank < table[next].rank ||
                      (table[i].rank == table[next].rank && i < next);
        bool after_best = best == n || table[i].rank >= table[best].rank;
        if (before && after_best)
            best = i;
    }
    return best;
}

static void run_prepare(void)
{
    unsigned n = __atomic_load_n(&published, __ATOMIC_ACQUIRE);
    fork_count = n;
    for (unsigned i = next_up(n, n); i < n; i = next_up(i, n))
        if (table[i].prepare)
            table[i].prepare();
}

static void run_parent(void)
{
    unsigned n = fork_count;
    for (unsigned i = next_down(n, n); i < n; i = next_down(i, n))
        if (table[i].parent)
            table[i].parent();
}

static void run_child(void)
{
    unsigned n = fork_count;
    for (unsigned i = next_down(n, n); i < n; i = next_down(i, n))
        if (table[i].child)
            table[i].child();
    /* Only this thread exists: a registration another thread had begun is
     * gone with it. */
    table_lock = 0;
}

/* The one pthread_atfork call (0: made, or being made by another thread or
 * by this one further up the stack). */
static int atfork_register(void)
{
    int state = __atomic_load_n(&atfork_state, __ATOMIC_ACQUIRE);
    while (state != 2) {
        if (state == 0 &&
            __atomic_compare_exchange_n(&atfork_state, &state, 1, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
            int e = pthread_atfork(run_prepare, run_parent, run_child);
            __atomic_store_n(&atfork_state, e ? 0 : 2, __ATOMIC_RELEASE);
            return e;
        }
        if (state == 1) {
            /* Another thread is inside pthread_atfork (or this one is, when
             * pthread_atfork allocated and the allocator registers its
             * hooks): the table works either way, and the handlers run
             * from the first fork after that call returns. */
            break;
        }
        state = __atomic_load_n(&atfork_state, __ATOMIC_ACQUIRE);
    }
    return 0;
}

void ca_core__fork_arm(void)
{
    if (single_threaded())
        return;
    int one = 1;
    if (!__atomic_compare_exchange_n(&ca_core__fork_waiting, &one, 0, false, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
        return;
    if (atfork_register() != 0)
        __atomic_store_n(&ca_core__fork_waiting, 1, __ATOMIC_RELEASE); /* again at a later lock */
}

static int add(void (*prepare)(void), void (*parent)(void), void (*child)(void), unsigned rank, bool locks)
{
    bool wait = locks && single_threaded() && __atomic_load_n(&atfork_state, __ATOMIC_ACQUIRE) != 2;
    if (!wait) {
        int e = atfork_register();
        if (e)
            return e;
    }
    int err = 0;
    ca_lock_acquire_ranked(&table_lock, CA_LOCK_RANK_CORE_FORK, "core");
    unsigned n = __atomic_load_n(&published, __ATOMIC_RELAXED);
    for (unsigned i = 0; i < n; i++)
        if (table[i].prepare == prepare && table[i].parent == parent && table[i].child == child) {
            n = CA_FORK_HOOKS + 1; /* already registered: nothing to do */
            break;
        }
    if (n == CA_FORK_HOOKS) {
        err = ENOSPC;
    } else if (n < CA_FORK_HOOKS) {
        table[n] = (hook){prepare, parent, child, rank};
        __atomic_store_n(&published, n + 1, __ATOMIC_RELEASE);
    }
    ca_lock_release_ranked(&table_lock, CA_LOCK_RANK_CORE_FORK);
    /* After the slot is published: a thread created meanwhile registers at
     * its first lock. */
    if (wait && !err && __atomic_load_n(&atfork_state, __ATOMIC_ACQUIRE) != 2)
        __atomic_store_n(&ca_core__fork_waiting, 1, __ATOMIC_RELEASE);
    return err;
}

int ca_fork_hook_register(void (*prepare)(void), void (*parent)(void), void (*child)(void), unsigned rank)
{
    return add(prepare, parent, child, rank, false);
}

int ca_fork_hook_register_locks(void (*prepare)(void), void (*parent)(void), void (*child)(void), unsigned rank)
{
    return add(prepare, parent, child, rank, true);
}
