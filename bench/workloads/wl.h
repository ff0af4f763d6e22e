/* SPDX-License-Identifier: MIT */
/*
 * Shared helpers of the workload programs: scale argument, seeded PRNG, and
 * object cookies. Every workload writes a cookie into each object it
 * allocates and verifies it before freeing, so an allocator that hands out
 * overlapping memory makes the program fail (exit 3) instead of just running
 * fast. Output is deterministic for a given scale so that the runner can
 * compare it across allocators.
 */
#ifndef WL_H
#define WL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* argv[1]: scale factor (default 1.0; the smoke test uses ~0.01). */
static inline double wl_scale(int argc, char **argv)
{
    double s = argc > 1 ? atof(argv[1]) : 1.0;
    return s > 0 ? s : 1.0;
}

static inline size_t wl_scaled(double scale, size_t n, size_t min)
{
    double v = (double)n * scale;
    return v < (double)min ? min : (size_t)v;
}

typedef struct wl_rng {
    uint64_t s;
} wl_rng;

static inline uint64_t wl_next(wl_rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline uint64_t wl_below(wl_rng *r, uint64_t n) { return wl_next(r) % n; }

/* Power-law size in [lo, hi]: uniform exponent, then uniform inside it. */
static inline size_t wl_powerlaw(wl_rng *r, size_t lo, size_t hi)
{
    unsigned lb = 63 - (unsigned)__builtin_clzll(lo), hb = 63 - (unsigned)__builtin_clzll(hi);
    unsigned b = lb + (unsigned)wl_below(r, hb - lb + 1);
    size_t base = (size_t)1 << b, s = base + (size_t)wl_below(r, base);
    return s < lo ? lo : s > hi ? hi : s;
}

/* Cookie: the first and last 8 bytes (the first up to 8 of a small object) hold a value
 * derived from the object's tag and size. */
static inline uint64_t wl_cookie(uint64_t tag, size_t size) { return (tag * 0x9e3779b97f4a7c15ull) ^ size; }

static inline void wl_mark(void *p, size_t size, uint64_t tag)
{
    uint64_t c = wl_cookie(tag, size);
    if (size >= 16) {
        memcpy(p, &c, 8);
        memcpy((char *)p + size - 8, &c, 8);
    } else {
        memcpy(p, &c, size < 8 ? size : 8);
    }
}

static inline void wl_check(const void *p, size_t size, uint64_t tag)
{
    uint64_t c = wl_cookie(tag, size), a = 0, b = 0;
    int ok;
    if (size >= 16) {
        memcpy(&a, p, 8);
        memcpy(&b, (const char *)p + size - 8, 8);
        ok = a == c && b == c;
    } else {
        ok = memcmp(p, &c, size < 8 ? size : 8) == 0;
    }
    if (!ok) {
        fprintf(stderr, "workload: object %p (size %zu, tag %llu) corrupted\n", p, size, (unsigned long long)tag);
        exit(3);
    }
}

static inline void *wl_malloc(size_t n)
{
    void *p = malloc(n);
    if (!p && n) {
        fprintf(stderr, "workload: malloc(%zu) failed\n", n);
        exit(2);
    }
    return p;
}

/* Current resident set in KiB (from /proc/self/statm). */
static inline long wl_rss_kib(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long size = 0, res = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &size, &res) != 2)
            res = 0;
        fclose(f);
    }
    return res * 4;
}

#endif
