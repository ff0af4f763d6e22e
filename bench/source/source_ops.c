/* SPDX-License-Identifier: MIT */
/*
 * Driver for instruction counts (bench/instr_per_op.sh):
 *   source_ops slots N    N get+put pairs on a 64-byte slot arena (warm)
 *   source_ops malloc N   N malloc(64)+free pairs, the same work on malloc
 * Exits 0; prints nothing.
 */
#include <ctxalloc/source.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc != 3)
        return 2;
    unsigned long n = strtoul(argv[2], NULL, 0);
    if (strcmp(argv[1], "slots") == 0) {
        ca_source_slots s;
        ca_source_slots_options o;
        memset(&o, 0, sizeof o);
        o.slot_size = 64;
        if (ca_source_slots_init(&s, ca_source_mmap_global(), &o))
            return 1;
        ca_source_slots_put(&s, ca_source_slots_get(&s));
        for (unsigned long i = 0; i < n; i++) {
            void *p = ca_source_slots_get(&s);
            __asm__ volatile("" : : "r"(p) : "memory");
            ca_source_slots_put(&s, p);
        }
        ca_source_slots_destroy(&s);
    } else {
        for (unsigned long i = 0; i < n; i++) {
            void *p = malloc(64);
            __asm__ volatile("" : : "r"(p) : "memory");
            free(p);
        }
    }
    return 0;
}
