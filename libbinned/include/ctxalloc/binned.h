/* SPDX-License-Identifier: MIT */
/*
 * libbinned: the thread-caching general-purpose allocator of ctxalloc, the
 * one libswitch puts under malloc.
 *
 *   - 100 size classes from 16 B to CA_BINNED_SMALL_MAX (256 KiB), 8 per
 *     doubling above 64 B (internal waste < 12.5% of the class size for
 *     requests with alignment <= 8; malloc-style 16-byte alignment rounds the
 *     request to 16 first), found through a lookup table for sizes <= 1 KiB;
 *   - one reserved virtual range per class, committed block by block; the
 *     class and block of a pointer follow from its address by a shift, so
 *     free needs no size and there is no header in front of any block;
 *   - one u64 of out-of-band metadata per block and a three-level bit tree
 *     (16,384 blocks per 2 KiB tree, chained beyond) that finds the lowest
 *     block with a free slot in O(1);
 *   - per-thread caches (no lock, no atomic on the fast path), refilled and
 *     flushed in bundles through a lock-free recycler per class (Treiber
 *     stack, 128-bit CAS of pointer + generation); a free from any thread
 *     goes to that thread's cache (remote frees need no owner and no lock);
 *   - empty blocks decommitted after a decay interval (or at once above a
 *     per-class budget, or at ca_binned_trim), trailing empty blocks cut off;
 *     ca_binned_trim() bumps a global epoch and every thread returns its
 *     cached bundles on its next slow path;
 *   - sizes above CA_BINNED_SMALL_MAX (and alignments no class serves) go to
 *     the large-object tier (<ctxalloc/binned/large.h>).
 *
 * Thread safety: every function may be called from any thread at any time,
 * except ca_binned_destroy and ca_binned_check (see there).
 *
 * The process-wide default instance (ca_binned_default, and the ca_binned_*
 * malloc-style entry points that use it) is built for being malloc: it is set
 * up on first use without calling malloc, usable before main and from any
 * thread, never calls malloc (nor anything that does) and returns each
 * thread's cache when the thread exits (pthread key destructor). A process
 * that forks while other threads allocate calls ca_binned_fork_prepare /
 * _parent / _child around fork (libswitch registers them with core's
 * ca_fork_hook_register). Its class ranges are registered in core's ownership map
 * with its ca_allocator as the owner value.
 *
 * Errors: pointer calls return NULL and set errno (ENOMEM: out of memory or
 * size overflow; EINVAL: alignment not a power of two); free never changes
 * errno. Size 0 returns a unique 16-byte block.
 *
 * Misuse (every build): a double free, a free of an interior pointer and a
 * free of a pointer into the class ranges that was never handed out abort
 * on the free path with one line naming the misuse, the class and the
 * address (an out-of-band shadow byte per 16 bytes records the slot handed
 * out there). No free-list link inside a block can be turned into a
 * pointer: thread caches and recycler bundles keep slot pointers outside the
 * blocks, and the blocks' own free lists carry tags keyed by a per-process
 * secret, checked before use ("corrupt free-list link"). With checks=on (and
 * full), 8 guard bytes follow every small request (the class is chosen for
 * size + 8; the usable size is then the request): an overflow past the end
 * of a block is reported when the block is freed or resized ("heap overflow
 * past the end of a block"). libbinned/README.md, "Hardening", has the
 * details and glibc's behaviour for the same misuse.
 */
#ifndef CTXALLOC_BINNED_H
#define CTXALLOC_BINNED_H

#include <ctxalloc/core.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Largest request served by the size classes; larger ones go to the
 * large-object tier. */
#define CA_BINNED_SMALL_MAX ((size_t)256 << 10)
/* Number of size classes. */
#define CA_BINNED_NCLASSES 100

/* Flags of ca_binned_options.flags. */
#define CA_BINNED_NO_OWNER_MAP 0x1u /* do not register ranges in core's ownership map */
#define CA_BINNED_NO_TCACHE    0x2u /* no thread caches: every call takes the shared path */
#define CA_BINNED_BACKGROUND \
    0x4u /* a background thread (started once there is memory
                                       to return) runs both tiers' decay, so idle memory goes
                                       back without calls; the default instance has it unless
                                       CA_BINNED_BACKGROUND=0 */
#define CA_BINNED_LARGE_FROM_SOURCE \
    0x8u /* the large tier takes its regions from `source`
                                            too (without the flag it maps its own), so a
                                            source's NUMA policy covers both tiers; needs a
                                            source (EINVAL without one) that supports
                                            decommit for purging to return memory */
#define CA_BINNED_STARTER \
    0x10u /* the first slots of the classes up to 4 KiB come from one shared
                                     128 KiB starter area (a program that allocates a
                                     few KB touches a few pages, not three per class);
                                     needs the own source with base pages (ignored
                                     otherwise); the default instance has it unless
                                     CA_BINNED_STARTER=0 */

/* Defaults of the options (each used where the field is 0). */
#define CA_BINNED_CLASS_RANGE_LOG2_DEFAULT 34u
#define CA_BINNED_DECAY_MS_DEFAULT         1000u
#define CA_BINNED_EMPTY_KEEP_DEFAULT       ((size_t)1 << 20)
#define CA_BINNED_RECYCLER_BYTES_DEFAULT   ((size_t)256 << 10)

/* decay_ms value: never decommit EMPTY blocks by age (trim still does). */
#define CA_BINNED_DECAY_NEVER UINT32_MAX
/* empty_keep value: a budget of 0 bytes (EMPTY blocks beyond what the class
 * has shown it takes back go back at the next slow path, not at decay). */
#define CA_BINNED_EMPTY_KEEP_NONE SIZE_MAX
/* recycler_bytes value: the recycler's least, two bundles per class. */
#define CA_BINNED_RECYCLER_MIN SIZE_MAX

typedef struct ca_binned ca_binned;

/*
 * Options of an instance. All-zero (ca_binned_options_init, or NULL
 * options) is the defaults: a field left at 0 takes the default its comment
 * gives; a quantity that may be none has a named value for that.
 */
typedef struct ca_binned_options {
    ca_source *source;         /* memory for ranges and metadata; NULL: an own
                                  anonymous mmap source (no-reserve). A given
                                  source must be thread-safe and support
                                  decommit for memory to go back. */
    unsigned class_range_log2; /* log2 of the address space per class, 24..36
                                  (0: 34, 16 GiB per class). With the own
                                  source and base pages: how far each class may
                                  grow in its window, mapped as it grows; with a
                                  given source or huge pages: obtained at create
                                  (100 ranges, 1.6 TiB at 34) */
    unsigned huge;             /* CA_SOURCE_HUGE_* rung to start the class span
                                  with (own source only; 0: OFF) */
    unsigned flags;            /* CA_BINNED_* */
    uint32_t decay_ms;         /* EMPTY blocks are decommitted after 1-2x this
                                  (0: 1000; the shortest is 1;
                                  CA_BINNED_DECAY_NEVER: only trim does) */
    size_t empty_keep;         /* per class, bytes of EMPTY blocks kept until
                                  decay; more go back at the next slow path
                                  (0: 1 MiB; CA_BINNED_EMPTY_KEEP_NONE: none).
                                  The budget grows while the class takes back
                                  blocks within a decay interval of returning
                                  them, and falls back to this value when it
                                  stops */
    size_t recycler_bytes;     /* per class, bytes of bundles the recycler holds
                                  before flushes go to the blocks, at least two
                                  bundles (0: 256 KiB; CA_BINNED_RECYCLER_MIN:
                                  two bundles) */
    size_t pressure_bytes;     /* memory-pressure policy: when a decay pass finds
                                  more committed bytes in the classes than this,
                                  it bumps the trim epoch (every thread returns its
                                  cache on its next slow path) and empties the
                                  recyclers (default 0: off) */
} ca_binned_options;

/* ========================================================================
 * Create/destroy
 * ======================================================================== */

/**
 * ca_binned_options_init() - the defaults: all-zero (the same as NULL options).
 * @o: options to fill (not NULL)
 */
ca_inline void ca_binned_options_init(ca_binned_options *o) { memset(o, 0, sizeof *o); }

/**
 * ca_binned_create() - a new instance with its own class ranges.
 * @out: receives the instance (not NULL)
 * @o:   options, or NULL for the defaults
 *
 * With its own source and base pages, maps nothing for the classes: it
 * picks a window of address space for 100 class ranges of
 * 2^class_range_log2 bytes, their shadow and block words, mapped class by
 * class as they grow (the README's "Address space"); else it obtains the
 * ranges and the metadata from the source now (touched on demand). The
 * instance itself lives in memory from the source. O(1) plus a few system
 * calls.
 * Return: 0; EINVAL (bad option); ENOMEM (no address space); or the error
 * of the source.
 */
int ca_binned_create(ca_binned **out, const ca_binned_options *o);

/**
 * ca_binned_destroy() - release everything the instance holds.
 * @b: instance; NULL is a no-op; never the default instance (ignored)
 *
 * Every block is gone afterwards. No other thread may use b during or after
 * the call; caches of other threads for b are discarded.
 */
void ca_binned_destroy(ca_binned *b);

/**
 * ca_binned_default() - the process-wide instance.
 *
 * Set up on the first call from any thread (no malloc, no TLS needed), never
 * destroyed. Options: the defaults. Its ca_allocator is registered as the
 * owner of its ranges in core's ownership map.
 * Return: the instance (never NULL; an impossible setup aborts with one line).
 */
ca_binned *ca_binned_default(void);

/**
 * ca_binned_allocator() - the ca_allocator view of an instance.
 * @b: instance (not NULL)
 *
 * Caps: CA_CAP_THREAD_SAFE | CA_CAP_UNSIZED. alloc/free/free_unsized/
 * usable_size/resize (in place when the new size fits the class, or the
 * large tier can), owns, stats (totals; per class with
 * ca_binned_class_stats). No reset.
 * Return: &b->base.
 */
ca_allocator *ca_binned_allocator(ca_binned *b);

/**
 * ca_binned_flags() - the CA_BINNED_* flags an instance was created with.
 * @b: instance (not NULL); the default instance's include
 *     CA_BINNED_BACKGROUND unless the environment turned it off
 *
 * For layers that create instances beside the default one and want them
 * to behave like it. O(1).
 * Return: the flags.
 */
unsigned ca_binned_flags(const ca_binned *b);

/* ========================================================================
 * Allocation: any instance
 * ======================================================================== */

/**
 * ca_binned_alloc() - allocate size bytes aligned to align.
 * @b:     instance
 * @size:  bytes (0: a unique minimal block)
 * @align: power of two; <= 8 may use the 8-byte classes (72, 88, 104, 120)
 *
 * Alignments up to the class size are served by the first class whose size
 * is a multiple of the alignment (up to 256 KiB); larger ones by the large
 * tier. O(1): a thread-cache pop, a bundle pop, or a bit-tree search.
 * Return: the block, or NULL with errno ENOMEM / EINVAL.
 */
ca_attr_malloc void *ca_binned_alloc(ca_binned *b, size_t size, size_t align);

/**
 * ca_binned_free() - free a block of b without its size.
 * @b: instance that allocated p
 * @p: block or NULL (no-op)
 *
 * O(1): a push on the calling thread's cache (any thread may free).
 */
void ca_binned_free(ca_binned *b, void *p);

/**
 * ca_binned_usable_size() - usable bytes of a block of b.
 * @b: instance
 * @p: live block of b, or NULL (0)
 * Return: the class size (>= the request), or the large tier's size. With
 * checks=on the request itself for a small block (its guard follows it).
 */
size_t ca_binned_usable_size(const ca_binned *b, const void *p);

/**
 * ca_binned_owns() - whether p is a block address inside b's memory (its
 * class ranges or its large tier). O(1).
 */
bool ca_binned_owns(const ca_binned *b, const void *p);

/* ========================================================================
 * Allocation: the default instance (malloc-style; usable as malloc)
 *
 * The malloc family of the process-wide instance (ca_binned_default()):
 * each is ca_binned_default_<malloc function>, so that every other
 * ca_binned_<verb> takes an instance first, as in every component.
 * All are thread-safe, never call malloc, and set errno only on failure.
 * ======================================================================== */

/* malloc: 16-byte aligned; size 0 gives a unique block. NULL + ENOMEM. */
ca_attr_malloc void *ca_binned_default_malloc(size_t size);
/* free: p NULL is a no-op; errno is preserved. */
void ca_binned_default_free(void *p);
/* For routers that put libbinned behind their own free (libswitch's
 * malloc): p in the default instance's size classes or its starter area
 * (range compares, no lookup) is freed as ca_binned_default_free frees it;
 * anything else, NULL and the large tier's blocks included, is passed to
 * other(p). */
void ca_binned_default_free_else(void *p, void (*other)(void *p));
/* calloc: n * size zero-filled; overflow gives NULL + ENOMEM. */
ca_attr_malloc void *ca_binned_default_calloc(size_t n, size_t size);
/* realloc: p NULL acts as malloc; size 0 frees p and returns NULL (glibc's
 * choice); in place when the class fits; failure leaves p intact (NULL +
 * ENOMEM). Shrinking below half the class moves to a smaller class. */
void *ca_binned_default_realloc(void *p, size_t size);
/* For routers (as ca_binned_default_free_else): p in the default instance's
 * size classes or starter area (range compares, no lookup) is reallocated as
 * ca_binned_default_realloc does; anything else, NULL and the large tier's
 * blocks included, is passed to other(p, size) and its result returned. A
 * realloc of a freed, interior or never handed out pointer of the classes
 * aborts naming it, in every build. */
void *ca_binned_default_realloc_else(void *p, size_t size, void *(*other)(void *p, size_t size));
/* Aligned allocation: align a power of two (else NULL + EINVAL), any size. */
ca_attr_malloc void *ca_binned_default_aligned_alloc(size_t align, size_t size);
/* Usable size of a block of the default instance; 0 for NULL. */
size_t ca_binned_default_usable_size(const void *p);
/* Whether p is a block address inside the default instance's memory
 * (class ranges or large tier). O(1). */
bool ca_binned_default_owns(const void *p);

/* ========================================================================
 * Memory return, threads, fork
 * ======================================================================== */

/**
 * ca_binned_trim() - give memory back now.
 * @b: instance; NULL means the default instance
 *
 * Bumps the trim epoch (every thread returns its cached bundles on its next
 * slow path), returns the calling thread's cache and every recycler bundle
 * to the blocks, decommits every EMPTY block, trims trailing blocks and
 * trims the large tier. O(classes + empty blocks) plus system calls.
 */
void ca_binned_trim(ca_binned *b);

/**
 * ca_binned_thread_flush() - return the calling thread's cache of b.
 * @b: instance; NULL means the default instance
 *
 * Done automatically at thread exit.
 */
void ca_binned_thread_flush(ca_binned *b);

/*
 * Fork hooks for every instance of the process, for core's fork hooks:
 *   ca_fork_hook_register(ca_binned_fork_prepare, ca_binned_fork_parent,
 *                         ca_binned_fork_child, CA_LOCK_RANK_BINNED_INSTANCES);
 * (the library does not register them itself: libswitch, or the
 * application, does; the large tier registers its own). prepare takes every
 * lock of the small tier in rank order (instances, then every registry,
 * then every class), parent releases them, child re-initialises them and
 * returns the caches of the threads that do not exist in the child to the
 * blocks.
 */
void ca_binned_fork_prepare(void);
void ca_binned_fork_parent(void);
void ca_binned_fork_child(void);

/* ========================================================================
 * Introspection
 * ======================================================================== */

/* Size of class i (i < CA_BINNED_NCLASSES), 0 otherwise. */
size_t ca_binned_class_size(unsigned i);
/* Class serving a request of size bytes with 16-byte alignment, or
 * CA_BINNED_NCLASSES when the large tier serves it (checks=on: the class
 * of size + 8, the guard included). */
unsigned ca_binned_size_class(size_t size);

/**
 * ca_binned_class_stats() - statistics of one class.
 * @b:   instance
 * @i:   class index
 * @out: filled: bytes_in_use (slots out of the caches and recycler, times
 *       the class size), bytes_reserved (the class range), bytes_committed
 *       (blocks ACTIVE or EMPTY), allocs / frees (thread caches, live and
 *       exited), counters blocks, empty_blocks, decommits, recommits,
 *       keep_blocks (the class's current keep budget), cached_slots,
 *       recycled_bundles, recycled_slots (bundles hold a batch each, or
 *       fewer when a thread's cache was given back whole), failures
 *
 * Readable while other threads allocate (the figures are then approximate).
 * Return: 0 or EINVAL (class out of range).
 */
int ca_binned_class_stats(const ca_binned *b, unsigned i, ca_stats *out);
/* The counters it sets, in order (an X-macro list: X(name) per counter;
 * core.h, Statistics). */
/* clang-format off */
#define CA_BINNED_CLASS_COUNTERS(X) \
    X(class_size) X(blocks) X(empty_blocks) X(decommits) X(recommits) X(keep_blocks) \
    X(cached_slots) X(recycled_bundles) X(recycled_slots)
/* clang-format on */

/**
 * ca_binned_stats() - totals over every class plus the large tier.
 * @b: instance; @out: filled (name "binned"); counters cached_bytes,
 *     recycled_bytes, blocks, empty_blocks, decommits, recommits (blocks
 *     taken again within a decay interval of going back: the keep budget
 *     grows), large_in_use, threads_seen, page_kind (CA_SOURCE_PAGE_* of
 *     the class span), pressure_trims (epochs moved by the memory-pressure
 *     policy). peak_in_use covers both tiers but is sampled: the highest
 *     bytes in use seen by any stats call, or the large tier's exact peak
 *     when higher; the size classes keep no shared in-use count on their
 *     fast paths (reading the thread caches races with their owners, so
 *     only an explicit stats call does it).
 * Return: 0.
 */
int ca_binned_stats(const ca_binned *b, ca_stats *out);
/* The counters it sets, in order (an X-macro list: X(name) per counter;
 * core.h, Statistics). */
/* clang-format off */
#define CA_BINNED_COUNTERS(X) \
    X(cached_bytes) X(recycled_bytes) X(blocks) X(empty_blocks) X(decommits) X(recommits) \
    X(large_in_use) X(threads_seen) X(page_kind) X(pressure_trims)
/* clang-format on */

/**
 * ca_binned_check() - walk every invariant of b.
 * @b: instance
 *
 * Block words against the free and empty trees, free-list lengths against
 * the free counts, every slot in at most one place (a block list, a thread
 * cache, a recycler bundle), cache counts against list lengths. No other
 * thread may use b during the call. Memory for the walk comes from the
 * instance's source (never malloc). O(slots of the used blocks).
 * Return: NULL when consistent, else a static message naming the first
 * broken invariant.
 */
const char *ca_binned_check(const ca_binned *b);

#ifdef __cplusplus
}
#endif

#endif /* CTXALLOC_BINNED_H */
