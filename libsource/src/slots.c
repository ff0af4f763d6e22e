/* SPDX-License-Identifier: MIT */
/*
 * The slot arena: fixed-size blocks carved from chunks of a parent source.
 * A chunk starts with a chunk_hdr (list of chunks, size); its slots follow at
 * the first slot_size-aligned address. Free slots form an intrusive LIFO
 * list through their first word; under checks=on the second word of a free
 * slot holds FREE_TAG ^ its address, so a release of a slot already free is
 * suspected in O(1) and confirmed by walking the list.
 * Concurrency: none (a single owner or an external lock); counters plain.
 * Read first: ca_source_slots_get / ca_source_slots_put (the fast path).
 */
#include "source_internal.h"

typedef struct chunk_hdr {
    struct chunk_hdr *next; /* older chunk */
    size_t size;            /* bytes obtained from the parent */
} chunk_hdr;

#define FREE_TAG ((uintptr_t)0x5a1075f4eeb10cc5ull)

CA_SOURCE__DECLARE(slots)

static const ca_source_ops slots_ops = CA_SOURCE__OPS(slots, 0);


static ca_source_slots *from(ca_source *s) { return (ca_source_slots *)(void *)s; }

static char *first_slot(const ca_source_slots *s, const chunk_hdr *c)
{
    return (char *)ca_align_up((uintptr_t)c + sizeof(chunk_hdr), s->slot_size);
}

/* Take a new chunk from the parent; the caller carves from s->bump. */
static int new_chunk(ca_source_slots *s)
{
    size_t pg = s->parent->granule;
    int err = s->fault ? ca_source_fault_hit(s->fault, CA_SOURCE_FAULT_PARENT, s->chunk_size) : 0;
    void *mem = NULL;
    if (!err)
        err = ca_source_obtain(s->parent, s->chunk_size, s->slot_size > pg ? s->slot_size : pg, &mem);
    if (err)
        return err;
    chunk_hdr *c = (chunk_hdr *)mem;
    c->next = (chunk_hdr *)s->chunks;
    c->size = s->chunk_size;
    s->chunks = c;
    s->nchunks++;
    s->bump = first_slot(s, c);
    s->bump_end = (char *)c + s->chunk_size;
    s->c.reserved += s->chunk_size;
    s->c.committed += s->chunk_size;
    return 0;
}

/* Free list empty: carve from the newest chunk, else take a new chunk. */
static ca_attr_noinline ca_attr_cold void *get_slow(ca_source_slots *s)
{
    if ((size_t)(s->bump_end - s->bump) < s->slot_size) {
        int err = new_chunk(s);
        if (err) {
            s->c.failures++;
            errno = err;
            return NULL;
        }
    }
    void *p = s->bump;
    s->bump += s->slot_size;
    s->c.obtains++;
    if (s->init)
        s->init(s->init_ctx, p, s->slot_size);
    CA_SOURCE__FULL(&s->base, slots);
    return p;
}

/* The fast path: a list pop and one counter. Bytes in use and the peak are
 * derived when read (in_use = carved - free slots; the peak is every carved
 * slot, since carving happens only with the free list empty). */
void *ca_source_slots_get(ca_source_slots *s)
{
    void *p = s->free;
    if (ca_unlikely(!p))
        return get_slow(s);
    s->free = *(void **)p;
    s->nfree--;
    if (CA_SOURCE__CHECKS_ON)
        ((uintptr_t *)p)[1] = 0;
    s->c.obtains++;
    if (s->init)
        s->init(s->init_ctx, p, s->slot_size);
    CA_SOURCE__FULL(&s->base, slots);
    return p;
}

/* Slots carved from all chunks so far. */
static size_t carved(const ca_source_slots *s)
{
    size_t n = 0;
    for (const chunk_hdr *c = (const chunk_hdr *)s->chunks; c; c = c->next) {
        char *lo = (char *)ca_align_up((uintptr_t)c + sizeof(chunk_hdr), s->slot_size);
        char *hi = c == s->chunks ? s->bump : (char *)c + c->size;
        n += (size_t)(hi - lo) / s->slot_size;
    }
    return n;
}

/* True when p is the start of a carved slot of s. */
static bool is_slot(const ca_source_slots *s, const void *p)
{
    uintptr_t a = (uintptr_t)p;
    for (const chunk_hdr *c = (const chunk_hdr *)s->chunks; c; c = c->next) {
        uintptr_t lo = (uintptr_t)first_slot(s, c);
        uintptr_t hi = c == s->chunks ? (uintptr_t)s->bump : (uintptr_t)c + c->size;
        if (a >= lo && a < hi)
            return (a - lo) % s->slot_size == 0;
    }
    return false;
}

static bool on_free_list(const ca_source_slots *s, const void *p)
{
    for (void *q = s->free; q; q = *(void **)q)
        if (q == p)
            return true;
    return false;
}

void ca_source_slots_put(ca_source_slots *s, void *p)
{
    if (!p)
        return;
    if (CA_SOURCE__CHECKS_ON) {
        CA_CHECK(is_slot(s, p), CA_SOURCE__NAME, p, "release of a block this slot arena did not give out");
        CA_CHECK(((uintptr_t *)p)[1] != (FREE_TAG ^ (uintptr_t)p) || !on_free_list(s, p), CA_SOURCE__NAME, p,
                 "double release in a slot arena");
        ((uintptr_t *)p)[1] = FREE_TAG ^ (uintptr_t)p;
    }
    *(void **)p = s->free;
    s->free = p;
    s->nfree++;
    s->c.releases++;
    CA_SOURCE__FULL(&s->base, slots);
}

static int slots_obtain(ca_source *src, size_t size, size_t align, void **out)
{
    ca_source_slots *s = from(src);
    int err = size == s->slot_size && ca_is_pow2(align) && align <= s->slot_size ? 0 : EINVAL;
    if (!err && s->fault)
        err = ca_source_fault_hit(s->fault, CA_SOURCE_FAULT_OBTAIN, size);
    if (err) {
        s->c.failures++;
        return err;
    }
    void *p = ca_source_slots_get(s);
    if (!p)
        return errno;
    *out = p;
    return 0;
}

static int slots_release(ca_source *src, void *p, size_t size)
{
    ca_source_slots *s = from(src);
    int err = p && size == s->slot_size ? 0 : EINVAL;
    if (!err && s->fault)
        err = ca_source_fault_hit(s->fault, CA_SOURCE_FAULT_RELEASE, size);
    if (err) {
        s->c.failures++;
        return err;
    }
    ca_source_slots_put(s, p);
    return 0;
}

static int slots_stats(const ca_source *src, ca_stats *out)
{
    CA_STATS_COUNTERS(CA_SOURCE_SLOTS_COUNTERS);
    const ca_source_slots *s = (const ca_source_slots *)(const void *)src;
    ca_source_counters c = s->c;
    size_t n = carved(s);
    c.in_use = (uint64_t)(n - s->nfree) * s->slot_size;
    c.peak = (uint64_t)n * s->slot_size;
    ca_source__fill_stats(out, slots_ops.name, &c, s->fault);
    CA_STATS_SET(out, chunks, s->nchunks);
    CA_STATS_SET(out, slot_size, s->slot_size);
    return 0;
}

int ca_source_slots_init(ca_source_slots *s, ca_source *parent, const ca_source_slots_options *o)
{
    if (!parent || !parent->ops || !o)
        return EINVAL;
    int err = ca_source__init_start(s, o->fault);
    if (err)
        return err;
    size_t slot = o->slot_size;
    if (!ca_is_pow2(slot) || slot < 16)
        return EINVAL;
    size_t chunk = o->chunk_size ? o->chunk_size : CA_SOURCE_SLOTS_CHUNK_DEFAULT;
    size_t min_chunk;
    if (!o->chunk_size) {
        size_t sixteen;
        if (ca_mul_overflows(slot, 17, &sixteen))
            return EINVAL;
        if (chunk < sixteen)
            chunk = sixteen;
    }
    /* The first slot sits at chunk + slot_size (slot_size >= the header). */
    if (ca_mul_overflows(slot, 2, &min_chunk) ||
        ca_align_up_overflows(chunk < min_chunk ? min_chunk : chunk, parent->granule, &chunk) ||
        ca_align_up_overflows(chunk, slot > parent->granule ? slot : parent->granule, &chunk))
        return EINVAL;
    memset(s, 0, sizeof *s);
    s->base.ops = &slots_ops;
    s->base.granule = slot;
    s->parent = parent;
    s->slot_size = slot;
    s->chunk_size = chunk;
    s->init = o->init;
    s->init_ctx = o->init_ctx;
    s->fault = o->fault;
    return 0;
}

void ca_source_slots_destroy(ca_source_slots *s)
{
    if (!s)
        return;
    chunk_hdr *c = (chunk_hdr *)s->chunks;
    while (c) {
        chunk_hdr *next = c->next;
        (void)ca_source_release(s->parent, c, c->size);
        c = next;
    }
    s->chunks = NULL;
    s->free = NULL;
    s->base.ops = NULL;
}

size_t ca_source_slots_free_count(const ca_source_slots *s)
{
    return s->nfree + (size_t)(s->bump_end - s->bump) / s->slot_size;
}

const char *ca_source__slots_check(const ca_source *src, bool totals)
{
    (void)totals;
    const ca_source_slots *s = (const ca_source_slots *)(const void *)src;
    size_t ncarved = 0, chunks = 0;
    for (const chunk_hdr *c = (const chunk_hdr *)s->chunks; c; c = c->next) {
        if (c->size != s->chunk_size || (uintptr_t)c % s->parent->granule)
            return "slot arena: chunk header corrupt";
        char *hi = c == s->chunks ? s->bump : (char *)c + c->size;
        ncarved += (size_t)(hi - first_slot(s, c)) / s->slot_size;
        if (++chunks > s->nchunks)
            return "slot arena: chunk list longer than the chunk count";
    }
    if (chunks != s->nchunks)
        return "slot arena: chunk count differs from the list";
    size_t n = 0;
    for (void *q = s->free; q; q = *(void **)q) {
        if (!is_slot(s, q))
            return "slot arena: free list holds a pointer that is not a slot";
        if (CA_SOURCE__CHECKS_ON && ((uintptr_t *)q)[1] != (FREE_TAG ^ (uintptr_t)q))
            return "slot arena: free slot lost its tag (written after release?)";
        if (++n > ncarved)
            return "slot arena: free list longer than the carved slots (cycle?)";
    }
    if (n != s->nfree)
        return "slot arena: free count differs from the list";
    if (ncarved - n != s->c.obtains - s->c.releases)
        return "slot arena: obtains - releases differ from carved - free slots";
    if (s->c.reserved != s->nchunks * s->chunk_size)
        return "slot arena: reserved bytes differ from the chunks";
    return NULL;
}
