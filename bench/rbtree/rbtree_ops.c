/* SPDX-License-Identifier: MIT */
/*
 * Driver for instruction counts (bench/instr_per_op.sh style):
 *   rbtree_ops pair N     N alloc+free pairs, sizes cycling 16..512 B
 *   rbtree_ops random N   N random replacements in a 10,000-block working set
 *                         of 16 B..64 KiB (memory not touched)
 * Exits 0; prints nothing.
 */
#include <ctxalloc/rbtree.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

int main(int argc, char **argv)
{
    if (argc != 3)
        return 2;
    unsigned long n = strtoul(argv[2], NULL, 0);
    ca_rbtree r;
    ca_rbtree_init(&r, NULL);
    if (strcmp(argv[1], "pair") == 0) {
        size_t s = 16;
        for (unsigned long i = 0; i < n; i++) {
            void *p = ca_rbtree_alloc(&r, s, 16, NULL);
            __asm__ volatile("" : : "r"(p) : "memory");
            ca_rbtree_free(&r, p, s, 16);
            s = s == 512 ? 16 : s + 16;
        }
    } else {
        enum { W = 10000 };
        static void *ptr[W];
        static size_t sz[W];
        uint64_t seed = 1;
        for (size_t i = 0; i < W; i++) {
            sz[i] = 16 + rng_next(&seed) % 65520;
            ptr[i] = ca_rbtree_alloc(&r, sz[i], 16, NULL);
        }
        for (unsigned long i = 0; i < n; i++) {
            size_t k = rng_next(&seed) % W;
            unsigned e = 4 + (unsigned)(rng_next(&seed) % 12);
            ca_rbtree_free(&r, ptr[k], sz[k], 16);
            sz[k] = ((size_t)1 << e) + rng_next(&seed) % ((size_t)1 << e);
            ptr[k] = ca_rbtree_alloc(&r, sz[k], 16, NULL);
        }
    }
    ca_rbtree_destroy(&r);
    return 0;
}
