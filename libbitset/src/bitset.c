/* SPDX-License-Identifier: MIT */
/*
 * libbitset's allocator: creation over a source or a caller buffer, runs of
 * blocks (alloc, sized and unsized free, resize), reset, owns, usable size,
 * and the ca_allocator ops table.
 *
 * Read first: bitset_internal.h (the object and its invariants), then
 * ca_bitset_alloc and ca_bitset_resize here; the bitmap work is in levels.c,
 * the invariant walk and stats in check.c.
 *
 * Concurrency: single-threaded; one thread at a time per instance. Thread
 * safety comes from core's locked adaptor wrapped around the ops table.
 */
#include "bitset_internal.h"

#include <stddef.h>
#include <sys/mman.h>

#define COMPONENT "bitset"

/* ca_bitset_allocator() and the ops casts rely on the base coming first;
 * the maps are carved after a 64-byte aligned header. */
_Static_assert(offsetof(struct ca_bitset, base) == 0, "ca_allocator must be the first member");
_Static_assert(_Alignof(struct ca_bitset) <= 64, "metadata header alignment");

/* --- failure reporting -------------------------------------------------- */

/* Report "<what> <index>" through ca_check_fail without allocating. */
ca_attr_noreturn ca_attr_cold static void fail_block(const void *p, const char *what, size_t index,
                                                     const char *file, int line)
{
    char buf[128];
    ca_line l;
    ca_line_init(&l, buf, sizeof buf);
    ca_line_str(&l, what);
    ca_line_char(&l, ' ');
    ca_line_u64(&l, index, 10);
    ca_check_fail(COMPONENT, p, buf, file, line);
}

#define FAIL_BLOCK(p, what, i) fail_block((p), (what), (i), __FILE__, __LINE__)

#define full_check(b) CA_CHECK_WALK(COMPONENT, (b), ca_bitset_check)

/* --- sizes -------------------------------------------------------------- */

struct layout {
    size_t nblocks;
    unsigned nlevels;
    size_t nwords[CA_BITSET__MAX_LEVELS];
    size_t meta; /* total metadata bytes */
};

static size_t header_bytes(void) { return ca_align_up(sizeof(ca_bitset), 64); }

/* Fills *lo from a validated block size; false on overflow or too many blocks. */
static bool compute_layout(size_t region_size, size_t block_size, struct layout *lo)
{
    lo->nblocks = region_size >> ca_log2(block_size);
    if (lo->nblocks == 0 || lo->nblocks > CA_BITSET_MAX_BLOCKS)
        return false;
    size_t words = (lo->nblocks + 63) / 64; /* cannot overflow: nblocks <= 2^40 */
    size_t total = 0, t;
    unsigned l = 0;
    lo->nwords[l] = words;
    /* level 0 with its sentinel word, and the run-start map */
    if (ca_add_overflows(words, 1, &t) || ca_add_overflows(t, words, &total))
        return false;
    while (lo->nwords[l] > 1) {
        l++;
        lo->nwords[l] = (lo->nwords[l - 1] + 63) / 64;
        if (ca_add_overflows(total, lo->nwords[l], &total))
            return false;
    }
    lo->nlevels = l + 1;
    if (ca_mul_overflows(total, sizeof(uint64_t), &total) || ca_add_overflows(total, header_bytes(), &total))
        return false;
    lo->meta = total;
    return true;
}

static bool block_size_valid(size_t bs)
{
    return ca_is_pow2(bs) && bs >= CA_BITSET_BLOCK_MIN && bs <= CA_BITSET_BLOCK_MAX;
}

size_t ca_bitset_meta_size(size_t region_size, size_t block_size)
{
    struct layout lo;
    if (!block_size_valid(block_size) || region_size == 0 || region_size % block_size)
        return 0;
    return compute_layout(region_size, block_size, &lo) ? lo.meta : 0;
}

/* Blocks for a request: size 0 takes one block. false: overflow or more
 * blocks than the region has. */
static bool blocks_for(const ca_bitset *b, size_t size, size_t *k)
{
    size_t r;
    if (size == 0) {
        *k = 1;
        return true;
    }
    if (ca_align_up_overflows(size, b->block_size, &r))
        return false;
    *k = r >> b->shift;
    return *k <= b->nblocks;
}

/* --- create / destroy ----------------------------------------------------- */

/* All blocks free, summaries set accordingly, no run starts. */
static void clear_maps(ca_bitset *b)
{
    size_t n = b->nblocks;
    for (unsigned l = 0; l < b->nlevels; l++) {
        uint64_t *lv = b->level[l];
        size_t bits = l == 0 ? n : b->nwords[l - 1];
        size_t full = bits / 64;
        for (size_t w = 0; w < full; w++)
            lv[w] = ~(uint64_t)0;
        if (bits % 64)
            lv[full] = ~(uint64_t)0 >> (64 - bits % 64);
    }
    b->level[0][b->nwords[0]] = 0; /* sentinel */
    memset(b->starts, 0, b->nwords[0] * sizeof(uint64_t));
    b->low = 0;
    b->run_k = 0;
    b->run_hint = 0;
    b->blocks_in_use = 0;
    b->runs_in_use = 0;
    b->peak_blocks = 0;
}

static const char *op_check(ca_allocator *a) { return ca_bitset_check((const ca_bitset *)a); }

static const ca_allocator_ops bitset_ops;

int ca_bitset_create(ca_bitset **out, const ca_bitset_options *opt)
{
    /* The one place zeros become defaults: o is the caller's options (NULL:
     * all-zero) with each 0 field replaced (bitset.h). */
    ca_bitset_options o;
    if (!out)
        return EINVAL;
    if (opt)
        o = *opt;
    else
        memset(&o, 0, sizeof o);
    if (!o.block_size)
        o.block_size = CA_BITSET_BLOCK_DEFAULT;
    if (!o.region_size) {
        if (o.buffer)
            return EINVAL; /* a buffer's size is the caller's to give */
        o.region_size = CA_BITSET_REGION_DEFAULT;
    }
    size_t bs = o.block_size;
    if (!block_size_valid(bs) || o.region_size % bs)
        return EINVAL;
    if (o.source && o.buffer)
        return EINVAL;
    if (o.buffer && !ca_is_aligned((uintptr_t)o.buffer, bs))
        return EINVAL;
    if (!o.buffer && (o.meta || o.meta_size))
        return EINVAL;
    struct layout lo;
    if (!compute_layout(o.region_size, bs, &lo))
        return lo.nblocks > CA_BITSET_MAX_BLOCKS ? EINVAL : ENOMEM;
    if (o.buffer && (uintptr_t)o.buffer > UINTPTR_MAX - o.region_size)
        return EINVAL;

    void *meta = NULL, *region = NULL;
    size_t meta_bytes = 0, region_obtained = 0;
    int meta_mapped = 0, region_mapped = 0;
    int e;
    if (o.source) {
        ca_source *s = o.source;
        size_t g = ca_source_granule(s);
        /* The data region in whole ownership-map pages (both powers of two,
         * so a multiple of CA_OWNER_PAGE and of g), aligned to the block
         * size, the granule and the page. */
        size_t rg = g > CA_OWNER_PAGE ? g : CA_OWNER_PAGE, ralign = bs > rg ? bs : rg;
        if (ca_align_up_overflows(lo.meta, g, &meta_bytes) ||
            ca_align_up_overflows(o.region_size, rg, &region_obtained))
            return ENOMEM;
        e = ca_source_obtain(s, meta_bytes, g, &meta);
        if (e)
            return e;
        e = ca_source_obtain(s, region_obtained, ralign, &region);
        if (e) {
            ca_source_release(s, meta, meta_bytes);
            return e;
        }
        if (!ca_is_aligned((uintptr_t)region, ralign)) { /* a source breaking its contract */
            ca_source_release(s, region, region_obtained);
            ca_source_release(s, meta, meta_bytes);
            return EINVAL;
        }
    } else {
        if (o.buffer) {
            region = o.buffer;
        } else {
            /* Own memory: an anonymous mapping in whole ownership-map pages,
             * aligned to the block size and the page. */
            size_t pg = ca_page_size(), rg = pg > CA_OWNER_PAGE ? pg : CA_OWNER_PAGE;
            if (ca_align_up_overflows(o.region_size, rg, &region_obtained))
                return ENOMEM;
            if (ca_os_map_aligned(region_obtained, bs > rg ? bs : rg, pg, PROT_READ | PROT_WRITE,
                                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, &region))
                return ENOMEM;
            region_mapped = 1;
        }
        if (o.meta) {
            if (o.meta_size < lo.meta || !ca_is_aligned((uintptr_t)o.meta, 64))
                return EINVAL;
            meta = o.meta;
        } else {
            if (ca_page_round_overflows(lo.meta, &meta_bytes) ||
                ca_os_map(NULL, meta_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0, &meta)) {
                if (region_mapped)
                    (void)ca_os_unmap(region, region_obtained);
                return ENOMEM;
            }
            meta_mapped = 1;
        }
    }

    ca_bitset *b = (ca_bitset *)meta;
    memset(b, 0, sizeof *b);
    b->base.ops = &bitset_ops;
    b->region = (unsigned char *)region;
    b->region_size = o.region_size;
    b->nblocks = lo.nblocks;
    b->block_size = bs;
    b->shift = ca_log2(bs);
    b->nlevels = lo.nlevels;
    uint64_t *w = (uint64_t *)(void *)((unsigned char *)meta + header_bytes());
    for (unsigned l = 0; l < lo.nlevels; l++) {
        b->nwords[l] = lo.nwords[l];
        b->level[l] = w;
        w += lo.nwords[l] + (l == 0); /* level 0 has the sentinel word */
    }
    b->starts = w;
    b->source = o.source;
    b->region_obtained = region_obtained;
    b->region_mapped = region_mapped;
    b->meta = meta;
    b->meta_bytes = meta_bytes;
    b->meta_mapped = meta_mapped;
    clear_maps(b);
    *out = b;
    return 0;
}

/* The range reported to a listener: the data region as held (what was
 * obtained from the source or mapped, or the caller's buffer). */
static void held_region(const ca_bitset *b, void **base, size_t *size)
{
    *base = b->region;
    *size = b->region_obtained ? b->region_obtained : b->region_size;
}

int ca_bitset_listen(ca_bitset *b, ca_listener *l)
{
    void *base;
    size_t size;
    held_region(b, &base, &size);
    if (!l) {
        ca_listener *old = b->listener;
        b->listener = NULL;
        if (old && old->removed)
            old->removed(old, base, size);
        return 0;
    }
    if (b->listener)
        return EBUSY;
    if (l->added) {
        int e = l->added(l, base, size);
        if (e)
            return e; /* the only range: nothing reported to take back */
    }
    b->listener = l;
    return 0;
}

void ca_bitset_destroy(ca_bitset *b)
{
    if (!b)
        return;
    ca_listener *l = b->listener;
    if (l) {
        void *base;
        size_t size;
        held_region(b, &base, &size);
        if (l->destroyed)
            l->destroyed(l);
        if (l->removed)
            l->removed(l, base, size);
        b->listener = NULL;
    }
    if (b->source) {
        ca_source *s = b->source;
        void *meta = b->meta;
        size_t mb = b->meta_bytes;
        ca_source_release(s, b->region, b->region_obtained);
        ca_source_release(s, meta, mb);
        return;
    }
    if (b->region_mapped)
        (void)ca_os_unmap(b->region, b->region_obtained);
    if (b->meta_mapped)
        (void)ca_os_unmap(b->meta, b->meta_bytes);
    else
        b->base.ops = NULL; /* the caller's meta: leave a dead object */
}

/* --- allocation ------------------------------------------------------------ */

/* The block index of p. Outside the region is always fatal (the maps would
 * be written out of bounds); a pointer inside a block is a checks=on error. */
static size_t index_of(const ca_bitset *b, const void *p)
{
    uintptr_t off = (uintptr_t)p - (uintptr_t)b->region;
    CA_ASSERT(off < b->region_size, COMPONENT, p, "pointer outside the region");
    size_t i = off >> b->shift;
    if (CA_CHECKS >= CA_CHECKS_ON && (off & (b->block_size - 1)))
        FAIL_BLOCK(p, "pointer not at a block boundary, inside block", i);
    return i;
}

/* checks >= on: p must be the start of a live run. */
static void check_live_start(const ca_bitset *b, const void *p, size_t i, const char *op_double)
{
    if (CA_CHECKS >= CA_CHECKS_ON) {
        if (ca_bitset__is_free(b, i))
            FAIL_BLOCK(p, op_double, i);
        if (!ca_bitset__is_start(b, i))
            FAIL_BLOCK(p, "pointer inside a run, not at its start: block", i);
    }
}

void *ca_bitset_alloc(ca_bitset *b, size_t size, size_t align, size_t *usable)
{
    if (ca_unlikely(!ca_is_pow2(align))) {
        b->failures++;
        errno = EINVAL;
        return NULL;
    }
    size_t k, i;
    if (ca_unlikely(!blocks_for(b, size, &k)))
        goto nomem;
    if (align <= b->block_size) {
        if (k == 1) {
            /* Fast path: the lowest free block is usually in low's word. */
            size_t low = b->low, w = low >> 6;
            uint64_t m = w < b->nwords[0] ? b->level[0][w] & (~(uint64_t)0 << (low & 63)) : 0;
            i = m ? (w << 6) + (size_t)__builtin_ctzll(m) : ca_bitset__next_free(b, low);
            if (i != CA_BITSET__NONE)
                b->low = i + 1; /* i was the lowest free block */
        } else {
            /* The run hint: repeated requests of one length do not walk again
             * over the holes too small for them. */
            size_t from = b->low;
            if (k == b->run_k && b->run_hint > from)
                from = b->run_hint;
            i = ca_bitset__find_run(b, from, k, 1, 0);
            /* None below i; i .. i+k-1 are about to be allocated. */
            b->run_k = k;
            b->run_hint = i == CA_BITSET__NONE ? b->nblocks : i + k;
        }
    } else {
        /* Runs must start at addresses that are multiples of align: every
         * step-th block from the first such block. */
        uintptr_t base = (uintptr_t)b->region, first;
        if (ca_align_up_overflows(base, align, &first) || first - base >= b->region_size)
            goto nomem;
        size_t step = align >> b->shift;
        size_t off = (size_t)(first - base) >> b->shift; /* < step */
        size_t from = b->low;
        if (k == b->run_k && b->run_hint > from)
            from = b->run_hint; /* an aligned k-run is a k-run */
        i = ca_bitset__find_run(b, from, k, step, off);
    }
    if (i == CA_BITSET__NONE)
        goto nomem;
    ca_bitset__mark(b, i, k, false);
    ca_bitset__set_start(b, i);
    b->blocks_in_use += k;
    b->runs_in_use++;
    if (b->blocks_in_use > b->peak_blocks)
        b->peak_blocks = b->blocks_in_use;
    b->allocs++;
    if (usable)
        *usable = k << b->shift;
    full_check(b);
    return b->region + (i << b->shift);
nomem:
    b->failures++;
    errno = ENOMEM;
    return NULL;
}

static void release_run(ca_bitset *b, size_t i, size_t k)
{
    ca_bitset__clear_start(b, i);
    ca_bitset__mark(b, i, k, true);
    ca_bitset__lower_hints(b, i);
    b->blocks_in_use -= k;
    b->runs_in_use--;
    b->frees++;
}

void ca_bitset_free(ca_bitset *b, void *p, size_t size)
{
    if (!p)
        return;
    size_t i = index_of(b, p), k;
    check_live_start(b, p, i, "double free of block");
    bool ok = blocks_for(b, size, &k) && k <= b->nblocks - i;
    CA_ASSERT(ok, COMPONENT, p, "free size runs past the region");
    if (CA_CHECKS >= CA_CHECKS_ON && k != ca_bitset__run_length(b, i))
        FAIL_BLOCK(p, "free size does not match the run at block", i);
    release_run(b, i, k);
    full_check(b);
}

void ca_bitset_free_unsized(ca_bitset *b, void *p)
{
    if (!p)
        return;
    size_t i = index_of(b, p);
    check_live_start(b, p, i, "double free of block");
    release_run(b, i, ca_bitset__run_length(b, i));
    full_check(b);
}

void *ca_bitset_resize(ca_bitset *b, void *p, size_t old_size, size_t new_size, size_t align, unsigned flags,
                       size_t *usable)
{
    if (ca_unlikely(!ca_is_pow2(align))) {
        b->failures++;
        errno = EINVAL;
        return NULL;
    }
    if (!p) {
        if (flags & CA_RESIZE_IN_PLACE) {
            b->failures++;
            errno = ENOMEM;
            return NULL;
        }
        return ca_bitset_alloc(b, new_size, align, usable);
    }
    size_t i = index_of(b, p);
    check_live_start(b, p, i, "resize of free block");
    size_t oldk = ca_bitset__run_length(b, i), newk, chk;
    if (CA_CHECKS >= CA_CHECKS_ON && (!blocks_for(b, old_size, &chk) || chk != oldk))
        FAIL_BLOCK(p, "resize old size does not match the run at block", i);
    if (!blocks_for(b, new_size, &newk))
        goto nomem; /* overflow or larger than the region: p untouched */

    if (ca_is_aligned((uintptr_t)p, align)) {
        if (newk <= oldk) { /* shrink (or same): always in place */
            if (newk < oldk) {
                ca_bitset__mark(b, i + newk, oldk - newk, true);
                ca_bitset__lower_hints(b, i + newk);
                b->blocks_in_use -= oldk - newk;
            }
            goto in_place;
        }
        size_t extra = newk - oldk;
        if (newk <= b->nblocks - i && ca_bitset__first_used(b, i + oldk, i + newk) == CA_BITSET__NONE) {
            ca_bitset__mark(b, i + oldk, extra, false);
            b->blocks_in_use += extra;
            if (b->blocks_in_use > b->peak_blocks)
                b->peak_blocks = b->blocks_in_use;
            goto in_place;
        }
    }
    if (flags & CA_RESIZE_IN_PLACE)
        goto nomem;
    /* Move: the new run is allocated while the old one is still held, so a
     * failure leaves the original allocated and intact. */
    void *q = ca_bitset_alloc(b, new_size, align, usable);
    if (!q)
        return NULL; /* errno and failures set by alloc */
    size_t n = old_size < new_size ? old_size : new_size;
    if (n > oldk << b->shift)
        n = oldk << b->shift;
    memcpy(q, p, n);
    release_run(b, i, oldk);
    b->resize_moved++;
    full_check(b);
    return q;
in_place:
    b->resize_in_place++;
    if (usable)
        *usable = newk << b->shift;
    full_check(b);
    return p;
nomem:
    b->failures++;
    errno = ENOMEM;
    return NULL;
}

void ca_bitset_reset(ca_bitset *b)
{
    if (b->listener && b->listener->reset)
        b->listener->reset(b->listener); /* the region stays: nothing is removed */
    clear_maps(b);
    full_check(b);
}

/* --- introspection ---------------------------------------------------------- */

bool ca_bitset_owns(const ca_bitset *b, const void *p)
{
    return p && (uintptr_t)p - (uintptr_t)b->region < b->region_size;
}

size_t ca_bitset_usable_size(const ca_bitset *b, const void *p)
{
    if (!p)
        return 0;
    size_t i = index_of(b, p);
    check_live_start(b, p, i, "usable size of free block");
    if (ca_bitset__is_free(b, i) || !ca_bitset__is_start(b, i))
        return 0;
    return ca_bitset__run_length(b, i) << b->shift;
}

size_t ca_bitset_block_size(const ca_bitset *b) { return b->block_size; }
size_t ca_bitset_nblocks(const ca_bitset *b) { return b->nblocks; }
void *ca_bitset_base(const ca_bitset *b) { return b->region; }

/* --- ops table ------------------------------------------------------------- */

static void *op_alloc(ca_allocator *a, size_t size, size_t align, size_t *usable)
{
    return ca_bitset_alloc((ca_bitset *)a, size, align, usable);
}

static void op_free(ca_allocator *a, void *p, size_t size, size_t align)
{
    ca_bitset_free((ca_bitset *)a, p, size);
}

static void op_free_unsized(ca_allocator *a, void *p) { ca_bitset_free_unsized((ca_bitset *)a, p); }

static size_t op_usable_size(const ca_allocator *a, const void *p)
{
    return ca_bitset_usable_size((const ca_bitset *)a, p);
}

static void *op_resize(ca_allocator *a, void *p, size_t old_size, size_t new_size, size_t align, unsigned flags,
                       size_t *usable)
{
    return ca_bitset_resize((ca_bitset *)a, p, old_size, new_size, align, flags, usable);
}

static bool op_owns(const ca_allocator *a, const void *p) { return ca_bitset_owns((const ca_bitset *)a, p); }
static void op_reset(ca_allocator *a) { ca_bitset_reset((ca_bitset *)a); }
static int op_stats(const ca_allocator *a, ca_stats *out) { return ca_bitset_stats((const ca_bitset *)a, out); }
static int op_listen(ca_allocator *a, ca_listener *l) { return ca_bitset_listen((ca_bitset *)a, l); }

static const ca_allocator_ops bitset_ops = {
    .name = "bitset",
    .caps = CA_CAP_UNSIZED,
    .alloc = op_alloc,
    .free = op_free,
    .free_unsized = op_free_unsized,
    .usable_size = op_usable_size,
    .resize = op_resize,
    .owns = op_owns,
    .reset = op_reset,
    .stats = op_stats,
    .listen = op_listen,
    .check = op_check,
};
