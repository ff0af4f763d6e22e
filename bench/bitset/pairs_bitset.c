/* SPDX-License-Identifier: MIT */
/*
 * Driver for instruction counts (valgrind --tool=callgrind, through
 * bench/instr_per_op.sh): N alloc+free pairs of one run of K blocks
 * (64-byte blocks) in a 1 GiB region whose first half is allocated.
 * Usage: pairs_bitset N [K]
 */
#include <ctxalloc/bitset.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    unsigned long n = strtoul(argv[1], NULL, 0);
    size_t k = argc > 2 ? strtoul(argv[2], NULL, 0) : 1;
    size_t region = (size_t)1 << 30;
    void *buf = mmap(NULL, region, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (buf == MAP_FAILED)
        return 1;
    ca_bitset_options o;
    ca_bitset_options_init(&o);
    o.block_size = 64;
    o.region_size = region;
    o.buffer = buf;
    ca_bitset *b = NULL;
    if (ca_bitset_create(&b, &o) || !ca_bitset_alloc(b, region / 2, 16, NULL))
        return 1;
    void *volatile sink;
    for (unsigned long i = 0; i < n; i++) {
        void *p = ca_bitset_alloc(b, k * 64, 16, NULL);
        sink = p;
        ca_bitset_free(b, p, k * 64);
    }
    (void)sink;
    ca_bitset_destroy(b);
    munmap(buf, region);
    return 0;
}
