/* SPDX-License-Identifier: MIT */
/*
 * Generic libFuzzer driver for ca_allocators: the input is decoded into a
 * sequence of operations run against the allocator and a shadow model of the
 * live blocks. Every block is filled with a pattern derived from its slot and
 * generation, verified before every free and resize, and after every
 * operation the harness's invariant check (ca_X_check) runs.
 *
 * Input format: a stream of 4-byte records [op, slot, a, b]:
 *   op % 8: 0-2 alloc (size from a,b; alignment 2^(b>>4 & 15) if op==2),
 *           3 free, 4 resize, 5 in-place resize, 6 reset (when allowed),
 *           7 usable_size / owns probe.
 * A harness file defines LLVMFuzzerTestOneInput and calls ca_fuzz_run().
 */
#ifndef FUZZ_TEST_H
#define FUZZ_TEST_H

#include <ctxalloc/core.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CA_FUZZ_SLOTS 64

#define CA_FUZZ_NO_RESET 0x1u  /* reset() not to be called */
#define CA_FUZZ_SMALL    0x2u  /* sizes up to 4 KiB only */
#define CA_FUZZ_LARGE    0x4u  /* sizes up to 2 MiB (default: 256 KiB) */

typedef struct ca_fuzz_slot {
    unsigned char *p;
    size_t size, align;
    unsigned gen;
} ca_fuzz_slot;

static inline unsigned char ca_fuzz_byte(unsigned slot, unsigned gen, size_t i)
{
    return (unsigned char)(slot * 31u + gen * 7u + i * 13u);
}

static inline void ca_fuzz_fill(ca_fuzz_slot *s, unsigned slot, size_t from)
{
    for (size_t i = from; i < s->size; i++)
        s->p[i] = ca_fuzz_byte(slot, s->gen, i);
}

static inline void ca_fuzz_verify(const ca_fuzz_slot *s, unsigned slot, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s->p[i] != ca_fuzz_byte(slot, s->gen, i)) {
            fprintf(stderr, "ca_fuzz: slot %u byte %zu of %zu corrupted\n", slot, i, s->size);
            abort();
        }
}

/* check: invariant walk of the allocator (may be NULL). */
static inline void ca_fuzz_run(ca_allocator *a, const unsigned char *data, size_t len, void (*check)(ca_allocator *),
                               unsigned flags)
{
    ca_fuzz_slot slots[CA_FUZZ_SLOTS];
    memset(slots, 0, sizeof slots);
    size_t max = (flags & CA_FUZZ_SMALL) ? 4096 : (flags & CA_FUZZ_LARGE) ? (size_t)2 << 20 : (size_t)256 << 10;
    for (size_t k = 0; k + 4 <= len; k += 4) {
        unsigned op = data[k] % 8, si = data[k + 1] % CA_FUZZ_SLOTS;
        size_t sz = (((size_t)data[k + 2] << 8) | data[k + 3]);
        size_t scale = (max >> 16) ? (max >> 16) : 1;
        sz = (data[k] & 0x80) ? (sz * scale) % (max + 1) : sz % 1025;
        ca_fuzz_slot *s = &slots[si];
        switch (op) {
        case 0:
        case 1:
        case 2: {
            if (s->p) {
                ca_fuzz_verify(s, si, s->size);
                ca_free(a, s->p, s->size, s->align);
                s->p = NULL;
            }
            size_t align = op == 2 ? (size_t)1 << ((data[k + 3] >> 4) & 12) : CA_ALIGN_DEFAULT;
            unsigned char *p = (unsigned char *)ca_alloc(a, sz, align);
            if (p) {
                if (!ca_is_aligned((uintptr_t)p, align)) {
                    fprintf(stderr, "ca_fuzz: misaligned %p for %zu\n", (void *)p, align);
                    abort();
                }
                s->p = p;
                s->size = sz;
                s->align = align;
                s->gen++;
                ca_fuzz_fill(s, si, 0);
            }
            break;
        }
        case 3:
            if (s->p) {
                ca_fuzz_verify(s, si, s->size);
                ca_free(a, s->p, s->size, s->align);
                s->p = NULL;
            }
            break;
        case 4:
        case 5:
            if (s->p) {
                ca_fuzz_verify(s, si, s->size);
                unsigned fl = op == 5 ? CA_RESIZE_IN_PLACE : 0;
                unsigned char *q = (unsigned char *)ca_resize(a, s->p, s->size, sz, s->align, fl);
                if (q) {
                    if (fl && q != s->p) {
                        fprintf(stderr, "ca_fuzz: in-place resize moved\n");
                        abort();
                    }
                    size_t keep = s->size < sz ? s->size : sz;
                    s->p = q;
                    ca_fuzz_verify(s, si, keep);
                    size_t old = s->size;
                    s->size = sz;
                    ca_fuzz_fill(s, si, old < sz ? old : sz);
                } else {
                    ca_fuzz_verify(s, si, s->size); /* failure keeps the block intact */
                }
            }
            break;
        case 6:
            if (!(flags & CA_FUZZ_NO_RESET) && a->ops->reset) {
                ca_reset(a);
                memset(slots, 0, sizeof slots);
            }
            break;
        case 7:
            if (s->p) {
                if (a->ops->owns && !ca_owns(a, s->p)) {
                    fprintf(stderr, "ca_fuzz: owns() denies a live block\n");
                    abort();
                }
                if ((ca_allocator_caps(a) & CA_CAP_UNSIZED) && ca_usable_size(a, s->p) < s->size) {
                    fprintf(stderr, "ca_fuzz: usable_size below the size\n");
                    abort();
                }
            }
            break;
        }
        if (check)
            check(a);
    }
    for (unsigned i = 0; i < CA_FUZZ_SLOTS; i++)
        if (slots[i].p) {
            ca_fuzz_verify(&slots[i], i, slots[i].size);
            ca_free(a, slots[i].p, slots[i].size, slots[i].align);
        }
    if (check)
        check(a);
}

#endif
