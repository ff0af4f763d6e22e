/* SPDX-License-Identifier: MIT */
/*
 * libarena objects: options, in-memory arenas (heap or anonymous mapping
 * through a ca_source), close, error messages, statistics, the invariant
 * walk and the small accessors. Files are in file.c, allocation in alloc.c.
 *
 * Concurrency model: create / close / check need a single caller; stats and
 * the accessors read atomic fields and may run at any time.
 * Read first: ca_arena_create, then alloc.c.
 */
#include <ctxalloc/source.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "arena_internal.h"

#define COMP "arena"

enum { OWN_NONE = 0, OWN_HEAP = 1, OWN_MMAP = 2 };

typedef union own_source {
    ca_source_heap heap;
    ca_source_mmap mmap;
} own_source;

const char *ca_arena__resolve_options(const ca_arena_options *in, bool open, ca_arena_options *out)
{
    if (in)
        *out = *in;
    else
        memset(out, 0, sizeof *out);
    /* Zero is the default, field by field (arena.h). */
    if (!out->capacity)
        out->capacity = CA_ARENA_CAPACITY_DEFAULT;
    if (!out->min_segment)
        out->min_segment = CA_ARENA_MIN_SEGMENT_DEFAULT;
    if (!out->max_retries)
        out->max_retries = CA_ARENA_MAX_RETRIES_DEFAULT;
    if (!out->auto_compact)
        out->auto_compact = CA_ARENA_AUTO_COMPACT_DEFAULT;
    if (!out->local_cache)
        out->local_cache = CA_ARENA_LOCAL_CACHE_DEFAULT;
    if (open) {
        if (out->freelist == CA_ARENA_FREELIST_DEFAULT)
            out->freelist = CA_ARENA_FREELIST_ANY; /* offset_bits 0: any width */
    } else {
        if (out->freelist == CA_ARENA_FREELIST_DEFAULT)
            out->freelist = CA_ARENA_FREELIST_OPTIMISTIC;
        if (!out->offset_bits)
            out->offset_bits = CA_ARENA_OFFSET_BITS_DEFAULT;
    }
    if ((unsigned)out->freelist < CA_ARENA_FREELIST_NONE ||
        (unsigned)out->freelist > (open ? CA_ARENA_FREELIST_ANY : CA_ARENA_FREELIST_PESSIMISTIC))
        return open ? "unknown free-list kind" : "unknown free-list kind (ANY is for ca_arena_open_file)";
    if (out->offset_bits && out->offset_bits != 32 && out->offset_bits != 64)
        return "offset_bits is neither 32 nor 64";
    if (out->min_segment < CA_ARENA_GRAIN || out->min_segment % CA_ARENA_GRAIN)
        return "min_segment is not a multiple of 16";
    if (out->flags & ~CA_ARENA_REPLACE)
        return "unknown flag";
    if ((unsigned)out->order > CA_ARENA_FRESH_FIRST)
        return "unknown order";
    if (!open && (unsigned)out->backing > CA_ARENA_BACKING_ANON)
        return "unknown backing";
    return NULL;
}

const char *ca_arena__create_layout(const ca_arena_options *in, ca_arena_options *o, uint64_t *capacity,
                                    uint64_t *data_off)
{
    const char *bad = ca_arena__resolve_options(in, false, o);
    if (bad)
        return bad;
    size_t cap, doff;
    if (ca_add_overflows(CA_ARENA_HEADER_SIZE, o->user_size, &doff) ||
        ca_align_up_overflows(doff, CA_ARENA__DATA_ALIGN, &doff))
        return "user_size too large";
    if (o->capacity > SIZE_MAX || ca_page_round_overflows((size_t)o->capacity, &cap) ||
        (uint64_t)cap > (UINT64_MAX >> 2))
        return "capacity too large";
    if (cap <= doff || cap - doff < CA_ARENA_GRAIN)
        return "capacity leaves no room for blocks after the header and the user area";
    if (o->offset_bits == 32 && cap > CA_ARENA_MAX_CAPACITY_32)
        return "capacity above the 32-bit offset limit (CA_ARENA_MAX_CAPACITY_32)";
    *capacity = cap;
    *data_off = doff;
    return NULL;
}

ca_arena *ca_arena__new(const ca_arena_options *o)
{
    size_t sz = ca_align_up(sizeof(ca_arena), 64);
    ca_arena *a = (ca_arena *)aligned_alloc(64, sz);
    if (!a)
        return NULL;
    memset(a, 0, sz);
    a->base.ops = &ca_arena__ops;
    a->fd = -1;
    a->kind = o->freelist;
    a->wide = o->offset_bits != 32;
    a->user_version = o->user_version;
    a->min_segment = o->min_segment;
    a->max_retries = o->max_retries;
    a->auto_compact = o->auto_compact == CA_ARENA_AUTO_COMPACT_OFF ? 0 : o->auto_compact;
    a->local_cache = o->local_cache == CA_ARENA_LOCAL_CACHE_OFF ? 0 : o->local_cache;
    a->order = o->order == CA_ARENA_FRESH_FIRST ? CA_ARENA_FRESH_FIRST : CA_ARENA_REUSE_FIRST;
    a->fault = o->fault;
    a->mode = CA_ARENA_READ_WRITE;
    pthread_mutex_init(&a->file_lock, NULL);
    pthread_mutex_init(&a->listen_lock, NULL);
    pthread_mutex_init(&a->list_lock, NULL);
    return a;
}

void ca_arena__delete(ca_arena *a)
{
    pthread_mutex_destroy(&a->list_lock);
    pthread_mutex_destroy(&a->listen_lock);
    pthread_mutex_destroy(&a->file_lock);
    free(a);
}

/* The calling thread's message for a failed ca_arena_create: "arena:
 * create: <what>[: <errno text>]". Returns err. */
static int create_fail(const char *what, int err, bool with_errno)
{
    ca_line *m = ca_core__last_error_begin(COMP);
    ca_line_str(m, "create: ");
    ca_line_str(m, what);
    if (with_errno) {
        ca_line_str(m, ": ");
        ca_line_errno(m, err);
    }
    return err;
}

int ca_arena_create(ca_arena **out, const ca_arena_options *opt)
{
    ca_arena_options ro;
    const ca_arena_options *o = &ro;
    uint64_t cap = 0, doff = 0;
    const char *bad = ca_arena__create_layout(opt, &ro, &cap, &doff);
    if (!out)
        bad = "out is NULL";
    if (bad)
        return create_fail(bad, EINVAL, false);
    ca_arena *a = ca_arena__new(o);
    if (!a)
        return create_fail("no memory for the arena", ENOMEM, true);
    a->backing = CA_ARENA__BACK_SOURCE;
    a->capacity = cap;
    a->data_off = doff;
    a->user_size = o->user_size;
    int err = 0, own = OWN_NONE;
    own_source *os = NULL;
    if (o->source) {
        a->src = o->source;
    } else {
        os = (own_source *)malloc(sizeof *os);
        if (!os) {
            ca_arena__delete(a);
            return create_fail("no memory for the arena's source", ENOMEM, true);
        }
        if (o->backing == CA_ARENA_BACKING_HEAP) {
            err = ca_source_heap_init(&os->heap, &(ca_source_heap_options){.fault = o->fault});
            own = OWN_HEAP;
            a->src = &os->heap.base;
        } else {
            err = ca_source_mmap_init(&os->mmap, &(ca_source_mmap_options){.fault = o->fault});
            own = OWN_MMAP;
            a->src = &os->mmap.base;
        }
        if (err) {
            free(os);
            ca_arena__delete(a);
            return create_fail("the default source failed to initialise", err, true);
        }
    }
    /* At least page alignment and whole pages (cap is page-rounded), also
     * from the heap source (posix_memalign): the region is then made of
     * whole ownership-map pages (CA_OWNER_PAGE), so a listener can route it. */
    size_t g = ca_source_granule(a->src), obtained;
    void *mem = NULL;
    if (ca_align_up_overflows((size_t)cap, g, &obtained))
        err = ENOMEM;
    else
        err = ca_source_obtain(a->src, obtained, g > CA_ARENA_MAX_ALIGN ? g : CA_ARENA_MAX_ALIGN, &mem);
    if (err) {
        if (own == OWN_HEAP)
            ca_source_heap_destroy(&os->heap);
        else if (own == OWN_MMAP)
            ca_source_mmap_destroy(&os->mmap);
        free(os);
        ca_arena__delete(a);
        return create_fail("obtaining the region from the source", err, true);
    }
    a->own_src = os;
    a->own_kind = own;
    a->obtained = obtained;
    a->mem = (unsigned char *)mem;
    memset(a->mem, 0, (size_t)doff);
    ca_arena__init_live(a, doff, 0, 0, 0, 0);
    *out = a;
    return 0;
}

int ca_arena_close(ca_arena *a)
{
    if (!a)
        return 0;
    int err = 0;
    ca_arena__listen_close(a);
    ca_arena__caches_close(a); /* every thread's cache back to the arena (and the file's header) */
    if (a->backing == CA_ARENA__BACK_FILE) {
        if (a->mode == CA_ARENA_READ_WRITE)
            err = ca_arena_flush(a);
        (void)ca_os_unmap(a->mem, (size_t)a->capacity);
        close(a->fd);
    } else {
        ca_source_release(a->src, a->mem, (size_t)a->obtained);
        own_source *os = (own_source *)a->own_src;
        if (a->own_kind == OWN_HEAP)
            ca_source_heap_destroy(&os->heap);
        else if (a->own_kind == OWN_MMAP)
            ca_source_mmap_destroy(&os->mmap);
        free(os);
    }
    ca_arena__delete(a);
    return err;
}

const char *ca_arena_strerror(ca_arena_error e)
{
    switch (e) {
    case CA_ARENA_OK: return "no error";
    case CA_ARENA_E_SYSTEM: return "system call failed (see the errno returned)";
    case CA_ARENA_E_EMPTY: return "zero-length file";
    case CA_ARENA_E_SHORT_HEADER: return "file shorter than the arena header";
    case CA_ARENA_E_MAGIC: return "wrong magic: not an arena file";
    case CA_ARENA_E_LAYOUT_VERSION: return "unsupported layout version";
    case CA_ARENA_E_CHECKSUM: return "header checksum mismatch";
    case CA_ARENA_E_STATE: return "header state word damaged";
    case CA_ARENA_E_RESERVED: return "reserved header bytes not zero";
    case CA_ARENA_E_FIELD: return "header field out of range";
    case CA_ARENA_E_USER_VERSION: return "user version mismatch";
    case CA_ARENA_E_FREELIST_KIND: return "free-list kind mismatch";
    case CA_ARENA_E_OFFSET_WIDTH: return "offset width mismatch";
    case CA_ARENA_E_TRUNCATED: return "file shorter than its recorded capacity";
    case CA_ARENA_E_FREELIST: return "recorded free list damaged";
    case CA_ARENA_E_EXISTS: return "file exists";
    case CA_ARENA_E_OPTIONS: return "invalid options";
    case CA_ARENA_E_COUNT: break;
    }
    return "unknown arena error";
}

/* ------------------------------------------------------------------------
 * Introspection
 * ------------------------------------------------------------------------ */

static inline uint64_t ld(const uint64_t *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }

int ca_arena_stats(const ca_arena *a, ca_stats *out)
{
    CA_STATS_COUNTERS(CA_ARENA_COUNTERS);
    ca_stats_init(out, "arena");
    ca_arena__cache_sums cs;
    ca_arena__caches_sum(a, &cs);
    out->bytes_in_use = CA_ARENA__SUM(a, in_use) + cs.in_use;
    out->bytes_reserved = a->capacity;
    out->bytes_committed = a->capacity;
    out->peak_in_use = ld(&a->peak);
    out->allocs = CA_ARENA__SUM(a, allocs) + cs.allocs;
    out->frees = CA_ARENA__SUM(a, frees) + cs.frees;
    out->failures = CA_ARENA__SUM(a, failures);
    CA_STATS_SET(out, cursor, ca_arena_cursor(a));
    CA_STATS_SET(out, discarded, ld(&a->discarded));
    CA_STATS_SET(out, free_bytes, ld(&a->free_bytes));
    CA_STATS_SET(out, free_segments, ld(&a->free_count));
    CA_STATS_SET(out, pending_segments, ld(&a->pending_count));
    CA_STATS_SET(out, cas_retries, CA_ARENA__SUM(a, retries));
    CA_STATS_SET(out, rewinds, CA_ARENA__SUM(a, rewinds) + cs.rewinds);
    CA_STATS_SET(out, cached_bytes, cs.cached);
    CA_STATS_SET(out, chunk_bytes, cs.chunk);
    CA_STATS_SET(out, caches, cs.caches);
    CA_STATS_SET(out, flushes, ld(&a->flushes));
    CA_STATS_SET(out, list_steps, ld(&a->list_steps));
    CA_STATS_SET(out, shared_bin_bytes, CA_ARENA__SUM(a, sbin_bytes) + cs.sbin_bytes);
    CA_STATS_SET(out, bin_folds, ld(&a->bin_folds));
    return 0;
}

typedef struct span {
    uint64_t off, size;
} span;

/* Heap sort by offset, in place: qsort may call malloc, and the walk must
 * not allocate (the arena may be the allocator behind malloc). */
static void span_sift(span *v, uint64_t i, uint64_t n)
{
    for (uint64_t c; (c = 2 * i + 1) < n; i = c) {
        if (c + 1 < n && v[c + 1].off > v[c].off)
            c++;
        if (v[i].off >= v[c].off)
            return;
        span t = v[i];
        v[i] = v[c];
        v[c] = t;
    }
}

static void span_sort(span *v, uint64_t n)
{
    for (uint64_t i = n / 2; i-- > 0;)
        span_sift(v, i, n);
    for (uint64_t k = n; k-- > 1;) {
        span t = v[0];
        v[0] = v[k];
        v[k] = t;
        span_sift(v, 0, k);
    }
}

/* Walk one list (head or pending) into v[*n...]; NULL or a message. */
static const char *walk(const ca_arena *a, uint64_t first, uint64_t cur, bool sorted, span *v, uint64_t cap,
                        uint64_t *n, uint64_t *bytes)
{
    uint64_t ps = 0;
    for (uint64_t x = first; x; (*n)++) {
        uint64_t sz, next;
        if (*n >= cap)
            return "free list longer than its count (cycle or lost counter)";
        if (x < a->data_off || x % CA_ARENA_GRAIN || x > a->capacity - CA_ARENA_GRAIN)
            return "free segment offset out of range";
        ca_arena__node_get(a, x, &sz, &next);
        if (sz < CA_ARENA_GRAIN || sz % CA_ARENA_GRAIN)
            return "free segment size not on the grain";
        if (sz > cur - x)
            return "free segment beyond the cursor";
        if (sorted && *n && x != first) {
            bool ok = sz == ps || (a->kind == CA_ARENA_FREELIST_OPTIMISTIC ? ps > sz : ps < sz);
            if (!ok)
                return "free list not sorted for its kind";
        }
        v[*n].off = x;
        v[*n].size = sz;
        *bytes += sz;
        ps = sz;
        x = next;
    }
    return NULL;
}

/* Walk the shared bins into v[*n...] (every chain of every bin); NULL or a
 * message. */
static const char *walk_sbins(const ca_arena *a, uint64_t cur, span *v, uint64_t cap, uint64_t *n, uint64_t *bytes)
{
    for (unsigned bi = 0; bi < CA_ARENA__SBIN_SHARDS * CA_ARENA__BINS; bi++) {
        uint64_t size = (uint64_t)(bi % CA_ARENA__BINS + 1) * CA_ARENA_GRAIN;
        uint64_t ch = __atomic_load_n(&a->sbin[bi].top.half[0], __ATOMIC_ACQUIRE);
        for (; ch; ch = ((const uint64_t *)(const void *)(a->mem + ch))[1]) {
            for (uint64_t x = ch; x; x = *(const uint64_t *)(const void *)(a->mem + x), (*n)++) {
                if (*n >= cap)
                    return "shared bins longer than their count (cycle or lost counter)";
                if (x < a->data_off || x % CA_ARENA_GRAIN || x > a->capacity - CA_ARENA_GRAIN)
                    return "shared bin block offset out of range";
                if (size > cur - x || size < a->min_segment)
                    return "shared bin block beyond the cursor or below min_segment";
                v[*n].off = x;
                v[*n].size = size;
                *bytes += size;
            }
        }
    }
    return NULL;
}

/* Counting (v NULL) or collecting the spans the thread caches hold. */
typedef struct cache_count {
    uint64_t n, bytes, unused;
    span *v;
    uint64_t room;
    bool bad;
} cache_count;

static void count_span(void *ctx, uint64_t off, uint64_t size)
{
    cache_count *c = ctx;
    if (!size) {
        c->bad = true;
        return;
    }
    if (c->v) {
        if (c->n >= c->room)
            return;
        c->v[c->n].off = off;
        c->v[c->n].size = size;
    }
    c->n++;
    c->bytes += size;
}

const char *ca_arena_check(const ca_arena *ca)
{
    ca_arena *a = (ca_arena *)(uintptr_t)ca;
    uint64_t cur = ca_arena_cursor(a);
    if (cur < a->data_off || cur > a->capacity || cur % CA_ARENA_GRAIN)
        return "cursor out of range";
    ca_arena__tw h = ca_arena__tw_load(a, 0), p = ca_arena__tw_load(a, 1);
    if (h.gen & 1)
        return "free-list token held (check needs an idle arena)";
    if (a->kind == CA_ARENA_FREELIST_NONE && (h.off || p.off))
        return "free list not empty with kind none";
    uint64_t fc = ld(&a->free_count), pc = ld(&a->pending_count);
    ca_arena__cache_sums cs;
    ca_arena__caches_sum(a, &cs);
    uint64_t sc = CA_ARENA__SUM(a, sbin_blocks) + cs.sbin_blocks,
             sb = CA_ARENA__SUM(a, sbin_bytes) + cs.sbin_bytes;
    cache_count cc = {0, 0, 0, NULL, 0, false};
    ca_arena__caches_walk(a, count_span, &cc);
    uint64_t cap = fc + pc + sc + cc.n + 1;
    /* Scratch from the OS, not malloc: a walk never allocates (the arena
     * may be the allocator behind malloc). */
    size_t scratch = ca_align_up((size_t)cap * sizeof(span), ca_page_size());
    void *mem = NULL;
    if (ca_os_map(NULL, scratch, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0, &mem))
        return "no memory for the check's scratch";
    span *v = (span *)mem;
    uint64_t n = 0, fb = 0, pb = 0;
    const char *why = walk(a, h.off, cur, true, v, cap, &n, &fb);
    if (!why && n != fc)
        why = "free segment count differs from the list";
    if (!why && fb != ld(&a->free_bytes))
        why = "free bytes differ from the list";
    uint64_t n0 = n;
    if (!why)
        why = walk(a, p.off, cur, false, v, cap, &n, &pb);
    if (!why && (n - n0 != pc || pb != ld(&a->pending_bytes)))
        why = "pending counters differ from the stack";
    uint64_t n1 = n, wb = 0;
    if (!why)
        why = walk_sbins(a, cur, v, cap, &n, &wb);
    if (!why && (n - n1 != sc || wb != sb))
        why = "shared bin counters differ from the bins";
    if (!why && cc.bad)
        why = "thread cache damaged (bin link out of range or count wrong)";
    if (!why && (cc.bytes != cs.cached + cs.chunk))
        why = "thread cache bytes differ from its bins and chunk";
    if (!why) { /* the caches' blocks and chunks join the overlap test */
        cache_count fill = {0, 0, 0, v + n, cap - n, false};
        ca_arena__caches_walk(a, count_span, &fill);
        for (uint64_t i = 0; i < fill.n && !why; i++)
            if (v[n + i].off < a->data_off || v[n + i].size > cur - v[n + i].off)
                why = "thread cache memory beyond the cursor";
        n += fill.n;
    }
    if (!why) {
        span_sort(v, n);
        for (uint64_t i = 1; i < n && !why; i++)
            if (v[i - 1].off + v[i - 1].size > v[i].off)
                why = "free segments overlap";
    }
    if (!why && CA_ARENA__SUM(a, in_use) + cs.in_use + fb + pb + wb + ld(&a->discarded) + cs.cached + cs.chunk !=
                    cur - a->data_off)
        why = "in use + free + pending + shared bins + discarded + cached != cursor - data start";
    (void)ca_os_unmap(mem, scratch);
    return why;
}

uint64_t ca_arena_capacity(const ca_arena *a) { return a->capacity; }
uint64_t ca_arena_cursor(const ca_arena *a) { return __atomic_load_n(&a->cursor, __ATOMIC_ACQUIRE); }
uint64_t ca_arena_data_start(const ca_arena *a) { return a->data_off; }
ca_arena_freelist ca_arena_freelist_kind(const ca_arena *a) { return a->kind; }
unsigned ca_arena_offset_bits(const ca_arena *a) { return a->wide ? 64u : 32u; }
uint32_t ca_arena_user_version(const ca_arena *a) { return a->user_version; }
bool ca_arena_read_only(const ca_arena *a) { return a->mode == CA_ARENA_READ_ONLY; }
ca_allocator *ca_arena_allocator(ca_arena *a) { return &a->base; }

void *ca_arena_ptr(const ca_arena *a, uint64_t off)
{
    if (!off || off >= a->capacity)
        return NULL;
    return a->mem + off;
}

uint64_t ca_arena_offset(const ca_arena *a, const void *p)
{
    uintptr_t x = (uintptr_t)p, b = (uintptr_t)a->mem;
    if (x < b || x - b >= a->capacity)
        return 0;
    return (uint64_t)(x - b);
}

void *ca_arena_user_area(const ca_arena *a, size_t *size)
{
    if (size)
        *size = (size_t)a->user_size;
    return a->user_size ? a->mem + CA_ARENA_HEADER_SIZE : NULL;
}
