/* SPDX-License-Identifier: MIT */
/*
 * libbump private header: the records a bump keeps in its own memory, the
 * chunk helpers shared by the files of the component, and the check-line
 * writer. Tests include it to walk invariants.
 */
#ifndef CA_BUMP_INTERNAL_H
#define CA_BUMP_INTERNAL_H

#include <ctxalloc/bump.h>

/* ca_bump.mode */
#define CA_BUMP__MODE_GROW  0u /* obtains chunks as needed */
#define CA_BUMP__MODE_FIXED 1u /* one region, never grows */

/* A destructor record, allocated in the bump before its object.
 * Invariant: the list is newest first; every record lies in the bump. */
typedef struct ca_bump__dtor {
    struct ca_bump__dtor *next; /* older record */
    ca_bump_dtor_fn fn;
    void *obj;
    void *arg;
} ca_bump__dtor;

/* A checkpoint record, allocated in the bump at save time. It holds the
 * state before the save, so rewinding frees the record itself.
 * Invariant: serials strictly decrease along prev. */
typedef struct ca_bump__mark_rec {
    struct ca_bump__mark_rec *prev; /* enclosing mark */
    uint64_t serial;
    ca_bump_chunk *chunk; /* current regular chunk at save (may be NULL) */
    char *cur;            /* cursor at save */
    ca_bump_chunk *big;   /* newest oversized chunk at save */
    ca_bump__dtor *dtors; /* newest destructor at save */
} ca_bump__mark_rec;

CA_STATIC_ASSERT(sizeof(ca_bump__mark_rec) == 48, "mark record size is documented as 48 bytes");
CA_STATIC_ASSERT(sizeof(ca_bump_chunk) <= CA_BUMP_CHUNK_HEADER, "chunk header fits its reserved bytes");

/* Smallest chunk the growth policy produces (bytes, header included). */
#define CA_BUMP__CHUNK_MIN ((size_t)256)

/* Regular chunk size for a bump whose regular chunks total `total` bytes:
 * max(min, total) capped by max. */
static inline size_t ca_bump__next_size(size_t min_chunk, size_t max_chunk, size_t total)
{
    size_t n = total > min_chunk ? total : min_chunk;
    return n > max_chunk ? max_chunk : n;
}

/* The chunk bounds of options (NULL or zero fields: the defaults) into
 * *min_chunk, *max_chunk: min raised to CA_BUMP__CHUNK_MIN, max at least
 * min. EINVAL when the options ask for a min above the max. */
static inline int ca_bump__chunk_bounds(const ca_bump_options *opt, size_t *min_chunk, size_t *max_chunk)
{
    size_t mn = opt && opt->min_chunk ? opt->min_chunk : CA_BUMP_MIN_CHUNK_DEFAULT;
    size_t mx = opt && opt->max_chunk ? opt->max_chunk : CA_BUMP_MAX_CHUNK_DEFAULT;
    if (mn > mx)
        return EINVAL;
    *min_chunk = mn < CA_BUMP__CHUNK_MIN ? CA_BUMP__CHUNK_MIN : mn;
    *max_chunk = mx < *min_chunk ? *min_chunk : mx;
    return 0;
}

/* Write "header of a chunk" fields for a block of `bytes` at p. */
static inline ca_bump_chunk *ca_bump__chunk_format(void *p, size_t bytes)
{
    ca_bump_chunk *c = (ca_bump_chunk *)p;
    c->prev = NULL;
    c->begin = (char *)p + CA_BUMP_CHUNK_HEADER;
    c->end = (char *)ca_align_down((uintptr_t)p + bytes, CA_BUMP_FAST_ALIGN);
    c->size = bytes;
    c->cur = (uintptr_t)c->begin;
    return c;
}

/* Regular chunk size as ca_bump__next_size, capped by `limit` (the most a
 * backing gives per obtain; 0: no limit known). */
static inline size_t ca_bump__regular_size(size_t min_chunk, size_t max_chunk, size_t total, size_t limit)
{
    size_t n = ca_bump__next_size(min_chunk, max_chunk, total);
    return limit && n > limit ? limit : n;
}

/*
 * Obtain / release a chunk of `bytes` (header included) from a source (an
 * allocator is reached through core's allocator source, whose granule is
 * 64 and which asks it for the same shape). *out is formatted.
 * Shape: a multiple of max(granule, 64) bytes aligned to it; a chunk of a
 * page or more is whole pages aligned to a page (CA_OWNER_PAGE), so that it
 * can be registered in the ownership map.
 * Sources with a fixed unit: *limit (atomic, relaxed) is the most the source
 * gives per obtain, 0 while none is known. When the source refuses a
 * multi-granule size with EINVAL, *limit becomes one granule and the chunk
 * is one granule when `least` (the bytes the request needs, <= bytes) fits
 * it; a request that cannot fit one granule is ENOMEM.
 * Returns 0, ENOMEM, or the backing's errno.
 */
int ca_bump__backing_obtain(ca_source *src, size_t bytes, size_t least, size_t *limit, ca_bump_chunk **out);
void ca_bump__backing_release(ca_source *src, ca_bump_chunk *c);

/* Chunks for local bumps: from the shared bump's spare list or carved from
 * it. Thread-safe. */
int ca_bump__shared_take(ca_bump_shared *s, size_t bytes, ca_bump_chunk **out);
/* The largest chunk take can serve when the shared bump's backing gives a
 * limited size per obtain (a slot arena); 0 while no limit is known. */
size_t ca_bump__shared_take_max(ca_bump_shared *s);
void ca_bump__shared_give(ca_bump_shared *s, ca_bump_chunk *c);

/* The range a listener is told about for chunk c: the block obtained
 * (header included), or for a caller's fixed buffer its usable region. */
void ca_bump__chunk_range(const ca_bump_chunk *c, void **base, size_t *size);

/* Tell listener l (NULL: nobody) of chunk c's range, added (its refusal,
 * an errno, is returned) or removed. */
int ca_bump__note_added(ca_listener *l, const ca_bump_chunk *c);
void ca_bump__note_removed(ca_listener *l, const ca_bump_chunk *c);

/* ca_listen for a bump whose chunks are the two lists (regular, then big;
 * each newest first) and whose listener is *slot: l NULL detaches
 * (removed() for every chunk); else EBUSY when one is attached, or l hears
 * added() for every chunk, and a refusal takes back what was reported, in
 * the same order, leaves nothing attached and is returned. */
int ca_bump__listen_chunks(ca_listener **slot, ca_listener *l, ca_bump_chunk *const lists[2]);

/* ca_bump_cache_put's reset: the listener (if any) hears destroyed(), then
 * removed() for every chunk, the largest (left in b->chunk) included, and is
 * dropped; destructors run and every other chunk is given back. */
void ca_bump__reset_for_put(ca_bump *b);

/* The mutexes of the shared bump (its installer) and of the cache: rank
 * CA_LOCK_RANK_BUMP_SHARED of core's lock order, checked under checks=on.
 * The shared bump holds its mutex across its backing's obtain and its
 * listener's added(), so those may take only locks ranked above it: every
 * allocator of the suite is (rank 3 is below them all); the cache's is
 * never held across a call. */
static inline void ca_bump__lock(pthread_mutex_t *m)
{
    (void)ca_mutex_lock_ranked(m, CA_LOCK_RANK_BUMP_SHARED, "bump");
}

static inline void ca_bump__unlock(pthread_mutex_t *m)
{
    (void)ca_mutex_unlock_ranked(m, CA_LOCK_RANK_BUMP_SHARED);
}

/* Whether p lies in [c->begin, c->end) of a chunk of the list. */
static inline bool ca_bump__in_list(const ca_bump_chunk *c, const void *p)
{
    for (; c; c = c->prev)
        if ((const char *)p >= c->begin && (const char *)p < c->end)
            return true;
    return false;
}

#endif
