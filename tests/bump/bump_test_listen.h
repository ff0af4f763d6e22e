/* SPDX-License-Identifier: MIT */
/*
 * A recording ca_listener for the bump tests: every event in order, the set
 * of ranges currently reported (added and not yet removed), and the errors
 * a correct allocator never causes (a range added twice or overlapping a
 * live one, a removal of a range that is not live). It can refuse added()
 * with a chosen errno after a number of accepted calls. Thread-safe (one
 * mutex), so a shared bump may report from any thread.
 */
#ifndef BUMP_TEST_LISTEN_H
#define BUMP_TEST_LISTEN_H

#include <ctxalloc/core.h>
#include <pthread.h>
#include <string.h>

enum { EV_ADDED = 1, EV_REMOVED, EV_RESET, EV_DESTROYED, EV_REFUSED };

typedef struct rec_event {
    int kind;
    void *base;
    size_t size;
} rec_event;

#define REC_MAX_EVENTS 16384
#define REC_MAX_LIVE 4096

typedef struct recorder {
    ca_listener l;
    pthread_mutex_t mu;
    rec_event ev[REC_MAX_EVENTS]; /* in order; beyond the bound only counted */
    size_t nev;
    rec_event live[REC_MAX_LIVE]; /* ranges added and not removed */
    size_t nlive;
    int refuse;       /* errno added() returns once accept_left reaches 0; 0: accept */
    long accept_left; /* added() calls still accepted while refuse is set */
    int errors;       /* duplicate / overlapping adds, removals of unknown ranges */
    /* Called from added() with the range (under the mutex), e.g. to check
     * that no block of it was handed out yet. */
    void (*on_added)(struct recorder *r, void *base, size_t size);
} recorder;

static void rec_push(recorder *r, int kind, void *base, size_t size)
{
    if (r->nev < REC_MAX_EVENTS)
        r->ev[r->nev] = (rec_event){kind, base, size};
    r->nev++;
}

static int rec_added(ca_listener *l, void *base, size_t size)
{
    recorder *r = (recorder *)l;
    pthread_mutex_lock(&r->mu);
    if (r->refuse && r->accept_left-- <= 0) {
        int e = r->refuse;
        rec_push(r, EV_REFUSED, base, size);
        pthread_mutex_unlock(&r->mu);
        return e;
    }
    for (size_t i = 0; i < r->nlive; i++) {
        char *a = (char *)r->live[i].base, *b = (char *)base;
        if (a < b + size && b < a + r->live[i].size)
            r->errors++;
    }
    if (size == 0 || r->nlive == REC_MAX_LIVE)
        r->errors++;
    else
        r->live[r->nlive++] = (rec_event){EV_ADDED, base, size};
    rec_push(r, EV_ADDED, base, size);
    if (r->on_added)
        r->on_added(r, base, size);
    pthread_mutex_unlock(&r->mu);
    return 0;
}

static void rec_removed(ca_listener *l, void *base, size_t size)
{
    recorder *r = (recorder *)l;
    pthread_mutex_lock(&r->mu);
    size_t i = 0;
    while (i < r->nlive && !(r->live[i].base == base && r->live[i].size == size))
        i++;
    if (i == r->nlive)
        r->errors++;
    else
        r->live[i] = r->live[--r->nlive];
    rec_push(r, EV_REMOVED, base, size);
    pthread_mutex_unlock(&r->mu);
}

static void rec_reset(ca_listener *l)
{
    recorder *r = (recorder *)l;
    pthread_mutex_lock(&r->mu);
    rec_push(r, EV_RESET, NULL, 0);
    pthread_mutex_unlock(&r->mu);
}

static void rec_destroyed(ca_listener *l)
{
    recorder *r = (recorder *)l;
    pthread_mutex_lock(&r->mu);
    rec_push(r, EV_DESTROYED, NULL, 0);
    pthread_mutex_unlock(&r->mu);
}

static inline void rec_init(recorder *r)
{
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
    r->l.added = rec_added;
    r->l.removed = rec_removed;
    r->l.reset = rec_reset;
    r->l.destroyed = rec_destroyed;
}

/* Forget the events so far (the live set stays). */
static inline void rec_clear_events(recorder *r)
{
    pthread_mutex_lock(&r->mu);
    r->nev = 0;
    pthread_mutex_unlock(&r->mu);
}

static inline size_t rec_count(recorder *r, int kind)
{
    size_t n = 0;
    for (size_t i = 0; i < r->nev && i < REC_MAX_EVENTS; i++)
        n += r->ev[i].kind == kind;
    return n;
}

/* Whether [p, p + n) lies inside one live range. */
static inline int rec_covers(recorder *r, const void *p, size_t n)
{
    for (size_t i = 0; i < r->nlive; i++) {
        const char *a = (const char *)r->live[i].base;
        if ((const char *)p >= a && (const char *)p + n <= a + r->live[i].size)
            return 1;
    }
    return 0;
}

/* Whether exactly this range is live. */
static inline int rec_has(recorder *r, const void *base, size_t size)
{
    for (size_t i = 0; i < r->nlive; i++)
        if (r->live[i].base == base && r->live[i].size == size)
            return 1;
    return 0;
}

#endif
