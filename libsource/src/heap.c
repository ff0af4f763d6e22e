/* SPDX-License-Identifier: MIT */
/*
 * The heap source: obtain = posix_memalign(max(align, granule), size),
 * release = free. Memory is always committed. With checks=on the ranges
 * given out are recorded so a foreign or double release aborts.
 * Concurrency: thread-safe (malloc is; counters are __atomic; the record has
 * its own lock). Read first: heap_obtain.
 */
#include "source_internal.h"

#include <stdlib.h>

CA_SOURCE__DECLARE(heap)

static const ca_source_ops heap_ops = CA_SOURCE__OPS(heap, CA_SOURCE_THREAD_SAFE);
static const ca_source_ops heap_zero_ops = CA_SOURCE__OPS(heap, CA_SOURCE_THREAD_SAFE | CA_SOURCE_ZEROED);


static ca_source_heap *from(ca_source *s) { return (ca_source_heap *)(void *)s; }

static int heap_obtain(ca_source *src, size_t size, size_t align, void **out)
{
    ca_source_heap *s = from(src);
    int err = ca_source_check_request(src, size, align);
    if (!err)
        err = ca_source_fault_hit(s->fault, CA_SOURCE_FAULT_OBTAIN, size);
    if (!err)
        err = ca_source_fault_hit(s->fault, CA_SOURCE_FAULT_PARENT, size);
    void *p = NULL;
    if (!err)
        err = posix_memalign(&p, align > src->granule ? align : src->granule, size);
    if (!err && CA_SOURCE__CHECKS_ON && ca_source__track_add(&s->track, p, size, size, 0)) {
        free(p);
        err = ENOMEM;
    }
    if (err)
        return ca_source__fail(&s->c, err, true);
    if (s->flags & CA_SOURCE_HEAP_ZERO)
        memset(p, 0, size);
    ca_source__count_new(&s->c, size, true);
    *out = p;
    CA_SOURCE__FULL(src, heap);
    return 0;
}

static int heap_release(ca_source *src, void *p, size_t size)
{
    ca_source_heap *s = from(src);
    int err = p && size && size % src->granule == 0 ? 0 : EINVAL;
    if (!err)
        err = ca_source_fault_hit(s->fault, CA_SOURCE_FAULT_RELEASE, size);
    ca_source__range r;
    if (!err && CA_SOURCE__CHECKS_ON && ca_source__track_take(&s->track, p, size, &r))
        err = ca_source__bad_range(p, "release of a range this heap source did not give out");
    if (err)
        return ca_source__fail(&s->c, err, true);
    free(p);
    ca_source__count_release(&s->c, size, size, false);
    CA_SOURCE__FULL(src, heap);
    return 0;
}

static int heap_stats(const ca_source *src, ca_stats *out)
{
    const ca_source_heap *s = (const ca_source_heap *)(const void *)src;
    ca_source__fill_stats(out, heap_ops.name, &s->c, s->fault);
    return 0;
}

int ca_source_heap_init(ca_source_heap *s, const ca_source_heap_options *o)
{
    static const ca_source_heap_options dflt;
    if (!o)
        o = &dflt;
    int err = ca_source__init_start(s, o->fault);
    if (err)
        return err;
    size_t g = o->granule ? o->granule : ca_page_size();
    if (!ca_is_pow2(g) || g < 16 || (o->flags & ~CA_SOURCE_HEAP_ZERO))
        return EINVAL;
    memset(s, 0, sizeof *s);
    s->base.ops = (o->flags & CA_SOURCE_HEAP_ZERO) ? &heap_zero_ops : &heap_ops;
    s->base.granule = g;
    s->flags = o->flags;
    s->fault = o->fault;
    ca_source__track_init(&s->track);
    return 0;
}

void ca_source_heap_destroy(ca_source_heap *s)
{
    if (!s)
        return;
    ca_source__track_destroy(&s->track);
    s->base.ops = NULL;
}

const char *ca_source__heap_check(const ca_source *src, bool totals)
{
    ca_source_heap *s = (ca_source_heap *)(void *)(uintptr_t)src;
    uint64_t bytes = 0;
    const char *msg = ca_source__track_check(&s->track, &bytes, NULL);
    if (msg || !totals)
        return msg;
    uint64_t in_use = __atomic_load_n(&s->c.in_use, __ATOMIC_RELAXED);
    if (CA_SOURCE__CHECKS_ON && bytes != in_use)
        return "heap source: bytes in use differ from the record";
    if (in_use != __atomic_load_n(&s->c.reserved, __ATOMIC_RELAXED) ||
        in_use != __atomic_load_n(&s->c.committed, __ATOMIC_RELAXED))
        return "heap source: in use, reserved and committed differ";
    return NULL;
}
