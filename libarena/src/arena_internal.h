/* SPDX-License-Identifier: MIT */
/*
 * Private parts of libarena, shared by its .c files and the invariant tests:
 * the process-side arena object, the on-disk header and the tagged words.
 *
 * Read first: struct ca_arena below (who touches what), then alloc.c.
 */
#ifndef CA_ARENA_INTERNAL_H
#define CA_ARENA_INTERNAL_H

#include <ctxalloc/arena.h>

/*
 * CA_ARENA__DROP_TAG (build flag, tests only): the free-list head word loses
 * its generation counter (it keeps only a busy bit) and a yield widens the
 * window between reading the head and swapping it. This reintroduces the
 * ABA problem on purpose so that a stress test can show it is caught.
 */
#ifndef CA_ARENA__DROP_TAG
#define CA_ARENA__DROP_TAG 0
#endif

/* ------------------------------------------------------------------------
 * On-disk layout (native byte order, x86-64)
 *
 *   [0, 128)        header copy 0      (slot of even sequence numbers)
 *   [512, 640)      header copy 1      (slot of odd sequence numbers)
 *   [1024, 1032)    state word
 *   rest of [0, 4096) zero
 *   [4096, 4096 + user_size)  user area
 *   [data_off, capacity)      blocks; data_off = align_up(4096 + user_size, 64)
 *
 * Each copy is checksummed (FNV-1a 64 over its first 120 bytes). The copies
 * sit in different 512-byte sectors, so a torn write damages at most one.
 * The state word holds x | ~x << 32 with x = seq_low29 << 3 | phase:
 *   CLEAN    the copy of `seq` describes the file; the other copy (seq - 1)
 *            is intact too;
 *   DIRTY    free-list nodes may have changed since the copy of `seq` was
 *            written: its free list is not trusted on reopen;
 *   WRITING  the copy of `seq` is being written: if it fails its checksum
 *            the write was torn and the copy of seq - 1 is used.
 * CLEAN(seq) and DIRTY(seq) are stored only while both copies (seq and
 * seq - 1) are intact: after a torn write, nothing but write_header (which
 * stores WRITING first, then rewrites the torn slot) touches the state word.
 * A single aligned 8-byte store cannot be torn, and one flipped byte breaks
 * the complement, so the state word needs no further checksum.
 * ------------------------------------------------------------------------ */

#define CA_ARENA__MAGIC      "CTXARENA"
#define CA_ARENA__COPY0      0u
#define CA_ARENA__COPY1      512u
#define CA_ARENA__STATE      1024u
#define CA_ARENA__DATA_ALIGN 64u

#define CA_ARENA__CLEAN   0u
#define CA_ARENA__DIRTY   1u
#define CA_ARENA__WRITING 2u

typedef struct ca_arena__disk {
    char magic[8];           /* CA_ARENA__MAGIC, no NUL */
    uint32_t layout_version; /* CA_ARENA_LAYOUT_VERSION */
    uint32_t user_version;
    uint32_t freelist;    /* CA_ARENA__DISK_*: the kind's own encoding */
    uint32_t offset_bits; /* 32 or 64 */
    uint64_t capacity;    /* bytes of the file; page multiple */
    uint64_t user_size;   /* bytes of the user area at CA_ARENA_HEADER_SIZE */
    uint64_t data_off;    /* align_up(4096 + user_size, 64) */
    uint64_t min_segment; /* as created (informational; runtime option wins) */
    uint64_t cursor;      /* allocated cursor, data_off <= cursor <= capacity */
    uint64_t free_head;   /* first free segment, 0 = none */
    uint64_t free_bytes;  /* sum of free segment sizes */
    uint64_t free_count;  /* number of free segments */
    uint64_t discarded;   /* bytes below the cursor neither in use nor free */
    uint64_t seq;         /* sequence number; copy slot = seq & 1 */
    uint64_t commit_tag;  /* the caller's tag of this flush (ca_arena_flush_tag) */
    uint64_t reserved;    /* zero */
    uint64_t checksum;    /* FNV-1a 64 of the bytes above */
} ca_arena__disk;
CA_STATIC_ASSERT(sizeof(ca_arena__disk) == 128, "header copy is 128 bytes");

/* The free-list kind in the header: the layout's encoding, fixed since
 * version 1 whatever the values of ca_arena_freelist. */
#define CA_ARENA__DISK_NONE        0u
#define CA_ARENA__DISK_OPTIMISTIC  1u
#define CA_ARENA__DISK_PESSIMISTIC 2u
CA_STATIC_ASSERT(CA_ARENA_FREELIST_NONE == 1 && CA_ARENA_FREELIST_OPTIMISTIC == 2 &&
                     CA_ARENA_FREELIST_PESSIMISTIC == 3,
                 "the kinds map to the header's encoding by an offset of one");
/* A resolved kind (NONE, OPTIMISTIC or PESSIMISTIC) as the header stores it. */
ca_force_inline uint32_t ca_arena__kind_to_disk(ca_arena_freelist k) { return (uint32_t)k - 1u; }
/* A header's kind (checked: <= CA_ARENA__DISK_PESSIMISTIC) as the enum. */
ca_force_inline ca_arena_freelist ca_arena__kind_from_disk(uint32_t v) { return (ca_arena_freelist)(v + 1u); }

uint64_t ca_arena__checksum(const ca_arena__disk *d);
uint64_t ca_arena__state_word(uint64_t seq, unsigned phase);
/* Decode a state word; false when damaged. */
bool ca_arena__state_decode(uint64_t w, uint64_t *seq_low, unsigned *phase);

/* ------------------------------------------------------------------------
 * Free-list nodes live in the free memory itself, at the segment's offset:
 *   64-bit offsets: uint64_t size, uint64_t next
 *   32-bit offsets: uint32_t size, uint32_t next
 * next == 0 ends a list. Nodes are written only by the holder of the list
 * token (or by a thread pushing its own segment on the pending stack);
 * readers outside the token (the optimistic pop) validate what they read
 * with the tagged CAS.
 * ------------------------------------------------------------------------ */

/* A tagged word: an offset and a generation. In the 64-bit layout it is one
 * unsigned __int128 (cmpxchg16b); in the 32-bit layout one uint64_t
 * (offset | gen << 32). For the list head an odd gen means "token held":
 * the holder may rewrite any node; others may not pop. */
struct ca_arena;
typedef struct ca_arena__tw {
    uint64_t off, gen;
} ca_arena__tw;

enum { CA_ARENA__BACK_SOURCE = 0, CA_ARENA__BACK_FILE = 1 };

/* Counters of the fast paths, sharded so that threads do not share a cache
 * line: a thread adds to the shard of its slot (threads numbered in order of
 * first use, modulo CA_ARENA__SHARDS), with relaxed atomic adds since
 * several threads may share a slot. in_use is a wrapping sum of deltas (a
 * shard goes "negative" when its threads free what others allocated); the
 * sum over the shards is exact when no call is in flight. */
#define CA_ARENA__SHARDS 16
typedef struct ca_arena__shard {
    __attribute__((aligned(64))) uint64_t allocs;
    uint64_t frees, in_use, rewinds, retries, failures;
    uint64_t sbin_bytes, sbin_blocks; /* taken from the shared bins by folds, given by caches
                                         that stopped serving (wrapping deltas, as in_use) */
} ca_arena__shard;
CA_STATIC_ASSERT(sizeof(ca_arena__shard) == 64, "a shard is one cache line");

/* ------------------------------------------------------------------------
 * Thread caches (cache.c): the per-thread shards that merge.
 *
 * Each thread that allocates from an arena gets a cache of its own, made on
 * its first call and returned to the arena when the thread exits or the
 * arena closes. It holds
 *   - a chunk [chunk_cur, chunk_end) reserved from the shared cursor with one
 *     CAS: allocation bumps chunk_cur, a free of the block that ends at
 *     chunk_cur moves it back (a local tail rewind);
 *   - bins: LIFO lists of freed blocks of one size each (16 B .. 4 KiB),
 *     linked through the blocks' first 8 bytes (an offset, 0 ends a bin).
 * Neither is shared: the owner thread touches them without atomics. A bin
 * longer than CA_ARENA__BIN_MAX, or a cache holding more than local_cache
 * bytes, is pushed as it is onto the shared bin of its size (below) with one
 * tagged CAS; a thread whose bin is empty pops a chain from there.
 *
 * Invariants (when no call is in flight), for every cache c of arena a:
 *   data_off <= chunk_cur <= chunk_end <= cursor, or chunk_cur == chunk_end;
 *   cached == sum of the sizes of the bin blocks; bin_n[i] == length of bin i;
 *   every bin block lies in [data_off, cursor), on the grain, outside every
 *   chunk, free segment and other block;
 *   sum(in_use) + free + pending + discarded + sum(cached)
 *     + sum(chunk_end - chunk_cur) + shared bins == cursor - data_off.
 * ------------------------------------------------------------------------ */
#define CA_ARENA__BINS      256                  /* bin i: blocks of (i + 1) * 16 bytes */
#define CA_ARENA__BIN_MAX   64                   /* blocks in one bin before it is flushed */
#define CA_ARENA__CHUNK_MAX ((uint64_t)64 << 10) /* bytes reserved at once, at most */
#define CA_ARENA__TL_SLOTS  8                    /* caches one thread keeps (arenas it uses at once) */

typedef struct ca_arena__cache ca_arena__cache;
struct ca_arena__cache {
    /* --- owner thread only; read by stats / check with relaxed loads ---- */
    uint64_t chunk_cur, chunk_end;           /* the reserved range not yet handed out */
    uint64_t cached;                         /* bytes in the bins */
    uint64_t allocs, frees, in_use, rewinds; /* counters (in_use: wrapping delta) */
    uint64_t sbin_bytes, sbin_blocks;        /* pushed onto the shared bins minus popped (wrapping) */
    uint64_t sbin_unpub;                     /* the part of sbin_bytes not yet added to ca_arena.sbin_approx */
    uint64_t streak;                         /* owner only: bytes pushed onto the shared bins since the
                                                thread's last allocation */
    uint64_t bin[CA_ARENA__BINS];            /* head offset of each bin, 0 = empty */
    uint16_t bin_n[CA_ARENA__BINS];          /* blocks in each bin */
    /* --- under the registry lock (cache.c) ---------------------------- */
    ca_arena *arena;       /* NULL once the arena closed (orphan: the owner unmaps it) */
    ca_arena__cache *next; /* the arena's list of caches */
};
CA_STATIC_ASSERT(sizeof(ca_arena__cache) <= 4096, "a cache is one page");

/* The calling thread's table of caches: slot 0 is the most recently used. */
typedef struct ca_arena__tl_slot {
    uint64_t id; /* ca_arena.id of the arena, 0 = empty */
    ca_arena__cache *c;
} ca_arena__tl_slot;
extern _Thread_local ca_arena__tl_slot ca_arena__tl[CA_ARENA__TL_SLOTS];

/* The calling thread's cache for a, made on first use (a full table gives
 * its least recently used cache back first); NULL when a keeps no caches
 * (CA_ARENA_LOCAL_CACHE_OFF, read-only) or no page could be mapped for one. */
ca_arena__cache *ca_arena__cache_slow(ca_arena *a);
/* Give a cache's bins and chunk back to the arena (owner, or anyone while
 * the owner is outside every call). */
void ca_arena__cache_drain(ca_arena *a, ca_arena__cache *c);
/* Flush bin i of c to the shared pending stack (owner). */
void ca_arena__bin_flush(ca_arena *a, ca_arena__cache *c, unsigned i);
/* Arena-wide cache walks under the registry lock (single caller for close,
 * reset and check; stats any time). */
void ca_arena__caches_close(ca_arena *a);
void ca_arena__caches_reset(ca_arena *a);
typedef struct ca_arena__cache_sums {
    uint64_t allocs, frees, in_use, rewinds, cached, chunk, caches, blocks, sbin_bytes, sbin_blocks;
} ca_arena__cache_sums;
void ca_arena__caches_sum(const ca_arena *a, ca_arena__cache_sums *s);
/* Call fn on every bin block and every chunk remainder (check). */
void ca_arena__caches_walk(const ca_arena *a, void (*fn)(void *ctx, uint64_t off, uint64_t size), void *ctx);
/* Push a thread bin's chain (first block, count blocks of bin i's size, linked
 * through their first word) onto shared bin i (alloc.c). */
void ca_arena__sbin_push(ca_arena *a, ca_arena__cache *c, unsigned i, uint64_t first, uint64_t count);
/* Add a cache's unpublished shared-bin delta to sbin_approx. */
void ca_arena__sbin_publish(ca_arena *a, ca_arena__cache *c);
/* Give [off, off + size) back to the shared list (or count it discarded). */
void ca_arena__give_back(ca_arena *a, uint64_t off, uint64_t size);

/* Per-thread shard and the sum of one field over the shards (alloc.c). */
ca_arena__shard *ca_arena__my_shard(ca_arena *a);
#define CA_ARENA__SUM(a, field)                                             \
    __extension__({                                                         \
        uint64_t s_ = 0;                                                    \
        for (unsigned i_ = 0; i_ < CA_ARENA__SHARDS; i_++)                  \
            s_ += __atomic_load_n(&(a)->shard[i_].field, __ATOMIC_RELAXED); \
        s_;                                                                 \
    })

/* ------------------------------------------------------------------------
 * Shared bins (alloc.c): beside the sorted list, one lock-free stack per
 * size class of the thread bins (bin i: blocks of (i + 1) * 16 bytes). What
 * a thread cache gives back (an overlong bin, an overfull cache, a thread's
 * exit) is pushed here as the chain it is, with one tagged CAS; a thread
 * whose own bin of a size is empty pops one chain (one tagged CAS) and
 * serves the next allocations of that size from it. Nothing is sorted or
 * walked on either side: O(1) per chain, and no lock.
 *
 * The bins come in CA_ARENA__SBIN_SHARDS sets: a thread pushes onto the set
 * of its slot and pops from it first, then from the others (so memory one
 * thread frees serves any other), so that two threads do not pass cache
 * lines back and forth on every push and pop.
 *
 * A chain in the free memory (every block has at least 16 bytes):
 *   word 0 (uint64_t) of each block: the next block of the chain, 0 ends it
 *     (the thread bins' own link: a chain moves between a thread bin and a
 *     shared bin without being rewritten);
 *   word 1 (uint64_t) of a chain's first block: the first block of the next
 *     chain on the stack, 0 ends the stack.
 * top is the tagged word {first block of the top chain, generation}; every
 * push and pop adds 1 to the generation, so a pop whose read of word 1 is
 * stale (that chain was popped, and pushed back with another below it: ABA)
 * fails its CAS. The pop reads word 1 without owning the block (a
 * deliberate race validated by that CAS, as in the optimistic list pop).
 * Modelled in tests/model/arena_bins.pml.
 *
 * The shared bins live in the process only; the file records the sorted
 * list. The list token's holder folds them into the list (every chain taken
 * with one CAS per bin, then sorted in): before a flush writes a header, in
 * a compaction, when the cursor is exhausted, when a thread about to take
 * fresh memory (REUSE_FIRST) finds them holding more than three quarters of
 * the memory below the cursor, and when one thread's frees push more than
 * CA_ARENA__STREAK caches' worth in a row with no allocation between (memory
 * freed in bulk comes back as merged runs, not block by block).
 *
 * Counters: the cache that pushes or pops counts the chain in its own
 * sbin_bytes / sbin_blocks (plain stores: no atomic on the shared bins' fast
 * path), folds subtract in a shard; their sum over caches and shards is
 * exact when no call is in flight. sbin_approx, for the fold trigger only,
 * gets each cache's delta once it reaches CA_ARENA__SBIN_PUBLISH bytes.
 *
 * Invariants (no call in flight): a block of bin i has (i + 1) * 16 bytes,
 * at least min_segment; it lies in [data_off, cursor), on the grain,
 * overlapping nothing else; the sums of sbin_bytes and sbin_blocks over the
 * caches and shards are the bytes and blocks of the walk.
 * ------------------------------------------------------------------------ */
#define CA_ARENA__SBIN_PUBLISH ((uint64_t)64 << 10)
#define CA_ARENA__SBIN_SHARDS  4 /* sets of shared bins; a thread pushes to its own (slot % 4) */
#define CA_ARENA__SBIN_NEAR    8 /* larger sizes an allocation may split (alloc.c, sbin_near) */
#define CA_ARENA__STREAK       4 /* caches' worth pushed by frees in a row that triggers a fold */
typedef struct ca_arena__sbin {
    __attribute__((aligned(16))) union {
        unsigned __int128 w; /* {off, gen}: one 16-byte CAS */
        uint64_t half[2];    /* [0] off, [1] gen: plain 8-byte loads (no locked load) */
    } top;
} ca_arena__sbin;

/*
 * The arena object (process memory, never in the mapping: the live words
 * are written with 16-byte atomics, which fault on a read-only page).
 *
 * Invariants (when no operation is in flight):
 *   data_off <= cursor <= capacity;
 *   every free / pending segment lies in [data_off, cursor), on the grain,
 *   size >= max(min node, 16), disjoint from each other;
 *   in_use + free_bytes + pending_bytes + discarded + thread caches + shared
 *   bins == cursor - data_off;
 *   the free list is sorted: OPTIMISTIC by size descending, PESSIMISTIC by
 *   size ascending, equal sizes newest first; NONE keeps it empty.
 */
struct ca_arena {
    ca_allocator base; /* first member; ops = arena ops (read-only) */
    /* --- set at create/open, read-only afterwards ----------------------- */
    unsigned char *mem;    /* the region (mapping or source memory) */
    uint64_t capacity;     /* bytes of the region */
    uint64_t data_off;     /* first allocatable offset */
    uint64_t user_size;    /* user area at CA_ARENA_HEADER_SIZE */
    uint64_t min_segment;  /* free pieces below this are discarded */
    unsigned max_retries;  /* CAS attempts per phase */
    uint64_t auto_compact; /* options.auto_compact resolved (0: CA_ARENA_AUTO_COMPACT_OFF) */
    ca_arena_freelist kind;
    unsigned wide; /* 1: 64-bit offsets */
    uint32_t user_version;
    int backing;       /* CA_ARENA__BACK_* */
    int mode;          /* ca_arena_mode for files; READ_WRITE for memory */
    int fd;            /* file descriptor, -1 for memory */
    ca_source *src;    /* source the memory came from (BACK_SOURCE) */
    void *own_src;     /* default source owned by the arena, or NULL */
    int own_kind;      /* which default source own_src is (arena.c) */
    uint64_t obtained; /* bytes obtained from src */
    ca_fault *fault;

    uint64_t id;               /* unique per process, never reused; 0: no thread caches */
    uint64_t local_cache;      /* options.local_cache resolved: bytes a thread cache may hold
                                (0: CA_ARENA_LOCAL_CACHE_OFF) */
    uint64_t chunk;            /* bytes a cache reserves from the cursor at once (0: none) */
    ca_arena_order order;      /* options.order */
    ca_arena__cache *caches;   /* every live cache (registry lock, cache.c) */
    pthread_mutex_t list_lock; /* held by the token holder: waiters sleep, never spin */

    /* --- hot words, each on its own line ------------------------------- */
    __attribute__((aligned(64))) uint64_t cursor;           /* atomic, any thread */
    __attribute__((aligned(64))) unsigned __int128 head128; /* tagged head (wide), atomic */
    uint64_t head64;                                        /* tagged head (narrow), atomic */
    __attribute__((aligned(64))) unsigned __int128 pend128; /* pending stack (wide), atomic */
    uint64_t pend64;                                        /* pending stack (narrow), atomic */
    uint64_t max_end;    /* token holder only: >= the end of every listed segment */
    uint64_t compact_at; /* token holder only: list length that triggers a compaction */
    uint64_t list_steps; /* token holder adds (relaxed atomic): nodes of the list visited */
    uint64_t bin_folds;  /* token holder adds (relaxed atomic): shared bins folded into the list */
    __attribute__((aligned(64))) uint64_t sbin_approx; /* atomic: bytes in the shared bins, give or
                                                         take SBIN_PUBLISH per cache (a hint) */

    /* --- shared bins: set s at [s * CA_ARENA__BINS], a 4 KiB run each ---- */
    __attribute__((aligned(64))) ca_arena__sbin sbin[CA_ARENA__SBIN_SHARDS * CA_ARENA__BINS];

    /* --- counters ------------------------------------------------------- */
    ca_arena__shard shard[CA_ARENA__SHARDS];    /* summed by stats and check */
    __attribute__((aligned(64))) uint64_t peak; /* atomic: cursor high-water mark - data_off */
    uint64_t flushes;                           /* atomic */
    uint64_t discarded;                         /* bytes lost to padding, small pieces, NONE frees */
    uint64_t free_bytes;                        /* in the sorted list (token holder writes) */
    uint64_t free_count;
    uint64_t pending_bytes; /* on the pending stack */
    uint64_t pending_count;

    /* --- files ---------------------------------------------------------- */
    pthread_mutex_t file_lock; /* orders the state word and header writes */
    uint64_t seq;              /* sequence number of the last header copy (file_lock) */
    uint64_t commit_tag;       /* tag of the last header copy (file_lock) */
    int dirty;                 /* atomic; written under file_lock: state word is DIRTY, or the
                                file was opened with its list untrusted (file.c) */

    /* --- listener (ca_listen on the allocator view) --------------------- */
    pthread_mutex_t listen_lock; /* serialises attach, detach and the reset / close events */
    ca_listener *listener;       /* the attached listener or NULL (listen_lock) */
};

/* The arena's mutexes, each taken with its rank of core's lock order
 * (checked under checks=on), in this order: the thread cache registry
 * (cache.c), the list token's list_lock, listen_lock, file_lock. The
 * registry is held while a cache drains into its arena, which may take the
 * token (a try) and then mark the file dirty; the token is held across
 * mark_dirty and across a flush's header write. listen_lock is held across
 * the listener's added() and removed(), so those may take only locks
 * ranked above it. */
static inline void ca_arena__lock(pthread_mutex_t *m, unsigned rank)
{
    (void)ca_mutex_lock_ranked(m, rank, "arena");
}

static inline void ca_arena__unlock(pthread_mutex_t *m, unsigned rank) { (void)ca_mutex_unlock_ranked(m, rank); }

/* Tagged-word access (alloc.c). which: 0 head, 1 pending. */
ca_arena__tw ca_arena__tw_load(ca_arena *a, int which);
bool ca_arena__tw_cas(ca_arena *a, int which, ca_arena__tw expect, ca_arena__tw desired);
void ca_arena__tw_store(ca_arena *a, int which, ca_arena__tw v);

/* Node access (alloc.c). */
void ca_arena__node_get(const ca_arena *a, uint64_t off, uint64_t *size, uint64_t *next);
void ca_arena__node_set(ca_arena *a, uint64_t off, uint64_t size, uint64_t next);

/* The list token: list_lock plus the odd generation in the head word (the
 * mark lock-free poppers see). tries != 0: only if list_lock is free now
 * (never waits); 0: sleep on list_lock until it is free. Release with a new
 * head. */
bool ca_arena__token_take(ca_arena *a, unsigned tries, ca_arena__tw *held);
void ca_arena__token_release(ca_arena *a, ca_arena__tw held, uint64_t new_head);
/* Under the token: move the pending stack into the sorted list. */
uint64_t ca_arena__drain_pending(ca_arena *a, uint64_t head);
/* Under the token: move every shared bin into the sorted list. */
uint64_t ca_arena__fold_bins(ca_arena *a, uint64_t head);

/* Where every create and open starts (arena.c), the one place zeros become
 * defaults: *out = *in (NULL: all-zero) with each 0 field replaced by its
 * default (arena.h); for open (expectations) a zero kind becomes ANY and a
 * zero width stays 0 (any). Then every field is checked. Returns NULL, or a
 * static text naming the first bad field. */
const char *ca_arena__resolve_options(const ca_arena_options *in, bool open, ca_arena_options *out);
/* Where every create starts (arena.c): the options resolved into *o (as
 * above), then the page-rounded capacity and the data offset; NULL, or a
 * static text naming the bad field or saying why they do not fit. */
const char *ca_arena__create_layout(const ca_arena_options *in, ca_arena_options *o, uint64_t *capacity,
                                    uint64_t *data_off);
/* Allocate and zero an arena object set up from resolved options (arena.c). */
ca_arena *ca_arena__new(const ca_arena_options *o);
/* Free the object only (arena.c). */
void ca_arena__delete(ca_arena *a);

/* Set up the process-side object once the region is known (alloc.c). */
void ca_arena__init_live(ca_arena *a, uint64_t cursor, uint64_t free_head, uint64_t free_bytes,
                         uint64_t free_count, uint64_t discarded);
/* Mark the file DIRTY before the first free-list change after a flush (file.c). */
void ca_arena__mark_dirty(ca_arena *a);
/* Write a header copy for the current state (file.c); token held; tag NULL
 * keeps the current commit tag. */
int ca_arena__write_header(ca_arena *a, uint64_t head, uint64_t sync_off, uint64_t sync_size, const uint64_t *tag);
/* Build the disk header of a fresh arena (file.c). */
void ca_arena__disk_fill(const ca_arena *a, ca_arena__disk *d, uint64_t cursor, uint64_t head, uint64_t seq);
/* Validate a header page (file.c): fills *d with the copy to use and
 * *trust_list with whether its free list may be used. */
ca_arena_error ca_arena__validate_page(const unsigned char *page, uint64_t file_size, ca_arena__disk *d,
                                       bool *trust_list, bool *clean);

/* The range the arena reports to a listener (alloc.c): the whole region as
 * held, [mem, mem + ca_arena__held(a)). */
uint64_t ca_arena__held(const ca_arena *a);
/* Close events (alloc.c): destroyed(), then removed() for the region; the
 * listener is detached. First thing in ca_arena_close. */
void ca_arena__listen_close(ca_arena *a);

extern const ca_allocator_ops ca_arena__ops;

#endif
