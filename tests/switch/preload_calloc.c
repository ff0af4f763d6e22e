/* SPDX-License-Identifier: MIT */
/*
 * calloc of fresh memory is not written again; reused memory is zeroed.
 * Run by preload_programs.sh with the preload object. Prints the resident
 * growth of calloc(512 MiB) and exits 0 when: that growth is below 16 MiB
 * (fresh memory is known to be zero: no page was touched), and a block
 * freed dirty and calloc'ed again reads as zero, for large and small sizes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld", &v) == 1)
            break;
    if (f)
        fclose(f);
    return v;
}

static int all_zero(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i += 4093)
        if (p[i])
            return 0;
    return n == 0 || p[n - 1] == 0;
}

int main(void)
{
    const size_t big = (size_t)512 << 20;
    long before = rss_kib();
    unsigned char *p = calloc(big, 1);
    long grown = rss_kib() - before;
    printf("calloc(512 MiB): resident +%ld KiB\n", grown);
    if (!p || !all_zero(p, big) || grown > 16 * 1024)
        return 1;
    free(p);
    static const size_t sizes[] = {24, 1000, 100000, (size_t)1 << 20, (size_t)5 << 20};
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++)
        for (int round = 0; round < 50; round++) {
            unsigned char *d = malloc(sizes[k]);
            if (!d)
                return 1;
            memset(d, 0xa5, sizes[k]);
            free(d);
            unsigned char *z = calloc(1, sizes[k]);
            if (!z || !all_zero(z, sizes[k])) {
                printf("calloc(%zu) after a dirty free does not read as zero\n", sizes[k]);
                return 1;
            }
            free(z);
        }
    return 0;
}
