/* SPDX-License-Identifier: MIT */
/*
 * ctxalloc bump allocators.
 *
 *   ca_bump          single-thread bump over chained chunks (from a ca_source,
 *                    a ca_allocator, a ca_bump_shared, or one fixed region);
 *                    tip free / grow / shrink, reset, checkpoints, destructors
 *   ca_bump_shared   thread-safe bump: lock-free cursor (fetch-add / CAS), a
 *                    lock only to install a new chunk
 *   ca_bump_cache    warm chunks for task-based work (take a bump, put it back)
 *   placing values   memdup, strdup, strndup, CA_BUMP_NEW, an array builder
 *
 * Every bump is a ca_allocator (first member `base`), so it can be passed
 * wherever core.h's interface is expected. The inline ca_bump_alloc is the
 * fast path: align, add, compare, store.
 *
 * Valid C11 and C++ (no _Atomic: shared fields use __atomic builtins).
 */
#ifndef CTXALLOC_BUMP_H
#define CTXALLOC_BUMP_H

#include <ctxalloc/core.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ========================================================================
 * Constants and types
 * ======================================================================== */

/* Largest alignment any bump accepts; above it: NULL + EINVAL. */
#define CA_BUMP_ALIGN_MAX ((size_t)1 << 20)
/* Alignment the inline fast paths handle; chunk ends are multiples of it,
 * so an aligned-up cursor never passes the end. */
#define CA_BUMP_FAST_ALIGN ((size_t)16)
/* Default first chunk size and cap of regular chunk growth. */
#define CA_BUMP_MIN_CHUNK_DEFAULT ((size_t)4096)
#define CA_BUMP_MAX_CHUNK_DEFAULT ((size_t)64 << 20)
/* Bytes of the header at the start of every chunk the bump obtains. */
#define CA_BUMP_CHUNK_HEADER ((size_t)64)

/* A chunk. Its header lives at the start of the memory it describes (for a
 * caller's fixed buffer, inside the ca_bump). Fields belong to the owning
 * bump; for a ca_bump_shared, `cur` is atomic and everything else is written
 * once before the chunk is published. Internal: read by the inline paths. */
typedef struct ca_bump_chunk {
    struct ca_bump_chunk *prev; /* next older chunk of the same list */
    char *begin;                /* first usable byte (64-aligned for obtained chunks) */
    char *end;                  /* one past the last usable byte; multiple of CA_BUMP_FAST_ALIGN */
    size_t size;                /* bytes obtained, header included; 0: caller memory */
    uintptr_t cur;              /* shared: atomic cursor; local: cursor when retired */
} ca_bump_chunk;

typedef struct ca_bump_shared ca_bump_shared;
struct ca_bump__dtor;
struct ca_bump__mark_rec;

/* Options for growing bumps; NULL or zero fields mean the defaults. */
typedef struct ca_bump_options {
    size_t min_chunk; /* first chunk, bytes (default CA_BUMP_MIN_CHUNK_DEFAULT) */
    size_t max_chunk; /* cap of regular chunk growth (default CA_BUMP_MAX_CHUNK_DEFAULT) */
} ca_bump_options;

/* The defaults: all-zero (the same as passing NULL options). */
ca_inline void ca_bump_options_init(ca_bump_options *o) { memset(o, 0, sizeof *o); }

/*
 * Single-thread bump. Owner thread only, every field.
 *
 * Invariants:
 *   chunk == NULL  <=>  cur == end == NULL (nothing obtained yet)
 *   chunk->begin <= cur <= end == chunk->end
 *   regular chunks (chunk, chunk->prev, ...) are in allocation order, newest
 *   first; so are oversized chunks (big, big->prev, ...) and mark records;
 *   a mark record and a destructor record live in the bump's own memory, so
 *   rewinding past them frees them too.
 */
typedef struct ca_bump {
    ca_allocator base;
    char *cur;                       /* next free byte of the current chunk */
    char *end;                       /* chunk->end, cached for the fast path */
    ca_bump_chunk *chunk;            /* current (newest) regular chunk */
    ca_bump_chunk *big;              /* newest oversized chunk */
    struct ca_bump__dtor *dtors;     /* newest destructor record first */
    struct ca_bump__mark_rec *marks; /* newest live checkpoint first */
    ca_source *source;               /* backing: exactly one of source (&adaptor.base when
                                        made over an allocator), */
    ca_bump_shared *shared;          /*   shared, or none (fixed region) */
    ca_listener *listener;           /* attached by ca_bump_listen (events on every
                                        chunk obtained / released, reset, destroy); NULL: none */
    unsigned mode;                   /* internal CA_BUMP__MODE_* */
    size_t min_chunk, max_chunk;     /* regular chunk sizing */
    size_t total;                    /* cumulative bytes of regular chunks obtained */
    size_t obtain_max;               /* most the backing gives per chunk (a slot arena:
                                        one slot), learned from a refusal; 0: no limit */
    uint64_t serial;                 /* last checkpoint serial */
    uint64_t retired_used;           /* bytes used in retired regular chunks */
    uint64_t big_bytes;              /* bytes of oversized chunks held */
    uint64_t chunk_bytes;            /* bytes of regular chunks held */
    uint64_t peak;                   /* sampled on slow paths and stats */
    uint64_t allocs;                 /* through ca_alloc and the slow paths */
    uint64_t failures, tip_frees, noop_frees, wasted, resets, rewinds, chunks_obtained, dtors_run;
    ca_bump_chunk fixed;         /* header of a caller's fixed region */
    ca_allocator_source adaptor; /* ca_bump_init_allocator: the parent as a source */
} ca_bump;

/* ========================================================================
 * Create / destroy: ca_bump
 * ======================================================================== */

/**
 * ca_bump_init() - a growing bump taking chunks from a memory source.
 * @b:    the bump to initialise (caller storage).
 * @src:  the source (not owned; must outlive the bump). Chunks are
 *        multiples of the granule and of 64 bytes, aligned to both; from a
 *        page (CA_OWNER_PAGE) on, also whole pages aligned to a page. A source
 *        that gives one granule per obtain (a slot arena) is recognised by
 *        its EINVAL for a larger size: chunks are then one granule and a
 *        request that cannot fit one is NULL + ENOMEM.
 * @opt:  sizing, or NULL for the defaults.
 *
 * Nothing is obtained until the first allocation. O(1).
 * Return: 0, or EINVAL (NULL b/src, min_chunk > max_chunk).
 */
int ca_bump_init(ca_bump *b, ca_source *src, const ca_bump_options *opt);

/**
 * ca_bump_init_allocator() - a growing bump taking chunks from an allocator.
 * @b:      the bump.
 * @parent: the allocator chunks come from (not owned), e.g. ca_libc_allocator().
 * @opt:    sizing, or NULL.
 *
 * The same as ca_bump_init() over an allocator source (core.h's
 * ca_allocator_source) that the bump keeps inside itself, b->adaptor: one
 * code path for both backings. Chunks of a page (CA_OWNER_PAGE) or more are
 * requested as whole pages with page alignment (so the ownership map can
 * route them); smaller ones as 64-byte multiples aligned to 64. Freed with
 * the same size and alignment. A failed ca_alloc of the parent is ENOMEM.
 * The bump's source points into the bump: it must stay where it is.
 * Return: 0 or EINVAL.
 */
int ca_bump_init_allocator(ca_bump *b, ca_allocator *parent, const ca_bump_options *opt);

/**
 * ca_bump_init_fixed() - a bump over a caller's buffer; never grows.
 * @b:    the bump.
 * @buf:  the region (not owned; must outlive the bump).
 * @size: its size in bytes. The usable part is buf rounded up to 16 bytes
 *        and its end rounded down to 16.
 *
 * Exhaustion gives NULL + ENOMEM. O(1).
 * Return: 0, or EINVAL (NULL b or buf, or fewer than 16 usable bytes).
 */
int ca_bump_init_fixed(ca_bump *b, void *buf, size_t size);

/**
 * ca_bump_init_fixed_source() - a bump over one block of a source; never grows.
 * @b:    the bump.
 * @src:  the source; the block (size plus the 64-byte header, shaped as a
 *        chunk: granule multiples, whole pages from a page on) is obtained
 *        now and released by ca_bump_destroy().
 * @size: bytes wanted.
 *
 * Return: 0, EINVAL, ENOMEM (also when the source gives one granule per
 * obtain and the block needs more), or the source's error.
 */
int ca_bump_init_fixed_source(ca_bump *b, ca_source *src, size_t size);

/**
 * ca_bump_init_local() - a single-thread bump taking whole chunks from a
 * shared one, so that threads never contend per allocation.
 * @b:   the local bump (owned by one thread).
 * @sh:  the shared bump (must outlive @b; reset it only after every local
 *       from it is destroyed).
 * @opt: sizing, or NULL.
 *
 * Chunks go back to @sh's spare list on reset (all but the largest) and on
 * destroy (all), where other locals take them again. A chunk of a page or
 * more is carved from @sh as whole pages aligned to a page.
 * Return: 0 or EINVAL.
 */
int ca_bump_init_local(ca_bump *b, ca_bump_shared *sh, const ca_bump_options *opt);

/**
 * ca_bump_destroy() - run the destructors and return every chunk.
 * @b: the bump, or NULL (no-op). It may be initialised again afterwards.
 *
 * O(chunks + destructors).
 */
void ca_bump_destroy(ca_bump *b);

/**
 * ca_bump_reset() - free everything, keep the largest regular chunk.
 * @b: the bump.
 *
 * Runs the destructors newest-first, returns oversized chunks and every
 * regular chunk but the largest, and invalidates every checkpoint. Because
 * chunk sizes grow with the cumulative total, after a few cycles the kept
 * chunk serves a whole cycle. A fixed region is simply rewound.
 * O(chunks + destructors).
 */
void ca_bump_reset(ca_bump *b);

/**
 * ca_bump_reset_final() - as ca_bump_reset() but return every chunk.
 * @b: the bump; it stays usable (the next allocation obtains a chunk).
 */
void ca_bump_reset_final(ca_bump *b);

/* ========================================================================
 * Allocation: ca_bump
 * ======================================================================== */

/* Out-of-line part of ca_bump_alloc(): new chunks, big alignments, size 0,
 * oversized requests, errors. */
void *ca_bump__alloc_slow(ca_bump *b, size_t size, size_t align);

/**
 * ca_bump_alloc() - allocate size bytes aligned to align.
 * @b:     the bump.
 * @size:  bytes; 0 gives a unique pointer (one byte is reserved).
 * @align: a power of two <= CA_BUMP_ALIGN_MAX, else NULL + EINVAL.
 *
 * Inline fast path (align <= 16, room in the chunk): align, add, compare,
 * store. Otherwise a call to the slow path, which may obtain a chunk:
 * the next regular chunk has max(min_chunk, cumulative total) bytes (capped
 * by max_chunk); a request above half of that gets a chunk of its own.
 * Return: the block, or NULL + ENOMEM (exhausted, size overflow) / EINVAL.
 */
ca_force_inline ca_attr_malloc void *ca_bump_alloc(ca_bump *b, size_t size, size_t align)
{
    uintptr_t p = ((uintptr_t)b->cur + align - 1) & ~(uintptr_t)(align - 1);
    if (ca_likely(ca_is_pow2(align) && align <= CA_BUMP_FAST_ALIGN &&
                  size - 1 < (size_t)((uintptr_t)b->end - p))) {
        b->cur = (char *)(p + size);
        return (void *)p;
    }
    return ca_bump__alloc_slow(b, size, align);
}

/**
 * ca_bump_alloc_zeroed() - ca_bump_alloc() of n * size zero bytes.
 * Return: the block, or NULL + ENOMEM when n * size overflows or memory is
 * exhausted, EINVAL for a bad alignment.
 */
void *ca_bump_alloc_zeroed(ca_bump *b, size_t n, size_t size, size_t align);

/**
 * ca_bump_free() - sized free.
 * @b:    the bump.
 * @p:    a block of @b, or NULL (no-op).
 * @size: the size it was allocated (or last resized) with.
 *
 * When p is the newest block (the tip) the cursor moves back to p and the
 * bytes are reused by the next allocation; the newest oversized chunk is
 * returned at once. Any other free is a no-op counted in `noop_frees`
 * (memory comes back at reset). A block with a destructor is never freed
 * (it lives until reset or rewind). A pointer of another allocator: with
 * checks=on abort with a message; with checks=off a no-op. O(1) (checks=on:
 * O(chunks)).
 */
void ca_bump_free(ca_bump *b, void *p, size_t size);

/**
 * ca_bump_resize() - grow or shrink a block.
 * @b, @p, @old_size, @align: the block as allocated (p NULL: acts as alloc).
 * @new_size: bytes wanted (0 keeps one byte so the pointer stays unique).
 * @flags:    CA_RESIZE_IN_PLACE: never move.
 *
 * The tip grows and shrinks in place while the chunk has room (the cursor
 * really moves); a shrink elsewhere stays in place without reclaiming; a
 * grow elsewhere moves (alloc, copy, free). O(new_size) when moving.
 * Return: the block, or NULL + errno with the original valid and intact.
 */
void *ca_bump_resize(ca_bump *b, void *p, size_t old_size, size_t new_size, size_t align, unsigned flags);

/* ========================================================================
 * Checkpoints and destructors
 * ======================================================================== */

/* A checkpoint (caller storage; plain data). */
typedef struct ca_bump_mark {
    ca_bump *owner;
    struct ca_bump__mark_rec *rec; /* record in the bump's memory; compared, never read unless live */
    uint64_t serial;
} ca_bump_mark;

/**
 * ca_bump_save() - take a checkpoint.
 * @b: the bump.
 * @m: receives the mark.
 *
 * Stores a 48-byte record in the bump (so a mark is never confused with a
 * later one). Marks nest: rewinding to an outer mark drops inner ones.
 * Return: 0, or ENOMEM when the record cannot be allocated.
 */
int ca_bump_save(ca_bump *b, ca_bump_mark *m);

/**
 * ca_bump_rewind() - free everything allocated since the mark.
 * @b: the bump.
 * @m: a live mark of @b.
 *
 * Runs the destructors registered since the mark newest-first, returns
 * the chunks obtained since it, and moves the cursor back.
 * A mark of another bump, or one already rewound or reset: checks=on
 * aborts with a message; checks=off returns EINVAL and changes nothing.
 * O(chunks released + destructors + nesting depth).
 * Return: 0 or EINVAL.
 */
int ca_bump_rewind(ca_bump *b, const ca_bump_mark *m);

/* A destructor: obj is the object, arg the caller's argument. */
typedef void (*ca_bump_dtor_fn)(void *obj, void *arg);

/**
 * ca_bump_alloc_dtor() - allocate an object whose destructor runs on reset,
 * destroy, or a rewind past it, newest-first.
 * @b, @size, @align: as ca_bump_alloc().
 * @fn:  the destructor (NULL: EINVAL).
 * @arg: passed to fn.
 *
 * The object cannot be freed (ca_bump_free is a counted no-op on it); resize
 * it only with CA_RESIZE_IN_PLACE, since the destructor keeps the address.
 * Return: the object, or NULL + ENOMEM / EINVAL.
 */
void *ca_bump_alloc_dtor(ca_bump *b, size_t size, size_t align, ca_bump_dtor_fn fn, void *arg);

/* ========================================================================
 * Placing values
 * ======================================================================== */

/* Copy of n bytes of src (aligned to 16); NULL + errno on failure. */
void *ca_bump_memdup(ca_bump *b, const void *src, size_t n);
/* NUL-terminated copies (alignment 1). */
char *ca_bump_strdup(ca_bump *b, const char *s);
char *ca_bump_strndup(ca_bump *b, const char *s, size_t n);

/* A zero-filled object of type T; NULL + errno on failure. */
#define CA_BUMP_NEW(bump, T) ((T *)ca_bump_alloc_zeroed((bump), 1, sizeof(T), __alignof__(T)))
/* n zero-filled objects of type T (n * sizeof(T) overflow-checked). */
#define CA_BUMP_NEW_ARRAY(bump, T, n) ((T *)ca_bump_alloc_zeroed((bump), (n), sizeof(T), __alignof__(T)))

/*
 * Array builder: items of unknown count appended at the tip, so collecting
 * costs no copy while nothing else is allocated from the bump and the chunk
 * has room; when the chunk is full (or something else took the tip) the
 * items move once to a block of twice the capacity.
 *
 *   ca_bump_array a;
 *   ca_bump_array_begin(&a, &b, sizeof(int), __alignof__(int));
 *   while (more()) { int *slot = (int *)ca_bump_array_push(&a); *slot = next(); }
 *   size_t n; int *items = (int *)ca_bump_array_finish(&a, &n);
 */
typedef struct ca_bump_array {
    ca_bump *bump;
    char *data;   /* first item (NULL until the first push) */
    size_t count; /* items pushed */
    size_t cap;   /* items the block holds (== count while at the regular tip) */
    size_t size;  /* bytes per item (> 0) */
    size_t align; /* alignment of the items */
} ca_bump_array;

/**
 * ca_bump_array_begin() - start an array of items of @size bytes.
 * Return: 0, or EINVAL (size 0, bad alignment).
 */
int ca_bump_array_begin(ca_bump_array *a, ca_bump *b, size_t size, size_t align);

/* Out-of-line part of ca_bump_array_push(). */
void *ca_bump__array_push_slow(ca_bump_array *a);

/**
 * ca_bump_array_push() - room for one more item.
 * Return: the slot (uninitialised), or NULL + ENOMEM with the items pushed
 * so far intact. Inline while the array is at the tip and the chunk has room.
 */
ca_force_inline void *ca_bump_array_push(ca_bump_array *a)
{
    ca_bump *b = a->bump;
    char *tail = a->data + a->count * a->size;
    if (ca_likely(a->data && tail == b->cur && a->size <= (size_t)(b->end - tail))) {
        b->cur = tail + a->size;
        a->count++;
        return tail;
    }
    return ca_bump__array_push_slow(a);
}

/**
 * ca_bump_array_finish() - end the array.
 * @count: receives the number of items (may be NULL).
 * Return: the items (NULL when none were pushed); they stay allocated.
 */
void *ca_bump_array_finish(ca_bump_array *a, size_t *count);

/* ========================================================================
 * Shared bump (thread-safe)
 * ======================================================================== */

/*
 * Invariants:
 *   current: atomic pointer, published with release after its header is
 *   written; chunks are never released while the bump is in use, so a stale
 *   `current` stays readable. current->cur only grows except by a tip free
 *   (CAS from p + n back to p); it may pass end (a failed fetch-add), after
 *   which that chunk serves no one until replaced.
 *   big, spare, total, chunk list: under lock.
 */
struct ca_bump_shared {
    ca_allocator base;
    ca_bump_chunk *current; /* atomic, any thread: newest regular chunk */
    pthread_mutex_t lock;   /* installs chunks; guards the fields below */
    ca_bump_chunk *big;     /* oversized chunks, newest first */
    ca_bump_chunk *spare;   /* chunks returned by local bumps */
    ca_source *source;      /* backing (&adaptor.base when made over an allocator) */
    ca_listener *listener;  /* attached by ca_bump_shared_listen; NULL: none (lock) */
    size_t min_chunk, max_chunk;
    size_t total;             /* cumulative bytes of regular chunks */
    size_t obtain_max;        /* most the backing gives per chunk, learned from a
                                 refusal; 0: no limit (written under lock; atomic) */
    uint64_t chunk_bytes;     /* regular chunk bytes held (lock) */
    uint64_t big_bytes;       /* oversized chunk bytes held (lock) */
    uint64_t chunks_obtained; /* (lock) */
    uint64_t wasted;          /* tails of replaced chunks (lock) */
    uint64_t resets;          /* owner of reset only */
    uint64_t tip_frees, noop_frees, failures, spare_taken, spare_given; /* atomic, relaxed */
    ca_allocator_source adaptor; /* ca_bump_shared_init_allocator: the parent as a source */
};

/**
 * ca_bump_shared_init() / ca_bump_shared_init_allocator() - a thread-safe
 * bump backed by a source or an allocator (not owned). The allocator is
 * reached through an allocator source kept in s->adaptor, as for
 * ca_bump_init_allocator().
 * Return: 0, EINVAL, or the mutex initialisation error.
 */
int ca_bump_shared_init(ca_bump_shared *s, ca_source *src, const ca_bump_options *opt);
int ca_bump_shared_init_allocator(ca_bump_shared *s, ca_allocator *parent, const ca_bump_options *opt);

/**
 * ca_bump_shared_destroy() - return every chunk. Not concurrent with any
 * other call on @s; local bumps from it must be destroyed first.
 */
void ca_bump_shared_destroy(ca_bump_shared *s);

/**
 * ca_bump_shared_reset() - free everything, keep the largest regular chunk.
 * Not concurrent with any other call on @s; locals destroyed first.
 */
void ca_bump_shared_reset(ca_bump_shared *s);

void *ca_bump__shared_alloc_slow(ca_bump_shared *s, size_t size, size_t align);

/* Requests up to this size (rounded to 16) take the fetch-add path. */
#define CA_BUMP_SHARED_FAST_MAX ((size_t)1 << 16)

/**
 * ca_bump_shared_alloc() - allocate from any thread.
 * @size: bytes, rounded up to 16 inside the bump (0: unique pointer).
 * @align: power of two <= CA_BUMP_ALIGN_MAX.
 *
 * Fast path (align <= 16, size <= CA_BUMP_SHARED_FAST_MAX): one acquire
 * load and one fetch-add, no lock. Larger alignments use a CAS loop; a full
 * chunk is replaced under the lock. Lock-free except chunk installation.
 * Return: the block or NULL + ENOMEM / EINVAL.
 */
ca_force_inline ca_attr_malloc void *ca_bump_shared_alloc(ca_bump_shared *s, size_t size, size_t align)
{
    ca_bump_chunk *c = __atomic_load_n(&s->current, __ATOMIC_ACQUIRE);
    if (ca_likely(c != NULL && ca_is_pow2(align) && align <= CA_BUMP_FAST_ALIGN &&
                  size - 1 < CA_BUMP_SHARED_FAST_MAX)) {
        size_t n = (size + (CA_BUMP_FAST_ALIGN - 1)) & ~(CA_BUMP_FAST_ALIGN - 1);
        uintptr_t p = __atomic_fetch_add(&c->cur, n, __ATOMIC_ACQ_REL);
        if (ca_likely(p + n <= (uintptr_t)c->end))
            return (void *)p;
    }
    return ca_bump__shared_alloc_slow(s, size, align);
}

/**
 * ca_bump_shared_free() - sized free from any thread: the tip of the
 * current chunk is reclaimed with a CAS (cursor p + n -> p); the newest
 * oversized chunk is returned; anything else is a counted no-op.
 * Foreign pointers: checks=on aborts; off: no-op.
 */
void ca_bump_shared_free(ca_bump_shared *s, void *p, size_t size);

/**
 * ca_bump_shared_resize() - the tip grows or shrinks in place by CAS while
 * the chunk has room; otherwise as ca_bump_resize(). Any thread.
 * Return: the block or NULL + errno with the original intact.
 */
void *ca_bump_shared_resize(ca_bump_shared *s, void *p, size_t old_size, size_t new_size, size_t align,
                            unsigned flags);

/* ========================================================================
 * Cache of warm bumps (thread-safe)
 * ======================================================================== */

/*
 * For task-based work: each task takes a bump, uses it, and puts it back.
 * Put resets the bump and keeps its largest chunk in the cache while fewer
 * than max_warm are held (the rest are released); take gives a bump that
 * starts with a warm chunk when one is available.
 */
typedef struct ca_bump_cache {
    pthread_mutex_t lock;
    ca_bump_chunk *warm; /* warm chunks, under lock */
    size_t nwarm;        /* under lock */
    size_t max_warm;     /* fixed at init */
    size_t total_hint;   /* largest cumulative total of a bump put back (lock) */
    size_t obtain_max;   /* most the backing gives per chunk, as learned by a bump
                            put back; 0: no limit known (lock) */
    ca_source *source;   /* backing of every bump taken (&adaptor.base when made
                            over an allocator) */
    ca_bump_options opt;
    uint64_t takes, warm_hits, puts, released; /* under lock */
    ca_allocator_source adaptor;               /* ca_bump_cache_init_allocator: the parent as a source */
} ca_bump_cache;

/**
 * ca_bump_cache_init() / ca_bump_cache_init_allocator() - a cache over a
 * source or an allocator (not owned) keeping at most @max_warm chunks. The
 * allocator is reached through an allocator source kept in c->adaptor, the
 * source of every bump taken.
 * Return: 0, EINVAL, or the mutex initialisation error.
 */
int ca_bump_cache_init(ca_bump_cache *c, ca_source *src, const ca_bump_options *opt, size_t max_warm);
int ca_bump_cache_init_allocator(ca_bump_cache *c, ca_allocator *parent, const ca_bump_options *opt,
                                 size_t max_warm);

/* Release every warm chunk. Bumps taken must have been put back. */
void ca_bump_cache_destroy(ca_bump_cache *c);

/**
 * ca_bump_cache_take() - initialise @b as a bump of the cache's backing,
 * starting with a warm chunk when one is held. Any thread. O(1).
 * Return: 0 or EINVAL.
 */
int ca_bump_cache_take(ca_bump_cache *c, ca_bump *b);

/**
 * ca_bump_cache_put() - reset @b (destructors run), keep its largest chunk
 * warm if the cache has room, release the rest; @b is destroyed. Any thread.
 */
void ca_bump_cache_put(ca_bump_cache *c, ca_bump *b);

/* ========================================================================
 * Listener events (ca_listen)
 * ======================================================================== */

/**
 * ca_bump_listen() / ca_bump_shared_listen() - attach or detach a listener
 * (core.h's ca_listener; also the `listen` op, through ca_listen()).
 * @l: the listener (not owned; must outlive the attachment), or NULL to detach.
 *
 * Ranges are the chunks as held, header included: obtained from the source
 * or parent (ca_bump, ca_bump_shared), carved from the shared bump (a local
 * bump's chunks, which lie inside the shared bump's), or the one region of
 * a fixed bump (a caller's buffer: its usable, 16-aligned part).
 *   - Attach: added() for every range now held; when one refuses, removed()
 *     for those already reported, nothing stays attached and its errno is
 *     returned.
 *   - Growth: added() for a new chunk before any block in it is handed out.
 *     A refusal gives the chunk back and the allocation fails with NULL and
 *     that errno; the bump is exactly as before.
 *   - removed() before every chunk is given back: a tip free of an oversized
 *     chunk, rewind, reset (all but the largest regular chunk), reset_final,
 *     destroy, ca_bump_cache_put (every chunk, the one kept warm included).
 *   - reset() on ca_bump_reset, ca_bump_reset_final and
 *     ca_bump_shared_reset (every block dies), after the destructors and
 *     before the chunks given back are removed. A rewind is not a reset: it
 *     only removes the chunks it gives back.
 *   - destroyed() first in ca_bump_destroy / ca_bump_shared_destroy /
 *     ca_bump_cache_put, then removed() for every range (destructors run in
 *     between); the listener is dropped.
 *   - Detach: removed() for every range.
 * The shared bump reports from whichever thread installs or frees a chunk,
 * under its lock, which attach and detach also hold: no chunk is missed or
 * reported twice while other threads grow it.
 * Return: 0; EBUSY (a listener is attached and @l is not NULL); EINVAL
 * (NULL bump); or the errno added() returned.
 */
int ca_bump_listen(ca_bump *b, ca_listener *l);
int ca_bump_shared_listen(ca_bump_shared *s, ca_listener *l);

/* ========================================================================
 * Introspection
 * ======================================================================== */

/**
 * ca_bump_stats() / ca_bump_shared_stats() / ca_bump_cache_stats() - fill
 * *out: bytes_in_use (bytes handed out, tip frees subtracted, alignment
 * padding included), bytes_reserved (= bytes_committed: chunk bytes held),
 * peak_in_use (sampled on slow paths and here), allocs (through ca_alloc
 * and the slow path only: the inline path does not count), frees, failures,
 * and counters chunk_bytes, big_bytes, wasted_tail, resets, rewinds,
 * tip_frees, noop_frees, chunks_obtained, dtors_run.
 * Return: 0 or EINVAL (NULL).
 */
int ca_bump_stats(const ca_bump *b, ca_stats *out);
int ca_bump_shared_stats(const ca_bump_shared *s, ca_stats *out);
int ca_bump_cache_stats(const ca_bump_cache *c, ca_stats *out);
/* The counters each sets, in order (X-macro lists: X(name) per counter;
 * core.h, Statistics). */
/* clang-format off */
#define CA_BUMP_COUNTERS(X) \
    X(chunk_bytes) X(big_bytes) X(wasted_tail) X(resets) X(rewinds) X(tip_frees) \
    X(noop_frees) X(chunks_obtained) X(chunks_held) X(dtors_run)
#define CA_BUMP_SHARED_COUNTERS(X) \
    X(chunk_bytes) X(big_bytes) X(wasted_tail) X(resets) X(tip_frees) X(noop_frees) \
    X(chunks_obtained) X(spare_bytes) X(spare_taken) X(spare_given)
#define CA_BUMP_CACHE_COUNTERS(X) \
    X(warm_chunks) X(takes) X(warm_hits) X(puts) X(released)
/* clang-format on */

/**
 * ca_bump_check() / ca_bump_shared_check() / ca_bump_cache_check() - walk
 * every invariant (chunk bounds, chunk lists, mark and destructor records
 * inside the bump's memory, byte accounting). No other thread may use a
 * bump or a shared bump during its walk; the cache's walk takes the cache's
 * lock (so it takes the cache without const). O(chunks + marks + destructors).
 * Return: NULL when every invariant holds, otherwise a static string naming
 * the first one broken (core.h's check contract). Never prints or aborts.
 */
const char *ca_bump_check(const ca_bump *b);
const char *ca_bump_shared_check(const ca_bump_shared *s);
const char *ca_bump_cache_check(ca_bump_cache *c);

/**
 * ca_bump_owns() - whether p lies in one of b's chunks. O(chunks).
 */
bool ca_bump_owns(const ca_bump *b, const void *p);
bool ca_bump_shared_owns(const ca_bump_shared *s, const void *p);

#ifdef __cplusplus
}
#endif

#endif /* CTXALLOC_BUMP_H */
