/* SPDX-License-Identifier: MIT */
/* libFuzzer harness: one ca_binned instance (16 MiB per class) reused across
 * inputs; sizes up to 2 MiB cross into the large tier (above 256 KiB). Every input frees
 * what it allocated, and the instance's invariants are walked after each
 * operation. */
#include <ctxalloc/binned.h>
#include <stdint.h>

#include "fuzz_test.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static ca_binned *instance;

static void check_instance(ca_allocator *a)
{
    const char *what = ca_binned_check(instance);
    (void)a;
    if (what) {
        fprintf(stderr, "binned invariant: %s\n", what);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!instance) {
        ca_binned_options o;
        ca_binned_options_init(&o);
        o.class_range_log2 = 24;
        if (ca_binned_create(&instance, &o) != 0)
            abort();
    }
    ca_fuzz_run(ca_binned_allocator(instance), data, size, check_instance, CA_FUZZ_NO_RESET | CA_FUZZ_LARGE);
    return 0;
}
