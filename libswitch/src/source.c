/* SPDX-License-Identifier: MIT */
/*
 * ca_switch_source: a ca_source wrapper that registers every range it hands
 * out (obtain, reserve) in libcore's ownership map under one owner value and
 * unregisters it on release, so that free() can route the blocks of any
 * allocator built on it.
 *
 * Read first: src_new_range. Concurrency: no lock of its own; the ownership
 * map is lock-free and thread-safe, the inner source keeps its own
 * guarantees (the wrapper has the inner's THREAD_SAFE and ZEROED bits).
 */
#include "switch_private.h"

static ca_switch_source *S(ca_source *s) { return (ca_switch_source *)s; }

static int registered(ca_switch_source *s, void *p, size_t size)
{
    int e = ca_owner_register(p, size, __atomic_load_n(&s->owner, __ATOMIC_ACQUIRE));
    if (e == 0)
        __atomic_fetch_add(&s->ranges, 1, __ATOMIC_RELAXED);
    return e;
}

/* A new range from the inner source (obtain, or reserve), registered under
 * the owner; one the map refuses goes back to the inner source. */
static int src_new_range(ca_source *src, size_t size, size_t align, void **out, bool reserve)
{
    ca_switch_source *s = S(src);
    int e = ca_source_check_request(src, size, align);
    if (e || !__atomic_load_n(&s->owner, __ATOMIC_ACQUIRE))
        return EINVAL;
    void *p;
    e = reserve ? ca_source_reserve(s->inner, size, align, &p) : ca_source_obtain(s->inner, size, align, &p);
    if (e)
        return e;
    if ((e = registered(s, p, size))) {
        (void)ca_source_release(s->inner, p, size);
        return e;
    }
    *out = p;
    return 0;
}

static int src_obtain(ca_source *src, size_t size, size_t align, void **out)
{
    return src_new_range(src, size, align, out, false);
}

static int src_reserve(ca_source *src, size_t size, size_t align, void **out)
{
    return src_new_range(src, size, align, out, true);
}

static int src_release(ca_source *src, void *p, size_t size)
{
    ca_switch_source *s = S(src);
    int e = ca_source_check_request(src, size, ca_source_granule(src));
    if (e || !ca_is_aligned((uintptr_t)p, ca_source_granule(src)))
        return EINVAL;
    void *owner = __atomic_load_n(&s->owner, __ATOMIC_ACQUIRE);
    /* Unregister first: once released the range may be handed to others. */
    if (ca_owner_unregister(p, size, owner) == 0)
        __atomic_fetch_sub(&s->ranges, 1, __ATOMIC_RELAXED);
    return ca_source_release(s->inner, p, size);
}

static int src_commit(ca_source *src, void *p, size_t size) { return ca_source_commit(S(src)->inner, p, size); }

static int src_decommit(ca_source *src, void *p, size_t size)
{
    return ca_source_decommit(S(src)->inner, p, size);
}

static int src_stats(const ca_source *src, ca_stats *out)
{
    CA_STATS_LAYER_COUNTERS(CA_SWITCH_SOURCE_COUNTERS);
    const ca_switch_source *s = (const ca_switch_source *)src;
    int e = ca_source_stats(s->inner, out);
    CA_STATS_SET(out, owner_ranges, __atomic_load_n(&s->ranges, __ATOMIC_RELAXED));
    return e;
}

/* One table per combination of the inner's CA_SOURCE_THREAD_SAFE and
 * CA_SOURCE_ZEROED bits, which the wrapper keeps. */
#define SRC_OPS(caps_)                                                                              \
    {                                                                                               \
        .name = "switch-owner", .caps = (caps_), .obtain = src_obtain, .release = src_release,      \
        .reserve = src_reserve, .commit = src_commit, .decommit = src_decommit, .stats = src_stats, \
    }
static const ca_source_ops src_ops[4] = {SRC_OPS(0), SRC_OPS(1), SRC_OPS(2), SRC_OPS(3)};
CA_STATIC_ASSERT(CA_SOURCE_THREAD_SAFE == 1 && CA_SOURCE_ZEROED == 2, "src_ops is indexed by these bits");

int ca_switch_source_init(ca_switch_source *s, ca_source *inner, void *owner)
{
    if (!s || !inner)
        return EINVAL;
    memset(s, 0, sizeof *s);
    s->base.ops = &src_ops[inner->ops->caps & (CA_SOURCE_THREAD_SAFE | CA_SOURCE_ZEROED)];
    s->base.granule = inner->granule > CA_OWNER_GRANULE ? inner->granule : CA_OWNER_GRANULE;
    s->inner = inner;
    __atomic_store_n(&s->owner, owner, __ATOMIC_RELEASE);
    return 0;
}

void ca_switch_source_set_owner(ca_switch_source *s, void *owner)
{
    __atomic_store_n(&s->owner, owner, __ATOMIC_RELEASE);
}
