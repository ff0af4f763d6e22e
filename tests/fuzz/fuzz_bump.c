/* SPDX-License-Identifier: MIT */
/* libFuzzer harness: a growing ca_bump over the libc allocator, small chunks
 * so that chunk chaining, oversized chunks, tip reclaim and reset all run. */
#include <ctxalloc/bump.h>
#include <stdint.h>

#include "fuzz_test.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(ca_allocator *a)
{
    if (ca_bump_check((const ca_bump *)a) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ca_bump b;
    ca_bump_options o = {4096, (size_t)1 << 20};
    if (ca_bump_init_allocator(&b, ca_libc_allocator(), &o) != 0)
        abort();
    ca_fuzz_run(&b.base, data, size, check, 0);
    ca_bump_destroy(&b);
    return 0;
}
