/* SPDX-License-Identifier: MIT */
/*
 * The lock word's slow paths (the fast paths are inline in core.h).
 *
 * Protocol (the word: holder's tag | CA_LOCK__SLEEPERS, or 0):
 *   - acquire: CAS 0 -> self. Failing that, spin (pause) re-reading the
 *     word; then set SLEEPERS on the held word (CAS, keeping the holder's
 *     tag) and futex-wait while the word still reads that value. A thread
 *     that slept takes the lock with SLEEPERS set (CAS 0 -> self|SLEEPERS):
 *     it cannot know whether others still sleep, so the next release wakes
 *     one (at worst one needless wake).
 *   - release: exchange to 0; a futex wake of one sleeper when SLEEPERS was
 *     set. A sleeper missed between its CAS and its wait finds the word
 *     changed and the wait returns at once (futex compares atomically).
 * Concurrency: the word is the only state; the tag is thread-local.
 */
#include <ctxalloc/core.h>

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

__thread int ca_core__lock_tag __attribute__((tls_model("initial-exec")));
static int next_tag;

int ca_core__lock_tag_slow(void)
{
    int t;
    do
        t = __atomic_add_fetch(&next_tag, 1, __ATOMIC_RELAXED) & CA_LOCK__TAG_MASK;
    while (t == 0);
    ca_core__lock_tag = t;
    return t;
}

ca_attr_noreturn ca_attr_cold static void reentered(const int *l, const char *component)
{
    ca_check_fail(component, l,
                  "malloc re-entered while this thread holds an allocator lock (malloc from a signal handler?)",
                  __FILE__, __LINE__);
}

/* About a microsecond of pause before sleeping: longer than most critical
 * sections of the suite, far shorter than a time slice. */
#define SPINS 200

void ca_core__lock_slow(int *l, int self, const char *component)
{
    for (unsigned spins = 0; spins < SPINS; spins++) {
        int seen = __atomic_load_n(l, __ATOMIC_RELAXED);
        if (ca_unlikely((seen & CA_LOCK__TAG_MASK) == self))
            reentered(l, component);
        if (seen == 0 && __atomic_compare_exchange_n(l, &seen, self, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
            return;
        __builtin_ia32_pause();
    }
    for (;;) {
        int seen = __atomic_load_n(l, __ATOMIC_RELAXED);
        if (seen == 0) {
            if (__atomic_compare_exchange_n(l, &seen, self | CA_LOCK__SLEEPERS, false, __ATOMIC_ACQUIRE,
                                            __ATOMIC_RELAXED))
                return;
            continue;
        }
        if (ca_unlikely((seen & CA_LOCK__TAG_MASK) == self))
            reentered(l, component);
        if (!(seen & CA_LOCK__SLEEPERS) && !__atomic_compare_exchange_n(l, &seen, seen | CA_LOCK__SLEEPERS, false,
                                                                        __ATOMIC_RELAXED, __ATOMIC_RELAXED))
            continue;
        int saved = errno; /* EAGAIN or EINTR: callers keep errno */
        (void)syscall(SYS_futex, l, FUTEX_WAIT_PRIVATE, seen | CA_LOCK__SLEEPERS, NULL, NULL, 0);
        errno = saved;
    }
}

void ca_core__lock_wake(int *l)
{
    int saved = errno;
    (void)syscall(SYS_futex, l, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    errno = saved;
}
