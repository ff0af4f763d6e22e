/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by libbinned's tests.
 */
#ifndef CA_BINNED_TEST_H
#define CA_BINNED_TEST_H

#include "binned_internal.h"

#include <stdbool.h>

/* Move the default instance's class of `size` past its starter share: a
 * malloc and free of that size until a slot comes from the class's blocks
 * (at most CA_BINNED__STARTER_GIVEN_MAX + 1 turns). Tests of the blocks'
 * own mechanics (free lists, neighbours, thread caches) start with it. */
static inline void binned_test_past_starter(size_t size)
{
    ca_binned *d = ca_binned_default();
    for (unsigned i = 0; i <= CA_BINNED__STARTER_GIVEN_MAX; i++) {
        void *p = ca_binned_default_malloc(size);
        bool st = ca_binned__in_starter(d, p);
        ca_binned_default_free(p);
        if (!st)
            return;
    }
}

#endif /* CA_BINNED_TEST_H */
