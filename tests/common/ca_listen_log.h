/* SPDX-License-Identifier: MIT */
/*
 * A recording ca_listener for the Criterion listen tests, and the one event
 * log it shares with the test's own logging sources and parents (they call
 * log_ev(g_log, EV_OBTAIN / EV_RELEASE, ...)), so a test sees every event in
 * order: which ranges are reported, refusals, reset / destroyed / removed
 * and the releases around them.
 *
 * Invariants it asserts as events come: no range is added twice or over a
 * live one, at most max_live ranges are live (0: REC_MAX_LIVE), a removed
 * range is exactly one that is live. Single thread (the thread-safe
 * recorder of the bump tests is tests/bump/bump_test_listen.h).
 *
 * log_source: a ca_source over anonymous mmap (any power-of-two granule)
 * that logs its obtains and releases into g_log.
 */
#ifndef CA_LISTEN_LOG_H
#define CA_LISTEN_LOG_H

#include <criterion/criterion.h>
#include <ctxalloc/core.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

enum {
    EV_OBTAIN = 'o',  /* a provider handed out a range */
    EV_RELEASE = 'x', /* a provider got a range back */
    EV_ADDED = 'a',
    EV_REFUSED = 'n', /* added() called and refused */
    EV_REMOVED = 'r',
    EV_RESET = 'R',
    EV_DESTROYED = 'D',
};

typedef struct ev {
    char kind;
    void *base;
    size_t size;
} ev;

#define REC_MAX_EV   4096
#define REC_MAX_LIVE 512

typedef struct rec {
    ca_listener l; /* first member: the listener handed to ca_X_listen */
    ev log[REC_MAX_EV];
    size_t n;
    struct {
        void *base;
        size_t size;
    } live[REC_MAX_LIVE]; /* ranges added and not removed */
    size_t nlive;
    size_t max_live;   /* most ranges live at once (0: REC_MAX_LIVE) */
    int refuse;        /* errno added() returns (0: accept) */
    long accept_first; /* with refuse: accept this many added() calls first */
    /* Called first thing in every added(), e.g. to snapshot the allocator's
     * counters (hook_arg is the test's). */
    void (*hook)(struct rec *x);
    void *hook_arg;
} rec;

static rec *g_log; /* where the test's sources and parents log their events */

static inline void log_ev(rec *x, char kind, void *base, size_t size)
{
    cr_assert_lt(x->n, REC_MAX_EV, "event log full");
    x->log[x->n++] = (ev){kind, base, size};
}

static inline long live_find(const rec *x, const void *base, size_t size)
{
    for (size_t i = 0; i < x->nlive; i++)
        if (x->live[i].base == base && x->live[i].size == size)
            return (long)i;
    return -1;
}

/* Whether [p, p + n) lies inside one live range. */
static inline bool live_contains(const rec *x, const void *p, size_t n)
{
    uintptr_t a = (uintptr_t)p;
    for (size_t i = 0; i < x->nlive; i++) {
        uintptr_t b = (uintptr_t)x->live[i].base;
        if (a >= b && a + n <= b + x->live[i].size)
            return true;
    }
    return false;
}

static inline int rec_added(ca_listener *l, void *base, size_t size)
{
    rec *x = (rec *)l;
    if (x->hook)
        x->hook(x);
    if (x->refuse && x->accept_first-- <= 0) {
        log_ev(x, EV_REFUSED, base, size);
        return x->refuse;
    }
    uintptr_t b = (uintptr_t)base;
    for (size_t i = 0; i < x->nlive; i++) {
        uintptr_t o = (uintptr_t)x->live[i].base;
        cr_assert(b + size <= o || o + x->live[i].size <= b, "added range overlaps a live one");
    }
    cr_assert_lt(x->nlive, x->max_live ? x->max_live : REC_MAX_LIVE, "more ranges added than may be live");
    x->live[x->nlive].base = base;
    x->live[x->nlive].size = size;
    x->nlive++;
    log_ev(x, EV_ADDED, base, size);
    return 0;
}

static inline void rec_removed(ca_listener *l, void *base, size_t size)
{
    rec *x = (rec *)l;
    long i = live_find(x, base, size);
    cr_assert_geq(i, 0, "removed() of a range never added: %p + %zu", base, size);
    x->live[i] = x->live[--x->nlive];
    log_ev(x, EV_REMOVED, base, size);
}

static inline void rec_reset(ca_listener *l) { log_ev((rec *)l, EV_RESET, NULL, 0); }
static inline void rec_destroyed(ca_listener *l) { log_ev((rec *)l, EV_DESTROYED, NULL, 0); }

/* An empty recorder; it becomes g_log. */
static inline void rec_init(rec *x)
{
    memset(x, 0, sizeof *x);
    x->l.added = rec_added;
    x->l.removed = rec_removed;
    x->l.reset = rec_reset;
    x->l.destroyed = rec_destroyed;
    g_log = x;
}

static inline size_t count_kind(const rec *x, char kind)
{
    size_t c = 0;
    for (size_t i = 0; i < x->n; i++)
        c += x->log[i].kind == kind;
    return c;
}

/* ---- a logging source over mmap ------------------------------------------ */

typedef struct log_source {
    ca_source base;
    long live;
    size_t last_align; /* alignment of the last obtain */
} log_source;

/* Hands out ranges aligned to exactly the requested alignment and no more
 * (an odd multiple of it), so a request with too small an alignment shows
 * in the address. The slack around a range stays mapped until exit. */
static inline int ls_obtain(ca_source *s, size_t size, size_t align, void **out)
{
    log_source *t = (log_source *)s;
    int e = ca_source_check_request(s, size, align);
    if (e)
        return e;
    size_t total = size + 2 * align;
    unsigned char *p = (unsigned char *)mmap(NULL, total, PROT_READ | PROT_WRITE,
                                             MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return ENOMEM;
    unsigned char *a = (unsigned char *)ca_ptr_align_up(p, align);
    if (ca_is_aligned((uintptr_t)a, align * 2))
        a += align;
    cr_assert_leq(a + size, p + total);
    t->live++;
    t->last_align = align;
    if (g_log)
        log_ev(g_log, EV_OBTAIN, a, size);
    *out = a;
    return 0;
}

static inline int ls_release(ca_source *s, void *p, size_t size)
{
    log_source *t = (log_source *)s;
    t->live--;
    if (g_log)
        log_ev(g_log, EV_RELEASE, p, size);
    munmap(p, size);
    return 0;
}

ca_attr_unused static const ca_source_ops ls_ops = {
    "listen-log-mmap", CA_SOURCE_ZEROED, ls_obtain, ls_release, NULL, NULL, NULL, NULL, NULL};

static inline void ls_init(log_source *t, size_t granule)
{
    memset(t, 0, sizeof *t);
    t->base.ops = &ls_ops;
    t->base.granule = granule;
}

#endif
