/* SPDX-License-Identifier: MIT */
/*
 * The region map of the large-object tier: a process-wide three-level radix
 * tree from 64 KiB granules of the 48-bit address space to region
 * descriptors, shared by every tier instance (the descriptor names its tier).
 *
 * Concurrency: lookups are lock-free (acquire loads); set/clear write
 * disjoint ranges (a region is mapped by one thread, cleared by one thread)
 * and install missing nodes with CAS. Nodes come from raw mmap and are
 * never freed. Read ca_binned__large_map_get first.
 */
#include "large_internal.h"

#define MAP_SHIFT 16
#define ROOT_BITS 12
#define MID_BITS 10
#define LEAF_BITS 10
#define MID_N ((size_t)1 << MID_BITS)
#define LEAF_N ((size_t)1 << LEAF_BITS)

static void **ca_bl_map_root[(size_t)1 << ROOT_BITS]; /* -> mid nodes (void **), atomic */

_Static_assert(MAP_SHIFT + ROOT_BITS + MID_BITS + LEAF_BITS == 48, "map covers 48 bits");

ca_binned__large_rgn *ca_binned__large_map_get(const void *p)
{
    uintptr_t a = (uintptr_t)p;
    if (ca_unlikely(a >> 48))
        return NULL;
    void **mid = __atomic_load_n(&ca_bl_map_root[a >> (MAP_SHIFT + LEAF_BITS + MID_BITS)], __ATOMIC_ACQUIRE);
    if (!mid)
        return NULL;
    void **leaf = (void **)__atomic_load_n(&mid[(a >> (MAP_SHIFT + LEAF_BITS)) & (MID_N - 1)], __ATOMIC_ACQUIRE);
    if (!leaf)
        return NULL;
    return (ca_binned__large_rgn *)__atomic_load_n(&leaf[(a >> MAP_SHIFT) & (LEAF_N - 1)], __ATOMIC_ACQUIRE);
}

/* The node in *slot, installing a zeroed one of `bytes` when missing. */
static void **node_get(void **slot, size_t bytes)
{
    void **n = (void **)__atomic_load_n(slot, __ATOMIC_ACQUIRE);
    if (n)
        return n;
    void **fresh = (void **)ca_binned__large_os_map(bytes);
    if (!fresh)
        return NULL;
    void *expected = NULL;
    if (__atomic_compare_exchange_n(slot, &expected, (void *)fresh, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        return fresh;
    ca_binned__large_os_unmap(fresh, bytes);
    return (void **)expected;
}

static void **leaf_of(uintptr_t a, bool create)
{
    void **root_slot = (void **)&ca_bl_map_root[a >> (MAP_SHIFT + LEAF_BITS + MID_BITS)];
    void **mid = create ? node_get(root_slot, MID_N * sizeof(void *))
                        : (void **)__atomic_load_n(root_slot, __ATOMIC_ACQUIRE);
    if (!mid)
        return NULL;
    void **leaf_slot = &mid[(a >> (MAP_SHIFT + LEAF_BITS)) & (MID_N - 1)];
    return create ? node_get(leaf_slot, LEAF_N * sizeof(void *))
                  : (void **)__atomic_load_n(leaf_slot, __ATOMIC_ACQUIRE);
}

static int map_write(void *base, size_t size, ca_binned__large_rgn *r)
{
    uintptr_t a = (uintptr_t)base, end;
    if (ca_add_overflows(a, size, &end) || (end - 1) >> 48 || !ca_is_aligned(a, (size_t)1 << MAP_SHIFT))
        return EINVAL;
    for (; a < end; a += (size_t)1 << MAP_SHIFT) {
        void **leaf = leaf_of(a, r != NULL);
        if (!leaf) {
            if (r)
                return ENOMEM;
            continue;
        }
        __atomic_store_n(&leaf[(a >> MAP_SHIFT) & (LEAF_N - 1)], (void *)r, __ATOMIC_RELEASE);
    }
    return 0;
}

int ca_binned__large_map_set(void *base, size_t size, ca_binned__large_rgn *r)
{
    int rc = map_write(base, size, r);
    if (rc)
        (void)map_write(base, size, NULL);
    return rc;
}

void ca_binned__large_map_clear(void *base, size_t size) { (void)map_write(base, size, NULL); }
