/* SPDX-License-Identifier: MIT */
/*
 * Placement in the anonymous mmap source: ca_source_mmap_probe,
 * ca_source_mmap_obtain_at, ca_source_mmap_extend and ca_source_mmap_shrink.
 * Free addresses, mappings of others (never replaced, contents intact),
 * growth in place with the old contents kept and the new pages zero, the
 * tail given back, argument errors (with checks=on, a range the source never
 * gave out aborts instead of returning EINVAL), RLIMIT_AS refusals in a
 * forked child, and injected faults that leave nothing mapped or changed.
 *
 * Addresses: each test takes a window in [0x300000000000, 0x3f0000000000) at
 * a fixed base plus a per-test offset, probed first; an occupied window moves
 * on by 1 GiB. Whether a page is mapped is asked of the kernel directly
 * (mincore, or msync in the RLIMIT_AS child: ENOMEM for an unmapped page),
 * not of the functions under test.
 */
#include <ctxalloc/source.h>

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ca_death.h"
#include "ca_test.h"
#include "source_test.h"

static size_t page;
static void setup(void) { page = ca_page_size(); }
TestSuite(source_placed, .init = setup);

#define KIB ((size_t)1 << 10)
#define MIB ((size_t)1 << 20)

#define PLACE_BASE ((uintptr_t)0x300000000000ull)
#define PLACE_END  ((uintptr_t)0x3f0000000000ull)
#define PLACE_SLOT ((uintptr_t)1 << 36) /* 64 GiB per test */
#define PLACE_STEP ((uintptr_t)1 << 30) /* next try after an occupied window */

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

/* A free window of len bytes for the test numbered slot. */
static char *free_window(unsigned slot, size_t len)
{
    for (uintptr_t k = 0; k < 64; k++) {
        uintptr_t a = PLACE_BASE + (uintptr_t)slot * PLACE_SLOT + k * PLACE_STEP;
        cr_assert_leq(a + len, PLACE_END);
        int e = ca_source_mmap_probe((void *)a, len);
        if (e == 0)
            return (char *)a;
        cr_assert_eq(e, EEXIST, "probe of %#lx: %d", (unsigned long)a, e);
    }
    cr_assert_fail("no free window for slot %u", slot);
    return NULL;
}

/* Whether the page at p is mapped, asked of the kernel: mincore fails with
 * ENOMEM on an unmapped page (msync would too, but valgrind reports an msync
 * of unmapped memory as an error; mincore it passes through). */
static bool page_mapped(const void *p)
{
    unsigned char vec;
    if (mincore((void *)(uintptr_t)p, 1, &vec) == 0)
        return true;
    if (errno != ENOMEM)
        abort(); /* EINVAL etc.: a bug of the test */
    return false;
}

/* Pages of [p, p + len) that are mapped. No allocation: usable in a child
 * under RLIMIT_AS. */
static size_t mapped_pages(const void *p, size_t len)
{
    size_t n = 0;
    for (size_t off = 0; off < len; off += page)
        n += page_mapped((const char *)p + off);
    return n;
}

/* A mapping of someone else (plain mmap) at exactly addr. */
static char *foreign_at(void *addr, size_t len)
{
    void *q = mmap(addr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    cr_assert_neq(q, MAP_FAILED, "mmap at %p: %s", addr, strerror(errno));
    if (q != addr) { /* kernel before 4.17: a hint */
        munmap(q, len);
        cr_assert_fail("mmap at %p landed at %p", addr, q);
    }
    return (char *)q;
}

static bool all_zero(const void *p, size_t len)
{
    const unsigned char *b = (const unsigned char *)p;
    for (size_t i = 0; i < len; i++)
        if (b[i])
            return false;
    return true;
}

static void mk(ca_source_mmap *m, unsigned flags, ca_source_fault *f)
{
    ca_source_mmap_options o;
    memset(&o, 0, sizeof o);
    o.flags = flags;
    o.fault = f;
    cr_assert_eq(ca_source_mmap_init(m, &o), 0);
}

static ca_stats stats_of(ca_source_mmap *m)
{
    ca_stats st;
    cr_assert_eq(ca_source_stats(&m->base, &st), 0);
    return st;
}

static uint64_t counter(const ca_stats *st, const char *name)
{
    uint64_t v = 0;
    cr_assert(ca_stats_get_counter(st, name, &v), "no counter %s", name);
    return v;
}

/* in_use, reserved and committed all equal to n; the record consistent. */
static void expect_bytes(ca_source_mmap *m, size_t n)
{
    ca_stats st = stats_of(m);
    cr_assert_eq(st.bytes_in_use, n, "in use %lu, expected %zu", (unsigned long)st.bytes_in_use, n);
    cr_assert_eq(st.bytes_reserved, n, "reserved %lu, expected %zu", (unsigned long)st.bytes_reserved, n);
    cr_assert_eq(st.bytes_committed, n, "committed %lu, expected %zu", (unsigned long)st.bytes_committed, n);
    const char *msg = ca_source_check(&m->base);
    cr_assert_null(msg, "check: %s", msg);
}

/* Death tests: with checks=on the call aborts with one line naming the
 * misuse; with checks=off it returns EINVAL (the child aborts otherwise). */
#define PREFIX "ctxalloc: source: "

static void expect_refused(void (*fn)(void *), void *arg, const char *what)
{
    ca_death_result r = ca_death_run(fn, arg);
    if (CA_CHECKS >= CA_CHECKS_ON) {
        cr_assert(r.aborted, "%s: no abort; output: %s", what, r.out);
        char line[256];
        snprintf(line, sizeof line, PREFIX "%s", what);
        cr_assert(ca_death_has_line(&r, line), "output: %s", r.out);
    } else {
        cr_assert(r.exited0, "%s: checks=off must return EINVAL; output: %s", what, r.out);
    }
}

/* ---- probe ---------------------------------------------------------------- */

Test(source_placed, probe)
{
    /* A hole the kernel just handed out and took back. */
    void *hole = mmap(NULL, 64 * KIB, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(hole, MAP_FAILED);
    cr_assert_eq(munmap(hole, 64 * KIB), 0);
    cr_assert_eq(ca_source_mmap_probe(hole, 64 * KIB), 0);
    cr_assert_eq(mapped_pages(hole, 64 * KIB), 0, "the probe leaves nothing mapped");

    /* A mapped range, whole or in part; the mapping is untouched. */
    char *w = free_window(0, 256 * KIB);
    char *q = foreign_at(w + 64 * KIB, 64 * KIB);
    ca_test_fill(q, 64 * KIB, 1);
    cr_assert_eq(ca_source_mmap_probe(q, 64 * KIB), EEXIST);
    cr_assert_eq(ca_source_mmap_probe(q + 60 * KIB, page), EEXIST, "last page");
    cr_assert_eq(ca_source_mmap_probe(w, 128 * KIB), EEXIST, "free head, mapped tail");
    cr_assert_eq(ca_source_mmap_probe(w + 124 * KIB, 128 * KIB), EEXIST, "mapped head, free tail");
    cr_assert_eq(ca_source_mmap_probe(w, 64 * KIB), 0, "just below the mapping");
    cr_assert_eq(ca_source_mmap_probe(w + 128 * KIB, 128 * KIB), 0, "just above the mapping");
    cr_assert(ca_test_verify(q, 64 * KIB, 1), "the probed mapping keeps its contents");
    cr_assert_eq(mapped_pages(w, 256 * KIB), 64 * KIB / page, "only the foreign mapping is mapped");
    cr_assert_eq(munmap(q, 64 * KIB), 0);
    cr_assert_eq(ca_source_mmap_probe(w, 256 * KIB), 0);

    /* Arguments. */
    cr_assert_eq(ca_source_mmap_probe(w + 1, page), EINVAL, "unaligned address");
    cr_assert_eq(ca_source_mmap_probe(w + page / 2, page), EINVAL, "unaligned address");
    cr_assert_eq(ca_source_mmap_probe(w, 0), EINVAL, "zero size");
    cr_assert_eq(ca_source_mmap_probe(w, page + 1), EINVAL, "size not a page multiple");
    cr_assert_eq(ca_source_mmap_probe(w, 100), EINVAL, "size below a page");
    cr_assert_eq(ca_source_mmap_probe(NULL, page), EINVAL, "NULL address");
    cr_assert_eq(mapped_pages(w, 256 * KIB), 0);
}

/* ---- obtain_at -------------------------------------------------------------- */

Test(source_placed, obtain_at_free_address)
{
    ca_source_mmap m;
    mk(&m, 0, NULL);
    char *w = free_window(1, 256 * KIB);
    char *p = w + 64 * KIB;
    cr_assert_eq(ca_source_mmap_obtain_at(&m, p, 64 * KIB), 0);
    cr_assert_eq(mapped_pages(w, 256 * KIB), 64 * KIB / page, "exactly [p, p + 64 KiB) mapped");
    cr_assert_eq(mapped_pages(p, 64 * KIB), 64 * KIB / page);
    cr_assert(smaps_has_flag(p, "rd") && smaps_has_flag(p, "wr"), "read/write");
    cr_assert(all_zero(p, 64 * KIB), "zero-filled");
    ca_test_fill(p, 64 * KIB, 2);
    cr_assert(ca_test_verify(p, 64 * KIB, 2));
    cr_assert_eq(ca_source_mmap_probe(p, 64 * KIB), EEXIST);

    expect_bytes(&m, 64 * KIB);
    ca_stats st = stats_of(&m);
    cr_assert_eq(st.allocs, 1);
    cr_assert_eq(st.frees, 0);
    cr_assert_eq(st.failures, 0);
    cr_assert_eq(st.peak_in_use, 64 * KIB);
    cr_assert_eq(counter(&st, "base"), 1, "a base-page mapping");
    cr_assert_eq(counter(&st, "page_size"), page);

    /* A second, adjacent range is a range of its own. */
    cr_assert_eq(ca_source_mmap_obtain_at(&m, w, 64 * KIB), 0);
    expect_bytes(&m, 128 * KIB);
    cr_assert(ca_test_verify(p, 64 * KIB, 2));

    /* Released like any other range. */
    cr_assert_eq(ca_source_release(&m.base, p, 64 * KIB), 0);
    cr_assert_eq(ca_source_release(&m.base, w, 64 * KIB), 0);
    expect_bytes(&m, 0);
    st = stats_of(&m);
    cr_assert_eq(st.frees, 2);
    cr_assert_eq(mapped_pages(w, 256 * KIB), 0);
    ca_source_mmap_destroy(&m);
}

Test(source_placed, obtain_at_over_mapping_is_eexist)
{
    ca_source_mmap m;
    mk(&m, 0, NULL);
    char *w = free_window(2, 512 * KIB);

    /* Someone else's page in the middle of the range. */
    char *q = foreign_at(w + 128 * KIB, page);
    ca_test_fill(q, page, 3);
    cr_assert_eq(ca_source_mmap_obtain_at(&m, q - 32 * KIB, 64 * KIB), EEXIST);
    cr_assert(ca_test_verify(q, page, 3), "the foreign page keeps its contents");
    cr_assert(smaps_has_flag(q, "rd") && smaps_has_flag(q, "wr"), "and its protection");
    cr_assert_eq(mapped_pages(w, 256 * KIB), 1, "nothing mapped around it");
    /* ... at the first page, and at the last page. */
    cr_assert_eq(ca_source_mmap_obtain_at(&m, q, 64 * KIB), EEXIST);
    cr_assert_eq(ca_source_mmap_obtain_at(&m, q + page - 64 * KIB, 64 * KIB), EEXIST);
    cr_assert(ca_test_verify(q, page, 3));
    cr_assert_eq(mapped_pages(w, 256 * KIB), 1);
    expect_bytes(&m, 0);
    ca_stats st = stats_of(&m);
    cr_assert_eq(st.allocs, 0);
    cr_assert_eq(st.failures, 3);
    cr_assert_eq(munmap(q, page), 0);

    /* A range of the source itself is not replaced either. */
    char *p = w + 256 * KIB;
    cr_assert_eq(ca_source_mmap_obtain_at(&m, p, 64 * KIB), 0);
    ca_test_fill(p, 64 * KIB, 4);
    cr_assert_eq(ca_source_mmap_obtain_at(&m, p + 32 * KIB, 64 * KIB), EEXIST);
    cr_assert_eq(ca_source_mmap_obtain_at(&m, p - 32 * KIB, 64 * KIB), EEXIST);
    cr_assert_eq(ca_source_mmap_obtain_at(&m, p, 64 * KIB), EEXIST);
    cr_assert(ca_test_verify(p, 64 * KIB, 4), "the source's own range keeps its contents");
    cr_assert_eq(mapped_pages(p - 64 * KIB, 192 * KIB), 64 * KIB / page);
    expect_bytes(&m, 64 * KIB);
    cr_assert_eq(ca_source_release(&m.base, p, 64 * KIB), 0);
    expect_bytes(&m, 0);
    cr_assert_eq(mapped_pages(w, 512 * KIB), 0);
    ca_source_mmap_destroy(&m);
}

Test(source_placed, obtain_at_invalid_arguments)
{
    ca_source_mmap m;
    mk(&m, 0, NULL);
    char *w = free_window(3, 256 * KIB);
    cr_assert_eq(ca_source_mmap_obtain_at(&m, w + 1, 64 * KIB), EINVAL, "unaligned address");
    cr_assert_eq(ca_source_mmap_obtain_at(&m, w + page / 2, 64 * KIB), EINVAL, "unaligned address");
    cr_assert_eq(ca_source_mmap_obtain_at(&m, w, 64 * KIB + 1), EINVAL, "size not a page multiple");
    cr_assert_eq(ca_source_mmap_obtain_at(&m, w, 100), EINVAL, "size below a page");
    cr_assert_eq(ca_source_mmap_obtain_at(&m, w, 0), EINVAL, "zero size");
    cr_assert_eq(ca_source_mmap_obtain_at(&m, NULL, 64 * KIB), EINVAL, "NULL address");
    cr_assert_eq(mapped_pages(w, 256 * KIB), 0);
    expect_bytes(&m, 0);
    ca_stats st = stats_of(&m);
    cr_assert_eq(st.allocs, 0);
    ca_source_mmap_destroy(&m);
}

/* ---- extend ----------------------------------------------------------------- */

Test(source_placed, extend_keeps_contents_and_maps_zero_pages)
{
    ca_source_mmap m;
    mk(&m, 0, NULL);
    char *w = free_window(4, 512 * KIB);
    cr_assert_eq(ca_source_mmap_obtain_at(&m, w, 64 * KIB), 0);
    ca_test_fill(w, 64 * KIB, 5);

    cr_assert_eq(ca_source_mmap_extend(&m, w, 64 * KIB, 192 * KIB), 0);
    cr_assert_eq(mapped_pages(w, 512 * KIB), 192 * KIB / page, "exactly [w, w + 192 KiB) mapped");
    cr_assert(ca_test_verify(w, 64 * KIB, 5), "the old contents are intact");
    cr_assert(all_zero(w + 64 * KIB, 128 * KIB), "the new pages read zero");
    cr_assert(smaps_has_flag(w + 64 * KIB, "rd") && smaps_has_flag(w + 64 * KIB, "wr"));
    ca_test_fill(w + 64 * KIB, 128 * KIB, 6);
    cr_assert(ca_test_verify(w + 64 * KIB, 128 * KIB, 6), "the new pages are writable");
    cr_assert(ca_test_verify(w, 64 * KIB, 5));
    expect_bytes(&m, 192 * KIB);
    ca_stats st = stats_of(&m);
    cr_assert_eq(st.allocs, 1, "an extension is not a new obtain");
    cr_assert_eq(st.peak_in_use, 192 * KIB);

    /* Again, by a page; then the range is one range for decommit/commit. */
    cr_assert_eq(ca_source_mmap_extend(&m, w, 192 * KIB, 192 * KIB + page), 0);
    expect_bytes(&m, 192 * KIB + page);
    cr_assert(all_zero(w + 192 * KIB, page));
    cr_assert_eq(ca_source_decommit(&m.base, w, 192 * KIB + page), 0);
    st = stats_of(&m);
    cr_assert_eq(st.bytes_committed, 0);
    cr_assert_eq(ca_source_commit(&m.base, w, 192 * KIB + page), 0);
    expect_bytes(&m, 192 * KIB + page);

    /* Released whole, with its new size. */
    cr_assert_eq(ca_source_release(&m.base, w, 192 * KIB + page), 0);
    expect_bytes(&m, 0);
    cr_assert_eq(mapped_pages(w, 512 * KIB), 0);
    ca_source_mmap_destroy(&m);
}

Test(source_placed, extend_into_mapped_pages_is_eexist)
{
    ca_source_mmap m;
    mk(&m, 0, NULL);
    char *w = free_window(5, 512 * KIB);
    cr_assert_eq(ca_source_mmap_obtain_at(&m, w, 64 * KIB), 0);
    ca_test_fill(w, 64 * KIB, 7);

    /* A page of someone else right after the range. */
    char *q = foreign_at(w + 64 * KIB, page);
    ca_test_fill(q, page, 8);
    cr_assert_eq(ca_source_mmap_extend(&m, w, 64 * KIB, 192 * KIB), EEXIST);
    cr_assert(ca_test_verify(q, page, 8), "the foreign page is untouched");
    cr_assert(ca_test_verify(w, 64 * KIB, 7), "the range is untouched");
    cr_assert_eq(mapped_pages(q + page, 128 * KIB - page), 0, "nothing mapped after the foreign page");
    expect_bytes(&m, 64 * KIB);
    cr_assert_eq(munmap(q, page), 0);

    /* A page of someone else at the far end: the pages before it that the
     * extension could map must not stay mapped. */
    q = foreign_at(w + 192 * KIB - page, page);
    ca_test_fill(q, page, 9);
    cr_assert_eq(ca_source_mmap_extend(&m, w, 64 * KIB, 192 * KIB), EEXIST);
    cr_assert(ca_test_verify(q, page, 9));
    cr_assert_eq(mapped_pages(w + 64 * KIB, 128 * KIB - page), 0, "no partial extension");
    cr_assert(ca_test_verify(w, 64 * KIB, 7));
    expect_bytes(&m, 64 * KIB);
    ca_stats st = stats_of(&m);
    cr_assert_eq(st.failures, 2);
    cr_assert_eq(munmap(q, page), 0);

    /* The range is still (w, 64 KiB): released with the old size. */
    cr_assert_eq(ca_source_release(&m.base, w, 64 * KIB), 0);
    expect_bytes(&m, 0);
    cr_assert_eq(mapped_pages(w, 512 * KIB), 0);
    ca_source_mmap_destroy(&m);
}

static void extend_foreign(void *arg)
{
    char *w = (char *)arg;
    ca_source_mmap m;
    if (ca_source_mmap_init(&m, NULL) != 0)
        _exit(2);
    void *q = mmap(w, 64 * KIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (q != w)
        _exit(3);
    int rc = ca_source_mmap_extend(&m, q, 64 * KIB, 128 * KIB);
    /* checks=off: refused, the pages after q left alone */
    if (rc != EINVAL || mapped_pages(w + 64 * KIB, 64 * KIB) != 0)
        abort();
}

static void extend_wrong_size(void *arg)
{
    char *w = (char *)arg;
    ca_source_mmap m;
    if (ca_source_mmap_init(&m, NULL) != 0 || ca_source_mmap_obtain_at(&m, w, 64 * KIB) != 0)
        _exit(2);
    int rc = ca_source_mmap_extend(&m, w, 128 * KIB, 192 * KIB);
    if (rc != EINVAL || mapped_pages(w + 64 * KIB, 128 * KIB) != 0 || ca_source_release(&m.base, w, 64 * KIB) != 0)
        abort();
}

/* A piece of a range (its head, or its last part) is not the range. */
static void extend_piece(void *arg)
{
    char *w = (char *)arg;
    ca_source_mmap m;
    if (ca_source_mmap_init(&m, NULL) != 0 || ca_source_mmap_obtain_at(&m, w, 192 * KIB) != 0)
        _exit(2);
    if (ca_source_mmap_extend(&m, w, 64 * KIB, 128 * KIB) != EINVAL ||
        ca_source_mmap_extend(&m, w + 128 * KIB, 64 * KIB, 128 * KIB) != EINVAL ||
        mapped_pages(w + 192 * KIB, 128 * KIB) != 0 || ca_source_release(&m.base, w, 192 * KIB) != 0)
        abort();
}

/* A reserved range is not an obtained one: neither extended nor shrunk
 * (the in-use count would be corrupted). */
static void resize_reserved(void *arg)
{
    (void)arg;
    ca_source_mmap m;
    void *r = NULL;
    if (ca_source_mmap_init(&m, NULL) != 0 || ca_source_reserve(&m.base, 128 * KIB, 4096, &r) != 0)
        _exit(2);
    if (ca_source_mmap_extend(&m, r, 128 * KIB, 256 * KIB) != EINVAL ||
        ca_source_mmap_shrink(&m, r, 128 * KIB, 64 * KIB) != EINVAL || ca_source_release(&m.base, r, 128 * KIB) != 0 ||
        ca_source_check(&m.base) != NULL)
        abort();
}

Test(source_placed, extend_or_shrink_of_a_piece_or_a_reservation_is_refused)
{
    char *w = free_window(13, 512 * KIB);
    expect_refused(extend_piece, w, "extend of a range this mmap source did not give out");
    expect_refused(resize_reserved, NULL, "extend of a range this mmap source did not give out");
}

Test(source_placed, extend_invalid_arguments)
{
    ca_source_mmap m;
    mk(&m, 0, NULL);
    char *w = free_window(6, 512 * KIB);
    cr_assert_eq(ca_source_mmap_obtain_at(&m, w, 64 * KIB), 0);
    ca_test_fill(w, 64 * KIB, 10);
    cr_assert_eq(ca_source_mmap_extend(&m, w, 64 * KIB, 64 * KIB), EINVAL, "same size");
    cr_assert_eq(ca_source_mmap_extend(&m, w, 64 * KIB, 32 * KIB), EINVAL, "smaller");
    cr_assert_eq(ca_source_mmap_extend(&m, w, 64 * KIB, 0), EINVAL, "zero");
    cr_assert_eq(ca_source_mmap_extend(&m, w, 64 * KIB, 128 * KIB + 1), EINVAL, "not a page multiple");
    cr_assert_eq(ca_source_mmap_extend(&m, w + 1, 64 * KIB, 128 * KIB), EINVAL, "unaligned address");
    cr_assert_eq(ca_source_mmap_extend(&m, w, 64 * KIB + 1, 128 * KIB), EINVAL, "unaligned size");
    cr_assert_eq(ca_source_mmap_extend(&m, w, 0, 128 * KIB), EINVAL, "zero size");
    cr_assert_eq(ca_source_mmap_extend(&m, w, 64 * KIB, SIZE_MAX - page + 1), EINVAL, "wraps around");
    cr_assert(ca_test_verify(w, 64 * KIB, 10));
    cr_assert_eq(mapped_pages(w, 512 * KIB), 64 * KIB / page, "nothing mapped after the range");
    expect_bytes(&m, 64 * KIB);
    cr_assert_eq(ca_source_release(&m.base, w, 64 * KIB), 0);
    expect_bytes(&m, 0);
    ca_source_mmap_destroy(&m);

    /* Not a range of the source: a plain mapping, or the size is wrong. */
    expect_refused(extend_foreign, w + 256 * KIB, "extend of a range this mmap source did not give out");
    expect_refused(extend_wrong_size, w + 256 * KIB, "extend of a range this mmap source did not give out");
}

/* ---- shrink ----------------------------------------------------------------- */

Test(source_placed, shrink_unmaps_the_tail)
{
    ca_source_mmap m;
    mk(&m, 0, NULL);
    char *w = free_window(7, 512 * KIB);
    cr_assert_eq(ca_source_mmap_obtain_at(&m, w, 192 * KIB), 0);
    ca_test_fill(w, 192 * KIB, 11);

    cr_assert_eq(ca_source_mmap_shrink(&m, w, 192 * KIB, 64 * KIB), 0);
    cr_assert_eq(mapped_pages(w + 64 * KIB, 128 * KIB), 0, "the tail is unmapped");
    cr_assert_eq(ca_source_mmap_probe(w + 64 * KIB, 128 * KIB), 0, "the tail is free address space");
    cr_assert_eq(mapped_pages(w, 64 * KIB), 64 * KIB / page);
    cr_assert(ca_test_verify(w, 64 * KIB, 11), "the head keeps its contents");
    expect_bytes(&m, 64 * KIB);
    ca_stats st = stats_of(&m);
    cr_assert_eq(st.frees, 0, "a shrink is not a release");

    /* The tail's address space can be had again, and the head grown back. */
    cr_assert_eq(ca_source_mmap_extend(&m, w, 64 * KIB, 128 * KIB), 0);
    cr_assert(all_zero(w + 64 * KIB, 64 * KIB), "the tail came back zero");
    cr_assert(ca_test_verify(w, 64 * KIB, 11));
    cr_assert_eq(ca_source_mmap_shrink(&m, w, 128 * KIB, 64 * KIB), 0);
    expect_bytes(&m, 64 * KIB);

    /* A shrink of a partly decommitted range keeps committed <= reserved. */
    cr_assert_eq(ca_source_mmap_extend(&m, w, 64 * KIB, 192 * KIB), 0);
    cr_assert_eq(ca_source_decommit(&m.base, w + 128 * KIB, 64 * KIB), 0);
    cr_assert_eq(ca_source_mmap_shrink(&m, w, 192 * KIB, 64 * KIB), 0);
    const char *msg = ca_source_check(&m.base);
    cr_assert_null(msg, "check: %s", msg);
    st = stats_of(&m);
    cr_assert_eq(st.bytes_in_use, 64 * KIB);
    cr_assert_eq(st.bytes_reserved, 64 * KIB);
    cr_assert_leq(st.bytes_committed, 64 * KIB);

    cr_assert_eq(ca_source_release(&m.base, w, 64 * KIB), 0);
    st = stats_of(&m);
    cr_assert_eq(st.bytes_in_use, 0);
    cr_assert_eq(st.bytes_reserved, 0);
    cr_assert_eq(st.bytes_committed, 0);
    cr_assert_null(ca_source_check(&m.base));
    cr_assert_eq(mapped_pages(w, 512 * KIB), 0);
    ca_source_mmap_destroy(&m);
}

Test(source_placed, shrink_to_zero_releases)
{
    ca_source_mmap m;
    mk(&m, 0, NULL);
    char *w = free_window(8, 512 * KIB);
    cr_assert_eq(ca_source_mmap_obtain_at(&m, w, 192 * KIB), 0);
    ca_test_fill(w, 192 * KIB, 12);
    cr_assert_eq(ca_source_mmap_shrink(&m, w, 192 * KIB, 0), 0);
    cr_assert_eq(mapped_pages(w, 512 * KIB), 0, "the whole range is unmapped");
    cr_assert_eq(ca_source_mmap_probe(w, 192 * KIB), 0);
    expect_bytes(&m, 0);
    ca_stats st = stats_of(&m);
    cr_assert_eq(st.frees, 1);
    /* The address can be obtained again, zero-filled. */
    cr_assert_eq(ca_source_mmap_obtain_at(&m, w, 192 * KIB), 0);
    cr_assert(all_zero(w, 192 * KIB));
    cr_assert_eq(ca_source_release(&m.base, w, 192 * KIB), 0);
    expect_bytes(&m, 0);
    ca_source_mmap_destroy(&m);
}

static void shrink_wrong_size(void *arg)
{
    char *w = (char *)arg;
    ca_source_mmap m;
    if (ca_source_mmap_init(&m, NULL) != 0 || ca_source_mmap_obtain_at(&m, w, 192 * KIB) != 0)
        _exit(2);
    int rc = ca_source_mmap_shrink(&m, w, 128 * KIB, 64 * KIB);
    /* checks=off: refused, nothing unmapped */
    if (rc != EINVAL || mapped_pages(w, 192 * KIB) != 192 * KIB / page || ca_source_release(&m.base, w, 192 * KIB) != 0)
        abort();
}

static void shrink_foreign(void *arg)
{
    char *w = (char *)arg;
    ca_source_mmap m;
    if (ca_source_mmap_init(&m, NULL) != 0)
        _exit(2);
    void *q = mmap(w, 128 * KIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (q != w)
        _exit(3);
    int rc = ca_source_mmap_shrink(&m, q, 128 * KIB, 64 * KIB);
    if (rc != EINVAL || mapped_pages(w, 128 * KIB) != 128 * KIB / page)
        abort();
}

Test(source_placed, shrink_invalid_arguments)
{
    ca_source_mmap m;
    mk(&m, 0, NULL);
    char *w = free_window(9, 512 * KIB);
    cr_assert_eq(ca_source_mmap_obtain_at(&m, w, 192 * KIB), 0);
    ca_test_fill(w, 192 * KIB, 13);
    cr_assert_eq(ca_source_mmap_shrink(&m, w, 192 * KIB, 192 * KIB), EINVAL, "same size");
    cr_assert_eq(ca_source_mmap_shrink(&m, w, 192 * KIB, 256 * KIB), EINVAL, "larger");
    cr_assert_eq(ca_source_mmap_shrink(&m, w, 192 * KIB, 64 * KIB + 1), EINVAL, "not a page multiple");
    cr_assert_eq(ca_source_mmap_shrink(&m, w + 1, 192 * KIB, 64 * KIB), EINVAL, "unaligned address");
    cr_assert_eq(ca_source_mmap_shrink(&m, w, 192 * KIB + 1, 64 * KIB), EINVAL, "unaligned size");
    cr_assert(ca_test_verify(w, 192 * KIB, 13));
    cr_assert_eq(mapped_pages(w, 512 * KIB), 192 * KIB / page, "nothing unmapped");
    expect_bytes(&m, 192 * KIB);
    cr_assert_eq(ca_source_release(&m.base, w, 192 * KIB), 0);
    expect_bytes(&m, 0);
    ca_source_mmap_destroy(&m);

    /* Not the range as it is: a wrong size, or a plain mapping. */
    expect_refused(shrink_wrong_size, w, "shrink of a range this mmap source did not give out");
    expect_refused(shrink_foreign, w, "shrink of a range this mmap source did not give out");
}

/* ---- limits ----------------------------------------------------------------- */

/* VmSize of the process in KiB, read without malloc. */
static long vm_size_kib(void)
{
    static char buf[8192];
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t n = 0;
    ssize_t k;
    while (n + 1 < sizeof buf && (k = read(fd, buf + n, sizeof buf - 1 - n)) > 0)
        n += (size_t)k;
    close(fd);
    buf[n] = '\0';
    const char *v = strstr(buf, "\nVmSize:");
    return v ? strtol(v + 8, NULL, 10) : -1;
}

/* The child: exit codes instead of Criterion asserts. */
static int limits_child(char *small, char *big)
{
    const size_t huge = 64 * MIB;
    ca_source_mmap m;
    if (ca_source_mmap_init(&m, NULL) != 0)
        return 10;
    /* Before the limit: the small range (and the record's own page). */
    if (ca_source_mmap_obtain_at(&m, small, 64 * KIB) != 0)
        return 11;
    ca_test_fill(small, 64 * KIB, 14);
    long vm = vm_size_kib();
    if (vm <= 0)
        return 12;
    struct rlimit rl;
    rl.rlim_cur = rl.rlim_max = (rlim_t)vm * 1024 + MIB;
    if (setrlimit(RLIMIT_AS, &rl) != 0)
        return 13;

    if (ca_source_mmap_obtain_at(&m, big, huge) != ENOMEM)
        return 20;
    errno = 0;
    if (msync(big, 4096, MS_ASYNC) != -1 || errno != ENOMEM)
        return 21;
    if (mapped_pages(big, huge) != 0)
        return 22;

    if (ca_source_mmap_extend(&m, small, 64 * KIB, 64 * KIB + huge) != ENOMEM)
        return 30;
    errno = 0;
    if (msync(small + 64 * KIB, 4096, MS_ASYNC) != -1 || errno != ENOMEM)
        return 31;
    if (mapped_pages(small + 64 * KIB, huge) != 0)
        return 32;
    if (!ca_test_verify(small, 64 * KIB, 14))
        return 33;
    ca_stats st;
    if (ca_source_stats(&m.base, &st) != 0 || st.bytes_in_use != 64 * KIB || st.bytes_reserved != 64 * KIB ||
        st.bytes_committed != 64 * KIB || st.failures != 2)
        return 34;
    if (ca_source_check(&m.base) != NULL)
        return 35;
    /* The range is still (small, 64 KiB). */
    if (ca_source_release(&m.base, small, 64 * KIB) != 0)
        return 36;
    if (mapped_pages(small, 64 * KIB) != 0)
        return 37;
    ca_source_mmap_destroy(&m);
    return 0;
}

Test(source_placed, limits_refuse_with_enomem)
{
    if (ca_test_under_valgrind())
        cr_skip_test("RLIMIT_AS against VmSize does not hold under valgrind's address-space manager");
    char *w = free_window(10, 256 * MIB);
    char *small = w, *big = w + 128 * MIB;
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0)
        _exit(limits_child(small, big));
    int st = 0;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st), "child died (signal %d)", WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    cr_assert_eq(WEXITSTATUS(st), 0, "child failed at step %d", WEXITSTATUS(st));
}

/* ---- fault plan ------------------------------------------------------------- */

/* One injected failure of obtain_at at `points`, with flags on the source. */
static void obtain_at_fault(unsigned slot, unsigned points, unsigned flags)
{
    ca_source_fault f;
    ca_source_fault_init(&f, points, 1, 1, EAGAIN);
    ca_source_mmap m;
    mk(&m, flags, &f);
    char *w = free_window(slot, 256 * KIB);
    cr_assert_eq(ca_source_mmap_obtain_at(&m, w, 64 * KIB), EAGAIN, "points %#x", points);
    cr_assert_eq(f.injected, 1);
    cr_assert_eq(mapped_pages(w, 256 * KIB), 0, "points %#x: nothing left mapped", points);
    expect_bytes(&m, 0);
    ca_stats st = stats_of(&m);
    cr_assert_eq(st.allocs, 0);
    cr_assert_eq(st.failures, 1);
    cr_assert_eq(counter(&st, "faults_injected"), 1);
    cr_assert_eq(counter(&st, "base"), 0, "no mapping counted");
    /* The plan is spent: the next call succeeds at the same address. */
    cr_assert_eq(ca_source_mmap_obtain_at(&m, w, 64 * KIB), 0);
    cr_assert(all_zero(w, 64 * KIB));
    expect_bytes(&m, 64 * KIB);
    cr_assert_eq(ca_source_release(&m.base, w, 64 * KIB), 0);
    expect_bytes(&m, 0);
    ca_source_mmap_destroy(&m);
}

/* One injected failure of extend at `points` (the obtain_at before it is
 * not counted: the plan starts after it). */
static void extend_fault(unsigned slot, unsigned points, unsigned flags)
{
    ca_source_fault f;
    ca_source_fault_init(&f, 0, 0, 0, EAGAIN);
    ca_source_mmap m;
    mk(&m, flags, &f);
    char *w = free_window(slot, 512 * KIB);
    cr_assert_eq(ca_source_mmap_obtain_at(&m, w, 64 * KIB), 0);
    ca_test_fill(w, 64 * KIB, 15);
    ca_source_fault_init(&f, points, 1, 1, EAGAIN);
    cr_assert_eq(ca_source_mmap_extend(&m, w, 64 * KIB, 192 * KIB), EAGAIN, "points %#x", points);
    cr_assert_eq(f.injected, 1);
    cr_assert_eq(mapped_pages(w + 64 * KIB, 448 * KIB), 0, "points %#x: nothing mapped after the range", points);
    cr_assert(ca_test_verify(w, 64 * KIB, 15), "the range is untouched");
    expect_bytes(&m, 64 * KIB);
    ca_stats st = stats_of(&m);
    cr_assert_eq(st.failures, 1);
    /* Still (w, 64 KiB): extended now that the plan is spent, or released. */
    cr_assert_eq(ca_source_mmap_extend(&m, w, 64 * KIB, 192 * KIB), 0);
    cr_assert(ca_test_verify(w, 64 * KIB, 15));
    cr_assert(all_zero(w + 64 * KIB, 128 * KIB));
    expect_bytes(&m, 192 * KIB);
    cr_assert_eq(ca_source_mmap_shrink(&m, w, 192 * KIB, 64 * KIB), 0);
    cr_assert_eq(ca_source_release(&m.base, w, 64 * KIB), 0);
    expect_bytes(&m, 0);
    ca_source_mmap_destroy(&m);
}

Test(source_placed, fault_in_obtain_at)
{
    obtain_at_fault(11, CA_SOURCE_FAULT_OBTAIN, 0);
    obtain_at_fault(12, CA_SOURCE_FAULT_MMAP, 0);
    /* A failing setup step after the mapping: the mapping is undone. */
    obtain_at_fault(13, CA_SOURCE_FAULT_MADVISE, CA_SOURCE_MMAP_NODUMP);
    obtain_at_fault(14, CA_SOURCE_FAULT_MADVISE, CA_SOURCE_MMAP_POPULATE);
}

Test(source_placed, fault_in_extend)
{
    extend_fault(15, CA_SOURCE_FAULT_OBTAIN, 0);
    extend_fault(16, CA_SOURCE_FAULT_MMAP, 0);
    extend_fault(17, CA_SOURCE_FAULT_MADVISE, CA_SOURCE_MMAP_NODUMP);
    extend_fault(18, CA_SOURCE_FAULT_MADVISE, CA_SOURCE_MMAP_POPULATE);
}
