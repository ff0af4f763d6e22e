/* SPDX-License-Identifier: MIT */
/*
 * Introspection of the large-object tier (statistics per class and in
 * total, the invariant walk) and the region buffers built on it.
 *
 * Concurrency: statistics read relaxed atomic counters without locks;
 * ca_binned_large_check takes every lock of the tier in the documented
 * order. Region buffers are owned by their caller (not thread-safe each).
 */
#include "large_internal.h"

/* ------------------------------------------------------------------------
 * Statistics
 * ------------------------------------------------------------------------ */

/* Operation counters and cached bytes of the live caches, per class. */
typedef struct cache_sums {
    uint64_t allocs[CA_BINNED_LARGE_MAX_CLASSES], frees[CA_BINNED_LARGE_MAX_CLASSES];
    uint64_t hits[CA_BINNED_LARGE_MAX_CLASSES], cached[CA_BINNED_LARGE_MAX_CLASSES];
} cache_sums;

static void sum_caches(const ca_binned_large *l, cache_sums *s)
{
    memset(s, 0, sizeof *s);
    ca_binned__large_lock(l->caches_lk, CA_LOCK_RANK_LARGE_CACHES);
    for (ca_binned__large_cache *c = l->caches; c; c = c->next) {
        ca_binned__large_lock(&c->lock, CA_LOCK_RANK_LARGE_CACHE);
        for (unsigned k = 0; k < l->nclasses; k++) {
            s->allocs[k] += CA_BL_GET(c->allocs[k]);
            s->frees[k] += CA_BL_GET(c->frees[k]);
            s->hits[k] += CA_BL_GET(c->hits[k]);
            s->cached[k] += (uint64_t)c->count[k] * l->cls[k].size;
        }
        ca_binned__large_unlock(&c->lock, CA_LOCK_RANK_LARGE_CACHE);
    }
    ca_binned__large_unlock(l->caches_lk, CA_LOCK_RANK_LARGE_CACHES);
}

static void add_counter(ca_stats *s, const char *name, uint64_t v)
{
    uint64_t old = 0;
    ca_stats_get_counter(s, name, &old);
    ca_stats_set_counter(s, name, old + v);
}

/* Add class counters n (plus the caches' share for class k, or none with
 * k = CA_BL_DIRECT_CLASS) into out. */
static void add_class(ca_stats *out, const ca_binned__large_counters *n, const cache_sums *cs, unsigned k)
{
    CA_STATS_COUNTERS(CA_BINNED_LARGE_CLASS_COUNTERS);
    bool c = k != CA_BL_DIRECT_CLASS;
    out->allocs += CA_BL_GET(n->allocs) + (c ? cs->allocs[k] : 0);
    out->frees += CA_BL_GET(n->frees) + (c ? cs->frees[k] : 0);
    out->failures += CA_BL_GET(n->failures);
    uint64_t mapped = CA_BL_GET(n->mapped_bytes), unmapped = CA_BL_GET(n->unmapped_bytes);
    out->bytes_reserved += mapped - unmapped;
    out->bytes_committed += mapped - unmapped - CA_BL_GET(n->clean_bytes);
    add_counter(out, CA_STATS_NAME(cache_hits), CA_BL_GET(n->cache_hits) + (c ? cs->hits[k] : 0));
    add_counter(out, CA_STATS_NAME(steals), CA_BL_GET(n->steals));
    add_counter(out, CA_STATS_NAME(cached_bytes), c ? cs->cached[k] : 0);
    add_counter(out, CA_STATS_NAME(dirty_bytes), CA_BL_GET(n->dirty_bytes));
    add_counter(out, CA_STATS_NAME(clean_bytes), CA_BL_GET(n->clean_bytes));
    add_counter(out, CA_STATS_NAME(purged_bytes), CA_BL_GET(n->purged_bytes));
    add_counter(out, CA_STATS_NAME(mapped_bytes), mapped);
    add_counter(out, CA_STATS_NAME(unmapped_bytes), unmapped);
    add_counter(out, CA_STATS_NAME(regions), CA_BL_GET(n->regions));
    add_counter(out, CA_STATS_NAME(mremaps), CA_BL_GET(n->mremaps));
}

int ca_binned_large_stats(const ca_binned_large *l, ca_stats *out)
{
    CA_STATS_COUNTERS(CA_BINNED_LARGE_COUNTERS);
    cache_sums cs;
    sum_caches(l, &cs);
    ca_stats_init(out, "binned-large");
    uint64_t cached = 0;
    for (unsigned i = 0; i < l->nclasses; i++) {
        add_class(out, &l->cls[i].n, &cs, i);
        cached += cs.cached[i];
    }
    add_class(out, &l->direct.n, &cs, CA_BL_DIRECT_CLASS);
    add_counter(out, CA_STATS_NAME(direct_allocs), CA_BL_GET(l->direct.n.allocs));
    add_counter(out, CA_STATS_NAME(background_runs), CA_BL_GET(l->bg_runs));
    uint64_t outside = CA_BL_GET(l->out_bytes);
    out->bytes_in_use = outside > cached ? outside - cached : 0;
    out->peak_in_use = CA_BL_GET(l->peak);
    return 0;
}

int ca_binned_large_class_stats(const ca_binned_large *l, unsigned i, ca_stats *out)
{
    ca_stats_init(out, "binned-large");
    if (i > l->nclasses)
        return EINVAL;
    cache_sums cs;
    sum_caches(l, &cs);
    if (i == l->nclasses) {
        add_class(out, &l->direct.n, &cs, CA_BL_DIRECT_CLASS);
        /* direct mappings differ in size: in use = mapped and not yet unmapped */
        out->bytes_in_use = CA_BL_GET(l->direct.n.mapped_bytes) - CA_BL_GET(l->direct.n.unmapped_bytes);
        return 0;
    }
    add_class(out, &l->cls[i].n, &cs, i);
    out->bytes_in_use = (out->allocs - out->frees) * l->cls[i].size;
    return 0;
}

/* ------------------------------------------------------------------------
 * Invariant walk
 * ------------------------------------------------------------------------ */

static const char *check_list(ca_binned__large_area *head, ca_binned__large_area *tail, uint8_t state,
                              const ca_binned__large_class *c, unsigned ci, uint64_t *count)
{
    ca_binned__large_area *prev = NULL;
    *count = 0;
    for (ca_binned__large_area *a = head; a; a = a->next) {
        if (a->prev != prev)
            return "pool list: prev link broken";
        if (__atomic_load_n(&a->state, __ATOMIC_RELAXED) != state)
            return "pool list: area state does not match its list";
        if (a->rgn->cls != ci || a->rgn->tier == NULL)
            return "pool list: area of another class";
        if (a->index >= a->rgn->nareas || &a->rgn->areas[a->index] != a)
            return "pool list: area index inconsistent";
        prev = a;
        ++*count;
        if (*count > ((uint64_t)1 << 40))
            return "pool list: cycle";
    }
    if (prev != tail)
        return "pool list: tail pointer wrong";
    (void)c;
    return NULL;
}

static const char *check_class(ca_binned_large *l, ca_binned__large_class *c, unsigned ci, uint64_t cached)
{
    uint64_t ndirty, nclean;
    const char *m = check_list(c->dirty_head, c->dirty_tail, CA_BL_AREA_DIRTY, c, ci, &ndirty);
    if (m)
        return m;
    m = check_list(c->clean_head, c->clean_tail, CA_BL_AREA_CLEAN, c, ci, &nclean);
    if (m)
        return m;
    if (ndirty * c->size != CA_BL_GET(c->n.dirty_bytes))
        return "dirty_bytes differs from the dirty list";
    if (nclean * c->size != CA_BL_GET(c->n.clean_bytes))
        return "clean_bytes differs from the clean list";
    (void)cached;
    uint64_t nreg = 0, nfree_total = 0, mapped = 0, in_use = 0;
    for (ca_binned__large_rgn *r = c->regions; r; r = r->next) {
        if (r->tier != l || r->cls != ci)
            return "region on the wrong list";
        if (r->next && r->next->prev != r)
            return "region list: prev link broken";
        if (ca_binned__large_map_get(r->base) != r || ca_binned__large_map_get(r->base + r->size - 1) != r)
            return "region map does not point at a live region";
        unsigned nfree = 0, nbusy = 0;
        for (unsigned k = 0; k < r->nareas; k++) {
            uint8_t st = __atomic_load_n(&r->areas[k].state, __ATOMIC_RELAXED);
            nfree += st == CA_BL_AREA_DIRTY || st == CA_BL_AREA_CLEAN;
            nbusy += st == CA_BL_AREA_BUSY;
            in_use += st == CA_BL_AREA_IN_USE;
        }
        if (nfree != r->nfree || nbusy != r->nbusy)
            return "region free/busy counts differ from its areas";
        nfree_total += nfree;
        mapped += r->size;
        nreg++;
    }
    if (nfree_total != ndirty + nclean)
        return "areas marked free are missing from the pools";
    if (nreg != CA_BL_GET(c->n.regions))
        return "region count differs";
    if (mapped != CA_BL_GET(c->n.mapped_bytes) - CA_BL_GET(c->n.unmapped_bytes))
        return "mapped bytes differ from the regions";
    /* (areas in use == allocs - frees holds only when no thread is between
     * taking an area and counting it; the tests compare it when quiescent) */
    (void)in_use;
    return NULL;
}

const char *ca_binned_large_check(ca_binned_large *l)
{
    const char *m = NULL;
    uint64_t cached[CA_BINNED_LARGE_MAX_CLASSES];
    memset(cached, 0, sizeof cached);
    ca_binned__large_lock(&l->caches_lock, CA_LOCK_RANK_LARGE_CACHES);
    for (ca_binned__large_cache *c = l->caches; c; c = c->next)
        ca_binned__large_lock(&c->lock, CA_LOCK_RANK_LARGE_CACHE);
    for (ca_binned__large_cache *c = l->caches; c && !m; c = c->next) {
        size_t bytes = 0;
        if (!c->live)
            m = "dead cache on the live list";
        for (unsigned k = 0; k < l->nclasses && !m; k++) {
            if (c->count[k] > CA_BINNED_LARGE_CACHE_SLOTS)
                m = "cache count above its slots";
            for (unsigned i = 0; i < c->count[k] && !m; i++)
                if (__atomic_load_n(&c->slot[k][i]->state, __ATOMIC_RELAXED) != CA_BL_AREA_CACHED ||
                    c->slot[k][i]->rgn->cls != k)
                    m = "cached area not in state CACHED or of another class";
            bytes += (size_t)c->count[k] * l->cls[k].size;
            cached[k] += c->count[k];
        }
        if (!m && bytes != c->bytes)
            m = "cache byte count differs from its slots";
        if (!m && c->bytes > l->opt.cache_bytes)
            m = "cache above its byte bound";
    }
    for (unsigned i = 0; i < l->nclasses && !m; i++) {
        ca_binned__large_lock(&l->cls[i].lock, CA_LOCK_RANK_LARGE_CLASS);
        m = check_class(l, &l->cls[i], i, cached[i]);
        ca_binned__large_unlock(&l->cls[i].lock, CA_LOCK_RANK_LARGE_CLASS);
    }
    if (!m) {
        ca_binned__large_lock(&l->direct.lock, CA_LOCK_RANK_LARGE_CLASS);
        m = check_class(l, &l->direct, CA_BL_DIRECT_CLASS, 0);
        ca_binned__large_unlock(&l->direct.lock, CA_LOCK_RANK_LARGE_CLASS);
    }
    for (ca_binned__large_cache *c = l->caches; c; c = c->next)
        ca_binned__large_unlock(&c->lock, CA_LOCK_RANK_LARGE_CACHE);
    ca_binned__large_unlock(&l->caches_lock, CA_LOCK_RANK_LARGE_CACHES);
    if (!m) {
        uint64_t dirty = 0;
        for (unsigned i = 0; i < l->nclasses; i++)
            dirty += CA_BL_GET(l->cls[i].n.dirty_bytes);
        if (dirty != CA_BL_GET(l->dirty_total))
            m = "dirty_total differs from the classes";
    }
    return m;
}

/* ------------------------------------------------------------------------
 * Region buffers
 * ------------------------------------------------------------------------ */

int ca_binned_large_region_init(ca_binned_large_region *r, ca_binned_large *l, size_t capacity)
{
    memset(r, 0, sizeof *r);
    if (!l)
        l = ca_binned_large_default();
    if (!l)
        return ENOMEM;
    size_t want, usable = 0;
    if (ca_next_pow2_overflows(capacity, &want))
        return ENOMEM;
    void *p = ca_binned_large_alloc(l, want, CA_ALIGN_DEFAULT, &usable);
    if (!p)
        return ENOMEM;
    /* The capacity is a power of two (>= want; a direct mapping may be larger). */
    size_t cap = (size_t)1 << ca_log2(usable);
    r->data = (unsigned char *)p;
    r->cap = cap;
    r->tier = l;
    return 0;
}

int ca_binned_large_region_append(ca_binned_large_region *r, const void *src, size_t n)
{
    if (n > r->cap - r->len)
        return ENOSPC;
    if (n)
        memcpy(r->data + r->len, src, n);
    r->len += n;
    return 0;
}

void *ca_binned_large_region_extend(ca_binned_large_region *r, size_t n)
{
    if (n > r->cap - r->len) {
        errno = ENOSPC;
        return NULL;
    }
    void *p = r->data + r->len;
    r->len += n;
    return p;
}

void ca_binned_large_region_clear(ca_binned_large_region *r) { r->len = 0; }

void ca_binned_large_region_release(ca_binned_large_region *r)
{
    if (!r || !r->data)
        return;
    ca_binned_large_free(r->tier, r->data);
    memset(r, 0, sizeof *r);
}
