/* SPDX-License-Identifier: MIT */
/* Large-object tier: memory return. Purge moves bytes from dirty to clean
 * and resident memory drops (smaps_rollup); the unmap path gives address
 * space back (/proc/self/maps shrinks); dirty_max bounds the dirty pool;
 * decay on the slow path without the background thread. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ca_test.h"
#include "large_internal.h"

static uint64_t counter(ca_binned_large *l, const char *name)
{
    ca_stats st;
    uint64_t v = 0;
    ca_binned_large_stats(l, &st);
    ca_stats_get_counter(&st, name, &v);
    return v;
}

/* Total bytes of all mappings listed in /proc/self/maps. */
static uint64_t mapped_total(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    uint64_t total = 0;
    cr_assert_not_null(f);
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx", &lo, &hi) == 2)
            total += hi - lo;
    }
    fclose(f);
    return total;
}

static ca_binned_large *make(unsigned flags, size_t dirty_max)
{
    ca_binned_large_options o;
    memset(&o, 0, sizeof o);
    o.flags = flags | CA_BINNED_LARGE_NO_CACHE;
    o.dirty_decay_ms = 3600000;
    o.unmap_decay_ms = 3600000;
    o.dirty_max = dirty_max;
    ca_binned_large *l = NULL;
    cr_assert_eq(ca_binned_large_create(&l, &o), 0);
    return l;
}

#define N 16
#define SZ ((size_t)4 << 20)

Test(binned_large_memory, purge_moves_dirty_to_clean_and_rss_drops)
{
    ca_binned_large *l = make(0, (size_t)1 << 40);
    void *p[N];
    for (int i = 0; i < N; i++) {
        p[i] = ca_binned_large_alloc(l, SZ, 16, NULL);
        memset(p[i], 0x11, SZ);
    }
    long rss_full = ca_test_rss_kib();
    for (int i = 0; i < N; i++)
        ca_binned_large_free(l, p[i]);
    cr_assert_eq(counter(l, "dirty_bytes"), N * SZ);
    long rss_dirty = ca_test_rss_kib();
    cr_assert_gt(rss_dirty, rss_full - 8192, "dirty memory stays resident");
    size_t purged = ca_binned_large_purge(l, 0);
    cr_assert_eq(purged, N * SZ);
    cr_assert_eq(counter(l, "dirty_bytes"), 0);
    cr_assert_eq(counter(l, "clean_bytes"), N * SZ);
    cr_assert_eq(counter(l, "purged_bytes"), N * SZ);
    long rss_clean = ca_test_rss_kib();
    cr_assert_lt(rss_clean, rss_dirty - (long)(N * SZ / 1024) * 3 / 4, "RSS %ld -> %ld KiB after purging %zu MiB",
                 rss_dirty, rss_clean, N * SZ >> 20);
    ca_stats st;
    ca_binned_large_stats(l, &st);
    cr_assert_eq(st.bytes_committed, 0, "clean bytes are not committed");
    /* clean areas are reused, read as zero */
    char *q = (char *)ca_binned_large_alloc(l, SZ, 16, NULL);
    cr_assert_eq(q[SZ / 2], 0);
    ca_binned_large_free(l, q);
    cr_assert_null(ca_binned_large_check(l), "%s", ca_binned_large_check(l));
    ca_binned_large_destroy(l);
}

Test(binned_large_memory, unmap_returns_address_space)
{
    ca_binned_large *l = make(0, (size_t)1 << 40);
    uint64_t before = mapped_total();
    void *p[N];
    for (int i = 0; i < N; i++) {
        p[i] = ca_binned_large_alloc(l, SZ, 16, NULL);
        memset(p[i], 0x22, 4096);
    }
    uint64_t during = mapped_total();
    cr_assert_geq(during, before + N * SZ);
    for (int i = 0; i < N; i++)
        ca_binned_large_free(l, p[i]);
    cr_assert_eq(mapped_total(), during, "free keeps the regions");
    size_t unmapped = ca_binned_large_unmap_idle(l, 0);
    cr_assert_eq(unmapped, N * SZ);
    uint64_t after = mapped_total();
    cr_assert_leq(after, during - N * SZ, "maps %lu -> %lu", (unsigned long)during, (unsigned long)after);
    cr_assert_eq(counter(l, "regions"), 0);
    cr_assert_eq(counter(l, "unmapped_bytes"), N * SZ);
    cr_assert_null(ca_binned_large_check(l));
    /* regions with a live area stay */
    void *a = ca_binned_large_alloc(l, 65536, 16, NULL);
    void *b = ca_binned_large_alloc(l, 65536, 16, NULL);
    ca_binned_large_free(l, b);
    cr_assert_eq(ca_binned_large_unmap_idle(l, 0), 0);
    ca_binned_large_free(l, a);
    cr_assert_eq(ca_binned_large_unmap_idle(l, 0), CA_BINNED_LARGE_REGION_SIZE_DEFAULT);
    /* direct mappings are unmapped by free itself */
    uint64_t d0 = mapped_total();
    void *d = ca_binned_large_alloc(l, (size_t)2 << 30, 16, NULL);
    cr_assert_geq(mapped_total(), d0 + ((size_t)2 << 30));
    ca_binned_large_free(l, d);
    cr_assert_lt(mapped_total(), d0 + ((size_t)1 << 20), "only region-map nodes may stay");
    ca_binned_large_destroy(l);
}

Test(binned_large_memory, unmap_waits_for_the_interval)
{
    ca_binned_large *l = make(0, (size_t)1 << 40);
    void *p = ca_binned_large_alloc(l, SZ, 16, NULL);
    ca_binned_large_free(l, p);
    cr_assert_eq(ca_binned_large_unmap_idle(l, 3600000), 0, "not idle long enough");
    cr_assert_eq(ca_binned_large_purge(l, 3600000), 0, "not dirty long enough");
    cr_assert_eq(ca_binned_large_trim(l), SZ);
    ca_binned_large_destroy(l);
}

Test(binned_large_memory, dirty_max_bounds_the_pool)
{
    ca_binned_large *l = make(0, (size_t)8 << 20);
    void *p[N];
    for (int i = 0; i < N; i++)
        p[i] = ca_binned_large_alloc(l, SZ, 16, NULL);
    for (int i = 0; i < N; i++) {
        ca_binned_large_free(l, p[i]);
        cr_assert_leq(counter(l, "dirty_bytes"), (size_t)8 << 20);
    }
    cr_assert_eq(counter(l, "purged_bytes"), (N - 2) * SZ);
    cr_assert_null(ca_binned_large_check(l));
    ca_binned_large_destroy(l);
}

Test(binned_large_memory, decay_on_the_slow_path)
{
    ca_binned_large_options o;
    memset(&o, 0, sizeof o);
    o.flags = CA_BINNED_LARGE_NO_CACHE;
    o.dirty_decay_ms = 1;
    o.unmap_decay_ms = 2;
    ca_binned_large *l = NULL;
    cr_assert_eq(ca_binned_large_create(&l, &o), 0);
    void *p = ca_binned_large_alloc(l, SZ, 16, NULL);
    memset(p, 1, SZ);
    ca_binned_large_free(l, p);
    /* Without the thread, later frees do the decayed work. Wait for the
     * effect (no time bound is asserted; the loop ends when it happens). */
    for (int i = 0; i < 100000 && counter(l, "unmapped_bytes") < SZ; i++) {
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
        void *q = ca_binned_large_alloc(l, 65536, 16, NULL);
        ca_binned_large_free(l, q);
    }
    cr_assert_eq(counter(l, "purged_bytes") >= SZ, 1);
    cr_assert_geq(counter(l, "unmapped_bytes"), SZ);
    cr_assert_not(ca_binned_large_background_running(l));
    ca_binned_large_destroy(l);
}

Test(binned_large_memory, purge_free_mode)
{
    ca_binned_large *l = make(CA_BINNED_LARGE_PURGE_FREE, (size_t)1 << 40);
    char *p = (char *)ca_binned_large_alloc(l, SZ, 16, NULL);
    memset(p, 3, SZ);
    ca_binned_large_free(l, p);
    cr_assert_eq(ca_binned_large_purge(l, 0), SZ);
    /* MADV_FREE: contents undefined, so a zeroed request writes zeros */
    char *q = (char *)ca_binned_large_alloc_flags(l, SZ, 16, CA_BINNED_LARGE_ZERO, NULL);
    cr_assert_eq(q, p);
    for (size_t i = 0; i < SZ; i += 4096)
        cr_assert_eq(q[i], 0);
    ca_binned_large_free(l, q);
    ca_binned_large_destroy(l);
}

/* A full disk under a file-backed tier: the allocation fails with ENOMEM at
 * once (the file's blocks are allocated before use), never a SIGBUS later.
 * The full disk is a libsource fault plan failing fallocate with ENOSPC. */
#include <ctxalloc/source.h>

Test(binned_large_memory, file_enospc)
{
    ca_source_fault f;
    ca_source_fault_init(&f, 0, 0, 0, ENOSPC); /* armed below */
    ca_source_file fs;
    ca_source_file_options fo;
    memset(&fo, 0, sizeof fo);
    fo.dir = "/tmp";
    fo.capacity = (size_t)1 << 30;
    fo.fault = &f;
    cr_assert_eq(ca_source_file_init(&fs, &fo), 0, "%s", ca_last_error());
    ca_binned_large_options o;
    memset(&o, 0, sizeof o);
    o.source = &fs.base;
    o.flags = CA_BINNED_LARGE_NO_CACHE;
    o.dirty_decay_ms = o.unmap_decay_ms = 3600000;
    ca_binned_large *l = NULL;
    cr_assert_eq(ca_binned_large_create(&l, &o), 0);
    /* the first region gets its blocks */
    char *p = (char *)ca_binned_large_alloc(l, 1 << 20, 16, NULL);
    cr_assert_not_null(p);
    memset(p, 1, 1 << 20);
    ca_binned_large_free(l, p);
    cr_assert_eq(ca_binned_large_purge(l, 0), 1 << 20); /* hole punched */
    ca_source_fault_init(&f, CA_SOURCE_FAULT_FALLOCATE, 1, 0, ENOSPC); /* the disk is full */
    /* reusing the purged area needs blocks again: ENOSPC -> ENOMEM */
    errno = 0;
    cr_assert_null(ca_binned_large_alloc(l, 1 << 20, 16, NULL));
    cr_assert_eq(errno, ENOMEM);
    /* a new region cannot get blocks either */
    errno = 0;
    cr_assert_null(ca_binned_large_alloc(l, 8 << 20, 16, NULL));
    cr_assert_eq(errno, ENOMEM);
    cr_assert_null(ca_binned_large_check(l), "%s", ca_binned_large_check(l));
    ca_stats st;
    ca_binned_large_stats(l, &st);
    cr_assert_geq(st.failures, 2);
    /* space again: the same area is usable */
    f.points = 0;
    p = (char *)ca_binned_large_alloc(l, 1 << 20, 16, NULL);
    cr_assert_not_null(p);
    memset(p, 2, 1 << 20);
    ca_binned_large_free(l, p);
    ca_binned_large_destroy(l);
    ca_source_file_destroy(&fs);
}
