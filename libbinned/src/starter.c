/* SPDX-License-Identifier: MIT */
/*
 * libbinned starter area: the first slots of the classes up to 4 KiB, from
 * one shared area (binned_internal.h, "Starter area", says why and how).
 *
 * Concurrency model: the layout (starter_base, starter_off) is written at
 * create and read-only after. A class's share (st_live, st_given) is under
 * that class's lock, taken by take, put and the check; the shadow bytes of
 * starter slots are written outside it by malloc (live mark) and free (the
 * release), as for every slot, and a slot's bit is set before its mark is
 * written and cleared after its mark is released, so a bit is clear only
 * for a slot whose shadow byte is 0.
 */
#include "binned_internal.h"

/* Lowest set bit of the class size: the alignment its blocks give a slot. */
static size_t slot_align(unsigned cls)
{
    size_t s = ca_binned__classes[cls].size;
    return s & (~s + 1);
}

void ca_binned__starter_init(ca_binned *b)
{
    uint32_t off = 0;
    for (unsigned c = 0; c < CA_BINNED__STARTER_CLASSES; c++) {
        off = (uint32_t)ca_align_up(off, slot_align(c));
        b->starter_off[c] = off;
        off += ca_binned__starter_slots(c) * ca_binned__classes[c].size;
    }
    b->starter_off[CA_BINNED__STARTER_CLASSES] = off;
    CA_ASSERT(off <= CA_BINNED__STARTER_BYTES, CA_BINNED__COMP, b, "starter layout larger than its area");
    char *area = (char *)(b->span_base + b->span);
    int saved = errno;
    if (ca_source_mmap_obtain_at(&b->own_src, area, CA_BINNED__STARTER_BYTES) != 0) {
        errno = saved;
        return;
    }
    if (ca_source_mmap_obtain_at(&b->shadow_src, ca_binned__shadow(b, area), CA_BINNED__STARTER_BYTES >> 4) != 0) {
        ca_source_release(&b->own_src.base, area, CA_BINNED__STARTER_BYTES);
        errno = saved;
        return;
    }
    b->starter_base = (uintptr_t)area;
}

void ca_binned__starter_destroy(ca_binned *b)
{
    if (!b->starter_base)
        return;
    char *area = (char *)b->starter_base;
    ca_source_release(&b->shadow_src.base, ca_binned__shadow(b, area), CA_BINNED__STARTER_BYTES >> 4);
    ca_source_release(&b->own_src.base, area, CA_BINNED__STARTER_BYTES);
    b->starter_base = 0;
}

void *ca_binned__starter_take(ca_binned *b, unsigned cls)
{
    ca_binned__class *c = &b->classes[cls];
    /* Unlocked reads pick the common answer; the lock decides. */
    if (__atomic_load_n(&c->frontier, __ATOMIC_RELAXED) ||
        __atomic_load_n(&c->st_given, __ATOMIC_RELAXED) >= CA_BINNED__STARTER_GIVEN_MAX)
        return NULL;
    void *p = NULL;
    unsigned n = ca_binned__starter_slots(cls);
    ca_binned__class_lock(c);
    uint32_t free_bits = ~c->st_live & ((1u << n) - 1); /* n <= 16 */
    if (!c->frontier && c->st_given < CA_BINNED__STARTER_GIVEN_MAX && free_bits) {
        unsigned i = (unsigned)__builtin_ctz(free_bits);
        __atomic_store_n(&c->st_live, c->st_live | 1u << i, __ATOMIC_RELAXED); /* stats read it unlocked */
        __atomic_store_n(&c->st_given, c->st_given + 1, __ATOMIC_RELAXED);
        p = (char *)b->starter_base + b->starter_off[cls] + (size_t)i * ca_binned__classes[cls].size;
    }
    ca_binned__class_unlock(c);
    if (p) /* counted as an exited thread's are: no bin saw it */
        __atomic_fetch_add(&c->exited_allocs, 1, __ATOMIC_RELAXED);
    return p;
}

unsigned ca_binned__starter_class(const ca_binned *b, const void *p)
{
    uint32_t off = (uint32_t)((uintptr_t)p - b->starter_base);
    /* The last share starting at or below off. */
    unsigned lo = 0, hi = CA_BINNED__STARTER_CLASSES;
    while (hi - lo > 1) {
        unsigned mid = (lo + hi) / 2;
        if (b->starter_off[mid] <= off)
            lo = mid;
        else
            hi = mid;
    }
    size_t end = b->starter_off[lo] + (size_t)ca_binned__starter_slots(lo) * ca_binned__classes[lo].size;
    return off >= b->starter_off[lo] && off < end ? lo : CA_BINNED__NCLASSES;
}

long ca_binned__starter_index(const ca_binned *b, unsigned cls, const void *p)
{
    size_t off = (size_t)((uintptr_t)p - b->starter_base - b->starter_off[cls]);
    size_t size = ca_binned__classes[cls].size;
    return off % size ? -1 : (long)(off / size);
}

void ca_binned__starter_put(ca_binned *b, unsigned cls, const void *p)
{
    ca_binned__class *c = &b->classes[cls];
    long i = ca_binned__starter_index(b, cls, p);
    ca_binned__class_lock(c);
    __atomic_store_n(&c->st_live, c->st_live & ~(1u << i), __ATOMIC_RELAXED);
    ca_binned__class_unlock(c);
    __atomic_fetch_add(&c->exited_frees, 1, __ATOMIC_RELAXED);
}

const char *ca_binned__starter_check(const ca_binned *cb)
{
    if (!cb->starter_base)
        return NULL;
    ca_binned *b = (ca_binned *)(uintptr_t)cb; /* class locks */
    const char *err = NULL;
    for (unsigned cls = 0; cls < CA_BINNED__STARTER_CLASSES && !err; cls++) {
        ca_binned__class *c = &b->classes[cls];
        unsigned n = ca_binned__starter_slots(cls);
        size_t size = ca_binned__classes[cls].size;
        char *share = (char *)b->starter_base + b->starter_off[cls];
        ca_binned__class_lock(c);
        if (c->st_given > CA_BINNED__STARTER_GIVEN_MAX || (c->st_live >> n))
            err = "binned: a starter share counts more than it has";
        for (unsigned i = 0; i < n && !err; i++) {
            char *slot = share + (size_t)i * size;
            uint8_t v = *ca_binned__shadow(b, slot);
            bool live = (c->st_live >> i) & 1;
            if (v && v != ca_binned__live_mark(slot))
                err = "binned: a shadow byte is not its slot's mark";
            else if (v && !live)
                err = "binned: the shadow marks a starter slot that is free";
            /* A set bit with a clear byte is allowed, as for a block's
             * slot: a fork that caught a malloc between its take and its
             * mark (or a free between its release and its put) leaves one
             * behind in the child, never freed. */
        }
        /* Granules that hold no slot start hold no mark (a slot is at
         * least 16 bytes: a granule holds one slot start at most). */
        uintptr_t g = (uintptr_t)share >> 4, end = ((uintptr_t)share + n * size + 15) >> 4;
        for (unsigned next = 0; g < end && !err; g++) {
            if (next < n && ((uintptr_t)share + next * size) >> 4 == g) {
                next++;
                continue;
            }
            if (*ca_binned__shadow(b, (void *)(g << 4)))
                err = "binned: the shadow marks a granule that holds no slot start";
        }
        ca_binned__class_unlock(c);
    }
    return err;
}
