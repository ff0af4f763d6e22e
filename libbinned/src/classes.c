/* SPDX-License-Identifier: MIT */
/*
 * libbinned size classes: the table of class sizes, block sizes, batch sizes
 * and the two lookup tables indexed by request size. Computed once, before
 * the first instance exists, and read-only afterwards (no locking needed:
 * the computation is idempotent and writes the same values if two threads
 * race through it). Read binned_internal.h ("Size classes") first.
 */
#include "binned_internal.h"

ca_binned__class_info ca_binned__classes[CA_BINNED__NCLASSES];
uint8_t ca_binned__lut16[CA_BINNED__LUT_MAX / 16 + 1];
uint8_t ca_binned__lut8[CA_BINNED__LUT_MAX / 8 + 1];

static size_t class_size(unsigned c)
{
    if (c < 4)
        return 16u * (c + 1);
    unsigned e = 6 + (c - 4) / 8;
    unsigned q = 8 + (c - 4) % 8;
    return (size_t)(q + 1) << (e - 3);
}

void ca_binned__classes_init(void)
{
    if (__atomic_load_n(&ca_binned__classes[CA_BINNED__NCLASSES - 1].size, __ATOMIC_ACQUIRE))
        return;
    for (unsigned c = 0; c < CA_BINNED__NCLASSES; c++) {
        ca_binned__class_info *ci = &ca_binned__classes[c];
        size_t size = class_size(c);
        unsigned shift = CA_BINNED__BLOCK_MIN_SHIFT;
        while (((size_t)1 << shift) < 8 * size)
            shift++;
        size_t batch = 32768 / size;
        if (batch < 1)
            batch = 1;
        if (batch > 64)
            batch = 64;
        ci->block_shift = (uint8_t)shift;
        ci->nslots = (uint32_t)(((size_t)1 << shift) / size);
        ci->batch = (uint32_t)batch;
        ci->cache_max = (uint32_t)(batch * 2);
        ci->recip = (((uint64_t)1 << CA_BINNED__RECIP_SHIFT) + size - 1) / size;
        if (c + 1 < CA_BINNED__NCLASSES)
            ci->size = (uint32_t)size;
    }
    for (size_t i = 0; i <= CA_BINNED__LUT_MAX / 8; i++)
        ca_binned__lut8[i] = (uint8_t)ca_binned__class_of(i * 8);
    for (size_t i = 0; i <= CA_BINNED__LUT_MAX / 16; i++)
        ca_binned__lut16[i] = (uint8_t)ca_binned__class_of(i * 16);
    /* The last size is the "ready" flag read above. */
    __atomic_store_n(&ca_binned__classes[CA_BINNED__NCLASSES - 1].size,
                     (uint32_t)class_size(CA_BINNED__NCLASSES - 1), __ATOMIC_RELEASE);
}
