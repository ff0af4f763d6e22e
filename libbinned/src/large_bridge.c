/* SPDX-License-Identifier: MIT */
/*
 * libbinned bridge to the large-object tier: every request above
 * CA_BINNED_SMALL_MAX, and every alignment no size class serves, goes
 * through the functions of this file, and so does free / usable size /
 * resize of any pointer outside the class ranges.
 *
 * With the tier built in (CA_BINNED_HAVE_LARGE, set by meson when
 * src/large/ is in the tree) each instance owns one ca_binned_large: the
 * default instance the process-wide tier, other instances their own. The
 * tier registers its ranges in the ownership map with the instance's
 * ca_allocator as owner, so libswitch routes their frees to us too.
 * Without it, each request is a direct anonymous mapping with a 64-byte
 * header (its base and length), registered in the ownership map the same
 * way, unmapped on free.
 *
 * Concurrency model: the tier is thread-safe; the direct mappings need no
 * shared state besides the (lock-free) ownership map.
 */
#include "binned_internal.h"

#ifdef CA_BINNED_HAVE_LARGE
#include <ctxalloc/binned/large.h>

static ca_binned_large *tier(const ca_binned *b) { return (ca_binned_large *)b->large; }

/* Every maintenance pass of the tier also runs the size classes' decay pass
 * when it is due: with the background thread, idle memory of both tiers
 * goes back without the program calling the allocator. */
static void maintain_classes(void *arg) { ca_binned__maybe_purge((ca_binned *)arg); }

int ca_binned__large_init(ca_binned *b)
{
    ca_binned_large_options o;
    memset(&o, 0, sizeof o);
    o.min_size = CA_BINNED_SMALL_MAX;
    o.owner = b->use_owner_map ? &b->base : NULL;
    o.maintain = maintain_classes;
    o.maintain_arg = b;
    if (b->background)
        o.flags |= CA_BINNED_LARGE_BACKGROUND;
    ca_binned_large *l = NULL;
    int err = 0;
    if (b->is_default) {
        err = ca_binned_large_default_init(&o);
        if (err == 0) {
            l = ca_binned_large_default();
            err = l ? 0 : (errno ? errno : ENOMEM);
        }
    }
    if (!l) {
        err = ca_binned_large_create(&l, &o);
        if (err)
            return err;
    }
    b->large = l;
    return 0;
}

void ca_binned__large_destroy(ca_binned *b)
{
    if (b->large && !b->is_default)
        ca_binned_large_destroy(tier(b));
    b->large = NULL;
}

void *ca_binned__large_alloc(ca_binned *b, size_t size, size_t align, bool zero, size_t *usable)
{
    return ca_binned_large_alloc_flags(tier(b), size, align, zero ? CA_BINNED_LARGE_ZERO : 0, usable);
}

/* large.c: frees p when it is l's block (one lookup). */
bool ca_binned__large_free_owned(ca_binned_large *l, void *p);

bool ca_binned__large_free(ca_binned *b, void *p) { return ca_binned__large_free_owned(tier(b), p); }

size_t ca_binned__large_usable(const ca_binned *b, const void *p)
{
    if (!b->large || !ca_binned_large_owns(tier(b), p))
        return 0;
    return ca_binned_large_usable_size(tier(b), p);
}

void *ca_binned__large_resize(ca_binned *b, void *p, size_t new_size, size_t align, unsigned flags,
                              size_t *usable)
{
    return ca_binned_large_resize(tier(b), p, new_size, align, flags, usable);
}

void ca_binned__large_trim(ca_binned *b) { ca_binned_large_trim(tier(b)); }

void ca_binned__large_background(ca_binned *b)
{
    if (b->background && b->large && !ca_binned_large_background_running(tier(b)))
        (void)ca_binned_large_background_start(tier(b));
}

void ca_binned__large_flush(ca_binned *b) { ca_binned_large_flush_cache(tier(b)); }

void ca_binned__large_stats(const ca_binned *b, ca_stats *out) { ca_binned_large_stats(tier(b), out); }

#else /* direct mappings */

#include <sys/mman.h>

#define HDR 64u
#define MAGIC 0xca1a26eb0b5ull

typedef struct large_hdr {
    void *map;
    size_t len;
    size_t usable;
    uint64_t magic;
} large_hdr;

typedef struct large_state {
    uint64_t in_use, allocs, frees, failures, reserved;
} large_state;

static large_state g_state_default;

int ca_binned__large_init(ca_binned *b)
{
    /* Counters live in the instance's large pointer: the default one is
     * static, others share it too (figures are per process here). */
    b->large = &g_state_default;
    return 0;
}

void ca_binned__large_destroy(ca_binned *b) { b->large = NULL; }

void ca_binned__large_background(ca_binned *b) { (void)b; /* no thread without the tier */ }

static large_hdr *hdr_of(const void *p) { return (large_hdr *)(void *)((char *)(uintptr_t)p - HDR); }

void *ca_binned__large_alloc(ca_binned *b, size_t size, size_t align, bool zero, size_t *usable)
{
    (void)zero; /* every block is a fresh mapping: zero */
    large_state *st = (large_state *)b->large;
    size_t a = align < HDR ? HDR : align, len;
    if (size == 0)
        size = 1;
    if (ca_add_overflows(size, a, &len) || ca_add_overflows(len, a, &len) ||
        ca_align_up_overflows(len, CA_OWNER_GRANULE, &len) || len > ((size_t)1 << 46)) {
        __atomic_fetch_add(&st->failures, 1, __ATOMIC_RELAXED);
        errno = ENOMEM;
        return NULL;
    }
    /* Aligned to a granule for the ownership map. */
    void *m;
    if (ca_os_map_aligned(len, CA_OWNER_GRANULE, ca_page_size(), PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, &m)) {
        __atomic_fetch_add(&st->failures, 1, __ATOMIC_RELAXED);
        errno = ENOMEM;
        return NULL;
    }
    char *base = (char *)m;
    if (b->use_owner_map && ca_owner_register(base, len, &b->base) != 0) {
        (void)ca_os_unmap(base, len);
        __atomic_fetch_add(&st->failures, 1, __ATOMIC_RELAXED);
        errno = ENOMEM;
        return NULL;
    }
    char *p = (char *)ca_align_up((uintptr_t)base + HDR, a);
    large_hdr *h = hdr_of(p);
    h->map = base;
    h->len = len;
    h->usable = (size_t)(base + len - p);
    h->magic = MAGIC ^ (uintptr_t)p;
    if (usable)
        *usable = h->usable;
    __atomic_fetch_add(&st->in_use, h->usable, __ATOMIC_RELAXED);
    __atomic_fetch_add(&st->reserved, len, __ATOMIC_RELAXED);
    __atomic_fetch_add(&st->allocs, 1, __ATOMIC_RELAXED);
    return p;
}

/* Without the ownership map only the header tells (a foreign pointer is
 * then read below its address: documented as undefined). */
static bool mine(const ca_binned *b, const void *p)
{
    if (b->use_owner_map && ca_owner_lookup(p) != &b->base)
        return false;
    if (!ca_is_aligned((uintptr_t)p, 16))
        return false;
    return hdr_of(p)->magic == (MAGIC ^ (uintptr_t)p);
}

bool ca_binned__large_free(ca_binned *b, void *p)
{
    if (!mine(b, p))
        return false;
    large_state *st = (large_state *)b->large;
    large_hdr *h = hdr_of(p);
    void *map = h->map;
    size_t len = h->len;
    __atomic_fetch_sub(&st->in_use, h->usable, __ATOMIC_RELAXED);
    __atomic_fetch_sub(&st->reserved, len, __ATOMIC_RELAXED);
    __atomic_fetch_add(&st->frees, 1, __ATOMIC_RELAXED);
    h->magic = 0;
    if (b->use_owner_map)
        ca_owner_unregister(map, len, &b->base);
    (void)ca_os_unmap(map, len);
    return true;
}

size_t ca_binned__large_usable(const ca_binned *b, const void *p)
{
    return mine(b, p) ? hdr_of(p)->usable : 0;
}

void *ca_binned__large_resize(ca_binned *b, void *p, size_t new_size, size_t align, unsigned flags,
                              size_t *usable)
{
    size_t have = ca_binned__large_usable(b, p);
    if (new_size <= have && (new_size > have / 2 || (flags & CA_RESIZE_IN_PLACE))) {
        if (usable)
            *usable = have;
        return p;
    }
    if (flags & CA_RESIZE_IN_PLACE) {
        errno = ENOMEM;
        return NULL;
    }
    void *q = ca_binned_alloc(b, new_size, align);
    if (!q)
        return NULL;
    memcpy(q, p, new_size < have ? new_size : have);
    ca_binned__large_free(b, p);
    if (usable)
        *usable = ca_binned_usable_size(b, q);
    return q;
}

void ca_binned__large_trim(ca_binned *b) { (void)b; }

void ca_binned__large_flush(ca_binned *b) { (void)b; }

void ca_binned__large_stats(const ca_binned *b, ca_stats *out)
{
    const large_state *st = (const large_state *)b->large;
    ca_stats_init(out, "binned-direct");
    out->bytes_in_use = __atomic_load_n(&st->in_use, __ATOMIC_RELAXED);
    out->bytes_reserved = out->bytes_committed = __atomic_load_n(&st->reserved, __ATOMIC_RELAXED);
    out->allocs = __atomic_load_n(&st->allocs, __ATOMIC_RELAXED);
    out->frees = __atomic_load_n(&st->frees, __ATOMIC_RELAXED);
    out->failures = __atomic_load_n(&st->failures, __ATOMIC_RELAXED);
}

#endif
