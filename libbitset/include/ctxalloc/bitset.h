/* SPDX-License-Identifier: MIT */
/*
 * ctxalloc bitset: a block allocator over one fixed region.
 *
 * The region is N blocks of one power-of-two block size (16 B .. 64 KiB),
 * chosen at creation. Each allocation is a run of k consecutive blocks. The
 * allocator keeps, out of band (never inside the region):
 *
 *   - the free map: one bit per block in 64-bit words, 1 = free;
 *   - summary levels above it: bit j of level l+1 is set when word j of level
 *     l is non-zero (has a free block below it), up to a level of one word;
 *   - the run-start map: one bit per block, set at the first block of every
 *     allocated run. A run ends at the next run start or the next free
 *     block, which is how the unsized free and usable_size find its length.
 *
 * Search policy: first fit by address. The lowest free block is found in
 * O(levels) word operations (tzcnt down the summary levels); a run search
 * skips words with no free block through the summary levels and tests each
 * candidate word for a run of k <= 64 free blocks with a few shifts. See each
 * function for its complexity; libbitset/README.md has the details.
 *
 * Events for listeners (ca_listen / ca_bitset_listen, see ca_listener in
 * core.h): one range, the data region as held (from a source or the
 * allocator's own mapping: what was obtained, region_size rounded up to
 * whole pages; a caller buffer: buffer, region_size). The metadata is never reported (no block lies in it). The
 * region is fixed, so added() is only called when a listener attaches;
 * reset() at the start of ca_bitset_reset (the region stays); destroyed()
 * at the start of ca_bitset_destroy, then removed() for the region.
 * The ownership map routes whole pages (CA_OWNER_PAGE): a region from a
 * source or the own mapping is page-aligned and whole pages; a caller buffer is routable (can
 * be adopted by libswitch) only when it is page-aligned and region_size is a
 * multiple of CA_OWNER_PAGE.
 *
 * Thread safety: none inside; one thread at a time per instance. Wrap it in
 * core's locked adaptor for concurrent use:
 *
 *   ca_locked_allocator l;
 *   ca_locked_init(&l, ca_bitset_allocator(b), CA_LOCK_SPIN);
 *   void *p = ca_alloc(&l.base, 100, 16);    // from any thread
 *
 * The header is valid C11 and C++11.
 */
#ifndef CTXALLOC_BITSET_H
#define CTXALLOC_BITSET_H

#include <ctxalloc/core.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Smallest and largest block size. */
#define CA_BITSET_BLOCK_MIN ((size_t)16)
#define CA_BITSET_BLOCK_MAX ((size_t)65536)

/* Most blocks one region may have (2^40: metadata stays addressable). */
#define CA_BITSET_MAX_BLOCKS ((size_t)1 << 40)

/* Defaults of the options (each used where the field is 0). */
#define CA_BITSET_BLOCK_DEFAULT  ((size_t)64)
#define CA_BITSET_REGION_DEFAULT ((size_t)1 << 20)

/* The allocator; opaque. Its first member is a ca_allocator, so the pointer
 * converts to ca_allocator * (ca_bitset_allocator). */
typedef struct ca_bitset ca_bitset;

/* Creation options. All-zero (ca_bitset_options_init, or NULL options) is
 * the defaults: 64-byte blocks over 1 MiB of the allocator's own memory.
 *   block_size   power of two in [CA_BITSET_BLOCK_MIN, CA_BITSET_BLOCK_MAX];
 *                0: CA_BITSET_BLOCK_DEFAULT (64);
 *   region_size  bytes, a multiple of block_size; 0: CA_BITSET_REGION_DEFAULT
 *                (1 MiB), except with a buffer, which needs its size;
 *   at most one of (neither: the region and the metadata are the
 *   allocator's own anonymous mappings, page-aligned, in whole pages,
 *   unmapped by destroy)
 *     source     the region and the metadata are obtained from this source
 *                (not owned; must outlive the allocator; released by destroy);
 *                the region is obtained page-aligned, in whole pages;
 *     buffer     the caller's region of region_size bytes, aligned to
 *                block_size; it stays the caller's (destroy leaves it). To
 *                be adoptable (routed through the ownership map) it must be
 *                aligned to CA_OWNER_PAGE with region_size a multiple of it.
 *   meta, meta_size  buffer mode only, optional: the caller's memory for the
 *                metadata, at least ca_bitset_meta_size() bytes, aligned to 64.
 *                When NULL in buffer mode the metadata is mapped with mmap. */
typedef struct ca_bitset_options {
    size_t block_size;
    size_t region_size;
    ca_source *source;
    void *buffer;
    void *meta;
    size_t meta_size;
} ca_bitset_options;

/* ========================================================================
 * Create / destroy
 * ======================================================================== */

/**
 * ca_bitset_options_init() - the defaults: all-zero (the same as NULL options).
 * @o: options to fill (not NULL).
 */
ca_inline void ca_bitset_options_init(ca_bitset_options *o) { memset(o, 0, sizeof *o); }

/**
 * ca_bitset_meta_size() - bytes of metadata a region needs.
 * @region_size: region bytes.
 * @block_size: block bytes (power of two in range).
 *
 * Return: the metadata size (the allocator object, the free map with its
 * summary levels and the run-start map), or 0 when the arguments are invalid
 * or the size overflows.
 */
size_t ca_bitset_meta_size(size_t region_size, size_t block_size);

/**
 * ca_bitset_create() - create an allocator over a region.
 * @out: receives the allocator (not NULL); untouched on failure.
 * @o: options, or NULL for the defaults; see ca_bitset_options.
 *
 * All blocks start free. Complexity: O(metadata size) to clear the maps.
 *
 * Return: 0; EINVAL (block size not a power of two or out of range, region
 * size not a multiple of the block size, a buffer without its size, both
 * source and buffer, buffer misaligned, meta without a buffer, meta too small
 * or misaligned, more than CA_BITSET_MAX_BLOCKS blocks); ENOMEM (size
 * overflow, or the source / mmap failed), or the source's error. Nothing is
 * created on failure.
 */
int ca_bitset_create(ca_bitset **out, const ca_bitset_options *o);

/**
 * ca_bitset_destroy() - release the region (source mode) and the metadata.
 * @b: allocator, or NULL (no-op). Live allocations become invalid.
 *
 * With a listener: destroyed() first, then removed() for the region; the
 * listener is detached.
 */
void ca_bitset_destroy(ca_bitset *b);

/**
 * ca_bitset_listen() - attach or detach the listener (the listen op).
 * @b: allocator (not NULL).
 * @l: the listener to attach (not owned, must stay valid while attached), or
 *     NULL to detach.
 *
 * Attach: added() for the data region; when it refuses, nothing is
 * attached. Detach: removed() for the data region. O(1).
 *
 * Return: 0; EBUSY when a listener is attached and @l is not NULL; or the
 * errno added() refused the region with.
 */
int ca_bitset_listen(ca_bitset *b, ca_listener *l);

/**
 * ca_bitset_allocator() - the allocator as a ca_allocator.
 * @b: allocator (not NULL).
 *
 * The ops table has CA_CAP_UNSIZED, owns, reset, stats, resize and listen.
 * Return: @b viewed through its first member.
 */
ca_inline ca_allocator *ca_bitset_allocator(ca_bitset *b) { return (ca_allocator *)(void *)b; }

/* ========================================================================
 * Allocation
 * ======================================================================== */

/**
 * ca_bitset_alloc() - allocate a run of ceil(size / block_size) blocks.
 * @b: allocator (not NULL).
 * @size: bytes; 0 allocates one block (a unique, freeable pointer).
 * @align: power of two. Up to the block size every block satisfies it;
 *         above, the run starts at a block whose address is a multiple.
 * @usable: NULL, or receives the run's bytes (blocks * block_size).
 *
 * First fit by address. The search starts at the lowest free block, or for
 * a run length requested before, where the last search of that length
 * ended (both hints are lowered by frees, so the result is unchanged).
 * Complexity: O(levels) for one block with align <= block size; for k
 * blocks, O(levels) per skipped stretch of full words plus O(log k) per
 * candidate word with free blocks (k <= 64 and align <= 64 blocks) or
 * O(k / 64) per candidate position otherwise.
 *
 * Return: the run's address, or NULL with errno EINVAL (align not a power of
 * two) or ENOMEM (no run fits, size larger than the region, or overflow).
 */
void *ca_bitset_alloc(ca_bitset *b, size_t size, size_t align, size_t *usable);

/**
 * ca_bitset_free() - sized free.
 * @b: allocator (not NULL).
 * @p: a run's address, or NULL (no-op).
 * @size: any size in [size given to alloc, usable size].
 *
 * checks >= on: a pointer outside the region, not at a block boundary, not at
 * a run start, a double free, or a size that does not match the run aborts
 * with a message naming the block index. Complexity: O(k / 64 + levels).
 */
void ca_bitset_free(ca_bitset *b, void *p, size_t size);

/**
 * ca_bitset_free_unsized() - free a run without its size.
 * @b: allocator (not NULL).
 * @p: a run's address, or NULL (no-op).
 *
 * The length is found from the run-start map: the run ends at the next run
 * start or free block. Checks as ca_bitset_free. Complexity: O(k / 64 + levels).
 */
void ca_bitset_free_unsized(ca_bitset *b, void *p);

/**
 * ca_bitset_resize() - grow or shrink a run.
 * @b: allocator (not NULL).
 * @p: a run's address; NULL acts as ca_bitset_alloc (ENOMEM with
 *     CA_RESIZE_IN_PLACE).
 * @old_size: the run's current size (as for ca_bitset_free).
 * @new_size: wanted bytes (0 keeps one block).
 * @align: the run's alignment (power of two).
 * @flags: 0 or CA_RESIZE_IN_PLACE.
 * @usable: NULL, or receives the resulting run's bytes.
 *
 * Shrinking always stays in place and frees the tail blocks. Growing stays in
 * place when the blocks after the run are free; otherwise, without
 * CA_RESIZE_IN_PLACE, a new run is allocated while the old one is still held,
 * the data copied, and only then the old run freed. On failure the original
 * run is untouched: still allocated, same size, same contents.
 * Complexity: O(k / 64 + levels) in place; an allocation plus a copy when moved.
 *
 * Return: the run's (possibly new) address, or NULL with errno EINVAL (align)
 * or ENOMEM (no space, in-place not possible, overflow).
 */
void *ca_bitset_resize(ca_bitset *b, void *p, size_t old_size, size_t new_size, size_t align, unsigned flags,
                       size_t *usable);

/**
 * ca_bitset_reset() - free every run at once.
 * @b: allocator (not NULL). Complexity: O(metadata words).
 *
 * With a listener: reset() first; the region stays (nothing is removed).
 */
void ca_bitset_reset(ca_bitset *b);

/* ========================================================================
 * Introspection
 * ======================================================================== */

/**
 * ca_bitset_owns() - whether p lies inside the region.
 * @b: allocator (not NULL). @p: any pointer (NULL gives false). O(1).
 */
bool ca_bitset_owns(const ca_bitset *b, const void *p);

/**
 * ca_bitset_usable_size() - bytes of the live run starting at p.
 * @b: allocator (not NULL). @p: a run's address, or NULL (gives 0).
 *
 * checks >= on: p not at a live run start aborts; otherwise such a p gives 0.
 * Complexity: O(k / 64).
 */
size_t ca_bitset_usable_size(const ca_bitset *b, const void *p);

/**
 * ca_bitset_block_size() - the block size. @b: allocator (not NULL).
 */
size_t ca_bitset_block_size(const ca_bitset *b);

/**
 * ca_bitset_nblocks() - blocks in the region. @b: allocator (not NULL).
 */
size_t ca_bitset_nblocks(const ca_bitset *b);

/**
 * ca_bitset_base() - the region's first byte. @b: allocator (not NULL).
 */
void *ca_bitset_base(const ca_bitset *b);

/**
 * ca_bitset_stats() - fill a ca_stats.
 * @b: allocator (not NULL). @out: receives the stats (not NULL).
 *
 * bytes_in_use counts whole blocks. Counters: block_size, blocks_total,
 * blocks_in_use, largest_free_run (blocks), runs_in_use, resize_in_place,
 * resize_moved. largest_free_run walks the free map: O(words).
 *
 * Return: 0.
 */
int ca_bitset_stats(const ca_bitset *b, ca_stats *out);
/* The counters it sets, in order (an X-macro list: X(name) per counter;
 * core.h, Statistics). */
/* clang-format off */
#define CA_BITSET_COUNTERS(X) \
    X(block_size) X(blocks_total) X(blocks_in_use) X(largest_free_run) X(runs_in_use) \
    X(resize_in_place) X(resize_moved)
/* clang-format on */

/**
 * ca_bitset_check() - verify every invariant of the maps.
 * @b: allocator (not NULL); no other thread may use it during the walk.
 *
 * Checks: bits past the last block are never free; each summary bit equals
 * "the word below is non-zero"; run-start bits lie only on allocated blocks;
 * every allocated block preceded by a free block (or at index 0) is a run
 * start; the in-use block and run counts match the maps. Complexity: O(words).
 *
 * Return: NULL when every invariant holds, otherwise a static string naming
 * the first one broken (core.h's check contract). Never prints or aborts.
 */
const char *ca_bitset_check(const ca_bitset *b);

#ifdef __cplusplus
}
#endif

#endif /* CTXALLOC_BITSET_H */
