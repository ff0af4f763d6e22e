/* SPDX-License-Identifier: MIT */
/*
 * The locked adaptor: one lock around every call into a single-thread
 * allocator. Its ops table is built per instance so that it offers exactly
 * the optional operations the inner allocator offers.
 *
 * Concurrency: every entry point takes the lock, calls the inner allocator,
 * releases the lock. CA_LOCK_SPIN is core's lock word (a short spin, then a
 * futex sleep), which keeps it sane when threads outnumber cores.
 */
#include <ctxalloc/core.h>


/* Const: the lock words are reached through spin_lk / mutex_lk (core.h). */
static void lock(const ca_locked_allocator *l)
{
    if (l->kind == CA_LOCK_SPIN) {
        ca_lock_acquire_ranked(l->spin_lk, CA_LOCK_RANK_CORE_LOCKED, "locked");
    } else {
        (void)ca_mutex_lock_ranked(l->mutex_lk, CA_LOCK_RANK_CORE_LOCKED, "locked");
    }
}

static void unlock(const ca_locked_allocator *l)
{
    if (l->kind == CA_LOCK_SPIN) {
        ca_lock_release_ranked(l->spin_lk, CA_LOCK_RANK_CORE_LOCKED);
    } else {
        (void)ca_mutex_unlock_ranked(l->mutex_lk, CA_LOCK_RANK_CORE_LOCKED);
    }
}

/* errno is saved across unlock: pthread calls may not preserve it. */
static void *locked_alloc(ca_allocator *a, size_t size, size_t align, size_t *usable)
{
    ca_locked_allocator *l = (ca_locked_allocator *)a;
    lock(l);
    void *p = l->inner->ops->alloc(l->inner, size, align, usable);
    int e = errno;
    unlock(l);
    errno = e;
    return p;
}

static void locked_free(ca_allocator *a, void *p, size_t size, size_t align)
{
    ca_locked_allocator *l = (ca_locked_allocator *)a;
    if (!p)
        return;
    lock(l);
    l->inner->ops->free(l->inner, p, size, align);
    unlock(l);
}

static void locked_free_unsized(ca_allocator *a, void *p)
{
    ca_locked_allocator *l = (ca_locked_allocator *)a;
    if (!p)
        return;
    lock(l);
    l->inner->ops->free_unsized(l->inner, p);
    unlock(l);
}

static size_t locked_usable_size(const ca_allocator *a, const void *p)
{
    const ca_locked_allocator *l = (const ca_locked_allocator *)a;
    lock(l);
    size_t n = l->inner->ops->usable_size(l->inner, p);
    unlock(l);
    return n;
}

static void *locked_resize(ca_allocator *a, void *p, size_t old_size, size_t new_size, size_t align,
                           unsigned flags, size_t *usable)
{
    ca_locked_allocator *l = (ca_locked_allocator *)a;
    lock(l);
    void *q = l->inner->ops->resize ? l->inner->ops->resize(l->inner, p, old_size, new_size, align, flags, usable)
                                    : ca_resize_generic(l->inner, p, old_size, new_size, align, flags, usable);
    int e = errno;
    unlock(l);
    errno = e;
    return q;
}

static bool locked_owns(const ca_allocator *a, const void *p)
{
    const ca_locked_allocator *l = (const ca_locked_allocator *)a;
    lock(l);
    bool r = l->inner->ops->owns(l->inner, p);
    unlock(l);
    return r;
}

static void locked_reset(ca_allocator *a)
{
    ca_locked_allocator *l = (ca_locked_allocator *)a;
    lock(l);
    l->inner->ops->reset(l->inner);
    unlock(l);
}

static int locked_stats(const ca_allocator *a, ca_stats *out)
{
    const ca_locked_allocator *l = (const ca_locked_allocator *)a;
    lock(l);
    int r = l->inner->ops->stats(l->inner, out);
    unlock(l);
    return r;
}

/* Events of the inner allocator arrive while the lock is held (the inner
 * grows only inside locked calls), so the listener sees them serialised. */
static int locked_listen(ca_allocator *a, ca_listener *lis)
{
    ca_locked_allocator *l = (ca_locked_allocator *)a;
    lock(l);
    int r = l->inner->ops->listen(l->inner, lis);
    unlock(l);
    return r;
}

/* The inner walk under the lock: the check runs beside the adaptor's users. */
static const char *locked_check(ca_allocator *a)
{
    ca_locked_allocator *l = (ca_locked_allocator *)a;
    lock(l);
    const char *m = l->inner->ops->check(l->inner);
    unlock(l);
    return m;
}

int ca_locked_init(ca_locked_allocator *l, ca_allocator *inner, ca_lock_kind kind)
{
    if (!l || !inner || (kind != CA_LOCK_MUTEX && kind != CA_LOCK_SPIN))
        return EINVAL;
    const ca_allocator_ops *in = inner->ops;
    memset(l, 0, sizeof *l);
    if (kind == CA_LOCK_MUTEX) {
        int e = pthread_mutex_init(&l->mutex, NULL);
        if (e)
            return e;
    }
    l->spin_lk = &l->spin;
    l->mutex_lk = &l->mutex;
    l->kind = kind;
    l->inner = inner;
    l->ops.name = "locked";
    /* Not CA_CAP_OWNER_MAP: an inner that registers itself is the owner
     * free() finds, and it would be reached without the lock. */
    l->ops.caps = (in->caps & ~CA_CAP_OWNER_MAP) | CA_CAP_THREAD_SAFE;
    l->ops.alloc = locked_alloc;
    l->ops.free = locked_free;
    l->ops.free_unsized = in->free_unsized ? locked_free_unsized : NULL;
    l->ops.usable_size = in->usable_size ? locked_usable_size : NULL;
    l->ops.resize = locked_resize;
    l->ops.owns = in->owns ? locked_owns : NULL;
    l->ops.reset = in->reset ? locked_reset : NULL;
    l->ops.stats = in->stats ? locked_stats : NULL;
    l->ops.listen = in->listen ? locked_listen : NULL;
    l->ops.check = in->check ? locked_check : NULL;
    l->base.ops = &l->ops;
    return 0;
}

void ca_locked_destroy(ca_locked_allocator *l)
{
    if (l->kind == CA_LOCK_MUTEX)
        pthread_mutex_destroy(&l->mutex);
    l->base.ops = NULL;
}
