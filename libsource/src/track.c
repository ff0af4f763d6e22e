/* SPDX-License-Identifier: MIT */
/*
 * The record of ranges a source handed out: an array of ca_source__range
 * sorted by DEcreasing start address, in its own anonymous mapping (never
 * malloc, so a malloc built on libsource does not recurse), grown by mremap.
 * Lookups are binary searches; insertion and removal move the tail. Linux
 * places new mappings below the existing ones, so the common insertion is an
 * append. A release marks its entry dead (start kept, so the order holds) and
 * the array is compacted when half of it is dead: releases in any order cost
 * O(log n) amortised. Dead entries next to an insertion point are reused.
 * Concurrency: one spin lock per record (ca_source_track.lock); callers hold
 * no other lock of ours while calling in.
 */
#include "source_internal.h"

#include <sys/mman.h>

void ca_source__track_init(ca_source_track *t) { memset(t, 0, sizeof *t); }

void ca_source__track_destroy(ca_source_track *t)
{
    if (t->ranges)
        (void)ca_os_unmap(t->ranges, t->cap * sizeof(ca_source__range));
    memset(t, 0, sizeof *t);
}

static ca_source__range *arr(const ca_source_track *t) { return (ca_source__range *)t->ranges; }

/* First index whose start is <= p (len when none). */
static size_t first_le(const ca_source_track *t, uintptr_t p)
{
    size_t lo = 0, hi = t->len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (arr(t)[mid].start > p)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static bool dead(const ca_source__range *r) { return (r->flags & CA_SOURCE__R_DEAD) != 0; }

/* The range holding [p, p + size), or NULL: the live entry with the
 * greatest start <= p, found past any dead entries. */
static ca_source__range *holder(const ca_source_track *t, uintptr_t p, size_t size)
{
    size_t i = first_le(t, p);
    while (i < t->len && dead(&arr(t)[i]))
        i++;
    if (i == t->len)
        return NULL;
    ca_source__range *r = &arr(t)[i];
    size_t off = p - r->start;
    if (off >= r->size || size > r->size - off)
        return NULL;
    return r;
}

/* Drop dead entries: O(n), run when at least half the entries are dead. */
static void compact(ca_source_track *t)
{
    size_t j = 0;
    for (size_t i = 0; i < t->len; i++)
        if (!dead(&arr(t)[i]))
            arr(t)[j++] = arr(t)[i];
    t->len = j;
    t->dead = 0;
}

static int grow(ca_source_track *t)
{
    size_t ncap = t->cap ? t->cap * 2 : ca_page_size() / sizeof(ca_source__range);
    size_t bytes;
    if (ca_mul_overflows(ncap, sizeof(ca_source__range), &bytes))
        return ENOMEM;
    void *n;
    int err = t->ranges
                  ? ca_os_remap(t->ranges, t->cap * sizeof(ca_source__range), bytes, MREMAP_MAYMOVE, NULL, &n)
                  : ca_os_map(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0, &n);
    if (err)
        return ENOMEM;
    t->ranges = n;
    t->cap = ncap;
    return 0;
}

int ca_source__track_add(ca_source_track *t, void *p, size_t size, size_t committed, unsigned flags)
{
    int err = 0;
    ca_source__spin_lock(&t->lock, CA_LOCK_RANK_SOURCE_TRACK);
    size_t i = first_le(t, (uintptr_t)p);
    ca_source__range *r = NULL;
    /* A dead entry at the insertion point (start == p or just above p)
     * keeps the order when reused. */
    if (i < t->len && dead(&arr(t)[i]) && (i + 1 == t->len || arr(t)[i + 1].start < (uintptr_t)p))
        r = &arr(t)[i];
    else if (i > 0 && dead(&arr(t)[i - 1]) && (i == t->len || arr(t)[i].start < (uintptr_t)p))
        r = &arr(t)[i - 1];
    if (r) {
        t->dead--;
    } else {
        if (t->len == t->cap)
            err = grow(t);
        if (!err) {
            memmove(arr(t) + i + 1, arr(t) + i, (t->len - i) * sizeof(ca_source__range));
            t->len++;
            r = &arr(t)[i];
        }
    }
    if (r) {
        r->start = (uintptr_t)p;
        r->size = size;
        r->committed = committed;
        r->flags = flags;
    }
    ca_source__spin_unlock(&t->lock, CA_LOCK_RANK_SOURCE_TRACK);
    return err;
}

int ca_source__track_take(ca_source_track *t, void *p, size_t size, ca_source__range *out)
{
    ca_source__spin_lock(&t->lock, CA_LOCK_RANK_SOURCE_TRACK);
    size_t i = first_le(t, (uintptr_t)p);
    bool ok = i < t->len && !dead(&arr(t)[i]) && arr(t)[i].start == (uintptr_t)p && arr(t)[i].size == size;
    if (ok) {
        *out = arr(t)[i];
        arr(t)[i].flags |= CA_SOURCE__R_DEAD;
        t->dead++;
        while (t->len && dead(&arr(t)[t->len - 1])) { /* the end shrinks at once */
            t->len--;
            t->dead--;
        }
        if (t->dead >= 16 && 2 * t->dead >= t->len)
            compact(t);
    }
    ca_source__spin_unlock(&t->lock, CA_LOCK_RANK_SOURCE_TRACK);
    return ok ? 0 : EINVAL;
}

int ca_source__track_adjust(ca_source_track *t, const void *p, size_t size, bool commit, int64_t *applied)
{
    ca_source__spin_lock(&t->lock, CA_LOCK_RANK_SOURCE_TRACK);
    ca_source__range *r = holder(t, (uintptr_t)p, size);
    if (r) {
        size_t before = r->committed;
        if (commit)
            r->committed = size > r->size - r->committed ? r->size : r->committed + size;
        else
            r->committed = size > r->committed ? 0 : r->committed - size;
        *applied = (int64_t)r->committed - (int64_t)before;
    }
    ca_source__spin_unlock(&t->lock, CA_LOCK_RANK_SOURCE_TRACK);
    return r ? 0 : EINVAL;
}

int ca_source__track_extend(ca_source_track *t, const void *p, size_t size, size_t new_size)
{
    ca_source__spin_lock(&t->lock, CA_LOCK_RANK_SOURCE_TRACK);
    size_t i = first_le(t, (uintptr_t)p);
    ca_source__range *r = i < t->len ? &arr(t)[i] : NULL;
    bool ok = r && !dead(r) && !(r->flags & CA_SOURCE__R_RESERVED) && r->start == (uintptr_t)p &&
              r->size == size && new_size > size &&
              (i == 0 || r->start + new_size <= arr(t)[i - 1].start || dead(&arr(t)[i - 1]));
    if (ok) {
        r->committed += new_size - size;
        r->size = new_size;
    }
    ca_source__spin_unlock(&t->lock, CA_LOCK_RANK_SOURCE_TRACK);
    return ok ? 0 : EINVAL;
}

int ca_source__track_shrink(ca_source_track *t, const void *p, size_t size, size_t new_size, size_t *dropped)
{
    ca_source__spin_lock(&t->lock, CA_LOCK_RANK_SOURCE_TRACK);
    size_t i = first_le(t, (uintptr_t)p);
    ca_source__range *r = i < t->len ? &arr(t)[i] : NULL;
    bool ok = r && !dead(r) && !(r->flags & CA_SOURCE__R_RESERVED) && r->start == (uintptr_t)p &&
              r->size == size && new_size && new_size < size;
    if (ok) {
        size_t c = r->committed < new_size ? r->committed : new_size;
        *dropped = r->committed - c;
        r->committed = c;
        r->size = new_size;
    }
    ca_source__spin_unlock(&t->lock, CA_LOCK_RANK_SOURCE_TRACK);
    return ok ? 0 : EINVAL;
}

int ca_source__track_exact(ca_source_track *t, const void *p, size_t size)
{
    ca_source__spin_lock(&t->lock, CA_LOCK_RANK_SOURCE_TRACK);
    size_t i = first_le(t, (uintptr_t)p);
    const ca_source__range *r = i < t->len ? &arr(t)[i] : NULL;
    bool ok = r && !dead(r) && !(r->flags & CA_SOURCE__R_RESERVED) && r->start == (uintptr_t)p && r->size == size;
    ca_source__spin_unlock(&t->lock, CA_LOCK_RANK_SOURCE_TRACK);
    return ok ? 0 : EINVAL;
}

int ca_source__track_within(ca_source_track *t, const void *p, size_t size, unsigned *flags)
{
    ca_source__spin_lock(&t->lock, CA_LOCK_RANK_SOURCE_TRACK);
    const ca_source__range *r = holder(t, (uintptr_t)p, size);
    if (r && flags)
        *flags = (unsigned)r->flags;
    ca_source__spin_unlock(&t->lock, CA_LOCK_RANK_SOURCE_TRACK);
    return r ? 0 : EINVAL;
}

const char *ca_source__track_check(ca_source_track *t, uint64_t *bytes, uint64_t *committed)
{
    const char *msg = NULL;
    uint64_t b = 0, c = 0;
    size_t ndead = 0;
    const ca_source__range *prev_live = NULL;
    ca_source__spin_lock(&t->lock, CA_LOCK_RANK_SOURCE_TRACK);
    if (t->len > t->cap)
        msg = "record length beyond its capacity";
    for (size_t i = 0; !msg && i < t->len; i++) {
        const ca_source__range *r = &arr(t)[i];
        if (i > 0 && r->start >= arr(t)[i - 1].start)
            msg = "recorded ranges unsorted";
        if (dead(r)) {
            ndead++;
            continue;
        }
        if (r->size == 0 || r->committed > r->size)
            msg = "recorded range empty or over-committed";
        else if (prev_live && r->start + r->size > prev_live->start)
            msg = "recorded ranges overlap";
        prev_live = r;
        b += r->size;
        c += r->committed;
    }
    if (!msg && ndead != t->dead)
        msg = "record's dead count differs from its entries";
    ca_source__spin_unlock(&t->lock, CA_LOCK_RANK_SOURCE_TRACK);
    if (bytes)
        *bytes = b;
    if (committed)
        *committed = c;
    return msg;
}

void ca_source__track_each(ca_source_track *t, void (*fn)(void *ctx, const ca_source__range *r), void *ctx)
{
    ca_source__spin_lock(&t->lock, CA_LOCK_RANK_SOURCE_TRACK);
    for (size_t i = 0; i < t->len; i++)
        if (!dead(&arr(t)[i]))
            fn(ctx, &arr(t)[i]);
    ca_source__spin_unlock(&t->lock, CA_LOCK_RANK_SOURCE_TRACK);
}

int ca_source__bad_range(const void *p, const char *what)
{
    CA_CHECK(false, CA_SOURCE__NAME, p, what);
    return EINVAL;
}

int ca_source__track_release(ca_source_track *t, void *p, size_t size, const char *what, ca_source__range *r)
{
    return ca_source__track_take(t, p, size, r) != 0 ? ca_source__bad_range(p, what) : 0;
}

int ca_source__track_change(ca_source_track *t, ca_source_fault *f, unsigned point, void *p, size_t size,
                            unsigned *flags, const char *what)
{
    if (ca_source__track_within(t, p, size, flags) != 0)
        return ca_source__bad_range(p, what);
    return ca_source_fault_hit(f, point, size);
}

void ca_source__track_put_back(ca_source_track *t, void *p, size_t size, const ca_source__range *r)
{
    (void)ca_source__track_add(t, p, size, r->committed, (unsigned)r->flags);
}

void ca_source__track_committed(ca_source_track *t, ca_source_counters *c, void *p, size_t size, bool commit)
{
    int64_t applied = 0;
    (void)ca_source__track_adjust(t, p, size, commit, &applied);
    if (commit) {
        ca_source__add(&c->committed, (uint64_t)applied, true);
        ca_source__add(&c->commits, 1, true);
    } else {
        ca_source__sub(&c->committed, (uint64_t)-applied, true);
        ca_source__add(&c->decommits, 1, true);
    }
}
