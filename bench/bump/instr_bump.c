/* SPDX-License-Identifier: MIT */
/*
 * Fixed-count driver for bench/instr_per_op.sh style counting:
 *   instr_bump MODE N   MODE = bump | shared | malloc
 * performs N allocations of 8..64 bytes (reset / free every 1,024), so the
 * instruction difference between two N divided by their difference is the
 * cost of one allocation including its share of the reset.
 */
#include <ctxalloc/bump.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const size_t sizes[8] = {8, 16, 24, 32, 40, 48, 56, 64};

int main(int argc, char **argv)
{
    if (argc != 3)
        return 2;
    long n = atol(argv[2]);
    uintptr_t sink = 0;
    if (strcmp(argv[1], "bump") == 0) {
        ca_bump b;
        ca_bump_init_allocator(&b, ca_libc_allocator(), NULL);
        for (long i = 0; i < n; i++) {
            sink ^= (uintptr_t)ca_bump_alloc(&b, sizes[i & 7], 8);
            if ((i & 1023) == 1023)
                ca_bump_reset(&b);
        }
        ca_bump_destroy(&b);
    } else if (strcmp(argv[1], "shared") == 0) {
        ca_bump_shared s;
        ca_bump_shared_init_allocator(&s, ca_libc_allocator(), NULL);
        for (long i = 0; i < n; i++) {
            sink ^= (uintptr_t)ca_bump_shared_alloc(&s, sizes[i & 7], 8);
            if ((i & 1023) == 1023)
                ca_bump_shared_reset(&s);
        }
        ca_bump_shared_destroy(&s);
    } else {
        static void *p[1024];
        for (long i = 0; i < n; i++) {
            p[i & 1023] = malloc(sizes[i & 7]);
            sink ^= (uintptr_t)p[i & 1023];
            if ((i & 1023) == 1023)
                for (int k = 0; k < 1024; k++)
                    free(p[k]);
        }
    }
    printf("%lx\n", (unsigned long)(sink & 1));
    return 0;
}
