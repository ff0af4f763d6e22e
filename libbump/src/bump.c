/* SPDX-License-Identifier: MIT */
/*
 * The single-thread bump (ca_bump): the slow path behind the inline
 * ca_bump_alloc, chunk growth, tip free / grow / shrink, reset, checkpoints,
 * destructors, fixed regions, stats, the invariant walk and the ops table.
 *
 * Concurrency: none; one thread owns a ca_bump. A local bump over a shared
 * one calls the shared bump's thread-safe take / give for whole chunks.
 *
 * Read first: ca_bump__alloc_slow (how a request is placed), then
 * ca_bump_free and ca_bump_rewind. The struct and its invariants are in
 * <ctxalloc/bump.h>, the records in bump_internal.h.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bump_internal.h"

static const ca_allocator_ops bump_ops;

/* ---- backing ------------------------------------------------------------ */

/* Size and alignment of a chunk of at least `bytes` from a backing whose
 * unit is g: a multiple of max(g, 64) aligned to it, so the header and the
 * first block are 64-aligned; from a page on, whole pages aligned to a page
 * as well (the ownership map works in pages). */
static int chunk_shape(size_t bytes, size_t g, size_t *size, size_t *align)
{
    size_t u = g > CA_BUMP_CHUNK_HEADER ? g : CA_BUMP_CHUNK_HEADER, n;
    if (ca_align_up_overflows(bytes, u, &n))
        return ENOMEM;
    if (n >= CA_OWNER_PAGE && u < CA_OWNER_PAGE) {
        if (ca_align_up_overflows(n, CA_OWNER_PAGE, &n))
            return ENOMEM;
        u = CA_OWNER_PAGE;
    }
    *size = n;
    *align = u;
    return 0;
}

int ca_bump__backing_obtain(ca_source *src, size_t bytes, size_t least, size_t *limit, ca_bump_chunk **out)
{
    void *p = NULL;
    size_t n, align;
    size_t g = ca_source_granule(src), max = __atomic_load_n(limit, __ATOMIC_RELAXED);
    int e = chunk_shape(bytes, g, &n, &align);
    if (e)
        return e;
    if (max && n > max) {
        /* The source gives one granule per obtain: so does the bump. */
        if (least > max)
            return ENOMEM;
        n = max;
        align = g;
    }
    e = ca_source_obtain(src, n, align, &p);
    if (e == EINVAL && n > g) {
        /* A size the contract allows was refused: the source gives one
         * granule per obtain (a slot arena). Remember it; retry with one
         * granule when that holds the request. */
        __atomic_store_n(limit, g, __ATOMIC_RELAXED);
        if (least > g)
            return ENOMEM;
        n = g;
        e = ca_source_obtain(src, n, g, &p);
    }
    if (e)
        return e;
    *out = ca_bump__chunk_format(p, n);
    return 0;
}

void ca_bump__backing_release(ca_source *src, ca_bump_chunk *c)
{
    int e = ca_source_release(src, c, c->size);
    CA_ASSERT(e == 0, "bump", c, "the source refused to release a chunk");
}

/* ---- listener events ---------------------------------------------------- */

void ca_bump__chunk_range(const ca_bump_chunk *c, void **base, size_t *size)
{
    if (c->size) {
        *base = (void *)(uintptr_t)c;
        *size = c->size;
    } else { /* the caller's fixed region */
        *base = c->begin;
        *size = (size_t)(c->end - c->begin);
    }
}

int ca_bump__note_added(ca_listener *l, const ca_bump_chunk *c)
{
    if (!l || !l->added)
        return 0;
    void *base;
    size_t size;
    ca_bump__chunk_range(c, &base, &size);
    return l->added(l, base, size);
}

void ca_bump__note_removed(ca_listener *l, const ca_bump_chunk *c)
{
    if (!l || !l->removed)
        return;
    void *base;
    size_t size;
    ca_bump__chunk_range(c, &base, &size);
    l->removed(l, base, size);
}

int ca_bump__listen_chunks(ca_listener **slot, ca_listener *l, ca_bump_chunk *const lists[2])
{
    if (!l) {
        for (int i = 0; i < 2; i++)
            for (ca_bump_chunk *c = lists[i]; c; c = c->prev)
                ca_bump__note_removed(*slot, c);
        *slot = NULL;
        return 0;
    }
    if (*slot)
        return EBUSY;
    *slot = l;
    for (int i = 0; i < 2; i++) {
        for (ca_bump_chunk *c = lists[i]; c; c = c->prev) {
            int e = ca_bump__note_added(l, c);
            if (!e)
                continue;
            /* Take back what was reported, in the same order, up to c. */
            for (int j = 0; j <= i; j++)
                for (ca_bump_chunk *d = lists[j]; d && d != c; d = d->prev)
                    ca_bump__note_removed(l, d);
            *slot = NULL;
            return e;
        }
    }
    return 0;
}

/* Return a chunk that was never reported or handed out. */
static void chunk_return(ca_bump *b, ca_bump_chunk *c)
{
    if (b->shared)
        ca_bump__shared_give(b->shared, c);
    else
        ca_bump__backing_release(b->source, c);
}

/* A chunk of `bytes` for b (header included); `least` <= bytes is what the
 * request needs, used when the backing caps chunk sizes. The listener hears
 * of it before anything in it is handed out; a refusal returns the chunk
 * and its errno, and b is unchanged. */
static int chunk_get(ca_bump *b, size_t bytes, size_t least, ca_bump_chunk **out)
{
    int e;
    if (b->shared) {
        if (b->obtain_max && bytes > b->obtain_max) {
            if (least > b->obtain_max)
                return ENOMEM;
            bytes = b->obtain_max;
        }
        e = ca_bump__shared_take(b->shared, bytes, out);
        if (e == ENOMEM && !b->obtain_max) {
            /* The shared bump's backing may cap its chunks (a slot arena):
             * learn the most it can carve and fit the request in that. */
            size_t max = ca_bump__shared_take_max(b->shared);
            if (max && bytes > max) {
                b->obtain_max = max;
                if (least <= max)
                    e = ca_bump__shared_take(b->shared, max, out);
            }
        }
    } else {
        e = ca_bump__backing_obtain(b->source, bytes, least, &b->obtain_max, out);
    }
    if (e)
        return e;
    e = ca_bump__note_added(b->listener, *out);
    if (e) {
        chunk_return(b, *out);
        return e;
    }
    b->chunks_obtained++;
    return 0;
}

/* Release a chunk of b: the listener hears of it first. */
static void chunk_put(ca_bump *b, ca_bump_chunk *c)
{
    ca_bump__note_removed(b->listener, c);
    if (c->size == 0)
        return; /* the caller's fixed buffer */
    chunk_return(b, c);
}

/* ---- create / destroy --------------------------------------------------- */

static int init_common(ca_bump *b, const ca_bump_options *opt)
{
    size_t mn, mx;
    if (!b || ca_bump__chunk_bounds(opt, &mn, &mx))
        return EINVAL;
    memset(b, 0, sizeof *b);
    b->base.ops = &bump_ops;
    b->min_chunk = mn;
    b->max_chunk = mx;
    b->mode = CA_BUMP__MODE_GROW;
    return 0;
}

int ca_bump_init(ca_bump *b, ca_source *src, const ca_bump_options *opt)
{
    if (!src)
        return EINVAL;
    int e = init_common(b, opt);
    if (!e)
        b->source = src;
    return e;
}

/* ca_bump_init over the bump's own allocator source (ca_bump_init reads
 * nothing of the source, which is set up once init cleared the bump). */
int ca_bump_init_allocator(ca_bump *b, ca_allocator *parent, const ca_bump_options *opt)
{
    if (!b || !parent)
        return EINVAL;
    int e = ca_bump_init(b, &b->adaptor.base, opt);
    if (!e)
        ca_allocator_source_init(&b->adaptor, parent);
    return e;
}

int ca_bump_init_local(ca_bump *b, ca_bump_shared *sh, const ca_bump_options *opt)
{
    if (!sh)
        return EINVAL;
    int e = init_common(b, opt);
    if (!e)
        b->shared = sh;
    return e;
}

static void install_fixed(ca_bump *b, ca_bump_chunk *c)
{
    b->mode = CA_BUMP__MODE_FIXED;
    b->chunk = c;
    b->cur = c->begin;
    b->end = c->end;
    b->chunk_bytes = c->size ? c->size : (uint64_t)(c->end - c->begin);
}

int ca_bump_init_fixed(ca_bump *b, void *buf, size_t size)
{
    if (!b || !buf)
        return EINVAL;
    uintptr_t lo, hi;
    if (ca_add_overflows((uintptr_t)buf, size, &hi) || ca_align_up_overflows((uintptr_t)buf, 16, &lo))
        return EINVAL;
    hi = ca_align_down(hi, CA_BUMP_FAST_ALIGN);
    if (hi < lo + CA_BUMP_FAST_ALIGN)
        return EINVAL;
    init_common(b, NULL);
    b->fixed.begin = (char *)lo;
    b->fixed.end = (char *)hi;
    b->fixed.cur = lo;
    b->fixed.size = 0;
    install_fixed(b, &b->fixed);
    return 0;
}

int ca_bump_init_fixed_source(ca_bump *b, ca_source *src, size_t size)
{
    size_t bytes;
    if (!b || !src || size == 0)
        return EINVAL;
    if (ca_add_overflows(size, CA_BUMP_CHUNK_HEADER, &bytes))
        return ENOMEM;
    init_common(b, NULL);
    b->source = src;
    ca_bump_chunk *c;
    int e = ca_bump__backing_obtain(src, bytes, bytes, &b->obtain_max, &c);
    if (e)
        return e;
    b->chunks_obtained = 1;
    install_fixed(b, c);
    return 0;
}

/* Run destructors newest-first until the list head is `stop`. */
static void run_dtors(ca_bump *b, ca_bump__dtor *stop)
{
    while (b->dtors && b->dtors != stop) {
        ca_bump__dtor *d = b->dtors;
        b->dtors = d->next; /* unlink first: a destructor may allocate */
        d->fn(d->obj, d->arg);
        b->dtors_run++;
    }
}

static void release_big_until(ca_bump *b, ca_bump_chunk *stop)
{
    while (b->big && b->big != stop) {
        ca_bump_chunk *c = b->big;
        b->big = c->prev;
        b->big_bytes -= c->size;
        chunk_put(b, c);
    }
}

static uint64_t in_use(const ca_bump *b)
{
    uint64_t n = b->retired_used;
    if (b->chunk)
        n += (uint64_t)(b->cur - b->chunk->begin);
    for (const ca_bump_chunk *c = b->big; c; c = c->prev)
        n += c->cur - (uintptr_t)c->begin;
    return n;
}

static void sample_peak(ca_bump *b)
{
    uint64_t n = in_use(b);
    if (n > b->peak)
        b->peak = n;
}

/* Reset; keep_one: keep the largest regular chunk; notify: report reset()
 * to the listener (a reset, not a destroy), after the destructors and before
 * the chunks given back are removed. */
static void reset_impl(ca_bump *b, bool keep_one, bool notify)
{
    sample_peak(b);
    run_dtors(b, NULL);
    if (notify && b->listener && b->listener->reset)
        b->listener->reset(b->listener);
    release_big_until(b, NULL);
    b->marks = NULL;
    b->resets++;
    if (b->mode == CA_BUMP__MODE_FIXED) {
        b->cur = b->chunk->begin;
        return;
    }
    ca_bump_chunk *keep = NULL;
    if (keep_one)
        for (ca_bump_chunk *c = b->chunk; c; c = c->prev)
            if (!keep || c->size > keep->size)
                keep = c;
    for (ca_bump_chunk *c = b->chunk; c;) {
        ca_bump_chunk *prev = c->prev;
        if (c != keep)
            chunk_put(b, c);
        c = prev;
    }
    b->retired_used = 0;
    b->chunk = keep;
    if (keep) {
        keep->prev = NULL;
        b->cur = keep->begin;
        b->end = keep->end;
        b->chunk_bytes = keep->size;
    } else {
        b->cur = b->end = NULL;
        b->chunk_bytes = 0;
    }
    CA_CHECK_WALK("bump", b, ca_bump_check);
}

void ca_bump_reset(ca_bump *b) { reset_impl(b, true, true); }
void ca_bump_reset_final(ca_bump *b) { reset_impl(b, false, true); }

static void note_destroyed(ca_bump *b)
{
    if (b->listener && b->listener->destroyed)
        b->listener->destroyed(b->listener);
}

void ca_bump_destroy(ca_bump *b)
{
    if (!b)
        return;
    note_destroyed(b);
    reset_impl(b, false, false); /* removed() for every chunk given back */
    if (b->mode == CA_BUMP__MODE_FIXED)
        chunk_put(b, b->chunk);
    memset(b, 0, sizeof *b); /* the listener is dropped */
}

void ca_bump__reset_for_put(ca_bump *b)
{
    note_destroyed(b);
    reset_impl(b, true, false);
    if (b->chunk)
        ca_bump__note_removed(b->listener, b->chunk);
    b->listener = NULL;
}

int ca_bump_listen(ca_bump *b, ca_listener *l)
{
    if (!b)
        return EINVAL;
    ca_bump_chunk *lists[2] = {b->chunk, b->big};
    return ca_bump__listen_chunks(&b->listener, l, lists);
}

/* ---- allocation --------------------------------------------------------- */

/* Place (size, align) in the current regular chunk if it fits. */
static inline void *try_place(ca_bump *b, size_t size, size_t align)
{
    if (!b->chunk)
        return NULL;
    uintptr_t p = ca_align_up((uintptr_t)b->cur, align);
    if (p > (uintptr_t)b->end || size > (uintptr_t)b->end - p)
        return NULL;
    b->cur = (char *)(p + size);
    return (void *)p;
}

static void *fail(ca_bump *b, int e)
{
    b->failures++;
    errno = e;
    return NULL;
}

void *ca_bump__alloc_slow(ca_bump *b, size_t size, size_t align)
{
    if (ca_unlikely(!ca_is_pow2(align) || align > CA_BUMP_ALIGN_MAX))
        return fail(b, EINVAL);
    if (size == 0)
        size = 1;
    void *p = try_place(b, size, align);
    if (p)
        return p;
    if (b->mode == CA_BUMP__MODE_FIXED)
        return fail(b, ENOMEM);

    size_t need, bytes;
    if (ca_padded_size_overflows(size, align, CA_BUMP_CHUNK_HEADER, &need) ||
        ca_add_overflows(need, CA_BUMP_CHUNK_HEADER, &bytes))
        return fail(b, ENOMEM);
    size_t regular = ca_bump__regular_size(b->min_chunk, b->max_chunk, b->total, b->obtain_max);
    ca_bump_chunk *c;
    int e;
    if (regular <= CA_BUMP_CHUNK_HEADER || need > (regular - CA_BUMP_CHUNK_HEADER) / 2) {
        /* Oversized: a chunk of its own, so the current chunk keeps serving. */
        e = chunk_get(b, bytes, bytes, &c);
        if (e)
            return fail(b, e);
        c->prev = b->big;
        b->big = c;
        b->big_bytes += c->size;
        p = (void *)ca_align_up((uintptr_t)c->begin, align);
        c->cur = (uintptr_t)p + size;
        sample_peak(b);
        return p;
    }
    e = chunk_get(b, regular, bytes, &c);
    if (e)
        return fail(b, e);
    if (b->chunk) {
        b->chunk->cur = (uintptr_t)b->cur;
        b->retired_used += (uint64_t)(b->cur - b->chunk->begin);
        b->wasted += (uint64_t)(b->end - b->cur);
    }
    c->prev = b->chunk;
    b->chunk = c;
    b->cur = c->begin;
    b->end = c->end;
    b->chunk_bytes += c->size;
    if (ca_add_overflows(b->total, c->size, &b->total))
        b->total = SIZE_MAX;
    p = try_place(b, size, align);
    CA_ASSERT(p != NULL, "bump", c, "a fresh chunk cannot hold the request it was sized for");
    sample_peak(b);
    CA_CHECK_WALK("bump", b, ca_bump_check);
    return p;
}

void *ca_bump_alloc_zeroed(ca_bump *b, size_t n, size_t size, size_t align)
{
    size_t bytes;
    if (ca_mul_overflows(n, size, &bytes))
        return fail(b, ENOMEM);
    void *p = ca_bump_alloc(b, bytes, align);
    if (p)
        memset(p, 0, bytes);
    return p;
}

/* The block [p, p + n) is the newest of the current regular chunk. */
static inline bool is_tip(const ca_bump *b, const void *p, size_t n)
{
    return b->chunk && (const char *)p >= b->chunk->begin && (const char *)p <= b->cur &&
           (size_t)(b->cur - (const char *)p) == n;
}

/* The block [p, p + n) is the whole use of the newest oversized chunk. */
static inline bool is_big_tip(const ca_bump *b, const void *p, size_t n)
{
    const ca_bump_chunk *c = b->big;
    return c && (const char *)p >= c->begin && (const char *)p < c->end && (uintptr_t)p <= c->cur &&
           c->cur - (uintptr_t)p == n;
}

/* A checkpoint taken after the newest oversized chunk pins it. */
static inline bool big_pinned(const ca_bump *b) { return b->marks && b->marks->big == b->big; }

static inline bool has_dtor(const ca_bump *b, const void *p) { return b->dtors && b->dtors->obj == p; }

void ca_bump_free(ca_bump *b, void *p, size_t size)
{
    if (!p)
        return;
    size_t n = size ? size : 1;
    if (is_tip(b, p, n) && !has_dtor(b, p)) {
        b->cur = (char *)p;
        b->tip_frees++;
        return;
    }
    if (is_big_tip(b, p, n) && !big_pinned(b) && !has_dtor(b, p)) {
        b->tip_frees++;
        release_big_until(b, b->big->prev);
        return;
    }
    CA_CHECK(ca_bump_owns(b, p), "bump", p, "free of a pointer that is not from this bump");
    b->noop_frees++;
}

void *ca_bump_resize(ca_bump *b, void *p, size_t old_size, size_t new_size, size_t align, unsigned flags)
{
    if (ca_unlikely(!ca_is_pow2(align) || align > CA_BUMP_ALIGN_MAX))
        return fail(b, EINVAL);
    if (!p)
        return (flags & CA_RESIZE_IN_PLACE) ? fail(b, ENOMEM) : ca_bump_alloc(b, new_size, align);
    size_t on = old_size ? old_size : 1, nn = new_size ? new_size : 1;
    if (is_tip(b, p, on)) {
        if (nn <= (size_t)(b->end - (char *)p)) {
            b->cur = (char *)p + nn;
            return p;
        }
    } else if (is_big_tip(b, p, on)) {
        if (nn <= (size_t)(b->big->end - (char *)p)) {
            b->big->cur = (uintptr_t)p + nn;
            return p;
        }
    } else {
        CA_CHECK(ca_bump_owns(b, p), "bump", p, "resize of a pointer that is not from this bump");
        if (nn <= on)
            return p; /* stays; the bytes come back at reset */
    }
    if (flags & CA_RESIZE_IN_PLACE)
        return fail(b, ENOMEM);
    bool was_big_tip = is_big_tip(b, p, on) && !big_pinned(b) && !has_dtor(b, p);
    ca_bump_chunk *old_big = b->big;
    void *q = ca_bump_alloc(b, new_size, align);
    if (!q)
        return NULL;
    memcpy(q, p, on < nn ? on : nn);
    if (was_big_tip && b->big != old_big && b->big->prev == old_big) {
        /* Moved out of the newest oversized chunk into a newer one: return it. */
        b->big->prev = old_big->prev;
        b->big_bytes -= old_big->size;
        chunk_put(b, old_big);
        b->tip_frees++;
    } else {
        b->noop_frees++;
    }
    return q;
}

/* ---- checkpoints and destructors ------------------------------------------ */

int ca_bump_save(ca_bump *b, ca_bump_mark *m)
{
    ca_bump_chunk *chunk = b->chunk;
    char *cur = b->cur;
    ca_bump__mark_rec *r = (ca_bump__mark_rec *)ca_bump_alloc(b, sizeof *r, 16);
    if (!r)
        return ENOMEM;
    r->prev = b->marks;
    r->serial = ++b->serial;
    r->chunk = chunk;
    r->cur = cur;
    r->big = b->big;
    r->dtors = b->dtors;
    b->marks = r;
    m->owner = b;
    m->rec = r;
    m->serial = r->serial;
    return 0;
}

int ca_bump_rewind(ca_bump *b, const ca_bump_mark *m)
{
    CA_CHECK(m && m->owner == b, "bump", m, "rewind to a mark of another bump");
    if (!m || m->owner != b)
        return EINVAL;
    ca_bump__mark_rec *r = b->marks;
    while (r && !(r == m->rec && r->serial == m->serial))
        r = r->prev;
    CA_CHECK(r != NULL, "bump", m->rec, "rewind to a mark already rewound or reset");
    if (!r)
        return EINVAL;
    ca_bump__mark_rec saved = *r; /* r lives in memory released below */
    run_dtors(b, saved.dtors);
    release_big_until(b, saved.big);
    bool popped = false;
    while (b->chunk != saved.chunk) {
        ca_bump_chunk *c = b->chunk;
        if (popped) { /* a retired chunk: its bytes leave the retired count */
            b->retired_used -= c->cur - (uintptr_t)c->begin;
            b->wasted -= (uintptr_t)c->end - c->cur;
        }
        b->chunk = c->prev;
        b->chunk_bytes -= c->size;
        chunk_put(b, c);
        popped = true;
    }
    if (popped && b->chunk) {
        ca_bump_chunk *c = b->chunk;
        b->retired_used -= c->cur - (uintptr_t)c->begin;
        b->wasted -= (uintptr_t)c->end - c->cur;
    }
    b->cur = saved.cur;
    b->end = b->chunk ? b->chunk->end : NULL;
    b->marks = saved.prev;
    b->rewinds++;
    CA_CHECK_WALK("bump", b, ca_bump_check);
    return 0;
}

void *ca_bump_alloc_dtor(ca_bump *b, size_t size, size_t align, ca_bump_dtor_fn fn, void *arg)
{
    if (!fn)
        return fail(b, EINVAL);
    ca_bump__dtor *d = (ca_bump__dtor *)ca_bump_alloc(b, sizeof *d, 16);
    if (!d)
        return NULL;
    void *obj = ca_bump_alloc(b, size, align);
    if (!obj) {
        int e = errno;
        ca_bump_free(b, d, sizeof *d);
        errno = e;
        return NULL;
    }
    d->next = b->dtors;
    d->fn = fn;
    d->obj = obj;
    d->arg = arg;
    b->dtors = d;
    return obj;
}

/* ---- introspection ---------------------------------------------------------- */

bool ca_bump_owns(const ca_bump *b, const void *p)
{
    if (!b || !p)
        return false;
    return ca_bump__in_list(b->chunk, p) || ca_bump__in_list(b->big, p);
}

int ca_bump_stats(const ca_bump *b, ca_stats *out)
{
    CA_STATS_COUNTERS(CA_BUMP_COUNTERS);
    if (!b || !out)
        return EINVAL;
    ca_stats_init(out, "bump");
    uint64_t n = in_use(b);
    out->bytes_in_use = n;
    out->bytes_reserved = out->bytes_committed = b->chunk_bytes + b->big_bytes;
    out->peak_in_use = n > b->peak ? n : b->peak;
    out->allocs = b->allocs;
    out->frees = b->tip_frees + b->noop_frees;
    out->failures = b->failures;
    uint64_t held = 0;
    for (const ca_bump_chunk *c = b->chunk; c; c = c->prev)
        held++;
    for (const ca_bump_chunk *c = b->big; c; c = c->prev)
        held++;
    CA_STATS_SET(out, chunk_bytes, b->chunk_bytes);
    CA_STATS_SET(out, big_bytes, b->big_bytes);
    CA_STATS_SET(out, wasted_tail, b->wasted);
    CA_STATS_SET(out, resets, b->resets);
    CA_STATS_SET(out, rewinds, b->rewinds);
    CA_STATS_SET(out, tip_frees, b->tip_frees);
    CA_STATS_SET(out, noop_frees, b->noop_frees);
    CA_STATS_SET(out, chunks_obtained, b->chunks_obtained);
    CA_STATS_SET(out, chunks_held, held);
    CA_STATS_SET(out, dtors_run, b->dtors_run);
    return 0;
}

/* Bound on list walks, so a cycle is reported instead of hanging. */
#define WALK_MAX ((size_t)1 << 24)

static const char *check_chunk(const ca_bump_chunk *c, uintptr_t cur)
{
    CA_CHECK_EXPECT(c->begin <= c->end, "chunk begin after end");
    CA_CHECK_EXPECT(ca_is_aligned((uintptr_t)c->end, CA_BUMP_FAST_ALIGN), "chunk end not 16-aligned");
    CA_CHECK_EXPECT(cur >= (uintptr_t)c->begin && cur <= (uintptr_t)c->end, "cursor outside its chunk");
    if (c->size)
        CA_CHECK_EXPECT((const char *)c + c->size >= c->end && (const char *)(c + 1) <= c->begin,
                        "chunk header does not describe its block");
    if (c->size >= CA_OWNER_PAGE)
        CA_CHECK_EXPECT(ca_is_aligned((uintptr_t)c, CA_OWNER_PAGE) && c->size % CA_OWNER_PAGE == 0,
                        "chunk of a page or more is not whole pages");
    return NULL;
}

const char *ca_bump_check(const ca_bump *b)
{
    CA_CHECK_EXPECT(b && b->base.ops == &bump_ops, "not an initialised bump");
    CA_CHECK_EXPECT(!(b->source && b->shared) && (b->source || b->shared || b->mode == CA_BUMP__MODE_FIXED),
                    "a growing bump needs exactly one backing");
    if (!b->chunk) {
        CA_CHECK_EXPECT(!b->cur && !b->end, "cursor without chunk");
    } else {
        CA_CHECK_EXPECT(b->end == b->chunk->end, "cached end differs from the chunk's");
        const char *e = check_chunk(b->chunk, (uintptr_t)b->cur);
        if (e)
            return e;
    }
    uint64_t bytes = 0, used = 0;
    size_t n = 0;
    for (const ca_bump_chunk *c = b->chunk; c; c = c->prev, n++) {
        CA_CHECK_EXPECT(n < WALK_MAX, "cycle in the chunk list");
        CA_CHECK_EXPECT(c->size || c == &b->fixed, "caller memory in a growing bump");
        bytes += c->size ? c->size : (uint64_t)(c->end - c->begin);
        if (c != b->chunk) {
            const char *e = check_chunk(c, c->cur);
            if (e)
                return e;
            used += c->cur - (uintptr_t)c->begin;
        }
    }
    CA_CHECK_EXPECT(b->mode != CA_BUMP__MODE_FIXED || n == 1, "fixed region with several chunks");
    CA_CHECK_EXPECT(bytes == b->chunk_bytes, "chunk byte count differs from the chunks");
    CA_CHECK_EXPECT(used == b->retired_used, "retired byte count differs from the chunks");
    bytes = 0;
    n = 0;
    for (const ca_bump_chunk *c = b->big; c; c = c->prev, n++) {
        CA_CHECK_EXPECT(n < WALK_MAX, "cycle in the oversized list");
        const char *e = check_chunk(c, c->cur);
        if (e)
            return e;
        bytes += c->size;
    }
    CA_CHECK_EXPECT(bytes == b->big_bytes, "oversized byte count differs from the chunks");
    uint64_t serial = UINT64_MAX;
    n = 0;
    for (const ca_bump__mark_rec *r = b->marks; r; r = r->prev, n++) {
        CA_CHECK_EXPECT(n < WALK_MAX, "cycle in the mark list");
        CA_CHECK_EXPECT(ca_bump_owns(b, r), "mark record outside the bump");
        CA_CHECK_EXPECT(r->serial < serial && r->serial <= b->serial, "mark serials out of order");
        serial = r->serial;
        bool found = r->chunk == NULL;
        for (const ca_bump_chunk *c = b->chunk; c && !found; c = c->prev)
            found = c == r->chunk;
        CA_CHECK_EXPECT(found, "mark refers to a chunk not held");
    }
    n = 0;
    for (const ca_bump__dtor *d = b->dtors; d; d = d->next, n++) {
        CA_CHECK_EXPECT(n < WALK_MAX, "cycle in the destructor list");
        CA_CHECK_EXPECT(ca_bump_owns(b, d) && ca_bump_owns(b, d->obj),
                        "destructor record or object outside the bump");
        CA_CHECK_EXPECT(d->fn != NULL, "destructor record without a function");
    }
    return NULL;
}

/* ---- ops table ------------------------------------------------------------------ */

static void *op_alloc(ca_allocator *a, size_t size, size_t align, size_t *usable)
{
    ca_bump *b = (ca_bump *)a;
    void *p = ca_bump_alloc(b, size, align);
    if (p) {
        b->allocs++;
        if (usable)
            *usable = size;
    }
    return p;
}

static void op_free(ca_allocator *a, void *p, size_t size, size_t align) { ca_bump_free((ca_bump *)a, p, size); }

static void *op_resize(ca_allocator *a, void *p, size_t old_size, size_t new_size, size_t align, unsigned flags,
                       size_t *usable)
{
    void *q = ca_bump_resize((ca_bump *)a, p, old_size, new_size, align, flags);
    if (q && usable)
        *usable = new_size;
    return q;
}

static bool op_owns(const ca_allocator *a, const void *p) { return ca_bump_owns((const ca_bump *)a, p); }
static void op_reset(ca_allocator *a) { ca_bump_reset((ca_bump *)a); }
static int op_stats(const ca_allocator *a, ca_stats *out) { return ca_bump_stats((const ca_bump *)a, out); }
static int op_listen(ca_allocator *a, ca_listener *l) { return ca_bump_listen((ca_bump *)a, l); }
static const char *op_check(ca_allocator *a) { return ca_bump_check((const ca_bump *)a); }

static const ca_allocator_ops bump_ops = {
    .name = "bump",
    .caps = CA_CAP_FREE_NOOP,
    .alloc = op_alloc,
    .free = op_free,
    .resize = op_resize,
    .owns = op_owns,
    .reset = op_reset,
    .stats = op_stats,
    .listen = op_listen,
    .check = op_check,
};
