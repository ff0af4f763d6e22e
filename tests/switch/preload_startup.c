/* SPDX-License-Identifier: MIT */
/*
 * Start-up footprint, run by preload_programs.sh with and without the preload
 * object: a program that allocates a few KB (64 blocks of 16 to 520 B, as
 * bench/workloads/startup.c) and reports, on one line,
 *   rss_kib=N image_kib=N libnuma=0|1 threads=N atfork=N
 * rss_kib: its resident set (/proc/self/statm) after the allocations;
 * image_kib: the resident pages of the preload object's own file mappings
 * (its code and data: their size depends on the build, -O0 or -O3, so the
 * script subtracts them and bounds the rest); libnuma: whether a libnuma
 * is mapped; threads: the threads of the process (a background thread must
 * not start in a program with nothing to give back); atfork: the fork
 * handlers registered with libc (pthread_atfork ends in __register_atfork,
 * which this program defines over libc's, exported to the preload object:
 * a program of one thread needs none, and libc's registration code and data
 * cost it RSS).
 * Nothing here calls malloc before the measurement besides the 64 blocks.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char buf[1 << 20];

static int atfork_calls;
int __register_atfork(void (*prepare)(void), void (*parent)(void), void (*child)(void), void *dso);
int __register_atfork(void (*prepare)(void), void (*parent)(void), void (*child)(void), void *dso)
{
    atfork_calls++;
    int (*real)(void (*)(void), void (*)(void), void (*)(void), void *) =
        (int (*)(void (*)(void), void (*)(void), void (*)(void), void *))dlsym(RTLD_NEXT, "__register_atfork");
    return real ? real(prepare, parent, child, dso) : 0;
}

/* The whole of a /proc file into buf (NUL-terminated); its length. */
static size_t slurp(const char *path)
{
    size_t n = 0;
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return 0;
    for (ssize_t r; n < sizeof buf - 1 && (r = read(fd, buf + n, sizeof buf - 1 - n)) > 0;)
        n += (size_t)r;
    close(fd);
    buf[n] = 0;
    return n;
}

int main(void)
{
    void *p[64];
    for (int i = 0; i < 64; i++) {
        size_t sz = 16 + (size_t)i * 8;
        p[i] = malloc(sz);
        if (!p[i])
            return 1;
        memset(p[i], i, sz);
    }
    long vsz = 0, res = 0;
    slurp("/proc/self/statm");
    if (sscanf(buf, "%ld %ld", &vsz, &res) != 2)
        return 1;

    /* Rss of the mappings of the preload object's file. */
    long image = 0;
    int in_image = 0;
    slurp("/proc/self/smaps");
    for (char *l = buf, *e; *l; l = e + 1) {
        e = strchr(l, '\n');
        if (!e)
            break;
        *e = 0;
        unsigned long lo, hi;
        long kib;
        if (sscanf(l, "%lx-%lx ", &lo, &hi) == 2)
            in_image = strstr(l, "libctxalloc") != NULL;
        else if (in_image && sscanf(l, "Rss: %ld kB", &kib) == 1)
            image += kib;
    }

    slurp("/proc/self/maps");
    int numa = strstr(buf, "libnuma") != NULL;
    long threads = 0;
    slurp("/proc/self/status");
    char *t = strstr(buf, "\nThreads:");
    if (t)
        threads = strtol(t + 9, NULL, 10);

    for (int i = 0; i < 64; i++)
        free(p[i]);
    printf("rss_kib=%ld image_kib=%ld libnuma=%d threads=%ld atfork=%d\n", res * (sysconf(_SC_PAGESIZE) / 1024),
           image, numa, threads, atfork_calls);
    return 0;
}
