/* SPDX-License-Identifier: MIT */
/*
 * Listener events (ca_listen) of every bump: attach reports the chunks held,
 * growth reports a chunk before any block of it is handed out, a refusal
 * fails the allocation and leaves the bump as it was, EBUSY, detach, reset,
 * rewind, destroy, fixed regions, the shared bump, local bumps and the warm
 * cache; and the page shape of chunks from an allocator or a shared bump.
 */
#include <criterion/criterion.h>
#include <ctxalloc/bump.h>
#include <stdlib.h>

#include "bump_internal.h"
#include "bump_test.h"
#include "bump_test_listen.h"
#include "ca_counting.h"

static test_source ts;
static recorder rec, rec2;
static ca_bump b;

static void setup(void)
{
    test_source_init(&ts);
    rec_init(&rec);
    rec_init(&rec2);
    cr_assert_eq(ca_bump_init(&b, &ts.base, NULL), 0);
}
static void teardown(void)
{
    ca_bump_destroy(&b);
    cr_assert_eq(ts.live, 0, "chunks not returned: %ld", ts.live);
    cr_assert_eq(rec.errors, 0, "bad events: %d", rec.errors);
    cr_assert_eq(rec2.errors, 0, "bad events: %d", rec2.errors);
}
TestSuite(listen, .init = setup, .fini = teardown);

static uint64_t chunks_obtained(const ca_bump *x)
{
    ca_stats st;
    uint64_t v = 0;
    ca_bump_stats(x, &st);
    ca_stats_get_counter(&st, "chunks_obtained", &v);
    return v;
}

/* Allocate 64-byte blocks until x has obtained n chunks in all. */
static void grow_to(ca_bump *x, uint64_t n)
{
    while (chunks_obtained(x) < n)
        cr_assert_not_null(ca_bump_alloc(x, 64, 8));
}

/* The live ranges of r are exactly the chunks on the lists (header
 * included, size as obtained). */
static void assert_ranges_are_chunks(recorder *r, const ca_bump_chunk *a, const ca_bump_chunk *big)
{
    size_t n = 0;
    const ca_bump_chunk *lists[2] = {a, big};
    for (int i = 0; i < 2; i++)
        for (const ca_bump_chunk *c = lists[i]; c; c = c->prev, n++)
            cr_assert(rec_has(r, c, c->size), "chunk %p (%zu bytes) not reported", (void *)c, c->size);
    cr_assert_eq(r->nlive, n, "%zu ranges reported for %zu chunks", r->nlive, n);
}

Test(listen, attach_reports_each_chunk_held)
{
    grow_to(&b, 3);
    cr_assert_null(b.big);
    cr_assert_eq(ca_listen(&b.base, &rec.l), 0);
    cr_assert_eq(rec.nev, 3);
    cr_assert_eq(rec_count(&rec, EV_ADDED), 3);
    assert_ranges_are_chunks(&rec, b.chunk, b.big);
    /* Order: newest first, each as obtained (header included). */
    const ca_bump_chunk *c = b.chunk;
    for (size_t i = 0; i < 3; i++, c = c->prev) {
        cr_assert_eq(rec.ev[i].base, (void *)c);
        cr_assert_eq(rec.ev[i].size, c->size);
    }
    cr_assert_eq(b.listener, &rec.l);
}

static ca_bump *watched;
/* No block of a reported chunk is handed out yet: it is not the current
 * chunk nor an oversized chunk of the bump when added() runs. */
static void not_installed(recorder *r, void *base, size_t size)
{
    (void)size;
    for (const ca_bump_chunk *c = watched->chunk; c; c = c->prev)
        if ((void *)c == base)
            r->errors += 100;
    for (const ca_bump_chunk *c = watched->big; c; c = c->prev)
        if ((void *)c == base)
            r->errors += 100;
    if (watched->cur > (char *)base && watched->cur <= (char *)base + size)
        r->errors += 100; /* (cur == base: the full current chunk ends where this one starts) */
}

Test(listen, blocks_lie_in_reported_ranges_and_growth_is_reported_first)
{
    grow_to(&b, 2);
    cr_assert_eq(ca_bump_listen(&b, &rec.l), 0);
    watched = &b;
    rec.on_added = not_installed; /* from here on: growth only */
    uint64_t before = chunks_obtained(&b);
    srand(7);
    for (int i = 0; i < 20000; i++) {
        size_t size = (size_t)(rand() % (i % 97 == 0 ? 40000 : 200));
        size_t align = (size_t)1 << (rand() % 8);
        char *p = (char *)ca_bump_alloc(&b, size, align);
        cr_assert_not_null(p);
        cr_assert(rec_covers(&rec, p, size ? size : 1), "block %p+%zu outside every reported range", (void *)p,
                  size);
    }
    uint64_t got = chunks_obtained(&b) - before;
    cr_assert_gt(got, 3);
    cr_assert_eq(rec_count(&rec, EV_ADDED), 2 + got, "one added() per chunk obtained");
    cr_assert_eq(rec.errors, 0, "a chunk was reported after it was in use (%d)", rec.errors);
    assert_ranges_are_chunks(&rec, b.chunk, b.big);
    cr_assert_null(ca_bump_check(&b));
}

Test(listen, refusal_fails_the_allocation_and_leaves_the_bump)
{
    grow_to(&b, 2);
    cr_assert_eq(ca_bump_listen(&b, &rec.l), 0);
    rec.refuse = EPERM;
    /* Fill the current chunk, then the allocation that needs a new one. */
    ca_bump_chunk *chunk = b.chunk, *big = b.big;
    while (ca_bump_alloc(&b, 64, 8))
        if (b.chunk != chunk)
            cr_assert_fail("a chunk was installed although added() refused it");
    cr_assert_eq(errno, EPERM);
    char *cur = b.cur, *end = b.end;
    long live = ts.live;
    uint64_t obtained = chunks_obtained(&b);
    errno = 0;
    cr_assert_null(ca_bump_alloc(&b, 64, 8));
    cr_assert_eq(errno, EPERM);
    errno = 0;
    cr_assert_null(ca_bump_alloc(&b, 100000, 16), "oversized chunk refused too");
    cr_assert_eq(errno, EPERM);
    errno = 0;
    cr_assert_null(ca_alloc(&b.base, 64, 8));
    cr_assert_eq(errno, EPERM);
    cr_assert(b.chunk == chunk && b.big == big && b.cur == cur && b.end == end, "the bump changed");
    cr_assert_eq(ts.live, live, "refused chunks are given back");
    cr_assert_eq(chunks_obtained(&b), obtained);
    cr_assert_null(ca_bump_check(&b));
    cr_assert_eq(rec.nlive, 2);
    /* Accepting again: the bump grows and works. */
    rec.refuse = 0;
    char *p = (char *)ca_bump_alloc(&b, 64, 8);
    cr_assert_not_null(p);
    cr_assert(rec_covers(&rec, p, 64));
    cr_assert_not_null(ca_bump_alloc(&b, 100000, 16));
    cr_assert_null(ca_bump_check(&b));
    assert_ranges_are_chunks(&rec, b.chunk, b.big);
}

Test(listen, refusal_on_attach_takes_back_what_was_reported)
{
    grow_to(&b, 3);
    cr_assert_not_null(ca_bump_alloc(&b, 100000, 8));
    rec.refuse = ENOSPC;
    rec.accept_left = 2;
    cr_assert_eq(ca_bump_listen(&b, &rec.l), ENOSPC);
    cr_assert_null(b.listener);
    cr_assert_eq(rec_count(&rec, EV_ADDED), 2);
    cr_assert_eq(rec_count(&rec, EV_REFUSED), 1);
    cr_assert_eq(rec_count(&rec, EV_REMOVED), 2);
    cr_assert_eq(rec.nlive, 0);
    /* Refusing the oversized chunk (the last range) takes back all regular ones. */
    rec_init(&rec);
    rec.refuse = EACCES;
    rec.accept_left = 3;
    cr_assert_eq(ca_bump_listen(&b, &rec.l), EACCES);
    cr_assert_eq(rec_count(&rec, EV_REMOVED), 3);
    cr_assert_eq(rec.nlive, 0);
    /* Nothing attached: growth reports nothing. */
    grow_to(&b, 5);
    cr_assert_eq(rec_count(&rec, EV_ADDED), 3);
    cr_assert_null(ca_bump_check(&b));
}

Test(listen, second_attach_is_ebusy_and_detach_removes_each)
{
    grow_to(&b, 3);
    cr_assert_not_null(ca_bump_alloc(&b, 100000, 8));
    cr_assert_eq(ca_bump_listen(&b, &rec.l), 0);
    cr_assert_eq(ca_bump_listen(&b, &rec2.l), EBUSY);
    cr_assert_eq(ca_listen(&b.base, &rec.l), EBUSY);
    cr_assert_eq(rec2.nev, 0);
    cr_assert_eq(rec.nlive, 4);
    cr_assert_eq(ca_listen(&b.base, NULL), 0);
    cr_assert_eq(rec_count(&rec, EV_REMOVED), 4);
    cr_assert_eq(rec.nlive, 0);
    cr_assert_null(b.listener);
    grow_to(&b, 6);
    cr_assert_eq(rec_count(&rec, EV_ADDED), 4, "no events after detach");
    cr_assert_eq(ca_bump_listen(&b, &rec2.l), 0);
    assert_ranges_are_chunks(&rec2, b.chunk, b.big);
    cr_assert_eq(ca_bump_listen(&b, NULL), 0);
    cr_assert_eq(ca_bump_listen(&b, NULL), 0, "detach without a listener");
}

Test(listen, reset_reports_reset_then_removed_for_released_chunks)
{
    grow_to(&b, 4);
    cr_assert_not_null(ca_bump_alloc(&b, 100000, 8));
    cr_assert_eq(ca_bump_listen(&b, &rec.l), 0);
    rec_clear_events(&rec);
    ca_bump_reset(&b);
    cr_assert_geq(rec.nev, 2);
    cr_assert_eq(rec.ev[0].kind, EV_RESET, "reset() comes first");
    for (size_t i = 1; i < rec.nev; i++)
        cr_assert_eq(rec.ev[i].kind, EV_REMOVED);
    cr_assert_eq(rec_count(&rec, EV_REMOVED), 4, "3 regular chunks and the oversized one go back");
    assert_ranges_are_chunks(&rec, b.chunk, b.big);
    cr_assert_eq(rec.nlive, 1);
    /* Reset with nothing to give back is still a reset. */
    rec_clear_events(&rec);
    ca_bump_reset(&b);
    cr_assert_eq(rec.nev, 1);
    cr_assert_eq(rec.ev[0].kind, EV_RESET);
    /* ca_reset through the ops, and reset_final gives back the last one. */
    grow_to(&b, 7);
    rec_clear_events(&rec);
    cr_assert_eq(ca_reset(&b.base), 0);
    cr_assert_eq(rec.ev[0].kind, EV_RESET);
    rec_clear_events(&rec);
    ca_bump_reset_final(&b);
    cr_assert_eq(rec.ev[0].kind, EV_RESET);
    cr_assert_eq(rec_count(&rec, EV_REMOVED), 1);
    cr_assert_eq(rec.nlive, 0);
    cr_assert_eq(b.listener, &rec.l, "a reset keeps the listener");
    cr_assert_not_null(ca_bump_alloc(&b, 8, 8));
    cr_assert_eq(rec.nlive, 1);
}

static void count_dtor(void *obj, void *arg)
{
    (void)obj;
    recorder *r = (recorder *)arg;
    /* Destructors run before the reset is reported. */
    if (rec_count(r, EV_RESET) != 0)
        r->errors += 1000;
}

Test(listen, destructors_run_before_reset_is_reported)
{
    cr_assert_eq(ca_bump_listen(&b, &rec.l), 0);
    rec_clear_events(&rec);
    cr_assert_not_null(ca_bump_alloc_dtor(&b, 32, 8, count_dtor, &rec));
    ca_bump_reset(&b);
    cr_assert_eq(rec.errors, 0);
}

Test(listen, rewind_removes_released_chunks_without_reset)
{
    grow_to(&b, 2);
    cr_assert_eq(ca_bump_listen(&b, &rec.l), 0);
    ca_bump_mark m;
    cr_assert_eq(ca_bump_save(&b, &m), 0);
    grow_to(&b, 5);
    cr_assert_not_null(ca_bump_alloc(&b, 100000, 8));
    rec_clear_events(&rec);
    cr_assert_eq(ca_bump_rewind(&b, &m), 0);
    cr_assert_eq(rec_count(&rec, EV_RESET), 0, "a rewind is not a reset");
    cr_assert_eq(rec_count(&rec, EV_REMOVED), 4);
    assert_ranges_are_chunks(&rec, b.chunk, b.big);
    /* Tip free of an oversized chunk gives it back: removed. */
    void *big = ca_bump_alloc(&b, 100000, 8);
    cr_assert(rec_has(&rec, b.big, b.big->size));
    rec_clear_events(&rec);
    ca_bump_free(&b, big, 100000);
    cr_assert_eq(rec.nev, 1);
    cr_assert_eq(rec.ev[0].kind, EV_REMOVED);
    assert_ranges_are_chunks(&rec, b.chunk, b.big);
    /* A moving resize out of the newest oversized chunk gives it back too. */
    big = ca_bump_alloc(&b, 100000, 8);
    void *moved = ca_bump_resize(&b, big, 100000, 300000, 8, 0);
    cr_assert_not_null(moved);
    assert_ranges_are_chunks(&rec, b.chunk, b.big);
    cr_assert_null(ca_bump_check(&b));
}

Test(listen, destroy_reports_destroyed_first_then_removed_for_all)
{
    grow_to(&b, 3);
    cr_assert_not_null(ca_bump_alloc(&b, 100000, 8));
    cr_assert_eq(ca_bump_listen(&b, &rec.l), 0);
    rec_clear_events(&rec);
    ca_bump_destroy(&b);
    cr_assert_eq(rec.nev, 5);
    cr_assert_eq(rec.ev[0].kind, EV_DESTROYED);
    for (size_t i = 1; i < rec.nev; i++)
        cr_assert_eq(rec.ev[i].kind, EV_REMOVED);
    cr_assert_eq(rec.nlive, 0);
    cr_assert_null(b.listener, "the listener is dropped");
    cr_assert_eq(ca_bump_init(&b, &ts.base, NULL), 0);
    grow_to(&b, 2);
    cr_assert_eq(rec.nev, 5, "no events after destroy");
}

Test(listen, fixed_regions)
{
    static char buf[8192 + 8];
    ca_bump f;
    cr_assert_eq(ca_bump_init_fixed(&f, buf + 3, 8192), 0);
    cr_assert_eq(ca_bump_listen(&f, &rec.l), 0);
    cr_assert_eq(rec.nev, 1);
    cr_assert_eq(rec.ev[0].base, (void *)f.chunk->begin, "the usable region of the buffer");
    cr_assert_eq(rec.ev[0].size, (size_t)(f.chunk->end - f.chunk->begin));
    char *p = (char *)ca_bump_alloc(&f, 100, 8);
    cr_assert(rec_covers(&rec, p, 100));
    while (ca_bump_alloc(&f, 100, 8))
        ;
    cr_assert_eq(errno, ENOMEM);
    cr_assert_eq(rec.nev, 1, "a fixed bump never grows");
    ca_bump_reset(&f);
    cr_assert_eq(rec.nev, 2);
    cr_assert_eq(rec.ev[1].kind, EV_RESET);
    cr_assert_eq(rec.nlive, 1, "the region stays");
    ca_bump_destroy(&f);
    cr_assert_eq(rec.nev, 4);
    cr_assert_eq(rec.ev[2].kind, EV_DESTROYED);
    cr_assert_eq(rec.ev[3].kind, EV_REMOVED);
    cr_assert_eq(rec.nlive, 0);

    /* Over one block of a source: the block as obtained. */
    cr_assert_eq(ca_bump_init_fixed_source(&f, &ts.base, 10000), 0);
    cr_assert_eq(ca_bump_listen(&f, &rec2.l), 0);
    cr_assert_eq(rec2.nev, 1);
    cr_assert_eq(rec2.ev[0].base, (void *)f.chunk);
    cr_assert_eq(rec2.ev[0].size, f.chunk->size);
    cr_assert_eq(ca_bump_listen(&f, NULL), 0);
    cr_assert_eq(rec2.nlive, 0);
    cr_assert_eq(ca_bump_listen(&f, &rec2.l), 0);
    ca_bump_destroy(&f);
    cr_assert_eq(rec2.ev[rec2.nev - 2].kind, EV_DESTROYED);
    cr_assert_eq(rec2.nlive, 0);
}

Test(listen, warm_cache_put_reports_destroy)
{
    ca_bump_cache c;
    cr_assert_eq(ca_bump_cache_init(&c, &ts.base, NULL, 2), 0);
    ca_bump x;
    cr_assert_eq(ca_bump_cache_take(&c, &x), 0);
    grow_to(&x, 3);
    cr_assert_eq(ca_bump_listen(&x, &rec.l), 0);
    rec_clear_events(&rec);
    ca_bump_cache_put(&c, &x);
    cr_assert_eq(rec.ev[0].kind, EV_DESTROYED);
    cr_assert_eq(rec_count(&rec, EV_REMOVED), 3, "the chunk kept warm is removed too");
    cr_assert_eq(rec.nlive, 0);
    /* The warm chunk starts the next bump unreported until attached. */
    cr_assert_eq(ca_bump_cache_take(&c, &x), 0);
    cr_assert_not_null(x.chunk);
    cr_assert_eq(ca_bump_listen(&x, &rec2.l), 0);
    cr_assert(rec_has(&rec2, x.chunk, x.chunk->size));
    ca_bump_cache_put(&c, &x);
    cr_assert_eq(rec2.nlive, 0);
    ca_bump_cache_destroy(&c);
}

/* ---- shared bump ----------------------------------------------------------- */

static void shared_grow(ca_bump_shared *s, uint64_t n)
{
    for (;;) {
        ca_stats st;
        uint64_t v = 0;
        ca_bump_shared_stats(s, &st);
        ca_stats_get_counter(&st, "chunks_obtained", &v);
        if (v >= n)
            return;
        cr_assert_not_null(ca_bump_shared_alloc(s, 64, 8));
    }
}

Test(listen, shared_bump_events)
{
    ca_bump_shared s;
    cr_assert_eq(ca_bump_shared_init(&s, &ts.base, NULL), 0);
    shared_grow(&s, 3);
    cr_assert_eq(ca_listen(&s.base, &rec.l), 0);
    cr_assert_eq(rec_count(&rec, EV_ADDED), 3);
    assert_ranges_are_chunks(&rec, s.current, s.big);
    cr_assert_eq(ca_bump_shared_listen(&s, &rec2.l), EBUSY);
    /* Growth: every block lies in a reported range. */
    for (int i = 0; i < 5000; i++) {
        size_t size = (size_t)(i % 50 == 0 ? 70000 : 1 + i % 300), align = (size_t)1 << (i % 7);
        char *p = (char *)ca_bump_shared_alloc(&s, size, align);
        cr_assert_not_null(p);
        cr_assert(rec_covers(&rec, p, size), "block %p+%zu outside every reported range", (void *)p, size);
    }
    assert_ranges_are_chunks(&rec, s.current, s.big);
    /* Refusal: NULL + errno, nothing changes, then it works again. */
    rec.refuse = EPERM;
    ca_bump_chunk *cur = s.current, *big = s.big;
    long live = ts.live;
    errno = 0;
    void *p;
    while ((p = ca_bump_shared_alloc(&s, 64, 8)) != NULL)
        cr_assert_eq(s.current, cur);
    cr_assert_eq(errno, EPERM);
    errno = 0;
    cr_assert_null(ca_bump_shared_alloc(&s, 8 << 20, 16));
    cr_assert_eq(errno, EPERM);
    cr_assert(s.current == cur && s.big == big && ts.live == live, "the shared bump changed");
    cr_assert_null(ca_bump_shared_check(&s));
    rec.refuse = 0;
    cr_assert_not_null(ca_bump_shared_alloc(&s, 64, 8));
    assert_ranges_are_chunks(&rec, s.current, s.big);
    /* Tip free of an oversized chunk: removed. */
    p = ca_bump_shared_alloc(&s, 8 << 20, 16);
    size_t before = rec_count(&rec, EV_REMOVED);
    ca_bump_shared_free(&s, p, 8 << 20);
    cr_assert_eq(rec_count(&rec, EV_REMOVED), before + 1);
    assert_ranges_are_chunks(&rec, s.current, s.big);
    /* Detach, attach again. */
    cr_assert_eq(ca_bump_shared_listen(&s, NULL), 0);
    cr_assert_eq(rec.nlive, 0);
    cr_assert_eq(ca_bump_shared_listen(&s, &rec2.l), 0);
    assert_ranges_are_chunks(&rec2, s.current, s.big);
    /* Reset: reset() first, then removed for every chunk given back. */
    rec_clear_events(&rec2);
    ca_bump_shared_reset(&s);
    cr_assert_eq(rec2.ev[0].kind, EV_RESET);
    for (size_t i = 1; i < rec2.nev; i++)
        cr_assert_eq(rec2.ev[i].kind, EV_REMOVED);
    cr_assert_gt(rec2.nev, 2);
    assert_ranges_are_chunks(&rec2, s.current, s.big);
    /* Destroy: destroyed() first, then removed for all. */
    shared_grow(&s, 30);
    cr_assert_not_null(ca_bump_shared_alloc(&s, 8 << 20, 16));
    size_t held = rec2.nlive;
    rec_clear_events(&rec2);
    ca_bump_shared_destroy(&s);
    cr_assert_eq(rec2.ev[0].kind, EV_DESTROYED);
    cr_assert_eq(rec2.nev, held + 1);
    cr_assert_eq(rec2.nlive, 0);
}

Test(listen, shared_refusal_on_attach)
{
    ca_bump_shared s;
    cr_assert_eq(ca_bump_shared_init(&s, &ts.base, NULL), 0);
    shared_grow(&s, 3);
    cr_assert_not_null(ca_bump_shared_alloc(&s, 8 << 20, 16));
    rec.refuse = EACCES;
    rec.accept_left = 3;
    cr_assert_eq(ca_bump_shared_listen(&s, &rec.l), EACCES);
    cr_assert_eq(rec_count(&rec, EV_REMOVED), 3);
    cr_assert_eq(rec.nlive, 0);
    cr_assert_null(s.listener);
    ca_bump_shared_destroy(&s);
    cr_assert_eq(rec_count(&rec, EV_DESTROYED), 0);
}

/* ---- local bumps and parent allocators: page shape -------------------------- */

static void assert_page_shape(const ca_bump_chunk *c)
{
    for (; c; c = c->prev) {
        if (c->size >= CA_OWNER_PAGE) {
            cr_assert(ca_is_aligned((uintptr_t)c, CA_OWNER_PAGE), "chunk %p (%zu bytes) not page-aligned", (void *)c,
                      c->size);
            cr_assert_eq(c->size % CA_OWNER_PAGE, 0, "chunk of %zu bytes is not whole pages", c->size);
        } else {
            cr_assert(ca_is_aligned((uintptr_t)c, CA_BUMP_CHUNK_HEADER));
        }
    }
}

Test(listen, local_bump_chunks_are_page_shaped_and_reported)
{
    ca_bump_shared s;
    cr_assert_eq(ca_bump_shared_init(&s, &ts.base, NULL), 0);
    cr_assert_eq(ca_bump_shared_listen(&s, &rec2.l), 0);
    shared_grow(&s, 2); /* the local's chunks come from the middle of shared chunks */
    ca_bump x;
    cr_assert_eq(ca_bump_init_local(&x, &s, NULL), 0);
    cr_assert_eq(ca_listen(&x.base, &rec.l), 0);
    for (int i = 0; i < 30000; i++) {
        size_t size = (size_t)(i % 1000 == 0 ? 20000 : 48);
        char *p = (char *)ca_bump_alloc(&x, size, 8);
        cr_assert_not_null(p);
        cr_assert(rec_covers(&rec, p, size));
        ca_bump_shared_alloc(&s, 24, 8); /* the shared bump is used meanwhile */
    }
    cr_assert_gt(chunks_obtained(&x), 4);
    assert_page_shape(x.chunk);
    assert_page_shape(x.big);
    assert_page_shape(s.current);
    assert_page_shape(s.big);
    assert_ranges_are_chunks(&rec, x.chunk, x.big);
    /* Every range of the local lies inside a range of the shared bump. */
    for (size_t i = 0; i < rec.nlive; i++)
        cr_assert(rec_covers(&rec2, rec.live[i].base, rec.live[i].size), "local range outside the shared bump");
    assert_ranges_are_chunks(&rec2, s.current, s.big);
    cr_assert_null(ca_bump_check(&x));
    /* Reset and destroy: chunks go back to the spare list, reported removed. */
    rec_clear_events(&rec);
    ca_bump_reset(&x);
    cr_assert_eq(rec.ev[0].kind, EV_RESET);
    assert_ranges_are_chunks(&rec, x.chunk, x.big);
    /* A refusal gives the chunk back to the shared bump: nothing is lost. */
    rec.refuse = EPERM;
    errno = 0;
    ca_bump_chunk *kept = x.chunk;
    while (ca_bump_alloc(&x, 4000, 8))
        cr_assert_eq(x.chunk, kept);
    cr_assert_eq(errno, EPERM);
    cr_assert_null(ca_bump_check(&x));
    rec.refuse = 0;
    cr_assert_not_null(ca_bump_alloc(&x, 4000, 8));
    cr_assert_neq(x.chunk, kept);
    rec_clear_events(&rec);
    ca_bump_destroy(&x);
    cr_assert_eq(rec.ev[0].kind, EV_DESTROYED);
    cr_assert_eq(rec.nlive, 0);
    cr_assert_null(ca_bump_shared_check(&s));
    ca_bump_shared_destroy(&s);
    cr_assert_eq(rec2.nlive, 0);
}

Test(listen, parent_allocator_chunks_are_page_shaped)
{
    static ca_counting_allocator pr; /* remembers each chunk's size and alignment */
    ca_counting_init(&pr);
    ca_bump x;
    cr_assert_eq(ca_bump_init_allocator(&x, &pr.base, NULL), 0);
    cr_assert_eq(ca_bump_listen(&x, &rec.l), 0);
    for (int i = 0; i < 20000; i++)
        cr_assert_not_null(ca_bump_alloc(&x, (size_t)(i % 500 == 0 ? 30000 : 40), 8));
    cr_assert_gt(chunks_obtained(&x), 4);
    assert_page_shape(x.chunk);
    assert_page_shape(x.big);
    cr_assert_eq(pr.max_align, CA_OWNER_PAGE, "chunks requested with page alignment");
    for (size_t i = 0; i < rec.nlive; i++) {
        cr_assert(ca_is_aligned((uintptr_t)rec.live[i].base, CA_OWNER_PAGE));
        cr_assert_eq(rec.live[i].size % CA_OWNER_PAGE, 0);
    }
    cr_assert_null(ca_bump_check(&x));
    ca_bump_destroy(&x);
    cr_assert_eq(pr.mismatches, 0, "chunks freed with another size or alignment");
    cr_assert_eq(pr.n, 0);

    /* Chunks below a page keep the 64-byte shape and are freed as such. */
    ca_bump_options small = {256, 2048};
    cr_assert_eq(ca_bump_init_allocator(&x, &pr.base, &small), 0);
    for (int i = 0; i < 2000; i++)
        cr_assert_not_null(ca_bump_alloc(&x, 40, 8));
    assert_page_shape(x.chunk);
    for (const ca_bump_chunk *c = x.chunk; c; c = c->prev)
        cr_assert_lt(c->size, CA_OWNER_PAGE);
    ca_bump_destroy(&x);
    cr_assert_eq(pr.mismatches, 0);

    /* The shared bump over an allocator, and the warm cache. */
    ca_bump_shared s;
    cr_assert_eq(ca_bump_shared_init_allocator(&s, &pr.base, NULL), 0);
    for (int i = 0; i < 20000; i++)
        cr_assert_not_null(ca_bump_shared_alloc(&s, (size_t)(i % 500 == 0 ? 30000 : 40), 8));
    assert_page_shape(s.current);
    assert_page_shape(s.big);
    cr_assert_null(ca_bump_shared_check(&s));
    ca_bump_shared_destroy(&s);
    ca_bump_cache c;
    cr_assert_eq(ca_bump_cache_init_allocator(&c, &pr.base, NULL, 1), 0);
    cr_assert_eq(ca_bump_cache_take(&c, &x), 0);
    grow_to(&x, 3);
    assert_page_shape(x.chunk);
    ca_bump_cache_put(&c, &x);
    ca_bump_cache_destroy(&c);
    cr_assert_eq(pr.mismatches, 0);
    cr_assert_eq(pr.n, 0, "every chunk back to the parent");
}

Test(listen, libc_parent_chunks_are_page_shaped)
{
    ca_bump x;
    cr_assert_eq(ca_bump_init_allocator(&x, ca_libc_allocator(), NULL), 0);
    for (int i = 0; i < 10000; i++)
        cr_assert_not_null(ca_bump_alloc(&x, 100, 8));
    cr_assert_not_null(ca_bump_alloc(&x, 1 << 20, 64));
    assert_page_shape(x.chunk);
    assert_page_shape(x.big);
    cr_assert_null(ca_bump_check(&x));
    ca_bump_destroy(&x);
}
