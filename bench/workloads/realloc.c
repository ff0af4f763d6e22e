/* SPDX-License-Identifier: MIT */
/*
 * Realloc growth: many strings grown by small appends (as a parser or a
 * string builder does) and buffers doubled (as vectors do), all contents
 * verified at the end. Usage: realloc [scale]
 */
#include "wl.h"

#define STRINGS 20000

int main(int argc, char **argv)
{
    size_t appends = wl_scaled(wl_scale(argc, argv), 9000000, 20000);
    char **s = (char **)wl_malloc(STRINGS * sizeof *s);
    size_t *len = (size_t *)wl_malloc(STRINGS * sizeof *len);
    memset(s, 0, STRINGS * sizeof *s);
    memset(len, 0, STRINGS * sizeof *len);
    wl_rng r = {99};
    for (size_t n = 0; n < appends; n++) {
        size_t i = (size_t)wl_below(&r, STRINGS);
        size_t add = 1 + (size_t)wl_below(&r, 24);
        char *q = (char *)realloc(s[i], len[i] + add + 1);
        if (!q) {
            fprintf(stderr, "realloc failed\n");
            return 2;
        }
        for (size_t k = 0; k < add; k++)
            q[len[i] + k] = (char)('a' + (len[i] + k + i) % 26);
        len[i] += add;
        q[len[i]] = '\0';
        s[i] = q;
    }
    unsigned long long check = 0;
    for (size_t i = 0; i < STRINGS; i++) {
        for (size_t k = 0; k < len[i]; k++)
            if (s[i][k] != (char)('a' + (k + i) % 26)) {
                fprintf(stderr, "string %zu corrupted at %zu\n", i, k);
                return 3;
            }
        check += len[i];
        free(s[i]);
    }
    /* vectors: doubling growth to 1..4 MiB, 200 times the scale */
    size_t vectors = wl_scaled(wl_scale(argc, argv), 900, 3);
    for (size_t v = 0; v < vectors; v++) {
        size_t cap = 16, n = 0, target = (1u << 18) + (size_t)wl_below(&r, 1u << 19);
        uint64_t *a = (uint64_t *)wl_malloc(cap * sizeof *a);
        while (n < target) {
            if (n == cap) {
                cap *= 2;
                uint64_t *b = (uint64_t *)realloc(a, cap * sizeof *a);
                if (!b)
                    return 2;
                a = b;
            }
            a[n] = n * 3 + v;
            n++;
        }
        for (size_t k = 0; k < n; k += 4099)
            if (a[k] != k * 3 + v)
                return 3;
        check += n;
        free(a);
    }
    free(s);
    free(len);
    printf("realloc: %zu appends, %zu vectors, checksum %llu ok\n", appends, vectors, check);
    return 0;
}
