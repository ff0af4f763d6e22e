/* SPDX-License-Identifier: MIT */
/*
 * The anonymous mmap source feature by feature: memory really returns after
 * decommit (RSS), reserve / commit, alignment by trimming, populate, lock
 * (and a reported lock failure), no-dump, names, MADV_FREE, statistics.
 */
#include <ctxalloc/source.h>

#include <criterion/criterion.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "ca_test.h"
#include "source_test.h"

static size_t page;
static void setup(void) { page = ca_page_size(); }
TestSuite(source_mmap, .init = setup);

#define MIB ((size_t)1 << 20)

/* Pages of address space of the process (VmSize). */
static long vm_pages(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long v = -1;
    if (f) {
        if (fscanf(f, "%ld", &v) != 1)
            v = -1;
        fclose(f);
    }
    return v;
}

static ca_source_mmap mk(unsigned flags, unsigned huge, unsigned decommit, const char *name)
{
    ca_source_mmap m;
    ca_source_mmap_options o;
    memset(&o, 0, sizeof o);
    o.flags = flags;
    o.huge = huge;
    o.decommit = decommit;
    o.name = name;
    cr_assert_eq(ca_source_mmap_init(&m, &o), 0);
    return m;
}

Test(source_mmap, decommit_returns_memory)
{
    ca_source_mmap m = mk(0, CA_SOURCE_HUGE_OFF, CA_SOURCE_DECOMMIT_DONTNEED, NULL);
    void *p;
    size_t n = 32 * MIB;
    cr_assert_eq(ca_source_obtain(&m.base, n, page, &p), 0);
    memset(p, 1, n);
    long rss_full = smaps_kib(p, "Rss:");
    cr_assert_geq(rss_full, (long)(n >> 10) - 64);
    long before = ca_test_rss_kib();
    cr_assert_eq(ca_source_decommit(&m.base, p, n), 0);
    long after = ca_test_rss_kib();
    cr_assert_lt(after, before - (long)(n >> 10) / 2, "RSS %ld -> %ld KiB", before, after);
    cr_assert_eq(smaps_kib(p, "Rss:"), 0);
    ca_stats st;
    ca_source_stats(&m.base, &st);
    cr_assert_eq(st.bytes_committed, 0);
    cr_assert_eq(st.bytes_in_use, n);
    cr_assert_eq(ca_source_commit(&m.base, p, n), 0);
    cr_assert_eq(((char *)p)[n - 1], 0, "reads zero after DONTNEED");
    cr_assert_null(ca_source_check(&m.base));
    cr_assert_eq(ca_source_release(&m.base, p, n), 0);
    ca_source_mmap_destroy(&m);
}

Test(source_mmap, madv_free_mode)
{
    ca_source_mmap m = mk(0, CA_SOURCE_HUGE_OFF, CA_SOURCE_DECOMMIT_FREE, NULL);
    void *p;
    cr_assert_eq(ca_source_obtain(&m.base, 4 * MIB, page, &p), 0);
    memset(p, 7, 4 * MIB);
    cr_assert_eq(ca_source_decommit(&m.base, p, 4 * MIB), 0);
    cr_assert_eq(ca_source_commit(&m.base, p, 4 * MIB), 0);
    memset(p, 8, 4 * MIB);
    cr_assert_eq(ca_source_release(&m.base, p, 4 * MIB), 0);
    ca_source_mmap_destroy(&m);
}

Test(source_mmap, reserve_commit_decommit)
{
    ca_source_mmap m = mk(0, CA_SOURCE_HUGE_OFF, 0, NULL);
    void *p;
    cr_assert_eq(ca_source_reserve(&m.base, 16 * MIB, page, &p), 0);
    cr_assert(smaps_has_flag(p, "mr"));
    cr_assert_not(smaps_has_flag(p, "rd"), "PROT_NONE until committed");
    char *mid = (char *)p + 4 * MIB;
    cr_assert_eq(ca_source_commit(&m.base, mid, MIB), 0);
    memset(mid, 3, MIB);
    ca_stats st;
    ca_source_stats(&m.base, &st);
    cr_assert_eq(st.bytes_reserved, 16 * MIB);
    cr_assert_eq(st.bytes_committed, MIB);
    cr_assert_eq(st.bytes_in_use, 0, "reserved bytes are not in use");
    cr_assert_eq(ca_source_decommit(&m.base, mid, MIB), 0);
    ca_source_stats(&m.base, &st);
    cr_assert_eq(st.bytes_committed, 0);
    cr_assert_null(ca_source_check(&m.base));
    cr_assert_eq(ca_source_release(&m.base, p, 16 * MIB), 0);
    ca_source_stats(&m.base, &st);
    cr_assert_eq(st.bytes_reserved, 0);
    ca_source_mmap_destroy(&m);
}

Test(source_mmap, alignment_by_trimming)
{
    long maps = ca_test_count_maps();
    ca_source_mmap m = mk(0, CA_SOURCE_HUGE_OFF, 0, NULL);
    void *w; /* warm-up: the record of ranges takes its page on first use */
    cr_assert_eq(ca_source_obtain(&m.base, page, page, &w), 0);
    cr_assert_eq(ca_source_release(&m.base, w, page), 0);
    for (size_t align = page; align <= 64 * MIB; align *= 4) {
        void *p;
        long vm = vm_pages();
        cr_assert_eq(ca_source_obtain(&m.base, 3 * page, align, &p), 0);
        /* over-mapped by align - page, trimmed back to exactly the size */
        cr_assert_eq(vm_pages() - vm, 3, "align %zu: %ld pages added", align, vm_pages() - vm);
        cr_assert(ca_is_aligned((uintptr_t)p, align), "align %zu", align);
        cr_assert_eq(ca_source_release(&m.base, p, 3 * page), 0);
    }
    ca_source_mmap_destroy(&m);
    cr_assert_eq(ca_test_count_maps(), maps, "no mapping left behind");
}

Test(source_mmap, populate)
{
    ca_source_mmap m = mk(CA_SOURCE_MMAP_POPULATE, 0, 0, NULL);
    void *p;
    cr_assert_eq(ca_source_obtain(&m.base, 4 * MIB, page, &p), 0);
    cr_assert_geq(smaps_kib(p, "Rss:"), 4096, "resident before any touch");
    cr_assert_eq(ca_source_release(&m.base, p, 4 * MIB), 0);
    ca_source_mmap_destroy(&m);
}

Test(source_mmap, lock_and_failure_reported)
{
    ca_source_mmap m = mk(CA_SOURCE_MMAP_LOCK, 0, 0, NULL);
    void *p;
    cr_assert_eq(ca_source_obtain(&m.base, 64 * 1024, page, &p), 0);
    cr_assert(UNDER_ASAN || smaps_has_flag(p, "lo"));
    cr_assert_eq(ca_source_decommit(&m.base, p, 64 * 1024), 0, "decommit of locked pages");
    cr_assert_eq(ca_source_commit(&m.base, p, 64 * 1024), 0);
    cr_assert(UNDER_ASAN || smaps_has_flag(p, "lo"));
    cr_assert_eq(ca_source_release(&m.base, p, 64 * 1024), 0);

    /* Locking more than RLIMIT_MEMLOCK fails; root ignores the limit, so
     * the failure is injected at the mlock step there. */
    struct rlimit rl = {64 * 1024, 64 * 1024};
    cr_assert_eq(setrlimit(RLIMIT_MEMLOCK, &rl), 0);
    ca_source_fault f;
    ca_source_fault_init(&f, CA_SOURCE_FAULT_MLOCK, geteuid() == 0 ? 1 : 0, 0, ENOMEM);
    m.fault = &f;
    long maps = ca_test_count_maps();
    int rc = ca_source_obtain(&m.base, 16 * MIB, page, &p);
    cr_assert(rc == ENOMEM || rc == EAGAIN || rc == EPERM, "rc %d", rc);
    cr_assert_eq(ca_test_count_maps(), maps, "failed obtain leaves no mapping");
    ca_source_mmap_destroy(&m);

    /* LOCK_TRY: the same failure is counted, the memory is handed out. */
    ca_source_mmap t = mk(CA_SOURCE_MMAP_LOCK_TRY, 0, 0, NULL);
    t.fault = &f;
    cr_assert_eq(ca_source_obtain(&t.base, 16 * MIB, page, &p), 0);
    ca_stats st;
    ca_source_stats(&t.base, &st);
    uint64_t lf = 0;
    cr_assert(ca_stats_get_counter(&st, "lock_failures", &lf));
    cr_assert_eq(lf, 1);
    cr_assert_eq(ca_source_release(&t.base, p, 16 * MIB), 0);
    ca_source_mmap_destroy(&t);
}

Test(source_mmap, nodump_noreserve_and_name)
{
    ca_source_mmap m = mk(CA_SOURCE_MMAP_NODUMP | CA_SOURCE_MMAP_NORESERVE, 0, 0, "ctxalloc-test");
    void *p;
    cr_assert_eq(ca_source_obtain(&m.base, 8 * page, page, &p), 0);
    cr_assert(smaps_has_flag(p, "dd"), "MADV_DONTDUMP");
    cr_assert(smaps_has_flag(p, "nr"), "MAP_NORESERVE");
    cr_assert_eq(ca_source_release(&m.base, p, 8 * page), 0);
    ca_source_mmap_destroy(&m);

    ca_source_mmap bad;
    ca_source_mmap_options o;
    memset(&o, 0, sizeof o);
    o.name = "has[bracket";
    cr_assert_eq(ca_source_mmap_init(&bad, &o), EINVAL);
    char longname[CA_SOURCE_NAME_MAX + 1];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = 0;
    o.name = longname;
    cr_assert_eq(ca_source_mmap_init(&bad, &o), EINVAL);
    o.name = NULL;
    o.flags = CA_SOURCE_MMAP_LOCK | CA_SOURCE_MMAP_LOCK_TRY;
    cr_assert_eq(ca_source_mmap_init(&bad, &o), EINVAL);
    o.flags = 0x8000;
    cr_assert_eq(ca_source_mmap_init(&bad, &o), EINVAL);
    o.flags = 0;
    o.huge = 9;
    cr_assert_eq(ca_source_mmap_init(&bad, &o), EINVAL);
}

Test(source_mmap, name_visible_in_maps)
{
    ca_source_mmap m = mk(0, 0, 0, "ctxalloc-named");
    void *p;
    cr_assert_eq(ca_source_obtain(&m.base, 4 * page, page, &p), 0);
    char hdr[512], v[64];
    cr_assert(smaps_field(p, "Size:", v, sizeof v, hdr, sizeof hdr));
    /* Probe: does this kernel name anonymous mappings (CONFIG_ANON_VMA_NAME)? */
    void *probe = mmap(NULL, page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(probe, MAP_FAILED);
    bool supported = prctl(0x53564d41 /* PR_SET_VMA */, 0 /* ANON_NAME */, (unsigned long)probe, page,
                           (unsigned long)"probe") == 0;
    munmap(probe, page);
    if (supported)
        cr_assert(strstr(hdr, "[anon:ctxalloc-named]"), "header: %s", hdr);
    else
        cr_log_info("kernel without CONFIG_ANON_VMA_NAME: the name is ignored quietly");
    cr_assert_eq(ca_source_release(&m.base, p, 4 * page), 0);
    ca_source_mmap_destroy(&m);
}

Test(source_mmap, bad_ranges_fail_cleanly)
{
    ca_source_mmap m = mk(0, 0, 0, NULL);
    void *p;
    cr_assert_eq(ca_source_obtain(&m.base, 4 * page, page, &p), 0);
    cr_assert_eq(ca_source_release(&m.base, p, 3 * page + 1), EINVAL);
    cr_assert_eq(ca_source_commit(&m.base, (char *)p + 1, page), EINVAL);
    cr_assert_eq(ca_source_release(&m.base, NULL, page), EINVAL);
    cr_assert_eq(ca_source_release(&m.base, p, 0), EINVAL);
    cr_assert_eq(ca_source_release(&m.base, p, 4 * page), 0);
    ca_source_mmap_destroy(&m);
}
