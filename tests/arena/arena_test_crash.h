/* SPDX-License-Identifier: MIT */
/*
 * The record the arena crash tests keep in the arena's user area: two
 * tables, each with a unique tag that becomes the flush's commit tag (and a
 * third, always empty: the "no table" marker). After a recovery the table
 * whose tag is the recovered commit tag describes the file. The includer
 * defines CRASH_MAXR (records per table) before including this header.
 */
#ifndef ARENA_TEST_CRASH_H
#define ARENA_TEST_CRASH_H

#include <ctxalloc/arena.h>
#include <stdint.h>

typedef struct rec {
    uint64_t off;
    uint32_t size;
    uint32_t freed;
} rec;

typedef struct table {
    uint64_t seq; /* tag */
    uint64_t n;
    rec r[CRASH_MAXR];
} table;

/* Options of a crash test's file: optimistic free list, the record's user
 * area; capacity and user version per test. */
static inline void crash_options(ca_arena_options *o, uint64_t capacity, uint32_t version)
{
    ca_arena_options_init(o);
    o->freelist = CA_ARENA_FREELIST_OPTIMISTIC;
    o->capacity = capacity;
    o->user_size = 3 * sizeof(table); /* [2] stays empty: the 'no table' marker */
    o->user_version = version;
}

static inline table *tables(ca_arena *a) { return (table *)ca_arena_user_area(a, NULL); }

/* The table that describes the file (NULL for a fresh file: no table yet;
 * &tables(a)[2] when no table has the commit tag, reported by the caller). */
static inline table *current(ca_arena *a)
{
    table *t = tables(a);
    uint64_t tag = ca_arena_commit_tag(a);
    if (tag == 0)
        return NULL;
    if (__atomic_load_n(&t[0].seq, __ATOMIC_ACQUIRE) == tag)
        return &t[0];
    if (__atomic_load_n(&t[1].seq, __ATOMIC_ACQUIRE) == tag)
        return &t[1];
    return &t[2];
}

#endif
