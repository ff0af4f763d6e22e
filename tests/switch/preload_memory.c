/* SPDX-License-Identifier: MIT */
/*
 * Memory the allocator should not keep, run by preload_programs.sh with the
 * preload object. Usage: preload_memory calloc | shrink | idle | growshrink [rounds] | introspect
 *   calloc: calloc of fresh memory is not written again (the resident growth
 *           of calloc(512 MiB) is below 16 MiB) and a block freed dirty and
 *           calloc'ed again reads as zero, for small and large sizes.
 *   shrink: 2,000 blocks of 300 KB realloc'ed down to 1,000 B move to the
 *           size classes: resident memory after a trim (malloc_trim) is
 *           within 32 MiB of where it started (glibc: 9 MiB).
 *   idle:   2 million small blocks and 400 large ones are freed, then the
 *           program sleeps 2 s without calling the allocator: resident
 *           memory must come back within a quarter of the burst (the
 *           background thread runs both tiers' decay; glibc keeps ~70%).
 *   growshrink: a recursion's depth rising and falling (2,000 to 20,000
 *           frames of 32 B to 128 KiB, freed in reverse), 300 rounds. The
 *           script runs it under strace, with and without the preload: the
 *           memory-management system calls must not outnumber glibc's (memory
 *           a class frees and needs again soon is not given back).
 *   introspect: glibc's introspection calls report the allocator in use:
 *           mallinfo2 / mallinfo see 10 MB of small blocks come and go,
 *           malloc_info writes an XML document (and refuses options != 0
 *           with EINVAL), malloc_stats writes its report to stderr, mallopt
 *           returns 0 (nothing applies), free_sized and free_aligned_sized
 *           free. Under the preload without these exports glibc answers
 *           for its own empty arena and fails the first check.
 * Prints what it measured; exits 0 when the bound holds.
 */
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

static int shrink(void)
{
    static char *b[2000];
    long start = rss_kib();
    for (int i = 0; i < 2000; i++) {
        b[i] = malloc(300000);
        if (!b[i])
            return 1;
        memset(b[i], i, 300000);
    }
    long peak = rss_kib();
    for (int i = 0; i < 2000; i++) {
        b[i] = realloc(b[i], 1000);
        if (!b[i] || b[i][999] != (char)i)
            return 1;
    }
    malloc_trim(0);
    long after = rss_kib();
    printf("shrink: resident %ld KiB at start, %ld at peak, %ld after the shrink and a trim\n", start, peak, after);
    for (int i = 0; i < 2000; i++)
        free(b[i]);
    return after - start > 32 * 1024;
}

static int idle(void)
{
    enum { N = 2000000, L = 400 };
    static void *o[N], *big[L];
    long start = rss_kib();
    for (int i = 0; i < N; i++) {
        if (!(o[i] = malloc(16 + (size_t)(i % 241))))
            return 1;
        memset(o[i], 1, 16);
    }
    for (int i = 0; i < L; i++) {
        if (!(big[i] = malloc(300000 + (size_t)i * 1000)))
            return 1;
        memset(big[i], 1, 300000);
    }
    long peak = rss_kib();
    for (int i = 0; i < N; i++)
        free(o[i]);
    for (int i = 0; i < L; i++)
        free(big[i]);
    long freed = rss_kib();
    sleep(2);
    long after = rss_kib();
    printf("idle: resident %ld KiB at start, %ld at peak, %ld after the frees, %ld after 2 s idle\n", start, peak,
           freed, after);
    return after - start > (peak - start) / 4;
}

static int calloc_known_zero(void)
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

static int growshrink(int rounds)
{
    static void *stk[20000];
    unsigned long r = 7, sum = 0;
    for (int k = 0; k < rounds; k++) {
        r = r * 6364136223846793005ul + 1442695040888963407ul;
        int depth = 2000 + (int)((r >> 33) % 18000);
        for (int i = 0; i < depth; i++) {
            size_t s = i % 7 == 0 ? 65536 + (size_t)(i % 5) * 16384 : 32 + (size_t)(i % 13) * 48;
            if (!(stk[i] = malloc(s)))
                return 1;
            memset(stk[i], 1, s < 64 ? s : 64);
        }
        for (int i = depth - 1; i >= 0; i--) {
            sum += ((unsigned char *)stk[i])[0];
            free(stk[i]);
        }
    }
    printf("growshrink: %d rounds, %lu frames\n", rounds, sum);
    return 0;
}

/* 48 MiB of 48-byte blocks, then all freed: the size class goes over its
 * keep budget block after block. The script counts the main thread's
 * madvise(MADV_DONTNEED) calls: with the background thread they are its
 * work, not the allocating thread's. */
static int freeall(void)
{
    enum { N = 1 << 20 };
    static void *v[N]; /* not from malloc: the large tier stays out */
    for (int i = 0; i < N; i++) {
        if (!(v[i] = malloc(48)))
            return 1;
        memset(v[i], (int)i, 48);
    }
    for (int i = 0; i < N; i++)
        free(v[i]);
    printf("freeall: %d blocks freed\n", N);
    return 0;
}

/* C23's free_sized and free_aligned_sized: the preload exports them; this
 * glibc does not, so they are looked up at run time. */
typedef void (*free_sized_fn)(void *, size_t);
typedef void (*free_aligned_sized_fn)(void *, size_t, size_t);

#define EXPECT(cond, ...)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            printf("introspect: " __VA_ARGS__);                                                    \
            printf("\n");                                                                          \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

static int introspect(void)
{
    enum { N = 10000, SZ = 1000 };
    static void *v[N];
    struct mallinfo2 m0 = mallinfo2();
    for (int i = 0; i < N; i++) {
        if (!(v[i] = malloc(SZ)))
            return 1;
        memset(v[i], 1, SZ);
    }
    struct mallinfo2 m1 = mallinfo2();
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    struct mallinfo mi = mallinfo();
#pragma GCC diagnostic pop
    EXPECT(m1.uordblks >= m0.uordblks + (size_t)N * SZ, "mallinfo2 in use %zu -> %zu after 10 MB", m0.uordblks,
           m1.uordblks);
    EXPECT(m1.arena >= m1.uordblks, "committed %zu below in use %zu", m1.arena, m1.uordblks);
    EXPECT((size_t)mi.uordblks + 4096 * 64 >= m1.uordblks && (size_t)mi.uordblks <= m1.uordblks + 4096 * 64,
           "mallinfo %d against mallinfo2 %zu", mi.uordblks, m1.uordblks);
    for (int i = 0; i < N; i++)
        free(v[i]);
    struct mallinfo2 m2 = mallinfo2();
    EXPECT(m2.uordblks + (size_t)N * SZ / 2 <= m1.uordblks, "in use %zu -> %zu after freeing 10 MB", m1.uordblks,
           m2.uordblks);
    EXPECT(m2.usmblks >= m1.uordblks, "peak %zu below the 10 MB seen", m2.usmblks);

    char *xml = NULL;
    size_t xlen = 0;
    FILE *f = open_memstream(&xml, &xlen);
    EXPECT(f && malloc_info(0, f) == 0, "malloc_info(0) failed");
    fclose(f);
    EXPECT(xml && strstr(xml, "<malloc version=") && strstr(xml, "</malloc>") && strstr(xml, "<system type=\"current\""),
           "malloc_info wrote: %s", xml ? xml : "(nothing)");
    free(xml);
    errno = 0;
    EXPECT(malloc_info(1, stdout) == -1 && errno == EINVAL, "malloc_info(1) accepted");
    EXPECT(mallopt(M_TRIM_THRESHOLD, 1 << 20) == 0 && mallopt(M_ARENA_MAX, 1) == 0,
           "mallopt reports a parameter as applied");

    int err = dup(2), pfd[2];
    EXPECT(err >= 0 && pipe(pfd) == 0, "pipe");
    dup2(pfd[1], 2);
    malloc_stats();
    dup2(err, 2);
    close(pfd[1]);
    char rep[1024] = {0};
    ssize_t got = read(pfd[0], rep, sizeof rep - 1);
    close(pfd[0]);
    EXPECT(got > 0 && strstr(rep, "system bytes") && strstr(rep, "in use bytes"), "malloc_stats wrote: %s", rep);

    free_sized_fn fs = (free_sized_fn)dlsym(RTLD_DEFAULT, "free_sized");
    free_aligned_sized_fn fas = (free_aligned_sized_fn)dlsym(RTLD_DEFAULT, "free_aligned_sized");
    EXPECT(fs && fas, "free_sized / free_aligned_sized not exported");
    struct mallinfo2 f0 = mallinfo2();
    for (int i = 0; i < 1000; i++) {
        void *p = malloc(SZ), *q = aligned_alloc(64, SZ);
        if (!p || !q)
            return 1;
        fs(p, SZ);
        fas(q, 64, SZ);
    }
    struct mallinfo2 f1 = mallinfo2();
    EXPECT(f1.uordblks <= f0.uordblks + 64 * SZ, "free_sized kept %zu bytes in use", f1.uordblks - f0.uordblks);
    printf("introspect: in use %zu -> %zu -> %zu, peak %zu, committed %zu\n", m0.uordblks, m1.uordblks, m2.uordblks,
           m2.usmblks, m2.arena);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "introspect") == 0)
        return introspect();
    if (argc == 2 && strcmp(argv[1], "freeall") == 0)
        return freeall();
    if (argc >= 2 && strcmp(argv[1], "growshrink") == 0)
        return growshrink(argc > 2 ? atoi(argv[2]) : 300);
    if (argc == 2 && strcmp(argv[1], "calloc") == 0)
        return calloc_known_zero();
    if (argc == 2 && strcmp(argv[1], "shrink") == 0)
        return shrink();
    if (argc == 2 && strcmp(argv[1], "idle") == 0)
        return idle();
    fprintf(stderr, "usage: preload_memory calloc | shrink | idle | growshrink [rounds] | introspect\n");
    return 2;
}
