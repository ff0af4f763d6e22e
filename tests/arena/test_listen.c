/* SPDX-License-Identifier: MIT */
/* Listener events of the arena's allocator view (ca_listen): every backing
 * (heap, anonymous, caller's source, file created, reopened read-write,
 * read-only and copy-on-write) reports one page-aligned range of whole pages
 * that contains every block; EBUSY; detach; close ordering (destroyed, then
 * removed); the reset event; a refusing listener; attach and detach while
 * other threads allocate. */
#include <criterion/criterion.h>
#include <ctxalloc/arena.h>
#include <ctxalloc/source.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "ca_test.h"

/* ------------------------------------------------------------------------
 * A recording listener
 * ------------------------------------------------------------------------ */

enum { EV_ADDED = 'A', EV_REMOVED = 'R', EV_RESET = 'S', EV_DESTROYED = 'D' };

typedef struct ev {
    int kind;
    void *base;
    size_t size;
} ev;

typedef struct rec {
    ca_listener l; /* first member */
    int refuse;    /* errno added() returns (0: accept) */
    int n;         /* events recorded (atomic) */
    ev e[64];
} rec;

static void note(rec *r, int kind, void *base, size_t size)
{
    int i = __atomic_fetch_add(&r->n, 1, __ATOMIC_RELAXED);
    if (i < 64)
        r->e[i] = (ev){kind, base, size};
}

static int on_added(ca_listener *l, void *base, size_t size)
{
    rec *r = (rec *)(void *)l;
    note(r, EV_ADDED, base, size);
    return r->refuse;
}

static void on_removed(ca_listener *l, void *base, size_t size) { note((rec *)(void *)l, EV_REMOVED, base, size); }
static void on_reset(ca_listener *l) { note((rec *)(void *)l, EV_RESET, NULL, 0); }
static void on_destroyed(ca_listener *l) { note((rec *)(void *)l, EV_DESTROYED, NULL, 0); }

static void rec_init(rec *r, int refuse)
{
    memset(r, 0, sizeof *r);
    r->l.added = on_added;
    r->l.removed = on_removed;
    r->l.reset = on_reset;
    r->l.destroyed = on_destroyed;
    r->refuse = refuse;
}

static bool inside(const ev *e, const void *p, size_t size)
{
    uintptr_t b = (uintptr_t)e->base, x = (uintptr_t)p;
    return x >= b && size <= e->size && x - b <= e->size - size;
}

/* ------------------------------------------------------------------------
 * Temporary directory for the file backings
 * ------------------------------------------------------------------------ */

static char dir[256];

static void setup(void)
{
    const char *t = getenv("CA_TEST_DIR");
    if (!t || !*t)
        t = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/ca-arena-listen-XXXXXX", t && *t ? t : "/tmp");
    cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(arena_listen, .init = setup, .fini = teardown);

static const char *path_of(const char *name)
{
    static char p[320];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return p;
}

/* ------------------------------------------------------------------------
 * One range containing every block, for every backing
 * ------------------------------------------------------------------------ */

#define NBLK 40

/* Allocate blocks before and after an attach; check the one added range
 * against the region and every block; detach. */
static void check_one_range(ca_arena *a, bool writable)
{
    ca_allocator *al = ca_arena_allocator(a);
    cr_assert(ca_allocator_caps(al) & CA_CAP_THREAD_SAFE);
    cr_assert_eq(ca_allocator_caps(al) & CA_CAP_OWNER_MAP, 0u, "the arena does not register itself");
    void *blk[NBLK];
    size_t sz[NBLK];
    int nb = 0;
    for (; writable && nb < NBLK / 2; nb++) {
        sz[nb] = (size_t)(16 + 97 * nb);
        blk[nb] = ca_alloc(al, sz[nb], (size_t)1 << (nb % 13));
        cr_assert_not_null(blk[nb]);
    }
    rec r;
    rec_init(&r, 0);
    cr_assert_eq(ca_listen(al, &r.l), 0);
    cr_assert_eq(r.n, 1);
    ev e = r.e[0];
    cr_assert_eq(e.kind, EV_ADDED);
    cr_assert_eq((uintptr_t)e.base % CA_OWNER_PAGE, 0, "range not page-aligned: %p", e.base);
    cr_assert_eq(e.size % CA_OWNER_PAGE, 0, "range not whole pages: %zu", e.size);
    /* the whole region, from offset 0 (header page included) to the capacity */
    cr_assert_eq(e.base, (char *)ca_arena_ptr(a, ca_arena_data_start(a)) - ca_arena_data_start(a));
    cr_assert_geq(e.size, ca_arena_capacity(a));
    cr_assert_lt(e.size - ca_arena_capacity(a), 1u << 20);
    for (; writable && nb < NBLK; nb++) {
        sz[nb] = (size_t)(16 + 211 * nb);
        blk[nb] = ca_alloc(al, sz[nb], (size_t)1 << (nb % 13));
        cr_assert_not_null(blk[nb]);
    }
    cr_assert_eq(r.n, 1, "allocations after attach produce no event");
    for (int i = 0; i < nb; i++) {
        cr_assert(inside(&e, blk[i], sz[i]), "block %d (%p, %zu) outside [%p, +%zu)", i, blk[i], sz[i], e.base,
                  e.size);
        memset(blk[i], 0x5a, sz[i]);
    }
    if (ca_arena_user_area(a, NULL))
        cr_assert(inside(&e, ca_arena_user_area(a, NULL), 1));
    for (int i = 0; i < nb; i++)
        ca_free(al, blk[i], sz[i], (size_t)1 << (i % 13));
    cr_assert_eq(r.n, 1, "frees produce no event");
    cr_assert_eq(ca_listen(al, NULL), 0);
    cr_assert_eq(r.n, 2);
    cr_assert_eq(r.e[1].kind, EV_REMOVED);
    cr_assert_eq(r.e[1].base, e.base);
    cr_assert_eq(r.e[1].size, e.size);
}

static ca_arena *make(ca_arena_backing b, uint64_t capacity, size_t user)
{
    ca_arena_options o;
    ca_arena_options_init(&o);
    o.backing = b;
    o.capacity = capacity;
    o.user_size = user;
    ca_arena *a;
    cr_assert_eq(ca_arena_create(&a, &o), 0);
    return a;
}

Test(arena_listen, heap_backing)
{
    /* capacities that are not page multiples are rounded up to whole pages */
    uint64_t caps[] = {1 << 20, (512 << 10) + 12345, (300 << 10) + 1, 400000};
    for (unsigned i = 0; i < sizeof caps / sizeof caps[0]; i++) {
        ca_arena *a = make(CA_ARENA_BACKING_HEAP, caps[i], i * 100);
        check_one_range(a, true);
        cr_assert_eq(ca_arena_close(a), 0);
    }
}

Test(arena_listen, anon_backing)
{
    ca_arena *a = make(CA_ARENA_BACKING_ANON, 1 << 20, 64);
    check_one_range(a, true);
    cr_assert_eq(ca_arena_close(a), 0);
}

Test(arena_listen, caller_source_with_small_granule)
{
    /* a heap source whose granule is 16 bytes still gives a page-aligned region */
    ca_source_heap hs;
    ca_source_heap_options ho;
    memset(&ho, 0, sizeof ho);
    ho.granule = 16;
    cr_assert_eq(ca_source_heap_init(&hs, &ho), 0);
    ca_arena_options o;
    ca_arena_options_init(&o);
    o.capacity = 500007;
    o.source = &hs.base;
    ca_arena *a;
    cr_assert_eq(ca_arena_create(&a, &o), 0);
    check_one_range(a, true);
    cr_assert_eq(ca_arena_close(a), 0);
    ca_source_heap_destroy(&hs);
}

Test(arena_listen, file_backing)
{
    ca_arena_options o;
    ca_arena_options_init(&o);
    o.capacity = 1 << 20;
    o.user_size = 100;
    ca_arena *a;
    ca_arena_error why;
    cr_assert_eq(ca_arena_create_file(&a, path_of("f.arena"), &o, &why), 0, "%s", ca_arena_strerror(why));
    check_one_range(a, true);
    cr_assert_eq(ca_arena_close(a), 0);
    ca_arena_mode modes[] = {CA_ARENA_READ_WRITE, CA_ARENA_COPY_ON_WRITE, CA_ARENA_READ_ONLY};
    for (unsigned i = 0; i < 3; i++) {
        cr_assert_eq(ca_arena_open_file(&a, path_of("f.arena"), modes[i], NULL, &why), 0, "%s",
                     ca_arena_strerror(why));
        check_one_range(a, modes[i] != CA_ARENA_READ_ONLY);
        cr_assert_eq(ca_arena_close(a), 0);
    }
}

/* ------------------------------------------------------------------------
 * Attach rules
 * ------------------------------------------------------------------------ */

Test(arena_listen, ebusy_and_detach)
{
    ca_arena *a = make(CA_ARENA_BACKING_HEAP, 1 << 16, 0);
    ca_allocator *al = ca_arena_allocator(a);
    rec r1, r2;
    rec_init(&r1, 0);
    rec_init(&r2, 0);
    cr_assert_eq(ca_listen(al, NULL), 0, "detach with nothing attached");
    cr_assert_eq(ca_listen(al, &r1.l), 0);
    cr_assert_eq(ca_listen(al, &r2.l), EBUSY);
    cr_assert_eq(ca_listen(al, &r1.l), EBUSY, "the same listener twice");
    cr_assert_eq(r1.n, 1);
    cr_assert_eq(r2.n, 0, "a refused attach hears nothing");
    cr_assert_eq(ca_listen(al, NULL), 0);
    cr_assert_eq(r1.n, 2);
    cr_assert_eq(r1.e[1].kind, EV_REMOVED);
    cr_assert_eq(ca_listen(al, NULL), 0, "second detach: nothing attached");
    cr_assert_eq(r1.n, 2);
    /* after a detach another listener can attach; close reports to it only */
    cr_assert_eq(ca_listen(al, &r2.l), 0);
    cr_assert_eq(ca_arena_close(a), 0);
    cr_assert_eq(r1.n, 2);
    cr_assert_eq(r2.n, 3);
}

Test(arena_listen, null_callbacks)
{
    ca_arena *a = make(CA_ARENA_BACKING_ANON, 1 << 16, 0);
    ca_listener quiet;
    memset(&quiet, 0, sizeof quiet);
    cr_assert_eq(ca_listen(ca_arena_allocator(a), &quiet), 0);
    cr_assert_eq(ca_reset(ca_arena_allocator(a)), 0);
    cr_assert_eq(ca_listen(ca_arena_allocator(a), NULL), 0);
    cr_assert_eq(ca_listen(ca_arena_allocator(a), &quiet), 0);
    cr_assert_eq(ca_arena_close(a), 0);
}

Test(arena_listen, close_reports_destroyed_then_removed)
{
    ca_arena_backing bs[] = {CA_ARENA_BACKING_HEAP, CA_ARENA_BACKING_ANON};
    for (int f = 0; f < 3; f++) {
        ca_arena *a;
        if (f < 2) {
            a = make(bs[f], 1 << 18, 0);
        } else {
            ca_arena_error why;
            cr_assert_eq(ca_arena_create_file(&a, path_of("close.arena"), NULL, &why), 0);
        }
        ca_allocator *al = ca_arena_allocator(a);
        void *p = ca_alloc(al, 1000, 64);
        cr_assert_not_null(p);
        rec r;
        rec_init(&r, 0);
        cr_assert_eq(ca_listen(al, &r.l), 0);
        cr_assert_eq(ca_arena_close(a), 0);
        cr_assert_eq(r.n, 3, "backing %d: %d events", f, r.n);
        cr_assert_eq(r.e[0].kind, EV_ADDED);
        cr_assert_eq(r.e[1].kind, EV_DESTROYED);
        cr_assert_eq(r.e[2].kind, EV_REMOVED);
        cr_assert_eq(r.e[2].base, r.e[0].base);
        cr_assert_eq(r.e[2].size, r.e[0].size);
    }
}

Test(arena_listen, close_without_listener_and_after_detach)
{
    ca_arena *a = make(CA_ARENA_BACKING_HEAP, 1 << 16, 0);
    rec r;
    rec_init(&r, 0);
    cr_assert_eq(ca_listen(ca_arena_allocator(a), &r.l), 0);
    cr_assert_eq(ca_listen(ca_arena_allocator(a), NULL), 0);
    cr_assert_eq(ca_arena_close(a), 0);
    cr_assert_eq(r.n, 2, "a detached listener hears nothing of the close");
}

Test(arena_listen, reset_event)
{
    ca_arena *a = make(CA_ARENA_BACKING_HEAP, 1 << 18, 0);
    ca_allocator *al = ca_arena_allocator(a);
    rec r;
    rec_init(&r, 0);
    cr_assert_eq(ca_listen(al, &r.l), 0);
    for (int i = 0; i < 10; i++)
        cr_assert_not_null(ca_alloc(al, 500, 16));
    cr_assert_eq(ca_reset(al), 0);
    cr_assert_eq(r.n, 2);
    cr_assert_eq(r.e[1].kind, EV_RESET, "the reset is reported");
    cr_assert_eq(ca_arena_cursor(a), ca_arena_data_start(a), "the reset was done when the event came");
    cr_assert_eq(ca_arena_reset(a), 0);
    cr_assert_eq(r.n, 3);
    cr_assert_eq(r.e[2].kind, EV_RESET);
    void *p = ca_alloc(al, 100, 16);
    cr_assert(inside(&r.e[0], p, 100), "the region is still the reported one");
    cr_assert_eq(ca_arena_close(a), 0);
    cr_assert_eq(r.n, 5);
    cr_assert_eq(r.e[3].kind, EV_DESTROYED);
    cr_assert_eq(r.e[4].kind, EV_REMOVED);
}

Test(arena_listen, read_only_reset_has_no_event)
{
    ca_arena *a;
    ca_arena_error why;
    cr_assert_eq(ca_arena_create_file(&a, path_of("ro.arena"), NULL, &why), 0);
    cr_assert_eq(ca_arena_close(a), 0);
    cr_assert_eq(ca_arena_open_file(&a, path_of("ro.arena"), CA_ARENA_READ_ONLY, NULL, &why), 0);
    rec r;
    rec_init(&r, 0);
    cr_assert_eq(ca_listen(ca_arena_allocator(a), &r.l), 0);
    cr_assert_eq(ca_arena_reset(a), EROFS);
    cr_assert_eq(r.n, 1);
    cr_assert_eq(ca_arena_close(a), 0);
    cr_assert_eq(r.n, 3);
}

Test(arena_listen, refusing_listener)
{
    ca_arena *a = make(CA_ARENA_BACKING_ANON, 1 << 16, 0);
    ca_allocator *al = ca_arena_allocator(a);
    void *p = ca_alloc(al, 64, 16);
    cr_assert_not_null(p);
    rec no, yes;
    rec_init(&no, EACCES);
    rec_init(&yes, 0);
    cr_assert_eq(ca_listen(al, &no.l), EACCES, "attach returns added()'s errno");
    cr_assert_eq(no.n, 1);
    cr_assert_eq(no.e[0].kind, EV_ADDED);
    cr_assert_eq(ca_listen(al, NULL), 0);
    cr_assert_eq(no.n, 1, "nothing was attached: no removed()");
    /* the arena is unchanged and free for another listener */
    void *q = ca_alloc(al, 64, 16);
    cr_assert_not_null(q);
    ca_free(al, q, 64, 16);
    cr_assert_eq(ca_listen(al, &yes.l), 0);
    cr_assert_eq(ca_arena_close(a), 0);
    cr_assert_eq(no.n, 1);
    cr_assert_eq(yes.n, 3);
}

/* ------------------------------------------------------------------------
 * Attach and detach while other threads allocate
 * ------------------------------------------------------------------------ */

typedef struct race {
    ca_arena *a;
    int stop;    /* atomic */
    int outside; /* atomic: blocks seen outside the region */
    uintptr_t lo, hi;
} race;

static void *racer(void *arg)
{
    race *s = (race *)arg;
    ca_allocator *al = ca_arena_allocator(s->a);
    ca_rng g = {(uint64_t)(uintptr_t)&g};
    void *mine[16] = {0};
    size_t sz[16] = {0};
    while (!__atomic_load_n(&s->stop, __ATOMIC_ACQUIRE)) {
        unsigned k = (unsigned)ca_rng_below(&g, 16);
        if (mine[k]) {
            ca_free(al, mine[k], sz[k], 16);
            mine[k] = NULL;
        } else {
            sz[k] = 16 + (size_t)ca_rng_below(&g, 2000);
            mine[k] = ca_alloc(al, sz[k], 16);
            uintptr_t x = (uintptr_t)mine[k];
            if (mine[k] && (x < s->lo || x + sz[k] > s->hi))
                __atomic_store_n(&s->outside, 1, __ATOMIC_RELAXED);
        }
    }
    for (int k = 0; k < 16; k++)
        if (mine[k])
            ca_free(al, mine[k], sz[k], 16);
    return NULL;
}

Test(arena_listen, attach_detach_while_allocating)
{
    if (CA_CHECKS >= CA_CHECKS_FULL) /* the exact walk after each operation wants one thread inside */
        cr_skip_test("checks=full: three threads on one arena (run at checks=on)");
    race s;
    memset(&s, 0, sizeof s);
    s.a = make(CA_ARENA_BACKING_HEAP, 4 << 20, 0);
    ca_allocator *al = ca_arena_allocator(s.a);
    rec r0;
    rec_init(&r0, 0);
    cr_assert_eq(ca_listen(al, &r0.l), 0);
    s.lo = (uintptr_t)r0.e[0].base;
    s.hi = s.lo + r0.e[0].size;
    cr_assert_eq(ca_listen(al, NULL), 0);
    pthread_t t[3];
    for (int i = 0; i < 3; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, racer, &s), 0);
    for (int i = 0; i < 2000; i++) {
        rec r;
        rec_init(&r, 0);
        cr_assert_eq(ca_listen(al, &r.l), 0);
        cr_assert_eq(ca_listen(al, NULL), 0);
        cr_assert_eq(r.n, 2);
        cr_assert(r.e[0].kind == EV_ADDED && r.e[1].kind == EV_REMOVED);
        cr_assert(r.e[0].base == r0.e[0].base && r.e[0].size == r0.e[0].size);
        cr_assert(r.e[1].base == r0.e[0].base && r.e[1].size == r0.e[0].size);
    }
    __atomic_store_n(&s.stop, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    cr_assert_eq(s.outside, 0);
    cr_assert_null(ca_arena_check(s.a));
    cr_assert_eq(ca_arena_close(s.a), 0);
}
