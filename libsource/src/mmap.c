/* SPDX-License-Identifier: MIT */
/*
 * The anonymous mmap source: obtain / reserve / commit / decommit / release
 * over private anonymous mappings, with the huge-page ladder
 * (hugetlb 1 GiB -> hugetlb 2 MiB -> THP hint on a 2 MiB-aligned mapping ->
 * base pages), alignment by over-mapping and trimming, NUMA policy, mapping
 * names, populate, lock and no-dump.
 * Concurrency: thread-safe. Options are read-only after init; counters are
 * __atomic; the record of ranges has its own spin lock.
 * Read first: map_ladder(), then setup_range() and mmap_obtain().
 */
#include "source_internal.h"

#include <pthread.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

#ifndef PR_SET_VMA
#define PR_SET_VMA 0x53564d41
#endif
#ifndef PR_SET_VMA_ANON_NAME
#define PR_SET_VMA_ANON_NAME 0
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#ifndef MAP_HUGE_SHIFT
#define MAP_HUGE_SHIFT 26
#endif
#ifndef MAP_HUGE_2MB
#define MAP_HUGE_2MB (21 << MAP_HUGE_SHIFT)
#endif
#ifndef MAP_HUGE_1GB
#define MAP_HUGE_1GB (30 << MAP_HUGE_SHIFT)
#endif

#define KNOWN_FLAGS                                                                                       \
    (CA_SOURCE_MMAP_POPULATE | CA_SOURCE_MMAP_LOCK | CA_SOURCE_MMAP_LOCK_TRY | CA_SOURCE_MMAP_NORESERVE | \
     CA_SOURCE_MMAP_NODUMP)

CA_SOURCE__DECLARE_COMMIT(mmap)

static const ca_source_ops mmap_ops = CA_SOURCE__OPS_COMMIT(mmap, CA_SOURCE_THREAD_SAFE | CA_SOURCE_ZEROED);


static ca_source_mmap *from(ca_source *s) { return (ca_source_mmap *)(void *)s; }

/* ---- mapping ------------------------------------------------------------ */

/* Map size bytes aligned to align with pages of `unit` bytes (the base page
 * or a hugetlb size) through the source's plan (its MMAP step is asked with
 * the over-mapped length) and core's ca_os_map_aligned. */
static int map_aligned(ca_source_mmap *s, size_t size, size_t align, size_t unit, int prot, int flags, void **out)
{
    size_t total = size;
    if (align > unit && ca_add_overflows(size, align - unit, &total))
        return ENOMEM;
    int err = ca_source_fault_hit(s->fault, CA_SOURCE_FAULT_MMAP, total);
    return err ? err : ca_os_map_aligned(size, align, unit, prot, flags, out);
}

/* One hugetlb rung, unless it was refused within the last
 * CA_SOURCE_HUGE_RETRY mappings. */
static bool try_hugetlb(ca_source_mmap *s, int rung, size_t size, size_t align, size_t unit, int prot, int flags,
                        void **out)
{
    unsigned left = __atomic_load_n(&s->huge_skip[rung], __ATOMIC_RELAXED);
    if (left) {
        __atomic_compare_exchange_n(&s->huge_skip[rung], &left, left - 1, false, __ATOMIC_RELAXED,
                                    __ATOMIC_RELAXED);
        return false;
    }
    if (map_aligned(s, size, align, unit, prot, flags, out) == 0)
        return true;
    __atomic_store_n(&s->huge_skip[rung], CA_SOURCE_HUGE_RETRY, __ATOMIC_RELAXED);
    __atomic_add_fetch(&s->huge_refused, 1, __ATOMIC_RELAXED);
    return false;
}

/* The ladder. Each hugetlb rung is tried only when size is a multiple of its
 * page; a refused rung (no reserved pages: ENOMEM, unsupported size: EINVAL)
 * falls to the next. The THP rung maps base pages aligned to 2 MiB and asks
 * for MADV_HUGEPAGE; a refused hint leaves a base mapping. */
static int map_ladder(ca_source_mmap *s, size_t size, size_t align, int prot, void **out, unsigned *kind)
{
    size_t page = ca_page_size();
    int flags = MAP_PRIVATE | MAP_ANONYMOUS;
    if ((s->flags & CA_SOURCE_MMAP_NORESERVE) || prot == PROT_NONE)
        flags |= MAP_NORESERVE;
    /* hugetlb rungs never take MAP_NORESERVE: without a reservation the
     * mapping succeeds with no pages behind it and a later fault is SIGBUS. */
    int hflags = (flags & ~MAP_NORESERVE) | MAP_HUGETLB;
    if (s->huge >= CA_SOURCE_HUGE_1G && size % CA_SOURCE__1G == 0 &&
        try_hugetlb(s, 0, size, align, CA_SOURCE__1G, prot, hflags | MAP_HUGE_1GB, out)) {
        *kind = CA_SOURCE_PAGE_1G;
        return 0;
    }
    if (s->huge >= CA_SOURCE_HUGE_2M && size % CA_SOURCE__2M == 0 &&
        try_hugetlb(s, 1, size, align, CA_SOURCE__2M, prot, hflags | MAP_HUGE_2MB, out)) {
        *kind = CA_SOURCE_PAGE_2M;
        return 0;
    }
    if (s->huge >= CA_SOURCE_HUGE_THP && size >= CA_SOURCE__2M) {
        int err = map_aligned(s, size, align > CA_SOURCE__2M ? align : CA_SOURCE__2M, page, prot, flags, out);
        if (err)
            return err;
        *kind = ca_source_fault_hit(s->fault, CA_SOURCE_FAULT_MADVISE, size) == 0 &&
                        ca_os_advise(*out, size, MADV_HUGEPAGE) == 0
                    ? CA_SOURCE_PAGE_THP
                    : CA_SOURCE_PAGE_BASE;
        return 0;
    }
    *kind = CA_SOURCE_PAGE_BASE;
    return map_aligned(s, size, align, page, prot, flags, out);
}

/* Prefault a read/write range: MADV_POPULATE_WRITE (Linux 5.14+), else touch
 * one byte per page. */
static int populate(ca_source_mmap *s, void *p, size_t size, size_t page)
{
    int err = ca_source_fault_hit(s->fault, CA_SOURCE_FAULT_MADVISE, size);
    if (err)
        return err;
    if ((err = ca_os_advise(p, size, MADV_POPULATE_WRITE)) != EINVAL)
        return err;
    for (size_t off = 0; off < size; off += page)
        __atomic_fetch_add((char *)p + off, 0, __ATOMIC_RELAXED);
    return 0;
}

/* Populate and lock a read/write range as the options say. */
static int make_usable(ca_source_mmap *s, void *p, size_t size, unsigned kind)
{
    int err;
    if ((s->flags & CA_SOURCE_MMAP_POPULATE) && (err = populate(s, p, size, ca_source_page_kind_size(kind))))
        return err;
    if (s->flags & (CA_SOURCE_MMAP_LOCK | CA_SOURCE_MMAP_LOCK_TRY)) {
        err = ca_source_fault_hit(s->fault, CA_SOURCE_FAULT_MLOCK, size);
        if (!err && mlock(p, size) != 0)
            err = errno ? errno : ENOMEM;
        if (err) {
            if (s->flags & CA_SOURCE_MMAP_LOCK)
                return err;
            ca_source__add(&s->c.lock_failures, 1, true);
        }
    }
    return 0;
}

/* Name, no-dump and NUMA policy: what every new mapping gets. */
static int setup_range(ca_source_mmap *s, void *p, size_t size)
{
    int err;
    /* Kernels without CONFIG_ANON_VMA_NAME refuse the name with EINVAL:
     * asked once per process, not once per mapping. */
    static int names_refused;
    if (s->name[0] && !__atomic_load_n(&names_refused, __ATOMIC_RELAXED) &&
        prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, (unsigned long)p, size, (unsigned long)s->name) != 0 &&
        errno == EINVAL)
        __atomic_store_n(&names_refused, 1, __ATOMIC_RELAXED);
    if (s->flags & CA_SOURCE_MMAP_NODUMP) {
        if ((err = ca_source_fault_hit(s->fault, CA_SOURCE_FAULT_MADVISE, size)))
            return err;
        if ((err = ca_os_advise(p, size, MADV_DONTDUMP)))
            return err;
    }
    if (s->numa_mode != CA_SOURCE_NUMA_DEFAULT) {
        if ((err = ca_source_fault_hit(s->fault, CA_SOURCE_FAULT_MBIND, size)))
            return err;
        if ((err = ca_source__numa_apply_raw(p, size, s->numa_mode, s->numa_nodes, s->numa_maxnode)))
            return err;
    }
    return 0;
}

static void count_kind(ca_source_mmap *s, unsigned kind)
{
    uint64_t *f = kind == CA_SOURCE_PAGE_1G    ? &s->c.huge_1g
                  : kind == CA_SOURCE_PAGE_2M  ? &s->c.huge_2m
                  : kind == CA_SOURCE_PAGE_THP ? &s->c.thp
                                               : &s->c.base;
    ca_source__add(f, 1, true);
    __atomic_store_n(&s->c.last_page_size, (uint64_t)ca_source_page_kind_size(kind), __ATOMIC_RELAXED);
    __atomic_store_n(&s->last_kind, kind, __ATOMIC_RELAXED);
}

/* obtain (usable) or reserve (PROT_NONE) one mapping. */
static int map_new(ca_source_mmap *s, size_t size, size_t align, bool usable, void **out, unsigned *kind_out)
{
    int err = ca_source_check_request(&s->base, size, align);
    if (!err)
        err = ca_source_fault_hit(s->fault, usable ? CA_SOURCE_FAULT_OBTAIN : CA_SOURCE_FAULT_RESERVE, size);
    void *p = NULL;
    unsigned kind = CA_SOURCE_PAGE_BASE;
    if (!err)
        err = map_ladder(s, size, align, usable ? PROT_READ | PROT_WRITE : PROT_NONE, &p, &kind);
    if (err)
        return ca_source__fail(&s->c, err, true);
    err = setup_range(s, p, size);
    if (!err && usable)
        err = make_usable(s, p, size, kind);
    if (!err)
        err = ca_source__track_add(&s->track, p, size, usable ? size : 0, usable ? 0 : CA_SOURCE__R_RESERVED);
    if (err) {
        (void)ca_os_unmap(p, size);
        return ca_source__fail(&s->c, err, true);
    }
    count_kind(s, kind);
    ca_source__count_new(&s->c, size, usable);
    *out = p;
    if (kind_out)
        *kind_out = kind;
    CA_SOURCE__FULL(&s->base, mmap);
    return 0;
}

static int mmap_obtain(ca_source *src, size_t size, size_t align, void **out)
{
    return map_new(from(src), size, align, true, out, NULL);
}

int ca_source_mmap_obtain_ex(ca_source_mmap *s, size_t size, size_t align, void **out, unsigned *kind)
{
    return map_new(s, size, align, true, out, kind);
}

static int mmap_reserve(ca_source *src, size_t size, size_t align, void **out)
{
    return map_new(from(src), size, align, false, out, NULL);
}

/* A (p, size) argument of release / commit / decommit: page-aligned, > 0. */
static int range_arg(const ca_source *src, const void *p, size_t size)
{
    return p && size && ca_is_aligned((uintptr_t)p, src->granule) && size % src->granule == 0 ? 0 : EINVAL;
}

/* ---- placement at a given address ---------------------------------------- */

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

/* Map [addr, addr + size) read/write at exactly addr with base pages, set up
 * as obtain does. EEXIST when any page of it is mapped already (kernels
 * before 4.17 read MAP_FIXED_NOREPLACE as a hint and may map elsewhere: that
 * mapping is undone and also reported as EEXIST). */
static int map_fixed(ca_source_mmap *s, void *addr, size_t size)
{
    int err = ca_source_fault_hit(s->fault, CA_SOURCE_FAULT_MMAP, size);
    if (err)
        return err;
    int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE;
    if (s->flags & CA_SOURCE_MMAP_NORESERVE)
        flags |= MAP_NORESERVE;
    void *p;
    if ((err = ca_os_map(addr, size, PROT_READ | PROT_WRITE, flags, -1, 0, &p)))
        return err;
    if (p != addr) {
        (void)ca_os_unmap(p, size);
        return EEXIST;
    }
    err = setup_range(s, p, size);
    if (!err)
        err = make_usable(s, p, size, CA_SOURCE_PAGE_BASE);
    if (err)
        (void)ca_os_unmap(p, size);
    return err;
}

int ca_source_mmap_probe(void *addr, size_t size)
{
    if (!addr || !size || !ca_is_aligned((uintptr_t)addr, ca_page_size()) || size % ca_page_size())
        return EINVAL;
    void *p;
    int err = ca_os_map(addr, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE,
                        -1, 0, &p);
    if (err)
        return err == EEXIST ? EEXIST : ENOMEM;
    (void)ca_os_unmap(p, size);
    return p == addr ? 0 : EEXIST;
}

static void count_placed(ca_source_mmap *s, size_t size, bool new_range)
{
    if (new_range) {
        count_kind(s, CA_SOURCE_PAGE_BASE);
        ca_source__add(&s->c.obtains, 1, true);
    }
    ca_source__add(&s->c.reserved, size, true);
    ca_source__add(&s->c.committed, size, true);
    ca_source__in_use_add(&s->c, size, true);
}

int ca_source_mmap_obtain_at(ca_source_mmap *s, void *addr, size_t size)
{
    int err = range_arg(&s->base, addr, size);
    if (!err)
        err = ca_source_fault_hit(s->fault, CA_SOURCE_FAULT_OBTAIN, size);
    if (!err)
        err = map_fixed(s, addr, size);
    if (!err && (err = ca_source__track_add(&s->track, addr, size, size, 0)) != 0)
        (void)ca_os_unmap(addr, size);
    if (err)
        return ca_source__fail(&s->c, err, true);
    count_placed(s, size, true);
    CA_SOURCE__FULL(&s->base, mmap);
    return 0;
}

int ca_source_mmap_extend(ca_source_mmap *s, void *p, size_t size, size_t new_size)
{
    int err = range_arg(&s->base, p, size);
    if (!err && (new_size <= size || new_size % s->base.granule != 0 || (uintptr_t)p + new_size < (uintptr_t)p))
        err = EINVAL;
    if (!err && ca_source__track_exact(&s->track, p, size) != 0)
        err = ca_source__bad_range(p, "extend of a range this mmap source did not give out");
    if (!err)
        err = ca_source_fault_hit(s->fault, CA_SOURCE_FAULT_OBTAIN, new_size - size);
    if (!err)
        err = map_fixed(s, (char *)p + size, new_size - size);
    if (!err && (err = ca_source__track_extend(&s->track, p, size, new_size)) != 0)
        (void)ca_os_unmap((char *)p + size, new_size - size);
    if (err)
        return ca_source__fail(&s->c, err, true);
    count_placed(s, new_size - size, false);
    CA_SOURCE__FULL(&s->base, mmap);
    return 0;
}

static int mmap_release(ca_source *src, void *p, size_t size)
{
    ca_source_mmap *s = from(src);
    int err = range_arg(src, p, size);
    if (!err)
        err = ca_source_fault_hit(s->fault, CA_SOURCE_FAULT_RELEASE, size);
    if (!err)
        err = ca_source_fault_hit(s->fault, CA_SOURCE_FAULT_MMAP, size);
    ca_source__range r;
    if (!err)
        err = ca_source__track_release(&s->track, p, size, "release of a range this mmap source did not give out",
                                       &r);
    if (err)
        return ca_source__fail(&s->c, err, true);
    if ((err = ca_os_unmap(p, size))) {
        ca_source__track_put_back(&s->track, p, size, &r);
        return ca_source__fail(&s->c, err, true);
    }
    ca_source__count_release(&s->c, size, r.committed, (r.flags & CA_SOURCE__R_RESERVED) != 0);
    CA_SOURCE__FULL(src, mmap);
    return 0;
}

static int mmap_commit(ca_source *src, void *p, size_t size)
{
    ca_source_mmap *s = from(src);
    int err = range_arg(src, p, size);
    unsigned flags = 0;
    if (!err)
        err = ca_source__track_change(&s->track, s->fault, CA_SOURCE_FAULT_COMMIT, p, size, &flags,
                                      "commit outside the ranges of this mmap source");
    /* Only a reserved range (mapped PROT_NONE) needs its protection changed:
     * an obtained one is readable and writable from its mapping on, and a
     * decommit (madvise) keeps that, so committing it again is no system
     * call (the decommit/commit cycle of an allocator's blocks costs one
     * madvise, not two calls). */
    if (!err && (flags & CA_SOURCE__R_RESERVED))
        err = ca_source_fault_hit(s->fault, CA_SOURCE_FAULT_MMAP, size);
    if (!err && (flags & CA_SOURCE__R_RESERVED))
        err = ca_os_protect(p, size, PROT_READ | PROT_WRITE);
    if (!err)
        err = make_usable(s, p, size, CA_SOURCE_PAGE_BASE);
    if (err)
        return ca_source__fail(&s->c, err, true);
    ca_source__track_committed(&s->track, &s->c, p, size, true);
    CA_SOURCE__FULL(src, mmap);
    return 0;
}

static int mmap_decommit(ca_source *src, void *p, size_t size)
{
    ca_source_mmap *s = from(src);
    int err = range_arg(src, p, size);
    if (!err)
        err = ca_source__track_change(&s->track, s->fault, CA_SOURCE_FAULT_DECOMMIT, p, size, NULL,
                                      "decommit outside the ranges of this mmap source");
    if (!err)
        err = ca_source_fault_hit(s->fault, CA_SOURCE_FAULT_MADVISE, size);
    if (err)
        return ca_source__fail(&s->c, err, true);
    /* Locked pages refuse MADV_DONTNEED: unlock first (commit locks again). */
    if (s->flags & (CA_SOURCE_MMAP_LOCK | CA_SOURCE_MMAP_LOCK_TRY))
        (void)munlock(p, size);
    int rc = -1;
    if (s->decommit == CA_SOURCE_DECOMMIT_FREE)
        rc = ca_os_advise(p, size, MADV_FREE); /* refused on hugetlb and old kernels */
    if (rc != 0 && (err = ca_os_advise(p, size, MADV_DONTNEED)))
        return ca_source__fail(&s->c, err, true);
    ca_source__track_committed(&s->track, &s->c, p, size, false);
    CA_SOURCE__FULL(src, mmap);
    return 0;
}

static int mmap_stats(const ca_source *src, ca_stats *out)
{
    CA_STATS_COUNTERS(CA_SOURCE_MMAP_COUNTERS);
    const ca_source_mmap *s = (const ca_source_mmap *)(const void *)src;
    ca_source__fill_stats(out, mmap_ops.name, &s->c, s->fault);
    CA_STATS_SET(out, huge_refused, __atomic_load_n(&s->huge_refused, __ATOMIC_RELAXED));
    return 0;
}

/* ---- create / destroy ---------------------------------------------------- */

static bool name_ok(const char *n)
{
    size_t len = strlen(n);
    if (len >= CA_SOURCE_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)n[i];
        if (c < 0x20 || c > 0x7e || c == '[' || c == ']' || c == '\\' || c == '`' || c == '$')
            return false;
    }
    return true;
}

int ca_source_mmap_init(ca_source_mmap *s, const ca_source_mmap_options *o)
{
    static const ca_source_mmap_options dflt;
    if (!o)
        o = &dflt;
    int err = ca_source__init_start(s, o->fault);
    if (err)
        return err;
    if ((o->flags & ~KNOWN_FLAGS) || o->huge > CA_SOURCE_HUGE_1G || o->decommit > CA_SOURCE_DECOMMIT_FREE ||
        ((o->flags & CA_SOURCE_MMAP_LOCK) && (o->flags & CA_SOURCE_MMAP_LOCK_TRY)) ||
        (o->name && !name_ok(o->name)))
        return EINVAL;
    if ((err = ca_source_numa_validate(&o->numa)))
        return err;
    memset(s, 0, sizeof *s);
    s->base.ops = &mmap_ops;
    s->base.granule = ca_page_size();
    s->flags = o->flags;
    s->huge = o->huge;
    s->decommit = o->decommit;
    s->numa_mode = o->numa.mode;
    if (o->numa.mode != CA_SOURCE_NUMA_DEFAULT) {
        /* validate() accepted no bit at or beyond CA_SOURCE_NUMA_MAX_NODES. */
        const size_t bpw = 8 * sizeof(unsigned long);
        for (size_t i = 0; i < o->numa.maxnode && i < CA_SOURCE_NUMA_MAX_NODES; i++)
            if ((o->numa.nodes[i / bpw] >> (i % bpw)) & 1ul) {
                s->numa_nodes[i / bpw] |= 1ul << (i % bpw);
                s->numa_maxnode = i + 1;
            }
    }
    if (o->name)
        memcpy(s->name, o->name, strlen(o->name) + 1);
    s->fault = o->fault;
    ca_source__track_init(&s->track);
    return 0;
}

void ca_source_mmap_destroy(ca_source_mmap *s)
{
    if (!s)
        return;
    ca_source__track_destroy(&s->track);
    s->base.ops = NULL;
}

static ca_source_mmap global_source;
static pthread_once_t global_once = PTHREAD_ONCE_INIT;

static void global_init(void) { (void)ca_source_mmap_init(&global_source, NULL); }

ca_source *ca_source_mmap_global(void)
{
    pthread_once(&global_once, global_init);
    return &global_source.base;
}

unsigned ca_source_mmap_last_kind(const ca_source_mmap *s)
{
    return __atomic_load_n(&s->last_kind, __ATOMIC_RELAXED);
}

const char *ca_source__mmap_check(const ca_source *src, bool totals)
{
    ca_source_mmap *s = (ca_source_mmap *)(void *)(uintptr_t)src;
    uint64_t bytes, committed;
    const char *msg = ca_source__track_check(&s->track, &bytes, &committed);
    if (msg || !totals)
        return msg;
    if (bytes != __atomic_load_n(&s->c.reserved, __ATOMIC_RELAXED))
        return "mmap source: reserved bytes differ from the record";
    if (committed != __atomic_load_n(&s->c.committed, __ATOMIC_RELAXED))
        return "mmap source: committed bytes differ from the record";
    if (__atomic_load_n(&s->c.in_use, __ATOMIC_RELAXED) > bytes)
        return "mmap source: bytes in use exceed bytes reserved";
    if (s->base.granule != ca_page_size())
        return "mmap source: granule is not the page size";
    return NULL;
}

int ca_source_mmap_shrink(ca_source_mmap *s, void *p, size_t size, size_t new_size)
{
    if (new_size == 0)
        return ca_source_release(&s->base, p, size);
    int err = range_arg(&s->base, p, size);
    if (!err && (new_size >= size || new_size % s->base.granule != 0))
        err = EINVAL;
    if (!err)
        err = ca_source_fault_hit(s->fault, CA_SOURCE_FAULT_RELEASE, size - new_size);
    if (!err && ca_source__track_exact(&s->track, p, size) != 0)
        err = ca_source__bad_range(p, "shrink of a range this mmap source did not give out");
    if (err)
        return ca_source__fail(&s->c, err, true);
    size_t dropped = 0;
    if (ca_source__track_shrink(&s->track, p, size, new_size, &dropped) != 0)
        return ca_source__fail(
            &s->c, ca_source__bad_range(p, "shrink of a range this mmap source did not give out"), true);
    if ((err = ca_os_unmap((char *)p + new_size, size - new_size))) {
        /* Only EINVAL (or an injected failure) can come here (the arguments
         * were checked): keep the record as it was. */
        (void)ca_source__track_extend(&s->track, p, new_size, size);
        return ca_source__fail(&s->c, err, true);
    }
    ca_source__sub(&s->c.reserved, size - new_size, true);
    ca_source__sub(&s->c.committed, dropped, true);
    ca_source__sub(&s->c.in_use, size - new_size, true);
    CA_SOURCE__FULL(&s->base, mmap);
    return 0;
}
