/* SPDX-License-Identifier: MIT */
/* libsource through its public header only: every source's round trip,
 * bad input with the documented errno, statistics. */
#include <ctxalloc/source.h>

#include <criterion/criterion.h>
#include <stdlib.h>

#include "ca_test.h"

static size_t page;

static void setup(void) { page = ca_page_size(); }

TestSuite(source_api, .init = setup);

Test(source_api, mmap_round_trip)
{
    ca_source_mmap m;
    cr_assert_eq(ca_source_mmap_init(&m, NULL), 0);
    cr_assert_eq(ca_source_granule(&m.base), page);
    void *p = NULL;
    cr_assert_eq(ca_source_obtain(&m.base, 8 * page, page, &p), 0);
    ca_test_fill(p, 8 * page, 1);
    cr_assert(ca_test_verify(p, 8 * page, 1));
    cr_assert_eq(ca_source_release(&m.base, p, 8 * page), 0);
    ca_stats st;
    cr_assert_eq(ca_source_stats(&m.base, &st), 0);
    cr_assert_eq(st.allocs, 1);
    cr_assert_eq(st.frees, 1);
    cr_assert_eq(st.bytes_in_use, 0);
    cr_assert_eq(st.bytes_reserved, 0);
    cr_assert_null(ca_source_check(&m.base));
    ca_source_mmap_destroy(&m);
}

Test(source_api, mmap_bad_input)
{
    ca_source_mmap m;
    cr_assert_eq(ca_source_mmap_init(&m, NULL), 0);
    void *p = (void *)0x1;
    cr_assert_eq(ca_source_obtain(&m.base, 0, page, &p), EINVAL);
    cr_assert_eq(ca_source_obtain(&m.base, page + 1, page, &p), EINVAL);
    cr_assert_eq(ca_source_obtain(&m.base, page, 3 * page, &p), EINVAL);
    cr_assert_eq(ca_source_obtain(&m.base, SIZE_MAX & ~(page - 1), (size_t)1 << 40, &p), ENOMEM);
    cr_assert_eq(p, (void *)0x1);
    ca_stats st;
    ca_source_stats(&m.base, &st);
    cr_assert_eq(st.allocs, 0);
    ca_source_mmap_destroy(&m);
}

Test(source_api, global_is_shared)
{
    ca_source *g = ca_source_mmap_global();
    cr_assert_eq(g, ca_source_mmap_global());
    void *p;
    cr_assert_eq(ca_source_obtain(g, page, page, &p), 0);
    cr_assert_eq(ca_source_release(g, p, page), 0);
}

Test(source_api, file_round_trip)
{
    ca_source_file f;
    cr_assert_eq(ca_source_file_init(&f, NULL), 0, "%s", ca_last_error());
    cr_assert(ca_source_file_fd(&f) >= 0);
    void *p = NULL;
    cr_assert_eq(ca_source_obtain(&f.base, 4 * page, page, &p), 0);
    cr_assert_eq(ca_source_file_offset(&f, p), 0);
    ca_test_fill(p, 4 * page, 2);
    cr_assert_eq(ca_source_file_sync(&f, p, 4 * page), 0);
    cr_assert_eq(ca_source_release(&f.base, p, 4 * page), 0);
    cr_assert_null(ca_source_check(&f.base));
    ca_source_file_destroy(&f);
}

Test(source_api, heap_and_buffer)
{
    ca_source_heap h;
    cr_assert_eq(ca_source_heap_init(&h, NULL), 0);
    void *p;
    cr_assert_eq(ca_source_obtain(&h.base, page, 4 * page, &p), 0);
    cr_assert(ca_is_aligned((uintptr_t)p, 4 * page));
    cr_assert_eq(ca_source_release(&h.base, p, page), 0);
    cr_assert_eq(ca_source_reserve(&h.base, page, page, &p), ENOTSUP);
    cr_assert_eq(ca_source_decommit(&h.base, p, page), ENOTSUP);
    ca_source_heap_destroy(&h);

    static char buf[64 * 1024];
    ca_source_buffer b;
    ca_source_buffer_options bo = {.granule = 1024, .fault = NULL};
    cr_assert_eq(ca_source_buffer_init(&b, buf, sizeof buf, &bo), 0);
    void *q[64];
    int n = 0;
    while (ca_source_obtain(&b.base, 1024, 1024, &q[n]) == 0)
        n++;
    cr_assert(n >= 63);
    cr_assert_eq(ca_source_obtain(&b.base, 1024, 1024, &p), ENOMEM);
    for (int i = 0; i < n; i++)
        cr_assert_eq(ca_source_release(&b.base, q[i], 1024), 0);
    cr_assert_null(ca_source_check(&b.base));
    ca_source_buffer_destroy(&b);
}

static int inits;
static void count_init(void *ctx, void *block, size_t size)
{
    (void)ctx;
    memset(block, 0xab, size);
    inits++;
}

Test(source_api, slots)
{
    ca_source_mmap m;
    cr_assert_eq(ca_source_mmap_init(&m, NULL), 0);
    ca_source_slots s;
    ca_source_slots_options so = {.slot_size = 32, .chunk_size = 0, .init = count_init, .init_ctx = NULL, .fault = NULL};
    cr_assert_eq(ca_source_slots_init(&s, &m.base, &so), 0);
    void *a = ca_source_slots_get(&s);
    cr_assert_not_null(a);
    cr_assert_eq(((unsigned char *)a)[31], 0xab);
    void *b;
    cr_assert_eq(ca_source_obtain(&s.base, 32, 32, &b), 0);
    cr_assert_eq(ca_source_obtain(&s.base, 64, 32, &b), EINVAL);
    cr_assert_eq(inits, 2);
    ca_source_slots_put(&s, a);
    cr_assert_eq(ca_source_release(&s.base, b, 32), 0);
    cr_assert_null(ca_source_check(&s.base));
    ca_source_slots_destroy(&s);
    ca_stats st;
    ca_source_stats(&m.base, &st);
    cr_assert_eq(st.bytes_in_use, 0, "chunks returned to the parent");
    ca_source_mmap_destroy(&m);
}

Test(source_api, faulty_wrapper)
{
    ca_source_heap h;
    cr_assert_eq(ca_source_heap_init(&h, NULL), 0);
    ca_source_fault f;
    ca_source_fault_init(&f, CA_SOURCE_FAULT_OBTAIN, 2, 2, ENOSPC);
    ca_source_faulty w;
    cr_assert_eq(ca_source_faulty_init(&w, &h.base, &f), 0);
    void *p[5];
    int rc[5];
    for (int i = 0; i < 5; i++)
        rc[i] = ca_source_obtain(&w.base, page, page, &p[i]);
    cr_assert_eq(rc[0], 0);
    cr_assert_eq(rc[1], ENOSPC);
    cr_assert_eq(rc[2], ENOSPC);
    cr_assert_eq(rc[3], 0);
    cr_assert_eq(rc[4], 0);
    cr_assert_eq(f.injected, 2);
    for (int i = 0; i < 5; i++)
        if (rc[i] == 0)
            ca_source_release(&w.base, p[i], page);
    ca_stats st;
    ca_source_stats(&w.base, &st);
    uint64_t v = 0;
    cr_assert(ca_stats_get_counter(&st, "faults_injected", &v));
    cr_assert_eq(v, 2);
    cr_assert_null(ca_source_check(&w.base));
    ca_source_heap_destroy(&h);
}

Test(source_api, numa_query)
{
    int n = ca_source_numa_available();
    ca_source_numa pol = {.mode = CA_SOURCE_NUMA_LOCAL, .nodes = NULL, .maxnode = 0};
    cr_assert_eq(ca_source_numa_validate(&pol), n ? 0 : ENOTSUP);
    pol.mode = 99;
    cr_assert_eq(ca_source_numa_validate(&pol), EINVAL);
    cr_assert_eq(ca_source_numa_validate(NULL), 0);
}

/* Each source's statistics report every counter of its list, and only
 * those: CA_SOURCE_MMAP_COUNTERS, CA_SOURCE_FILE_COUNTERS,
 * CA_SOURCE_SLOTS_COUNTERS, CA_SOURCE_COUNTERS (heap); the fault wrapper
 * adds CA_SOURCE_FAULTY_COUNTERS (already among every source's). */
#define NAMES_DIFFER(st, names) ca_test_counters_differ(st, names, sizeof names / sizeof *names)
Test(source_api, stats_counters_listed)
{
    static const char *const mmap_names[] = CA_STATS_NAMES(CA_SOURCE_MMAP_COUNTERS);
    static const char *const file_names[] = CA_STATS_NAMES(CA_SOURCE_FILE_COUNTERS);
    static const char *const slots_names[] = CA_STATS_NAMES(CA_SOURCE_SLOTS_COUNTERS);
    static const char *const common_names[] = CA_STATS_NAMES(CA_SOURCE_COUNTERS);
    ca_stats st;
    const char *d;

    ca_source_mmap m;
    cr_assert_eq(ca_source_mmap_init(&m, NULL), 0);
    cr_assert_eq(ca_source_stats(&m.base, &st), 0);
    d = NAMES_DIFFER(&st, mmap_names);
    cr_assert_null(d, "mmap: %s", d);

    ca_source_fault f;
    ca_source_fault_init(&f, CA_SOURCE_FAULT_COMMIT, 1, 0, EAGAIN);
    ca_source_faulty w;
    cr_assert_eq(ca_source_faulty_init(&w, &m.base, &f), 0);
    cr_assert_eq(ca_source_stats(&w.base, &st), 0);
    d = NAMES_DIFFER(&st, mmap_names);
    cr_assert_null(d, "faulty over mmap: %s", d);

    ca_source_slots s;
    ca_source_slots_options so = {.slot_size = 32, .chunk_size = 0, .init = NULL, .init_ctx = NULL, .fault = NULL};
    cr_assert_eq(ca_source_slots_init(&s, &m.base, &so), 0);
    cr_assert_eq(ca_source_stats(&s.base, &st), 0);
    d = NAMES_DIFFER(&st, slots_names);
    cr_assert_null(d, "slots: %s", d);
    ca_source_slots_destroy(&s);
    ca_source_mmap_destroy(&m);

    ca_source_file fs;
    cr_assert_eq(ca_source_file_init(&fs, NULL), 0, "%s", ca_last_error());
    cr_assert_eq(ca_source_stats(&fs.base, &st), 0);
    d = NAMES_DIFFER(&st, file_names);
    cr_assert_null(d, "file: %s", d);
    ca_source_file_destroy(&fs);

    ca_source_heap h;
    cr_assert_eq(ca_source_heap_init(&h, NULL), 0);
    cr_assert_eq(ca_source_stats(&h.base, &st), 0);
    d = NAMES_DIFFER(&st, common_names);
    cr_assert_null(d, "heap: %s", d);
    ca_source_heap_destroy(&h);
}
