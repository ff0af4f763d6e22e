/* SPDX-License-Identifier: MIT */
/*
 * ctxalloc core: the thin interface every ctxalloc component is built on.
 *
 *   - ca_allocator: an allocator object with a const ops table, and inline
 *     wrappers (ca_alloc, ca_free, ca_resize, ...) that dispatch through it;
 *   - ca_source: a memory source handing out whole pages;
 *   - layout and overflow helpers, attributes, the three check tiers;
 *   - ca_stats and its allocation-free text / JSON writer;
 *   - adaptors: libc, header (unsized free over any allocator), locked,
 *     allocator source (any allocator as a ca_source);
 *   - the process-wide ownership map (address -> owner, lock-free lookups);
 *   - fault plans and the OS layer: every mmap, munmap, mremap, madvise,
 *     mprotect, fallocate and msync of the suite.
 *
 * The header is valid C11 and C++11; it includes only libc and pthread headers.
 */
#ifndef CTXALLOC_CORE_H
#define CTXALLOC_CORE_H

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ========================================================================
 * Version
 *
 * Semantic versioning of the whole suite (one version for every component):
 * the major number changes when a public interface changes incompatibly.
 * CHANGELOG.md lists each release; the release step is written there.
 * ======================================================================== */

#define CA_VERSION_MAJOR  0
#define CA_VERSION_MINOR  2
#define CA_VERSION_PATCH  0
#define CA_VERSION_STRING "0.2.0"
/* MAJOR * 10000 + MINOR * 100 + PATCH, for #if comparisons. */
#define CA_VERSION_NUMBER (CA_VERSION_MAJOR * 10000 + CA_VERSION_MINOR * 100 + CA_VERSION_PATCH)

/* The version of the library linked in ("0.2.0"), which may differ from the
 * header's CA_VERSION_STRING when a program was built against another one. */
const char *ca_version(void);

/* ========================================================================
 * Attributes and small portability macros
 * ======================================================================== */

#define ca_likely(x)   __builtin_expect(!!(x), 1)
#define ca_unlikely(x) __builtin_expect(!!(x), 0)

#define ca_attr_malloc            __attribute__((malloc))
#define ca_attr_alloc_size(n)     __attribute__((alloc_size(n)))
#define ca_attr_alloc_size2(n, m) __attribute__((alloc_size(n, m)))
#define ca_attr_alloc_align(n)    __attribute__((alloc_align(n)))
#define ca_attr_nonnull(...)      __attribute__((nonnull(__VA_ARGS__)))
#define ca_attr_noreturn          __attribute__((noreturn))
#define ca_attr_cold              __attribute__((cold))
#define ca_attr_hot               __attribute__((hot))
#define ca_attr_noinline          __attribute__((noinline))
#define ca_attr_unused            __attribute__((unused))
#define ca_attr_pure              __attribute__((pure))
#define ca_attr_const             __attribute__((const))
#define ca_attr_warn_unused       __attribute__((warn_unused_result))
#define ca_attr_printf(f, a)      __attribute__((format(printf, f, a)))
/* Inline helper in a public header: static so that each translation unit
 * owns its copy (no exported symbol), always_inline for the fast paths. */
#define ca_inline       static inline
#define ca_force_inline static inline __attribute__((always_inline))

#ifdef __cplusplus
#define CA_STATIC_ASSERT(cond, msg) static_assert(cond, msg)
#else
#define CA_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#endif

/* The alignment malloc guarantees on x86-64 and the alignment every ctxalloc
 * allocator gives when asked for less. */
#define CA_ALIGN_DEFAULT ((size_t)16)
/* The smallest page size ctxalloc supports; ca_page_size() gives the real one. */
#define CA_PAGE_SIZE_MIN ((size_t)4096)

/* ========================================================================
 * Layout and overflow helpers
 *
 * Every size computation in ctxalloc goes through these. The *_overflows
 * functions follow __builtin_*_overflow: they return true when the exact
 * result does not fit, and then *out is unspecified.
 * ======================================================================== */

/* True when x is a power of two (0 is not). */
ca_force_inline bool ca_is_pow2(size_t x) { return x != 0 && (x & (x - 1)) == 0; }

ca_force_inline bool ca_add_overflows(size_t a, size_t b, size_t *out)
{
    return __builtin_add_overflow(a, b, out);
}

ca_force_inline bool ca_mul_overflows(size_t a, size_t b, size_t *out)
{
    return __builtin_mul_overflow(a, b, out);
}

/* Round x up to a multiple of align. align must be a power of two (not checked
 * here: validate once with ca_layout_valid). Returns true on overflow. */
ca_force_inline bool ca_align_up_overflows(size_t x, size_t align, size_t *out)
{
    size_t t;
    if (__builtin_add_overflow(x, align - 1, &t))
        return true;
    *out = t & ~(align - 1);
    return false;
}

/* Unchecked rounding, for values the caller has already bounded. */
ca_force_inline size_t ca_align_up(size_t x, size_t align) { return (x + align - 1) & ~(align - 1); }
ca_force_inline size_t ca_align_down(size_t x, size_t align) { return x & ~(align - 1); }
ca_force_inline bool ca_is_aligned(uintptr_t x, size_t align) { return (x & (align - 1)) == 0; }
ca_force_inline void *ca_ptr_align_up(void *p, size_t align) { return (void *)ca_align_up((uintptr_t)p, align); }

/* floor(log2(x)) for x > 0. */
ca_force_inline unsigned ca_log2(size_t x) { return 63u - (unsigned)__builtin_clzll((unsigned long long)x); }

/* Smallest power of two >= x (x = 0 gives 1). Returns true on overflow. */
ca_force_inline bool ca_next_pow2_overflows(size_t x, size_t *out)
{
    if (x <= 1) {
        *out = 1;
        return false;
    }
    unsigned b = ca_log2(x - 1) + 1;
    if (b >= sizeof(size_t) * 8)
        return true;
    *out = (size_t)1 << b;
    return false;
}

/* A request (size, align) is valid when align is a power of two; any size is
 * valid (size 0 included). Returns 0 or EINVAL. */
ca_force_inline int ca_layout_valid(size_t size, size_t align)
{
    (void)size;
    return ca_is_pow2(align) ? 0 : EINVAL;
}

/* Bytes to obtain so that a block of `size` bytes aligned to `align` fits at
 * any position of a region aligned to `base_align`: size + (align - base_align)
 * when align > base_align. Returns true on overflow. */
ca_force_inline bool ca_padded_size_overflows(size_t size, size_t align, size_t base_align, size_t *out)
{
    return ca_add_overflows(size, align > base_align ? align - base_align : 0, out);
}

/* The system page size (sysconf, read once; never below CA_PAGE_SIZE_MIN). */
ca_attr_const size_t ca_page_size(void);

/* Round size up to whole pages. Returns true on overflow. */
ca_inline bool ca_page_round_overflows(size_t size, size_t *out)
{
    return ca_align_up_overflows(size, ca_page_size(), out);
}

/* ========================================================================
 * Checks: three tiers that never allocate
 *
 *   CA_ASSERT       always on; for states that would corrupt memory if missed.
 *   CA_CHECK        on when checks >= on: invalid free, double free, foreign
 *                   pointer, canary.
 *   CA_CHECK_FULL   on when checks = full: invariant walks (ca_X_check()).
 *
 * CA_CHECKS is the level a component was compiled with (0 off, 1 on, 2 full),
 * set by the build from the `checks` option. The checking code is compiled in
 * every build and removed by the optimiser when the level is lower.
 * A failed check writes exactly one line with write(2) and aborts:
 *
 *   ctxalloc: <component>: <what> (address 0x...) at <file>:<line>
 * ======================================================================== */

#define CA_CHECKS_OFF  0
#define CA_CHECKS_ON   1
#define CA_CHECKS_FULL 2
#ifndef CA_CHECKS
#define CA_CHECKS CA_CHECKS_OFF
#endif

/* Report a failed check and abort. Never allocates; safe in a signal handler. */
ca_attr_noreturn ca_attr_cold void ca_check_fail(const char *component, const void *addr, const char *what,
                                                 const char *file, int line);

/* Write the same one-line report without aborting: for ca_X_check() walks
 * that return a verdict instead of stopping the process. Never allocates. */
ca_attr_cold void ca_check_report(const char *component, const void *addr, const char *what, const char *file,
                                  int line);

/*
 * The check contract, the same in every component:
 *
 *   const char *ca_X_check(const ca_X *x);
 *
 * walks every invariant of x and returns NULL when all hold, otherwise a
 * static string naming the first one broken. It never prints, never aborts
 * and never allocates, so tests, fuzzers and programs decide what a verdict
 * means. The caller keeps other threads out of x during the walk, except
 * where a component's walk takes its own locks to run beside its users (the
 * large tier, the locked adaptor, libswitch): their check takes x without
 * const, since taking a lock writes to it. The ops tables carry the walk as
 * an optional `check` entry (ca_check, ca_source_check).
 *
 * CA_CHECK_WALK is the one way a component runs its walk after a mutation
 * when built with checks = full: a broken invariant is reported like any
 * failed check (one line, abort). Compiled out below full.
 */
/* Inside a walk: return `what` when cond does not hold. */
#define CA_CHECK_EXPECT(cond, what) \
    do {                            \
        if (ca_unlikely(!(cond)))   \
            return (what);          \
    } while (0)

#define CA_CHECK_WALK(component, obj, walk)                                                         \
    do {                                                                                            \
        if (CA_CHECKS >= CA_CHECKS_FULL) {                                                          \
            const char *ca_walk_what_ = (walk)(obj);                                                \
            if (ca_unlikely(ca_walk_what_ != NULL))                                                 \
                ca_check_fail((component), (const void *)(obj), ca_walk_what_, __FILE__, __LINE__); \
        }                                                                                           \
    } while (0)

#define CA_ASSERT(cond, component, addr, what)                                            \
    do {                                                                                  \
        if (ca_unlikely(!(cond)))                                                         \
            ca_check_fail((component), (const void *)(addr), (what), __FILE__, __LINE__); \
    } while (0)
#define CA_CHECK(cond, component, addr, what)                                             \
    do {                                                                                  \
        if (CA_CHECKS >= CA_CHECKS_ON && ca_unlikely(!(cond)))                            \
            ca_check_fail((component), (const void *)(addr), (what), __FILE__, __LINE__); \
    } while (0)
#define CA_CHECK_FULL(cond, component, addr, what)                                        \
    do {                                                                                  \
        if (CA_CHECKS >= CA_CHECKS_FULL && ca_unlikely(!(cond)))                          \
            ca_check_fail((component), (const void *)(addr), (what), __FILE__, __LINE__); \
    } while (0)

/* ========================================================================
 * Intrusive lists
 *
 * The list steps several components repeat, as macros over any node type:
 * `link`, `prev` and `next` name the node's own pointer members, `head` is
 * the list's head pointer (an lvalue). Arguments may be evaluated more than
 * once. Callers hold whatever lock guards the list.
 * ======================================================================== */

/* Singly linked: push node at the front. */
#define CA_SLIST_PUSH(head, node, link) \
    do {                                \
        (node)->link = (head);          \
        (head) = (node);                \
    } while (0)

/* Singly linked: unlink node (a walk from head; nothing when it is absent). */
#define CA_SLIST_REMOVE(head, node, link)                                            \
    do {                                                                             \
        for (__typeof__(head) *ca_pp_ = &(head); *ca_pp_; ca_pp_ = &(*ca_pp_)->link) \
            if (*ca_pp_ == (node)) {                                                 \
                *ca_pp_ = (node)->link;                                              \
                break;                                                               \
            }                                                                        \
    } while (0)

/* Doubly linked, head only: push node at the front. */
#define CA_DLIST_PUSH(head, node, prev, next) \
    do {                                      \
        (node)->prev = NULL;                  \
        (node)->next = (head);                \
        if ((node)->next)                     \
            (node)->next->prev = (node);      \
        (head) = (node);                      \
    } while (0)

/* Doubly linked, head only: unlink node in O(1) and clear its links (a node
 * that is on no list, both links NULL and not the head, is left alone). */
#define CA_DLIST_UNLINK(head, node, prev, next) \
    do {                                        \
        if ((node)->prev)                       \
            (node)->prev->next = (node)->next;  \
        else if ((head) == (node))              \
            (head) = (node)->next;              \
        if ((node)->next)                       \
            (node)->next->prev = (node)->prev;  \
        (node)->prev = (node)->next = NULL;     \
    } while (0)

/* ========================================================================
 * Text without allocating
 *
 * The suite's one number formatter and line builder, for the messages that
 * paths which must not allocate write with write(2): check failures and
 * aborts (possibly in a signal handler), statistics, environment warnings.
 * Nothing here allocates, locks or uses stdio or the locale.
 * ======================================================================== */

/* The digits of v in `base` (2..16, lower case, no prefix; any other base is
 * taken as 10) into buf of capacity cap: the most significant cap - 1 digits
 * at most, then a NUL (nothing is written when cap is 0). Returns the number
 * of digits v needs (1 to 64), so the text was truncated when the result is
 * >= cap, as with snprintf. */
size_t ca_fmt_u64(char *buf, size_t cap, uint64_t v, unsigned base);

/* A line built in a caller's buffer: buf always holds the first cap - 1
 * characters appended (NUL-terminated when cap > 0); len counts every
 * character appended, so len >= cap means the line was cut. */
typedef struct ca_line {
    char *buf;
    size_t cap;
    size_t len;
} ca_line;

ca_inline void ca_line_init(ca_line *l, char *buf, size_t cap)
{
    l->buf = buf;
    l->cap = cap;
    l->len = 0;
    if (cap)
        buf[0] = '\0';
}

/* Append a string (NULL appends nothing), one character, v in `base` as
 * ca_fmt_u64 writes it, or an address as 0x and lower-case hex digits. */
void ca_line_str(ca_line *l, const char *s);
void ca_line_char(ca_line *l, char c);
void ca_line_u64(ca_line *l, uint64_t v, unsigned base);
void ca_line_addr(ca_line *l, const void *p);

/* Write what buf holds and a newline to fd (the newline takes the NUL's
 * place, so a cut line still ends with it) in as few write(2) calls as the
 * kernel allows. Returns 0 or the errno of the failed write; errno itself is
 * left unchanged. */
int ca_line_write(ca_line *l, int fd);

/* Write n bytes to fd, retrying short writes and EINTR. Returns 0 or the
 * errno of the failed write (EIO when write returned 0); errno is kept. */
int ca_write_all(int fd, const void *p, size_t n);

/* Append the description of the errno value e ("No such file or directory":
 * the C library's table, no locale, no allocation), or "errno <e>" for a
 * value it does not know. */
void ca_line_errno(ca_line *l, int e);

/* ========================================================================
 * Last error
 *
 * The suite's one way to say more than an errno: a message per thread,
 * set by a failed call whose cause the errno alone does not name (which
 * file and which header field, which allocator and why it cannot be
 * adopted, which option). Every such call says so in its comment ("on
 * failure, ca_last_error() says ..."), and each of its failure paths sets
 * the message, so right after it failed the message is that failure's.
 *
 * Like errno: a successful call leaves the message as it was, a call that
 * does not set messages never changes it, the next failure that sets one
 * overwrites it; read it right after the failure. The message is the
 * calling thread's: a failure in another thread never shows here. Setting
 * and reading it allocate nothing and take no lock, so both work inside
 * malloc (this library may be the process's malloc) and in a signal
 * handler.
 * ======================================================================== */

/* Bytes a message holds, NUL included; longer messages are cut. */
#define CA_LAST_ERROR_MAX 256

/**
 * ca_last_error() - the calling thread's latest message.
 *
 * Return: the text ("<component>: <what>"), or NULL when no call of this
 * thread has set one since the thread started or since
 * ca_last_error_clear(). The text is the thread's own storage: valid and
 * unchanged until this thread's next call that sets or clears it.
 */
const char *ca_last_error(void);

/* Forget the calling thread's message: ca_last_error() is NULL again. */
void ca_last_error_clear(void);

/* For the components (internal): start the calling thread's message as
 * "<component>: " and return it as a line to append the rest to (ca_line_*;
 * the line lives in the thread and is cut at CA_LAST_ERROR_MAX - 1 bytes).
 * ca_core__last_error_set writes a whole message, "<component>: <what>",
 * and returns err, so that a failure path can end with
 * `return ca_core__last_error_set("arena", "...", EINVAL);`. */
ca_line *ca_core__last_error_begin(const char *component);
int ca_core__last_error_set(const char *component, const char *what, int err);
/* As ca_core__last_error_begin, for a step on a file: the message starts
 * "<component>: <what> '<path>': " (without the quoted path when path is
 * NULL), the rest (the reason) to append. */
ca_line *ca_core__last_error_path(const char *component, const char *what, const char *path);

/* ========================================================================
 * Lock word (ca_lock_acquire / ca_lock_release)
 *
 * The one lock of the suite's short critical sections: an int, 0 when free,
 * so that a forked child resets it with a store. It holds the holder's tag
 * (a number unique to each thread, bits 0..29) and CA_LOCK__SLEEPERS when a
 * thread may sleep on it. Acquire tries once inline; the slow path spins
 * with pause for about a microsecond, then sleeps in the kernel (futex)
 * until a release wakes it: no sched_yield, no time slices burnt while the
 * holder is descheduled, one system call pair only when a sleeper exists.
 * A thread that finds its own tag re-entered while holding the lock (malloc
 * from a signal handler): it aborts naming `component` instead of waiting
 * for ever.
 * ======================================================================== */

#define CA_LOCK__SLEEPERS 0x40000000
#define CA_LOCK__TAG_MASK 0x3fffffff

/* Internal to the inline functions below (lock.c): the thread's tag, its
 * first assignment, the contended acquire (spin, then futex wait) and the
 * wake of one sleeper. */
extern __thread int ca_core__lock_tag __attribute__((tls_model("initial-exec")));
int ca_core__lock_tag_slow(void);
void ca_core__lock_slow(int *l, int self, const char *component);
void ca_core__lock_wake(int *l);

/* The calling thread's tag (non-zero, at most CA_LOCK__TAG_MASK). */
ca_force_inline int ca_lock_tag(void)
{
    int t = ca_core__lock_tag;
    return ca_likely(t != 0) ? t : ca_core__lock_tag_slow();
}

ca_force_inline void ca_lock_acquire(int *l, const char *component)
{
    int seen = 0, self = ca_lock_tag();
    if (ca_unlikely(!__atomic_compare_exchange_n(l, &seen, self, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)))
        ca_core__lock_slow(l, self, component);
}

/* Take the lock if it is free now; never waits. */
ca_force_inline bool ca_lock_try(int *l)
{
    int seen = 0;
    return __atomic_load_n(l, __ATOMIC_RELAXED) == 0 &&
           __atomic_compare_exchange_n(l, &seen, ca_lock_tag(), false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED);
}

ca_force_inline void ca_lock_release(int *l)
{
    if (ca_unlikely(__atomic_exchange_n(l, 0, __ATOMIC_RELEASE) & CA_LOCK__SLEEPERS))
        ca_core__lock_wake(l);
}

/* ========================================================================
 * Once: a set-up that one thread runs and the others wait for
 *
 * The word: 0 not started, CA_ONCE_DONE (2) finished, anything else
 * running. Not a lock (nothing is held once the set-up is done, and the
 * word never returns to 0), so it has no rank; waiters wait like the lock
 * word's (a short spin, then a futex sleep; no sched_yield). A thread that
 * re-enters a set-up it is running would wait for ever: callers that can
 * re-enter (malloc from inside its own set-up) detect it before calling.
 * ======================================================================== */

#define CA_ONCE_DONE 2

/* True once the set-up finished; its writes are then visible (acquire). */
ca_force_inline bool ca_once_done(const int *once)
{
    return __atomic_load_n(once, __ATOMIC_ACQUIRE) == CA_ONCE_DONE;
}

/* True: the caller runs the set-up now and then calls ca_once_finish.
 * False: the set-up is done (this call waited while another thread ran it). */
bool ca_once_begin(int *once);

/* Publish the set-up (release) and wake the threads waiting for it. */
void ca_once_finish(int *once);

/* ========================================================================
 * Lock order
 *
 * Every lock of the suite, with its rank. A thread that holds a lock takes
 * only locks of a higher rank; locks of one rank marked "several" may be
 * held together, and the paths that take several of them (fork handlers,
 * walks over a whole tier) take them in one fixed order: list or array
 * order, each instance's after the previous one's. Kinds: word = core's
 * lock word (ca_lock_acquire_ranked), mutex = pthread_mutex_t
 * (ca_mutex_lock_ranked, or ca_lock_rank_enter / _leave around it).
 *
 *  rank component     lock                                   kind
 *   1   switch        registry (ca_switch__g.lock)           word
 *   2   switch        NUMA node table (node.c nodes_lock)    mutex
 *   3   bump          shared bump chunk installer, chunk     mutex, several
 *                     cache (shared.c, cache.c); the installer
 *                     is held across its backing's obtain, so
 *                     any allocator of the suite may back it
 *   4   core          locked adaptor (ca_locked_allocator)   word or mutex, several
 *                     (adaptors may be stacked: outer first)
 *   5   binned        instance list (binned.c)               word
 *   6   binned        thread registry (ca_binned.reg_lock),  word, several
 *                     purge pass (ca_binned.purge_lock)
 *   7   binned        size class (ca_binned__class.lock)     word, several
 *   8   binned        descriptor pool (ca_binned.pool_lock)  word, several
 *   9   binned-large  default tier set-up (large.c)          word
 *  10   binned-large  tier list (large_purge.c)              word
 *  11   binned-large  background thread state (bg_lock)      word, several
 *  12   binned-large  background thread sleep (bg_mutex)     mutex, several
 *  13   binned-large  listener (listen_lock)                 word, several
 *  14   binned-large  thread cache list (caches_lock)        word, several
 *  15   binned-large  one thread cache (cache lock)          word, several
 *  16   binned-large  size class, direct mappings            word, several
 *  17   binned-large  descriptor slabs (meta_lock)           word, several
 *  18   arena         thread cache registry (cache.c); held  mutex
 *                     while a cache drains into its arena,
 *                     which may take the list token and the
 *                     file state
 *  19   arena         list token (list_lock)                 mutex, several
 *  20   arena         listener (listen_lock)                 mutex, several
 *  21   arena         file state and header (file_lock)      mutex, several
 *  22   source        file source offsets (mutex)            mutex, several
 *  23   source        buffer source (lock)                   word, several
 *  24   source        range records (ca_source_track.lock)   word, several
 *  25   core          ownership-map windows (owner.c)        word
 *  26   core          fork hook table (fork.c)               word
 *
 * Fork handlers (see "Fork hooks") run in the same order: prepare handlers
 * take their locks from rank 1 upwards, parent and child handlers let them
 * go from the highest rank down. The list grows by giving a new lock a rank
 * here, in its place.
 *
 * Under checks=on (CA_CHECKS >= CA_CHECKS_ON in the file that takes the
 * lock) every ranked acquire checks the order: taking a lock whose rank is
 * not above every rank the thread holds (equal is allowed for "several")
 * aborts with ca_check_fail's one line naming both locks. Try-acquires
 * never wait, so they are exempt from the order and only recorded. With
 * checks off the check and the record are compiled out.
 * ======================================================================== */

enum ca_lock_rank {
    CA_LOCK_RANK_NONE = 0, /* not ranked: ca_lock_acquire */
    CA_LOCK_RANK_SWITCH_REGISTRY = 1,
    CA_LOCK_RANK_SWITCH_NODES = 2,
    CA_LOCK_RANK_BUMP_SHARED = 3,
    CA_LOCK_RANK_CORE_LOCKED = 4,
    CA_LOCK_RANK_BINNED_INSTANCES = 5,
    CA_LOCK_RANK_BINNED_REGISTRY = 6,
    CA_LOCK_RANK_BINNED_CLASS = 7,
    CA_LOCK_RANK_BINNED_POOL = 8,
    CA_LOCK_RANK_LARGE_DEFAULT = 9,
    CA_LOCK_RANK_LARGE_TIERS = 10,
    CA_LOCK_RANK_LARGE_BG = 11,
    CA_LOCK_RANK_LARGE_BG_SLEEP = 12,
    CA_LOCK_RANK_LARGE_LISTEN = 13,
    CA_LOCK_RANK_LARGE_CACHES = 14,
    CA_LOCK_RANK_LARGE_CACHE = 15,
    CA_LOCK_RANK_LARGE_CLASS = 16,
    CA_LOCK_RANK_LARGE_META = 17,
    CA_LOCK_RANK_ARENA_CACHES = 18,
    CA_LOCK_RANK_ARENA_LIST = 19,
    CA_LOCK_RANK_ARENA_LISTEN = 20,
    CA_LOCK_RANK_ARENA_FILE = 21,
    CA_LOCK_RANK_SOURCE_FILE = 22,
    CA_LOCK_RANK_SOURCE_BUFFER = 23,
    CA_LOCK_RANK_SOURCE_TRACK = 24,
    CA_LOCK_RANK_CORE_WINDOWS = 25,
    CA_LOCK_RANK_CORE_FORK = 26,
    CA_LOCK_RANK_COUNT = 27 /* ranks are below 64 */
};

/* The "several" ranks of the table, one bit per rank. */
#define CA_LOCK__SEVERAL                                                                                          \
    ((1ull << CA_LOCK_RANK_CORE_LOCKED) | (1ull << CA_LOCK_RANK_BINNED_REGISTRY) |                                \
     (1ull << CA_LOCK_RANK_BINNED_CLASS) | (1ull << CA_LOCK_RANK_BINNED_POOL) | (1ull << CA_LOCK_RANK_LARGE_BG) | \
     (1ull << CA_LOCK_RANK_LARGE_BG_SLEEP) | (1ull << CA_LOCK_RANK_LARGE_LISTEN) |                                \
     (1ull << CA_LOCK_RANK_LARGE_CACHES) | (1ull << CA_LOCK_RANK_LARGE_CACHE) |                                   \
     (1ull << CA_LOCK_RANK_LARGE_CLASS) | (1ull << CA_LOCK_RANK_LARGE_META) |                                     \
     (1ull << CA_LOCK_RANK_BUMP_SHARED) | (1ull << CA_LOCK_RANK_ARENA_LIST) |                                     \
     (1ull << CA_LOCK_RANK_ARENA_LISTEN) | (1ull << CA_LOCK_RANK_ARENA_FILE) |                                    \
     (1ull << CA_LOCK_RANK_SOURCE_FILE) | (1ull << CA_LOCK_RANK_SOURCE_BUFFER) |                                  \
     (1ull << CA_LOCK_RANK_SOURCE_TRACK))

/* Internal to the functions below (lock.c): the ranks the calling thread
 * holds (a bit per rank, and how many locks of each), and the report of a
 * lock taken out of order. */
typedef struct ca_core__lock_ranks {
    uint64_t held;
    unsigned char count[64];
} ca_core__lock_ranks;
extern __thread ca_core__lock_ranks ca_core__lock_held __attribute__((tls_model("initial-exec")));
ca_attr_noreturn ca_attr_cold void ca_core__lock_order_fail(const void *lock, unsigned rank,
                                                            const char *component);

/* Record that the thread takes a lock of `rank` (lock: its address, for the
 * report). ordered: check the order first (false for a try that succeeded).
 * For a pthread mutex, call it before pthread_mutex_lock; for the lock word
 * the ranked functions below call it. Nothing at all with checks off.
 * The record is named directly, never through a pointer: gcc's UBSan null
 * check of such a pointer tests the flags of the TLS add, which the linker
 * turns into a lea when it relaxes the access in an executable, and so
 * reported a null pointer at random. */
ca_force_inline void ca_lock_rank_enter(const void *lock, unsigned rank, bool ordered, const char *component)
{
    if (CA_CHECKS >= CA_CHECKS_ON && rank != CA_LOCK_RANK_NONE) {
        unsigned from = rank + (unsigned)((CA_LOCK__SEVERAL >> rank) & 1);
        if (ordered && ca_unlikely(from < 64 && (ca_core__lock_held.held >> from) != 0))
            ca_core__lock_order_fail(lock, rank, component);
        ca_core__lock_held.count[rank]++;
        ca_core__lock_held.held |= 1ull << rank;
    }
}

/* Record that the thread let go of a lock of `rank` (after unlocking). */
ca_force_inline void ca_lock_rank_leave(unsigned rank)
{
    if (CA_CHECKS >= CA_CHECKS_ON && rank != CA_LOCK_RANK_NONE) {
        if (ca_core__lock_held.count[rank] && --ca_core__lock_held.count[rank] == 0)
            ca_core__lock_held.held &= ~(1ull << rank);
    }
}

/* Fork hooks registered for locks wait for a second thread (see "Fork
 * hooks", ca_fork_hook_register_locks): while some wait, every ranked
 * acquire first lets fork.c register them if the process has one now; one
 * load when none wait. */
extern int ca_core__fork_waiting;
void ca_core__fork_arm(void);
ca_force_inline void ca_core__fork_check(void)
{
    if (ca_unlikely(__atomic_load_n(&ca_core__fork_waiting, __ATOMIC_RELAXED)))
        ca_core__fork_arm();
}

/* The lock word with its rank from the table: what every lock word of the
 * suite uses. As ca_lock_acquire, ca_lock_try and ca_lock_release, plus the
 * order check and record under checks=on. A thread re-entering a lock it
 * holds gets the lock word's own report (malloc from a signal handler). */
ca_force_inline void ca_lock_acquire_ranked(int *l, unsigned rank, const char *component)
{
    ca_core__fork_check();
    int seen = 0, self = ca_lock_tag();
    if (ca_likely(__atomic_compare_exchange_n(l, &seen, self, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))) {
        ca_lock_rank_enter(l, rank, true, component);
        return;
    }
    /* Checked before waiting: a wait out of order aborts, never hangs. */
    if ((seen & CA_LOCK__TAG_MASK) != self)
        ca_lock_rank_enter(l, rank, true, component);
    ca_core__lock_slow(l, self, component);
}

ca_force_inline bool ca_lock_try_ranked(int *l, unsigned rank, const char *component)
{
    ca_core__fork_check();
    if (!ca_lock_try(l))
        return false;
    ca_lock_rank_enter(l, rank, false, component);
    return true;
}

ca_force_inline void ca_lock_release_ranked(int *l, unsigned rank)
{
    ca_lock_release(l);
    ca_lock_rank_leave(rank);
}

/* A pthread mutex with its rank from the table (kind "mutex"): the same
 * check and record around pthread_mutex_lock / _unlock. Returns
 * pthread_mutex_lock's result (on an error the lock is not recorded). */
ca_force_inline int ca_mutex_lock_ranked(pthread_mutex_t *m, unsigned rank, const char *component)
{
    ca_core__fork_check();
    ca_lock_rank_enter(m, rank, true, component);
    int e = pthread_mutex_lock(m);
    if (ca_unlikely(e != 0))
        ca_lock_rank_leave(rank);
    return e;
}

/* As pthread_mutex_trylock: 0 when taken (recorded, exempt from the order
 * like ca_lock_try_ranked), else its error (EBUSY) with nothing recorded. */
ca_force_inline int ca_mutex_trylock_ranked(pthread_mutex_t *m, unsigned rank, const char *component)
{
    ca_core__fork_check();
    int e = pthread_mutex_trylock(m);
    if (e == 0)
        ca_lock_rank_enter(m, rank, false, component);
    return e;
}

ca_force_inline int ca_mutex_unlock_ranked(pthread_mutex_t *m, unsigned rank)
{
    int e = pthread_mutex_unlock(m);
    ca_lock_rank_leave(rank);
    return e;
}

/* In a forked child, for a lock the forking thread's prepare handler took:
 * free it with a store (no wake: no other thread exists) and drop it from
 * the thread's record. */
ca_force_inline void ca_lock_reset_ranked(int *l, unsigned rank)
{
    __atomic_store_n(l, 0, __ATOMIC_RELAXED);
    ca_lock_rank_leave(rank);
}

/* ========================================================================
 * Fork hooks
 *
 * The suite's one pthread_atfork registration. A component whose locks must
 * be held across fork registers its three handlers with a rank: the lowest
 * lock rank its prepare handler takes (see "Lock order"). At fork, core runs
 * every prepare handler by rising rank (equal ranks in registration order),
 * then every parent or child handler in exactly the reverse order, so the
 * locks are taken in the table's order whatever order the components
 * started in. Registered today: libswitch (CA_LOCK_RANK_SWITCH_REGISTRY),
 * libbinned's instances (CA_LOCK_RANK_BINNED_INSTANCES, registered by
 * whoever puts libbinned under malloc: libswitch, or the application), and
 * its large tier (CA_LOCK_RANK_LARGE_TIERS, by the tier itself).
 * ======================================================================== */

#define CA_FORK_HOOKS 8 /* table size: handlers are never removed */

/* Add the handlers (any may be NULL) for every later fork. Registering the
 * same three again does nothing. A registration made while another thread
 * forks takes effect from the next fork. Thread-safe; never allocates
 * except inside the single pthread_atfork call of the first registration.
 * Returns 0, ENOSPC (CA_FORK_HOOKS registered) or pthread_atfork's error. */
int ca_fork_hook_register(void (*prepare)(void), void (*parent)(void), void (*child)(void), unsigned rank);

/* As ca_fork_hook_register, for handlers that only hold ranked locks across
 * fork and repair in the child what other threads left (the suite's own:
 * libswitch, libbinned, its large tier). While the process has one thread
 * (glibc's __libc_single_threaded), such handlers have nothing to do: no
 * other thread can hold a lock or leave state behind, and the forking
 * thread is not inside the allocator. So pthread_atfork is not called yet
 * (in glibc it runs code and reads data of libc that a small program never
 * touches: about 100 KiB of RSS); the first ranked lock taken once a second
 * thread exists calls it first (ca_core__fork_check), and from then on
 * every fork runs every handler. A thread is created outside any ranked
 * lock, so a lock held at a fork was taken after that check. Where libc has
 * no such flag, this is ca_fork_hook_register. Returns as it does; a failed
 * pthread_atfork is tried again at a later lock. */
int ca_fork_hook_register_locks(void (*prepare)(void), void (*parent)(void), void (*child)(void), unsigned rank);

/* ========================================================================
 * Environment variables
 *
 * Every variable ctxalloc reads goes through these: a value that does not
 * parse or is out of range writes one line with write(2),
 *   ctxalloc: warning: NAME=VALUE is invalid (expected ...): using DEFAULT
 * and the default is used. Never allocates, never aborts.
 * ======================================================================== */

/* NAME as a decimal whole number in [lo, hi] (no sign, no spaces, no
 * suffix). Unset or empty: *out = def, 0. Invalid: the warning, *out = def,
 * EINVAL. */
int ca_env_uint(const char *name, uint64_t lo, uint64_t hi, uint64_t def, uint64_t *out);

/* NAME as one of the NULL-terminated words (exact match): *out = its index.
 * Unset or empty: *out = def, 0. Anything else: the warning, *out = def,
 * EINVAL (def < 0 prints "unset"). */
int ca_env_word(const char *name, const char *const *words, int def, int *out);

/* ========================================================================
 * Statistics
 *
 * One struct for every allocator and source. Fields a component does not
 * track stay 0. Counter names are static strings owned by the component.
 *
 * Capacity: a ca_stats holds CA_STATS_MAX_COUNTERS named counters. Of
 * those, a component's own statistics use at most
 * CA_STATS_COMPONENT_COUNTERS; the rest is room for the layers that add
 * their counters over another's statistics (wrappers such as libswitch's
 * thread-local allocator and adoptions, or the fault-injecting source; a
 * layer that can sit over another declares both lists). Every component
 * of the suite names its counters in one X-macro list declared with
 * CA_STATS_COUNTERS (or CA_STATS_LAYER_COUNTERS), which checks the count
 * against the capacity when it compiles, and sets them only through
 * CA_STATS_SET, which names a counter of that list (any other name does not
 * compile). So ca_stats_set_counter cannot run out of room in the suite's
 * own statistics and has nothing to report to them.
 *
 * Where the room can run out: allocators written outside the suite that set
 * counters of their own, and ca_stats_merge of statistics with different
 * counter names (libswitch's "total" row). A counter that finds no room is
 * dropped and counted in counters_dropped, which the writers print when it
 * is not 0; ca_stats_merge also returns the number it dropped.
 *
 * const: the statistics functions take const pointers. Those that take a
 * lock reach it through a pointer the object keeps to its own lock word
 * (set when it is initialised, named *_lk): a lock is not part of the value
 * that const protects, and C has no "mutable" member. The one other word a
 * statistics function writes, libbinned's sampled peak, is reached the same
 * way (peak_sampled_mut). None casts const away.
 * ======================================================================== */

#define CA_STATS_MAX_COUNTERS       24
#define CA_STATS_COMPONENT_COUNTERS 16

typedef struct ca_stat_counter {
    const char *name; /* static string, [A-Za-z0-9_] */
    uint64_t value;
} ca_stat_counter;

typedef struct ca_stats {
    const char *name;          /* allocator or source kind, static string */
    uint64_t bytes_in_use;     /* bytes handed out and not yet freed (as requested, or usable) */
    uint64_t bytes_reserved;   /* address space held from the OS or the parent */
    uint64_t bytes_committed;  /* of bytes_reserved, backed (or backable) by memory */
    uint64_t peak_in_use;      /* maximum of bytes_in_use since creation or last reset */
    uint64_t allocs;           /* successful allocations (obtains for a source) */
    uint64_t frees;            /* frees (releases for a source) */
    uint64_t failures;         /* failed allocations, any cause */
    unsigned ncounters;        /* used entries of counters[] */
    unsigned counters_dropped; /* counters that found no room (see above); 0 in the suite's own */
    ca_stat_counter counters[CA_STATS_MAX_COUNTERS];
} ca_stats;

/* Declares, in the enclosing block, the counters one statistics function
 * sets: LIST is an X-macro list of bare names, X(name) X(name) ...; a name
 * listed twice does not compile, nor a list longer than
 * CA_STATS_COMPONENT_COUNTERS. Helpers that set part of a function's
 * counters declare their part; the function declares them all. */
#define CA_STATS_COUNTERS(LIST)                                    \
    enum { LIST(CA_STATS__ENUM) ca_ctr__count };                   \
    CA_STATIC_ASSERT(ca_ctr__count <= CA_STATS_COMPONENT_COUNTERS, \
                     "more counters than CA_STATS_COMPONENT_COUNTERS")
/* The same for a layer whose counters are added over another component's
 * (which uses up to CA_STATS_COMPONENT_COUNTERS). */
#define CA_STATS_LAYER_COUNTERS(LIST)                                                      \
    enum { LIST(CA_STATS__ENUM) ca_ctr__count };                                           \
    CA_STATIC_ASSERT(CA_STATS_COMPONENT_COUNTERS + ca_ctr__count <= CA_STATS_MAX_COUNTERS, \
                     "a layer's counters do not fit beside a component's")
#define CA_STATS__ENUM(n) ca_ctr_##n,
/* The names of a list as an array initializer: {"name", ...}. */
#define CA_STATS_NAMES(LIST) \
    {                        \
        LIST(CA_STATS__STR)  \
    }
#define CA_STATS__STR(n) #n,
/* The name of counter n of the list in scope, as a string (a name not in
 * the list does not compile). */
#define CA_STATS_NAME(n) ((void)ca_ctr_##n, #n)
/* Set counter n of the list in scope. */
#define CA_STATS_SET(s, n, v) ca_stats_set_counter((s), CA_STATS_NAME(n), (v))

/* Zero *s and set its name. */
void ca_stats_init(ca_stats *s, const char *name);

/* Append (or overwrite, when the name exists) a counter. When all
 * CA_STATS_MAX_COUNTERS are taken by other names, the counter is dropped and
 * s->counters_dropped counts it. By the capacity rule above that cannot
 * happen in the suite's own statistics; it can where a layer of the suite
 * adds its counters over an allocator from outside that set more than
 * CA_STATS_COMPONENT_COUNTERS of its own. */
void ca_stats_set_counter(ca_stats *s, const char *name, uint64_t value);

/* Read a counter by name; returns false when absent. */
bool ca_stats_get_counter(const ca_stats *s, const char *name, uint64_t *value);

/* Add b into a (sums; the peak becomes the sum of peaks, an upper bound;
 * counters with the same name are summed, others appended while room).
 * Returns how many of b's counters found no room in a; a->counters_dropped
 * grows by that and by b->counters_dropped. */
unsigned ca_stats_merge(ca_stats *a, const ca_stats *b);

typedef enum ca_stats_format {
    CA_STATS_TEXT = 0, /* one "key: value" line per field */
    CA_STATS_JSON = 1  /* one JSON object, no trailing newline */
} ca_stats_format;

/* Format s into buf (capacity cap, always NUL-terminated when cap > 0).
 * Returns the length the full output needs, excluding the NUL, like snprintf:
 * output was truncated when the result is >= cap. Never calls malloc. */
size_t ca_stats_format_buf(const ca_stats *s, ca_stats_format fmt, char *buf, size_t cap);

/* Write s to fd (text lines or one JSON object followed by a newline).
 * Returns 0 or the errno of the failed write. Never calls malloc. */
int ca_stats_write_fd(const ca_stats *s, ca_stats_format fmt, int fd);

/* ========================================================================
 * The allocator interface
 *
 * Contract for every ops table (each allocator documents its exceptions):
 *   - alloc(size, align): align must be a power of two, else NULL + EINVAL.
 *     Size 0 returns a unique pointer that is freed like any other (with
 *     size 0). Out of memory or size arithmetic overflow: NULL + ENOMEM.
 *     When `usable` is not NULL it receives the bytes usable at the pointer
 *     (>= size); the caller may use and free with any size in [size, usable].
 *   - free(p, size, align): sized free; size and align as given to alloc (or
 *     any size up to the usable size). p == NULL is a no-op.
 *   - free_unsized(p), usable_size(p): present only when the allocator can
 *     find the size itself (CA_CAP_UNSIZED); NULL entries otherwise.
 *   - resize(p, old, new, align, flags, usable): returns the (possibly moved)
 *     pointer, or NULL + errno with the original allocation still valid and
 *     its contents intact. With CA_RESIZE_IN_PLACE it never moves: the result
 *     is p or NULL + ENOMEM. NULL entry: ca_resize_generic is used.
 *   - owns(p), reset(), stats(out), listen(l), check(): optional (NULL when
 *     not supported). listen is described with ca_listener below, check with
 *     the check contract above.
 * ======================================================================== */

typedef struct ca_allocator ca_allocator;

/*
 * ca_listener: the events an allocator reports about its memory to one
 * attached listener. libswitch's adoption (ca_switch_adopt) uses them to keep
 * the ownership map in step with the allocator's chunks, regions or arena, and
 * to notice a reset or destroy while blocks are still live.
 *
 *   added(base, size)    [base, base + size) became the allocator's memory:
 *                        called before any block in it is handed out. A
 *                        non-zero errno refuses the range: the allocator gives
 *                        it back and the allocation that needed it fails with
 *                        NULL and that errno.
 *   removed(base, size)  the range stops being the allocator's memory (called
 *                        before it is given back to the source or parent).
 *   reset()              every block was freed at once (reset); called before
 *                        the ranges the reset gives back are removed.
 *   destroyed()          the allocator is being destroyed; called first, then
 *                        removed() for each range. The listener is detached.
 *
 * Ranges are reported exactly as the allocator holds them (chunk headers
 * included), never overlapping. Any callback may be NULL. Callbacks must not
 * call back into the allocator. Events of a CA_CAP_THREAD_SAFE allocator may
 * come from any thread, concurrently; otherwise from the thread using it.
 */
typedef struct ca_listener ca_listener;
struct ca_listener {
    int (*added)(ca_listener *l, void *base, size_t size);
    void (*removed)(ca_listener *l, void *base, size_t size);
    void (*reset)(ca_listener *l);
    void (*destroyed)(ca_listener *l);
};

/* Capability bits of an ops table. */
#define CA_CAP_THREAD_SAFE 0x1u /* every op may be called from any thread at once */
#define CA_CAP_UNSIZED     0x2u /* free_unsized and usable_size are provided */
#define CA_CAP_FREE_NOOP   0x4u /* free may not return memory until reset (bumps) */
/* Registers all its memory in the ownership map under itself (free()
 * through libswitch can route to it). */
#define CA_CAP_OWNER_MAP 0x8u

/* Flags of resize. */
#define CA_RESIZE_IN_PLACE 0x1u /* never move; fail with ENOMEM instead */

typedef struct ca_allocator_ops {
    const char *name; /* static string naming the allocator kind */
    unsigned caps;    /* CA_CAP_* */
    void *(*alloc)(ca_allocator *a, size_t size, size_t align, size_t *usable);
    void (*free)(ca_allocator *a, void *p, size_t size, size_t align);
    void (*free_unsized)(ca_allocator *a, void *p);
    size_t (*usable_size)(const ca_allocator *a, const void *p);
    void *(*resize)(ca_allocator *a, void *p, size_t old_size, size_t new_size, size_t align, unsigned flags,
                    size_t *usable);
    bool (*owns)(const ca_allocator *a, const void *p);
    void (*reset)(ca_allocator *a);
    int (*stats)(const ca_allocator *a, ca_stats *out);
    int (*listen)(ca_allocator *a, struct ca_listener *l);
    const char *(*check)(ca_allocator *a);
} ca_allocator_ops;

/* Embedded as the first member of every allocator, so that &x->base and the
 * allocator's own pointer are interchangeable. */
struct ca_allocator {
    const ca_allocator_ops *ops;
};

ca_force_inline ca_attr_malloc void *ca_alloc(ca_allocator *a, size_t size, size_t align)
{
    return a->ops->alloc(a, size, align, NULL);
}

/* As ca_alloc; *usable receives the usable size of the block. */
ca_force_inline void *ca_alloc_usable(ca_allocator *a, size_t size, size_t align, size_t *usable)
{
    return a->ops->alloc(a, size, align, usable);
}

/* n * size bytes, zero-filled; n * size overflowing gives NULL + ENOMEM. */
void *ca_alloc_zeroed(ca_allocator *a, size_t n, size_t size, size_t align);

ca_force_inline void ca_free(ca_allocator *a, void *p, size_t size, size_t align)
{
    a->ops->free(a, p, size, align);
}

/* Unsized free; the allocator must have CA_CAP_UNSIZED (checked: aborts). */
void ca_free_unsized(ca_allocator *a, void *p);

/* Usable size of a live block; 0 for NULL or without CA_CAP_UNSIZED. */
ca_inline size_t ca_usable_size(const ca_allocator *a, const void *p)
{
    return (p && a->ops->usable_size) ? a->ops->usable_size(a, p) : 0;
}

/* Move-based resize for allocators without a resize op: in place succeeds only
 * when new_size fits the usable size (when the allocator knows it) or is not
 * larger than old_size; otherwise alloc new, copy, free old. p == NULL acts as
 * alloc. A failure leaves p valid and intact. */
void *ca_resize_generic(ca_allocator *a, void *p, size_t old_size, size_t new_size, size_t align, unsigned flags,
                        size_t *usable);

ca_force_inline void *ca_resize(ca_allocator *a, void *p, size_t old_size, size_t new_size, size_t align,
                                unsigned flags)
{
    if (a->ops->resize)
        return a->ops->resize(a, p, old_size, new_size, align, flags, NULL);
    return ca_resize_generic(a, p, old_size, new_size, align, flags, NULL);
}

/* The allocator's invariant walk (the check contract above): NULL when
 * every invariant holds or the allocator has no walk, otherwise what is
 * broken. Thread safety: the allocator's check (most want no other thread
 * inside; the thread-safe ones that lock say so). */
ca_inline const char *ca_check(ca_allocator *a) { return a->ops->check ? a->ops->check(a) : NULL; }

/* Whether p lies in memory the allocator manages; false when unsupported. */
ca_inline bool ca_owns(const ca_allocator *a, const void *p) { return a->ops->owns ? a->ops->owns(a, p) : false; }

/* Free everything at once; returns ENOTSUP when the allocator cannot. */
ca_inline int ca_reset(ca_allocator *a)
{
    if (!a->ops->reset)
        return ENOTSUP;
    a->ops->reset(a);
    return 0;
}

/* Fill *out; returns 0, or ENOTSUP (out then only carries the name). */
int ca_stats_get(const ca_allocator *a, ca_stats *out);

/*
 * Attach @l to @a: added() is called at once for every range @a holds (when
 * one refuses, removed() is called for those already reported, nothing stays
 * attached and its errno is returned). Detach with @l = NULL: removed() is
 * called for every range. One listener at a time.
 * Returns 0; EBUSY (a listener is attached and @l is not NULL); ENOTSUP (the
 * allocator cannot report its memory); or the errno added() returned.
 * Thread safety: the allocator's.
 */
ca_inline int ca_listen(ca_allocator *a, ca_listener *l)
{
    return a->ops->listen ? a->ops->listen(a, l) : ENOTSUP;
}

ca_inline const char *ca_allocator_name(const ca_allocator *a) { return a->ops->name; }
ca_inline unsigned ca_allocator_caps(const ca_allocator *a) { return a->ops->caps; }

/* ========================================================================
 * The memory source interface
 *
 * A source hands out page-granular memory to allocators. Contract for every
 * ops table (each source documents its exceptions):
 *   - Sizes are > 0 and multiples of the source's granule (ca_source_granule:
 *     the page size, or a larger fixed unit such as a slot); alignments are
 *     powers of two, at least the granule alignment is always given. Anything
 *     else: EINVAL, nothing changed.
 *   - Every operation returns 0 or a positive errno value (ENOMEM when memory
 *     or address space is exhausted or a size overflows) and leaves no
 *     partial state behind on failure.
 *   - obtain(size, align, out): committed, readable and writable memory.
 *     Zero-filled when caps has CA_SOURCE_ZEROED.
 *   - release(p, size): returns a whole range previously obtained or reserved
 *     (the same p and size).
 *   - reserve(size, align, out): address space without access; commit makes
 *     a sub-range usable. NULL when unsupported (ca_source_reserve: ENOTSUP).
 *   - commit(p, size): makes a reserved or decommitted range usable again.
 *     NULL when memory is always committed (ca_source_commit returns 0).
 *   - decommit(p, size): gives the memory back; contents become undefined,
 *     the range stays reserved and must be committed before use. NULL when
 *     unsupported (ca_source_decommit returns ENOTSUP).
 *   - stats(out), check(): optional (NULL when not supported); check is the
 *     invariant walk of the check contract.
 *   - Thread safety: with CA_SOURCE_THREAD_SAFE every operation may run from
 *     several threads at once on distinct ranges; without it, callers
 *     serialise all calls on one source.
 * ======================================================================== */

typedef struct ca_source ca_source;

#define CA_SOURCE_THREAD_SAFE 0x1u /* operations may run concurrently */
#define CA_SOURCE_ZEROED      0x2u /* obtained and committed memory reads as zero */

typedef struct ca_source_ops {
    const char *name; /* static string naming the source kind */
    unsigned caps;    /* CA_SOURCE_* */
    int (*obtain)(ca_source *s, size_t size, size_t align, void **out);
    int (*release)(ca_source *s, void *p, size_t size);
    int (*reserve)(ca_source *s, size_t size, size_t align, void **out);
    int (*commit)(ca_source *s, void *p, size_t size);
    int (*decommit)(ca_source *s, void *p, size_t size);
    int (*stats)(const ca_source *s, ca_stats *out);
    const char *(*check)(const ca_source *s);
} ca_source_ops;

/* Embedded as the first member of every source. */
struct ca_source {
    const ca_source_ops *ops;
    size_t granule; /* unit of sizes and minimum alignment; a power of two */
};

ca_inline size_t ca_source_granule(const ca_source *s) { return s->granule; }

ca_inline int ca_source_obtain(ca_source *s, size_t size, size_t align, void **out)
{
    return s->ops->obtain(s, size, align, out);
}

ca_inline int ca_source_release(ca_source *s, void *p, size_t size) { return s->ops->release(s, p, size); }

ca_inline int ca_source_reserve(ca_source *s, size_t size, size_t align, void **out)
{
    return s->ops->reserve ? s->ops->reserve(s, size, align, out) : ENOTSUP;
}

ca_inline int ca_source_commit(ca_source *s, void *p, size_t size)
{
    return s->ops->commit ? s->ops->commit(s, p, size) : 0;
}

ca_inline int ca_source_decommit(ca_source *s, void *p, size_t size)
{
    return s->ops->decommit ? s->ops->decommit(s, p, size) : ENOTSUP;
}

/* Fill *out; 0 or ENOTSUP. */
int ca_source_stats(const ca_source *s, ca_stats *out);

/* The source's invariant walk (the check contract): NULL when sound or when
 * the source has no walk, otherwise what is broken. No other thread may be
 * inside the source during the walk. */
ca_inline const char *ca_source_check(const ca_source *s) { return s->ops->check ? s->ops->check(s) : NULL; }

/* Validate a source request against the contract above: 0 or EINVAL.
 * Sources call this first so that every one refuses the same inputs. */
int ca_source_check_request(const ca_source *s, size_t size, size_t align);

/* ========================================================================
 * Adaptors
 * ======================================================================== */

/* --- libc: malloc / posix_memalign / realloc / free as a ca_allocator. ---
 * Thread-safe, CA_CAP_UNSIZED (malloc_usable_size). Alignments above
 * CA_ALIGN_DEFAULT use posix_memalign; resize of such blocks moves by copy.
 * The returned object is a process-wide singleton. */
ca_allocator *ca_libc_allocator(void);

/* --- header: unsized free and usable size over any allocator. ---
 * Each block carries a 16-byte header in front of it with its size and
 * alignment, so callers may free without the size (malloc style). Thread
 * safety is the inner allocator's. */
typedef struct ca_header_allocator {
    ca_allocator base;    /* base.ops points to ops below */
    ca_allocator_ops ops; /* owns / reset / stats only where the inner has them */
    ca_allocator *inner;  /* not owned */
} ca_header_allocator;

/* Returns 0, or EINVAL when inner is NULL. */
int ca_header_init(ca_header_allocator *h, ca_allocator *inner);

/* malloc-family entry points over the header adaptor. Each returns NULL
 * with errno set on failure (ENOMEM; EINVAL for an alignment that is not a
 * power of two) and leaves its argument block intact then. */
/* malloc(3): size 0 gives a unique block. */
void *ca_header_malloc(ca_header_allocator *h, size_t size);
/* calloc(3): zeroed; n * size overflowing fails with ENOMEM. */
void *ca_header_calloc(ca_header_allocator *h, size_t n, size_t size);
/* aligned_alloc(3): any power-of-two align. */
void *ca_header_aligned_alloc(ca_header_allocator *h, size_t align, size_t size);
/* realloc(3): NULL p allocates; size 0 frees p and returns NULL; a failed
 * realloc leaves p valid with its contents. */
void *ca_header_realloc(ca_header_allocator *h, void *p, size_t size);
/* free(3): NULL is a no-op; the size is read from the block's header. */
void ca_header_free(ca_header_allocator *h, void *p);

/* --- locked: any allocator made thread-safe with one lock. ---
 * The inner allocator is used only under the lock; the adaptor has the
 * inner's capabilities plus CA_CAP_THREAD_SAFE. */
typedef enum ca_lock_kind {
    CA_LOCK_MUTEX = 0, /* pthread mutex: sleeps under contention */
    CA_LOCK_SPIN = 1   /* core's lock word: a short spin, then a futex sleep */
} ca_lock_kind;

typedef struct ca_locked_allocator {
    ca_allocator base;    /* base.ops points to ops below */
    ca_allocator_ops ops; /* inner's optional entries mirrored, caps | THREAD_SAFE */
    ca_allocator *inner;  /* not owned; touched only with the lock held */
    ca_lock_kind kind;
    int spin; /* CA_LOCK_SPIN: the lock word (ca_lock_acquire) */
    pthread_mutex_t mutex;
    /* &spin and &mutex (set by ca_locked_init): every entry point locks
     * through these, stats too, which gets a const allocator (Statistics
     * above: a lock is not part of the value const protects). */
    int *spin_lk;
    pthread_mutex_t *mutex_lk;
} ca_locked_allocator;

/* Returns 0, EINVAL (inner NULL, unknown kind) or the mutex init error. */
int ca_locked_init(ca_locked_allocator *l, ca_allocator *inner, ca_lock_kind kind);
/* Destroys the mutex (not the inner allocator, which the caller owns); the
 * lock must not be held. */
void ca_locked_destroy(ca_locked_allocator *l);

/* --- allocator source: any allocator serving as a ca_source. ---
 * A component that takes its memory from a ca_source (bump chunks, rbtree
 * regions) takes it from an allocator through this adaptor, with one code
 * path. Each range is one block of the allocator:
 *   obtain(size, align)  = ca_alloc(inner, size, A(size)),
 *   release(p, size)     = ca_free(inner, p, size, A(size)),
 * where A(size), the alignment a range is asked for and freed with, depends
 * on its size alone (a release is given no alignment): CA_OWNER_PAGE for a
 * range of a page (CA_OWNER_PAGE bytes) or more, the granule below. So a
 * range of a page or more lies in whole ownership pages of its own start.
 * Contract, beside the source contract above:
 *   - granule CA_ALLOCATOR_SOURCE_GRANULE (64): sizes are multiples of 64;
 *   - obtain: an alignment up to A(size) is honoured (the range is aligned
 *     to A(size)); a larger one is refused with EINVAL, as is a size or
 *     alignment the source contract forbids, without calling the allocator;
 *     a failed ca_alloc (whatever its errno) is ENOMEM, nothing held;
 *   - release: exactly a (p, size) obtained; EINVAL, nothing freed, for a
 *     NULL p, a size that is not a granule multiple or a p not aligned to
 *     A(size) (the allocator's own checks judge anything else);
 *   - reserve: ENOTSUP; commit: 0 (memory is always committed); decommit:
 *     ENOTSUP. Memory is not zeroed (no CA_SOURCE_ZEROED);
 *   - thread safety: CA_SOURCE_THREAD_SAFE exactly when the allocator has
 *     CA_CAP_THREAD_SAFE (the counters are atomic either way);
 *   - stats: bytes_in_use = bytes_reserved = bytes_committed (bytes obtained
 *     and not released), peak_in_use, allocs (obtains), frees (releases),
 *     failures (obtains and releases refused); no named counters;
 *   - check: the counters agree, then the allocator's own walk (ca_check).
 * Nothing is allocated: the struct is the caller's. Nothing to destroy: it
 * may go once every range is released. The allocator is not owned and must
 * outlive the source. */
#define CA_ALLOCATOR_SOURCE_GRANULE ((size_t)64)

/* Invariants: releases <= obtains; in_use == 0 exactly when obtains ==
 * releases; in_use <= peak. Counters are __atomic (relaxed). */
typedef struct ca_allocator_source {
    ca_source base;      /* base.ops: the adaptor's table (caps follow inner's) */
    ca_allocator *inner; /* not owned */
    uint64_t in_use;     /* bytes obtained and not released */
    uint64_t peak;       /* maximum of in_use */
    uint64_t obtains, releases, failures;
} ca_allocator_source;

/* Make s a source over inner (caller storage; s is overwritten).
 * Returns 0, or EINVAL when s or inner is NULL. */
int ca_allocator_source_init(ca_allocator_source *s, ca_allocator *inner);

/* ========================================================================
 * Fault plans
 *
 * A fault plan makes chosen calls fail on purpose, so that tests reach the
 * error paths. Points are bits whose meaning belongs to whoever asks the
 * plan: the OS layer below counts CA_OS_* kinds, libsource counts its
 * CA_SOURCE_FAULT_* operation and step points with the same plan type.
 * Each call that reaches a point in `points` is counted (1, 2, 3, ...); the
 * calls numbered nth .. nth + times - 1 fail with `error` (times 0: every
 * call from nth on). nth 0 disables failures by count. When `hook` is set it
 * is asked about every counted call that the count did not fail: a nonzero
 * return is the errno to fail with. `calls` and `injected` are updated with
 * __atomic builtins, so a plan may be used from several threads.
 * ======================================================================== */

typedef struct ca_fault {
    unsigned points; /* bits that are counted */
    uint64_t nth;    /* first failing counted call, 1-based; 0: none by count */
    uint64_t times;  /* number of failing calls from nth on; 0: unbounded */
    int error;       /* errno of injected failures (> 0; 0 means EIO) */
    int (*hook)(void *ctx, unsigned point, size_t size); /* optional */
    void *ctx;                                           /* passed to hook */
    uint64_t calls;                                      /* counted calls so far (atomic) */
    uint64_t injected;                                   /* failures injected so far (atomic) */
} ca_fault;

/* Fill a plan (caller storage; counters at 0). Example, the 3rd map fails
 * with ENOMEM once: ca_fault_init(&f, CA_OS_MAP, 3, 1, ENOMEM). */
void ca_fault_init(ca_fault *f, unsigned points, uint64_t nth, uint64_t times, int error);

/* Count one call at `point` (one bit) and decide its fate: 0 to proceed, or
 * the errno to fail with. f NULL: always 0. O(1), lock-free. */
int ca_fault_hit(ca_fault *f, unsigned point, size_t size);

/* ========================================================================
 * OS layer
 *
 * Every mmap, munmap, mremap, madvise, mprotect, fallocate /
 * posix_fallocate and msync of the suite goes through these functions
 * (libsource's sources, the ownership map's nodes, bitset metadata, arena
 * files and thread caches, binned large blocks), so that one process-wide
 * fault plan can make any of them fail. (mlock, mbind and mincore stay in
 * libsource's mmap source and NUMA code, behind its own MLOCK and MBIND
 * fault points.) The contract, written once:
 *
 *   - addresses are page-aligned; sizes are > 0 and count whole pages: a
 *     size that is not a multiple of ca_page_size() stands for the pages it
 *     touches (the kernel rounds up), so unmap / remap / advise / protect /
 *     sync of a mapping may take the size it was mapped with;
 *   - prot, flags, advice and mode are the kernel's own values (PROT_*,
 *     MAP_*, MREMAP_*, MADV_*, MS_*, FALLOC_FL_* of <sys/mman.h> and
 *     <fcntl.h>), passed through unchanged: MAP_FIXED_NOREPLACE,
 *     MAP_HUGETLB | MAP_HUGE_*, MADV_DONTDUMP and the like are the caller's
 *     to choose and to interpret (a kernel that reads MAP_FIXED_NOREPLACE as
 *     a hint may return another address: the caller checks *out);
 *   - every function returns 0 or a positive errno, never -1 or MAP_FAILED;
 *     on failure nothing was done (*out untouched); errno may have changed
 *     (a caller that reports through errno sets it itself);
 *   - the process-wide plan (ca_os_set_fault) is asked first with the call's
 *     CA_OS_* kind and size; an injected failure returns its errno without
 *     the system call, exactly as if the kernel had refused. That includes
 *     the unmaps of cleanup paths, whose result callers ignore: under a plan
 *     that fails every CA_OS_UNMAP such memory stays mapped, as it would if
 *     the kernel refused.
 *
 * Costs: one call and one acquire load of the plan pointer over the system
 * call. These are slow paths; no allocation fast path calls them.
 * Thread safety: all functions may be called from any thread; the plan may
 * be swapped while others call (each call reads it once).
 * ======================================================================== */

/* Kinds of OS calls, the points of the process-wide fault plan. */
#define CA_OS_MAP       0x01u /* ca_os_map, ca_os_map_aligned */
#define CA_OS_UNMAP     0x02u /* ca_os_unmap */
#define CA_OS_REMAP     0x04u /* ca_os_remap */
#define CA_OS_ADVISE    0x08u /* ca_os_advise */
#define CA_OS_PROTECT   0x10u /* ca_os_protect */
#define CA_OS_FALLOCATE 0x20u /* ca_os_fallocate */
#define CA_OS_SYNC      0x40u /* ca_os_sync */
#define CA_OS_ALL       0x7fu

/* ca_os_fallocate mode: posix_fallocate(3) instead of fallocate(2): the C
 * library writes the blocks where the filesystem cannot allocate them. */
#define CA_OS_FALLOCATE_POSIX (-1)

/* mmap(2): map `size` bytes at `addr` (a hint, or exact with MAP_FIXED /
 * MAP_FIXED_NOREPLACE; NULL: anywhere), of file `fd` at offset `off`
 * (fd -1 and off 0 with MAP_ANONYMOUS). *out: the mapping. */
int ca_os_map(void *addr, size_t size, int prot, int flags, int fd, int64_t off, void **out);

/* An anonymous or other fd-less mapping of `size` bytes aligned to `align`
 * (a power of two): maps size + align - unit bytes anywhere and unmaps the
 * parts before and after the aligned range. `unit` is the page size of the
 * mapping (ca_page_size(), or the huge page size with MAP_HUGETLB), a
 * divisor of size. Counts as one CA_OS_MAP call; the trimming is not
 * counted (it cannot fail on ranges just mapped). ENOMEM when size + align
 * overflows. *out: the aligned range of exactly size bytes. */
int ca_os_map_aligned(size_t size, size_t align, size_t unit, int prot, int flags, void **out);

/* munmap(2) of [p, p + size). */
int ca_os_unmap(void *p, size_t size);

/* mremap(2): move or resize [p, p + size) to new_size bytes; new_addr is
 * used with MREMAP_FIXED only (else NULL). *out: the new address. */
int ca_os_remap(void *p, size_t size, size_t new_size, int flags, void *new_addr, void **out);

/* madvise(2) of [p, p + size) with `advice` (MADV_*). */
int ca_os_advise(void *p, size_t size, int advice);

/* mprotect(2) of [p, p + size) to `prot`. */
int ca_os_protect(void *p, size_t size, int prot);

/* fallocate(2) of [off, off + len) of fd with `mode` (0: allocate blocks;
 * FALLOC_FL_* bits, e.g. a punched hole), or posix_fallocate(3) with
 * mode CA_OS_FALLOCATE_POSIX. */
int ca_os_fallocate(int fd, int mode, int64_t off, int64_t len);

/* msync(2) of [p, p + size) with `flags` (MS_SYNC, MS_ASYNC, ...). */
int ca_os_sync(void *p, size_t size, int flags);

/* Install the process-wide fault plan over the CA_OS_* kinds (NULL: none)
 * and return the previous one. The plan must outlive its installation. */
ca_fault *ca_os_set_fault(ca_fault *plan);

/* ========================================================================
 * Ownership map
 *
 * A process-wide map from address to owner (any pointer aligned to at least
 * 4, usually a ca_allocator *), or to a record naming the owner (see
 * ca_owner_record below). Ranges are registered in whole pages
 * (CA_OWNER_PAGE, 4 KiB): base and size must be multiples of it.
 * It is a three-level radix tree over the 48-bit user address space
 * (12 + 10 + 10 bits of the index of a 64 KiB granule). A leaf entry holds
 * the owner of its whole granule, or (low bit set) a split node with one
 * owner per 4 KiB page, made when ranges begin or end inside a granule.
 * Lookups are lock-free and O(1): three dependent loads, a fourth in a split
 * granule, no atomics beyond acquire loads. Registration installs missing
 * nodes with CAS; nodes come from mmap, never malloc, and are never freed.
 * Cost: 8 KiB of leaf per 64 MiB registered (128 KiB per GiB) plus an 8 KiB
 * middle node per 64 GiB and 256 bytes per split granule; the 32 KiB root is
 * static and touched only where used.
 *
 * Overlay: memory one allocator carved out of a block of another (a bump
 * chunk taken from a parent allocator) can be registered over the parent's
 * pages with ca_owner_overlay; unregistering restores the parent. One level.
 *
 * Retirement: ca_owner_retire leaves CA_OWNER_RETIRED on the pages of an
 * allocator that was destroyed, so that a late free of one of its blocks is
 * reported as exactly that. Retired pages count as free for registration.
 * ======================================================================== */

#define CA_OWNER_GRANULE_SHIFT 16
#define CA_OWNER_GRANULE       ((size_t)1 << CA_OWNER_GRANULE_SHIFT)
#define CA_OWNER_PAGE_SHIFT    12
#define CA_OWNER_PAGE          ((size_t)1 << CA_OWNER_PAGE_SHIFT)
/* What ca_owner_lookup returns for a page whose owner was destroyed. */
#define CA_OWNER_RETIRED ((void *)(uintptr_t)2)

/* Map [base, base + size) to owner. Returns 0; EINVAL (owner NULL, not
 * 4-aligned or CA_OWNER_RETIRED; size 0; not page-aligned; beyond 48 bits);
 * EEXIST when any page already has an owner (nothing is changed then);
 * ENOMEM when a node cannot be mapped. */
int ca_owner_register(void *base, size_t size, void *owner);

/* As ca_owner_register, but pages owned by someone else are taken over and
 * their owner remembered, to be restored by ca_owner_unregister. EEXIST when
 * a page already carries an overlay. */
int ca_owner_overlay(void *base, size_t size, void *owner);

/* Remove the mapping of [base, base + size) for owner: pages owned by someone
 * else are left alone; an overlaid page gets its previous owner back.
 * Returns 0 or EINVAL (bad range). */
int ca_owner_unregister(void *base, size_t size, void *owner);

/* As ca_owner_unregister, but pages that had no previous owner are left as
 * CA_OWNER_RETIRED instead of unowned. */
int ca_owner_retire(void *base, size_t size, void *owner);

/*
 * Windows: an owner that keeps a large address window to itself (libbinned's
 * size classes) claims it once instead of registering pages as it maps
 * them, which costs no radix nodes: a lookup that finds no entry in the tree
 * falls back to the windows (at most CA_OWNER_WINDOWS, out of line). Pages
 * that someone else registers inside a window hide the window's owner: plain
 * registration there is EEXIST, ca_owner_overlay takes them over and counts
 * them in ca_owner_overlaid(), and unregistering gives them back.
 * ca_owner_claim_window: 0; EINVAL (bad range or owner, as for
 * registration); EEXIST (overlaps another window); ENOSPC (no free slot: the
 * owner registers its pages instead). ca_owner_release_window: 0 or EINVAL
 * (no such window of this owner). Lookups of the window's addresses must be
 * over before it is released (as for unregistration).
 */
#define CA_OWNER_WINDOWS 16
int ca_owner_claim_window(void *base, size_t size, void *owner);
int ca_owner_release_window(void *base, size_t size, void *owner);
/* The owner of the window holding address a, or NULL. */
void *ca_owner__window_of(uintptr_t a);

/* Pages that currently hide another owner (overlays in place). While it is
 * 0, an address inside memory an allocator mapped and registered itself is
 * that allocator's without a lookup: routers test their own ranges first
 * and walk the map only otherwise. Raised before an overlay is visible,
 * lowered after the hidden owner is back. */
extern uint64_t ca_core__owner_overlaid;
ca_force_inline uint64_t ca_owner_overlaid(void)
{
    return __atomic_load_n(&ca_core__owner_overlaid, __ATOMIC_RELAXED);
}

/* Radix levels; the root is internal to libcore (read only through
 * ca_owner_lookup). */
#define CA_OWNER__ROOT_BITS 12
#define CA_OWNER__MID_BITS  10
#define CA_OWNER__LEAF_BITS 10
#define CA_OWNER__PAGES     ((size_t)1 << (CA_OWNER_GRANULE_SHIFT - CA_OWNER_PAGE_SHIFT))
#define CA_OWNER__SPLIT     ((uintptr_t)1)
extern void ***ca_core__owner_root[(size_t)1 << CA_OWNER__ROOT_BITS];

/* A split granule: the owner of each page, and the owner an overlay hides. */
typedef struct ca_owner__split {
    void *page[CA_OWNER__PAGES];
    void *under[CA_OWNER__PAGES];
} ca_owner__split;

/*
 * Records. A registrant that needs its own descriptor of a range back from
 * the map (the large tier: its region) registers a ca_owner_record instead
 * of a bare owner; the entry then points to the record, whose first member
 * is the owner ca_owner_lookup reports. One walk of the map gives both the
 * owner and the registrant's descriptor (container_of the record), so the
 * switch and the large tier share this one map.
 */
typedef struct ca_owner_record ca_owner_record;
struct ca_owner_record {
    void *owner;      /* what ca_owner_lookup reports (NULL: no owner); set before registration */
    const void *kind; /* the registrant's tag: the address of one of its objects */
    /* Optional: frees p (the start of a block in this record's range) without
     * another lookup; NULL when the owner's own free must be used. */
    void (*free)(ca_owner_record *rec, void *p);
};
#define CA_OWNER__RECORD ((uintptr_t)2)

/* Register / unregister [base, base + size) as rec's (as ca_owner_register
 * and ca_owner_unregister; rec 8-aligned). ca_owner_overlay_record registers
 * over pages another owner holds, as ca_owner_overlay. */
int ca_owner_register_record(void *base, size_t size, ca_owner_record *rec);
int ca_owner_overlay_record(void *base, size_t size, ca_owner_record *rec);
int ca_owner_unregister_record(void *base, size_t size, ca_owner_record *rec);

/* The tree's entry for address a (below 2^48), NULL when it has none. */
ca_force_inline void *ca_owner__walk(uintptr_t a)
{
    void ***mid = __atomic_load_n(
        &ca_core__owner_root[(a >> (CA_OWNER_GRANULE_SHIFT + CA_OWNER__LEAF_BITS + CA_OWNER__MID_BITS)) &
                             (((size_t)1 << CA_OWNER__ROOT_BITS) - 1)],
        __ATOMIC_ACQUIRE);
    if (!mid)
        return NULL;
    void **leaf = __atomic_load_n(
        &mid[(a >> (CA_OWNER_GRANULE_SHIFT + CA_OWNER__LEAF_BITS)) & (((size_t)1 << CA_OWNER__MID_BITS) - 1)],
        __ATOMIC_ACQUIRE);
    if (!leaf)
        return NULL;
    void *o = __atomic_load_n(&leaf[(a >> CA_OWNER_GRANULE_SHIFT) & (((size_t)1 << CA_OWNER__LEAF_BITS) - 1)],
                              __ATOMIC_ACQUIRE);
    if (ca_unlikely((uintptr_t)o & CA_OWNER__SPLIT)) {
        ca_owner__split *n = (ca_owner__split *)((uintptr_t)o - CA_OWNER__SPLIT);
        o = __atomic_load_n(&n->page[(a >> CA_OWNER_PAGE_SHIFT) & (CA_OWNER__PAGES - 1)], __ATOMIC_ACQUIRE);
    }
    return o;
}

/* The raw entry of p: an owner, a tagged record (ca_owner_entry_record),
 * CA_OWNER_RETIRED or NULL; where the tree has nothing, the owner of the
 * window holding p. Safe from any thread at any time, including
 * concurrently with (un)registration of other ranges; inline, three loads
 * (four in a split granule; a call when the tree has nothing). */
ca_force_inline void *ca_owner_entry(const void *p)
{
    uintptr_t a = (uintptr_t)p;
    if (ca_unlikely(a >> 48))
        return NULL;
    void *o = ca_owner__walk(a);
    return ca_likely(o != NULL) ? o : ca_owner__window_of(a);
}

/* The record an entry points to, or NULL when the entry is not a record. */
ca_force_inline ca_owner_record *ca_owner_entry_record(const void *e)
{
    return ((uintptr_t)e & CA_OWNER__RECORD) && e != CA_OWNER_RETIRED
               ? (ca_owner_record *)((uintptr_t)e - CA_OWNER__RECORD)
               : NULL;
}

/* The owner of p, CA_OWNER_RETIRED, or NULL (a record's owner for a page
 * registered with a record). Same safety as ca_owner_entry. */
ca_force_inline void *ca_owner_lookup(const void *p)
{
    void *o = ca_owner_entry(p);
    ca_owner_record *r = ca_owner_entry_record(o);
    return ca_unlikely(r != NULL) ? r->owner : o;
}

/* The record of `kind` that covers p, also when an overlay hides it (then
 * out of line: the page's hidden entry); NULL when there is none. */
ca_owner_record *ca_owner__record_hidden(const void *p, const void *kind);
ca_force_inline ca_owner_record *ca_owner_record_of(const void *p, const void *kind)
{
    ca_owner_record *r = ca_owner_entry_record(ca_owner_entry(p));
    if (ca_likely(r != NULL && r->kind == kind))
        return r;
    return ca_owner_overlaid() ? ca_owner__record_hidden(p, kind) : NULL;
}

#ifdef __cplusplus
}
#endif

#endif /* CTXALLOC_CORE_H */
