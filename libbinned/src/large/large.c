/* SPDX-License-Identifier: MIT */
/*
 * The large-object tier: creation, classes, the allocation and free paths,
 * regions and direct mappings, resize (in place, mremap, copy), and the
 * ca_allocator ops table.
 *
 * Concurrency model: see large_internal.h (area states, lock order). The
 * fast path is a thread-cache pop or push (one uncontended spin lock); the
 * slow paths take one class lock for a pool pop or push; sources are
 * called with no lock held. Read ca_binned_large_alloc_flags and
 * ca_binned_large_free first, then alloc_slow and region_new.
 *
 * Listener events (model in large_listen.c): a region or direct mapping
 * enters its class's list (rgn_link) only after added() accepted it and
 * leaves it (rgn_unlink) just before removed(), each pair under the tier's
 * listen_lock; a refused range goes back to the source and the allocation
 * fails with the refusal's errno.
 */
#include "large_internal.h"

#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4
#endif

/* ------------------------------------------------------------------------
 * Small utilities
 * ------------------------------------------------------------------------ */

uint64_t ca_binned__large_now(void)
{
    struct timespec ts;
    ca_binned__clock(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void *ca_binned__large_os_map(size_t size)
{
    void *p;
    return ca_os_map(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0, &p) ? NULL : p;
}

void ca_binned__large_os_unmap(void *p, size_t size)
{
    if (p)
        (void)ca_os_unmap(p, size);
}

#define SLAB_CHUNK ((size_t)256 << 10)

void *ca_binned__large_slab_get(ca_binned__large_slab *s)
{
    void *p = s->free;
    if (p) {
        s->free = *(void **)p;
        memset(p, 0, s->obj);
        return p;
    }
    if (!s->bump || (size_t)(s->end - s->bump) < s->obj) {
        char *chunk = (char *)ca_binned__large_os_map(SLAB_CHUNK);
        if (!chunk)
            return NULL;
        *(void **)(void *)chunk = s->chunks;
        s->chunks = chunk;
        s->bump = chunk + 64;
        s->end = chunk + SLAB_CHUNK;
    }
    p = s->bump;
    s->bump += s->obj;
    return p; /* fresh mapping: zero */
}

void ca_binned__large_slab_put(ca_binned__large_slab *s, void *p)
{
    *(void **)p = s->free;
    s->free = p;
}

void ca_binned__large_slab_destroy(ca_binned__large_slab *s)
{
    void *c = s->chunks;
    while (c) {
        void *next = *(void **)c;
        ca_binned__large_os_unmap(c, SLAB_CHUNK);
        c = next;
    }
    memset(s, 0, sizeof *s);
}

void ca_binned__large_list_remove(ca_binned__large_area **head, ca_binned__large_area **tail,
                                  ca_binned__large_area *a)
{
    if (a->prev)
        a->prev->next = a->next;
    else
        *head = a->next;
    if (a->next)
        a->next->prev = a->prev;
    else
        *tail = a->prev;
    a->prev = a->next = NULL;
}

void ca_binned__large_list_push_head(ca_binned__large_area **head, ca_binned__large_area **tail,
                                     ca_binned__large_area *a)
{
    a->prev = NULL;
    a->next = *head;
    if (*head)
        (*head)->prev = a;
    else
        *tail = a;
    *head = a;
}

void ca_binned__large_list_push_tail(ca_binned__large_area **head, ca_binned__large_area **tail,
                                     ca_binned__large_area *a)
{
    a->next = NULL;
    a->prev = *tail;
    if (*tail)
        (*tail)->next = a;
    else
        *head = a;
    *tail = a;
}

/* A failed create or default_init: the calling thread's last error (core.h),
 * the parts a, b, c in a row. Returns the line, for more. */
static ca_line *set_error(const char *a, const char *b, const char *c)
{
    ca_line *m = ca_core__last_error_begin(NULL);
    ca_line_str(m, a);
    ca_line_str(m, b);
    ca_line_str(m, c);
    return m;
}

static ca_binned__large_class *class_of_rgn(ca_binned_large *l, const ca_binned__large_rgn *r)
{
    return r->cls == CA_BL_DIRECT_CLASS ? &l->direct : &l->cls[r->cls];
}

/* ------------------------------------------------------------------------
 * Request classification
 * ------------------------------------------------------------------------ */

/* Classify (size, align): *cls = class index, or CA_BL_DIRECT_CLASS with
 * *dsize the mapping size and *dalign its alignment. Returns 0, EINVAL or
 * ENOMEM. */
static int classify(const ca_binned_large *l, size_t size, size_t align, unsigned *cls, size_t *dsize,
                    size_t *dalign)
{
    if (ca_unlikely(!ca_is_pow2(align)))
        return EINVAL;
    size_t need = size > align ? size : align;
    if (ca_likely(need <= l->cls[l->nclasses - 1].size)) {
        unsigned shift = need <= ((size_t)1 << l->min_shift) ? l->min_shift : ca_log2(need - 1) + 1;
        size_t guaranteed = (size_t)1 << shift;
        if (guaranteed > CA_BINNED_LARGE_AREA_ALIGN_MAX)
            guaranteed = CA_BINNED_LARGE_AREA_ALIGN_MAX;
        if (align <= guaranteed) {
            *cls = shift - l->min_shift;
            return 0;
        }
    }
    /* Direct mapping: whole 64 KiB granules (the region map's unit). */
    size_t sz;
    if (ca_align_up_overflows(size ? size : 1, CA_OWNER_GRANULE, &sz))
        return ENOMEM;
    size_t al = align > CA_OWNER_GRANULE ? align : CA_OWNER_GRANULE;
    size_t total;
    if (ca_add_overflows(sz, al, &total) || total >> 47)
        return ENOMEM;
    *cls = CA_BL_DIRECT_CLASS;
    *dsize = sz;
    *dalign = al;
    return 0;
}

size_t ca_binned_large_class_size(const ca_binned_large *l, size_t size, size_t align)
{
    unsigned cls;
    size_t dsize = 0, dalign = 0;
    if (classify(l, size, align, &cls, &dsize, &dalign))
        return 0;
    return cls == CA_BL_DIRECT_CLASS ? dsize : l->cls[cls].size;
}

unsigned ca_binned_large_class_count(const ca_binned_large *l) { return l->nclasses; }

size_t ca_binned_large_class_size_at(const ca_binned_large *l, unsigned i)
{
    return i < l->nclasses ? l->cls[i].size : 0;
}

/* ------------------------------------------------------------------------
 * Regions
 * ------------------------------------------------------------------------ */

static ca_binned__large_rgn *rgn_desc_new(ca_binned_large *l)
{
    ca_binned__large_lock(&l->meta_lock, CA_LOCK_RANK_LARGE_META);
    ca_binned__large_rgn *r = (ca_binned__large_rgn *)ca_binned__large_slab_get(&l->rgn_slab);
    ca_binned__large_unlock(&l->meta_lock, CA_LOCK_RANK_LARGE_META);
    return r;
}

static void rgn_desc_free(ca_binned_large *l, ca_binned__large_rgn *r)
{
    ca_binned__large_lock(&l->meta_lock, CA_LOCK_RANK_LARGE_META);
    ca_binned__large_slab_put(&l->rgn_slab, r);
    ca_binned__large_unlock(&l->meta_lock, CA_LOCK_RANK_LARGE_META);
}

/* Obtain memory for a region and publish it in the maps. Returns the
 * descriptor (not yet linked into its class) or NULL with errno ENOMEM. */
static ca_binned__large_rgn *rgn_map(ca_binned_large *l, size_t size, size_t align, unsigned cls, unsigned shift,
                                     unsigned nareas)
{
    void *mem = NULL;
    /* Areas of 2 MiB and more (whole huge pages) come from the THP source. */
    bool huge = size >= CA_BINNED_LARGE_AREA_ALIGN_MAX &&
                (cls == CA_BL_DIRECT_CLASS || ((size_t)1 << shift) >= CA_BINNED_LARGE_AREA_ALIGN_MAX);
    ca_source *src = huge ? l->src_huge : l->src;
    if (ca_source_obtain(src, size, align, &mem) != 0) {
        errno = ENOMEM;
        return NULL;
    }
    ca_binned__large_rgn *r = rgn_desc_new(l);
    if (!r)
        goto fail_release;
    r->base = (char *)mem;
    r->src = src;
    r->size = size;
    r->tier = l;
    r->cls = cls;
    r->shift = shift;
    r->nareas = nareas;
    for (unsigned i = 0; i < nareas; i++) {
        r->areas[i].rgn = r;
        r->areas[i].index = (uint16_t)i;
        r->areas[i].zero = l->fresh_zero;
    }
    r->rec.owner = l->owner;
    r->rec.free = ca_binned__large_free_rec;
    if (ca_binned__large_map_set(mem, size, r) != 0)
        goto fail_desc;
    return r;
fail_desc:
    rgn_desc_free(l, r);
fail_release:
    ca_source_release(src, mem, size);
    errno = ENOMEM;
    return NULL;
}

/* Unpublish and give a region (already unlinked from its class and
 * uncounted) back. */
void ca_binned__large_release_region(ca_binned_large *l, ca_binned__large_rgn *r)
{
    ca_binned__large_map_clear(r->base, r->size, r);
    ca_source_release(r->src, r->base, r->size);
    rgn_desc_free(l, r);
}

/* Link a region into its class and count it (class lock held, so that the
 * list and the counters agree at any point a fork may see). */
static void rgn_link(ca_binned__large_class *c, ca_binned__large_rgn *r)
{
    CA_BL_ADD(c->n.mapped_bytes, r->size);
    CA_BL_ADD(c->n.regions, 1);
    CA_DLIST_PUSH(c->regions, r, prev, next);
}

void ca_binned__large_rgn_unlink(ca_binned__large_class *c, ca_binned__large_rgn *r)
{
    CA_BL_ADD(c->n.unmapped_bytes, r->size);
    CA_BL_SUB(c->n.regions, 1);
    CA_DLIST_UNLINK(c->regions, r, prev, next);
}

/* Map a new region for class ci: area 0 goes to the caller (IN_USE), the
 * others to the clean pool. NULL with *err = ENOMEM, or the listener's
 * refusal (the region is then given back). */
static ca_binned__large_area *region_new(ca_binned_large *l, unsigned ci, int *err)
{
    ca_binned__large_class *c = &l->cls[ci];
    ca_binned__large_rgn *r = rgn_map(l, c->size * c->nareas, c->region_align, ci, c->shift, c->nareas);
    if (!r) {
        *err = ENOMEM;
        return NULL;
    }
    uint64_t now = ca_binned__large_now();
    ca_binned__large_listen_lock(l);
    int rc = ca_binned__large_ev_added(l, r);
    if (rc) {
        ca_binned__large_listen_unlock(l);
        ca_binned__large_release_region(l, r);
        *err = rc;
        return NULL;
    }
    ca_binned__large_lock(&c->lock, CA_LOCK_RANK_LARGE_CLASS);
    rgn_link(c, r);
    for (unsigned i = r->nareas - 1; i >= 1; i--) {
        ca_binned__large_area *a = &r->areas[i];
        a->state = CA_BL_AREA_CLEAN;
        a->stamp = now;
        ca_binned__large_list_push_head(&c->clean_head, &c->clean_tail, a);
    }
    r->nfree = r->nareas - 1;
    r->last_free = now;
    CA_BL_ADD(c->n.clean_bytes, (size_t)(r->nareas - 1) * c->size);
    ca_binned__large_unlock(&c->lock, CA_LOCK_RANK_LARGE_CLASS);
    ca_binned__large_listen_unlock(l);
    __atomic_store_n(&r->areas[0].state, CA_BL_AREA_IN_USE, __ATOMIC_RELAXED);
    return &r->areas[0];
}

/* ------------------------------------------------------------------------
 * Pools
 * ------------------------------------------------------------------------ */

void ca_binned__large_pool_push_dirty(ca_binned_large *l, ca_binned__large_area *a, uint64_t now)
{
    ca_binned__large_rgn *r = a->rgn;
    ca_binned__large_class *c = &l->cls[r->cls];
    ca_binned__large_lock(&c->lock, CA_LOCK_RANK_LARGE_CLASS);
    __atomic_store_n(&a->state, CA_BL_AREA_DIRTY, __ATOMIC_RELAXED);
    a->stamp = now;
    ca_binned__large_list_push_head(&c->dirty_head, &c->dirty_tail, a);
    r->nfree++;
    r->last_free = now;
    CA_BL_ADD(c->n.dirty_bytes, c->size);
    CA_BL_ADD(l->dirty_total, c->size);
    ca_binned__large_unlock(&c->lock, CA_LOCK_RANK_LARGE_CLASS);
    CA_BL_SUB(l->out_bytes, c->size);
}

void ca_binned__large_out_add(ca_binned_large *l, size_t bytes)
{
    uint64_t out = __atomic_add_fetch(&l->out_bytes, bytes, __ATOMIC_RELAXED);
    uint64_t peak = CA_BL_GET(l->peak);
    while (out > peak &&
           !__atomic_compare_exchange_n(&l->peak, &peak, out, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    }
}

/* Pop an area of class ci from its dirty pool (or, with clean, from its
 * clean pool) and hand it out (IN_USE, counted outside the pools). */
static ca_binned__large_area *pool_pop(ca_binned_large *l, unsigned ci, bool clean, bool *commit_failed)
{
    ca_binned__large_class *c = &l->cls[ci];
    ca_binned__large_area *a = NULL;
    ca_binned__large_lock(&c->lock, CA_LOCK_RANK_LARGE_CLASS);
    if (!clean && c->dirty_head) {
        a = c->dirty_head;
        ca_binned__large_list_remove(&c->dirty_head, &c->dirty_tail, a);
        CA_BL_SUB(c->n.dirty_bytes, c->size);
        CA_BL_SUB(l->dirty_total, c->size);
    } else if (clean && c->clean_head) {
        a = c->clean_head;
        ca_binned__large_list_remove(&c->clean_head, &c->clean_tail, a);
        CA_BL_SUB(c->n.clean_bytes, c->size);
    }
    if (a) {
        a->rgn->nfree--;
        __atomic_store_n(&a->state, CA_BL_AREA_IN_USE, __ATOMIC_RELAXED);
    }
    ca_binned__large_unlock(&c->lock, CA_LOCK_RANK_LARGE_CLASS);
    if (!a)
        return NULL;
    if (a->zero == 2) { /* decommitted: commit again where the source needs it */
        if (l->commit_on_reuse && ca_source_commit(a->rgn->src, ca_binned__large_area_addr(a), c->size) != 0) {
            ca_binned__large_lock(&c->lock, CA_LOCK_RANK_LARGE_CLASS);
            __atomic_store_n(&a->state, CA_BL_AREA_CLEAN, __ATOMIC_RELAXED);
            ca_binned__large_list_push_tail(&c->clean_head, &c->clean_tail, a);
            a->rgn->nfree++;
            CA_BL_ADD(c->n.clean_bytes, c->size);
            ca_binned__large_unlock(&c->lock, CA_LOCK_RANK_LARGE_CLASS);
            *commit_failed = true;
            return NULL;
        }
        a->zero = l->purge_zeroes;
    }
    ca_binned__large_out_add(l, c->size);
    return a;
}

/* Take an area for class ci when the thread cache has none: the class's
 * dirty pool; else a resident area of a bigger class (the next class from
 * the thread's cache, the next two from the dirty pools: a fault-free block
 * beats a clean one that must be faulted in, and fewer areas stay
 * resident); else the clean pool; else a
 * steal from another thread's cache; else a new region. The area returned
 * may belong to class ci + 1 or ci + 2 (its region says so). NULL with
 * *err = ENOMEM or the listener's refusal of a new region. */
static ca_binned__large_area *alloc_slow(ca_binned_large *l, unsigned ci, ca_binned__large_cache *mine, int *err)
{
    *err = ENOMEM;
    bool commit_failed = false;
    ca_binned__large_area *a = pool_pop(l, ci, false, &commit_failed);
    if (a)
        return a;
    if (ci + 1 < l->nclasses) {
        if (mine && (a = ca_binned__large_cache_pop(l, mine, ci + 1)) != NULL) {
            __atomic_store_n(&a->state, CA_BL_AREA_IN_USE, __ATOMIC_RELAXED);
            ca_binned__large_count(mine, &mine->hits[ci + 1], &l->cls[ci + 1].n.cache_hits);
            return a;
        }
        if ((a = pool_pop(l, ci + 1, false, &commit_failed)) != NULL)
            return a;
        if (ci + 2 < l->nclasses && (a = pool_pop(l, ci + 2, false, &commit_failed)) != NULL)
            return a;
    }
    if ((a = pool_pop(l, ci, true, &commit_failed)) != NULL)
        return a;
    if (commit_failed)
        return NULL; /* the source could not commit (file out of space) */
    ca_binned__large_class *c = &l->cls[ci];
    a = ca_binned__large_steal(l, mine, ci);
    if (a) {
        CA_BL_ADD(c->n.steals, 1);
        __atomic_store_n(&a->state, CA_BL_AREA_IN_USE, __ATOMIC_RELAXED);
        return a;
    }
    a = region_new(l, ci, err);
    if (a)
        ca_binned__large_out_add(l, c->size);
    if (a && !__atomic_load_n(&l->bg_running, __ATOMIC_RELAXED))
        ca_binned__large_maintain(l, ca_binned__large_now());
    return a;
}

static void *alloc_direct(ca_binned_large *l, size_t dsize, size_t dalign, unsigned flags, size_t *usable)
{
    ca_binned__large_class *c = &l->direct;
    ca_binned__large_rgn *r = rgn_map(l, dsize, dalign, CA_BL_DIRECT_CLASS, 0, 1);
    if (!r) {
        CA_BL_ADD(c->n.failures, 1);
        return NULL;
    }
    r->areas[0].state = CA_BL_AREA_IN_USE;
    ca_binned__large_listen_lock(l);
    int rc = ca_binned__large_ev_added(l, r);
    if (rc) {
        ca_binned__large_listen_unlock(l);
        ca_binned__large_release_region(l, r);
        CA_BL_ADD(c->n.failures, 1);
        errno = rc;
        return NULL;
    }
    ca_binned__large_lock(&c->lock, CA_LOCK_RANK_LARGE_CLASS);
    rgn_link(c, r);
    ca_binned__large_unlock(&c->lock, CA_LOCK_RANK_LARGE_CLASS);
    ca_binned__large_listen_unlock(l);
    CA_BL_ADD(c->n.allocs, 1);
    ca_binned__large_out_add(l, dsize);
    if ((flags & CA_BINNED_LARGE_ZERO) && !r->areas[0].zero)
        memset(r->base, 0, dsize);
    if (usable)
        *usable = dsize;
    return r->base;
}

/* Region r of class c leaves for good: unlinked under the class lock with
 * the listener told under its lock, counted as a free of `bytes`, and its
 * mapping released. */
static void retire_region(ca_binned_large *l, ca_binned__large_class *c, ca_binned__large_rgn *r, size_t bytes)
{
    ca_binned__large_listen_lock(l);
    ca_binned__large_lock(&c->lock, CA_LOCK_RANK_LARGE_CLASS);
    ca_binned__large_rgn_unlink(c, r);
    ca_binned__large_unlock(&c->lock, CA_LOCK_RANK_LARGE_CLASS);
    ca_binned__large_ev_removed(l, r);
    ca_binned__large_listen_unlock(l);
    CA_BL_ADD(c->n.frees, 1);
    CA_BL_SUB(l->out_bytes, bytes);
    ca_binned__large_release_region(l, r);
}

static void free_direct(ca_binned_large *l, ca_binned__large_rgn *r) { retire_region(l, &l->direct, r, r->size); }

/* ------------------------------------------------------------------------
 * Allocation
 * ------------------------------------------------------------------------ */

void *ca_binned_large_alloc_flags(ca_binned_large *l, size_t size, size_t align, unsigned flags, size_t *usable)
{
    unsigned ci;
    size_t dsize = 0, dalign = 0;
    int rc = classify(l, size, align, &ci, &dsize, &dalign);
    if (ca_unlikely(rc)) {
        CA_BL_ADD(l->direct.n.failures, 1);
        errno = rc;
        return NULL;
    }
    if (ca_unlikely(ci == CA_BL_DIRECT_CLASS))
        return alloc_direct(l, dsize, dalign, flags, usable);

    ca_binned__large_class *c = &l->cls[ci];
    ca_binned__large_cache *mine = ca_binned__large_my_cache(l, false);
    ca_binned__large_area *a = mine ? ca_binned__large_cache_pop(l, mine, ci) : NULL;
    if (ca_likely(a != NULL)) {
        __atomic_store_n(&a->state, CA_BL_AREA_IN_USE, __ATOMIC_RELAXED);
        ca_binned__large_count(mine, &mine->hits[ci], &c->n.cache_hits);
    } else {
        int err;
        a = alloc_slow(l, ci, mine, &err);
        if (!a) {
            CA_BL_ADD(c->n.failures, 1);
            errno = err;
            return NULL;
        }
        ci = a->rgn->cls; /* may be the next class */
        c = &l->cls[ci];
    }
    ca_binned__large_count(mine, mine ? &mine->allocs[ci] : NULL, &c->n.allocs);
    char *p = ca_binned__large_area_addr(a);
    if ((flags & CA_BINNED_LARGE_ZERO) && a->zero != 1)
        memset(p, 0, c->size);
    if (usable)
        *usable = c->size;
    return p;
}

void *ca_binned_large_alloc(ca_binned_large *l, size_t size, size_t align, size_t *usable)
{
    return ca_binned_large_alloc_flags(l, size, align, 0, usable);
}

/* The area of region r that starts at p; NULL (reported) for an interior
 * pointer. */
static ca_binned__large_area *area_at(ca_binned__large_rgn *r, const void *p)
{
    size_t off = (size_t)((const char *)p - r->base);
    size_t mask = r->cls == CA_BL_DIRECT_CLASS ? (size_t)-1 : ((size_t)1 << r->shift) - 1;
    CA_CHECK((off & mask) == 0, CA_BL_COMPONENT, p, "free of an interior pointer");
    if (off & mask)
        return NULL;
    return &r->areas[r->cls == CA_BL_DIRECT_CLASS ? 0 : off >> r->shift];
}

/* The region of p, checked to be l's and p to be the start of a block. */
static ca_binned__large_rgn *rgn_of(const ca_binned_large *l, const void *p, ca_binned__large_area **area)
{
    ca_binned__large_rgn *r = ca_binned__large_map_get(p);
    CA_CHECK(r && r->tier == l, CA_BL_COMPONENT, p, "free of a pointer not from this tier");
    if (!r || r->tier != l)
        return NULL;
    *area = area_at(r, p);
    return *area ? r : NULL;
}

static void free_area(ca_binned_large *l, ca_binned__large_rgn *r, ca_binned__large_area *a, void *p);

void ca_binned_large_free(ca_binned_large *l, void *p)
{
    if (!p)
        return;
    ca_binned__large_area *a = NULL;
    ca_binned__large_rgn *r = rgn_of(l, p, &a);
    if (r)
        free_area(l, r, a, p);
}

bool ca_binned__large_free_owned(ca_binned_large *l, void *p)
{
    ca_binned__large_rgn *r = ca_binned__large_map_get(p);
    if (!r || r->tier != l)
        return false;
    ca_binned__large_area *a = area_at(r, p);
    if (a)
        free_area(l, r, a, p);
    return true;
}

void ca_binned__large_free_rec(ca_owner_record *rec, void *p)
{
    ca_binned__large_rgn *r = ca_binned__large_rgn_of_rec(rec);
    ca_binned__large_area *a = area_at(r, p);
    if (a)
        free_area(r->tier, r, a, p);
}

/* Free area a (of region r of tier l), which starts at p. */
static void free_area(ca_binned_large *l, ca_binned__large_rgn *r, ca_binned__large_area *a, void *p)
{
    uint8_t expect = CA_BL_AREA_IN_USE;
    uint8_t next = r->cls == CA_BL_DIRECT_CLASS ? CA_BL_AREA_FREE_DIRECT : CA_BL_AREA_CACHED;
    bool ok = __atomic_compare_exchange_n(&a->state, &expect, next, false, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
    CA_CHECK(ok, CA_BL_COMPONENT, p, "double free");
    if (!ok)
        return;
    if (r->cls == CA_BL_DIRECT_CLASS) {
        free_direct(l, r);
        return;
    }
    ca_binned__large_class *c = &l->cls[r->cls];
    a->zero = 0;
    ca_binned__large_cache *mine = ca_binned__large_my_cache(l, true);
    ca_binned__large_count(mine, mine ? &mine->frees[r->cls] : NULL, &c->n.frees);
    if (mine && ca_binned__large_cache_push(l, mine, a, r->cls))
        return;
    ca_binned__large_pool_push_dirty(l, a, ca_binned__large_now());
    ca_binned__large_after_dirty(l);
}

size_t ca_binned_large_usable_size(const ca_binned_large *l, const void *p)
{
    if (!p)
        return 0;
    ca_binned__large_area *a = NULL;
    ca_binned__large_rgn *r = rgn_of(l, p, &a);
    if (!r)
        return 0;
    return r->cls == CA_BL_DIRECT_CLASS ? r->size : (size_t)1 << r->shift;
}

bool ca_binned_large_owns(const ca_binned_large *l, const void *p)
{
    ca_binned__large_rgn *r = ca_binned__large_map_get(p);
    return r && r->tier == l;
}

ca_binned_large *ca_binned_large_of(const void *p)
{
    ca_binned__large_rgn *r = ca_binned__large_map_get(p);
    return r ? r->tier : NULL;
}

/* ------------------------------------------------------------------------
 * Resize
 * ------------------------------------------------------------------------ */

/* The kernel refused MREMAP_DONTUNMAP once: from then on moves use a plain
 * mremap while no listener is attached, and copy while one is. */
static int ca_bl_no_dontunmap;

/* A block that is a whole mapping (direct, or the one area of its region). */
static bool whole_mapping(const ca_binned__large_rgn *r) { return r->cls == CA_BL_DIRECT_CLASS || r->nareas == 1; }

/* Retire the region of a whole-mapping block whose pages were moved away. */
static void retire_moved(ca_binned_large *l, ca_binned__large_rgn *r)
{
    if (r->cls == CA_BL_DIRECT_CLASS) {
        __atomic_store_n(&r->areas[0].state, CA_BL_AREA_FREE_DIRECT, __ATOMIC_RELAXED);
        free_direct(l, r);
        return;
    }
    ca_binned__large_class *c = &l->cls[r->cls];
    retire_region(l, c, r, c->size);
}

void *ca_binned_large_resize(ca_binned_large *l, void *p, size_t new_size, size_t align, unsigned flags,
                             size_t *usable)
{
    if (!p)
        return ca_binned_large_alloc(l, new_size, align, usable);
    unsigned ci;
    size_t dsize = 0, dalign = 0;
    int rc = classify(l, new_size, align, &ci, &dsize, &dalign);
    if (rc) {
        errno = rc;
        return NULL;
    }
    ca_binned__large_area *a = NULL;
    ca_binned__large_rgn *r = rgn_of(l, p, &a);
    if (!r) {
        errno = EINVAL;
        return NULL;
    }
    size_t old_usable = r->cls == CA_BL_DIRECT_CLASS ? r->size : (size_t)1 << r->shift;
    bool aligned = ca_is_aligned((uintptr_t)p, align);
    if (new_size <= old_usable && aligned) {
        bool keep = (flags & CA_RESIZE_IN_PLACE) != 0;
        if (r->cls == CA_BL_DIRECT_CLASS)
            keep = keep || (ci == CA_BL_DIRECT_CLASS && dsize > r->size / 2);
        else
            keep = keep || (ci != CA_BL_DIRECT_CLASS && ci + 2 > r->cls);
        if (keep) {
            if (usable)
                *usable = old_usable;
            return p;
        }
    }
    if (flags & CA_RESIZE_IN_PLACE) {
        errno = ENOMEM;
        return NULL;
    }
    size_t qusable = 0;
    void *q = ca_binned_large_alloc(l, new_size, align, &qusable);
    if (!q) {
        if (new_size <= old_usable && aligned) { /* a shrink that could not move stays */
            if (usable)
                *usable = old_usable;
            return p;
        }
        return NULL; /* errno from the allocation (ENOMEM, or a listener's refusal) */
    }
    size_t copy = new_size < old_usable ? new_size : old_usable;
    bool moved = false;
    if (l->can_mremap && whole_mapping(r) && copy >= ((size_t)1 << 20)) {
        ca_binned__large_rgn *qr = ca_binned__large_map_get(q);
        size_t len = ca_align_up(copy, ca_page_size());
        if (qr && whole_mapping(qr) && len <= qusable) {
            /* DONTUNMAP: the old range stays mapped (empty) until the region
             * is released, so no other mapping can land in it while it is
             * still the tier's (registered, reported to a listener). */
            if (!__atomic_load_n(&ca_bl_no_dontunmap, __ATOMIC_RELAXED)) {
                void *to;
                int err = ca_os_remap(p, len, len, MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP, q, &to);
                if (!err)
                    moved = true;
                else if (err == EINVAL) /* kernel before 5.7, valgrind */
                    __atomic_store_n(&ca_bl_no_dontunmap, 1, __ATOMIC_RELAXED);
            }
            /* Without DONTUNMAP the old pages leave a hole until the region
             * is released: only while no listener is attached (it would hear
             * removed() after the range was given up); else copy. */
            void *to;
            if (!moved && __atomic_load_n(&ca_bl_no_dontunmap, __ATOMIC_RELAXED) &&
                !__atomic_load_n(&l->listener, __ATOMIC_ACQUIRE) &&
                ca_os_remap(p, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, q, &to) == 0)
                moved = true;
            if (moved)
                CA_BL_ADD(class_of_rgn(l, qr)->n.mremaps, 1);
        }
    }
    if (moved) {
        retire_moved(l, r);
    } else {
        memcpy(q, p, copy);
        ca_binned_large_free(l, p);
    }
    if (usable)
        *usable = qusable;
    return q;
}

/* ------------------------------------------------------------------------
 * ca_allocator ops
 * ------------------------------------------------------------------------ */

static void *op_alloc(ca_allocator *a, size_t size, size_t align, size_t *usable)
{
    return ca_binned_large_alloc((ca_binned_large *)(void *)a, size, align, usable);
}

static void op_free(ca_allocator *a, void *p, size_t size, size_t align)
{
    ca_binned_large_free((ca_binned_large *)(void *)a, p);
}

static void op_free_unsized(ca_allocator *a, void *p) { ca_binned_large_free((ca_binned_large *)(void *)a, p); }

static size_t op_usable(const ca_allocator *a, const void *p)
{
    return ca_binned_large_usable_size((const ca_binned_large *)(const void *)a, p);
}

static void *op_resize(ca_allocator *a, void *p, size_t old_size, size_t new_size, size_t align, unsigned flags,
                       size_t *usable)
{
    return ca_binned_large_resize((ca_binned_large *)(void *)a, p, new_size, align, flags, usable);
}

static bool op_owns(const ca_allocator *a, const void *p)
{
    return ca_binned_large_owns((const ca_binned_large *)(const void *)a, p);
}

static int op_stats(const ca_allocator *a, ca_stats *out)
{
    return ca_binned_large_stats((const ca_binned_large *)(const void *)a, out);
}

static const char *op_check(ca_allocator *a) { return ca_binned_large_check((ca_binned_large *)(void *)a); }

/* Two tables: a tier that registers its ranges in core's ownership map
 * under itself (CA_BINNED_LARGE_OWNER_SELF) carries CA_CAP_OWNER_MAP, so
 * libswitch can select it as it is; one that registers under another owner
 * (the small tier's allocator) or not at all does not. Both support listen. */
#define LARGE_OPS(caps_)                                                                                 \
    {                                                                                                    \
        .name = "binned-large", .caps = (caps_), .alloc = op_alloc, .free = op_free,                     \
        .free_unsized = op_free_unsized, .usable_size = op_usable, .resize = op_resize, .owns = op_owns, \
        .reset = NULL, .stats = op_stats, .listen = ca_binned__large_listen, .check = op_check,          \
    }
const ca_allocator_ops ca_binned__large_ops = LARGE_OPS(CA_CAP_THREAD_SAFE | CA_CAP_UNSIZED);
const ca_allocator_ops ca_binned__large_ops_self = LARGE_OPS(CA_CAP_THREAD_SAFE | CA_CAP_UNSIZED |
                                                             CA_CAP_OWNER_MAP);

ca_allocator *ca_binned_large_allocator(ca_binned_large *l) { return &l->base; }

/* ------------------------------------------------------------------------
 * Create/destroy
 * ------------------------------------------------------------------------ */

#define KNOWN_FLAGS                                                                       \
    (CA_BINNED_LARGE_BACKGROUND | CA_BINNED_LARGE_FILE | CA_BINNED_LARGE_FILE_FALLBACK |  \
     CA_BINNED_LARGE_PURGE_FREE | CA_BINNED_LARGE_NO_CACHE | CA_BINNED_LARGE_OWNER_SELF | \
     CA_BINNED_LARGE_NO_MREMAP | CA_BINNED_LARGE_HUGE)

static uint64_t ca_bl_next_id = 1;

static int round_shift(size_t v, unsigned *shift)
{
    size_t p2;
    if (ca_next_pow2_overflows(v, &p2))
        return EINVAL;
    *shift = ca_log2(p2);
    return 0;
}

static int setup_source(ca_binned_large *l)
{
    const ca_binned_large_options *o = &l->opt;
    if (o->source) {
        if (!(o->source->ops->caps & CA_SOURCE_THREAD_SAFE)) {
            set_error("binned-large: the source is not thread-safe", NULL, NULL);
            return EINVAL;
        }
        l->src = l->src_huge = o->source;
        l->own_kind = CA_BL_OWN_NONE;
        l->fresh_zero = (o->source->ops->caps & CA_SOURCE_ZEROED) != 0;
        l->purge_zeroes = false;
        l->commit_on_reuse = true;
        l->can_mremap = false;
        return 0;
    }
    if (o->flags & CA_BINNED_LARGE_FILE) {
        ca_source_file_options fo;
        memset(&fo, 0, sizeof fo);
        fo.dir = o->file_dir;
        fo.capacity = o->file_capacity;
        int rc = ca_source_file_init(&l->own.file, &fo);
        if (rc == 0) {
            l->src = l->src_huge = &l->own.file.base;
            l->own_kind = CA_BL_OWN_FILE;
            l->fresh_zero = true;
            l->purge_zeroes = true;
            l->commit_on_reuse = true;
            l->can_mremap = false;
            return 0;
        }
        /* The file source said why in the same message slot: keep its
         * words after ours. */
        char why[CA_LAST_ERROR_MAX];
        const char *fm = ca_last_error();
        why[0] = '\0';
        if (fm) {
            size_t n = strlen(fm) < sizeof why - 1 ? strlen(fm) : sizeof why - 1;
            memcpy(why, fm, n);
            why[n] = '\0';
        }
        ca_line *m = set_error("binned-large: file-backed memory in '", o->file_dir, "' failed");
        if (o->flags & CA_BINNED_LARGE_FILE_FALLBACK)
            ca_line_str(m, ", anonymous memory instead");
        if (why[0]) {
            ca_line_str(m, " (");
            ca_line_str(m, why);
            ca_line_char(m, ')');
        }
        if (!(o->flags & CA_BINNED_LARGE_FILE_FALLBACK))
            return rc;
    }
    ca_source_mmap_options mo;
    memset(&mo, 0, sizeof mo);
    mo.decommit = (o->flags & CA_BINNED_LARGE_PURGE_FREE) ? CA_SOURCE_DECOMMIT_FREE : CA_SOURCE_DECOMMIT_DONTNEED;
    int rc = ca_source_mmap_init(&l->own.mmap, &mo);
    if (rc) {
        set_error("binned-large: anonymous mmap source failed to initialise", NULL, NULL);
        return rc;
    }
    l->src = &l->own.mmap.base;
    l->src_huge = l->src;
    l->own_kind = CA_BL_OWN_MMAP;
    if (o->flags & CA_BINNED_LARGE_HUGE) {
        mo.huge = CA_SOURCE_HUGE_THP;
        if (ca_source_mmap_init(&l->own_huge, &mo) == 0) {
            l->own_huge_live = true;
            l->src_huge = &l->own_huge.base;
        }
    }
    l->fresh_zero = true;
    l->purge_zeroes = !(o->flags & CA_BINNED_LARGE_PURGE_FREE);
    l->commit_on_reuse = false;
    l->can_mremap = !(o->flags & CA_BINNED_LARGE_NO_MREMAP);
    return 0;
}

int ca_binned_large_create(ca_binned_large **out, const ca_binned_large_options *o)
{
    ca_binned_large_options opt;
    if (!out) {
        set_error("binned-large: out is NULL", NULL, NULL);
        return EINVAL;
    }
    if (o)
        opt = *o;
    else
        memset(&opt, 0, sizeof opt);
    if (opt.flags & ~KNOWN_FLAGS) {
        set_error("binned-large: unknown flag", NULL, NULL);
        return EINVAL;
    }
    if ((opt.flags & CA_BINNED_LARGE_FILE) && !opt.source && !opt.file_dir) {
        set_error("binned-large: CA_BINNED_LARGE_FILE needs file_dir", NULL, NULL);
        return EINVAL;
    }
    if (!opt.min_size)
        opt.min_size = CA_BINNED_LARGE_MIN_SIZE_DEFAULT;
    if (!opt.max_size)
        opt.max_size = CA_BINNED_LARGE_MAX_SIZE_DEFAULT;
    if (!opt.region_size)
        opt.region_size = CA_BINNED_LARGE_REGION_SIZE_DEFAULT;
    if (!opt.cache_bytes)
        opt.cache_bytes = CA_BINNED_LARGE_CACHE_BYTES_DEFAULT;
    if (!opt.dirty_max)
        opt.dirty_max = CA_BINNED_LARGE_DIRTY_MAX_DEFAULT;
    if (!opt.dirty_decay_ms)
        opt.dirty_decay_ms = CA_BINNED_LARGE_DIRTY_DECAY_MS_DEFAULT;
    if (!opt.unmap_decay_ms)
        opt.unmap_decay_ms = CA_BINNED_LARGE_UNMAP_DECAY_MS_DEFAULT;
    unsigned min_shift, max_shift;
    if (round_shift(opt.min_size, &min_shift) || round_shift(opt.max_size, &max_shift) ||
        min_shift < CA_BINNED_LARGE_MIN_SHIFT || max_shift > CA_BINNED_LARGE_MAX_SHIFT || max_shift < min_shift) {
        set_error("binned-large: min_size / max_size outside 4 KiB .. 1 TiB or min > max", NULL, NULL);
        return EINVAL;
    }

    ca_binned_large *l = (ca_binned_large *)ca_binned__large_os_map(sizeof *l);
    if (!l) {
        set_error("binned-large: no memory for the tier", NULL, NULL);
        return ENOMEM;
    }
    l->base.ops = &ca_binned__large_ops;
    l->id = __atomic_fetch_add(&ca_bl_next_id, 1, __ATOMIC_RELAXED);
    l->opt = opt;
    l->min_shift = min_shift;
    l->max_shift = max_shift;
    l->nclasses = max_shift - min_shift + 1;
    l->caches_lk = &l->caches_lock;
    for (unsigned i = 0; i < l->nclasses; i++) {
        ca_binned__large_class *c = &l->cls[i];
        c->shift = min_shift + i;
        c->size = (size_t)1 << c->shift;
        size_t n = opt.region_size / c->size;
        size_t lo = CA_OWNER_GRANULE > c->size ? CA_OWNER_GRANULE / c->size : 1;
        if (n < lo)
            n = lo;
        if (n > CA_BINNED_LARGE_REGION_AREAS)
            n = CA_BINNED_LARGE_REGION_AREAS;
        c->nareas = (unsigned)n;
        size_t al = c->size < CA_BINNED_LARGE_AREA_ALIGN_MAX ? c->size : CA_BINNED_LARGE_AREA_ALIGN_MAX;
        c->region_align = al > CA_OWNER_GRANULE ? al : CA_OWNER_GRANULE;
    }
    l->rgn_slab.obj = ca_align_up(sizeof(ca_binned__large_rgn), 64);
    l->cache_slab.obj = ca_align_up(sizeof(ca_binned__large_cache), 64);
    uint64_t d = (uint64_t)opt.dirty_decay_ms * 1000000u, u = (uint64_t)opt.unmap_decay_ms * 1000000u;
    l->dirty_decay_ns = d;
    l->unmap_decay_ns = u;
    uint64_t period = (d < u ? d : u) / 4;
    if (period < 1000000u)
        period = 1000000u;
    if (period > 1000000000u)
        period = 1000000000u;
    l->maint_period_ns = period;
    l->last_maint = ca_binned__large_now();

    int rc = setup_source(l);
    if (rc) {
        ca_binned__large_os_unmap(l, sizeof *l);
        return rc;
    }
    if (opt.owner)
        l->owner = opt.owner;
    else if (opt.flags & CA_BINNED_LARGE_OWNER_SELF)
        l->owner = &l->base;
    l->base.ops = l->owner == (void *)&l->base ? &ca_binned__large_ops_self : &ca_binned__large_ops;
    ca_binned__large_tls_init();
    ca_binned__large_bg_init(l);
    ca_binned__large_registry_add(l);
    *out = l;
    return 0;
}

static void release_class_regions(ca_binned_large *l, ca_binned__large_class *c)
{
    ca_binned__large_rgn *r = c->regions;
    while (r) {
        ca_binned__large_rgn *next = r->next;
        ca_binned__large_release_region(l, r);
        r = next;
    }
    c->regions = NULL;
    c->dirty_head = c->dirty_tail = c->clean_head = c->clean_tail = NULL;
}

void ca_binned_large_destroy(ca_binned_large *l)
{
    if (!l)
        return;
    ca_binned_large_background_stop(l);
    ca_binned__large_ev_destroy(l);
    ca_binned__large_registry_remove(l);
    ca_binned__large_caches_destroy(l);
    for (unsigned i = 0; i < l->nclasses; i++)
        release_class_regions(l, &l->cls[i]);
    release_class_regions(l, &l->direct);
    ca_binned__large_slab_destroy(&l->rgn_slab);
    ca_binned__large_slab_destroy(&l->cache_slab);
    if (l->own_huge_live)
        ca_source_mmap_destroy(&l->own_huge);
    if (l->own_kind == CA_BL_OWN_MMAP)
        ca_source_mmap_destroy(&l->own.mmap);
    else if (l->own_kind == CA_BL_OWN_FILE)
        ca_source_file_destroy(&l->own.file);
    pthread_mutex_destroy(&l->bg_mutex);
    pthread_cond_destroy(&l->bg_cond);
    ca_binned__large_os_unmap(l, sizeof *l);
}

/* ------------------------------------------------------------------------
 * The process-wide tier
 * ------------------------------------------------------------------------ */

static ca_binned_large *ca_bl_default;
static int ca_bl_default_lock;

int ca_binned_large_default_init(const ca_binned_large_options *o)
{
    ca_binned__large_lock(&ca_bl_default_lock, CA_LOCK_RANK_LARGE_DEFAULT);
    if (__atomic_load_n(&ca_bl_default, __ATOMIC_ACQUIRE)) {
        ca_binned__large_unlock(&ca_bl_default_lock, CA_LOCK_RANK_LARGE_DEFAULT);
        set_error("binned-large: the process-wide tier already exists", NULL, NULL);
        return EBUSY;
    }
    ca_binned_large *l = NULL;
    int rc = ca_binned_large_create(&l, o);
    if (rc == 0)
        __atomic_store_n(&ca_bl_default, l, __ATOMIC_RELEASE);
    ca_binned__large_unlock(&ca_bl_default_lock, CA_LOCK_RANK_LARGE_DEFAULT);
    return rc;
}

ca_binned_large *ca_binned_large_default(void)
{
    ca_binned_large *l = __atomic_load_n(&ca_bl_default, __ATOMIC_ACQUIRE);
    if (ca_likely(l != NULL))
        return l;
    ca_binned__large_lock(&ca_bl_default_lock, CA_LOCK_RANK_LARGE_DEFAULT);
    l = __atomic_load_n(&ca_bl_default, __ATOMIC_ACQUIRE);
    if (!l) {
        ca_binned_large_options o;
        memset(&o, 0, sizeof o);
        o.flags = CA_BINNED_LARGE_BACKGROUND;
        int rc = ca_binned_large_create(&l, &o);
        if (rc) {
            ca_binned__large_unlock(&ca_bl_default_lock, CA_LOCK_RANK_LARGE_DEFAULT);
            errno = rc;
            return NULL;
        }
        __atomic_store_n(&ca_bl_default, l, __ATOMIC_RELEASE);
    }
    ca_binned__large_unlock(&ca_bl_default_lock, CA_LOCK_RANK_LARGE_DEFAULT);
    return l;
}
