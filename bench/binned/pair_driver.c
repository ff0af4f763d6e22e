/* SPDX-License-Identifier: MIT */
/* Fast-path driver for instruction counts (bench/instr_per_op.sh):
 *   pair_driver N binned|malloc   N malloc+free pairs, sizes cycling 16..512 B
 *   randfree_driver N ...         (argv[0] ending in "randfree"): N rounds of
 *                                 1,000 allocations freed in random order */
#include <ctxalloc/binned.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    int use_binned = argc < 3 || strcmp(argv[2], "malloc") != 0;
    int randfree = argc > 3 && strcmp(argv[3], "randfree") == 0;
    unsigned long acc = 0;
    if (!randfree) {
        for (long i = 0; i < n; i++) {
            size_t s = 16 + (size_t)(i & 31) * 16;
            void *p = use_binned ? ca_binned_default_malloc(s) : malloc(s);
            acc += (unsigned long)(uintptr_t)p;
            __asm__ volatile("" ::: "memory");
            if (use_binned)
                ca_binned_default_free(p);
            else
                free(p);
        }
    } else {
        static void *p[1000];
        static size_t sz[1000], order[1000];
        unsigned long r = 42;
        for (int i = 0; i < 1000; i++) {
            r = r * 6364136223846793005ul + 1442695040888963407ul;
            sz[i] = 16 + (r >> 33) % 1009;
            order[i] = (size_t)i;
        }
        for (int i = 999; i > 0; i--) {
            r = r * 6364136223846793005ul + 1442695040888963407ul;
            size_t j = (r >> 33) % (size_t)(i + 1), t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        for (long k = 0; k < n / 1000; k++) {
            for (int i = 0; i < 1000; i++)
                p[i] = use_binned ? ca_binned_default_malloc(sz[i]) : malloc(sz[i]);
            __asm__ volatile("" ::: "memory");
            for (int i = 0; i < 1000; i++) {
                if (use_binned)
                    ca_binned_default_free(p[order[i]]);
                else
                    free(p[order[i]]);
            }
        }
    }
    return (int)(acc & 1);
}
