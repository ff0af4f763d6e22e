/* SPDX-License-Identifier: MIT */
/*
 * A recording listener for the large tier's listen tests: keeps the live
 * set of ranges it was told about (added minus removed), counts events and
 * the protocol errors it sees (a range reported twice or overlapping a live
 * one, a removal of a range it does not hold, a range off the page grid, an
 * event after destroyed other than removed). Thread-safe (its own mutex),
 * never calls into the tier. Also: the tier's own range set, read from its
 * private lists (only while no other thread uses the tier).
 */
#ifndef BINNED_LARGE_TEST_LISTEN_H
#define BINNED_LARGE_TEST_LISTEN_H

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "large_internal.h"

#define REC_MAX 4096

typedef struct rec_range {
    uintptr_t base;
    size_t size;
} rec_range;

typedef struct rec {
    ca_listener l; /* first member */
    pthread_mutex_t m;
    int refuse;          /* errno returned by added() (0: accept) */
    int refuse_nth;      /* > 0: refuse only the added() with this number (1-based) */
    rec_range live[REC_MAX];
    unsigned nlive;
    unsigned added, removed, destroyed, refused;
    unsigned removed_after_destroyed; /* removed() calls that came after destroyed() */
    unsigned errors;
    const char *first_error;
    char order[256]; /* event kinds in order: A (added), X (refused), R, D */
    unsigned norder;
} rec;

static inline void rec_error(rec *r, const char *what)
{
    if (!r->errors++)
        r->first_error = what;
}

static inline void rec_order(rec *r, char k)
{
    if (r->norder + 1 < sizeof r->order)
        r->order[r->norder++] = k;
}

static inline int rec_find(const rec *r, uintptr_t p)
{
    for (unsigned i = 0; i < r->nlive; i++)
        if (p >= r->live[i].base && p - r->live[i].base < r->live[i].size)
            return (int)i;
    return -1;
}

static inline int rec_on_added(ca_listener *l, void *base, size_t size)
{
    rec *r = (rec *)(void *)l;
    pthread_mutex_lock(&r->m);
    uintptr_t b = (uintptr_t)base;
    int rc = 0;
    r->added++;
    if (r->destroyed)
        rec_error(r, "added after destroyed");
    if (b % CA_OWNER_PAGE || size % CA_OWNER_PAGE || !size)
        rec_error(r, "range not whole pages");
    for (unsigned i = 0; i < r->nlive; i++)
        if (b < r->live[i].base + r->live[i].size && r->live[i].base < b + size)
            rec_error(r, "range overlaps (or repeats) a live one");
    if (r->refuse && (r->refuse_nth == 0 || (unsigned)r->refuse_nth == r->added))
        rc = r->refuse;
    if (rc) {
        r->refused++;
        rec_order(r, 'X');
    } else if (r->nlive < REC_MAX) {
        r->live[r->nlive++] = (rec_range){b, size};
        rec_order(r, 'A');
    } else {
        rec_error(r, "recorder full");
    }
    pthread_mutex_unlock(&r->m);
    return rc;
}

static inline void rec_on_removed(ca_listener *l, void *base, size_t size)
{
    rec *r = (rec *)(void *)l;
    pthread_mutex_lock(&r->m);
    r->removed++;
    if (r->destroyed)
        r->removed_after_destroyed++;
    int i = rec_find(r, (uintptr_t)base);
    if (i < 0 || r->live[i].base != (uintptr_t)base || r->live[i].size != size) {
        rec_error(r, "removed a range that is not live");
    } else {
        r->live[i] = r->live[--r->nlive];
    }
    rec_order(r, 'R');
    pthread_mutex_unlock(&r->m);
}

static inline void rec_on_destroyed(ca_listener *l)
{
    rec *r = (rec *)(void *)l;
    pthread_mutex_lock(&r->m);
    if (r->destroyed++)
        rec_error(r, "destroyed twice");
    rec_order(r, 'D');
    pthread_mutex_unlock(&r->m);
}

static inline void rec_on_reset(ca_listener *l)
{
    rec *r = (rec *)(void *)l;
    pthread_mutex_lock(&r->m);
    rec_error(r, "reset from a tier that has no reset");
    pthread_mutex_unlock(&r->m);
}

static inline void rec_init(rec *r)
{
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->m, NULL);
    r->l.added = rec_on_added;
    r->l.removed = rec_on_removed;
    r->l.destroyed = rec_on_destroyed;
    r->l.reset = rec_on_reset;
}

static inline void rec_fini(rec *r) { pthread_mutex_destroy(&r->m); }

/* Whether [p, p + n) lies inside one live range. */
static inline bool rec_holds(rec *r, const void *p, size_t n)
{
    pthread_mutex_lock(&r->m);
    int i = rec_find(r, (uintptr_t)p);
    bool ok = i >= 0 && n <= r->live[i].size - ((uintptr_t)p - r->live[i].base);
    pthread_mutex_unlock(&r->m);
    return ok;
}

/* The tier's ranges (regions of every class, then direct mappings), read
 * from its lists without locks: only while no other thread uses the tier. */
static inline unsigned tier_ranges(ca_binned_large *l, rec_range *out, unsigned max)
{
    unsigned n = 0;
    for (unsigned i = 0; i <= l->nclasses; i++) {
        ca_binned__large_class *c = i < l->nclasses ? &l->cls[i] : &l->direct;
        for (ca_binned__large_rgn *g = c->regions; g; g = g->next)
            if (n < max)
                out[n++] = (rec_range){(uintptr_t)g->base, g->size};
    }
    return n;
}

static inline int rec_range_cmp(const void *x, const void *y)
{
    const rec_range *a = (const rec_range *)x, *b = (const rec_range *)y;
    return a->base < b->base ? -1 : a->base > b->base ? 1 : 0;
}

/* NULL when the recorder's live set equals the tier's range set. */
static inline const char *rec_matches_tier(rec *r, ca_binned_large *l)
{
    static rec_range t[REC_MAX], v[REC_MAX];
    unsigned nt = tier_ranges(l, t, REC_MAX);
    pthread_mutex_lock(&r->m);
    unsigned nv = r->nlive;
    memcpy(v, r->live, nv * sizeof v[0]);
    pthread_mutex_unlock(&r->m);
    if (nt != nv)
        return "the recorded live set and the tier differ in size";
    qsort(t, nt, sizeof t[0], rec_range_cmp);
    qsort(v, nv, sizeof v[0], rec_range_cmp);
    for (unsigned i = 0; i < nt; i++)
        if (t[i].base != v[i].base || t[i].size != v[i].size)
            return "the recorded live set and the tier differ";
    return NULL;
}

#endif
