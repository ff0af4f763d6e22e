/* SPDX-License-Identifier: MIT */
/* Every free-list kind against a shadow model, differentially: a plain
 * reimplementation of the single-threaded rules (cursor, rewind, rewind
 * through, sorted list, pieces kept or discarded by min_segment, compact)
 * predicts every offset and counter; the arena must agree after each of
 * >= 20,000 seeded operations (CA_TEST_SEED, scaled by CA_TEST_SCALE), and
 * pass ca_arena_check(), keep every live block's contents and never hand
 * out a byte twice. */
#include <criterion/criterion.h>
#include <ctxalloc/arena.h>
#include <stdlib.h>

#include "arena_internal.h"
#include "ca_test.h"

#define MAXSEG 8192
#define MAXLIVE 600

typedef struct mseg {
    uint64_t off, size;
} mseg;

typedef struct model {
    int kind;
    uint64_t cap, data, cur, min_seg, discarded, free_bytes;
    mseg list[MAXSEG];
    int n;
} model;

/* A new segment x goes before a listed y: sizes per kind, equal sizes newest first. */
static bool m_before(const model *m, mseg x, mseg y)
{
    return m->kind == CA_ARENA_FREELIST_OPTIMISTIC ? x.size >= y.size : x.size <= y.size;
}

static void m_insert(model *m, uint64_t off, uint64_t size)
{
    mseg s = {off, size};
    int i = 0;
    while (i < m->n && !m_before(m, s, m->list[i]))
        i++;
    cr_assert_lt(m->n, MAXSEG);
    memmove(&m->list[i + 1], &m->list[i], (size_t)(m->n - i) * sizeof s);
    m->list[i] = s;
    m->n++;
    m->free_bytes += size;
}

static void m_remove(model *m, int i)
{
    m->free_bytes -= m->list[i].size;
    memmove(&m->list[i], &m->list[i + 1], (size_t)(m->n - i - 1) * sizeof m->list[0]);
    m->n--;
}

static void m_give_back(model *m, uint64_t off, uint64_t size)
{
    if (!size)
        return;
    if (m->kind == CA_ARENA_FREELIST_NONE || size < m->min_seg)
        m->discarded += size;
    else
        m_insert(m, off, size);
}

static bool m_fits(uint64_t s, uint64_t sz, uint64_t b, uint64_t al)
{
    uint64_t st = ca_align_up(s, al);
    return st - s <= sz && sz - (st - s) >= b;
}

static void m_compact(model *m);

/* Take list entry i for a block of b at align; pieces go back. */
static uint64_t m_take(model *m, int i, uint64_t b, uint64_t align)
{
    mseg s = m->list[i];
    m_remove(m, i);
    uint64_t st = ca_align_up(s.off, align);
    m_give_back(m, s.off, st - s.off);
    m_give_back(m, st + b, s.off + s.size - st - b);
    return st;
}

static int m_bump(model *m, uint64_t b, uint64_t align, uint64_t *out)
{
    uint64_t st = ca_align_up(m->cur, align);
    if (st + b > m->cap)
        return ENOMEM;
    uint64_t old = m->cur;
    m->cur = st + b;
    m_give_back(m, old, st - old);
    *out = st;
    return 0;
}

static int m_alloc(model *m, size_t size, size_t align, uint64_t *out)
{
    if (align < 16)
        align = 16;
    uint64_t b = ca_align_up(size ? size : 1, 16);
    int pick = -1;
    if (m->kind == CA_ARENA_FREELIST_OPTIMISTIC && m->n && m_fits(m->list[0].off, m->list[0].size, b, align))
        pick = 0;
    if (m->kind == CA_ARENA_FREELIST_PESSIMISTIC)
        for (int i = 0; i < m->n && pick < 0; i++)
            if (m_fits(m->list[i].off, m->list[i].size, b, align))
                pick = i;
    if (pick >= 0) {
        *out = m_take(m, pick, b, align);
        return 0;
    }
    if (m_bump(m, b, align, out) == 0)
        return 0;
    /* cursor exhausted: first fit in list order; else compact and look again;
     * else the cursor again */
    if (m->kind == CA_ARENA_FREELIST_NONE)
        return ENOMEM;
    for (int i = 0; i < m->n; i++)
        if (m_fits(m->list[i].off, m->list[i].size, b, align)) {
            *out = m_take(m, i, b, align);
            return 0;
        }
    m_compact(m);
    for (int i = 0; i < m->n; i++)
        if (m_fits(m->list[i].off, m->list[i].size, b, align)) {
            *out = m_take(m, i, b, align);
            return 0;
        }
    return m_bump(m, b, align, out);
}

static void m_free(model *m, uint64_t off, size_t size)
{
    uint64_t b = ca_align_up(size ? size : 1, 16);
    if (off + b == m->cur) {
        m->cur = off;
        /* a free segment ending at the new cursor: the list is compacted */
        for (int i = 0; m->kind != CA_ARENA_FREELIST_NONE && i < m->n; i++)
            if (m->list[i].off + m->list[i].size == m->cur) {
                m_compact(m);
                break;
            }
        return;
    }
    m_give_back(m, off, b);
}

static int by_off(const void *x, const void *y)
{
    const mseg *p = x, *q = y;
    return p->off < q->off ? -1 : p->off > q->off;
}

static void m_compact(model *m)
{
    if (m->kind == CA_ARENA_FREELIST_NONE)
        return;
    mseg v[MAXSEG];
    int n = m->n;
    memcpy(v, m->list, (size_t)n * sizeof v[0]);
    qsort(v, (size_t)n, sizeof v[0], by_off);
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (k && v[k - 1].off + v[k - 1].size == v[i].off)
            v[k - 1].size += v[i].size;
        else
            v[k++] = v[i];
    }
    while (k && v[k - 1].off + v[k - 1].size == m->cur)
        m->cur = v[--k].off;
    m->n = 0;
    m->free_bytes = 0;
    for (int i = 0; i < k; i++)
        m_insert(m, v[i].off, v[i].size);
}

typedef struct live {
    uint64_t off;
    size_t size;
    uint64_t tag;
} live;

static uint64_t ctr(ca_arena *a, const char *name)
{
    ca_stats st;
    uint64_t v = 0;
    ca_arena_stats(a, &st);
    ca_stats_get_counter(&st, name, &v);
    return v;
}

static void run(int kind, unsigned bits, uint64_t ops)
{
    static model m;
    static live lv[MAXLIVE];
    ca_arena_options o;
    ca_arena_options_init(&o);
    o.freelist = (ca_arena_freelist)kind;
    o.offset_bits = bits;
    o.capacity = 1u << 20;
    o.min_segment = 48;
    o.auto_compact = CA_ARENA_AUTO_COMPACT_OFF; /* the model compacts only when asked */
    o.local_cache = CA_ARENA_LOCAL_CACHE_OFF;   /* the model is the shared cursor and list (thread caches: test_cache) */
    ca_arena *a = NULL;
    cr_assert_eq(ca_arena_create(&a, &o), 0);
    memset(&m, 0, sizeof m);
    m.kind = kind;
    m.cap = ca_arena_capacity(a);
    m.data = m.cur = ca_arena_data_start(a);
    m.min_seg = 48;
    uint8_t *owned = calloc(m.cap / 16, 1); /* shadow: one byte per grain */
    int nl = 0;
    uint64_t seed = ca_test_seed() + (uint64_t)kind * 7 + bits;
    ca_rng r = {seed};
    for (uint64_t op = 0; op < ops; op++) {
        uint64_t dice = ca_rng_below(&r, 1000);
        if (dice < 3) {
            cr_assert_eq(ca_arena_compact(a), 0);
            m_compact(&m);
        } else if (nl < MAXLIVE && (dice < 560 || nl == 0)) {
            size_t size = ca_rng_below(&r, 8) ? (size_t)ca_rng_below(&r, 257) : (size_t)ca_rng_below(&r, 4097);
            size_t align = ca_rng_below(&r, 6) ? 16 : (size_t)1 << ca_rng_below(&r, 13);
            uint64_t got = 0, want = 0;
            int e1 = ca_arena_alloc(a, size, align, &got), e2 = m_alloc(&m, size, align, &want);
            cr_assert_eq(e1, e2, "seed %llu op %llu: alloc %zu/%zu: arena %d model %d",
                         (unsigned long long)seed, (unsigned long long)op, size, align, e1, e2);
            if (e1)
                continue;
            cr_assert_eq(got, want, "seed %llu op %llu: alloc %zu/%zu at %llu, model says %llu",
                         (unsigned long long)seed, (unsigned long long)op, size, align,
                         (unsigned long long)got, (unsigned long long)want);
            cr_assert_eq(got % (align < 16 ? 16 : align), 0);
            uint64_t b = ca_align_up(size ? size : 1, 16);
            for (uint64_t g = got / 16; g < (got + b) / 16; g++) {
                cr_assert_eq(owned[g], 0, "seed %llu op %llu: byte handed out twice", (unsigned long long)seed,
                             (unsigned long long)op);
                owned[g] = 1;
            }
            lv[nl].off = got;
            lv[nl].size = size;
            lv[nl].tag = op;
            ca_test_fill(ca_arena_ptr(a, got), size, op);
            nl++;
        } else {
            int i = (int)ca_rng_below(&r, (uint64_t)nl);
            cr_assert(ca_test_verify(ca_arena_ptr(a, lv[i].off), lv[i].size, lv[i].tag),
                      "seed %llu op %llu: block contents changed", (unsigned long long)seed, (unsigned long long)op);
            cr_assert_eq(ca_arena_free(a, lv[i].off, lv[i].size), 0);
            m_free(&m, lv[i].off, lv[i].size);
            uint64_t b = ca_align_up(lv[i].size ? lv[i].size : 1, 16);
            for (uint64_t g = lv[i].off / 16; g < (lv[i].off + b) / 16; g++)
                owned[g] = 0;
            lv[i] = lv[--nl];
        }
        const char *why = ca_arena_check(a);
        cr_assert_null(why, "seed %llu op %llu: %s", (unsigned long long)seed, (unsigned long long)op, why);
        cr_assert_eq(ca_arena_cursor(a), m.cur, "seed %llu op %llu: cursor", (unsigned long long)seed,
                     (unsigned long long)op);
        cr_assert_eq(ctr(a, "free_bytes"), m.free_bytes, "op %llu: free bytes", (unsigned long long)op);
        cr_assert_eq(ctr(a, "free_segments"), (uint64_t)m.n, "op %llu: segments", (unsigned long long)op);
        cr_assert_eq(ctr(a, "discarded"), m.discarded, "op %llu: discarded", (unsigned long long)op);
    }
    for (int i = 0; i < nl; i++)
        cr_assert(ca_test_verify(ca_arena_ptr(a, lv[i].off), lv[i].size, lv[i].tag));
    free(owned);
    ca_arena_close(a);
}

#define OPS (20000 * ca_test_scale())

Test(arena_invariants, none_64) { run(CA_ARENA_FREELIST_NONE, 64, OPS); }
Test(arena_invariants, none_32) { run(CA_ARENA_FREELIST_NONE, 32, OPS); }
Test(arena_invariants, optimistic_64) { run(CA_ARENA_FREELIST_OPTIMISTIC, 64, OPS); }
Test(arena_invariants, optimistic_32) { run(CA_ARENA_FREELIST_OPTIMISTIC, 32, OPS); }
Test(arena_invariants, pessimistic_64) { run(CA_ARENA_FREELIST_PESSIMISTIC, 64, OPS); }
Test(arena_invariants, pessimistic_32) { run(CA_ARENA_FREELIST_PESSIMISTIC, 32, OPS); }
