/* SPDX-License-Identifier: MIT */
/*
 * The fixed buffer source: the caller's memory, never grown. Free ranges
 * form an address-ordered singly linked list stored in the free memory
 * itself (a free_range header at the start of each); obtain is first fit
 * with alignment (splitting off both ends), release inserts in order and
 * merges with both neighbours, so no two free ranges are ever adjacent.
 * Concurrency: thread-safe, one spin lock around the list.
 * Read first: buffer_obtain, then buffer_release.
 */
#include "source_internal.h"

/* Header of a free range (granule >= 16 so it always fits).
 * Invariants: list sorted by address; ranges disjoint and not adjacent;
 * all inside [start, start + size) and granule-aligned. */
typedef struct free_range {
    size_t size;
    struct free_range *next;
} free_range;

CA_SOURCE__DECLARE(buffer)

static const ca_source_ops buffer_ops = CA_SOURCE__OPS(buffer, CA_SOURCE_THREAD_SAFE);


static ca_source_buffer *from(ca_source *s) { return (ca_source_buffer *)(void *)s; }

static free_range *node_at(void *p) { return (free_range *)p; }

static int buffer_obtain(ca_source *src, size_t size, size_t align, void **out)
{
    ca_source_buffer *s = from(src);
    int err = ca_source_check_request(src, size, align);
    if (!err)
        err = ca_source_fault_hit(s->fault, CA_SOURCE_FAULT_OBTAIN, size);
    if (err)
        return ca_source__fail(&s->c, err, true);
    if (align < src->granule)
        align = src->granule;
    char *got = NULL;
    ca_source__spin_lock(&s->lock, CA_LOCK_RANK_SOURCE_BUFFER);
    for (free_range **link = (free_range **)&s->free; *link; link = &(*link)->next) {
        free_range *r = *link;
        uintptr_t a = (uintptr_t)r, end = a + r->size;
        uintptr_t st = ca_align_up(a, align);
        if (st < a || st > end || size > end - st)
            continue;
        free_range *next = r->next;
        if (st + size < end) { /* tail stays free */
            free_range *t = node_at((void *)(st + size));
            t->size = end - (st + size);
            t->next = next;
            next = t;
        }
        if (st > a) { /* head stays free */
            r->size = st - a;
            r->next = next;
        } else {
            *link = next;
        }
        got = (char *)st;
        break;
    }
    ca_source__spin_unlock(&s->lock, CA_LOCK_RANK_SOURCE_BUFFER);
    if (!got)
        return ca_source__fail(&s->c, ENOMEM, true);
    ca_source__add(&s->c.obtains, 1, true);
    ca_source__in_use_add(&s->c, size, true);
    *out = got;
    CA_SOURCE__FULL(src, buffer);
    return 0;
}

static int buffer_release(ca_source *src, void *p, size_t size)
{
    ca_source_buffer *s = from(src);
    uintptr_t a = (uintptr_t)p;
    int err = 0;
    if (!p || !size || size % src->granule || a % src->granule || a < (uintptr_t)s->start ||
        a - (uintptr_t)s->start > s->size || size > s->size - (a - (uintptr_t)s->start))
        err = ca_source__bad_range(p, "release of a range outside this buffer source");
    if (!err)
        err = ca_source_fault_hit(s->fault, CA_SOURCE_FAULT_RELEASE, size);
    if (err)
        return ca_source__fail(&s->c, err, true);
    ca_source__spin_lock(&s->lock, CA_LOCK_RANK_SOURCE_BUFFER);
    free_range *prev = NULL, *next = node_at(s->free);
    while (next && (uintptr_t)next < a) {
        prev = next;
        next = next->next;
    }
    bool overlap = (prev && (uintptr_t)prev + prev->size > a) || (next && a + size > (uintptr_t)next);
    if (!overlap) {
        free_range *n = node_at(p);
        n->size = size;
        n->next = next;
        if (next && a + size == (uintptr_t)next) {
            n->size += next->size;
            n->next = next->next;
        }
        if (prev && (uintptr_t)prev + prev->size == a) {
            prev->size += n->size;
            prev->next = n->next;
        } else if (prev) {
            prev->next = n;
        } else {
            s->free = n;
        }
    }
    ca_source__spin_unlock(&s->lock, CA_LOCK_RANK_SOURCE_BUFFER);
    if (overlap)
        return ca_source__fail(
            &s->c, ca_source__bad_range(p, "release of free memory (double release) in a buffer source"), true);
    ca_source__add(&s->c.releases, 1, true);
    ca_source__sub(&s->c.in_use, size, true);
    CA_SOURCE__FULL(src, buffer);
    return 0;
}

static int buffer_stats(const ca_source *src, ca_stats *out)
{
    const ca_source_buffer *s = (const ca_source_buffer *)(const void *)src;
    ca_source__fill_stats(out, buffer_ops.name, &s->c, s->fault);
    return 0;
}

int ca_source_buffer_init(ca_source_buffer *s, void *mem, size_t size, const ca_source_buffer_options *o)
{
    static const ca_source_buffer_options dflt;
    if (!o)
        o = &dflt;
    int err = ca_source__init_start(s, o->fault);
    if (err)
        return err;
    size_t g = o->granule ? o->granule : ca_page_size();
    if (!mem || !ca_is_pow2(g) || g < 16)
        return EINVAL;
    uintptr_t a = (uintptr_t)mem, st, end;
    if (ca_add_overflows(a, size, &end) || ca_align_up_overflows(a, g, &st) || st > end)
        return EINVAL;
    size_t usable = ca_align_down(end - st, g);
    if (usable == 0)
        return EINVAL;
    memset(s, 0, sizeof *s);
    s->base.ops = &buffer_ops;
    s->base.granule = g;
    s->start = (char *)st;
    s->size = usable;
    free_range *n = node_at(s->start);
    n->size = usable;
    n->next = NULL;
    s->free = n;
    s->fault = o->fault;
    s->c.reserved = usable;
    s->c.committed = usable;
    return 0;
}

void ca_source_buffer_destroy(ca_source_buffer *s)
{
    if (s)
        s->base.ops = NULL;
}

const char *ca_source__buffer_check(const ca_source *src, bool totals)
{
    ca_source_buffer *s = (ca_source_buffer *)(void *)(uintptr_t)src;
    const char *msg = NULL;
    uint64_t free_bytes = 0;
    uintptr_t lo = (uintptr_t)s->start, hi = lo + s->size, last_end = 0;
    ca_source__spin_lock(&s->lock, CA_LOCK_RANK_SOURCE_BUFFER);
    for (const free_range *r = node_at(s->free); r && !msg; r = r->next) {
        uintptr_t a = (uintptr_t)r;
        if (a < lo || a >= hi || r->size == 0 || r->size > hi - a)
            msg = "buffer source: free range outside the buffer";
        else if (a % s->base.granule || r->size % s->base.granule)
            msg = "buffer source: free range not granule-aligned";
        else if (last_end && a <= last_end)
            msg = "buffer source: free ranges unsorted, overlapping or not merged";
        last_end = a + r->size;
        free_bytes += r->size;
    }
    ca_source__spin_unlock(&s->lock, CA_LOCK_RANK_SOURCE_BUFFER);
    if (!msg && totals && free_bytes + __atomic_load_n(&s->c.in_use, __ATOMIC_RELAXED) != s->size)
        msg = "buffer source: free + in use bytes differ from the buffer size";
    return msg;
}
