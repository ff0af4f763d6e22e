/* SPDX-License-Identifier: MIT */
/*
 * ca_switch_local: a single-thread allocator made safe to free into from any
 * thread, through a lock-free remote-free queue.
 *
 * Read first: local_free_unsized (the routing decision), then drain.
 *
 * Concurrency model:
 *   - The owner thread (l->owner, compared with ca_switch__self()) is the
 *     only one that calls the inner allocator: alloc, resize, reset, local
 *     frees and draining.
 *   - Any other thread frees by pushing the block on l->remote, a Treiber
 *     stack linked through each block's first word (CAS, release). Blocks
 *     are at least sizeof(void *) bytes: requests below are raised.
 *   - The owner drains with one atomic exchange of the whole stack (acquire)
 *     and frees the blocks into the inner allocator. Only pushes and a
 *     take-all exist, so there is no ABA problem and no generation counter.
 *   - remote_frees is an atomic counter, bumped before the push; drained /
 *     drains belong to the owner. Invariant: drained + pending <=
 *     remote_frees at every instant, with equality when no push is in
 *     flight.
 */
#include "switch_private.h"

#define LOCAL_MIN ((size_t)sizeof(void *))

static ca_switch_local *L(ca_allocator *a) { return (ca_switch_local *)a; }
static const ca_switch_local *CL(const ca_allocator *a) { return (const ca_switch_local *)a; }

static bool is_owner(const ca_switch_local *l)
{
    return __atomic_load_n(&l->owner, __ATOMIC_RELAXED) == ca_switch__self();
}

size_t ca_switch_local_drain(ca_switch_local *l)
{
    CA_CHECK(is_owner(l), "switch", l, "ca_switch_local drained by a thread that does not own it");
    void *h = __atomic_exchange_n(&l->remote, NULL, __ATOMIC_ACQUIRE);
    size_t n = 0;
    while (h) {
        void *next = *(void **)h;
        l->inner->ops->free_unsized(l->inner, h);
        h = next;
        n++;
    }
    if (n) {
        l->drained += n;
        l->drains++;
    }
    return n;
}

static void *local_alloc(ca_allocator *a, size_t size, size_t align, size_t *usable)
{
    ca_switch_local *l = L(a);
    CA_CHECK(is_owner(l), "switch", l, "ca_switch_local allocated from by a thread that does not own it");
    if (__atomic_load_n(&l->remote, __ATOMIC_RELAXED))
        ca_switch_local_drain(l);
    return l->inner->ops->alloc(l->inner, size < LOCAL_MIN ? LOCAL_MIN : size, align, usable);
}

static void push_remote(ca_switch_local *l, void *p)
{
    /* Counted before it is linked, so that drained + pending <= remote_frees
     * holds at every instant (see ca_switch__local_check). */
    __atomic_fetch_add(&l->remote_frees, 1, __ATOMIC_RELAXED);
    void *head = __atomic_load_n(&l->remote, __ATOMIC_RELAXED);
    do {
        CA_CHECK(head != p, "switch", p, "double free (block already in the remote queue)");
        *(void **)p = head;
    } while (!__atomic_compare_exchange_n(&l->remote, &head, p, true, __ATOMIC_RELEASE, __ATOMIC_RELAXED));
    ca_switch__count(&ca_switch__g.counters.remote_frees, 1);
}

static void local_free(ca_allocator *a, void *p, size_t size, size_t align)
{
    ca_switch_local *l = L(a);
    if (!p)
        return;
    if (is_owner(l))
        l->inner->ops->free(l->inner, p, size < LOCAL_MIN ? LOCAL_MIN : size, align);
    else
        push_remote(l, p);
}

static void local_free_unsized(ca_allocator *a, void *p)
{
    ca_switch_local *l = L(a);
    if (!p)
        return;
    if (is_owner(l))
        l->inner->ops->free_unsized(l->inner, p);
    else
        push_remote(l, p);
}

static size_t local_usable_size(const ca_allocator *a, const void *p)
{
    const ca_switch_local *l = CL(a);
    return ca_usable_size(l->inner, p);
}

static void *local_resize(ca_allocator *a, void *p, size_t old_size, size_t new_size, size_t align, unsigned flags,
                          size_t *usable)
{
    ca_switch_local *l = L(a);
    CA_CHECK(is_owner(l), "switch", l, "ca_switch_local resized by a thread that does not own it");
    if (!p)
        return local_alloc(a, new_size, align, usable);
    if (old_size < LOCAL_MIN)
        old_size = LOCAL_MIN;
    if (new_size < LOCAL_MIN)
        new_size = LOCAL_MIN;
    ca_allocator *in = l->inner;
    if (in->ops->resize)
        return in->ops->resize(in, p, old_size, new_size, align, flags, usable);
    return ca_resize_generic(in, p, old_size, new_size, align, flags, usable);
}

static bool local_owns(const ca_allocator *a, const void *p) { return ca_owns(CL(a)->inner, p); }

static void local_reset(ca_allocator *a)
{
    ca_switch_local *l = L(a);
    CA_CHECK(is_owner(l), "switch", l, "ca_switch_local reset by a thread that does not own it");
    /* The queued blocks die with everything else. */
    void *h = __atomic_exchange_n(&l->remote, NULL, __ATOMIC_ACQUIRE);
    for (; h; h = *(void **)h)
        l->drained++;
    (void)ca_reset(l->inner);
}

static int local_stats(const ca_allocator *a, ca_stats *out)
{
    CA_STATS_LAYER_COUNTERS(CA_SWITCH_LOCAL_COUNTERS);
    const ca_switch_local *l = CL(a);
    int e = ca_stats_get(l->inner, out);
    CA_STATS_SET(out, switch_remote_frees, __atomic_load_n(&l->remote_frees, __ATOMIC_RELAXED));
    CA_STATS_SET(out, switch_remote_drained, l->drained);
    return e;
}

static int local_listen(ca_allocator *a, ca_listener *lis) { return ca_listen(L(a)->inner, lis); }

static const char *local_walk(ca_allocator *a)
{
    const char *m = ca_switch__local_check(L(a));
    return m ? m : ca_check(L(a)->inner);
}

const ca_allocator_ops ca_switch__local_ops = {
    .name = "switch-local",
    .caps = CA_CAP_UNSIZED,
    .alloc = local_alloc,
    .free = local_free,
    .free_unsized = local_free_unsized,
    .usable_size = local_usable_size,
    .resize = local_resize,
    .owns = local_owns,
    .reset = local_reset,
    .stats = local_stats,
    .listen = local_listen,
    .check = local_walk,
};

void ca_switch__local_setup(ca_switch_local *l, ca_allocator *inner)
{
    memset(l, 0, sizeof *l);
    l->base.ops = &ca_switch__local_ops;
    l->inner = inner;
    __atomic_store_n(&l->owner, ca_switch__self(), __ATOMIC_RELEASE);
}

int ca_switch_local_init(ca_switch_local *l, ca_allocator *inner)
{
    if (!l || !inner || !(ca_allocator_caps(inner) & CA_CAP_UNSIZED) || !inner->ops->free_unsized)
        return EINVAL;
    ca_switch__local_setup(l, inner);
    ca_switch__register_local(l);
    return 0;
}

void ca_switch_local_destroy(ca_switch_local *l)
{
    if (!l)
        return;
    ca_switch_local_drain(l);
    ca_switch__unregister_local(l);
    l->inner = NULL;
    l->base.ops = NULL;
}

void ca_switch_local_adopt(ca_switch_local *l)
{
    __atomic_store_n(&l->owner, ca_switch__self(), __ATOMIC_RELEASE);
    ca_switch_local_drain(l);
}

size_t ca_switch_local_pending(const ca_switch_local *l)
{
    size_t n = 0;
    for (void *h = __atomic_load_n(&l->remote, __ATOMIC_ACQUIRE); h; h = *(void **)h)
        n++;
    return n;
}

const char *ca_switch__local_check(const ca_switch_local *l)
{
    CA_CHECK_EXPECT(l->base.ops == &ca_switch__local_ops, "registered local with foreign ops");
    CA_CHECK_EXPECT(l->inner && (ca_allocator_caps(l->inner) & CA_CAP_UNSIZED),
                    "local without an unsized inner allocator");
    CA_CHECK_EXPECT(__atomic_load_n(&l->owner, __ATOMIC_RELAXED) != 0, "local without an owner thread");
    /* Only the owner drains, so for the owner the queue only grows while it
     * looks: read pending first, then the counter (bumped before a push). */
    if (is_owner(l)) {
        size_t pending = ca_switch_local_pending(l);
        uint64_t pushed = __atomic_load_n(&l->remote_frees, __ATOMIC_ACQUIRE);
        CA_CHECK_EXPECT(l->drained + pending <= pushed,
                        "remote queue holds blocks that were never counted as pushed");
    }
    return NULL;
}
