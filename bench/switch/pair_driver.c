/* SPDX-License-Identifier: MIT */
/*
 * Fast-path driver for /work-style instruction counting:
 *   pair_driver N MODE   (MODE: switch | binned | malloc)
 * runs N malloc+free pairs with sizes cycling 16..512 through the chosen
 * entry points; used with bench/instr_per_op.sh to count instructions per pair.
 */
#include <ctxalloc/switch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef CA_BENCH_HAVE_BINNED
#include <ctxalloc/binned.h>
#endif

int main(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    long n = atol(argv[1]);
    const char *mode = argv[2];
    void *volatile sink;
    size_t s = 16;
    if (strcmp(mode, "switch") == 0) {
        for (long i = 0; i < n; i++) {
            void *p = ca_switch_malloc(s);
            sink = p;
            ca_switch_free(p);
            s = s == 512 ? 16 : s + 16;
        }
#ifdef CA_BENCH_HAVE_BINNED
    } else if (strcmp(mode, "binned") == 0) {
        for (long i = 0; i < n; i++) {
            void *p = ca_binned_default_malloc(s);
            sink = p;
            ca_binned_default_free(p);
            s = s == 512 ? 16 : s + 16;
        }
#endif
    } else {
        for (long i = 0; i < n; i++) {
            void *p = malloc(s);
            sink = p;
            free(p);
            s = s == 512 ? 16 : s + 16;
        }
    }
    (void)sink;
    return 0;
}
