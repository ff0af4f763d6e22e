/* SPDX-License-Identifier: MIT */
/*
 * A crashing program: allocates about 8 MiB in blocks of 64 B to 64 KiB
 * (written), then aborts. The runner lets it dump core (RLIMIT_CORE
 * unlimited, in a scratch directory, when the kernel's core_pattern writes a
 * plain file) and records the core file's apparent and allocated size and
 * the time to die. Usage: crash [scale] (the scale is ignored).
 */
#include "wl.h"

int main(void)
{
    wl_rng r = {4242};
    size_t total = 0;
    static void *keep[4096];
    for (int i = 0; i < 4096 && total < ((size_t)8 << 20); i++) {
        size_t sz = 64 + (size_t)wl_below(&r, 65536 - 64);
        keep[i] = wl_malloc(sz);
        memset(keep[i], 0x5a, sz);
        total += sz;
    }
    fflush(stdout);
    abort();
}
