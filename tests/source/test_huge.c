/* SPDX-License-Identifier: MIT */
/*
 * The huge-page ladder. On a machine without reserved hugetlb pages every
 * hugetlb rung is refused and the source must fall back and say so: THP
 * (2 MiB-aligned mapping with MADV_HUGEPAGE) for sizes >= 2 MiB when the
 * kernel offers THP, else base pages. Where pages are reserved, the rung
 * must be taken. Forced fallbacks use fault injection at the mmap step.
 */
#include <ctxalloc/source.h>

#include <criterion/criterion.h>
#include <sys/mman.h>

#include "ca_test.h"
#include "source_test.h"

#define MIB ((size_t)1 << 20)
#define GIB ((size_t)1 << 30)

static ca_source_mmap mk(unsigned huge, ca_source_fault *f)
{
    ca_source_mmap m;
    ca_source_mmap_options o;
    memset(&o, 0, sizeof o);
    o.huge = huge;
    o.fault = f;
    cr_assert_eq(ca_source_mmap_init(&m, &o), 0);
    return m;
}

/* Whether MADV_HUGEPAGE is accepted here (THP compiled in). */
static bool thp_available(void)
{
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    char buf[128] = "";
    if (!f)
        return false;
    if (!fgets(buf, sizeof buf, f))
        buf[0] = 0;
    fclose(f);
    return strstr(buf, "[never]") == NULL && buf[0];
}

static uint64_t counter(ca_source_mmap *m, const char *name)
{
    ca_stats st;
    uint64_t v = 0;
    ca_source_stats(&m->base, &st);
    ca_stats_get_counter(&st, name, &v);
    return v;
}

TestSuite(source_huge);

Test(source_huge, ladder_1g_reserve_falls_back_and_reports)
{
    ca_source_mmap m = mk(CA_SOURCE_HUGE_1G, NULL);
    void *p;
    /* 1 GiB reserved (PROT_NONE): costs no memory whatever the rung. */
    cr_assert_eq(ca_source_reserve(&m.base, GIB, 4096, &p), 0);
    unsigned kind = ca_source_mmap_last_kind(&m);
    if (hugepages_free("hugepages-1048576kB") > 0) {
        cr_assert_eq(kind, CA_SOURCE_PAGE_1G);
    } else {
        cr_assert_neq(kind, CA_SOURCE_PAGE_1G, "no 1 GiB pages reserved, yet reported");
        if (hugepages_free("hugepages-2048kB") >= 512)
            cr_assert_eq(kind, CA_SOURCE_PAGE_2M);
        else
            cr_assert_eq(kind, thp_available() ? CA_SOURCE_PAGE_THP : CA_SOURCE_PAGE_BASE, "kind %s",
                         ca_source_page_kind_name(kind));
    }
    cr_assert(ca_is_aligned((uintptr_t)p, 2 * MIB), "huge or THP mappings are 2 MiB aligned");
    cr_assert_eq(counter(&m, "page_size"), ca_source_page_kind_size(kind));
    cr_assert_eq(counter(&m, kind == CA_SOURCE_PAGE_THP ? "thp" : kind == CA_SOURCE_PAGE_BASE ? "base" : kind == CA_SOURCE_PAGE_2M ? "huge_2m" : "huge_1g"), 1);
    if (kind == CA_SOURCE_PAGE_THP)
        cr_assert(smaps_has_flag(p, "hg"), "MADV_HUGEPAGE set on the mapping");
    cr_assert_eq(ca_source_release(&m.base, p, GIB), 0);
    ca_source_mmap_destroy(&m);
}

Test(source_huge, ladder_2m_obtain_thp_memory_usable)
{
    ca_source_mmap m = mk(CA_SOURCE_HUGE_2M, NULL);
    void *p;
    unsigned kind = 99;
    cr_assert_eq(ca_source_mmap_obtain_ex(&m, 8 * MIB, 4096, &p, &kind), 0);
    cr_assert_eq(kind, ca_source_mmap_last_kind(&m));
    if (hugepages_free("hugepages-2048kB") < 4)
        cr_assert_eq(kind, thp_available() ? CA_SOURCE_PAGE_THP : CA_SOURCE_PAGE_BASE);
    cr_assert(ca_is_aligned((uintptr_t)p, 2 * MIB));
    memset(p, 5, 8 * MIB);
    cr_assert_eq(ca_source_decommit(&m.base, p, 2 * MIB), 0);
    cr_assert_eq(ca_source_release(&m.base, p, 8 * MIB), 0);
    ca_source_mmap_destroy(&m);
}

Test(source_huge, refused_rungs_skipped_then_retried)
{
    if (hugepages_free("hugepages-2048kB") > 0)
        cr_skip_test("2 MiB pages are reserved here");
    ca_source_fault f;
    ca_source_fault_init(&f, CA_SOURCE_FAULT_MMAP, 0, 0, 0); /* counts mmaps only */
    ca_source_mmap m = mk(CA_SOURCE_HUGE_2M, &f);
    void *p;
    cr_assert_eq(ca_source_obtain(&m.base, 2 * MIB, 4096, &p), 0);
    cr_assert_eq(ca_source_release(&m.base, p, 2 * MIB), 0);
    uint64_t first = f.calls; /* hugetlb refused + the THP mapping + munmap */
    cr_assert_eq(counter(&m, "huge_refused"), 1);
    for (int i = 0; i < CA_SOURCE_HUGE_RETRY; i++) {
        cr_assert_eq(ca_source_obtain(&m.base, 2 * MIB, 4096, &p), 0);
        cr_assert_eq(ca_source_release(&m.base, p, 2 * MIB), 0);
    }
    cr_assert_eq(counter(&m, "huge_refused"), 1, "skipped while the retry window runs");
    cr_assert_eq(f.calls, first + CA_SOURCE_HUGE_RETRY * (first - 1));
    cr_assert_eq(ca_source_obtain(&m.base, 2 * MIB, 4096, &p), 0);
    cr_assert_eq(counter(&m, "huge_refused"), 2, "tried again after the window");
    cr_assert_eq(ca_source_release(&m.base, p, 2 * MIB), 0);
    ca_source_mmap_destroy(&m);
}

Test(source_huge, small_sizes_use_base_pages)
{
    ca_source_mmap m = mk(CA_SOURCE_HUGE_1G, NULL);
    void *p;
    unsigned kind = 99;
    cr_assert_eq(ca_source_mmap_obtain_ex(&m, 64 * 1024, 4096, &p, &kind), 0);
    cr_assert_eq(kind, CA_SOURCE_PAGE_BASE);
    cr_assert_eq(counter(&m, "base"), 1);
    cr_assert_eq(ca_source_release(&m.base, p, 64 * 1024), 0);
    ca_source_mmap_destroy(&m);
}

Test(source_huge, off_never_hints)
{
    ca_source_mmap m = mk(CA_SOURCE_HUGE_OFF, NULL);
    void *p;
    unsigned kind = 99;
    cr_assert_eq(ca_source_mmap_obtain_ex(&m, 4 * MIB, 4096, &p, &kind), 0);
    cr_assert_eq(kind, CA_SOURCE_PAGE_BASE);
    cr_assert_not(smaps_has_flag(p, "hg"));
    cr_assert_eq(ca_source_release(&m.base, p, 4 * MIB), 0);
    ca_source_mmap_destroy(&m);
}

/* Refused rungs forced by injection: the first two mmaps (1 GiB, 2 MiB
 * hugetlb) fail, the third (base, aligned) succeeds; the THP hint refused
 * too gives a plain base mapping. */
Test(source_huge, forced_fallback_to_base)
{
    ca_source_fault f;
    ca_source_fault_init(&f, CA_SOURCE_FAULT_MMAP, 1, 2, ENOMEM);
    ca_source_mmap m = mk(CA_SOURCE_HUGE_1G, &f);
    void *p;
    unsigned kind;
    cr_assert_eq(ca_source_mmap_obtain_ex(&m, GIB, 4096, &p, &kind), 0);
    cr_assert_eq(f.injected, 2);
    cr_assert(kind == CA_SOURCE_PAGE_THP || kind == CA_SOURCE_PAGE_BASE);
    cr_assert_eq(ca_source_release(&m.base, p, GIB), 0);

    ca_source_fault g;
    ca_source_fault_init(&g, CA_SOURCE_FAULT_MADVISE, 1, 1, EINVAL);
    m.fault = &g;
    cr_assert_eq(ca_source_mmap_obtain_ex(&m, 4 * MIB, 4096, &p, &kind), 0);
    cr_assert_eq(kind, CA_SOURCE_PAGE_BASE, "a refused THP hint is reported as base pages");
    cr_assert_eq(ca_source_release(&m.base, p, 4 * MIB), 0);
    ca_source_mmap_destroy(&m);
}

Test(source_huge, page_kind_names)
{
    cr_assert_str_eq(ca_source_page_kind_name(CA_SOURCE_PAGE_BASE), "base");
    cr_assert_str_eq(ca_source_page_kind_name(CA_SOURCE_PAGE_THP), "thp");
    cr_assert_str_eq(ca_source_page_kind_name(CA_SOURCE_PAGE_2M), "2m");
    cr_assert_str_eq(ca_source_page_kind_name(CA_SOURCE_PAGE_1G), "1g");
    cr_assert_eq(ca_source_page_kind_size(CA_SOURCE_PAGE_1G), GIB);
    cr_assert_eq(ca_source_page_kind_size(CA_SOURCE_PAGE_2M), 2 * MIB);
    cr_assert_eq(ca_source_page_kind_size(CA_SOURCE_PAGE_THP), ca_page_size());
}
