/* SPDX-License-Identifier: MIT */
/*
 * Private header of the large-object tier (libbinned/src/large). Read this
 * first: the data structures, their invariants and who may touch what.
 *
 * Memory layout
 *   A tier has one class per power of two from min_shift to max_shift.
 *   A class maps regions from the tier's source; a region is nareas areas
 *   of the class size (1..64), each aligned to min(class, 2 MiB). Requests
 *   above the largest class get a "direct" region of one area.
 *   Every region has an out-of-band descriptor (rgn) with one area record
 *   per area; the region lookup (large_map.c: core's ownership map, lock-free reads)
 *   maps every 64 KiB granule of a region to its descriptor, so a free
 *   finds its class, area and tier from the address alone.
 *
 * Where a free area can be
 *   IN_USE   handed out;
 *   CACHED   in one thread cache (cache lock);
 *   DIRTY    in its class's dirty list (class lock), pages still resident;
 *   CLEAN    in its class's clean list (class lock), decommitted or fresh;
 *   BUSY     taken off the dirty list by a purge that runs the decommit
 *            without the class lock; it goes to the clean list afterwards.
 *
 * Lock order (all locks are core's lock word, safe across fork; ranks in
 * core.h, "Lock order"):
 *   registry -> tier.bg_lock -> tier.listen_lock -> tier.caches_lock ->
 *   cache.lock -> class.lock -> tier.meta_lock. No lock is held while calling the source,
 * pthread_create or any code outside the tier, except listen_lock, which
 * is held across the listener's callbacks (large_listen.c), and the
 * registry, which a thread's exit flush holds across the dirty-cap purge and
 * a background-thread start of the tier it flushed into (the tier must stay
 * alive meanwhile; nothing under the registry takes it again).
 *
 * The range set: the regions on the classes' region lists and the direct
 * mappings on the direct list. A region enters the set (rgn_link) and
 * leaves it (rgn_unlink) only with listen_lock held, so that lock alone
 * keeps every region list stable; an attached listener hears added() for
 * each entry and removed() for each exit (large_listen.c).
 */
#ifndef CA_BINNED_LARGE_INTERNAL_H
#define CA_BINNED_LARGE_INTERNAL_H

#include <ctxalloc/binned/large.h>
#include <ctxalloc/core.h>
#include <ctxalloc/source.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#define CA_BL_COMPONENT "binned-large"

/* The tier's locks: core's lock word (spins briefly, then sleeps on a
 * futex; a plain int a forked child resets with a store; re-entry from a
 * signal handler while holding one aborts naming the tier). */
ca_force_inline void ca_binned__large_lock(int *l, unsigned rank)
{
    ca_lock_acquire_ranked(l, rank, CA_BL_COMPONENT);
}
ca_force_inline void ca_binned__large_unlock(int *l, unsigned rank) { ca_lock_release_ranked(l, rank); }

/* Relaxed counters readable while the tier runs. */
#define CA_BL_ADD(field, v) ((void)__atomic_fetch_add(&(field), (uint64_t)(v), __ATOMIC_RELAXED))
#define CA_BL_SUB(field, v) ((void)__atomic_fetch_sub(&(field), (uint64_t)(v), __ATOMIC_RELAXED))
#define CA_BL_GET(field)    __atomic_load_n(&(field), __ATOMIC_RELAXED)

/* Monotonic time in ns (CLOCK_MONOTONIC_COARSE: a vDSO read). */
uint64_t ca_binned__large_now(void);
/* clock_gettime through the vDSO (libbinned's src/clock.c). */
void ca_binned__clock(clockid_t id, struct timespec *ts);

/* ------------------------------------------------------------------------
 * Areas and regions
 * ------------------------------------------------------------------------ */

enum {
    CA_BL_AREA_FREE_DIRECT = 0, /* direct region released (descriptor about to be freed) */
    CA_BL_AREA_IN_USE = 1,
    CA_BL_AREA_CACHED = 2,
    CA_BL_AREA_DIRTY = 3,
    CA_BL_AREA_CLEAN = 4,
    CA_BL_AREA_BUSY = 5,
};

typedef struct ca_binned__large_rgn ca_binned__large_rgn;

/* One area of a region. Invariant: state says which list (if any) holds it;
 * prev/next are meaningful only in DIRTY and CLEAN. One cache line each:
 * threads freeing neighbouring areas do not share a line for the state CAS. */
typedef struct __attribute__((aligned(64))) ca_binned__large_area {
    struct ca_binned__large_area *prev, *next; /* pool list links (class lock) */
    ca_binned__large_rgn *rgn;                 /* read-only after region creation */
    uint64_t stamp;                            /* ns of entry into the pool (class lock) */
    uint8_t state;                             /* CA_BL_AREA_*; atomic, any thread */
    uint8_t zero;                              /* 0 unknown, 1 zero, 2 decommitted (holder) */
    uint16_t index;                            /* position in the region, read-only */
} ca_binned__large_area;

#define CA_BL_DIRECT_CLASS 0xffffu

/* A region descriptor. Invariants (class lock): nfree = areas in DIRTY or
 * CLEAN; nbusy = areas in BUSY; a region is unmapped only when
 * nfree == nareas (so no area is cached, busy or in use). */
struct ca_binned__large_rgn {
    ca_owner_record rec;               /* what core's map points to (large_map.c); read-only once mapped */
    ca_binned__large_rgn *prev, *next; /* class's region list (class lock) */
    char *base;                        /* start; read-only */
    ca_source *src;                    /* where it came from; read-only */
    size_t size;                       /* bytes mapped; read-only */
    ca_binned_large *tier;             /* read-only */
    unsigned cls;                      /* class index or CA_BL_DIRECT_CLASS; read-only */
    unsigned shift;                    /* log2 of the area size (direct: 0); read-only */
    unsigned nareas;                   /* read-only */
    unsigned nfree, nbusy;             /* class lock */
    uint64_t last_free;                /* ns of the latest free into the pools (class lock) */
    ca_binned__large_area areas[CA_BINNED_LARGE_REGION_AREAS];
};

/* ------------------------------------------------------------------------
 * Classes
 * ------------------------------------------------------------------------ */

/* Counters of one class (and of the direct mappings). Updated with
 * CA_BL_ADD / read with CA_BL_GET from any thread. */
typedef struct ca_binned__large_counters {
    uint64_t allocs, frees, failures, cache_hits, steals; /* plus those of the live caches */
    uint64_t dirty_bytes, clean_bytes, purged_bytes;
    uint64_t mapped_bytes, unmapped_bytes, regions, mremaps;
} ca_binned__large_counters;

/* A class. dirty and clean lists: most recent at the head, oldest at the
 * tail. Invariant: dirty_bytes == size * |dirty|, clean_bytes == size * |clean|. */
typedef struct ca_binned__large_class {
    int lock;
    unsigned shift;                                 /* read-only */
    size_t size;                                    /* read-only: 1 << shift */
    unsigned nareas;                                /* areas per new region; read-only */
    size_t region_align;                            /* read-only */
    ca_binned__large_area *dirty_head, *dirty_tail; /* class lock */
    ca_binned__large_area *clean_head, *clean_tail; /* class lock */
    ca_binned__large_rgn *regions;                  /* class lock */
    ca_binned__large_counters n;
} __attribute__((aligned(64))) ca_binned__large_class;

/* ------------------------------------------------------------------------
 * Thread caches
 * ------------------------------------------------------------------------ */

/* One thread's cache of one tier. The owning thread pushes and pops under
 * lock (uncontended unless someone steals); stealers and fork take lock
 * too. Invariant: bytes == sum of count[c] * class size <= cache_bytes;
 * every slot holds an area in state CACHED. The operation counters are
 * the owner's (relaxed atomic stores, no shared cache line on the fast
 * path); statistics add them up, and a dying cache folds them into its
 * classes' counters. */
typedef struct ca_binned__large_cache {
    int lock;
    bool live;                                  /* caches_lock */
    struct ca_binned__large_cache *next, *prev; /* tier's list (caches_lock) */
    size_t bytes;                               /* lock */
    uint8_t count[CA_BINNED_LARGE_MAX_CLASSES]; /* lock */
    ca_binned__large_area *slot[CA_BINNED_LARGE_MAX_CLASSES][CA_BINNED_LARGE_CACHE_SLOTS];
    uint64_t allocs[CA_BINNED_LARGE_MAX_CLASSES]; /* owner; relaxed atomic */
    uint64_t frees[CA_BINNED_LARGE_MAX_CLASSES];  /* owner; relaxed atomic */
    uint64_t hits[CA_BINNED_LARGE_MAX_CLASSES];   /* owner; relaxed atomic */
} ca_binned__large_cache;

/* Count one event in the owner's cache, or in the class when there is none. */
ca_force_inline void ca_binned__large_count(ca_binned__large_cache *c, uint64_t *mine, uint64_t *shared)
{
    if (c)
        __atomic_store_n(mine, __atomic_load_n(mine, __ATOMIC_RELAXED) + 1, __ATOMIC_RELAXED);
    else
        CA_BL_ADD(*shared, 1);
}

/* ------------------------------------------------------------------------
 * Metadata slabs (raw mmap; never malloc)
 * ------------------------------------------------------------------------ */

typedef struct ca_binned__large_slab {
    size_t obj;   /* object size */
    void *free;   /* free objects, linked through their first word */
    void *chunks; /* chunk list through the first word of each chunk */
    char *bump, *end;
} ca_binned__large_slab;

void *ca_binned__large_slab_get(ca_binned__large_slab *s); /* meta_lock held; zeroed object */
void ca_binned__large_slab_put(ca_binned__large_slab *s, void *p);
void ca_binned__large_slab_destroy(ca_binned__large_slab *s);
void *ca_binned__large_os_map(size_t size); /* raw anonymous mapping or NULL */
void ca_binned__large_os_unmap(void *p, size_t size);

/* ------------------------------------------------------------------------
 * The tier
 * ------------------------------------------------------------------------ */

#define CA_BL_OWN_NONE 0
#define CA_BL_OWN_MMAP 1
#define CA_BL_OWN_FILE 2

struct ca_binned_large {
    ca_allocator base;             /* first member */
    uint64_t id;                   /* unique per tier of the process; read-only */
    ca_binned_large_options opt;   /* normalised; read-only */
    unsigned min_shift, max_shift; /* read-only */
    unsigned nclasses;             /* read-only */
    ca_source *src;                /* regions come from here; read-only */
    ca_source *src_huge;           /* regions of areas >= 2 MiB (THP source, or src) */
    int own_kind;                  /* CA_BL_OWN_*; read-only */
    union {
        ca_source_mmap mmap;
        ca_source_file file;
    } own;                                                    /* the tier's own source */
    ca_source_mmap own_huge;                                  /* CA_BL_OWN_MMAP with huge pages: the THP source */
    bool own_huge_live;                                       /* own_huge initialised */
    bool can_mremap;                                          /* anonymous private mappings of our own */
    bool purge_zeroes;                                        /* a purged area reads as zero */
    bool fresh_zero;                                          /* a new region reads as zero */
    bool commit_on_reuse;                                     /* clean areas need source commit before use */
    void *owner;                                              /* ownership-map value or NULL; read-only */
    uint64_t dirty_decay_ns, unmap_decay_ns, maint_period_ns; /* read-only */

    ca_binned__large_class cls[CA_BINNED_LARGE_MAX_CLASSES];
    ca_binned__large_class direct; /* counters and region list of direct mappings */

    uint64_t out_bytes;   /* bytes outside the pools: in use or in thread caches (atomic;
                           changed only on slow paths) */
    uint64_t peak;        /* maximum of out_bytes (atomic) */
    uint64_t dirty_total; /* dirty bytes of all classes (atomic) */
    uint64_t last_maint;  /* ns of the latest slow-path maintenance (atomic) */
    int maint_running;    /* one slow-path maintenance at a time (atomic) */
    uint64_t no_decommit; /* the source refused decommit (ENOTSUP): stop trying */

    int meta_lock;                    /* guards the slabs */
    ca_binned__large_slab rgn_slab;   /* region descriptors */
    ca_binned__large_slab cache_slab; /* thread caches */

    int caches_lock; /* guards the cache list and live flags */
    /* &caches_lock (set at init): the statistics, which get a const tier,
     * lock through it (core.h, Statistics: a lock is not part of the value
     * const protects). */
    int *caches_lk;
    ca_binned__large_cache *caches; /* live caches */

    /* Background thread. bg_lock guards the flags; bg_mutex/bg_cond are
     * used only for the timed sleep and the stop signal. */
    int bg_lock;
    bool bg_running;  /* thread exists (bg_lock) */
    bool bg_stop;     /* asked to stop (bg_mutex) */
    bool bg_wanted;   /* should run: restart lazily after fork (bg_lock) */
    bool bg_starting; /* a start is in progress (bg_lock) */
    bool bg_fork;     /* fork in progress: no start (bg_lock) */
    pthread_t bg_thread;
    pthread_mutex_t bg_mutex;
    pthread_cond_t bg_cond;
    uint64_t bg_runs; /* atomic */

    ca_binned_large *reg_next; /* registry list (registry lock) */

    /* Listener (ca_listen): listen_lock is held while a region or direct
     * mapping enters or leaves the range set and across every callback;
     * it orders those changes with attach and detach (large_listen.c). */
    int listen_lock;
    ca_listener *listener; /* the attached listener or NULL (written under listen_lock
                              with atomic stores; resize reads it without the lock) */
};

/* large.c */
void ca_binned__large_out_add(ca_binned_large *l, size_t bytes);
/* Two ops tables that differ in caps only: _self carries CA_CAP_OWNER_MAP
 * (the tier registers its ranges in the ownership map under itself). */
extern const ca_allocator_ops ca_binned__large_ops, ca_binned__large_ops_self;
void ca_binned__large_pool_push_dirty(ca_binned_large *l, ca_binned__large_area *a, uint64_t now);
void ca_binned__large_after_dirty(ca_binned_large *l);
/* As after_dirty, from a thread's exit under the registry lock: the dirty
 * cap only (no background start, no maintenance: they take locks ranked
 * below the registry's or call malloc). */
void ca_binned__large_after_dirty_exit(ca_binned_large *l);
void ca_binned__large_release_region(ca_binned_large *l, ca_binned__large_rgn *r);
/* Unlink a region from its class and count it unmapped (class lock held). */
void ca_binned__large_rgn_unlink(ca_binned__large_class *c, ca_binned__large_rgn *r);
ca_force_inline char *ca_binned__large_area_addr(const ca_binned__large_area *a)
{
    return a->rgn->base + ((size_t)a->index << a->rgn->shift);
}
/* The doubly linked area lists of a class (clean, dirty), under its lock. */
void ca_binned__large_list_remove(ca_binned__large_area **head, ca_binned__large_area **tail,
                                  ca_binned__large_area *a);
void ca_binned__large_list_push_head(ca_binned__large_area **head, ca_binned__large_area **tail,
                                     ca_binned__large_area *a);
void ca_binned__large_list_push_tail(ca_binned__large_area **head, ca_binned__large_area **tail,
                                     ca_binned__large_area *a);

/* large_map.c: address -> region descriptor through core's ownership map,
 * lock-free reads. */
extern const char ca_binned__large_kind;
/* Free p when it is a block of l (true), without another lookup; false when
 * p is not l's. The record's free entry (libswitch calls it, one walk). */
bool ca_binned__large_free_owned(ca_binned_large *l, void *p);
void ca_binned__large_free_rec(ca_owner_record *rec, void *p);
/* The region whose record is rec (its first member). */
static inline ca_binned__large_rgn *ca_binned__large_rgn_of_rec(ca_owner_record *rec)
{
    _Static_assert(offsetof(ca_binned__large_rgn, rec) == 0, "the record is the region's first member");
    return (ca_binned__large_rgn *)(void *)rec;
}
int ca_binned__large_map_set(void *base, size_t size, ca_binned__large_rgn *r);
void ca_binned__large_map_clear(void *base, size_t size, ca_binned__large_rgn *r);
ca_binned__large_rgn *ca_binned__large_map_get(const void *p);

/* large_cache.c */
typedef struct ca_binned__large_tls_entry {
    ca_binned_large *tier;
    uint64_t id;
    ca_binned__large_cache *cache;
} ca_binned__large_tls_entry;
#define CA_BL_TLS_ENTRIES 4
/* The calling thread's caches by tier (tier pointer + tier id); owner thread only. */
extern __thread ca_binned__large_tls_entry ca_binned__large_tls[CA_BL_TLS_ENTRIES]
    __attribute__((tls_model("initial-exec")));
ca_binned__large_cache *ca_binned__large_my_cache_slow(ca_binned_large *l, bool create);
/* The calling thread's cache of l (first TLS entry inline). */
ca_force_inline ca_binned__large_cache *ca_binned__large_my_cache(ca_binned_large *l, bool create)
{
    if (ca_likely(ca_binned__large_tls[0].tier == l && ca_binned__large_tls[0].id == l->id))
        return ca_binned__large_tls[0].cache;
    return ca_binned__large_my_cache_slow(l, create);
}
ca_binned__large_area *ca_binned__large_steal(ca_binned_large *l, ca_binned__large_cache *mine, unsigned cls);
void ca_binned__large_cache_flush(ca_binned_large *l, ca_binned__large_cache *c);
void ca_binned__large_caches_destroy(ca_binned_large *l);
void ca_binned__large_tls_init(void);
void ca_binned__large_fork_child_caches(ca_binned_large *l);

/* Pop / push one area of class cls in cache c (the owner's fast path). */
ca_force_inline ca_binned__large_area *ca_binned__large_cache_pop(ca_binned_large *l, ca_binned__large_cache *c,
                                                                  unsigned cls)
{
    ca_binned__large_area *a = NULL;
    ca_binned__large_lock(&c->lock, CA_LOCK_RANK_LARGE_CACHE);
    if (c->count[cls]) {
        a = c->slot[cls][--c->count[cls]];
        c->bytes -= l->cls[cls].size;
    }
    ca_binned__large_unlock(&c->lock, CA_LOCK_RANK_LARGE_CACHE);
    return a;
}

ca_force_inline bool ca_binned__large_cache_push(ca_binned_large *l, ca_binned__large_cache *c,
                                                 ca_binned__large_area *a, unsigned cls)
{
    size_t size = l->cls[cls].size;
    bool ok = false;
    ca_binned__large_lock(&c->lock, CA_LOCK_RANK_LARGE_CACHE);
    if (c->count[cls] < CA_BINNED_LARGE_CACHE_SLOTS && size <= l->opt.cache_bytes - c->bytes) {
        c->slot[cls][c->count[cls]++] = a;
        c->bytes += size;
        ok = true;
    }
    ca_binned__large_unlock(&c->lock, CA_LOCK_RANK_LARGE_CACHE);
    return ok;
}

/* large_listen.c: listener events. listen_lock is taken by the caller
 * around the change of the range set the event reports. */
ca_force_inline void ca_binned__large_listen_lock(ca_binned_large *l)
{
    ca_binned__large_lock(&l->listen_lock, CA_LOCK_RANK_LARGE_LISTEN);
}
ca_force_inline void ca_binned__large_listen_unlock(ca_binned_large *l)
{
    ca_binned__large_unlock(&l->listen_lock, CA_LOCK_RANK_LARGE_LISTEN);
}
/* r is about to enter the range set: 0, or the listener's refusal (r must
 * then be given back without entering). */
int ca_binned__large_ev_added(ca_binned_large *l, const ca_binned__large_rgn *r);
/* r has left the range set and is about to be given back. */
void ca_binned__large_ev_removed(ca_binned_large *l, const ca_binned__large_rgn *r);
/* Destroy: destroyed(), then removed() for every range; detaches. */
void ca_binned__large_ev_destroy(ca_binned_large *l);
/* The ops table's listen entry. */
int ca_binned__large_listen(ca_allocator *a, ca_listener *lis);

/* large_purge.c */
void ca_binned__large_registry_add(ca_binned_large *l);
void ca_binned__large_registry_remove(ca_binned_large *l);
bool ca_binned__large_registry_lock_live(ca_binned_large *l, uint64_t id); /* locks on success */
void ca_binned__large_registry_unlock(void);
void ca_binned__large_maintain(ca_binned_large *l, uint64_t now);
size_t ca_binned__large_purge_class(ca_binned_large *l, ca_binned__large_class *c, uint64_t now,
                                    uint64_t min_age_ns, size_t max_bytes);
void ca_binned__large_bg_maybe_start(ca_binned_large *l);
void ca_binned__large_bg_init(ca_binned_large *l);

#endif
