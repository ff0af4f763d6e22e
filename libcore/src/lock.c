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
 *
 * Lock order (checks=on): ca_core__lock_held, thread-local, records the
 * ranks the thread holds (core.h, "Lock order"); an acquire out of order
 * ends here with one line naming both locks.
 */
#include <ctxalloc/core.h>

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

__thread int ca_core__lock_tag __attribute__((tls_model("initial-exec")));
__thread ca_core__lock_ranks ca_core__lock_held __attribute__((tls_model("initial-exec")));
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

/* Once: 1 running, 3 running with sleepers, 2 done. */
bool ca_once_begin(int *once)
{
    int seen = 0;
    if (__atomic_compare_exchange_n(once, &seen, 1, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        return true;
    for (unsigned spins = 0; seen != CA_ONCE_DONE && spins < SPINS; spins++) {
        __builtin_ia32_pause();
        seen = __atomic_load_n(once, __ATOMIC_ACQUIRE);
    }
    while (seen != CA_ONCE_DONE) {
        if (seen == 1 && !__atomic_compare_exchange_n(once, &seen, 3, false, __ATOMIC_ACQUIRE, __ATOMIC_ACQUIRE))
            continue;
        int saved = errno;
        (void)syscall(SYS_futex, once, FUTEX_WAIT_PRIVATE, 3, NULL, NULL, 0);
        errno = saved;
        seen = __atomic_load_n(once, __ATOMIC_ACQUIRE);
    }
    return false;
}

void ca_once_finish(int *once)
{
    if (__atomic_exchange_n(once, CA_ONCE_DONE, __ATOMIC_RELEASE) == 3) {
        int saved = errno;
        (void)syscall(SYS_futex, once, FUTEX_WAKE_PRIVATE, 0x7fffffff, NULL, NULL, 0);
        errno = saved;
    }
}

void ca_core__lock_wake(int *l)
{
    int saved = errno;
    (void)syscall(SYS_futex, l, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    errno = saved;
}

/* The table of core.h, for the report. */
static const char *const rank_names[CA_LOCK_RANK_COUNT] = {
    [CA_LOCK_RANK_NONE] = "unranked",
    [CA_LOCK_RANK_SWITCH_REGISTRY] = "switch registry",
    [CA_LOCK_RANK_SWITCH_NODES] = "switch NUMA node table",
    [CA_LOCK_RANK_CORE_LOCKED] = "locked adaptor",
    [CA_LOCK_RANK_BINNED_INSTANCES] = "binned instance list",
    [CA_LOCK_RANK_BINNED_REGISTRY] = "binned thread registry",
    [CA_LOCK_RANK_BINNED_CLASS] = "binned size class",
    [CA_LOCK_RANK_BINNED_POOL] = "binned descriptor pool",
    [CA_LOCK_RANK_LARGE_DEFAULT] = "binned-large default tier set-up",
    [CA_LOCK_RANK_LARGE_TIERS] = "binned-large tier list",
    [CA_LOCK_RANK_LARGE_BG] = "binned-large background state",
    [CA_LOCK_RANK_LARGE_BG_SLEEP] = "binned-large background sleep",
    [CA_LOCK_RANK_LARGE_LISTEN] = "binned-large listener",
    [CA_LOCK_RANK_LARGE_CACHES] = "binned-large cache list",
    [CA_LOCK_RANK_LARGE_CACHE] = "binned-large thread cache",
    [CA_LOCK_RANK_LARGE_CLASS] = "binned-large size class",
    [CA_LOCK_RANK_LARGE_META] = "binned-large descriptor slabs",
    [CA_LOCK_RANK_BUMP_SHARED] = "bump shared chunk installer",
    [CA_LOCK_RANK_ARENA_CACHES] = "arena thread cache registry",
    [CA_LOCK_RANK_ARENA_LIST] = "arena list token",
    [CA_LOCK_RANK_ARENA_LISTEN] = "arena listener",
    [CA_LOCK_RANK_ARENA_FILE] = "arena file state",
    [CA_LOCK_RANK_SOURCE_FILE] = "file source offsets",
    [CA_LOCK_RANK_SOURCE_BUFFER] = "buffer source",
    [CA_LOCK_RANK_SOURCE_TRACK] = "source range records",
    [CA_LOCK_RANK_CORE_WINDOWS] = "ownership-map windows",
    [CA_LOCK_RANK_CORE_FORK] = "fork hook table",
};

static void put_rank(ca_line *l, unsigned rank)
{
    ca_line_str(l, rank < CA_LOCK_RANK_COUNT && rank_names[rank] ? rank_names[rank] : "?");
    ca_line_str(l, " (rank ");
    ca_line_u64(l, rank, 10);
    ca_line_char(l, ')');
}

void ca_core__lock_order_fail(const void *lock, unsigned rank, const char *component)
{
    uint64_t held = ca_core__lock_held.held;
    unsigned top = 63u - (unsigned)__builtin_clzll(held); /* held is not 0 here */
    char buf[256];
    ca_line l;
    ca_line_init(&l, buf, sizeof buf);
    ca_line_str(&l, "lock order: taking ");
    put_rank(&l, rank);
    ca_line_str(&l, " while holding ");
    put_rank(&l, top);
    ca_check_fail(component, lock, buf, __FILE__, __LINE__);
}
