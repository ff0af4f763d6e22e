/* SPDX-License-Identifier: MIT */
/* The OS layer and its process-wide fault plan: the functions return the
 * injected errno, and callers in other layers (the ownership map, the mmap
 * source, bitset creation) fail cleanly with nothing left behind. Each test
 * runs in its own process (Criterion forks), so a plan never leaks into
 * another test. */
#include <criterion/criterion.h>
#include <ctxalloc/core.h>
#include <sys/mman.h>
#if defined(CA_TEST_OS_COMPONENTS) && CA_TEST_OS_COMPONENTS
#include <ctxalloc/bitset.h>
#include <ctxalloc/source.h>
#endif

static size_t page(void) { return ca_page_size(); }

static void *map_rw(size_t size)
{
    void *p = NULL;
    cr_assert_eq(ca_os_map(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0, &p), 0);
    cr_assert_not_null(p);
    return p;
}

Test(os, calls_succeed_without_a_plan)
{
    size_t pg = page();
    char *p = (char *)map_rw(4 * pg);
    p[0] = 1;
    cr_assert_eq(ca_os_advise(p, 4 * pg, MADV_DONTNEED), 0);
    cr_assert_eq(p[0], 0); /* private anonymous pages come back zeroed */
    cr_assert_eq(ca_os_protect(p, pg, PROT_READ), 0);
    cr_assert_eq(ca_os_protect(p, pg, PROT_READ | PROT_WRITE), 0);
    void *q = NULL;
    cr_assert_eq(ca_os_remap(p, 4 * pg, 8 * pg, MREMAP_MAYMOVE, NULL, &q), 0);
    cr_assert_eq(ca_os_sync(q, 8 * pg, MS_ASYNC), 0);
    cr_assert_eq(ca_os_unmap(q, 8 * pg), 0);
    void *a = NULL;
    cr_assert_eq(ca_os_map_aligned(2 * pg, 64 * pg, pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, &a), 0);
    cr_assert(ca_is_aligned((uintptr_t)a, 64 * pg));
    cr_assert_eq(ca_os_unmap(a, 2 * pg), 0);
}

Test(os, errors_are_errnos)
{
    void *p = (void *)(uintptr_t)1;
    cr_assert_eq(ca_os_map(NULL, 0, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0, &p), EINVAL);
    cr_assert_eq(p, (void *)(uintptr_t)1, "*out untouched on failure");
    char *m = (char *)map_rw(page());
    cr_assert_eq(ca_os_unmap(m + 1, page()), EINVAL);
    cr_assert_eq(ca_os_advise(m + 1, page(), MADV_DONTNEED), EINVAL);
    cr_assert_eq(ca_os_unmap(m, page()), 0);
    cr_assert_eq(ca_os_fallocate(-1, 0, 0, (int64_t)page()), EBADF);
    cr_assert_eq(ca_os_fallocate(-1, CA_OS_FALLOCATE_POSIX, 0, (int64_t)page()), EBADF);
}

Test(os, plan_fails_the_nth_call_of_a_kind)
{
    size_t pg = page();
    char *keep = (char *)map_rw(pg);
    ca_fault f;
    ca_fault_init(&f, CA_OS_MAP, 2, 1, ENOMEM); /* the 2nd map, once */
    cr_assert_null(ca_os_set_fault(&f));
    void *a = map_rw(pg); /* 1st: proceeds */
    void *b = (void *)(uintptr_t)1;
    cr_assert_eq(ca_os_map(NULL, pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0, &b), ENOMEM);
    cr_assert_eq(b, (void *)(uintptr_t)1);
    cr_assert_eq(ca_os_map_aligned(pg, 16 * pg, pg, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, &b), 0); /* 3rd */
    cr_assert_eq(__atomic_load_n(&f.calls, __ATOMIC_RELAXED), 3);
    cr_assert_eq(__atomic_load_n(&f.injected, __ATOMIC_RELAXED), 1);
    /* other kinds are not counted by a MAP plan */
    cr_assert_eq(ca_os_unmap(a, pg), 0);
    cr_assert_eq(ca_os_unmap(b, pg), 0);
    cr_assert_eq(__atomic_load_n(&f.calls, __ATOMIC_RELAXED), 3);
    cr_assert_eq(ca_os_set_fault(NULL), &f);

    /* unmap and advise fail with the plan's errno and change nothing */
    ca_fault g;
    ca_fault_init(&g, CA_OS_UNMAP | CA_OS_ADVISE, 1, 0, EAGAIN);
    ca_os_set_fault(&g);
    keep[0] = 7;
    cr_assert_eq(ca_os_unmap(keep, pg), EAGAIN);
    cr_assert_eq(ca_os_advise(keep, pg, MADV_DONTNEED), EAGAIN);
    cr_assert_eq(keep[0], 7, "still mapped, contents kept");
    cr_assert_eq(__atomic_load_n(&g.injected, __ATOMIC_RELAXED), 2);
    ca_os_set_fault(NULL);
    cr_assert_eq(ca_os_unmap(keep, pg), 0);
}

static int fail_big(void *ctx, unsigned kind, size_t size)
{
    return kind == CA_OS_MAP && size >= *(size_t *)ctx ? ENOSPC : 0;
}

Test(os, plan_hook_decides_by_size)
{
    size_t pg = page(), limit = 4 * pg;
    ca_fault f;
    ca_fault_init(&f, CA_OS_ALL, 0, 0, 0);
    f.hook = fail_big;
    f.ctx = &limit;
    ca_os_set_fault(&f);
    void *p = map_rw(pg);
    void *q;
    cr_assert_eq(ca_os_map(NULL, limit, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0, &q), ENOSPC);
    cr_assert_eq(ca_os_unmap(p, pg), 0);
    ca_os_set_fault(NULL);
}

/* The ownership map maps its radix nodes through the OS layer: a refused
 * node fails the registration with ENOMEM and no page gets an owner. */
Test(os, owner_register_fails_cleanly)
{
    size_t g = CA_OWNER_GRANULE;
    void *r;
    cr_assert_eq(ca_os_map_aligned(4 * g, g, page(), PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, &r), 0);
    int owner;
    for (uint64_t nth = 1; nth <= 2; nth++) { /* the middle node, then the leaf */
        ca_fault f;
        ca_fault_init(&f, CA_OS_MAP, nth, 1, ENOMEM);
        ca_os_set_fault(&f);
        int err = ca_owner_register(r, 4 * g, &owner);
        ca_os_set_fault(NULL);
        /* nothing else registers in this test's process: both nodes are new */
        cr_assert_eq(__atomic_load_n(&f.injected, __ATOMIC_RELAXED), 1);
        cr_assert_eq(err, ENOMEM);
        for (size_t off = 0; off < 4 * g; off += CA_OWNER_PAGE)
            cr_assert_null(ca_owner_lookup((char *)r + off));
    }
    cr_assert_eq(ca_owner_register(r, 4 * g, &owner), 0);
    cr_assert_eq(ca_owner_lookup(r), &owner);
    ca_owner_unregister(r, 4 * g, &owner);
}

#if defined(CA_TEST_OS_COMPONENTS) && CA_TEST_OS_COMPONENTS

/* The source holds exactly these bytes and its record agrees. */
static void assert_holds(ca_source_mmap *s, uint64_t in_use, uint64_t committed)
{
    ca_stats st;
    cr_assert_eq(ca_source_stats(&s->base, &st), 0);
    cr_assert_eq(st.bytes_in_use, in_use);
    cr_assert_eq(st.bytes_committed, committed);
    cr_assert_null(ca_source_check(&s->base));
}

/* Bitset metadata of a caller buffer is mapped through the OS layer. */
Test(os, bitset_buffer_meta_map_fails_cleanly)
{
    size_t region = 64 * page();
    void *buf = map_rw(region);
    ca_bitset_options o;
    ca_bitset_options_init(&o);
    o.block_size = 64;
    o.region_size = region;
    o.buffer = buf;
    ca_fault f;
    ca_fault_init(&f, CA_OS_MAP, 1, 1, ENOMEM);
    ca_os_set_fault(&f);
    ca_bitset *b = (ca_bitset *)(uintptr_t)1;
    cr_assert_eq(ca_bitset_create(&b, &o), ENOMEM);
    cr_assert_eq(b, (ca_bitset *)(uintptr_t)1, "no object on failure");
    cr_assert_eq(__atomic_load_n(&f.injected, __ATOMIC_RELAXED), 1);
    cr_assert_eq(ca_bitset_create(&b, &o), 0); /* the plan failed one call only */
    ca_os_set_fault(NULL);
    ca_bitset_destroy(b);
    cr_assert_eq(ca_os_unmap(buf, region), 0);
}

/* Region creation from the mmap source: the metadata is mapped, then the
 * region's map is refused. The metadata goes back to the source; the source
 * holds nothing afterwards. */
Test(os, bitset_source_region_map_fails_cleanly)
{
    ca_source_mmap s;
    cr_assert_eq(ca_source_mmap_init(&s, NULL), 0);
    void *warm; /* the source's record of ranges is mapped on first use */
    cr_assert_eq(ca_source_obtain(&s.base, page(), page(), &warm), 0);
    cr_assert_eq(ca_source_release(&s.base, warm, page()), 0);
    ca_bitset_options o;
    ca_bitset_options_init(&o);
    o.block_size = 256;
    o.region_size = (size_t)1 << 20;
    o.source = &s.base;
    ca_fault f;
    ca_fault_init(&f, CA_OS_MAP, 2, 1, ENOMEM); /* 1st: metadata, 2nd: region */
    ca_os_set_fault(&f);
    ca_bitset *b = NULL;
    cr_assert_eq(ca_bitset_create(&b, &o), ENOMEM);
    ca_os_set_fault(NULL);
    cr_assert_null(b);
    cr_assert_eq(__atomic_load_n(&f.calls, __ATOMIC_RELAXED), 2);
    assert_holds(&s, 0, 0);
    ca_source_mmap_destroy(&s);
}

/* Source operations over failing unmap / advise: the errno comes back, the
 * range stays the caller's and the counters do not move. */
Test(os, source_release_and_decommit_fail_cleanly)
{
    ca_source_mmap s;
    cr_assert_eq(ca_source_mmap_init(&s, NULL), 0);
    size_t size = 16 * page();
    char *p;
    cr_assert_eq(ca_source_obtain(&s.base, size, page(), (void **)&p), 0);
    p[0] = 3;
    ca_fault f;
    ca_fault_init(&f, CA_OS_UNMAP | CA_OS_ADVISE, 1, 0, EAGAIN);
    ca_os_set_fault(&f);
    cr_assert_eq(ca_source_decommit(&s.base, p, size), EAGAIN);
    cr_assert_eq(ca_source_release(&s.base, p, size), EAGAIN);
    ca_os_set_fault(NULL);
    cr_assert_eq(p[0], 3);
    assert_holds(&s, size, size);
    cr_assert_eq(ca_source_release(&s.base, p, size), 0);
    assert_holds(&s, 0, 0);
    ca_source_mmap_destroy(&s);
}

/* A per-source plan and the process-wide plan are one mechanism: the same
 * ca_fault type, the source's step asked first, then the OS layer's. */
Test(os, source_plan_sits_on_the_os_plan)
{
    ca_source_fault sf;
    ca_source_fault_init(&sf, CA_SOURCE_FAULT_MMAP, 1, 1, EPERM);
    ca_source_mmap_options mo = {0};
    mo.fault = &sf;
    ca_source_mmap s;
    cr_assert_eq(ca_source_mmap_init(&s, &mo), 0);
    ca_fault os;
    ca_fault_init(&os, CA_OS_MAP, 1, 0, ENOMEM);
    ca_os_set_fault(&os);
    void *p;
    cr_assert_eq(ca_source_obtain(&s.base, page(), page(), &p), EPERM); /* the source's step */
    cr_assert_eq(__atomic_load_n(&os.calls, __ATOMIC_RELAXED), 0, "refused before the OS layer");
    cr_assert_eq(ca_source_obtain(&s.base, page(), page(), &p), ENOMEM); /* then the OS layer's */
    ca_os_set_fault(NULL);
    cr_assert_eq(ca_source_obtain(&s.base, page(), page(), &p), 0);
    cr_assert_eq(ca_source_release(&s.base, p, page()), 0);
    ca_source_mmap_destroy(&s);
}

#endif
