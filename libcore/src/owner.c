/* SPDX-License-Identifier: MIT */
/*
 * The process-wide ownership map (address -> owner); see core.h for the
 * layout and its memory cost. ca_owner_lookup is inline in core.h.
 *
 * Concurrency model:
 *   - Readers load root -> mid -> leaf -> owner with acquire loads; a node,
 *     once published, is never freed or moved, so a reader never follows a
 *     dangling pointer.
 *   - A missing node is mapped and published with a CAS from NULL; the loser
 *     of a race unmaps its node and uses the winner's.
 *   - Leaf entries are claimed with a CAS from NULL (so two registrations of
 *     one granule cannot both succeed) and cleared with a CAS from the owner
 *     (so unregistering never erases another owner's entry).
 *   - A reader racing with (un)registration of the same granule sees either
 *     the old or the new owner; callers must not free memory while lookups
 *     for it may still be in flight (the usual rule for any allocator).
 */
#include <ctxalloc/core.h>

#include <sys/mman.h>

#define LEVEL_SHIFT_MID (CA_OWNER_GRANULE_SHIFT + CA_OWNER__LEAF_BITS)
#define LEVEL_SHIFT_ROOT (LEVEL_SHIFT_MID + CA_OWNER__MID_BITS)
CA_STATIC_ASSERT(LEVEL_SHIFT_ROOT + CA_OWNER__ROOT_BITS == 48, "levels must cover 48 bits");

void ***ca_core__owner_root[(size_t)1 << CA_OWNER__ROOT_BITS];

static void *map_node(size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

/* Returns the node at *slot, installing a zeroed one of `bytes` if absent. */
static void *get_or_install(void **slot, size_t bytes)
{
    void *n = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
    if (n)
        return n;
    void *fresh = map_node(bytes);
    if (!fresh)
        return NULL;
    void *expected = NULL;
    if (__atomic_compare_exchange_n(slot, &expected, fresh, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        return fresh;
    munmap(fresh, bytes);
    return expected;
}

/* The leaf entry for granule address a; NULL when a node cannot be mapped
 * (create) or does not exist (!create). */
static void **entry(uintptr_t a, bool create)
{
    void ****slot_root = &ca_core__owner_root[a >> LEVEL_SHIFT_ROOT];
    void ***mid = create ? (void ***)get_or_install((void **)slot_root, sizeof(void **) << CA_OWNER__MID_BITS)
                         : __atomic_load_n(slot_root, __ATOMIC_ACQUIRE);
    if (!mid)
        return NULL;
    void ***slot_mid = &mid[(a >> LEVEL_SHIFT_MID) & (((size_t)1 << CA_OWNER__MID_BITS) - 1)];
    void **leaf = create ? (void **)get_or_install((void **)slot_mid, sizeof(void *) << CA_OWNER__LEAF_BITS)
                         : __atomic_load_n(slot_mid, __ATOMIC_ACQUIRE);
    if (!leaf)
        return NULL;
    return &leaf[(a >> CA_OWNER_GRANULE_SHIFT) & (((size_t)1 << CA_OWNER__LEAF_BITS) - 1)];
}

static int check_range(const void *base, size_t size)
{
    uintptr_t b = (uintptr_t)base;
    size_t end;
    if (size == 0 || !ca_is_aligned(b, CA_OWNER_GRANULE) || !ca_is_aligned(size, CA_OWNER_GRANULE) ||
        ca_add_overflows(b, size, &end) || end > ((uintptr_t)1 << 48))
        return EINVAL;
    return 0;
}

/* Clear the entries of [b, end) that hold owner. */
static void clear(uintptr_t b, uintptr_t end, void *owner)
{
    for (uintptr_t a = b; a < end; a += CA_OWNER_GRANULE) {
        void **e = entry(a, false);
        void *expected = owner;
        if (e)
            __atomic_compare_exchange_n(e, &expected, NULL, false, __ATOMIC_RELEASE, __ATOMIC_RELAXED);
    }
}

int ca_owner_register(void *base, size_t size, void *owner)
{
    if (!owner || check_range(base, size))
        return EINVAL;
    uintptr_t b = (uintptr_t)base, end = b + size;
    for (uintptr_t a = b; a < end; a += CA_OWNER_GRANULE) {
        void **e = entry(a, true);
        void *expected = NULL;
        int err = 0;
        if (!e)
            err = ENOMEM;
        else if (!__atomic_compare_exchange_n(e, &expected, owner, false, __ATOMIC_RELEASE, __ATOMIC_RELAXED))
            err = EEXIST;
        if (err) {
            clear(b, a, owner);
            return err;
        }
    }
    return 0;
}

int ca_owner_unregister(void *base, size_t size, void *owner)
{
    if (!owner || check_range(base, size))
        return EINVAL;
    clear((uintptr_t)base, (uintptr_t)base + size, owner);
    return 0;
}
