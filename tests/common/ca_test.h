/* SPDX-License-Identifier: MIT */
/*
 * Shared helpers for ctxalloc's tests (not installed): a seeded PRNG, the
 * environment knobs every stress test reads, and probes of the process's
 * resources (open fds, mappings, resident memory) for leak checks.
 *
 * Environment:
 *   CA_TEST_SEED     PRNG seed (default 0x5eed); printed by failing tests
 *   CA_TEST_THREADS  threads in stress tests (default given by the test)
 *   CA_TEST_SCALE    multiplier of operation counts (default 1; long runs 10+)
 *
 * Also: ca_test_counters_differ, the check that a statistics call reports
 * the counters of a component's list (CA_<COMPONENT>_COUNTERS).
 */
#ifndef CA_TEST_H
#define CA_TEST_H

#include <ctxalloc/core.h>
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* 1 when built with AddressSanitizer (gcc defines __SANITIZE_ADDRESS__,
 * clang answers __has_feature). */
#if defined(__SANITIZE_ADDRESS__)
#define CA_TEST_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CA_TEST_UNDER_ASAN 1
#endif
#endif
#ifndef CA_TEST_UNDER_ASAN
#define CA_TEST_UNDER_ASAN 0
#endif

/* True under valgrind (it preloads its vgpreload_* objects into the client). */
static inline int ca_test_under_valgrind(void)
{
    const char *p = getenv("LD_PRELOAD");
    return p && strstr(p, "vgpreload") != NULL;
}

static inline uint64_t ca_test_env_u64(const char *name, uint64_t dflt)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return dflt;
    return strtoull(v, NULL, 0);
}

static inline uint64_t ca_test_seed(void) { return ca_test_env_u64("CA_TEST_SEED", 0x5eed); }
static inline unsigned ca_test_threads(unsigned dflt) { return (unsigned)ca_test_env_u64("CA_TEST_THREADS", dflt); }
static inline uint64_t ca_test_scale(void)
{
    uint64_t s = ca_test_env_u64("CA_TEST_SCALE", 1);
    return s ? s : 1;
}

/* splitmix64: small, seedable, good enough for test workloads. */
typedef struct ca_rng {
    uint64_t s;
} ca_rng;

static inline uint64_t ca_rng_next(ca_rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [0, n) (n > 0; the tiny modulo bias is irrelevant here). */
static inline uint64_t ca_rng_below(ca_rng *r, uint64_t n) { return ca_rng_next(r) % n; }

/* Number of entries in a /proc directory (fds) or lines in a /proc file. */
static inline long ca_test_count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    long n = 0;
    if (!d)
        return -1;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

static inline long ca_test_count_maps(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    long n = 0;
    int c;
    if (!f)
        return -1;
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

/* True when any page of [p, p + len) is mapped: mincore fails with ENOMEM
 * only for unmapped ranges. Unlike a count of /proc/self/maps lines it does
 * not depend on how the kernel (or valgrind) merges neighbouring mappings. */
static inline int ca_test_is_mapped(const void *p, size_t len)
{
    long page = sysconf(_SC_PAGESIZE);
    uintptr_t a = (uintptr_t)p & ~(uintptr_t)(page - 1);
    uintptr_t end = (uintptr_t)p + len;
    unsigned char v;
    for (; a < end; a += (uintptr_t)page)
        if (mincore((void *)a, (size_t)page, &v) == 0 || errno != ENOMEM)
            return 1;
    return 0;
}

/* Resident set (Rss) in KiB from /proc/self/smaps_rollup; -1 if unreadable. */
static inline long ca_test_rss_kib(void)
{
    FILE *f = fopen("/proc/self/smaps_rollup", "r");
    char line[256];
    long kib = -1;
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "Rss: %ld kB", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

/* Fill / verify a block with a pattern derived from a tag (detects overlap). */
static inline void ca_test_fill(void *p, size_t n, uint64_t tag)
{
    unsigned char *b = (unsigned char *)p;
    for (size_t i = 0; i < n; i++)
        b[i] = (unsigned char)(tag * 131 + i * 7);
}

static inline int ca_test_verify(const void *p, size_t n, uint64_t tag)
{
    const unsigned char *b = (const unsigned char *)p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != (unsigned char)(tag * 131 + i * 7))
            return 0;
    return 1;
}

/* NULL when st holds exactly the counters named in list[0..n) (in any
 * order; the values are not looked at) and dropped none; else the first
 * listed name it lacks, or why it differs otherwise. Use with a component's
 * list: static const char *const names[] = CA_STATS_NAMES(CA_X_COUNTERS). */
static inline const char *ca_test_counters_differ(const ca_stats *st, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t v;
        if (!ca_stats_get_counter(st, list[i], &v))
            return list[i];
    }
    if (st->ncounters != n)
        return "(counters that the list does not name)";
    if (st->counters_dropped)
        return "(counters dropped)";
    return NULL;
}

#endif
