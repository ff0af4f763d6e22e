/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by libbinned's tests.
 */
#ifndef CA_BINNED_TEST_H
#define CA_BINNED_TEST_H

#include "binned_internal.h"

#include <stdbool.h>

/* p lies in b's starter area. */
static inline bool binned_test_in_starter(const ca_binned *b, const void *p)
{
    return b->starter_base && (uintptr_t)p - b->starter_base < CA_BINNED__STARTER_BYTES;
}

/* Move the default instance's class of `size` past its starter share: a
 * malloc and free of that size until a slot comes from the class's blocks
 * (at most CA_BINNED__STARTER_GIVEN_MAX + 1 turns). Tests of the blocks'
 * own mechanics (free lists, neighbours, thread caches) start with it. */
static inline void binned_test_past_starter(size_t size)
{
    ca_binned *d = ca_binned_default();
    for (unsigned i = 0; i <= CA_BINNED__STARTER_GIVEN_MAX; i++) {
        void *p = ca_binned_default_malloc(size);
        bool st = binned_test_in_starter(d, p);
        ca_binned_default_free(p);
        if (!st)
            return;
    }
}

#endif /* CA_BINNED_TEST_H */
