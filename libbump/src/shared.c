/* SPDX-License-Identifier: MIT */
/*
 * The shared bump (ca_bump_shared): thread-safe bump allocation with a
 * lock-free cursor, plus whole-chunk take / give for local bumps.
 *
 * Concurrency model:
 *   - `current` is an atomic pointer to the newest regular chunk; its header
 *     is written before the release store that publishes it, and chunks are
 *     not released while the bump is in use (only reset / destroy, which run
 *     alone), so any thread may read a stale `current`.
 *   - A chunk's `cur` is advanced by fetch-add (inline fast path, sizes
 *     rounded to 16) or by CAS (larger alignments, tip grow); a tip free is a
 *     CAS from p + n back to p. A failed fetch-add leaves cur past end; that
 *     chunk then serves no one and is replaced.
 *   - The mutex is taken only to install a chunk (re-checking `current`
 *     under it so that racing threads install one), to manage oversized
 *     chunks and the spare list. No lock on any allocation that fits.
 *
 * Read first: ca_bump_shared_alloc in <ctxalloc/bump.h>, then
 * ca_bump__shared_alloc_slow.
 */
#include <string.h>

#include "bump_internal.h"

static const char *op_check(ca_allocator *a) { return ca_bump_shared_check((const ca_bump_shared *)a); }

static const ca_allocator_ops shared_ops;

int ca_bump_shared_init(ca_bump_shared *s, ca_source *src, const ca_bump_options *opt)
{
    size_t mn, mx;
    if (!s || !src || ca_bump__chunk_bounds(opt, &mn, &mx))
        return EINVAL;
    memset(s, 0, sizeof *s);
    int e = pthread_mutex_init(&s->lock, NULL);
    if (e)
        return e;
    s->base.ops = &shared_ops;
    s->source = src;
    s->min_chunk = mn;
    s->max_chunk = mx;
    return 0;
}

/* ca_bump_shared_init over the bump's own allocator source, set up once
 * init cleared the bump (init reads nothing of the source). */
int ca_bump_shared_init_allocator(ca_bump_shared *s, ca_allocator *parent, const ca_bump_options *opt)
{
    if (!s || !parent)
        return EINVAL;
    int e = ca_bump_shared_init(s, &s->adaptor.base, opt);
    if (!e)
        ca_allocator_source_init(&s->adaptor, parent);
    return e;
}

/* ---- listener events (under the lock, or by reset / destroy, which run
 * alone) ------------------------------------------------------------------ */

/* Give back a chunk of s; the listener hears of it first. */
static void chunk_release(ca_bump_shared *s, ca_bump_chunk *c)
{
    ca_bump__note_removed(s->listener, c);
    ca_bump__backing_release(s->source, c);
}

int ca_bump_shared_listen(ca_bump_shared *s, ca_listener *l)
{
    if (!s)
        return EINVAL;
    ca_bump__lock(&s->lock);
    /* Chunks are installed and released only under the lock (or by reset /
     * destroy, which run alone), so these lists are every range s holds. */
    ca_bump_chunk *lists[2] = {__atomic_load_n(&s->current, __ATOMIC_RELAXED), s->big};
    int e = ca_bump__listen_chunks(&s->listener, l, lists);
    ca_bump__unlock(&s->lock);
    return e;
}

static void release_list(ca_bump_shared *s, ca_bump_chunk *c, const ca_bump_chunk *keep)
{
    while (c) {
        ca_bump_chunk *prev = c->prev;
        if (c != keep)
            chunk_release(s, c);
        c = prev;
    }
}

void ca_bump_shared_reset(ca_bump_shared *s)
{
    if (s->listener && s->listener->reset)
        s->listener->reset(s->listener);
    ca_bump_chunk *cur = s->current, *keep = NULL;
    for (ca_bump_chunk *c = cur; c; c = c->prev)
        if (!keep || c->size > keep->size)
            keep = c;
    release_list(s, cur, keep);
    release_list(s, s->big, NULL);
    s->big = NULL;
    s->spare = NULL; /* carved from the chunks just reset */
    s->big_bytes = 0;
    if (keep) {
        keep->prev = NULL;
        keep->cur = (uintptr_t)keep->begin;
        s->chunk_bytes = keep->size;
    } else {
        s->chunk_bytes = 0;
    }
    __atomic_store_n(&s->current, keep, __ATOMIC_RELEASE);
    s->resets++;
}

void ca_bump_shared_destroy(ca_bump_shared *s)
{
    if (!s)
        return;
    if (s->listener && s->listener->destroyed)
        s->listener->destroyed(s->listener);
    release_list(s, s->current, NULL); /* removed() for every chunk */
    release_list(s, s->big, NULL);
    pthread_mutex_destroy(&s->lock);
    memset(s, 0, sizeof *s); /* the listener is dropped */
}

static void *shared_fail(ca_bump_shared *s, int e)
{
    __atomic_fetch_add(&s->failures, 1, __ATOMIC_RELAXED);
    errno = e;
    return NULL;
}

/* Obtain a chunk of `bytes` (at least `least` usable) from the backing and
 * report it to the listener, which may refuse it (the chunk goes back).
 * Under s->lock. */
static int chunk_obtain(ca_bump_shared *s, size_t bytes, size_t least, ca_bump_chunk **out)
{
    int e = ca_bump__backing_obtain(s->source, bytes, least, &s->obtain_max, out);
    if (!e && (e = ca_bump__note_added(s->listener, *out)) != 0)
        ca_bump__backing_release(s->source, *out); /* refused */
    return e;
}

/* CAS-place n bytes aligned to align in chunk c; NULL when it does not fit. */
static void *cas_place(ca_bump_chunk *c, size_t n, size_t align)
{
    uintptr_t cur = __atomic_load_n(&c->cur, __ATOMIC_RELAXED);
    for (;;) {
        uintptr_t p = ca_align_up(cur, align);
        if (p < cur || p > (uintptr_t)c->end || n > (uintptr_t)c->end - p)
            return NULL;
        if (__atomic_compare_exchange_n(&c->cur, &cur, p + n, true, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
            return (void *)p;
    }
}

void *ca_bump__shared_alloc_slow(ca_bump_shared *s, size_t size, size_t align)
{
    if (ca_unlikely(!ca_is_pow2(align) || align > CA_BUMP_ALIGN_MAX))
        return shared_fail(s, EINVAL);
    size_t n, need, bytes;
    if (ca_align_up_overflows(size ? size : 1, CA_BUMP_FAST_ALIGN, &n) ||
        ca_padded_size_overflows(n, align, CA_BUMP_CHUNK_HEADER, &need) ||
        ca_add_overflows(need, CA_BUMP_CHUNK_HEADER, &bytes))
        return shared_fail(s, ENOMEM);
    for (;;) {
        ca_bump_chunk *c = __atomic_load_n(&s->current, __ATOMIC_ACQUIRE);
        if (c) {
            void *p = cas_place(c, n, align);
            if (p)
                return p;
        }
        ca_bump__lock(&s->lock);
        size_t regular = ca_bump__regular_size(s->min_chunk, s->max_chunk, s->total, s->obtain_max);
        ca_bump_chunk *nc;
        if (regular <= CA_BUMP_CHUNK_HEADER || need > (regular - CA_BUMP_CHUNK_HEADER) / 2) {
            int e = chunk_obtain(s, bytes, bytes, &nc);
            if (e) {
                ca_bump__unlock(&s->lock);
                return shared_fail(s, e);
            }
            uintptr_t p = ca_align_up((uintptr_t)nc->begin, align);
            nc->cur = p + n;
            nc->prev = s->big;
            __atomic_store_n(&s->big, nc, __ATOMIC_RELEASE);
            s->big_bytes += nc->size;
            s->chunks_obtained++;
            ca_bump__unlock(&s->lock);
            return (void *)p;
        }
        if (__atomic_load_n(&s->current, __ATOMIC_RELAXED) == c) {
            int e = chunk_obtain(s, regular, bytes, &nc);
            if (e) {
                ca_bump__unlock(&s->lock);
                return shared_fail(s, e);
            }
            if (c) {
                uintptr_t cur = __atomic_load_n(&c->cur, __ATOMIC_RELAXED);
                s->wasted += cur < (uintptr_t)c->end ? (uintptr_t)c->end - cur : 0;
            }
            nc->prev = c;
            s->chunk_bytes += nc->size;
            s->chunks_obtained++;
            if (ca_add_overflows(s->total, nc->size, &s->total))
                s->total = SIZE_MAX;
            __atomic_store_n(&s->current, nc, __ATOMIC_RELEASE);
        }
        ca_bump__unlock(&s->lock);
    }
}

static bool in_chunk(const ca_bump_chunk *c, const void *p)
{
    return c && (const char *)p >= c->begin && (const char *)p < c->end;
}

bool ca_bump_shared_owns(const ca_bump_shared *s, const void *p)
{
    if (!s || !p)
        return false;
    return ca_bump__in_list(__atomic_load_n(&s->current, __ATOMIC_ACQUIRE), p) ||
           ca_bump__in_list(__atomic_load_n(&s->big, __ATOMIC_ACQUIRE), p);
}

/* Return the newest oversized chunk when [p, p + n) is its whole use. */
static bool free_big_tip(ca_bump_shared *s, void *p, size_t n)
{
    ca_bump_chunk *b = __atomic_load_n(&s->big, __ATOMIC_ACQUIRE);
    if (!in_chunk(b, p))
        return false;
    bool done = false;
    ca_bump__lock(&s->lock);
    b = s->big;
    if (in_chunk(b, p) && __atomic_load_n(&b->cur, __ATOMIC_RELAXED) == (uintptr_t)p + n) {
        __atomic_store_n(&s->big, b->prev, __ATOMIC_RELEASE);
        s->big_bytes -= b->size;
        chunk_release(s, b);
        done = true;
    }
    ca_bump__unlock(&s->lock);
    return done;
}

void ca_bump_shared_free(ca_bump_shared *s, void *p, size_t size)
{
    if (!p)
        return;
    size_t n = ca_align_up(size ? size : 1, CA_BUMP_FAST_ALIGN);
    ca_bump_chunk *c = __atomic_load_n(&s->current, __ATOMIC_ACQUIRE);
    if (in_chunk(c, p)) {
        uintptr_t expected = (uintptr_t)p + n;
        /* Reclaim only if nothing was allocated after the block: cur p + n -> p. */
        if (__atomic_compare_exchange_n(&c->cur, &expected, (uintptr_t)p, false, __ATOMIC_ACQ_REL,
                                        __ATOMIC_RELAXED)) {
            __atomic_fetch_add(&s->tip_frees, 1, __ATOMIC_RELAXED);
            return;
        }
    } else if (free_big_tip(s, p, n)) {
        __atomic_fetch_add(&s->tip_frees, 1, __ATOMIC_RELAXED);
        return;
    }
    CA_CHECK(ca_bump_shared_owns(s, p), "bump", p, "free of a pointer that is not from this shared bump");
    __atomic_fetch_add(&s->noop_frees, 1, __ATOMIC_RELAXED);
}

void *ca_bump_shared_resize(ca_bump_shared *s, void *p, size_t old_size, size_t new_size, size_t align,
                            unsigned flags)
{
    if (ca_unlikely(!ca_is_pow2(align) || align > CA_BUMP_ALIGN_MAX))
        return shared_fail(s, EINVAL);
    if (!p)
        return (flags & CA_RESIZE_IN_PLACE) ? shared_fail(s, ENOMEM) : ca_bump_shared_alloc(s, new_size, align);
    size_t on = ca_align_up(old_size ? old_size : 1, CA_BUMP_FAST_ALIGN), nn;
    if (ca_align_up_overflows(new_size ? new_size : 1, CA_BUMP_FAST_ALIGN, &nn))
        nn = SIZE_MAX;
    ca_bump_chunk *c = __atomic_load_n(&s->current, __ATOMIC_ACQUIRE);
    if (in_chunk(c, p)) {
        uintptr_t expected = (uintptr_t)p + on;
        if (nn <= (uintptr_t)c->end - (uintptr_t)p &&
            __atomic_compare_exchange_n(&c->cur, &expected, (uintptr_t)p + nn, false, __ATOMIC_ACQ_REL,
                                        __ATOMIC_RELAXED))
            return p;
    } else {
        CA_CHECK(ca_bump_shared_owns(s, p), "bump", p, "resize of a pointer that is not from this shared bump");
    }
    if (nn <= on)
        return p;
    if (flags & CA_RESIZE_IN_PLACE)
        return shared_fail(s, ENOMEM);
    void *q = ca_bump_shared_alloc(s, new_size, align);
    if (!q)
        return NULL;
    memcpy(q, p, old_size < new_size ? old_size : new_size);
    ca_bump_shared_free(s, p, old_size);
    return q;
}

/* ---- chunks for local bumps ------------------------------------------------ */

/* Size and alignment of a chunk of at least `bytes` carved for a local bump:
 * 64-byte multiples aligned to 64; from a page on, whole pages aligned to a
 * page (the ownership map works in pages). */
static int take_shape(size_t bytes, size_t *size, size_t *align)
{
    size_t n;
    if (ca_align_up_overflows(bytes, CA_BUMP_CHUNK_HEADER, &n))
        return ENOMEM;
    *align = CA_BUMP_CHUNK_HEADER;
    if (n >= CA_OWNER_PAGE) {
        if (ca_align_up_overflows(n, CA_OWNER_PAGE, &n))
            return ENOMEM;
        *align = CA_OWNER_PAGE;
    }
    *size = n;
    return 0;
}

size_t ca_bump__shared_take_max(ca_bump_shared *s)
{
    size_t max = __atomic_load_n(&s->obtain_max, __ATOMIC_RELAXED);
    /* max is a granule (a power of two). A take of n bytes aligned to a
     * (a page from a page on, else 64 = the header) needs n + a bytes of a
     * fresh chunk. */
    if (max >= 2 * CA_OWNER_PAGE)
        return max - CA_OWNER_PAGE;
    return max > CA_BUMP_CHUNK_HEADER ? max - CA_BUMP_CHUNK_HEADER : 0;
}

int ca_bump__shared_take(ca_bump_shared *s, size_t bytes, ca_bump_chunk **out)
{
    size_t n, align;
    if (take_shape(bytes, &n, &align))
        return ENOMEM;
    ca_bump__lock(&s->lock);
    ca_bump_chunk **pp = &s->spare;
    while (*pp && (*pp)->size < n)
        pp = &(*pp)->prev;
    ca_bump_chunk *c = *pp;
    if (c) {
        *pp = c->prev;
        s->spare_taken++;
    }
    ca_bump__unlock(&s->lock);
    if (c) {
        ca_bump__chunk_format(c, c->size);
        *out = c;
        return 0;
    }
    void *p = ca_bump_shared_alloc(s, n, align);
    if (!p)
        return errno ? errno : ENOMEM;
    *out = ca_bump__chunk_format(p, n);
    return 0;
}

void ca_bump__shared_give(ca_bump_shared *s, ca_bump_chunk *c)
{
    ca_bump__lock(&s->lock);
    c->prev = s->spare;
    s->spare = c;
    s->spare_given++;
    ca_bump__unlock(&s->lock);
}

/* ---- introspection ------------------------------------------------------------- */

int ca_bump_shared_stats(const ca_bump_shared *s, ca_stats *out)
{
    CA_STATS_COUNTERS(CA_BUMP_SHARED_COUNTERS);
    if (!s || !out)
        return EINVAL;
    ca_bump_shared *m = (ca_bump_shared *)s; /* the lock only */
    ca_stats_init(out, "bump-shared");
    ca_bump__lock(&m->lock);
    uint64_t used = 0, spare_bytes = 0;
    for (const ca_bump_chunk *c = s->current; c; c = c->prev) {
        uintptr_t cur = __atomic_load_n(&c->cur, __ATOMIC_RELAXED);
        used += (cur < (uintptr_t)c->end ? cur : (uintptr_t)c->end) - (uintptr_t)c->begin;
    }
    for (const ca_bump_chunk *c = s->big; c; c = c->prev)
        used += c->cur - (uintptr_t)c->begin;
    for (const ca_bump_chunk *c = s->spare; c; c = c->prev)
        spare_bytes += c->size;
    out->bytes_in_use = used;
    out->peak_in_use = used;
    out->bytes_reserved = out->bytes_committed = s->chunk_bytes + s->big_bytes;
    out->frees = __atomic_load_n(&s->tip_frees, __ATOMIC_RELAXED) +
                 __atomic_load_n(&s->noop_frees, __ATOMIC_RELAXED);
    out->failures = __atomic_load_n(&s->failures, __ATOMIC_RELAXED);
    CA_STATS_SET(out, chunk_bytes, s->chunk_bytes);
    CA_STATS_SET(out, big_bytes, s->big_bytes);
    CA_STATS_SET(out, wasted_tail, s->wasted);
    CA_STATS_SET(out, resets, s->resets);
    CA_STATS_SET(out, tip_frees, __atomic_load_n(&s->tip_frees, __ATOMIC_RELAXED));
    CA_STATS_SET(out, noop_frees, __atomic_load_n(&s->noop_frees, __ATOMIC_RELAXED));
    CA_STATS_SET(out, chunks_obtained, s->chunks_obtained);
    CA_STATS_SET(out, spare_bytes, spare_bytes);
    CA_STATS_SET(out, spare_taken, s->spare_taken);
    CA_STATS_SET(out, spare_given, s->spare_given);
    ca_bump__unlock(&m->lock);
    return 0;
}

const char *ca_bump_shared_check(const ca_bump_shared *s)
{
    CA_CHECK_EXPECT(s && s->base.ops == &shared_ops, "not an initialised shared bump");
    uint64_t bytes = 0;
    size_t n = 0;
    for (const ca_bump_chunk *c = s->current; c; c = c->prev, n++) {
        CA_CHECK_EXPECT(n < ((size_t)1 << 24), "cycle in the shared chunk list");
        CA_CHECK_EXPECT(c->size && c->begin <= c->end && (const char *)c + c->size >= c->end,
                        "shared chunk header broken");
        CA_CHECK_EXPECT(ca_is_aligned((uintptr_t)c->end, CA_BUMP_FAST_ALIGN), "shared chunk end not 16-aligned");
        CA_CHECK_EXPECT(c->cur >= (uintptr_t)c->begin, "shared cursor below its chunk");
        CA_CHECK_EXPECT(c->size < CA_OWNER_PAGE ||
                            (ca_is_aligned((uintptr_t)c, CA_OWNER_PAGE) && c->size % CA_OWNER_PAGE == 0),
                        "shared chunk of a page or more is not whole pages");
        bytes += c->size;
    }
    CA_CHECK_EXPECT(bytes == s->chunk_bytes, "shared chunk byte count differs from the chunks");
    bytes = 0;
    for (const ca_bump_chunk *c = s->big; c; c = c->prev) {
        CA_CHECK_EXPECT(c->cur >= (uintptr_t)c->begin && c->cur <= (uintptr_t)c->end,
                        "oversized cursor outside its chunk");
        bytes += c->size;
    }
    CA_CHECK_EXPECT(bytes == s->big_bytes, "shared oversized byte count differs from the chunks");
    for (const ca_bump_chunk *c = s->spare; c; c = c->prev)
        CA_CHECK_EXPECT(ca_bump_shared_owns(s, c) && ca_bump_shared_owns(s, (const char *)c + c->size - 1),
                        "spare chunk outside the shared bump");
    return NULL;
}

/* ---- ops table -------------------------------------------------------------------- */

static void *op_alloc(ca_allocator *a, size_t size, size_t align, size_t *usable)
{
    void *p = ca_bump_shared_alloc((ca_bump_shared *)a, size, align);
    if (p && usable)
        *usable = size;
    return p;
}

static void op_free(ca_allocator *a, void *p, size_t size, size_t align)
{
    ca_bump_shared_free((ca_bump_shared *)a, p, size);
}

static void *op_resize(ca_allocator *a, void *p, size_t old_size, size_t new_size, size_t align, unsigned flags,
                       size_t *usable)
{
    void *q = ca_bump_shared_resize((ca_bump_shared *)a, p, old_size, new_size, align, flags);
    if (q && usable)
        *usable = new_size;
    return q;
}

static bool op_owns(const ca_allocator *a, const void *p)
{
    return ca_bump_shared_owns((const ca_bump_shared *)a, p);
}
static void op_reset(ca_allocator *a) { ca_bump_shared_reset((ca_bump_shared *)a); }
static int op_stats(const ca_allocator *a, ca_stats *out)
{
    return ca_bump_shared_stats((const ca_bump_shared *)a, out);
}
static int op_listen(ca_allocator *a, ca_listener *l) { return ca_bump_shared_listen((ca_bump_shared *)a, l); }

static const ca_allocator_ops shared_ops = {
    .name = "bump-shared",
    .caps = CA_CAP_THREAD_SAFE | CA_CAP_FREE_NOOP,
    .alloc = op_alloc,
    .free = op_free,
    .resize = op_resize,
    .owns = op_owns,
    .reset = op_reset,
    .stats = op_stats,
    .listen = op_listen,
    .check = op_check,
};
