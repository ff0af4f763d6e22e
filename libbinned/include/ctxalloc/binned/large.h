/* SPDX-License-Identifier: MIT */
/*
 * libbinned large-object tier: every size above the small tier's largest
 * class. Part of ctxalloc-binned (pkg-config), usable on its own. Its
 * README (usage, design, benchmarks) is README.md beside this header in the
 * source tree (libbinned/include/ctxalloc/binned/README.md).
 *
 *   - Power-of-two size classes from min_size to max_size; a request takes
 *     the smallest class >= max(size, align). Above max_size: one direct
 *     mapping per allocation, unmapped on free.
 *   - Areas of a class are carved from regions (1 to 64 areas each) obtained
 *     from a ca_source: an own anonymous mmap source by default, a file-backed
 *     one (unlinked temporary file in a directory) by option, or the caller's.
 *   - Allocation prefers the calling thread's cache (bounded in bytes), then
 *     the class's global dirty pool (freed, still resident), then a resident
 *     free area of the next two classes, then its clean pool (decommitted),
 *     then steals from other threads' caches, and only then maps a new
 *     region.
 *   - Dirty areas older than the decay interval are purged to clean
 *     (MADV_DONTNEED, MADV_FREE or hole punching through the source); regions
 *     whose areas are all free for the unmap interval are unmapped. A
 *     background thread does this when enabled; otherwise the same work runs
 *     on the slow paths (a free that fills the dirty pool, a region map).
 *   - Region buffers (ca_binned_large_region): a power-of-two block with a
 *     length and a hard capacity; appends beyond the capacity fail with
 *     ENOSPC, the buffer never moves.
 *   - Thread exit returns the thread's cache; fork is safe (the tier's locks
 *     are held across fork, the background thread is stopped before and
 *     restarted lazily after, in parent and child).
 *   - Never calls malloc (it sits under malloc through libswitch).
 *
 * Thread safety: every function may be called from any thread at once,
 * except create/destroy of one instance (no other call on it may run).
 *
 * Use with the small tier: the small tier sends sizes above its largest
 * class here and frees pointers it does not own through
 * ca_binned_large_of() + ca_binned_large_free(). It must not hold any of its
 * own locks while calling into the tier (the tier's pthread_atfork handlers,
 * registered at the first create, take every lock of every tier in prepare).
 * Every region and direct mapping is in core's ownership map as a record
 * of the tier (ca_owner_register_record; one map serves the tier's own
 * lookups and libswitch's routing): the owner it reports is options.owner
 * (the ca_allocator that serves free(p) for these pointers), the tier
 * itself with CA_BINNED_LARGE_OWNER_SELF, or none (ca_owner_lookup: NULL);
 * the record's free entry frees a block without a second lookup. Only a tier registered under itself carries
 * CA_CAP_OWNER_MAP in its allocator view (ca_binned_large_allocator).
 */
#ifndef CTXALLOC_BINNED_LARGE_H
#define CTXALLOC_BINNED_LARGE_H

#include <ctxalloc/core.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ========================================================================
 * Constants
 * ======================================================================== */

/* Defaults of the options (each used when the option is 0). */
#define CA_BINNED_LARGE_MIN_SIZE_DEFAULT       ((size_t)64 << 10)  /* smallest class */
#define CA_BINNED_LARGE_MAX_SIZE_DEFAULT       ((size_t)1 << 30)   /* largest class */
#define CA_BINNED_LARGE_REGION_SIZE_DEFAULT    ((size_t)4 << 20)   /* target bytes per region */
#define CA_BINNED_LARGE_CACHE_BYTES_DEFAULT    ((size_t)32 << 20)  /* per-thread cache bound */
#define CA_BINNED_LARGE_DIRTY_MAX_DEFAULT      ((size_t)256 << 20) /* dirty bytes of the tier */
#define CA_BINNED_LARGE_DIRTY_DECAY_MS_DEFAULT 1000u
#define CA_BINNED_LARGE_UNMAP_DECAY_MS_DEFAULT 10000u

/* Limits. */
#define CA_BINNED_LARGE_MIN_SHIFT    12 /* min_size >= 4 KiB */
#define CA_BINNED_LARGE_MAX_SHIFT    40 /* max_size <= 1 TiB */
#define CA_BINNED_LARGE_MAX_CLASSES  (CA_BINNED_LARGE_MAX_SHIFT - CA_BINNED_LARGE_MIN_SHIFT + 1)
#define CA_BINNED_LARGE_REGION_AREAS 64 /* most areas per region */
#define CA_BINNED_LARGE_CACHE_SLOTS  8  /* most cached areas per class and thread */
/* Alignment every area gives: min(class size, this). Larger alignments are
 * served by a direct mapping. */
#define CA_BINNED_LARGE_AREA_ALIGN_MAX ((size_t)2 << 20)

/* options.flags */
#define CA_BINNED_LARGE_BACKGROUND    0x01u /* start the purge thread lazily (first dirty free) */
#define CA_BINNED_LARGE_FILE          0x02u /* regions from an unlinked temporary file in file_dir */
#define CA_BINNED_LARGE_FILE_FALLBACK 0x04u /* FILE: use anonymous memory if the file fails */
#define CA_BINNED_LARGE_PURGE_FREE    0x08u /* anonymous: purge with MADV_FREE (lazy), not DONTNEED */
#define CA_BINNED_LARGE_NO_CACHE      0x10u /* no thread caches (every free goes to the pools) */
#define CA_BINNED_LARGE_OWNER_SELF    0x20u /* register ranges in the ownership map as the tier */
#define CA_BINNED_LARGE_NO_MREMAP     0x40u /* never move by mremap (always copy) */
#define CA_BINNED_LARGE_HUGE          0x80u /* anonymous: areas >= 2 MiB on transparent huge pages */

/* Flags of ca_binned_large_alloc_flags(). */
#define CA_BINNED_LARGE_ZERO 0x1u /* zero-filled (areas known zero are not written) */

/* ========================================================================
 * Types
 * ======================================================================== */

/* The tier; opaque. Its first member is a ca_allocator (see
 * ca_binned_large_allocator()). */
typedef struct ca_binned_large ca_binned_large;

/* Options; all-zero (or a NULL pointer) gives the defaults above, anonymous
 * memory, no background thread, no ownership registration. */
typedef struct ca_binned_large_options {
    size_t min_size;             /* smallest class; rounded up to a power of two, >= 4 KiB */
    size_t max_size;             /* largest class; rounded up to a power of two, >= min_size */
    size_t region_size;          /* target bytes per region of small classes (1..64 areas) */
    size_t cache_bytes;          /* bound of one thread's cache in bytes */
    size_t dirty_max;            /* dirty bytes kept by the tier beyond which frees purge */
    unsigned dirty_decay_ms;     /* age after which dirty areas are purged to clean */
    unsigned unmap_decay_ms;     /* time a region must be wholly free before it is unmapped */
    unsigned flags;              /* CA_BINNED_LARGE_* */
    const char *file_dir;        /* FILE: directory of the backing file (must exist, writable) */
    size_t file_capacity;        /* FILE: bytes of file offsets (0: libsource's default) */
    ca_source *source;           /* regions from this source instead (not owned; must be
                                thread-safe and outlive the tier); FILE is then ignored */
    ca_allocator *owner;         /* register ranges in the ownership map with this owner */
    void (*maintain)(void *arg); /* optional: also called by every maintenance pass (the
                                    background thread's, or one a freeing thread runs when
                                    due), with no lock of the tier held */
    void *maintain_arg;
} ca_binned_large_options;

/* The defaults: all-zero (the same as passing NULL options). */
ca_inline void ca_binned_large_options_init(ca_binned_large_options *o) { memset(o, 0, sizeof *o); }

/* ========================================================================
 * Create/destroy
 * ======================================================================== */

/**
 * ca_binned_large_create() - make an independent tier.
 * @out: receives the tier (untouched on failure)
 * @o:   options, or NULL for the defaults
 *
 * Sets up the classes and the backing source; maps only the tier's own
 * metadata (no region is mapped before the first allocation). With
 * CA_BINNED_LARGE_FILE the directory is checked now: a missing or read-only
 * directory fails (or falls back to anonymous memory with FILE_FALLBACK).
 * On failure the calling thread's ca_last_error() (core.h) says what went
 * wrong ("binned-large: ..."); a fallback sets it too, saying why, though
 * the create succeeds.
 * Complexity: a few system calls.
 * Return: 0; EINVAL (NULL out, min/max outside the limits, unknown flag,
 * FILE without file_dir); ENOENT / EACCES / ENOTDIR (file_dir); ENOMEM.
 */
int ca_binned_large_create(ca_binned_large **out, const ca_binned_large_options *o);

/**
 * ca_binned_large_destroy() - stop the background thread, unmap everything.
 * @l: tier; NULL is a no-op
 *
 * Every allocation of the tier becomes invalid. No other call on @l may run
 * at the same time; other threads' caches of @l are dropped with it.
 */
void ca_binned_large_destroy(ca_binned_large *l);

/**
 * ca_binned_large_default_init() - configure the process-wide tier.
 * @o: options (NULL: defaults)
 *
 * Must run before the first ca_binned_large_default() to have any effect;
 * the small tier uses it to set its owner and class range.
 * Return: 0, EBUSY (the process-wide tier already exists), or as create;
 * ca_last_error() says why on failure.
 */
int ca_binned_large_default_init(const ca_binned_large_options *o);

/**
 * ca_binned_large_default() - the process-wide tier.
 *
 * Created on first use (thread-safe) with the options given to
 * ca_binned_large_default_init(), or with the defaults plus
 * CA_BINNED_LARGE_BACKGROUND; never destroyed (its background thread is
 * stopped at exit).
 * Return: the tier, or NULL with errno when it cannot be created.
 */
ca_binned_large *ca_binned_large_default(void);

/* ========================================================================
 * Allocation
 * ======================================================================== */

/**
 * ca_binned_large_alloc() - allocate from the tier.
 * @l:      tier (not NULL)
 * @size:   bytes (0 gives the smallest class: a unique pointer)
 * @align:  a power of two; up to min(class, CA_BINNED_LARGE_AREA_ALIGN_MAX)
 *          it is free, above it the request becomes a direct mapping
 * @usable: optional; receives the usable bytes: the class size (or that of
 *          one of the next two classes when the own class has no free area
 *          but one of those has a resident one), or the mapping size for a
 *          direct mapping
 *
 * Fast path: one pop from the thread cache. Slow paths: a pool pop under
 * the class lock, a steal, a region map (source obtain).
 * Return: the block, or NULL with errno EINVAL (align) or ENOMEM (size or
 * size + align overflow, no memory, file out of space).
 */
ca_attr_malloc void *ca_binned_large_alloc(ca_binned_large *l, size_t size, size_t align, size_t *usable);

/**
 * ca_binned_large_alloc_flags() - as ca_binned_large_alloc, with flags.
 * @flags: CA_BINNED_LARGE_ZERO: memory reads as zero (fresh or purged
 *         areas are not written again)
 */
ca_attr_malloc void *ca_binned_large_alloc_flags(ca_binned_large *l, size_t size, size_t align, unsigned flags,
                                                 size_t *usable);

/**
 * ca_binned_large_free() - give a block back.
 * @l: tier that allocated @p
 * @p: block, or NULL (no-op)
 *
 * No size needed (the region map knows). Goes to the thread cache when it
 * has room, else to the class's dirty pool; direct mappings are unmapped.
 * checks=on: a pointer not from @l, an interior pointer or a double free
 * aborts with one line naming the address. checks=off: a double free is
 * still ignored when detected (atomic area state); others are undefined.
 */
void ca_binned_large_free(ca_binned_large *l, void *p);

/**
 * ca_binned_large_resize() - grow or shrink a block.
 * @l, @p:     tier and block (NULL: acts as alloc)
 * @new_size:  requested bytes
 * @align:     the alignment the block was allocated with
 * @flags:     CA_RESIZE_IN_PLACE: never move
 * @usable:    optional; receives the new usable size
 *
 * Stays in place while the class still fits (and on shrinks of less than
 * two classes); a move to a bigger class uses mremap (no copy) when the
 * block is a whole region or direct mapping of an anonymous mmap source,
 * else alloc + copy + free. A shrink by two classes or more moves to the
 * smaller class unless IN_PLACE (if that fails, the block stays).
 * Return: the (possibly moved) block, or NULL with errno (ENOMEM, EINVAL);
 * on failure @p is still valid and intact.
 */
void *ca_binned_large_resize(ca_binned_large *l, void *p, size_t new_size, size_t align, unsigned flags,
                             size_t *usable);

/* ========================================================================
 * Regions: power-of-two buffers with a hard capacity
 *
 * A region holds one area of the tier; its capacity is the class size and
 * never changes; the buffer never moves. len counts bytes in use.
 * Fields may be read directly; change them only through the functions.
 * ======================================================================== */

typedef struct ca_binned_large_region {
    unsigned char *data;   /* start of the buffer (NULL when released) */
    size_t len;            /* bytes in use, <= cap */
    size_t cap;            /* capacity: a power of two, fixed */
    ca_binned_large *tier; /* where the buffer goes back */
} ca_binned_large_region;

/**
 * ca_binned_large_region_init() - take a buffer of at least @capacity bytes.
 * @r:        region storage (caller's)
 * @l:        tier (NULL: the process-wide tier)
 * @capacity: bytes; the capacity becomes the class size (>= capacity)
 *
 * Return: 0, or ENOMEM (overflow, no memory); @r is then zeroed.
 */
int ca_binned_large_region_init(ca_binned_large_region *r, ca_binned_large *l, size_t capacity);

/**
 * ca_binned_large_region_append() - copy @n bytes to the end.
 * @r: region; @src: bytes (may be NULL when @n is 0); @n: count
 *
 * O(n). Never reallocates or moves.
 * Return: 0, or ENOSPC when len + n would exceed cap (nothing changed).
 */
int ca_binned_large_region_append(ca_binned_large_region *r, const void *src, size_t n);

/**
 * ca_binned_large_region_extend() - grow len by @n bytes, uninitialised.
 * Return: pointer to the first new byte, or NULL with errno ENOSPC (len + n
 * beyond cap; nothing changed).
 */
void *ca_binned_large_region_extend(ca_binned_large_region *r, size_t n);

/* Drop the contents (len = 0); the buffer and its capacity stay. */
void ca_binned_large_region_clear(ca_binned_large_region *r);

/* Return the buffer to the tier; @r is zeroed. NULL or released: no-op. */
void ca_binned_large_region_release(ca_binned_large_region *r);

ca_inline size_t ca_binned_large_region_remaining(const ca_binned_large_region *r) { return r->cap - r->len; }

/* Typed helpers (each evaluates its arguments more than once).
 *   CA_BINNED_LARGE_REGION_INIT(r, l, T, n)   capacity for n values of type T
 *                                             (0 or ENOMEM, also on n * sizeof overflow)
 *   CA_BINNED_LARGE_REGION_PUSH(r, T, v)      append one T (0 or ENOSPC)
 *   CA_BINNED_LARGE_REGION_COUNT(r, T)        values of type T in use
 *   CA_BINNED_LARGE_REGION_CAPACITY(r, T)     values of type T that fit
 *   CA_BINNED_LARGE_REGION_AT(r, T, i)        pointer to the i-th T (unchecked) */
#define CA_BINNED_LARGE_REGION_INIT(r, l, T, n) ca_binned_large_region__init_n((r), (l), (size_t)(n), sizeof(T))
#define CA_BINNED_LARGE_REGION_PUSH(r, T, v)                                            \
    (ca_binned_large_region_remaining(r) >= sizeof(T)                                   \
         ? (*(T *)(void *)((r)->data + (((r)->len += sizeof(T)) - sizeof(T))) = (v), 0) \
         : ENOSPC)
#define CA_BINNED_LARGE_REGION_COUNT(r, T)    ((r)->len / sizeof(T))
#define CA_BINNED_LARGE_REGION_CAPACITY(r, T) ((r)->cap / sizeof(T))
#define CA_BINNED_LARGE_REGION_AT(r, T, i)    ((T *)(void *)((r)->data + (size_t)(i) * sizeof(T)))

ca_inline int ca_binned_large_region__init_n(ca_binned_large_region *r, ca_binned_large *l, size_t n, size_t elem)
{
    size_t bytes;
    if (ca_mul_overflows(n, elem, &bytes)) {
        memset(r, 0, sizeof *r);
        return ENOMEM;
    }
    return ca_binned_large_region_init(r, l, bytes);
}

/* ========================================================================
 * Maintenance
 * ======================================================================== */

/**
 * ca_binned_large_purge() - move dirty areas to clean.
 * @l:          tier
 * @min_age_ms: purge areas dirty for at least this long (0: all)
 *
 * Decommits through the source (resident memory drops at once with
 * DONTNEED and hole punching, lazily with MADV_FREE). O(areas purged)
 * system calls; the class lock is not held during them.
 * Return: bytes purged.
 */
size_t ca_binned_large_purge(ca_binned_large *l, unsigned min_age_ms);

/**
 * ca_binned_large_unmap_idle() - unmap regions whose areas are all free.
 * @l:          tier
 * @min_age_ms: idle for at least this long (0: all wholly free regions)
 *
 * Areas in thread caches keep their region. O(regions).
 * Return: bytes of address space returned to the OS.
 */
size_t ca_binned_large_unmap_idle(ca_binned_large *l, unsigned min_age_ms);

/* Return the calling thread's cache of @l to the dirty pools. */
void ca_binned_large_flush_cache(ca_binned_large *l);

/* Flush the calling thread's cache, purge every dirty area and unmap every
 * wholly free region. Return: bytes unmapped. */
size_t ca_binned_large_trim(ca_binned_large *l);

/**
 * ca_binned_large_background_start() - start the purge thread now.
 * @l: tier
 *
 * The thread wakes every min(dirty decay, unmap decay) / 4 (at least 1 ms,
 * at most 1 s), purges what has decayed and unmaps idle regions.
 * It is stopped by _stop, destroy, exit, and around fork (restarted lazily
 * by the next free in parent and child when it was running).
 * Return: 0 (also when already running), EAGAIN (during fork), or the
 * error of pthread_create.
 */
int ca_binned_large_background_start(ca_binned_large *l);

/* Stop and join the purge thread (no-op when not running). */
void ca_binned_large_background_stop(ca_binned_large *l);

/* Whether the purge thread is running. */
bool ca_binned_large_background_running(const ca_binned_large *l);

/* ========================================================================
 * Introspection
 * ======================================================================== */

/**
 * ca_binned_large_allocator() - the tier as a ca_allocator.
 * @l: tier
 *
 * Thread-safe, unsized free, usable_size, resize, owns, stats, listen.
 * free and free_unsized ignore size and align. Caps: CA_CAP_THREAD_SAFE |
 * CA_CAP_UNSIZED, plus CA_CAP_OWNER_MAP exactly when the tier registers its
 * ranges in the ownership map under itself (CA_BINNED_LARGE_OWNER_SELF, or
 * options.owner == this allocator); a tier registering under another owner
 * (the small tier's allocator) or not at all does not carry it.
 *
 * Listener (ca_listen), for every tier (with or without CA_CAP_OWNER_MAP):
 * the ranges are the regions and direct mappings, as obtained from the
 * source (page-aligned, multiples of 64 KiB, disjoint). added() for each on
 * attach, then for each new one before any block in it is handed out (a
 * refusal gives it back and fails that allocation with NULL and the
 * refusal's errno; nothing else changes); removed() on detach, and for each
 * region before it is unmapped (idle regions, freed direct mappings, the
 * old mapping of a block moved by mremap); destroyed() then removed() for
 * every range in ca_binned_large_destroy. Areas moving between thread
 * caches, pools and users, and purges, report nothing; there is no reset.
 * Events come from any thread (allocating, freeing, the background thread,
 * trim / unmap_idle / destroy callers), one at a time: a tier lock is held
 * across each callback and across an attach or detach, which therefore
 * never misses a range nor reports one twice while other threads allocate.
 * Callbacks must not call into the tier.
 * Return: the embedded allocator (valid until destroy).
 */
ca_allocator *ca_binned_large_allocator(ca_binned_large *l);

/**
 * ca_binned_large_of() - the tier (of any instance) that owns @p.
 * @p: any address (NULL gives NULL)
 *
 * Lock-free, O(1): three dependent loads in the tier's region map.
 * Return: the tier whose region or direct mapping contains @p, or NULL.
 */
ca_binned_large *ca_binned_large_of(const void *p);

/* Whether @p lies in a region or direct mapping of @l (O(1), lock-free). */
bool ca_binned_large_owns(const ca_binned_large *l, const void *p);

/* Usable bytes of the live block @p of @l (0 for NULL). O(1). */
size_t ca_binned_large_usable_size(const ca_binned_large *l, const void *p);

/**
 * ca_binned_large_class_size() - the usable size a request would get.
 * Return: the class size, the page-rounded mapping size above max_size,
 * or 0 when the request is impossible (overflow, align not a power of two).
 */
size_t ca_binned_large_class_size(const ca_binned_large *l, size_t size, size_t align);

/* Number of classes, and the size of class i (0 beyond). */
unsigned ca_binned_large_class_count(const ca_binned_large *l);
size_t ca_binned_large_class_size_at(const ca_binned_large *l, unsigned i);

/**
 * ca_binned_large_stats() - totals of the tier.
 * @l: tier; @out: filled
 *
 * Readable while other threads allocate (relaxed atomic counters; the
 * fields are individually exact, not a snapshot of one instant).
 * Fields: bytes_in_use (usable bytes handed out), bytes_reserved (mapped),
 * bytes_committed (mapped minus clean), peak_in_use (the peak of bytes in
 * use or in thread caches, tracked on the slow paths), allocs, frees,
 * failures. Takes the cache locks briefly to add up the thread caches'
 * counters. Counters: cache_hits, steals, cached_bytes (in thread caches),
 * dirty_bytes, clean_bytes, purged_bytes, mapped_bytes (total ever),
 * unmapped_bytes (total ever), regions (live), direct_allocs, mremaps,
 * background_runs.
 * Return: 0.
 */
int ca_binned_large_stats(const ca_binned_large *l, ca_stats *out);
/* The counters of one class (ca_binned_large_class_stats), then those of
 * the totals (X-macro lists: X(name) per counter; core.h, Statistics). */
/* clang-format off */
#define CA_BINNED_LARGE_CLASS_COUNTERS(X) \
    X(cache_hits) X(steals) X(cached_bytes) X(dirty_bytes) X(clean_bytes) X(purged_bytes) \
    X(mapped_bytes) X(unmapped_bytes) X(regions) X(mremaps)
#define CA_BINNED_LARGE_COUNTERS(X) \
    CA_BINNED_LARGE_CLASS_COUNTERS(X) X(direct_allocs) X(background_runs)
/* clang-format on */

/**
 * ca_binned_large_class_stats() - the same for one class.
 * @i: class index (0 = min_size), or ca_binned_large_class_count(l) for
 *     the direct mappings
 * Return: 0, or EINVAL (index beyond).
 */
int ca_binned_large_class_stats(const ca_binned_large *l, unsigned i, ca_stats *out);

/**
 * ca_binned_large_check() - walk every invariant (takes all locks).
 *
 * Pool lists linked both ways and each area in the list its state names,
 * byte counters equal to the sums, region free counts, cache bounds, the
 * region map pointing at each live region. O(areas + caches).
 * Return: NULL when consistent, else a static message naming the violation.
 */
const char *ca_binned_large_check(ca_binned_large *l);

#ifdef __cplusplus
}
#endif

#endif /* CTXALLOC_BINNED_LARGE_H */
