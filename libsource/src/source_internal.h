/* SPDX-License-Identifier: MIT */
/*
 * Private header of libsource: helpers shared by the source files (counter
 * updates, the checks=on range record, fault points, ops-table identities).
 * Tests include it to reach the internals.
 */
#ifndef CA_SOURCE_INTERNAL_H
#define CA_SOURCE_INTERNAL_H

#include <ctxalloc/source.h>

#ifndef CA_SOURCE_HAVE_NUMA
#define CA_SOURCE_HAVE_NUMA 0
#endif

#define CA_SOURCE__NAME "source"

/* 2 MiB and 1 GiB, the x86-64 huge page sizes. */
#define CA_SOURCE__2M ((size_t)2 << 20)
#define CA_SOURCE__1G ((size_t)1 << 30)

/* ---- counters ---------------------------------------------------------
 * `atomic` selects __atomic updates (thread-safe sources) or plain ones. */
static inline void ca_source__add(uint64_t *f, uint64_t v, bool atomic)
{
    if (atomic)
        __atomic_fetch_add(f, v, __ATOMIC_RELAXED);
    else
        *f += v;
}

static inline void ca_source__sub(uint64_t *f, uint64_t v, bool atomic)
{
    if (atomic)
        __atomic_fetch_sub(f, v, __ATOMIC_RELAXED);
    else
        *f -= v;
}

/* in_use += v and raise the peak. */
void ca_source__in_use_add(ca_source_counters *c, uint64_t v, bool atomic);

/* Counters after releasing a tracked range of `size` bytes of which
 * `committed` were committed; `reserved_only` when it was never obtained. */
static inline void ca_source__count_release(ca_source_counters *c, uint64_t size, uint64_t committed,
                                            bool reserved_only)
{
    ca_source__sub(&c->reserved, size, true);
    ca_source__sub(&c->committed, committed, true);
    if (!reserved_only)
        ca_source__sub(&c->in_use, size, true);
    ca_source__add(&c->releases, 1, true);
}

/* Counters after a new range of `size` bytes: obtained (`usable`: in use
 * and committed) or reserved. The kind's page counter is the caller's. */
static inline void ca_source__count_new(ca_source_counters *c, uint64_t size, bool usable)
{
    ca_source__add(&c->reserved, size, true);
    if (usable) {
        ca_source__add(&c->obtains, 1, true);
        ca_source__add(&c->committed, size, true);
        ca_source__in_use_add(c, size, true);
    } else {
        ca_source__add(&c->reserves, 1, true);
    }
}

/* Fill a ca_stats from counters (+ the fault plan's injected count). */
void ca_source__fill_stats(ca_stats *out, const char *name, const ca_source_counters *c, const ca_source_fault *f);

/* The start of a kind's init, once NULL options became the defaults:
 * EINVAL for a NULL source, else the options' fault plan at its INIT point
 * (0, or the injected errno). */
static inline int ca_source__init_start(const void *s, ca_source_fault *fault)
{
    return s ? ca_source_fault_hit(fault, CA_SOURCE_FAULT_INIT, 0) : EINVAL;
}

/* Count a failure and return err (for `return ca_source__fail(...)`). */
static inline int ca_source__fail(ca_source_counters *c, int err, bool atomic)
{
    ca_source__add(&c->failures, 1, atomic);
    return err;
}

/* ---- the record of ranges ----------------------------------------------
 * An array of (start, size, committed bytes) sorted by decreasing address
 * (new mappings usually land below the others: appends) in its own mapping, under
 * a spin lock. The mmap and file sources always keep it (exact statistics,
 * and a release of an unknown range fails with EINVAL instead of unmapping
 * someone else's memory; with checks=on it aborts). The heap source keeps it
 * only with checks=on. O(log n) lookups, O(n) insert/remove (memmove). */
#define CA_SOURCE__CHECKS_ON (CA_CHECKS >= CA_CHECKS_ON)

typedef struct ca_source__range {
    uintptr_t start;
    size_t size;
    size_t committed; /* bytes of the range committed, clamped to [0, size] */
    size_t flags;     /* CA_SOURCE__R_* */
} ca_source__range;

#define CA_SOURCE__R_RESERVED 0x1u /* came from reserve (else obtain) */
#define CA_SOURCE__R_DEAD     0x2u /* released; kept (start intact) until compaction */

void ca_source__track_init(ca_source_track *t);
void ca_source__track_destroy(ca_source_track *t);
/* Record a range; 0 or ENOMEM (the record could not grow). */
int ca_source__track_add(ca_source_track *t, void *p, size_t size, size_t committed, unsigned flags);
/* Remove exactly (p, size) into *out; 0 or EINVAL when not recorded. */
int ca_source__track_take(ca_source_track *t, void *p, size_t size, ca_source__range *out);
/* Add delta (> 0 commit, < 0 decommit) to the committed bytes of the range
 * holding [p, p + size), clamped; *applied gets the change made.
 * 0 or EINVAL when no recorded range holds it. */
int ca_source__track_adjust(ca_source_track *t, const void *p, size_t size, bool commit, int64_t *applied);
/* 0 when [p, p + size) lies inside one recorded range, else EINVAL; *flags
 * (may be NULL) receives that range's CA_SOURCE__R_* flags. */
int ca_source__track_within(ca_source_track *t, const void *p, size_t size, unsigned *flags);
/* 0 when (p, size) is exactly a live range that was obtained (not
 * reserved); else EINVAL. */
int ca_source__track_exact(ca_source_track *t, const void *p, size_t size);
/* The live obtained range recorded at exactly (p, size) grows to new_size, the new
 * bytes committed; EINVAL when there is no such range or it would overlap
 * the next recorded one. */
int ca_source__track_extend(ca_source_track *t, const void *p, size_t size, size_t new_size);
/* The live obtained range recorded at exactly (p, size) shrinks to new_size (> 0);
 * *dropped receives the committed bytes that went with the tail. */
int ca_source__track_shrink(ca_source_track *t, const void *p, size_t size, size_t new_size, size_t *dropped);
/* Sorted and disjoint; NULL or a message. Sums into *bytes, *committed. */
const char *ca_source__track_check(ca_source_track *t, uint64_t *bytes, uint64_t *committed);
/* Call fn on every range (under the lock; fn must not call back). */
void ca_source__track_each(ca_source_track *t, void (*fn)(void *ctx, const ca_source__range *r), void *ctx);

/* Report a bad range: aborts with checks=on, else returns EINVAL. */
int ca_source__bad_range(const void *p, const char *what);

/* The record's side of release, commit and decommit, for the kinds that
 * always keep it (mmap, file). `what` is the bad-range report.
 * take: (p, size) leaves the record into *r, or a bad range is reported.
 * change: before a commit or decommit (point: CA_SOURCE_FAULT_COMMIT or
 * _DECOMMIT), [p, p + size) lies inside one recorded range (*flags, may be
 * NULL, receives its CA_SOURCE__R_* flags), or a bad range is reported;
 * then the fault plan decides at point.
 * put_back: a release whose system call failed records it again.
 * committed: after a commit (or decommit) of [p, p + size) inside a
 * recorded range, the range's committed bytes and the counters follow. */
int ca_source__track_release(ca_source_track *t, void *p, size_t size, const char *what, ca_source__range *r);
int ca_source__track_change(ca_source_track *t, ca_source_fault *f, unsigned point, void *p, size_t size,
                            unsigned *flags, const char *what);
void ca_source__track_put_back(ca_source_track *t, void *p, size_t size, const ca_source__range *r);
void ca_source__track_committed(ca_source_track *t, ca_source_counters *c, void *p, size_t size, bool commit);

/* ---- invariant walks ------------------------------------------------- */
/* Each kind's walk; `totals` also compares the counters, which is exact only
 * while no other thread is inside the source. */
const char *ca_source__mmap_check(const ca_source *s, bool totals);
const char *ca_source__file_check(const ca_source *s, bool totals);
const char *ca_source__slots_check(const ca_source *s, bool totals);
const char *ca_source__heap_check(const ca_source *s, bool totals);
const char *ca_source__buffer_check(const ca_source *s, bool totals);

/* The two uses of a kind's walk: kind_check is its ops table's check entry
 * (exact; core.h's check contract), kind_live the walk checks=full runs
 * after every successful operation (CA_SOURCE__FULL), which for the
 * thread-safe kinds covers the structure only (record, lists), since other
 * threads may be between two counter updates. */
#define CA_SOURCE__WALKS(kind)                                                                         \
    static const char *kind##_check(const ca_source *s) { return ca_source__##kind##_check(s, true); } \
    ca_attr_unused static const char *kind##_live(const ca_source *s)                                  \
    {                                                                                                  \
        return ca_source__##kind##_check(s, false);                                                    \
    }
#define CA_SOURCE__FULL(s, kind) CA_CHECK_WALK(CA_SOURCE__NAME, (s), kind##_live)

/* A kind's entry points (kind_obtain, kind_release, kind_stats and, with
 * reserve / commit / decommit, kind_reserve, kind_commit, kind_decommit)
 * declared ahead of its ops tables, with its two walks. */
#define CA_SOURCE__DECLARE(kind)                                                     \
    static int kind##_obtain(ca_source *src, size_t size, size_t align, void **out); \
    static int kind##_release(ca_source *src, void *p, size_t size);                 \
    static int kind##_stats(const ca_source *src, ca_stats *out);                    \
    CA_SOURCE__WALKS(kind)
#define CA_SOURCE__DECLARE_COMMIT(kind)                                               \
    CA_SOURCE__DECLARE(kind)                                                          \
    static int kind##_reserve(ca_source *src, size_t size, size_t align, void **out); \
    static int kind##_commit(ca_source *src, void *p, size_t size);                   \
    static int kind##_decommit(ca_source *src, void *p, size_t size);

/* A kind's ops table, named "source-<kind>"; _COMMIT for the kinds with
 * reserve / commit / decommit (the others leave those entries NULL). */
#define CA_SOURCE__OPS_FIELDS(kind, caps_)                                                        \
    .name = "source-" #kind, .caps = (caps_), .obtain = kind##_obtain, .release = kind##_release, \
    .stats = kind##_stats, .check = kind##_check
#define CA_SOURCE__OPS(kind, caps_)        \
    {                                      \
        CA_SOURCE__OPS_FIELDS(kind, caps_) \
    }
#define CA_SOURCE__OPS_COMMIT(kind, caps_)                                                      \
    {                                                                                           \
        CA_SOURCE__OPS_FIELDS(kind, caps_), .reserve = kind##_reserve, .commit = kind##_commit, \
                                            .decommit = kind##_decommit,                        \
    }

/* ---- NUMA (numa.c) ---------------------------------------------------- */
/* Apply the policy stored in an mmap source (mode, mask copy). */
int ca_source__numa_apply_raw(void *p, size_t size, unsigned mode, const unsigned long *nodes, size_t maxnode);

/* ---- lock for small critical sections (core's lock word) -------------- */
/* The lock words of the sources, with their rank (core.h, "Lock order"). */
static inline void ca_source__spin_lock(int *l, unsigned rank) { ca_lock_acquire_ranked(l, rank, "source"); }
static inline void ca_source__spin_unlock(int *l, unsigned rank) { ca_lock_release_ranked(l, rank); }

#endif
