/* SPDX-License-Identifier: MIT */
/*
 * ctxalloc switch: the allocator behind malloc, chosen per thread and per
 * context (coroutine, task, request).
 *
 *   - Selection: the current context's allocator, else the thread's
 *     allocator, else the global allocator (libbinned by default; jemalloc or
 *     glibc by build option; any owner-registered ca_allocator at run time).
 *   - Routing: free / realloc / malloc_usable_size find the allocator that
 *     owns the pointer through libcore's ownership map (O(1)), never through
 *     the current selection. Pointers no allocator owns go to the base
 *     allocator (the build's default global allocator).
 *   - ca_switch_adopt: the one call that makes any allocator of the suite
 *     routable as a thread or context allocator (registers its memory as it
 *     grows, adds unsized free and a remote-free queue where missing, checks
 *     its lifetime). The setters refuse allocators free() could not route.
 *   - ca_switch_local: the remote-free queue adoption puts in front of a
 *     single-thread allocator; frees from other threads are queued lock-free
 *     and drained by the owning thread.
 *   - ca_switch_source: a source wrapper that registers every range it hands
 *     out in the ownership map under a chosen owner (for custom allocators
 *     that cannot report their memory; adoption covers the suite's own).
 *   - The malloc family as ca_switch_* functions. The override library
 *     (ctxalloc-switch-override, linked whole) and the preload object
 *     (libctxalloc.so) define malloc, free, ... on top of them.
 *
 * Valid C11 and C++; includes only <ctxalloc/core.h> and libc headers.
 */
#ifndef CTXALLOC_SWITCH_H
#define CTXALLOC_SWITCH_H

#include <ctxalloc/core.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ========================================================================
 * Selection: global, thread, context
 *
 * Every setter returns the previous value, so save / restore is
 *   prev = ca_switch_context_set(a); ... ca_switch_context_set(prev);
 *
 * Only allocators that free() can route are accepted ("routable"): NULL
 * (unset), the base and the global allocator, an active adoption
 * (ca_switch_adopt below: the one call that makes any allocator of the suite
 * routable), or an allocator with CA_CAP_OWNER_MAP and CA_CAP_UNSIZED (a
 * libbinned instance). Anything else is refused: the plain setters abort at
 * checks=on with one line naming the cause and, at checks=off, keep the
 * previous selection, set errno to EINVAL and count the refusal
 * (ca_switch_counters.refused_selections); the _try_ forms return EINVAL.
 *
 * libc's own allocations while an allocator is selected (stdio buffers,
 * dlerror and locale state, a new thread's stack and TLS) come from that
 * allocator too, and outlive it when the allocator is destroyed first. The
 * remedy: let the first use of each stdio stream, locale and thread happen
 * with no context selected (print once, or setvbuf, before selecting), and
 * destroy an allocator only after everything allocated from it is freed;
 * see the README ("libc's own allocations").
 * ======================================================================== */

/**
 * ca_switch_base() - the build's default global allocator.
 *
 * libbinned (-Dglobal=binned), jemalloc's non-standard API (-Dglobal=jemalloc)
 * or glibc's allocator reached through __libc_malloc (-Dglobal=libc). Pointers
 * without an owner in the ownership map are freed through it.
 * Initialises the switch on first use. Thread-safe, O(1).
 *
 * Return: the base allocator (never NULL).
 */
ca_allocator *ca_switch_base(void);

/**
 * ca_switch_global() - the global allocator (used when neither a context nor
 * a thread allocator is set). Thread-safe, O(1).
 *
 * Return: the current global allocator (never NULL).
 */
ca_allocator *ca_switch_global(void);

/**
 * ca_switch_global_set() - replace the global allocator for all threads.
 * @a: a CA_CAP_THREAD_SAFE | CA_CAP_UNSIZED allocator whose memory is
 *     registered in the ownership map, or NULL for ca_switch_base().
 *
 * Blocks already handed out keep being freed through their owner.
 *
 * Return: the previous global allocator; NULL with errno EINVAL (nothing
 * changed) when @a lacks the capabilities above.
 */
ca_allocator *ca_switch_global_set(ca_allocator *a);

/**
 * ca_switch_thread() - the calling thread's allocator, or NULL when unset.
 */
ca_allocator *ca_switch_thread(void);

/**
 * ca_switch_thread_set() - set the calling thread's allocator.
 * @a: a routable allocator (see above), or NULL to fall back to the global one.
 *
 * Return: the previous thread allocator (NULL when none). When @a is refused
 * (checks=off): the current one, unchanged, with errno EINVAL.
 */
ca_allocator *ca_switch_thread_set(ca_allocator *a);

/**
 * ca_switch_thread_try_set() - ca_switch_thread_set that reports refusal.
 * @prev: receives the previous thread allocator (may be NULL).
 *
 * Return: 0; or EINVAL (nothing changed) when @a is not routable.
 */
int ca_switch_thread_try_set(ca_allocator *a, ca_allocator **prev);

/**
 * ca_switch_context() - the current context's allocator, or NULL when unset.
 */
ca_allocator *ca_switch_context(void);

/**
 * ca_switch_context_set() - set the current context's allocator (save).
 * @a: a routable allocator (see above), or NULL to leave the context.
 *
 * Return: the previous context allocator; pass it back to restore. When @a
 * is refused (checks=off): the current one, unchanged, with errno EINVAL.
 */
ca_allocator *ca_switch_context_set(ca_allocator *a);

/**
 * ca_switch_context_try_set() - ca_switch_context_set that reports refusal.
 * @prev: receives the previous context allocator (may be NULL).
 *
 * Return: 0; or EINVAL (nothing changed) when @a is not routable.
 */
int ca_switch_context_try_set(ca_allocator *a, ca_allocator **prev);

/**
 * ca_switch_context_swap() - exchange the current context with *@slot.
 * @slot: where a coroutine keeps its context allocator while suspended.
 *
 * For coroutine switches: the suspending side calls it with its own slot
 * (saving its context and installing the one stored there), the resuming
 * side with the same slot restores. O(1), no allocation. *@slot must hold a
 * routable allocator or NULL; otherwise nothing changes (checks=on aborts).
 */
void ca_switch_context_swap(ca_allocator **slot);

/**
 * ca_switch_current() - the allocator malloc would use now on this thread:
 * context, else thread, else global (in the automatic NUMA mode, when the
 * global one is the base: the instance of the thread's node, see
 * ca_switch_numa_auto).
 */
ca_allocator *ca_switch_current(void);

/**
 * ca_switch_with() - run fn(arg) with @a as the context allocator.
 * @a:   the allocator (NULL runs fn with no context allocator);
 * @fn:  the callback (not NULL);
 * @arg: passed to fn.
 *
 * The previous context is restored when fn returns (not when it unwinds with
 * longjmp or a C++ exception: wrap such code in the set / restore pair).
 *
 * Return: what fn returned.
 */
void *ca_switch_with(ca_allocator *a, void *(*fn)(void *), void *arg);

/* ========================================================================
 * Adoption: any allocator behind malloc in one call
 *
 *   ca_switch_adopted ad;
 *   ca_switch_adopt(&ad, &bump.base);       // bump, rbtree, bitset, arena view,
 *   ca_switch_context_set(&ad.base);        // binned, large tier, adaptors ...
 *   ... malloc / realloc / free reach the bump ...
 *   ca_switch_context_set(NULL);
 *   ca_switch_unadopt(&ad);
 *
 * ca_switch_adopt makes an allocator routable by free():
 *   - its memory is registered in the ownership map with &ad->base as owner,
 *     now and whenever it grows (through the allocator's ca_listener events:
 *     chunks, regions, the arena), and unregistered when it shrinks or the
 *     adoption is undone. Ranges must be whole 4 KiB pages (a range refused
 *     as the allocator grows fails that allocation, and the allocating
 *     thread's ca_last_error() says why). Memory an
 *     allocator carved out of a block of another registered allocator (a
 *     bump chunk from a parent allocator) is overlaid and given back to that
 *     parent afterwards;
 *   - an allocator without unsized free (bump, arena view) gets a
 *     ca_header_allocator in front (16 bytes per block);
 *   - a single-thread allocator (not CA_CAP_THREAD_SAFE) gets a
 *     ca_switch_local: the adopting thread owns it, frees from other threads
 *     are queued and drained by the owner;
 *   - an allocator with CA_CAP_OWNER_MAP (a libbinned instance, a large tier
 *     registering itself) is routable as it is: the adoption only forwards.
 *
 * Lifetime. The adoption counts live blocks (allocated through &ad->base and
 * not yet freed) and how many selections (thread or context) hold it.
 * Resetting the allocator while blocks are live, or destroying it while
 * blocks are live or while it is selected, is a lifetime error: checks=on
 * aborts naming the allocator and the number of live blocks; checks=off
 * counts it (ca_switch_counters.lifetime_errors). Allocators whose free may
 * do nothing (CA_CAP_FREE_NOOP: bumps) end all their blocks at reset and
 * destroy by design: that is not an error for them, and their live count
 * restarts at 0. After a destroy, the pages of the allocator are retired in
 * the ownership map: a late free of one of its blocks is reported as "free
 * of a block whose allocator was destroyed" (checks=on aborts; checks=off
 * ignores and counts it), and allocation through the adoption fails with
 * NULL + ENOMEM.
 *
 * Bumps behind malloc: free is a tip free (the block is the bump's last) or
 * does nothing; realloc grows at the tip or copies; reset ends every block
 * at once (all its pointers die).
 *
 * Fields are internal; touch them only through the functions below.
 * ======================================================================== */

typedef struct ca_switch_adopted ca_switch_adopted;

/* Thread-owned allocators with a remote-free queue (declared here: embedded
 * in ca_switch_adopted; described in the next section). */
typedef struct ca_switch_local {
    ca_allocator base;            /* ops: the switch's local adaptor */
    ca_allocator *inner;          /* not owned; used by the owner thread only */
    uintptr_t owner;              /* owning thread's id; __atomic, any thread reads */
    void *remote;                 /* Treiber stack of freed blocks; __atomic, any thread pushes */
    uint64_t remote_frees;        /* blocks pushed by other threads; __atomic */
    uint64_t drained;             /* blocks taken off the queue; owner thread */
    uint64_t drains;              /* non-empty drains; owner thread */
    struct ca_switch_local *next; /* registry of live locals; under the switch's lock */
} ca_switch_local;

/*
 * Invariants: state == ACTIVE <=> listener attached (or inner has
 * CA_CAP_OWNER_MAP) and the adoption is in the switch's registry;
 * live == allocs - frees (frees include remote pushes); selected counts the
 * thread and context slots (of live threads) holding &base.
 */
struct ca_switch_adopted {
    ca_allocator base;          /* what to select; the owner registered in the map */
    ca_listener listener;       /* attached to the inner allocator */
    ca_allocator *inner;        /* the adopted allocator; not owned */
    ca_allocator *target;       /* where calls go: inner, &header.base or &local.base */
    ca_header_allocator header; /* unsized free in front of inners without it */
    ca_switch_local local;      /* remote-free queue for single-thread inners */
    unsigned flags;             /* internal CA_SWITCH__ADOPT_* */
    int state;                  /* internal; __atomic */
    uint64_t allocs;            /* blocks handed out; __atomic (relaxed) */
    uint64_t frees;             /* blocks freed, remote pushes included; __atomic */
    uint64_t selected;          /* selections holding &base; __atomic */
    uint64_t ranges;            /* ranges registered now; __atomic */
    uint64_t bytes;             /* bytes registered now; __atomic */
    uint64_t lifetime_errors;   /* counted at checks=off; __atomic */
    ca_switch_adopted *next;    /* registry of adoptions; under the switch's lock */
};

/**
 * ca_switch_adopt() - make @a routable behind malloc through @ad.
 * @ad: caller's storage; must stay in place until ca_switch_unadopt.
 * @a:  any allocator that reports its memory (a listen op: bump, shared and
 *      local bumps, bitset, rbtree, arena view, large tier, the core adaptors
 *      over any of those) or registers itself (CA_CAP_OWNER_MAP).
 *
 * Select &ad->base afterwards. Calling thread: the owner when @a is not
 * thread-safe. Not thread-safe against other calls on the same @a.
 *
 * Return: 0; EINVAL (NULL argument, @a is an adoption, a range of @a is not
 * page-aligned); ENOTSUP (@a cannot report its memory); EBUSY (@a is
 * already adopted or has another listener); EPERM (@a is a ca_switch_local
 * owned by another thread); EEXIST / ENOMEM (registration failed). On
 * error nothing stays registered, and the calling thread's ca_last_error()
 * (core.h) says what was wrong, naming the allocator:
 * "switch: <allocator name>: <what>".
 */
int ca_switch_adopt(ca_switch_adopted *ad, ca_allocator *a);

/**
 * ca_switch_unadopt() - undo ca_switch_adopt: drain the remote queue,
 * detach the listener, unregister every range. The allocator itself is left
 * alone (destroy it afterwards). Call from the owner thread of a
 * single-thread allocator.
 *
 * Return: 0; EINVAL (@ad is not an active adoption); EBUSY when a thread or
 * context still selects it, or when blocks are still live (for allocators
 * without CA_CAP_FREE_NOOP) - nothing changes then, and ca_last_error()
 * gives the count.
 */
int ca_switch_unadopt(ca_switch_adopted *ad);

/**
 * ca_switch_adopt_claim() - make the calling thread the owner of a
 * single-thread adoption (a task that moved threads). The caller guarantees
 * the previous owner no longer uses it. Drains the queue. No-op for
 * thread-safe allocators.
 */
void ca_switch_adopt_claim(ca_switch_adopted *ad);

/* Blocks handed out through @ad and not freed yet (a snapshot). */
uint64_t ca_switch_adopt_live(const ca_switch_adopted *ad);

/* ========================================================================
 * Thread-owned allocators with a remote-free queue
 * ======================================================================== */

/*
 * ca_switch_local wraps an allocator that only one thread may use (its
 * owner). alloc / resize / reset run on the owner only; free from the owner
 * goes straight to the inner allocator, free from any other thread pushes
 * the block on a lock-free stack (the block's first word links it), which
 * the owner drains on its next allocation or on ca_switch_local_drain().
 * ca_switch_adopt builds one for single-thread allocators; a local made by
 * hand is not routable by itself (the setters refuse it): adopt it.
 *
 * Fields are internal; touch them only through the functions below.
 */

/**
 * ca_switch_local_init() - wrap @inner, owned by the calling thread.
 * @l:     the wrapper (caller's storage; must stay in place until destroy);
 * @inner: a CA_CAP_UNSIZED allocator (not owned).
 *
 * The wrapper appears in the switch's statistics (CA_STATS) while alive.
 *
 * Return: 0, or EINVAL when an argument is NULL or @inner lacks
 * CA_CAP_UNSIZED.
 */
int ca_switch_local_init(ca_switch_local *l, ca_allocator *inner);

/**
 * ca_switch_local_destroy() - drain the queue and unregister @l.
 * Call from the owner once no other thread may free into it. The inner
 * allocator is left alone (destroy it afterwards).
 */
void ca_switch_local_destroy(ca_switch_local *l);

/**
 * ca_switch_local_drain() - free every queued remote block into the inner
 * allocator. Owner thread only. O(queued blocks), lock-free.
 *
 * Return: the number of blocks freed.
 */
size_t ca_switch_local_drain(ca_switch_local *l);

/**
 * ca_switch_local_adopt() - make the calling thread the owner of @l (a task
 * that moved threads, or a thread that ended). The caller guarantees that the
 * previous owner no longer uses @l. Drains the queue.
 */
void ca_switch_local_adopt(ca_switch_local *l);

/**
 * ca_switch_local_pending() - blocks waiting in the queue. Owner thread only
 * (others may push meanwhile: a snapshot). O(queued blocks).
 */
size_t ca_switch_local_pending(const ca_switch_local *l);

/* ========================================================================
 * Owner-registering source
 * ======================================================================== */

/*
 * ca_switch_source hands out the inner source's memory in units of
 * CA_OWNER_GRANULE (64 KiB, or the inner granule when larger) and registers
 * every obtained or reserved range in the ownership map with `owner`
 * (unregistered on release). Build an allocator on it and pass that
 * allocator (or its ca_switch_local) as owner: free() then routes to it.
 * Thread safety is the inner source's.
 */
typedef struct ca_switch_source {
    ca_source base;   /* ops: the switch's source wrapper; granule >= 64 KiB */
    ca_source *inner; /* not owned */
    void *owner;      /* owner value registered for every range */
    uint64_t ranges;  /* ranges currently registered; __atomic */
} ca_switch_source;

/**
 * ca_switch_source_init() - wrap @inner, registering ranges under @owner.
 * @owner may be set now or later with ca_switch_source_set_owner(), but
 * before the first obtain.
 *
 * Return: 0, or EINVAL when @s or @inner is NULL.
 */
int ca_switch_source_init(ca_switch_source *s, ca_source *inner, void *owner);

/* Set the owner value for ranges obtained from now on. */
void ca_switch_source_set_owner(ca_switch_source *s, void *owner);

/* ========================================================================
 * Allocation: the malloc family
 *
 * C and POSIX semantics with errno; these are what malloc, free, ... call in
 * the override library and the preload object. Allocations come from
 * ca_switch_current(); free / realloc / usable size go to the owner.
 * ======================================================================== */

/**
 * ca_switch_malloc() - malloc(3). Size 0 gives a unique pointer.
 * Return: a 16-byte aligned block, or NULL + ENOMEM (sizes > PTRDIFF_MAX too).
 */
ca_attr_malloc ca_attr_alloc_size(1) void *ca_switch_malloc(size_t size);

/**
 * ca_switch_calloc() - calloc(3): n * size zero-filled bytes.
 * Return: the block, or NULL + ENOMEM (also when n * size overflows).
 */
ca_attr_malloc ca_attr_alloc_size2(1, 2) void *ca_switch_calloc(size_t n, size_t size);

/**
 * ca_switch_realloc() - realloc(3).
 * @p == NULL acts as malloc(@size). @size == 0 with @p != NULL frees @p and
 * returns NULL (glibc's behaviour; errno untouched). Shrinking stays in place
 * when the owner can. The block stays with its owner allocator; when that is
 * a ca_switch_local of another thread, the block moves to the current
 * selection. On failure: NULL + ENOMEM, @p valid and intact.
 */
ca_attr_alloc_size(2) void *ca_switch_realloc(void *p, size_t size);

/**
 * ca_switch_reallocarray() - reallocarray(3): realloc(p, n * size) with the
 * product checked (overflow: NULL + ENOMEM, @p intact).
 */
ca_attr_alloc_size2(2, 3) void *ca_switch_reallocarray(void *p, size_t n, size_t size);

/**
 * ca_switch_free() - free(3). NULL is a no-op; errno is preserved. A pointer
 * no allocator owns goes to the base allocator (see the README for what
 * happens with a pointer that was never allocated).
 */
void ca_switch_free(void *p);

/**
 * ca_switch_posix_memalign() - posix_memalign(3).
 * @align must be a power of two and a multiple of sizeof(void *).
 * Return: 0 (*@out set), EINVAL (bad alignment) or ENOMEM; on error *@out is
 * untouched and errno is not changed.
 */
int ca_switch_posix_memalign(void **out, size_t align, size_t size);

/**
 * ca_switch_aligned_alloc() - aligned_alloc(3) (C17).
 * Any power-of-two @align is accepted (below 16 it gives 16); @size need not
 * be a multiple of it. A non-power-of-two @align (0, 3, 24...) fails with
 * EINVAL.
 */
ca_attr_malloc ca_attr_alloc_size(2) void *ca_switch_aligned_alloc(size_t align, size_t size);

/**
 * ca_switch_memalign() - memalign(3), glibc semantics: @align below 16 acts
 * as malloc, a non-power-of-two @align is rounded up to the next power of
 * two; one beyond SIZE_MAX / 2 fails with EINVAL.
 */
ca_attr_malloc ca_attr_alloc_size(2) void *ca_switch_memalign(size_t align, size_t size);

/* valloc(3): memalign(page size, size). */
ca_attr_malloc ca_attr_alloc_size(1) void *ca_switch_valloc(size_t size);

/* pvalloc(3): memalign(page size, size rounded up to pages; 0 gives a page). */
ca_attr_malloc void *ca_switch_pvalloc(size_t size);

/**
 * ca_switch_usable_size() - malloc_usable_size(3): the usable bytes of a live
 * block, found through its owner. NULL gives 0.
 */
size_t ca_switch_usable_size(const void *p);

/**
 * ca_switch_trim() - malloc_trim(3): give memory back to the system now.
 * @pad: ignored (glibc keeps @pad bytes at the top of its heap; the base
 *       allocator here has no single top).
 *
 * libbinned base: ca_binned_trim on the default instance (every thread
 * returns its cache at its next slow path; recycler bundles and empty blocks
 * go back; the large tier's dirty memory is purged). Other bases: nothing.
 * Return: 1 when committed memory went down, else 0.
 */
int ca_switch_trim(size_t pad);

/**
 * ca_switch_owner() - the allocator that free(@p) would use: the ownership
 * map's owner, else the base allocator. NULL for NULL.
 */
ca_allocator *ca_switch_owner(const void *p);

/* ========================================================================
 * Introspection
 * ======================================================================== */

/* Counters of the switch layer itself (relaxed snapshots, any thread). */
typedef struct ca_switch_counters {
    uint64_t bootstrap_allocs;   /* blocks served before the base allocator was ready */
    uint64_t bootstrap_bytes;    /* bytes of the bootstrap area in use (never reused) */
    uint64_t remote_frees;       /* frees queued on another thread's ca_switch_local */
    uint64_t unowned_frees;      /* frees of pointers without owner sent to the base */
    uint64_t moved_reallocs;     /* reallocs that left a foreign thread's local */
    uint64_t refused_selections; /* setter calls refused (not routable), checks=off */
    uint64_t lifetime_errors;    /* resets / destroys with live blocks or while selected */
    uint64_t retired_frees;      /* frees of blocks whose allocator was destroyed */
} ca_switch_counters;

void ca_switch_counters_get(ca_switch_counters *out);

/* Statistics counters (X-macro lists: X(name) per counter; core.h,
 * Statistics): the "switch" row of ca_switch_stats_write (the fields of
 * ca_switch_counters and the process id); those a ca_switch_local adds over
 * its inner allocator's, and an adoption over its target's (which is a
 * ca_switch_local when the adopted allocator is not thread-safe); those a
 * ca_switch_source adds over its inner source's; those of the base
 * allocator's row with -Dglobal=libc and -Dglobal=jemalloc. */
/* clang-format off */
#define CA_SWITCH_COUNTERS(X) \
    X(bootstrap_allocs) X(bootstrap_bytes) X(remote_frees) X(unowned_frees) \
    X(moved_reallocs) X(refused_selections) X(lifetime_errors) X(retired_frees) X(pid)
#define CA_SWITCH_LOCAL_COUNTERS(X) \
    X(switch_remote_frees) X(switch_remote_drained)
#define CA_SWITCH_ADOPTED_COUNTERS(X) \
    X(adopt_live) X(adopt_ranges) X(adopt_bytes) X(adopt_selected) X(adopt_lifetime_errors)
#define CA_SWITCH_SOURCE_COUNTERS(X) X(owner_ranges)
#define CA_SWITCH_LIBC_COUNTERS(X) X(free_bytes_cached) X(mmapped_blocks)
#define CA_SWITCH_JEMALLOC_COUNTERS(X) X(active) X(retained)
/* clang-format on */

/**
 * ca_switch_stats_write() - write the switch's statistics to @fd: the total
 * over all allocators, then the base / global allocator and every live
 * ca_switch_local, then the switch counters. Never allocates.
 * This is what CA_STATS=1 (text) or CA_STATS=json prints at exit. The
 * statistics of a local's inner allocator are read without its owner's
 * cooperation: exact when the owners are quiescent (at exit), a racy
 * snapshot while they allocate.
 *
 * Return: 0 or the errno of a failed write.
 */
int ca_switch_stats_write(int fd, ca_stats_format fmt);

/**
 * ca_switch_stats_total() - the "total" row of ca_switch_stats_write: the
 * base, the global allocator when it is not the base, the bootstrap area,
 * every ca_switch_local and every adoption, merged (ca_stats_merge). This is
 * what mallinfo2, malloc_stats and malloc_info report under the override.
 * Counters are summed by name; when the rows name more than
 * CA_STATS_MAX_COUNTERS different ones, those past it are dropped and
 * counted in out->counters_dropped, which the "total" row prints
 * (counters_dropped, shown only when not 0).
 * Return: 0.
 */
int ca_switch_stats_total(ca_stats *out);

/**
 * ca_switch_check() - walk the switch's invariants (the registry of locals,
 * their queues, the bootstrap area, the calling thread's selection).
 * Takes the registry lock, so it runs beside the switch's users; any thread.
 * Return: NULL when every invariant holds, otherwise a static string naming
 * the first one broken (core.h's check contract). Never prints or aborts.
 */
const char *ca_switch_check(void);

/* ========================================================================
 * NUMA: an allocator bound to a node in one call
 * ======================================================================== */

/* Where ca_switch_bind_node installs the node's allocator. */
#define CA_SWITCH_BIND_THREAD  1u /* the calling thread's allocator */
#define CA_SWITCH_BIND_CONTEXT 2u /* the current context's allocator */

/**
 * ca_switch_bind_node() - malloc on this thread (or in this context) takes
 * memory from NUMA node @node.
 * @where: CA_SWITCH_BIND_THREAD or CA_SWITCH_BIND_CONTEXT
 * @node:  a node of this machine, or -1 to clear the selection (NULL)
 * @prev:  receives the previous selection of @where (may be NULL): pass it
 *         to ca_switch_thread_set / ca_switch_context_set to restore
 *
 * The node's allocator is a libbinned instance over an anonymous mmap
 * source with policy BIND(@node), one per node, created on the first bind
 * to that node and kept for the life of the process (blocks may be freed
 * from any thread at any time, so it is never destroyed). free() and
 * realloc() from any thread route to it; freed blocks stay on their node.
 * Blocks above CA_BINNED_SMALL_MAX come from the instance's large-object
 * tier, which takes its regions from the same source: they are on the node
 * too. Thread-safe; the first bind to a node costs a few system calls and
 * ~100 GiB of address space (no memory).
 *
 * Return: 0; EINVAL (@where unknown, @node < -1, @node is not a node of this
 * machine or not allowed to this process; the selection is unchanged);
 * ENOTSUP (built with -Dnuma=disabled, a kernel without NUMA, or a base other
 * than libbinned: -Dglobal=jemalloc / libc); ENOMEM or the source's error
 * when the node's instance cannot be created (nothing is left behind).
 */
int ca_switch_bind_node(unsigned where, int node, ca_allocator **prev);

/**
 * ca_switch_numa_auto() - whether malloc follows the thread's NUMA node.
 *
 * The automatic mode (environment variable CA_NUMA: "auto", the default,
 * turns it on when the process may use more than one node; "1" whenever
 * the kernel has NUMA policies, even on one node; "0" never; anything else
 * warns once and means "auto"), decided at the first malloc. When on, an
 * allocation without a thread or context selection comes from a libbinned
 * instance of the node the thread runs on (policy PREFERRED(node), both
 * tiers), the node asked with getcpu again every 64 such allocations, so
 * a thread that migrates follows; free() returns a block to the instance of
 * its own node, whichever thread frees it; ca_switch_current() names the
 * node's instance. Off (one node, or CA_NUMA=0), malloc is exactly what it
 * is without the mode. Only with libbinned as the base (-Dglobal=binned)
 * and NUMA built in.
 * Return: true when the mode is on.
 */
bool ca_switch_numa_auto(void);

#ifdef __cplusplus
}
#endif

#endif /* CTXALLOC_SWITCH_H */
