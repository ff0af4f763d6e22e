/* SPDX-License-Identifier: MIT */
/*
 * Thread caches of the large-object tier: per thread and tier, per class a
 * stack of up to CA_BINNED_LARGE_CACHE_SLOTS free areas, bounded in bytes
 * by options.cache_bytes; work stealing between them; their return at
 * thread exit.
 *
 * Concurrency: a thread finds its caches through a small initial-exec TLS
 * table (tier pointer + tier id, so a destroyed tier's entry is never
 * reused by a later tier at the same address). Each cache has a spin lock
 * taken by its owner for every push/pop (uncontended) and by stealers and
 * fork. The tier's caches_lock guards the list of live caches. A pthread
 * key (one for the process, created once; no malloc for the first 32 keys
 * in glibc) runs flush_on_exit when the thread ends. Read
 * ca_binned__large_my_cache first.
 */
#include "large_internal.h"

#define TLS_ENTRIES CA_BL_TLS_ENTRIES
#define ca_bl_tls   ca_binned__large_tls
typedef ca_binned__large_tls_entry tls_entry;

__thread ca_binned__large_tls_entry ca_binned__large_tls[CA_BL_TLS_ENTRIES]
    __attribute__((tls_model("initial-exec")));
static __thread bool ca_bl_tls_keyed __attribute__((tls_model("initial-exec")));
/* Set by flush_on_exit: the thread is ending, its caches are gone and no new
 * one is made (a later destructor's free goes to the pools: a cache made
 * then might never be flushed, and its areas and memory would be lost). */
static __thread bool ca_bl_tls_exited __attribute__((tls_model("initial-exec")));

static pthread_key_t ca_bl_key;
static bool ca_bl_key_ok;
static pthread_once_t ca_bl_key_once = PTHREAD_ONCE_INIT;

static void cache_free(ca_binned_large *l, ca_binned__large_cache *c)
{
    ca_binned__large_lock(&l->caches_lock, CA_LOCK_RANK_LARGE_CACHES);
    for (unsigned k = 0; k < l->nclasses; k++) { /* fold the counters into the classes */
        CA_BL_ADD(l->cls[k].n.allocs, CA_BL_GET(c->allocs[k]));
        CA_BL_ADD(l->cls[k].n.frees, CA_BL_GET(c->frees[k]));
        CA_BL_ADD(l->cls[k].n.cache_hits, CA_BL_GET(c->hits[k]));
    }
    if (c->prev)
        c->prev->next = c->next;
    else
        __atomic_store_n(&l->caches, c->next, __ATOMIC_RELAXED);
    if (c->next)
        c->next->prev = c->prev;
    c->live = false;
    ca_binned__large_unlock(&l->caches_lock, CA_LOCK_RANK_LARGE_CACHES);
    ca_binned__large_lock(&l->meta_lock, CA_LOCK_RANK_LARGE_META);
    ca_binned__large_slab_put(&l->cache_slab, c);
    ca_binned__large_unlock(&l->meta_lock, CA_LOCK_RANK_LARGE_META);
}

/* Key destructor: return every cache of the exiting thread to its tier. */
static void flush_on_exit(void *arg)
{
    (void)arg;
    for (int i = 0; i < TLS_ENTRIES; i++) {
        tls_entry *e = &ca_bl_tls[i];
        if (e->tier && ca_binned__large_registry_lock_live(e->tier, e->id)) {
            ca_binned__large_cache_flush(e->tier, e->cache);
            cache_free(e->tier, e->cache);
            /* The dirty cap holds for exited threads too. Only the cap:
             * starting the background thread (pthread_create calls
             * malloc) or the maintenance pass (the size classes' decay
             * takes their locks) must not run under the registry lock;
             * the next push of a live thread, or the background thread,
             * does them. */
            ca_binned__large_after_dirty_exit(e->tier);
            ca_binned__large_registry_unlock();
        }
        e->tier = NULL;
        e->cache = NULL;
        e->id = 0;
    }
    ca_bl_tls_keyed = false;
    ca_bl_tls_exited = true;
}

static void key_create(void) { ca_bl_key_ok = pthread_key_create(&ca_bl_key, flush_on_exit) == 0; }

void ca_binned__large_tls_init(void) { pthread_once(&ca_bl_key_once, key_create); }

/* The calling thread's cache of l; with create, made on first use (NULL
 * when caches are off, the TLS table is full of live tiers, or no memory). */
ca_binned__large_cache *ca_binned__large_my_cache_slow(ca_binned_large *l, bool create)
{
    for (int i = 0; i < TLS_ENTRIES; i++)
        if (ca_bl_tls[i].tier == l && ca_bl_tls[i].id == l->id)
            return ca_bl_tls[i].cache;
    if (!create || (l->opt.flags & CA_BINNED_LARGE_NO_CACHE) || !ca_bl_key_ok || ca_bl_tls_exited)
        return NULL;
    int slot = -1;
    for (int i = 0; i < TLS_ENTRIES && slot < 0; i++)
        if (!ca_bl_tls[i].tier)
            slot = i;
    for (int i = 0; i < TLS_ENTRIES && slot < 0; i++) {
        /* An entry of a destroyed tier can be reused. */
        if (ca_binned__large_registry_lock_live(ca_bl_tls[i].tier, ca_bl_tls[i].id))
            ca_binned__large_registry_unlock();
        else
            slot = i;
    }
    if (slot < 0)
        return NULL;
    ca_binned__large_lock(&l->meta_lock, CA_LOCK_RANK_LARGE_META);
    ca_binned__large_cache *c = (ca_binned__large_cache *)ca_binned__large_slab_get(&l->cache_slab);
    ca_binned__large_unlock(&l->meta_lock, CA_LOCK_RANK_LARGE_META);
    if (!c)
        return NULL;
    ca_binned__large_lock(&l->caches_lock, CA_LOCK_RANK_LARGE_CACHES);
    c->live = true;
    c->prev = NULL;
    c->next = l->caches;
    if (l->caches)
        l->caches->prev = c;
    __atomic_store_n(&l->caches, c, __ATOMIC_RELAXED);
    ca_binned__large_unlock(&l->caches_lock, CA_LOCK_RANK_LARGE_CACHES);
    ca_bl_tls[slot].tier = l;
    ca_bl_tls[slot].id = l->id;
    ca_bl_tls[slot].cache = c;
    if (!ca_bl_tls_keyed) {
        ca_bl_tls_keyed = true;
        pthread_setspecific(ca_bl_key, (void *)1);
    }
    return c;
}

/* Take one area of class cls from another thread's cache (the oldest one
 * in that cache: the bottom of its stack). */
ca_binned__large_area *ca_binned__large_steal(ca_binned_large *l, ca_binned__large_cache *mine, unsigned cls)
{
    ca_binned__large_area *a = NULL;
    size_t size = l->cls[cls].size;
    if (!__atomic_load_n(&l->caches, __ATOMIC_RELAXED))
        return NULL;
    ca_binned__large_lock(&l->caches_lock, CA_LOCK_RANK_LARGE_CACHES);
    for (ca_binned__large_cache *c = l->caches; c && !a; c = c->next) {
        if (c == mine)
            continue;
        ca_binned__large_lock(&c->lock, CA_LOCK_RANK_LARGE_CACHE);
        if (c->count[cls]) {
            a = c->slot[cls][0];
            c->count[cls]--;
            memmove(&c->slot[cls][0], &c->slot[cls][1], c->count[cls] * sizeof(c->slot[cls][0]));
            c->bytes -= size;
        }
        ca_binned__large_unlock(&c->lock, CA_LOCK_RANK_LARGE_CACHE);
    }
    ca_binned__large_unlock(&l->caches_lock, CA_LOCK_RANK_LARGE_CACHES);
    return a;
}

/* Move every area of c to the dirty pools. */
void ca_binned__large_cache_flush(ca_binned_large *l, ca_binned__large_cache *c)
{
    ca_binned__large_area *out[CA_BINNED_LARGE_MAX_CLASSES * CA_BINNED_LARGE_CACHE_SLOTS];
    size_t n = 0;
    ca_binned__large_lock(&c->lock, CA_LOCK_RANK_LARGE_CACHE);
    for (unsigned k = 0; k < l->nclasses; k++) {
        for (unsigned i = 0; i < c->count[k]; i++)
            out[n++] = c->slot[k][i];
        c->count[k] = 0;
    }
    c->bytes = 0;
    ca_binned__large_unlock(&c->lock, CA_LOCK_RANK_LARGE_CACHE);
    uint64_t now = ca_binned__large_now();
    for (size_t i = 0; i < n; i++)
        ca_binned__large_pool_push_dirty(l, out[i], now);
}

void ca_binned_large_flush_cache(ca_binned_large *l)
{
    ca_binned__large_cache *c = ca_binned__large_my_cache(l, false);
    if (c) {
        ca_binned__large_cache_flush(l, c);
        ca_binned__large_after_dirty(l);
    }
}

/* Destroy: drop the calling thread's entry; the caches' memory goes with
 * the slab. Other threads' entries become stale (their id no longer lives). */
void ca_binned__large_caches_destroy(ca_binned_large *l)
{
    for (int i = 0; i < TLS_ENTRIES; i++)
        if (ca_bl_tls[i].tier == l && ca_bl_tls[i].id == l->id) {
            ca_bl_tls[i].tier = NULL;
            ca_bl_tls[i].cache = NULL;
            ca_bl_tls[i].id = 0;
        }
    __atomic_store_n(&l->caches, NULL, __ATOMIC_RELAXED);
}

/* Forked child (all locks reset): flush the caches of the threads that did
 * not survive the fork, keep the calling thread's. */
void ca_binned__large_fork_child_caches(ca_binned_large *l)
{
    ca_binned__large_cache *c = l->caches;
    while (c) {
        ca_binned__large_cache *next = c->next;
        bool mine = false;
        for (int i = 0; i < TLS_ENTRIES; i++)
            mine |= ca_bl_tls[i].tier == l && ca_bl_tls[i].id == l->id && ca_bl_tls[i].cache == c;
        if (!mine) {
            ca_binned__large_cache_flush(l, c);
            cache_free(l, c);
        }
        c = next;
    }
}
