/* SPDX-License-Identifier: MIT */
/*
 * Fault injection on every operation of every source, and at every system
 * call step inside the mmap and file sources: each injected failure returns
 * the chosen errno, leaves the statistics as they were (but for the failure
 * count), passes ca_source_check, and leaks no mapping or fd.
 */
#include <ctxalloc/source.h>

#include <criterion/criterion.h>

#include "ca_test.h"

static size_t page;
static void setup(void) { page = ca_page_size(); }
TestSuite(source_fault, .init = setup);

/* Every kind of source in one union, created with a fault plan. */
typedef struct any_source {
    ca_source_mmap m;
    ca_source_file f;
    ca_source_heap h;
    ca_source_buffer b;
    ca_source_slots s;
    ca_source_mmap parent;
    ca_source *src;
    int kind;
} any_source;

enum { K_MMAP, K_FILE, K_HEAP, K_BUFFER, K_SLOTS, K_COUNT };
static const char *const kind_names[] = {"mmap", "file", "heap", "buffer", "slots"};
static char buffer_mem[1 << 20];

static void make(any_source *a, int kind, ca_source_fault *f)
{
    memset(a, 0, sizeof *a);
    a->kind = kind;
    switch (kind) {
    case K_MMAP: {
        ca_source_mmap_options o;
        memset(&o, 0, sizeof o);
        o.fault = f;
        cr_assert_eq(ca_source_mmap_init(&a->m, &o), 0);
        a->src = &a->m.base;
        break;
    }
    case K_FILE: {
        ca_source_file_options o;
        memset(&o, 0, sizeof o);
        o.fault = f;
        cr_assert_eq(ca_source_file_init(&a->f, &o), 0);
        a->src = &a->f.base;
        break;
    }
    case K_HEAP: {
        ca_source_heap_options o = {0, 0, f};
        cr_assert_eq(ca_source_heap_init(&a->h, &o), 0);
        a->src = &a->h.base;
        break;
    }
    case K_BUFFER: {
        ca_source_buffer_options o = {0, f};
        cr_assert_eq(ca_source_buffer_init(&a->b, buffer_mem, sizeof buffer_mem, &o), 0);
        a->src = &a->b.base;
        break;
    }
    default: {
        cr_assert_eq(ca_source_mmap_init(&a->parent, NULL), 0);
        ca_source_slots_options o;
        memset(&o, 0, sizeof o);
        o.slot_size = page;
        o.fault = f;
        cr_assert_eq(ca_source_slots_init(&a->s, &a->parent.base, &o), 0);
        a->src = &a->s.base;
        break;
    }
    }
}

static void unmake(any_source *a)
{
    switch (a->kind) {
    case K_MMAP:
        ca_source_mmap_destroy(&a->m);
        break;
    case K_FILE:
        ca_source_file_destroy(&a->f);
        break;
    case K_HEAP:
        ca_source_heap_destroy(&a->h);
        break;
    case K_BUFFER:
        ca_source_buffer_destroy(&a->b);
        break;
    default:
        ca_source_slots_destroy(&a->s);
        ca_source_mmap_destroy(&a->parent);
    }
}

static void same_stats(const ca_stats *a, const ca_stats *b, const char *what)
{
    cr_assert_eq(a->bytes_in_use, b->bytes_in_use, "%s: in use changed", what);
    cr_assert_eq(a->bytes_reserved, b->bytes_reserved, "%s: reserved changed", what);
    cr_assert_eq(a->bytes_committed, b->bytes_committed, "%s: committed changed", what);
    cr_assert_eq(a->allocs, b->allocs, "%s", what);
    cr_assert_eq(a->frees, b->frees, "%s", what);
}

/* Each operation point fails once with a distinct errno, then works. */
Test(source_fault, every_operation_of_every_source)
{
    static const unsigned points[] = {CA_SOURCE_FAULT_OBTAIN, CA_SOURCE_FAULT_RESERVE, CA_SOURCE_FAULT_COMMIT,
                                      CA_SOURCE_FAULT_DECOMMIT, CA_SOURCE_FAULT_RELEASE};
    for (int kind = 0; kind < K_COUNT; kind++) {
        for (unsigned pi = 0; pi < sizeof points / sizeof points[0]; pi++) {
            ca_source_fault f;
            ca_source_fault_init(&f, 0, 1, 1, 100 + (int)pi);
            any_source a;
            make(&a, kind, &f);
            size_t g = ca_source_granule(a.src);
            void *p = NULL;
            cr_assert_eq(ca_source_obtain(a.src, g, g, &p), 0);
            bool can_reserve = a.src->ops->reserve != NULL;
            void *r = NULL;
            if (can_reserve)
                cr_assert_eq(ca_source_reserve(a.src, 2 * g, g, &r), 0);
            ca_stats before, after;
            ca_source_stats(a.src, &before);
            long maps = ca_test_count_maps(), fds = ca_test_count_fds();
            __atomic_store_n(&f.points, points[pi], __ATOMIC_RELAXED);
            int rc;
            void *q = (void *)0x1;
            switch (points[pi]) {
            case CA_SOURCE_FAULT_OBTAIN:
                rc = ca_source_obtain(a.src, g, g, &q);
                cr_assert_eq(q, (void *)0x1, "out untouched on failure");
                break;
            case CA_SOURCE_FAULT_RESERVE:
                rc = can_reserve ? ca_source_reserve(a.src, g, g, &q) : 100 + (int)pi;
                break;
            case CA_SOURCE_FAULT_COMMIT:
                rc = a.src->ops->commit ? ca_source_commit(a.src, r, g) : 100 + (int)pi;
                break;
            case CA_SOURCE_FAULT_DECOMMIT:
                rc = a.src->ops->decommit ? ca_source_decommit(a.src, p, g) : 100 + (int)pi;
                break;
            default:
                rc = ca_source_release(a.src, p, g);
            }
            cr_assert_eq(rc, 100 + (int)pi, "%s point %#x: rc %d", kind_names[kind], points[pi], rc);
            ca_source_stats(a.src, &after);
            same_stats(&before, &after, kind_names[kind]);
            cr_assert_eq(ca_test_count_maps(), maps, "%s", kind_names[kind]);
            cr_assert_eq(ca_test_count_fds(), fds, "%s", kind_names[kind]);
            cr_assert_null(ca_source_check(a.src), "%s", kind_names[kind]);
            /* once only: the same call now works */
            cr_assert_eq(ca_source_release(a.src, p, g), 0, "%s", kind_names[kind]);
            if (can_reserve)
                cr_assert_eq(ca_source_release(a.src, r, 2 * g), 0);
            unmake(&a);
        }
    }
}

/* Each step of the mmap source's obtain fails at the n-th call: the obtain
 * returns the injected errno and leaves no mapping. */
Test(source_fault, mmap_steps_clean_up)
{
    static const unsigned steps[] = {CA_SOURCE_FAULT_MMAP, CA_SOURCE_FAULT_MADVISE, CA_SOURCE_FAULT_MBIND,
                                     CA_SOURCE_FAULT_MLOCK};
    static unsigned long node0 = 1;
    for (unsigned si = 0; si < 4; si++) {
        for (uint64_t nth = 1; nth <= 3; nth++) {
            ca_source_fault f;
            ca_source_fault_init(&f, steps[si], nth, 1, ENOMEM);
            ca_source_mmap_options o;
            memset(&o, 0, sizeof o);
            o.flags = CA_SOURCE_MMAP_NODUMP | CA_SOURCE_MMAP_POPULATE | CA_SOURCE_MMAP_LOCK;
            o.huge = CA_SOURCE_HUGE_THP;
            o.fault = &f;
            if (ca_source_numa_available()) {
                o.numa.mode = CA_SOURCE_NUMA_BIND;
                o.numa.nodes = &node0;
                o.numa.maxnode = 1;
            }
            ca_source_mmap m;
            cr_assert_eq(ca_source_mmap_init(&m, &o), 0);
            long maps = ca_test_count_maps();
            for (int i = 0; i < 3; i++) {
                void *p;
                size_t n = (size_t)4 << 20;
                int rc = ca_source_obtain(&m.base, n, page, &p);
                if (rc == 0) {
                    ((char *)p)[n - 1] = 1;
                    /* the munmap step of release may be the injected one */
                    int rr = ca_source_release(&m.base, p, n);
                    if (rr == ENOMEM)
                        rr = ca_source_release(&m.base, p, n);
                    cr_assert_eq(rr, 0);
                } else {
                    cr_assert_eq(rc, ENOMEM);
                    cr_assert_eq(ca_test_count_maps(), maps, "step %#x nth %lu left a mapping", steps[si],
                                 (unsigned long)nth);
                }
                cr_assert_null(ca_source_check(&m.base));
            }
            ca_stats st;
            ca_source_stats(&m.base, &st);
            /* a refused THP hint (a MADVISE step) is a fallback, not a failure */
            if (steps[si] == CA_SOURCE_FAULT_MADVISE)
                cr_assert_leq(st.failures, f.injected);
            else
                cr_assert_eq(st.failures, f.injected, "step %#x: every injection counted", steps[si]);
            cr_assert_eq(st.bytes_reserved, 0);
            ca_source_mmap_destroy(&m);
        }
    }
}

/* The file source's steps at init and at obtain. */
Test(source_fault, file_steps_clean_up)
{
    static const unsigned steps[] = {CA_SOURCE_FAULT_OPEN, CA_SOURCE_FAULT_MMAP, CA_SOURCE_FAULT_FALLOCATE,
                                     CA_SOURCE_FAULT_INIT};
    for (unsigned si = 0; si < 4; si++) {
        for (uint64_t nth = 1; nth <= 3; nth++) {
            long maps = ca_test_count_maps(), fds = ca_test_count_fds();
            ca_source_fault f;
            ca_source_fault_init(&f, steps[si], nth, 1, EIO);
            ca_source_file_options o;
            memset(&o, 0, sizeof o);
            o.fault = &f;
            ca_source_file s;
            int rc = ca_source_file_init(&s, &o);
            if (rc) {
                cr_assert_eq(rc, EIO);
                cr_assert_not_null(strstr(ca_last_error(), "source-file: "), "a message says what failed: %s",
                                   ca_last_error());
                cr_assert_eq(ca_test_count_maps(), maps);
                cr_assert_eq(ca_test_count_fds(), fds);
                continue;
            }
            long maps_live = ca_test_count_maps();
            void *p[3];
            for (int i = 0; i < 3; i++) {
                rc = ca_source_obtain(&s.base, 4 * page, page, &p[i]);
                if (rc) {
                    cr_assert_eq(rc, EIO);
                    p[i] = NULL;
                }
                cr_assert_null(ca_source_check(&s.base));
            }
            for (int i = 0; i < 3; i++)
                if (p[i]) {
                    rc = ca_source_release(&s.base, p[i], 4 * page);
                    if (rc == EIO) /* the release's own mmap step was the one */
                        rc = ca_source_release(&s.base, p[i], 4 * page);
                    cr_assert_eq(rc, 0);
                }
            cr_assert_null(ca_source_check(&s.base));
            cr_assert_leq(ca_test_count_maps(), maps_live + 1, "reservation restored");
            ca_source_file_destroy(&s);
            cr_assert_eq(ca_test_count_maps(), maps);
            cr_assert_eq(ca_test_count_fds(), fds);
        }
    }
}

static int big_only(void *ctx, unsigned point, size_t size)
{
    (void)point;
    return size > *(size_t *)ctx ? E2BIG : 0;
}

Test(source_fault, hook_and_counting)
{
    size_t limit = 4 * page;
    ca_source_fault f;
    ca_source_fault_init(&f, CA_SOURCE_FAULT_OBTAIN, 0, 0, 0);
    f.hook = big_only;
    f.ctx = &limit;
    ca_source_mmap_options o;
    memset(&o, 0, sizeof o);
    o.fault = &f;
    ca_source_mmap m;
    cr_assert_eq(ca_source_mmap_init(&m, &o), 0);
    void *p;
    cr_assert_eq(ca_source_obtain(&m.base, 8 * page, page, &p), E2BIG);
    cr_assert_eq(ca_source_obtain(&m.base, 4 * page, page, &p), 0);
    cr_assert_eq(ca_source_release(&m.base, p, 4 * page), 0);
    cr_assert_eq(f.calls, 2);
    cr_assert_eq(f.injected, 1);
    ca_source_mmap_destroy(&m);

    /* error 0 means EIO; times 0 means every call from nth on; nth 0 never */
    ca_source_fault_init(&f, CA_SOURCE_FAULT_OBTAIN, 2, 0, 0);
    cr_assert_eq(ca_source_fault_hit(&f, CA_SOURCE_FAULT_OBTAIN, 1), 0);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(ca_source_fault_hit(&f, CA_SOURCE_FAULT_OBTAIN, 1), EIO);
    cr_assert_eq(ca_source_fault_hit(&f, CA_SOURCE_FAULT_RELEASE, 1), 0, "uncounted point");
    cr_assert_eq(f.calls, 6);
    ca_source_fault_init(&f, CA_SOURCE_FAULT_ALL, 0, 0, ENOMEM);
    cr_assert_eq(ca_source_fault_hit(&f, CA_SOURCE_FAULT_OBTAIN, 1), 0);
    cr_assert_eq(ca_source_fault_hit(NULL, CA_SOURCE_FAULT_OBTAIN, 1), 0);

    /* init points */
    ca_source_fault_init(&f, CA_SOURCE_FAULT_INIT, 1, 0, EPERM);
    o.fault = &f;
    cr_assert_eq(ca_source_mmap_init(&m, &o), EPERM);
    ca_source_heap_options ho = {0, 0, &f};
    ca_source_heap h;
    cr_assert_eq(ca_source_heap_init(&h, &ho), EPERM);
}

Test(source_fault, wrapper_mirrors_optional_ops)
{
    ca_source_fault f;
    ca_source_fault_init(&f, CA_SOURCE_FAULT_DECOMMIT, 1, 1, EAGAIN);
    ca_source_mmap m;
    cr_assert_eq(ca_source_mmap_init(&m, NULL), 0);
    ca_source_faulty w;
    cr_assert_eq(ca_source_faulty_init(&w, &m.base, &f), 0);
    cr_assert_eq(w.base.ops->caps, m.base.ops->caps);
    void *p;
    cr_assert_eq(ca_source_reserve(&w.base, 4 * page, page, &p), 0);
    cr_assert_eq(ca_source_commit(&w.base, p, page), 0);
    cr_assert_eq(ca_source_decommit(&w.base, p, page), EAGAIN);
    cr_assert_eq(ca_source_decommit(&w.base, p, page), 0);
    cr_assert_eq(ca_source_release(&w.base, p, 4 * page), 0);
    ca_source_heap h;
    cr_assert_eq(ca_source_heap_init(&h, NULL), 0);
    cr_assert_eq(ca_source_faulty_init(&w, &h.base, &f), 0);
    cr_assert_eq(ca_source_reserve(&w.base, page, page, &p), ENOTSUP);
    cr_assert_eq(ca_source_faulty_init(&w, NULL, &f), EINVAL);
    cr_assert_eq(ca_source_faulty_init(&w, &h.base, NULL), EINVAL);
    ca_source_heap_destroy(&h);
    ca_source_mmap_destroy(&m);
}
