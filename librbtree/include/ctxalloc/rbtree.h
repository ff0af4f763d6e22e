/* SPDX-License-Identifier: MIT */
/*
 * librbtree: a general-purpose single-thread allocator that keeps its free
 * blocks in several intrusive red-black trees, one per size class, keyed by
 * address. Free merges a block with both free neighbours in O(1) through
 * boundary tags (no two free blocks are ever adjacent); allocation takes the
 * best fit (the smallest sufficient free block, lowest address among equals)
 * and returns the remainder of a split to the tree of its class.
 *
 * Memory comes in regions from a ca_source or a parent ca_allocator (librbtree
 * does not depend on libsource); a parent is reached through an allocator
 * source (core.h's ca_allocator_source) kept inside the ca_rbtree, so there
 * is one way regions come and go. Requests larger than a region get a region
 * of their own; an empty region is returned to its provider as soon as another
 * region is empty too (hysteresis of one region).
 *
 * Size classes (CA_RBTREE_NCLASSES = 668): block sizes 64..1008 bytes have one
 * exact class per 16-byte step (60 classes); from 1 KiB up there are sixteen
 * classes per power of two ([16..31] * 2^(e-4)), up to 2^48.
 * A block is the request rounded up to 16 bytes plus a 16-byte header, at
 * least CA_RBTREE_MIN_BLOCK bytes.
 *
 * Alignment: up to 16 bytes costs nothing; larger powers of two up to
 * CA_RBTREE_ALIGN_MAX (1 MiB, beyond the page size) are served by taking a
 * block of size + align + 64 bytes and splitting the slack off both ends
 * back into the trees. Larger alignments fail with EINVAL.
 *
 * Events for listeners (ca_listen / ca_rbtree_listen, see ca_listener in
 * core.h): the ranges reported are the regions, each exactly as obtained
 * (region header included). added() is called for a new region before any
 * of its blocks is handed out (a refusal gives the region back and fails the
 * allocation with that errno, everything else unchanged); removed() before a
 * region goes back (an empty region released by free, trim, reset, destroy);
 * reset() at the start of ca_rbtree_reset; destroyed() at the start of
 * ca_rbtree_destroy, then removed() per region.
 * Every region is whole pages of the ownership map (CA_OWNER_PAGE): its
 * size is a multiple of the granule (>= 4 KiB), a source aligns it to its
 * granule, and a parent is asked for alignment CA_OWNER_PAGE.
 *
 * Thread safety: none; wrap it in ca_locked_allocator (core.h) to share it.
 * Checks: with checks=on a free of a pointer that is not a live block start
 * of this allocator (double free, interior or foreign pointer) aborts with a
 * one-line message; with checks=full every operation also runs
 * ca_rbtree_check().
 */
#ifndef CTXALLOC_RBTREE_H
#define CTXALLOC_RBTREE_H

#include <ctxalloc/core.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CA_RBTREE_NCLASSES  668
#define CA_RBTREE_MIN_BLOCK 64
#define CA_RBTREE_ALIGN_MAX ((size_t)1 << 20)
/* Default region size (bytes obtained per region unless a request needs more). */
#define CA_RBTREE_REGION_DEFAULT ((size_t)1 << 20)

typedef struct ca_rbtree_node ca_rbtree_node;     /* private: lives in free blocks */
typedef struct ca_rbtree_region ca_rbtree_region; /* private: region header */

/* Where regions come from: set at most one of source and parent; both NULL
 * means ca_libc_allocator(). region_size 0 means CA_RBTREE_REGION_DEFAULT.
 * All-zero (ca_rbtree_options_init, or NULL options) is the defaults. */
typedef struct ca_rbtree_options {
    ca_source *source;    /* not owned; obtain/release whole regions */
    ca_allocator *parent; /* not owned; alloc/free whole regions, aligned to CA_OWNER_PAGE */
    size_t region_size;   /* bytes per region, rounded up to the source granule / 4 KiB */
} ca_rbtree_options;

/*
 * The allocator. Fields are private (owner thread only, or under the locked
 * adaptor's lock); read them through the Introspection functions.
 *
 * Over a parent (or the libc default), `source` points to `adaptor` inside
 * the struct: an initialised ca_rbtree stays where it is (no copy or move).
 *
 * Invariants: reserved == sum of region sizes; free_bytes == sum of
 * class_bytes == bytes of all free blocks; bit c of nonempty is set iff
 * roots[c] != NULL, bit w of nonempty_words iff nonempty[w] != 0; nempty
 * (empty regions kept) <= 1.
 */
typedef struct ca_rbtree {
    ca_allocator base; /* first member: &r->base is the ca_allocator */
    ca_source *source; /* where regions come from: the source of the options, or &adaptor.base */
    size_t region_size;
    size_t granule;            /* region size unit */
    ca_rbtree_region *regions; /* doubly linked list of all regions */
    size_t nregions;
    size_t nempty;                                     /* regions that are one free block */
    uint64_t nonempty[(CA_RBTREE_NCLASSES + 63) / 64]; /* bit c: roots[c] != NULL */
    uint64_t nonempty_words;                           /* bit w: nonempty[w] != 0 */
    ca_rbtree_node *roots[CA_RBTREE_NCLASSES];
    uint64_t class_bytes[CA_RBTREE_NCLASSES];
    uint64_t free_bytes, free_blocks;
    uint64_t in_use, peak_in_use;     /* usable bytes of live blocks */
    uint64_t reserved, peak_reserved; /* bytes of regions held */
    uint64_t allocs, frees, failures;
    uint64_t regions_obtained, regions_released;
    ca_listener *listener;       /* attached by ca_rbtree_listen, or NULL: told of every
                                    region added / removed, of reset and destroy */
    ca_allocator_source adaptor; /* the parent (or ca_libc_allocator()) as a source,
                                    when the options name no source */
} ca_rbtree;

/* ========================================================================
 * Create/destroy
 * ======================================================================== */

/**
 * ca_rbtree_options_init() - the defaults: all-zero (libc parent, default
 * region size; the same as NULL options).
 * @opt: options to fill, not NULL.
 */
ca_inline void ca_rbtree_options_init(ca_rbtree_options *opt) { memset(opt, 0, sizeof *opt); }

/**
 * ca_rbtree_init() - initialise an allocator; no memory is obtained yet.
 * @r:   the allocator, not NULL.
 * @opt: options, or NULL for the defaults.
 *
 * Return: 0; EINVAL when both source and parent are set, or region_size is
 * too large to round.
 */
int ca_rbtree_init(ca_rbtree *r, const ca_rbtree_options *opt);

/**
 * ca_rbtree_destroy() - release every region (live blocks become invalid).
 * @r: the allocator, or NULL (no-op). O(regions).
 *
 * With a listener: destroyed() first, then removed() per region; the
 * listener is detached.
 */
void ca_rbtree_destroy(ca_rbtree *r);

/**
 * ca_rbtree_listen() - attach or detach the listener (the listen op).
 * @r: the allocator.
 * @l: the listener to attach (not owned, must stay valid while attached), or
 *     NULL to detach.
 *
 * Attach: added() for every region held now (newest first); when one
 * refuses, removed() for those already reported and nothing is attached.
 * Detach: removed() for every region. O(regions).
 *
 * Return: 0; EBUSY when a listener is attached and @l is not NULL; or the
 * errno added() refused a region with.
 */
int ca_rbtree_listen(ca_rbtree *r, ca_listener *l);

/* ========================================================================
 * Allocation
 * ======================================================================== */

/**
 * ca_rbtree_alloc() - allocate size bytes aligned to align.
 * @r:      the allocator.
 * @size:   bytes; 0 gives a unique minimum block.
 * @align:  a power of two <= CA_RBTREE_ALIGN_MAX.
 * @usable: NULL, or receives the usable size (>= size).
 *
 * Best fit over the class trees: O(log n) for the class search plus, in the
 * request's own class when it is not exact (>= 1 KiB), a search pruned by the
 * subtree min/max sizes (O(log n) typical, O(n) of that class at worst).
 *
 * Return: the block, or NULL with errno EINVAL (bad align) or ENOMEM (no
 * memory from the provider, or size overflow).
 */
void *ca_rbtree_alloc(ca_rbtree *r, size_t size, size_t align, size_t *usable) ca_attr_malloc;

/**
 * ca_rbtree_free() - free a block (sized; the size is only checked).
 * @r: the allocator. @p: a live block or NULL (no-op).
 * @size, @align: as allocated (size may be anything up to the usable size).
 *
 * Merges with free neighbours in O(1), then one tree insertion O(log n).
 */
void ca_rbtree_free(ca_rbtree *r, void *p, size_t size, size_t align);

/**
 * ca_rbtree_free_unsized() - free a block without its size (read from the header).
 * @r: the allocator. @p: a live block or NULL (no-op).
 */
void ca_rbtree_free_unsized(ca_rbtree *r, void *p);

/**
 * ca_rbtree_resize() - grow or shrink a block.
 * @r: the allocator. @p: live block or NULL (then acts as alloc).
 * @old_size: current size. @new_size: wanted size (0 allowed).
 * @align: the block's alignment. @flags: CA_RESIZE_IN_PLACE to never move.
 * @usable: NULL or receives the usable size.
 *
 * Shrinks in place, returning the tail to the trees (merged with a free next
 * neighbour); grows in place by absorbing a free next neighbour that is large
 * enough; otherwise moves (alloc, copy, free) unless CA_RESIZE_IN_PLACE.
 *
 * Return: the block (p when in place), or NULL + errno (ENOMEM, EINVAL) with
 * p still valid and its contents intact.
 */
void *ca_rbtree_resize(ca_rbtree *r, void *p, size_t old_size, size_t new_size, size_t align, unsigned flags,
                       size_t *usable);

/**
 * ca_rbtree_reset() - free every block at once. Keeps one region (as a single
 * free block) and releases the others. O(regions).
 * @r: the allocator.
 *
 * With a listener: reset() first, then removed() for each region released.
 */
void ca_rbtree_reset(ca_rbtree *r);

/**
 * ca_rbtree_trim() - release every empty region, including the one kept by
 * the hysteresis (the listener's removed() before each).
 * @r: the allocator.
 * Return: the number of bytes released.
 */
size_t ca_rbtree_trim(ca_rbtree *r);

/* ========================================================================
 * Introspection
 * ======================================================================== */

/**
 * ca_rbtree_usable_size() - usable bytes of a live block. O(1).
 * @r: the allocator. @p: a live block, or NULL (returns 0).
 */
size_t ca_rbtree_usable_size(const ca_rbtree *r, const void *p);

/**
 * ca_rbtree_owns() - whether p lies inside one of r's regions. O(regions).
 * @r: the allocator. @p: any pointer (NULL gives false).
 */
bool ca_rbtree_owns(const ca_rbtree *r, const void *p);

/**
 * ca_rbtree_stats() - fill *out (core fields plus counters free_bytes,
 * free_blocks, largest_free, fragmentation_ppm = 10^6 * (1 - largest free /
 * total free), regions, empty_regions, peak_reserved, regions_obtained,
 * regions_released, and free bytes per band of classes: free_bytes_lt_1k,
 * free_bytes_lt_64k, free_bytes_ge_64k). O(classes); the per-class table
 * is ca_rbtree_class_info().
 * Return: 0.
 */
int ca_rbtree_stats(const ca_rbtree *r, ca_stats *out);
/* The counters it sets, in order (an X-macro list: X(name) per counter;
 * core.h, Statistics). */
/* clang-format off */
#define CA_RBTREE_COUNTERS(X) \
    X(free_bytes) X(free_blocks) X(largest_free) X(fragmentation_ppm) X(regions) \
    X(empty_regions) X(peak_reserved) X(regions_obtained) X(regions_released) \
    X(free_bytes_lt_1k) X(free_bytes_lt_64k) X(free_bytes_ge_64k)
/* clang-format on */

/**
 * ca_rbtree_largest_free() - size in bytes of the largest free block
 * (header included), 0 when there is none. O(1).
 */
size_t ca_rbtree_largest_free(const ca_rbtree *r);

/**
 * ca_rbtree_class_info() - one size class: its block size range and what it holds.
 * @r: the allocator. @c: class index < CA_RBTREE_NCLASSES.
 * @lo, @hi: NULL or receive the block sizes [lo, hi) of the class.
 * @bytes: NULL or receives the free bytes in the class.
 * Return: 0, or EINVAL for a bad index.
 */
int ca_rbtree_class_info(const ca_rbtree *r, unsigned c, size_t *lo, size_t *hi, uint64_t *bytes);

/**
 * ca_rbtree_check() - walk every invariant: red-black rules, black height,
 * address order and size augmentation of each tree, every free block in the
 * tree of its class and no tree node elsewhere, no two adjacent free blocks,
 * boundary tags consistent, counters consistent. O(n log n).
 * @r: the allocator.
 * Return: NULL when all hold, else a static string saying what is wrong.
 */
const char *ca_rbtree_check(const ca_rbtree *r);

#ifdef __cplusplus
}
#endif

#endif /* CTXALLOC_RBTREE_H */
