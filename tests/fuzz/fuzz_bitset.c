/* SPDX-License-Identifier: MIT */
/* libFuzzer harness: ca_bitset over an 8 MiB caller buffer of 64-byte blocks
 * (sizes up to 1 MiB, so exhaustion and ENOMEM paths run too). */
#include <ctxalloc/bitset.h>
#include <stdint.h>

#include "fuzz_test.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static ca_bitset *current;

static void check(ca_allocator *a)
{
    (void)a;
    const char *what = ca_bitset_check(current);
    if (what) {
        fprintf(stderr, "bitset invariant: %s\n", what);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static _Alignas(4096) unsigned char region[8u << 20];
    ca_bitset_options o;
    ca_bitset_options_init(&o);
    o.block_size = 64;
    o.region_size = sizeof region;
    o.buffer = region;
    if (ca_bitset_create(&current, &o) != 0)
        abort();
    ca_fuzz_run(ca_bitset_allocator(current), data, size, check, 0);
    ca_bitset_destroy(current);
    return 0;
}
