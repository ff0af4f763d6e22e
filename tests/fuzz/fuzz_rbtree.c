/* SPDX-License-Identifier: MIT */
/* libFuzzer harness: ca_rbtree over the libc allocator with 256 KiB regions,
 * so splitting, coalescing, region return and large requests all run. */
#include <ctxalloc/rbtree.h>
#include <stdint.h>

#include "fuzz_test.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(ca_allocator *a)
{
    const char *what = ca_rbtree_check((const ca_rbtree *)a);
    if (what) {
        fprintf(stderr, "rbtree invariant: %s\n", what);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ca_rbtree r;
    ca_rbtree_options o;
    ca_rbtree_options_init(&o);
    o.region_size = (size_t)256 << 10;
    if (ca_rbtree_init(&r, &o) != 0)
        abort();
    ca_fuzz_run(&r.base, data, size, check, 0);
    ca_rbtree_destroy(&r);
    return 0;
}
