/* SPDX-License-Identifier: MIT */
/* Driver for bench/instr_per_op.sh style counting: n pairs of
 * ca_binned_large_alloc + ca_binned_large_free of 1 MiB on the process-wide
 * tier (the thread-cache fast path after the first pair).
 * Usage: instr_binned_large N */
#include <ctxalloc/binned/large.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    ca_binned_large *l = ca_binned_large_default();
    for (long i = 0; i < n; i++) {
        void *p = ca_binned_large_alloc(l, (size_t)1 << 20, 16, NULL);
        *(volatile char *)p = 1;
        ca_binned_large_free(l, p);
    }
    return 0;
}
