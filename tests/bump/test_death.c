/* SPDX-License-Identifier: MIT */
/*
 * Bad input that the check tier catches. With checks=on (the library's
 * CA_CHECKS, passed to this file by tests/bump/meson.build) each case aborts
 * with one exact line; with checks=off each is the documented no-op or
 * EINVAL, and the bump stays intact.
 */
#include <criterion/criterion.h>
#include <ctxalloc/bump.h>
#if BUMP_TEST_HAVE_SOURCE
#include <ctxalloc/source.h>
#endif

#include "ca_death.h"

static ca_bump b1, b2;

static void init_two(void)
{
    ca_bump_init_allocator(&b1, ca_libc_allocator(), NULL);
    ca_bump_init_allocator(&b2, ca_libc_allocator(), NULL);
}

static void foreign_free(void *arg)
{
    init_two();
    void *p = ca_bump_alloc(&b2, 64, 8);
    ca_bump_alloc(&b2, 64, 8);
    ca_bump_alloc(&b1, 64, 8);
    ca_bump_free(&b1, p, 64);
    ca_bump_destroy(&b1);
    ca_bump_destroy(&b2);
}

static void foreign_resize(void *arg)
{
    init_two();
    static char x[64];
    ca_bump_alloc(&b1, 64, 8);
    ca_bump_resize(&b1, x, 64, 32, 8, 0);
}

static void rewind_other_bump(void *arg)
{
    init_two();
    ca_bump_mark m;
    ca_bump_save(&b2, &m);
    int e = ca_bump_rewind(&b1, &m);
    if (e != EINVAL)
        _exit(3);
}

static void rewind_twice(void *arg)
{
    init_two();
    ca_bump_mark m;
    ca_bump_save(&b1, &m);
    ca_bump_alloc(&b1, 10, 8);
    ca_bump_rewind(&b1, &m);
    int e = ca_bump_rewind(&b1, &m);
    if (e != EINVAL)
        _exit(3);
}

static void rewind_after_reset(void *arg)
{
    init_two();
    ca_bump_mark m;
    ca_bump_save(&b1, &m);
    ca_bump_reset(&b1);
    ca_bump_save(&b1, &m); /* the same record address, a new serial */
    ca_bump_mark old = m;
    old.serial--;
    int e = ca_bump_rewind(&b1, &old);
    if (e != EINVAL)
        _exit(3);
}

static void shared_foreign_free(void *arg)
{
    ca_bump_shared s;
    ca_bump_shared_init_allocator(&s, ca_libc_allocator(), NULL);
    ca_bump_shared_alloc(&s, 10, 8);
    static char x[64];
    ca_bump_shared_free(&s, x, 64);
    ca_bump_shared_destroy(&s);
}

static void cache_foreign_put(void *arg)
{
    ca_bump_cache c;
    ca_bump_cache_init_allocator(&c, ca_libc_allocator(), NULL, 1);
    static char buf[4096];
    ca_bump f;
    ca_bump_init_fixed(&f, buf, sizeof buf);
    ca_bump_cache_put(&c, &f);
}

typedef struct dcase {
    void (*fn)(void *);
    const char *line;
} dcase;

static const dcase cases[] = {
    {foreign_free, "ctxalloc: bump: free of a pointer that is not from this bump (address 0x"},
    {foreign_resize, "ctxalloc: bump: resize of a pointer that is not from this bump (address 0x"},
    {rewind_other_bump, "ctxalloc: bump: rewind to a mark of another bump (address 0x"},
    {rewind_twice, "ctxalloc: bump: rewind to a mark already rewound or reset (address 0x"},
    {rewind_after_reset, "ctxalloc: bump: rewind to a mark already rewound or reset (address 0x"},
    {shared_foreign_free, "ctxalloc: bump: free of a pointer that is not from this shared bump (address 0x"},
    {cache_foreign_put, "ctxalloc: bump: put of a bump that was not taken from this cache (address 0x"},
};

Test(death, checks_tier)
{
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        ca_death_result r = ca_death_run(cases[i].fn, NULL);
#if CA_CHECKS >= CA_CHECKS_ON
        cr_assert(r.aborted, "case %zu did not abort; output: %s", i, r.out);
        cr_assert(ca_death_has_line(&r, cases[i].line), "case %zu: got: %s", i, r.out);
#else
        cr_assert_not(r.aborted, "case %zu aborted with checks off: %s", i, r.out);
#endif
    }
}

/* --- lock order (core.h, "Lock order") --------------------------------------
 * The shared bump's installer and the cache's mutex have rank
 * CA_LOCK_RANK_BUMP_SHARED: taken under a lock of the rank just below they
 * pass, under the rank just above they abort naming both; the installer is
 * held across its backing's obtain, which may take higher ranks (a buffer
 * source's lock). The held lock is a plain word, ranked by the test. */

static int held_word;

/* A shared bump's first allocation installs a chunk under its mutex. */
static void shared_first_alloc(void)
{
    ca_bump_shared s;
    if (ca_bump_shared_init_allocator(&s, ca_libc_allocator(), NULL) != 0)
        _exit(3);
    if (!ca_bump_shared_alloc(&s, 100, 8))
        _exit(4);
    ca_bump_shared_destroy(&s);
}

static void cache_take(void)
{
    ca_bump_cache c;
    ca_bump b;
    if (ca_bump_cache_init_allocator(&c, ca_libc_allocator(), NULL, 1) != 0 || ca_bump_cache_take(&c, &b) != 0)
        _exit(3);
    ca_bump_destroy(&b);
    ca_bump_cache_destroy(&c);
}

static void shared_under(void *rank)
{
    ca_lock_acquire_ranked(&held_word, (unsigned)(uintptr_t)rank, "test");
    shared_first_alloc();
    ca_lock_release_ranked(&held_word, (unsigned)(uintptr_t)rank);
}

static void cache_under(void *rank)
{
    ca_lock_acquire_ranked(&held_word, (unsigned)(uintptr_t)rank, "test");
    cache_take();
    ca_lock_release_ranked(&held_word, (unsigned)(uintptr_t)rank);
}

#if BUMP_TEST_HAVE_SOURCE
/* The backing's own ranked lock (buffer source, rank 23) taken under the
 * installer. */
static void shared_over_buffer(void *arg)
{
    (void)arg;
    static char mem[1 << 16];
    ca_source_buffer_options o = {0};
    o.granule = 4096;
    ca_source_buffer src;
    ca_bump_shared s;
    if (ca_source_buffer_init(&src, mem, sizeof mem, &o) != 0 || ca_bump_shared_init(&s, &src.base, NULL) != 0)
        _exit(3);
    if (!ca_bump_shared_alloc(&s, 100, 8))
        _exit(4);
    ca_bump_shared_destroy(&s);
    ca_source_buffer_destroy(&src);
}
#endif

#define RANK_ARG(r) ((void *)(uintptr_t)(r))

Test(death, locks_are_ranked)
{
    void (*const under[])(void *) = {shared_under, cache_under};
    for (size_t i = 0; i < 2; i++) {
        ca_death_result r = ca_death_run(under[i], RANK_ARG(CA_LOCK_RANK_BUMP_SHARED - 1));
        cr_assert(r.exited0, "case %zu under the rank below: %s", i, r.out);
        r = ca_death_run(under[i], RANK_ARG(CA_LOCK_RANK_BUMP_SHARED + 1));
#if CA_CHECKS >= CA_CHECKS_ON
        cr_assert(r.aborted, "case %zu under the rank above did not abort: %s", i, r.out);
        cr_assert(ca_death_has_line(&r, "ctxalloc: bump: lock order: taking bump shared chunk installer (rank 3) "
                                        "while holding locked adaptor (rank 4) (address 0x"),
                  "case %zu: got: %s", i, r.out);
#else
        cr_assert(r.exited0, "case %zu aborted with checks off: %s", i, r.out);
#endif
    }
#if BUMP_TEST_HAVE_SOURCE
    ca_death_result r = ca_death_run(shared_over_buffer, NULL);
    cr_assert(r.exited0, "a shared bump over a buffer source: %s", r.out);
#endif
}

Test(death, check_reports_broken_invariant)
{
    ca_bump b;
    ca_bump_init_allocator(&b, ca_libc_allocator(), NULL);
    ca_bump_alloc(&b, 100, 8);
    cr_assert_null(ca_bump_check(&b));
    char *saved = b.cur;
    b.cur = b.end + 16; /* corrupt: cursor past the chunk */
    cr_assert_str_eq(ca_bump_check(&b), "cursor outside its chunk");
    b.cur = saved;
    uint64_t bytes = b.chunk_bytes;
    b.chunk_bytes += 1;
    cr_assert_str_eq(ca_bump_check(&b), "chunk byte count differs from the chunks");
    b.chunk_bytes = bytes;
    cr_assert_null(ca_bump_check(&b));
    ca_bump_destroy(&b);
}
