/* SPDX-License-Identifier: MIT */
/*
 * libbump private header: the records a bump keeps in its own memory, the
 * chunk helpers shared by the files of the component, and the check-line
 * writer. Tests include it to walk invariants.
 */
#ifndef CA_BUMP_INTERNAL_H
#define CA_BUMP_INTERNAL_H

#include <ctxalloc/bump.h>

/* ca_bump.mode */
#define CA_BUMP__MODE_GROW  0u /* obtains chunks as needed */
#define CA_BUMP__MODE_FIXED 1u /* one region, never grows */

/* A destructor record, allocated in the bump before its object.
 * Invariant: the list is newest first; every record lies in the bump. */
typedef struct ca_bump__dtor {
    struct ca_bump__dtor *next; /* older record */
    ca_bump_dtor_fn fn;
    void *obj;
    void *arg;
} ca_bump__dtor;

/* A checkpoint record, allocated in the bump at save time. It holds the
 * state before the save, so rewinding frees the record itself.
 * Invariant: serials strictly decrease along prev. */
typedef struct ca_bump__mark_rec {
    struct ca_bump__mark_rec *prev; /* enclosing mark */
    uint64_t serial;
    ca_bump_chunk *chunk;           /* current regular chunk at save (may be NULL) */
    char *cur;                      /* cursor at save */
    ca_bump_chunk *big;             /* newest oversized chunk at save */
    ca_bump__dtor *dtors;           /* newest destructor at save */
} ca_bump__mark_rec;

CA_STATIC_ASSERT(sizeof(ca_bump__mark_rec) == 48, "mark record size is documented as 48 bytes");
CA_STATIC_ASSERT(sizeof(ca_bump_chunk) <= CA_BUMP_CHUNK_HEADER, "chunk header fits its reserved bytes");

/* Smallest chunk the growth policy produces (bytes, header included). */
#define CA_BUMP__CHUNK_MIN ((size_t)256)

/* Regular chunk size for a bump whose regular chunks total `total` bytes:
 * max(min, total) capped by max. */
static inline size_t ca_bump__next_size(size_t min_chunk, size_t max_chunk, size_t total)
{
    size_t n = total > min_chunk ? total : min_chunk;
    return n > max_chunk ? max_chunk : n;
}

/* Write "header of a chunk" fields for a block of `bytes` at p. */
static inline ca_bump_chunk *ca_bump__chunk_format(void *p, size_t bytes)
{
    ca_bump_chunk *c = (ca_bump_chunk *)p;
    c->prev = NULL;
    c->begin = (char *)p + CA_BUMP_CHUNK_HEADER;
    c->end = (char *)ca_align_down((uintptr_t)p + bytes, CA_BUMP_FAST_ALIGN);
    c->size = bytes;
    c->cur = (uintptr_t)c->begin;
    return c;
}

/* Obtain / release a chunk of at least `bytes` (header included) from a
 * source or an allocator (exactly one non-NULL). *out is formatted. */
int ca_bump__backing_obtain(ca_source *src, ca_allocator *parent, size_t bytes, ca_bump_chunk **out);
void ca_bump__backing_release(ca_source *src, ca_allocator *parent, ca_bump_chunk *c);

/* Chunks for local bumps: from the shared bump's spare list or carved from
 * it. Thread-safe. */
int ca_bump__shared_take(ca_bump_shared *s, size_t bytes, ca_bump_chunk **out);
void ca_bump__shared_give(ca_bump_shared *s, ca_bump_chunk *c);

/* Writes "ctxalloc: bump: check: <what> (address 0x...)" to stderr without
 * allocating; returns EFAULT. */
int ca_bump__check_report(const char *what, const void *addr);

/* Whether p lies in [c->begin, c->end) of a chunk of the list. */
static inline bool ca_bump__in_list(const ca_bump_chunk *c, const void *p)
{
    for (; c; c = c->prev)
        if ((const char *)p >= c->begin && (const char *)p < c->end)
            return true;
    return false;
}

#endif
