/* SPDX-License-Identifier: MIT */
/* libFuzzer harness: the header adaptor over a locked libc adaptor. */
#include <stddef.h>
#include <stdint.h>

#include "fuzz_test.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ca_header_allocator h;
    ca_locked_allocator l;
    ca_header_init(&h, ca_libc_allocator());
    ca_locked_init(&l, &h.base, CA_LOCK_SPIN);
    ca_fuzz_run(&l.base, data, size, NULL, CA_FUZZ_NO_RESET);
    ca_locked_destroy(&l);
    return 0;
}
