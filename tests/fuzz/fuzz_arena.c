/* SPDX-License-Identifier: MIT */
/* libFuzzer harness: a heap-backed ca_arena (4 MiB, 64-bit offsets); the
 * first input byte picks the free-list kind, the rest are operations. */
#include <ctxalloc/arena.h>
#include <stdint.h>

#include "fuzz_test.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static ca_arena *current;

static void check(ca_allocator *a)
{
    const char *what = ca_arena_check(current);
    (void)a;
    if (what) {
        fprintf(stderr, "arena invariant: %s\n", what);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    ca_arena_options o;
    ca_arena_options_init(&o);
    o.capacity = 4u << 20;
    o.freelist = (ca_arena_freelist)(CA_ARENA_FREELIST_NONE + data[0] % 3);
    o.offset_bits = (data[0] & 0x80) ? 32 : 64;
    if (ca_arena_create(&current, &o) != 0)
        abort();
    ca_fuzz_run(ca_arena_allocator(current), data + 1, size - 1, check, CA_FUZZ_NO_RESET);
    ca_arena_close(current);
    return 0;
}
