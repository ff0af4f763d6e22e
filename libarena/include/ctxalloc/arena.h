/* SPDX-License-Identifier: MIT */
/*
 * libarena: a lock-free concurrent arena over one contiguous region, addressed
 * by offsets so that the region can be mapped anywhere (a file reopened at
 * another address, a copy-on-write view) and recovered.
 *
 *   Backing     heap memory or an anonymous mapping (through a ca_source:
 *               yours, or libsource's heap / mmap source by default), or a
 *               file (create, open read-write, read-only, copy-on-write).
 *   Allocation  a CAS bump of the allocated cursor; freeing the block that
 *               ends at the cursor rewinds it (and through free segments
 *               that end there); other frees go to the free list:
 *                 NONE         the bytes are counted as discarded;
 *                 OPTIMISTIC   segments largest first; allocation pops the
 *                              head when it fits (lock-free tagged CAS);
 *                 PESSIMISTIC  segments smallest first; allocation takes the
 *                              best fit.
 *   Caches      per thread: a chunk of the cursor and bins of freed blocks
 *               (16 B - 4 KiB), used without atomics; what they give back
 *               goes to shared bins, one lock-free stack per size, folded
 *               into the free list by flushes and compactions.
 *   Offsets     32 or 64 bits, chosen at creation (32: capacity < 4 GiB).
 *   Files       a header page with two checksummed copies of the header
 *               (sequence-numbered) and a state word; flush writes a new
 *               copy; reopen validates everything and recovers the cursor
 *               and the free list; a torn header write is detected and the
 *               previous copy used; any other damage is an error with a
 *               reason (ca_arena_error, ca_arena_strerror; the thread's
 *               ca_last_error() names the file too) and the file is left
 *               untouched.
 *
 * Concurrency: alloc, free, compact, ptr/offset conversion, stats and flush
 * may be called from any number of threads at once; reset, close and check
 * need the caller to be the only user.
 *
 * Errors: int calls return 0 or a positive errno value. Creating and
 * opening also report what exactly was wrong: as a ca_arena_error
 * (ca_arena_strerror) for the files, and as the calling thread's message
 * (core's ca_last_error(): the file, the reason, the failed system call or
 * the bad option) for every create and open.
 *
 * Checks: with checks=on a free of an offset outside [data, cursor), not on
 * the 16-byte grain, or overlapping free memory (a double free) aborts with a
 * one-line message; with checks=full every free-list change is followed by
 * ca_arena_check().
 */
#ifndef CTXALLOC_ARENA_H
#define CTXALLOC_ARENA_H

#include <ctxalloc/core.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Every block size is rounded up to this many bytes; offsets are multiples. */
#define CA_ARENA_GRAIN ((size_t)16)
/* Largest alignment an allocation may ask for (the region is page-aligned). */
#define CA_ARENA_MAX_ALIGN ((size_t)4096)
/* Bytes of the header page at offset 0 (the user area follows it). */
#define CA_ARENA_HEADER_SIZE ((size_t)4096)
/* Layout version written by this library (the only one it reads). */
#define CA_ARENA_LAYOUT_VERSION 1u
/* Largest capacity with 32-bit offsets. */
#define CA_ARENA_MAX_CAPACITY_32 ((uint64_t)0xFFFFF000u)

/* Defaults of the options (each used where the field is 0). */
#define CA_ARENA_CAPACITY_DEFAULT     ((uint64_t)1 << 20)
#define CA_ARENA_OFFSET_BITS_DEFAULT  64u
#define CA_ARENA_MIN_SEGMENT_DEFAULT  ((size_t)32)
#define CA_ARENA_MAX_RETRIES_DEFAULT  256u
#define CA_ARENA_AUTO_COMPACT_DEFAULT ((size_t)1024)
#define CA_ARENA_LOCAL_CACHE_DEFAULT  ((size_t)256 << 10)

/* options.auto_compact: no compaction inside a free (only ca_arena_compact). */
#define CA_ARENA_AUTO_COMPACT_OFF SIZE_MAX
/* options.local_cache: no thread caches (every call works on the shared
 * cursor and list). */
#define CA_ARENA_LOCAL_CACHE_OFF SIZE_MAX

/* Free-list kinds. A file's header records the kind in an encoding of its
 * own that does not change (layout version 1: none 0, optimistic 1,
 * pessimistic 2), so these values are free to differ from it. */
typedef enum ca_arena_freelist {
    CA_ARENA_FREELIST_DEFAULT = 0,     /* create: OPTIMISTIC; open: the file's (as ANY) */
    CA_ARENA_FREELIST_NONE = 1,        /* frees other than at the tail are discarded */
    CA_ARENA_FREELIST_OPTIMISTIC = 2,  /* largest first, pop the head */
    CA_ARENA_FREELIST_PESSIMISTIC = 3, /* smallest first, best fit */
    CA_ARENA_FREELIST_ANY = 4          /* only in ca_arena_open_file: accept the file's */
} ca_arena_freelist;

/* Memory behind ca_arena_create (files use ca_arena_create_file). */
typedef enum ca_arena_backing {
    CA_ARENA_BACKING_HEAP = 0, /* malloc-backed source (libsource heap source) */
    CA_ARENA_BACKING_ANON = 1  /* anonymous mmap (libsource mmap source) */
} ca_arena_backing;

/* How ca_arena_open_file maps an existing file. */
typedef enum ca_arena_mode {
    CA_ARENA_READ_WRITE = 0,   /* shared mapping; flush persists */
    CA_ARENA_READ_ONLY = 1,    /* PROT_READ; every write through the API: EROFS */
    CA_ARENA_COPY_ON_WRITE = 2 /* private mapping: changes never reach the file */
} ca_arena_mode;

/*
 * Which memory an allocation tries first (a runtime option, not stored in
 * files). Either way the arena fails only when no free memory holds the block.
 *   REUSE_FIRST  freed memory first (the thread's cache, then the shared free
 *                list), fresh memory from the cursor after. The cursor grows
 *                only past the live peak: the smallest footprint (pages
 *                touched, file blocks written), at the price of a look at the
 *                free list when it is not empty.
 *   FRESH_FIRST  the cursor first (rarena-allocator's order); freed memory is
 *                used once the cursor reaches the capacity. The fastest
 *                allocation until then (no list is looked at), but the whole
 *                capacity is touched before any reuse, and the free memory
 *                that gathers meanwhile is reused in whatever pieces it was
 *                freed (more fragmentation when sizes vary).
 */
typedef enum ca_arena_order {
    CA_ARENA_REUSE_FIRST = 0, /* default */
    CA_ARENA_FRESH_FIRST = 1
} ca_arena_order;

/* What was wrong with a file (or OK). */
typedef enum ca_arena_error {
    CA_ARENA_OK = 0,
    CA_ARENA_E_SYSTEM,         /* a system call failed: the errno returned says which */
    CA_ARENA_E_EMPTY,          /* zero-length file */
    CA_ARENA_E_SHORT_HEADER,   /* file shorter than the header page */
    CA_ARENA_E_MAGIC,          /* wrong magic: not an arena file */
    CA_ARENA_E_LAYOUT_VERSION, /* unsupported layout version */
    CA_ARENA_E_CHECKSUM,       /* header checksum mismatch */
    CA_ARENA_E_STATE,          /* header state word damaged */
    CA_ARENA_E_RESERVED,       /* reserved header bytes not zero */
    CA_ARENA_E_FIELD,          /* a header field out of range */
    CA_ARENA_E_USER_VERSION,   /* user version mismatch */
    CA_ARENA_E_FREELIST_KIND,  /* free-list kind mismatch */
    CA_ARENA_E_OFFSET_WIDTH,   /* offset width mismatch */
    CA_ARENA_E_TRUNCATED,      /* file shorter than its recorded capacity */
    CA_ARENA_E_FREELIST,       /* recorded free list damaged */
    CA_ARENA_E_EXISTS,         /* create: the file exists (and REPLACE not given) */
    CA_ARENA_E_OPTIONS,        /* bad options */
    CA_ARENA_E_COUNT
} ca_arena_error;

/* Flags of ca_arena_options.flags. */
#define CA_ARENA_REPLACE 0x1u /* ca_arena_create_file: replace an existing file */

/*
 * Options of every create / open. All-zero (ca_arena_options_init, or NULL
 * options) is the defaults: every field whose comment gives a default uses it
 * where the field is 0. For ca_arena_open_file the layout fields are
 * expectations (the file's own values are used): user_version must match,
 * freelist must match unless DEFAULT or ANY, offset_bits must match unless
 * 0; min_segment, max_retries, auto_compact, local_cache and order apply.
 * Zeros are resolved before anything is recorded: a file's header holds the
 * values used, never a 0 that means "default".
 */
typedef struct ca_arena_options {
    uint64_t capacity;          /* bytes of the whole region (header + user area + data);
                                   rounded up to the page size; 0: 1 MiB */
    ca_arena_freelist freelist; /* 0 (DEFAULT): OPTIMISTIC; open: the file's */
    unsigned offset_bits;       /* 32 or 64; 0: 64, and in open: any */
    uint32_t user_version;      /* stored in the header, checked on open (default 0) */
    size_t user_size;           /* bytes of the reserved user area (default 0) */
    size_t min_segment;         /* smallest free segment kept (a multiple of 16);
                                   0: 32. Smaller pieces are discarded */
    unsigned max_retries;       /* CAS attempts per phase before falling back; 0: 256 */
    size_t auto_compact;        /* free segments that trigger a compaction inside a free;
                                   the next trigger is at twice the segments left (amortised
                                   O(log n) per free); 0: 1024; CA_ARENA_AUTO_COMPACT_OFF:
                                   only ca_arena_compact */
    size_t local_cache;         /* bytes of freed blocks one thread may keep for itself
                                   (a thread cache: a chunk of the cursor and bins of
                                   freed blocks up to 4 KiB, served without atomics);
                                   0: 256 KiB; CA_ARENA_LOCAL_CACHE_OFF: no thread caches,
                                   every call works on the shared cursor and list */
    ca_arena_order order;       /* REUSE_FIRST (0, the default) or FRESH_FIRST */
    ca_arena_backing backing;   /* ca_arena_create only: HEAP (0, the default) or ANON */
    ca_source *source;          /* ca_arena_create: memory from here (not owned) instead
                                   of a source of `backing`; NULL: default */
    unsigned flags;             /* CA_ARENA_* */
    ca_fault *fault;            /* optional fault plan (libsource's ca_source_fault, core's
                                   ca_fault) for the file and default-source system calls
                                   (CA_SOURCE_FAULT_OPEN, FALLOCATE, MMAP) */
} ca_arena_options;

typedef struct ca_arena ca_arena;

/* ========================================================================
 * Create/destroy
 * ======================================================================== */

/**
 * ca_arena_options_init() - the defaults: all-zero (the same as NULL options).
 * @o: options to fill (not NULL)
 */
ca_inline void ca_arena_options_init(ca_arena_options *o) { memset(o, 0, sizeof *o); }

/**
 * ca_arena_create() - an arena in memory (heap or anonymous mapping).
 * @out: receives the arena (not NULL)
 * @o:   options, or NULL for the defaults
 *
 * The region comes from o->source when set (one obtain of the capacity,
 * page-aligned), else from a source of o->backing. O(1) plus the obtain.
 * Return: 0; EINVAL (bad options: offset bits, capacity too small or above
 * the 32-bit limit, min_segment, free-list kind, order, backing, flags);
 * ENOMEM; or the source's error. On failure nothing is created and
 * ca_last_error() names the bad option or the failed step.
 */
int ca_arena_create(ca_arena **out, const ca_arena_options *o);

/**
 * ca_arena_create_file() - create a file-backed arena.
 * @out:  receives the arena
 * @path: file to create (not NULL)
 * @o:    options, or NULL for the defaults
 * @why:  receives the detailed reason on failure (may be NULL)
 *
 * The file is created (0600), its blocks allocated (a full disk fails here,
 * never later with SIGBUS), mapped shared and a fresh header written and
 * synced. An existing file is an error (EEXIST) unless CA_ARENA_REPLACE.
 * Return: 0, EINVAL, EEXIST, ENOSPC, or the errno of open/fallocate/mmap.
 * On failure nothing is left at @path (nor beside it), and ca_last_error()
 * says "arena: create '<path>': <reason>".
 */
int ca_arena_create_file(ca_arena **out, const char *path, const ca_arena_options *o, ca_arena_error *why);

/**
 * ca_arena_open_file() - open an existing arena file.
 * @out:    receives the arena
 * @path:   the file
 * @mode:   READ_WRITE, READ_ONLY or COPY_ON_WRITE
 * @expect: expectations (user_version, freelist, offset_bits) and runtime
 *          options (min_segment, max_retries, auto_compact, local_cache,
 *          order); NULL or all-zero: user version 0, the file's kind and
 *          width, the default runtime options
 * @why:    receives the detailed reason on failure (may be NULL)
 *
 * The size is checked and the header page read with pread before anything
 * is mapped (no SIGBUS on a short file); both header copies, the state word,
 * every field and the recorded free list are validated. A header whose last
 * write was torn is recovered from the other copy. After a crash the cursor
 * of the last flush is recovered; when the free list may have changed since
 * that flush its bytes are counted as discarded instead of being reused.
 * A failed open never modifies the file. READ_WRITE of a file that was not
 * closed cleanly writes a fresh header at once. O(header + free list).
 * Return: 0; EINVAL (bad arguments); EBADMSG (damaged or mismatching file:
 * see *why); or the errno of open/fstat/pread/mmap. On failure
 * ca_last_error() says "arena: open '<path>': <reason>" (the reason of *why,
 * the failed call and its errno, or the bad option).
 */
int ca_arena_open_file(ca_arena **out, const char *path, ca_arena_mode mode, const ca_arena_options *expect,
                       ca_arena_error *why);

/**
 * ca_arena_flush() - persist the whole arena (file read-write mode).
 * @a: arena
 *
 * The shared bins are folded into the free list (the header records it),
 * then msync of the data below the cursor, a new header copy (next sequence
 * number) and the state word, each synced. Concurrent allocations continue
 * (they use the cursor); free-list changes wait for the flush to finish.
 * Heap and anonymous arenas: 0, nothing done.
 * Return: 0; EROFS (read-only or copy-on-write); or the errno of msync.
 */
int ca_arena_flush(ca_arena *a);

/**
 * ca_arena_flush_range() - as ca_arena_flush, syncing only [off, off + size)
 * of the data (plus the header); for callers that know what they changed.
 * Return: as ca_arena_flush; EINVAL when the range is outside the region.
 */
int ca_arena_flush_range(ca_arena *a, uint64_t off, size_t size);

/**
 * ca_arena_flush_tag() - as ca_arena_flush, and record @tag in the new header.
 * @a:   arena
 * @tag: any value; ca_arena_commit_tag() returns it after a reopen that
 *       recovers this flush (or a later one without a tag of its own)
 *
 * Lets a program tie its own records (in the user area, say) to a flush:
 * after a crash the recovered tag says which flush the file reflects.
 * Return: as ca_arena_flush.
 */
int ca_arena_flush_tag(ca_arena *a, uint64_t tag);

/**
 * ca_arena_close() - flush (read-write files), unmap and free the arena.
 * @a: arena; NULL is a no-op (returns 0)
 *
 * An attached listener hears destroyed() first, then removed() for the
 * region, before anything is flushed or unmapped.
 * Not concurrent with any other call on a.
 * Return: 0 or the flush's error (the arena is closed anyway).
 */
int ca_arena_close(ca_arena *a);

/**
 * ca_arena_strerror() - a one-line message for a ca_arena_error (the
 * reason alone; ca_last_error() after the failed call also names the file).
 * Return: a static string (never NULL; unknown codes have a message too).
 */
const char *ca_arena_strerror(ca_arena_error e);

/* ========================================================================
 * Allocation
 * ======================================================================== */

/**
 * ca_arena_alloc() - allocate a block and return its offset.
 * @a:     arena
 * @size:  bytes (0 is allowed: a unique 16-byte block)
 * @align: power of two <= CA_ARENA_MAX_ALIGN (smaller ones give 16)
 * @off:   receives the offset (never 0 on success)
 *
 * With thread caches (options.local_cache) and REUSE_FIRST: the thread's bin
 * of this size, its chunk, the shared bins of this size (a chain popped with
 * one CAS; else a block of a slightly larger size, split), the free list
 * (OPTIMISTIC: pop the head if it fits; PESSIMISTIC: best fit), then a new
 * chunk from the cursor; FRESH_FIRST takes chunk and cursor first. Without
 * caches the same minus bins and chunk.
 * When the cursor is exhausted the caller's cache goes back to the list, which
 * is compacted and searched (sleeping on its lock) before giving up; memory
 * in other threads' caches is not seen. Never waits for another thread's
 * free. O(1) from the cache; lock-free on the cursor path; O(free segments)
 * for PESSIMISTIC's best fit.
 * Return: 0; EINVAL (alignment); ENOMEM (no free memory holds the block,
 * size overflow, cursor CAS retries exhausted); EROFS (read-only arena).
 */
int ca_arena_alloc(ca_arena *a, size_t size, size_t align, uint64_t *off);

/**
 * ca_arena_free() - free a block.
 * @a:    arena
 * @off:  offset from ca_arena_alloc; 0 is a no-op
 * @size: the size given to ca_arena_alloc
 *
 * The block at the calling thread's chunk tail or at the cursor rewinds it;
 * otherwise the block goes to the thread's bin (up to 4 KiB; an overlong bin
 * or an overfull cache goes on to the shared bins, one CAS per bin), the free
 * list, or is discarded (NONE, or smaller than min_segment). A free from any
 * thread is valid. Lock-free, never waits; O(1) into a cache and the shared
 * bins, O(free segments) for an insertion into the sorted list.
 * Return: 0; EINVAL (offset out of range or misaligned); EROFS.
 */
int ca_arena_free(ca_arena *a, uint64_t off, size_t size);

/**
 * ca_arena_ptr() - the address of an offset in the current mapping.
 * Return: base + off, or NULL for 0 or an offset beyond the capacity.
 */
void *ca_arena_ptr(const ca_arena *a, uint64_t off);

/**
 * ca_arena_offset() - the offset of an address inside the mapping.
 * Return: the offset, or 0 when p is outside the region.
 */
uint64_t ca_arena_offset(const ca_arena *a, const void *p);

/**
 * ca_arena_user_area() - the reserved user area (persisted with the file).
 * @a:    arena
 * @size: receives its size (may be NULL)
 * Return: its address, or NULL when the size is 0. Read-only arenas map it
 * read-only: writing through the pointer faults.
 */
void *ca_arena_user_area(const ca_arena *a, size_t *size);

/**
 * ca_arena_compact() - fold the shared bins into the free list, merge
 * adjacent free segments and give the trailing ones back to the cursor.
 * Thread-safe; waits for the free list; O(n log n) in the free segments and
 * shared-bin blocks (an in-place merge sort of the list: no memory).
 * Return: 0 or EROFS.
 */
int ca_arena_compact(ca_arena *a);

/**
 * ca_arena_reset() - forget every allocation (cursor to the start, empty
 * free list, counters cleared). Not concurrent with any other call.
 * An attached listener hears reset() once the arena is empty (the region
 * stays: no removed()).
 * Return: 0 or EROFS.
 */
int ca_arena_reset(ca_arena *a);

/**
 * ca_arena_allocator() - the arena as a ca_allocator (pointers instead of
 * offsets). Thread-safe; sized free only (no CA_CAP_UNSIZED); resize grows
 * and shrinks in place at the cursor, moves elsewhere. On a read-only arena
 * alloc fails with EROFS.
 *
 * Listener (ca_listen): the arena reports one range, the whole region as it
 * holds it: [base, base + size) with base = the region's start (offset 0:
 * header page and user area included; blocks come from
 * [ca_arena_data_start, ca_arena_capacity)) and size = the capacity, or the
 * bytes obtained from the source when its granule rounds the capacity up.
 * Page-aligned and whole pages for every backing (heap memory is obtained
 * with posix_memalign). added() on attach (a refusal leaves nothing
 * attached and ca_listen returns its errno), removed() on detach;
 * reset() after ca_arena_reset; destroyed() first thing in ca_arena_close,
 * then removed(). The arena never grows, so there are no other events.
 * Attach and detach may run while other threads allocate and free (those
 * calls never touch the listener); concurrent ca_listen calls are
 * serialised (one attach wins, the others get EBUSY); they must not run
 * concurrently with ca_arena_reset or ca_arena_close.
 * Return: the embedded allocator (valid while a is open).
 */
ca_allocator *ca_arena_allocator(ca_arena *a);

/* ========================================================================
 * Introspection
 * ======================================================================== */

/**
 * ca_arena_stats() - fill *out (thread-safe snapshot, O(1)).
 * Fields: bytes_in_use (block bytes), bytes_reserved = bytes_committed =
 * capacity, peak_in_use, allocs, frees, failures; counters "cursor",
 * "discarded", "free_bytes", "free_segments", "pending_segments",
 * "cas_retries", "rewinds", "flushes", "cached_bytes", "chunk_bytes",
 * "caches", "list_steps" (nodes of the sorted free list visited by walks,
 * sorts and merges: the list's work), "shared_bin_bytes" (in the shared
 * bins: blocks of up to 4 KiB that thread caches gave back, by size),
 * "bin_folds" (times the shared bins were folded into the sorted list).
 * Takes the process-wide cache registry lock.
 * Return: 0.
 */
int ca_arena_stats(const ca_arena *a, ca_stats *out);
/* The counters it sets, in order (an X-macro list: X(name) per counter;
 * core.h, Statistics). */
/* clang-format off */
#define CA_ARENA_COUNTERS(X) \
    X(cursor) X(discarded) X(free_bytes) X(free_segments) X(pending_segments) X(cas_retries) \
    X(rewinds) X(cached_bytes) X(chunk_bytes) X(caches) X(flushes) X(list_steps) X(shared_bin_bytes) \
    X(bin_folds)
/* clang-format on */

/**
 * ca_arena_check() - walk every invariant: cursor inside the data range;
 * free segments on the grain, inside [data, cursor), sorted per the kind,
 * not overlapping each other or the blocks of the thread caches and shared
 * bins; counters consistent (in use + free + pending + shared bins +
 * discarded + caches == cursor - data start). Needs the caller to be the
 * only user.
 * Return: NULL when consistent, else a static message naming the violation.
 */
const char *ca_arena_check(const ca_arena *a);

/* Region facts. */
uint64_t ca_arena_capacity(const ca_arena *a);
uint64_t ca_arena_cursor(const ca_arena *a);     /* allocated cursor (atomic read) */
uint64_t ca_arena_data_start(const ca_arena *a); /* first allocatable offset */
uint64_t ca_arena_flush_seq(const ca_arena *a);  /* sequence number of the last header written */
uint64_t ca_arena_commit_tag(const ca_arena *a); /* tag of the last header written or recovered */
ca_arena_freelist ca_arena_freelist_kind(const ca_arena *a);
unsigned ca_arena_offset_bits(const ca_arena *a);
uint32_t ca_arena_user_version(const ca_arena *a);
bool ca_arena_read_only(const ca_arena *a);

#ifdef __cplusplus
}
#endif

#endif /* CTXALLOC_ARENA_H */
