/* SPDX-License-Identifier: MIT */
/*
 * Memory return of the large-object tier: purge (dirty -> clean through the
 * source's decommit), unmapping of wholly free regions, the background
 * thread that does both on a timer, the slow-path fallback when it is not
 * running, and process-wide lifecycle: the registry of live tiers, fork
 * handlers and the exit destructor.
 *
 * Concurrency: a purge takes an area off the dirty list under the class
 * lock (state BUSY), decommits with no lock held, then puts it on the clean
 * list. Unmapping detaches a whole region under the class lock, then
 * releases it with no lock held. The background thread sleeps on its own
 * mutex/condvar; start and stop are serialised by bg_lock + bg_starting.
 * Unmapping reports each detached region to the listener (removed(), with
 * listen_lock held from the detach to the event) before releasing it.
 * Around fork, prepare stops every background thread and takes every lock
 * of every tier (registry -> listen -> caches -> cache -> class -> meta); the parent
 * releases them; the child resets them, flushes the caches of threads that
 * no longer exist, and lets the next free restart the thread. Read
 * ca_binned__large_maintain first.
 */
#include "large_internal.h"

#include <signal.h>
#include <time.h>

/* ------------------------------------------------------------------------
 * Registry of live tiers (for thread exit, fork and exit)
 * ------------------------------------------------------------------------ */

static int ca_bl_registry_lock;
static ca_binned_large *ca_bl_registry;
static pthread_once_t ca_bl_atfork_once = PTHREAD_ONCE_INIT;

static void fork_prepare(void);
static void fork_parent(void);
static void fork_child(void);

static void atfork_register(void)
{
    (void)ca_fork_hook_register_locks(fork_prepare, fork_parent, fork_child, CA_LOCK_RANK_LARGE_TIERS);
}

void ca_binned__large_registry_add(ca_binned_large *l)
{
    pthread_once(&ca_bl_atfork_once, atfork_register);
    ca_binned__large_lock(&ca_bl_registry_lock, CA_LOCK_RANK_LARGE_TIERS);
    CA_SLIST_PUSH(ca_bl_registry, l, reg_next);
    ca_binned__large_unlock(&ca_bl_registry_lock, CA_LOCK_RANK_LARGE_TIERS);
}

void ca_binned__large_registry_remove(ca_binned_large *l)
{
    ca_binned__large_lock(&ca_bl_registry_lock, CA_LOCK_RANK_LARGE_TIERS);
    CA_SLIST_REMOVE(ca_bl_registry, l, reg_next);
    ca_binned__large_unlock(&ca_bl_registry_lock, CA_LOCK_RANK_LARGE_TIERS);
}

bool ca_binned__large_registry_lock_live(ca_binned_large *l, uint64_t id)
{
    if (!l)
        return false;
    ca_binned__large_lock(&ca_bl_registry_lock, CA_LOCK_RANK_LARGE_TIERS);
    for (ca_binned_large *t = ca_bl_registry; t; t = t->reg_next)
        if (t == l && t->id == id)
            return true;
    ca_binned__large_unlock(&ca_bl_registry_lock, CA_LOCK_RANK_LARGE_TIERS);
    return false;
}

void ca_binned__large_registry_unlock(void)
{
    ca_binned__large_unlock(&ca_bl_registry_lock, CA_LOCK_RANK_LARGE_TIERS);
}

/* ------------------------------------------------------------------------
 * Purge and unmap
 * ------------------------------------------------------------------------ */

static bool old_enough(uint64_t now, uint64_t stamp, uint64_t age) { return now >= stamp && now - stamp >= age; }

/* Purge dirty areas of c that are at least min_age_ns old, oldest first,
 * until max_bytes are purged. Returns bytes purged. */
size_t ca_binned__large_purge_class(ca_binned_large *l, ca_binned__large_class *c, uint64_t now,
                                    uint64_t min_age_ns, size_t max_bytes)
{
    size_t done = 0;
    while (done < max_bytes && !CA_BL_GET(l->no_decommit)) {
        ca_binned__large_lock(&c->lock, CA_LOCK_RANK_LARGE_CLASS);
        ca_binned__large_area *a = c->dirty_tail;
        if (!a || !old_enough(now, a->stamp, min_age_ns)) {
            ca_binned__large_unlock(&c->lock, CA_LOCK_RANK_LARGE_CLASS);
            break;
        }
        ca_binned__large_list_remove(&c->dirty_head, &c->dirty_tail, a);
        __atomic_store_n(&a->state, CA_BL_AREA_BUSY, __ATOMIC_RELAXED);
        a->rgn->nfree--;
        a->rgn->nbusy++;
        CA_BL_SUB(c->n.dirty_bytes, c->size);
        CA_BL_SUB(l->dirty_total, c->size);
        ca_binned__large_unlock(&c->lock, CA_LOCK_RANK_LARGE_CLASS);

        int rc = ca_source_decommit(a->rgn->src, ca_binned__large_area_addr(a), c->size);

        ca_binned__large_lock(&c->lock, CA_LOCK_RANK_LARGE_CLASS);
        a->rgn->nbusy--;
        a->rgn->nfree++;
        if (rc == 0) {
            __atomic_store_n(&a->state, CA_BL_AREA_CLEAN, __ATOMIC_RELAXED);
            a->zero = 2;
            ca_binned__large_list_push_head(&c->clean_head, &c->clean_tail, a);
            CA_BL_ADD(c->n.clean_bytes, c->size);
            CA_BL_ADD(c->n.purged_bytes, c->size);
        } else {
            __atomic_store_n(&a->state, CA_BL_AREA_DIRTY, __ATOMIC_RELAXED);
            ca_binned__large_list_push_tail(&c->dirty_head, &c->dirty_tail, a);
            CA_BL_ADD(c->n.dirty_bytes, c->size);
            CA_BL_ADD(l->dirty_total, c->size);
        }
        ca_binned__large_unlock(&c->lock, CA_LOCK_RANK_LARGE_CLASS);
        if (rc) {
            if (rc == ENOTSUP)
                __atomic_store_n(&l->no_decommit, 1, __ATOMIC_RELAXED);
            break;
        }
        done += c->size;
    }
    return done;
}

static size_t purge_all(ca_binned_large *l, uint64_t now, uint64_t min_age_ns)
{
    size_t n = 0;
    for (unsigned i = 0; i < l->nclasses; i++)
        if (CA_BL_GET(l->cls[i].n.dirty_bytes))
            n += ca_binned__large_purge_class(l, &l->cls[i], now, min_age_ns, SIZE_MAX);
    return n;
}

static size_t unmap_idle(ca_binned_large *l, uint64_t now, uint64_t min_age_ns)
{
    size_t bytes = 0;
    for (unsigned i = 0; i < l->nclasses; i++) {
        ca_binned__large_class *c = &l->cls[i];
        ca_binned__large_rgn *detached = NULL;
        if (!__atomic_load_n(&c->n.regions, __ATOMIC_RELAXED))
            continue;
        ca_binned__large_listen_lock(l);
        ca_binned__large_lock(&c->lock, CA_LOCK_RANK_LARGE_CLASS);
        ca_binned__large_rgn *r = c->regions;
        while (r) {
            ca_binned__large_rgn *next = r->next;
            if (r->nfree == r->nareas && r->nbusy == 0 && old_enough(now, r->last_free, min_age_ns)) {
                for (unsigned k = 0; k < r->nareas; k++) {
                    ca_binned__large_area *a = &r->areas[k];
                    uint8_t st = __atomic_load_n(&a->state, __ATOMIC_RELAXED);
                    if (st == CA_BL_AREA_DIRTY) {
                        ca_binned__large_list_remove(&c->dirty_head, &c->dirty_tail, a);
                        CA_BL_SUB(c->n.dirty_bytes, c->size);
                        CA_BL_SUB(l->dirty_total, c->size);
                    } else {
                        ca_binned__large_list_remove(&c->clean_head, &c->clean_tail, a);
                        CA_BL_SUB(c->n.clean_bytes, c->size);
                    }
                    __atomic_store_n(&a->state, CA_BL_AREA_FREE_DIRECT, __ATOMIC_RELAXED);
                }
                ca_binned__large_rgn_unlink(c, r);
                r->next = detached;
                detached = r;
            }
            r = next;
        }
        ca_binned__large_unlock(&c->lock, CA_LOCK_RANK_LARGE_CLASS);
        for (ca_binned__large_rgn *d = detached; d; d = d->next)
            ca_binned__large_ev_removed(l, d);
        ca_binned__large_listen_unlock(l);
        while (detached) {
            ca_binned__large_rgn *next = detached->next;
            bytes += detached->size;
            ca_binned__large_release_region(l, detached);
            detached = next;
        }
    }
    return bytes;
}

/* Purge what has decayed and unmap regions idle past the unmap interval. */
void ca_binned__large_maintain(ca_binned_large *l, uint64_t now)
{
    if (__atomic_exchange_n(&l->maint_running, 1, __ATOMIC_ACQUIRE))
        return;
    __atomic_store_n(&l->last_maint, now, __ATOMIC_RELAXED);
    purge_all(l, now, l->dirty_decay_ns);
    unmap_idle(l, now, l->unmap_decay_ns);
    if (l->opt.maintain)
        l->opt.maintain(l->opt.maintain_arg);
    __atomic_store_n(&l->maint_running, 0, __ATOMIC_RELEASE);
}

/* Keep dirty bytes under dirty_max (the tier's class locks only). Returns
 * the time read, or 0 when none was needed. */
static uint64_t dirty_cap(ca_binned_large *l)
{
    uint64_t now = 0;
    if (CA_BL_GET(l->dirty_total) > l->opt.dirty_max) {
        now = ca_binned__large_now();
        for (unsigned i = l->nclasses; i-- > 0;) {
            uint64_t total = CA_BL_GET(l->dirty_total);
            if (total <= l->opt.dirty_max)
                break;
            if (CA_BL_GET(l->cls[i].n.dirty_bytes))
                ca_binned__large_purge_class(l, &l->cls[i], now, 0, total - l->opt.dirty_max);
        }
    }
    return now;
}

void ca_binned__large_after_dirty_exit(ca_binned_large *l) { (void)dirty_cap(l); }

/* After a push to the dirty pools: keep dirty bytes under dirty_max, start
 * the background thread when wanted, else run maintenance when due. */
void ca_binned__large_after_dirty(ca_binned_large *l)
{
    uint64_t now = dirty_cap(l);
    ca_binned__large_bg_maybe_start(l);
    if (__atomic_load_n(&l->bg_running, __ATOMIC_RELAXED))
        return;
    if (!now)
        now = ca_binned__large_now();
    if (now - CA_BL_GET(l->last_maint) >= l->maint_period_ns)
        ca_binned__large_maintain(l, now);
}

size_t ca_binned_large_purge(ca_binned_large *l, unsigned min_age_ms)
{
    return purge_all(l, ca_binned__large_now(), (uint64_t)min_age_ms * 1000000u);
}

size_t ca_binned_large_unmap_idle(ca_binned_large *l, unsigned min_age_ms)
{
    return unmap_idle(l, ca_binned__large_now(), (uint64_t)min_age_ms * 1000000u);
}

size_t ca_binned_large_trim(ca_binned_large *l)
{
    ca_binned__large_cache *c = ca_binned__large_my_cache(l, false);
    if (c)
        ca_binned__large_cache_flush(l, c);
    uint64_t now = ca_binned__large_now();
    purge_all(l, now, 0);
    return unmap_idle(l, now, 0);
}

/* ------------------------------------------------------------------------
 * Background thread
 * ------------------------------------------------------------------------ */

void ca_binned__large_bg_init(ca_binned_large *l)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&l->bg_cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&l->bg_mutex, NULL);
}

static void *bg_main(void *arg)
{
    ca_binned_large *l = (ca_binned_large *)arg;
    (void)ca_mutex_lock_ranked(&l->bg_mutex, CA_LOCK_RANK_LARGE_BG_SLEEP, CA_BL_COMPONENT);
    while (!l->bg_stop) {
        (void)ca_mutex_unlock_ranked(&l->bg_mutex, CA_LOCK_RANK_LARGE_BG_SLEEP);
        ca_binned__large_maintain(l, ca_binned__large_now());
        CA_BL_ADD(l->bg_runs, 1);
        (void)ca_mutex_lock_ranked(&l->bg_mutex, CA_LOCK_RANK_LARGE_BG_SLEEP, CA_BL_COMPONENT);
        if (l->bg_stop)
            break;
        struct timespec ts;
        ca_binned__clock(CLOCK_MONOTONIC, &ts);
        uint64_t ns = (uint64_t)ts.tv_nsec + l->maint_period_ns;
        ts.tv_sec += (time_t)(ns / 1000000000u);
        ts.tv_nsec = (long)(ns % 1000000000u);
        pthread_cond_timedwait(&l->bg_cond, &l->bg_mutex, &ts);
    }
    (void)ca_mutex_unlock_ranked(&l->bg_mutex, CA_LOCK_RANK_LARGE_BG_SLEEP);
    return NULL;
}

int ca_binned_large_background_start(ca_binned_large *l)
{
    ca_binned__large_lock(&l->bg_lock, CA_LOCK_RANK_LARGE_BG);
    if (l->bg_running || l->bg_starting || l->bg_fork) {
        int rc = l->bg_fork ? EAGAIN : 0;
        ca_binned__large_unlock(&l->bg_lock, CA_LOCK_RANK_LARGE_BG);
        return rc;
    }
    __atomic_store_n(&l->bg_starting, true, __ATOMIC_RELAXED);
    __atomic_store_n(&l->bg_wanted, true, __ATOMIC_RELAXED);
    ca_binned__large_unlock(&l->bg_lock, CA_LOCK_RANK_LARGE_BG);

    (void)ca_mutex_lock_ranked(&l->bg_mutex, CA_LOCK_RANK_LARGE_BG_SLEEP, CA_BL_COMPONENT);
    l->bg_stop = false;
    (void)ca_mutex_unlock_ranked(&l->bg_mutex, CA_LOCK_RANK_LARGE_BG_SLEEP);
    /* The thread never handles signals meant for the application. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&l->bg_thread, NULL, bg_main, l);
    pthread_sigmask(SIG_SETMASK, &old, NULL);

    ca_binned__large_lock(&l->bg_lock, CA_LOCK_RANK_LARGE_BG);
    __atomic_store_n(&l->bg_starting, false, __ATOMIC_RELAXED);
    __atomic_store_n(&l->bg_running, rc == 0, __ATOMIC_RELAXED);
    ca_binned__large_unlock(&l->bg_lock, CA_LOCK_RANK_LARGE_BG);
    return rc;
}

/* Stop the thread; keep_wanted leaves it marked for a lazy restart. */
static void bg_stop(ca_binned_large *l, bool keep_wanted)
{
    ca_binned__large_lock(&l->bg_lock, CA_LOCK_RANK_LARGE_BG);
    /* A start or stop in progress elsewhere (inside pthread_create or
     * pthread_join, which this lock must not be held across): not a lock
     * but a rare control path, so it waits by yielding rather than with a
     * primitive of its own. */
    while (l->bg_starting) {
        ca_binned__large_unlock(&l->bg_lock, CA_LOCK_RANK_LARGE_BG);
        sched_yield();
        ca_binned__large_lock(&l->bg_lock, CA_LOCK_RANK_LARGE_BG);
    }
    if (!keep_wanted)
        __atomic_store_n(&l->bg_wanted, false, __ATOMIC_RELAXED);
    if (!l->bg_running) {
        ca_binned__large_unlock(&l->bg_lock, CA_LOCK_RANK_LARGE_BG);
        return;
    }
    __atomic_store_n(&l->bg_starting, true, __ATOMIC_RELAXED);
    ca_binned__large_unlock(&l->bg_lock, CA_LOCK_RANK_LARGE_BG);

    (void)ca_mutex_lock_ranked(&l->bg_mutex, CA_LOCK_RANK_LARGE_BG_SLEEP, CA_BL_COMPONENT);
    l->bg_stop = true;
    pthread_cond_signal(&l->bg_cond);
    (void)ca_mutex_unlock_ranked(&l->bg_mutex, CA_LOCK_RANK_LARGE_BG_SLEEP);
    pthread_join(l->bg_thread, NULL);

    ca_binned__large_lock(&l->bg_lock, CA_LOCK_RANK_LARGE_BG);
    __atomic_store_n(&l->bg_running, false, __ATOMIC_RELAXED);
    __atomic_store_n(&l->bg_starting, false, __ATOMIC_RELAXED);
    ca_binned__large_unlock(&l->bg_lock, CA_LOCK_RANK_LARGE_BG);
}

void ca_binned_large_background_stop(ca_binned_large *l) { bg_stop(l, false); }

bool ca_binned_large_background_running(const ca_binned_large *l)
{
    return __atomic_load_n(&l->bg_running, __ATOMIC_RELAXED);
}

void ca_binned__large_bg_maybe_start(ca_binned_large *l)
{
    if (__atomic_load_n(&l->bg_running, __ATOMIC_RELAXED))
        return;
    if (!(l->opt.flags & CA_BINNED_LARGE_BACKGROUND) && !__atomic_load_n(&l->bg_wanted, __ATOMIC_RELAXED))
        return;
    if (__atomic_load_n(&l->bg_starting, __ATOMIC_RELAXED) || __atomic_load_n(&l->bg_fork, __ATOMIC_RELAXED))
        return;
    (void)ca_binned_large_background_start(l);
}

/* ------------------------------------------------------------------------
 * Fork and exit
 * ------------------------------------------------------------------------ */

/* Every tier's locks, one rank at a time across the tiers (core.h, "Lock
 * order": each tier's listen lock, then each tier's cache list, ...). */
static void lock_tiers(void)
{
    for (ca_binned_large *l = ca_bl_registry; l; l = l->reg_next)
        ca_binned__large_lock(&l->listen_lock, CA_LOCK_RANK_LARGE_LISTEN);
    for (ca_binned_large *l = ca_bl_registry; l; l = l->reg_next)
        ca_binned__large_lock(&l->caches_lock, CA_LOCK_RANK_LARGE_CACHES);
    for (ca_binned_large *l = ca_bl_registry; l; l = l->reg_next)
        for (ca_binned__large_cache *c = l->caches; c; c = c->next)
            ca_binned__large_lock(&c->lock, CA_LOCK_RANK_LARGE_CACHE);
    for (ca_binned_large *l = ca_bl_registry; l; l = l->reg_next) {
        for (unsigned i = 0; i < l->nclasses; i++)
            ca_binned__large_lock(&l->cls[i].lock, CA_LOCK_RANK_LARGE_CLASS);
        ca_binned__large_lock(&l->direct.lock, CA_LOCK_RANK_LARGE_CLASS);
    }
    for (ca_binned_large *l = ca_bl_registry; l; l = l->reg_next)
        ca_binned__large_lock(&l->meta_lock, CA_LOCK_RANK_LARGE_META);
}

static void unlock_tier(ca_binned_large *l)
{
    ca_binned__large_unlock(&l->meta_lock, CA_LOCK_RANK_LARGE_META);
    ca_binned__large_unlock(&l->direct.lock, CA_LOCK_RANK_LARGE_CLASS);
    for (unsigned i = 0; i < l->nclasses; i++)
        ca_binned__large_unlock(&l->cls[i].lock, CA_LOCK_RANK_LARGE_CLASS);
    for (ca_binned__large_cache *c = l->caches; c; c = c->next)
        ca_binned__large_unlock(&c->lock, CA_LOCK_RANK_LARGE_CACHE);
    ca_binned__large_unlock(&l->caches_lock, CA_LOCK_RANK_LARGE_CACHES);
    ca_binned__large_unlock(&l->listen_lock, CA_LOCK_RANK_LARGE_LISTEN);
}

static void fork_prepare(void)
{
    ca_binned__large_lock(&ca_bl_registry_lock, CA_LOCK_RANK_LARGE_TIERS);
    for (ca_binned_large *l = ca_bl_registry; l; l = l->reg_next) {
        ca_binned__large_lock(&l->bg_lock, CA_LOCK_RANK_LARGE_BG);
        __atomic_store_n(&l->bg_fork, true, __ATOMIC_RELAXED);
        /* A start in progress may be inside pthread_create -> malloc, waiting
         * for a lock another component's prepare handler already holds: do
         * not wait for it. That thread then exists in the parent only (the
         * child resets the flags); it blocks on the tier's locks until the
         * parent handler releases them. */
        bool starting = l->bg_starting;
        ca_binned__large_unlock(&l->bg_lock, CA_LOCK_RANK_LARGE_BG);
        if (!starting)
            bg_stop(l, true);
        ca_binned__large_lock(&l->bg_lock, CA_LOCK_RANK_LARGE_BG);
    }
    lock_tiers();
}

static void fork_parent(void)
{
    for (ca_binned_large *l = ca_bl_registry; l; l = l->reg_next) {
        unlock_tier(l);
        __atomic_store_n(&l->bg_fork, false, __ATOMIC_RELAXED);
        ca_binned__large_unlock(&l->bg_lock, CA_LOCK_RANK_LARGE_BG);
    }
    ca_binned__large_unlock(&ca_bl_registry_lock, CA_LOCK_RANK_LARGE_TIERS);
}

/* Forked child: areas a purge had taken (BUSY) when the fork happened go
 * back to the dirty pool; the purging thread does not exist here. */
static void child_recover_busy(ca_binned_large *l)
{
    for (unsigned i = 0; i < l->nclasses; i++) {
        ca_binned__large_class *c = &l->cls[i];
        for (ca_binned__large_rgn *r = c->regions; r; r = r->next) {
            for (unsigned k = 0; r->nbusy && k < r->nareas; k++) {
                ca_binned__large_area *a = &r->areas[k];
                if (__atomic_load_n(&a->state, __ATOMIC_RELAXED) != CA_BL_AREA_BUSY)
                    continue;
                __atomic_store_n(&a->state, CA_BL_AREA_DIRTY, __ATOMIC_RELAXED);
                ca_binned__large_list_push_tail(&c->dirty_head, &c->dirty_tail, a);
                r->nbusy--;
                r->nfree++;
                CA_BL_ADD(c->n.dirty_bytes, c->size);
                CA_BL_ADD(l->dirty_total, c->size);
            }
        }
    }
}

static void fork_child(void)
{
    for (ca_binned_large *l = ca_bl_registry; l; l = l->reg_next) {
        ca_lock_reset_ranked(&l->listen_lock, CA_LOCK_RANK_LARGE_LISTEN);
        ca_lock_reset_ranked(&l->caches_lock, CA_LOCK_RANK_LARGE_CACHES);
        for (ca_binned__large_cache *c = l->caches; c; c = c->next)
            ca_lock_reset_ranked(&c->lock, CA_LOCK_RANK_LARGE_CACHE);
        for (unsigned i = 0; i < l->nclasses; i++)
            ca_lock_reset_ranked(&l->cls[i].lock, CA_LOCK_RANK_LARGE_CLASS);
        ca_lock_reset_ranked(&l->direct.lock, CA_LOCK_RANK_LARGE_CLASS);
        ca_lock_reset_ranked(&l->meta_lock, CA_LOCK_RANK_LARGE_META);
        l->maint_running = 0;
        pthread_mutex_init(&l->bg_mutex, NULL);
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&l->bg_cond, &ca);
        pthread_condattr_destroy(&ca);
        __atomic_store_n(&l->bg_running, false, __ATOMIC_RELAXED);
        __atomic_store_n(&l->bg_starting, false, __ATOMIC_RELAXED);
        __atomic_store_n(&l->bg_fork, false, __ATOMIC_RELAXED);
        ca_lock_reset_ranked(&l->bg_lock, CA_LOCK_RANK_LARGE_BG);
        child_recover_busy(l);
        ca_binned__large_fork_child_caches(l);
    }
    ca_lock_reset_ranked(&ca_bl_registry_lock, CA_LOCK_RANK_LARGE_TIERS);
}

/* At exit: stop every background thread so none runs during teardown. */
__attribute__((destructor)) static void ca_bl_at_exit(void)
{
    ca_binned__large_lock(&ca_bl_registry_lock, CA_LOCK_RANK_LARGE_TIERS);
    for (ca_binned_large *l = ca_bl_registry; l; l = l->reg_next)
        bg_stop(l, false);
    ca_binned__large_unlock(&ca_bl_registry_lock, CA_LOCK_RANK_LARGE_TIERS);
}
