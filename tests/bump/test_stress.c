/* SPDX-License-Identifier: MIT */
/*
 * Seeded differential tests against shadow models (CA_TEST_SEED, scaled by
 * CA_TEST_SCALE; at least 20,000 operations each):
 *
 *  exact:   a fixed region against a model that is just an offset cursor,
 *           a stack of saved cursors and a stack of destructor objects. It
 *           predicts every address, every NULL, and every tip reclaim.
 *  content: a growing bump (chunks, oversized chunks, checkpoints, resets)
 *           against a list of live blocks with their tags: no block may
 *           overlap another, contents survive every other operation,
 *           rewinds drop exactly the blocks newer than the mark, destructors
 *           run exactly for the objects dropped.
 */
#include <criterion/criterion.h>
#include <ctxalloc/bump.h>
#include <stdlib.h>

#include "bump_test.h"
#include "ca_test.h"

typedef struct blk {
    char *p;
    size_t size;
    uint64_t tag;
    uint64_t seq;
    bool dtor;
} blk;

#define MAXLIVE 8192
static blk live[MAXLIVE];
static int nlive;
static uint64_t seqno;

static void add_live(char *p, size_t size, uint64_t tag, bool dtor)
{
    cr_assert_lt(nlive, MAXLIVE);
    if (size)
        ca_test_fill(p, size, tag);
    live[nlive++] = (blk){p, size, tag, ++seqno, dtor};
}

static void verify_all(const char *when, int op)
{
    for (int i = 0; i < nlive; i++)
        cr_assert(ca_test_verify(live[i].p, live[i].size, live[i].tag), "%s op %d: block %p (%zu) corrupted", when,
                  op, (void *)live[i].p, live[i].size);
}

/* ---- exact model over a fixed region ---------------------------------- */

typedef struct model {
    uintptr_t begin, end, cur;
    uintptr_t marks[64];
    uint64_t mark_seq[64];
    int nmarks;
    uintptr_t dtor_obj[4096];
    int ndtors;
    int dtor_at_mark[64];
    ca_bump_mark saved[64];
} model;

static uintptr_t m_alloc(model *m, size_t size, size_t align)
{
    size_t n = size ? size : 1;
    uintptr_t p = ca_align_up(m->cur, align);
    if (p > m->end || n > m->end - p)
        return 0;
    m->cur = p + n;
    return p;
}

static int dtors_run;
static void dtor_fn(void *obj, void *arg) { dtors_run++; }

Test(stress, exact_model_fixed_region)
{
    static char buf[64 << 10];
    ca_bump b;
    cr_assert_eq(ca_bump_init_fixed(&b, buf, sizeof buf), 0);
    static model m;
    memset(&m, 0, sizeof m);
    m.begin = m.cur = (uintptr_t)b.cur;
    m.end = (uintptr_t)b.end;
    ca_rng r = {ca_test_seed()};
    nlive = 0;
    dtors_run = 0;
    long nops = 25000 * (long)ca_test_scale();
    long reclaimed = 0;
    for (long i = 0; i < nops; i++) {
        unsigned op = (unsigned)ca_rng_below(&r, 100);
        size_t size = (size_t)ca_rng_below(&r, ca_rng_below(&r, 16) == 0 ? 3000 : 130);
        size_t align = (size_t)1 << ca_rng_below(&r, ca_rng_below(&r, 8) == 0 ? 9 : 5);
        if (op < 45) {
            uintptr_t want = m_alloc(&m, size, align);
            char *p = (char *)ca_bump_alloc(&b, size, align);
            cr_assert_eq((uintptr_t)p, want, "op %ld: alloc(%zu, %zu) = %p, model %p", i, size, align, (void *)p,
                         (void *)want);
            if (p)
                add_live(p, size, (uint64_t)i, false);
            else
                cr_assert_eq(errno, ENOMEM);
        } else if (op < 65 && nlive) {
            /* free: mostly the newest block, sometimes any */
            int k = ca_rng_below(&r, 4) ? nlive - 1 : (int)ca_rng_below(&r, (uint64_t)nlive);
            blk x = live[k];
            size_t n = x.size ? x.size : 1;
            bool tip = (uintptr_t)x.p + n == m.cur && !(m.ndtors && m.dtor_obj[m.ndtors - 1] == (uintptr_t)x.p);
            if (tip) {
                m.cur = (uintptr_t)x.p;
                reclaimed++;
            }
            ca_bump_free(&b, x.p, x.size);
            cr_assert_eq((uintptr_t)b.cur, m.cur, "op %ld: free cursor", i);
            if (!x.dtor) {
                live[k] = live[--nlive];
            }
        } else if (op < 75 && nlive) {
            int k = ca_rng_below(&r, 3) ? nlive - 1 : (int)ca_rng_below(&r, (uint64_t)nlive);
            blk *x = &live[k];
            if (x->dtor)
                continue;
            unsigned flags = ca_rng_below(&r, 3) == 0 ? CA_RESIZE_IN_PLACE : 0;
            size_t on = x->size ? x->size : 1, nn = size ? size : 1;
            uintptr_t want;
            if ((uintptr_t)x->p + on == m.cur && nn <= m.end - (uintptr_t)x->p) {
                m.cur = (uintptr_t)x->p + nn;
                want = (uintptr_t)x->p;
            } else if ((uintptr_t)x->p + on != m.cur && nn <= on) {
                want = (uintptr_t)x->p;
            } else if (flags) {
                want = 0;
            } else {
                want = m_alloc(&m, size, 16);
            }
            char *q = (char *)ca_bump_resize(&b, x->p, x->size, size, 16, flags);
            cr_assert_eq((uintptr_t)q, want, "op %ld: resize(%zu -> %zu) = %p, model %p", i, x->size, size,
                         (void *)q, (void *)want);
            if (q) {
                size_t keep = x->size < size ? x->size : size;
                cr_assert(ca_test_verify(q, keep, x->tag), "op %ld: resize lost data", i);
                if (q != x->p)
                    x->seq = ++seqno;
                x->p = q;
                x->size = size;
                ca_test_fill(q, size, x->tag);
            }
        } else if (op < 83) {
            if (m.nmarks == 64)
                continue;
            ca_bump_mark mk;
            uintptr_t before = m.cur;
            uintptr_t rec = m_alloc(&m, 48, 16);
            int e = ca_bump_save(&b, &mk);
            cr_assert_eq(e, rec ? 0 : ENOMEM, "op %ld: save", i);
            if (rec) {
                m.marks[m.nmarks] = before;
                m.mark_seq[m.nmarks] = seqno;
                m.dtor_at_mark[m.nmarks] = m.ndtors;
                m.saved[m.nmarks] = mk;
                m.nmarks++;
            }
            cr_assert_eq((uintptr_t)b.cur, m.cur);
        } else if (op < 91) {
            if (!m.nmarks)
                continue;
            int k = (int)ca_rng_below(&r, (uint64_t)m.nmarks);
            ca_bump_mark mk = m.saved[k];
            int before_dtors = dtors_run;
            cr_assert_eq(ca_bump_rewind(&b, &mk), 0, "op %ld: rewind", i);
            m.cur = m.marks[k];
            cr_assert_eq(dtors_run - before_dtors, m.ndtors - m.dtor_at_mark[k], "op %ld: destructors run", i);
            m.ndtors = m.dtor_at_mark[k];
            for (int j = 0; j < nlive;)
                if (live[j].seq > m.mark_seq[k])
                    live[j] = live[--nlive];
                else
                    j++;
            m.nmarks = k;
            cr_assert_eq((uintptr_t)b.cur, m.cur, "op %ld: rewind cursor", i);
        } else if (op < 97) {
            if (m.ndtors == 4096)
                continue;
            size_t a = align > 16 ? 16 : align;
            uintptr_t save = m.cur;
            uintptr_t rec = m_alloc(&m, 32, 16);
            uintptr_t obj = rec ? m_alloc(&m, size, a) : 0;
            if (!obj)
                m.cur = rec ? rec : save; /* the record is freed at the tip; padding stays */
            if (!obj && !rec)
                m.cur = save;
            char *o = (char *)ca_bump_alloc_dtor(&b, size, a, dtor_fn, NULL);
            cr_assert_eq((uintptr_t)o, obj, "op %ld: alloc_dtor", i);
            if (o) {
                m.dtor_obj[m.ndtors++] = obj;
                add_live(o, size, (uint64_t)i, true);
            }
            cr_assert_eq((uintptr_t)b.cur, m.cur, "op %ld: dtor cursor", i);
        } else {
            int before_dtors = dtors_run;
            ca_bump_reset(&b);
            cr_assert_eq(dtors_run - before_dtors, m.ndtors);
            m.cur = m.begin;
            m.nmarks = m.ndtors = 0;
            nlive = 0;
        }
        if (i % 64 == 0) {
            verify_all("exact", (int)i);
            cr_assert_null(ca_bump_check(&b));
        }
    }
    verify_all("exact end", (int)nops);
    cr_assert_gt(reclaimed, 100, "the run exercised few tip frees (%ld)", reclaimed);
    ca_bump_destroy(&b);
}

/* ---- content model over a growing bump --------------------------------- */

static int cmp_blk(const void *a, const void *b)
{
    const blk *x = (const blk *)a, *y = (const blk *)b;
    return x->p < y->p ? -1 : x->p > y->p;
}

static void check_no_overlap(int op)
{
    static blk sorted[MAXLIVE];
    memcpy(sorted, live, sizeof(blk) * (size_t)nlive);
    qsort(sorted, (size_t)nlive, sizeof(blk), cmp_blk);
    for (int i = 1; i < nlive; i++) {
        size_t n = sorted[i - 1].size ? sorted[i - 1].size : 1;
        cr_assert(sorted[i - 1].p + n <= sorted[i].p, "op %d: blocks %p+%zu and %p overlap", op,
                  (void *)sorted[i - 1].p, n, (void *)sorted[i].p);
    }
}

Test(stress, content_model_growing_bump)
{
    test_source ts;
    test_source_init(&ts);
    ca_bump b;
    ca_bump_options o = {4096, 1 << 20};
    cr_assert_eq(ca_bump_init(&b, &ts.base, &o), 0);
    ca_rng r = {ca_test_seed() ^ 0xc0ffee};
    nlive = 0;
    seqno = 0;
    dtors_run = 0;
    ca_bump_mark marks[32];
    uint64_t mark_seq[32];
    int mark_dtors[32], nmarks = 0, ndtors = 0;
    long nops = 30000 * (long)ca_test_scale();
    for (long i = 0; i < nops; i++) {
        unsigned op = (unsigned)ca_rng_below(&r, 100);
        size_t size = (size_t)ca_rng_below(&r, ca_rng_below(&r, 50) == 0 ? 300000 : 200);
        size_t align = (size_t)1 << ca_rng_below(&r, ca_rng_below(&r, 10) == 0 ? 13 : 5);
        if (nlive > MAXLIVE - 10)
            op = 99;
        if (op < 55) {
            char *p = (char *)ca_bump_alloc(&b, size, align);
            cr_assert(p && ca_is_aligned((uintptr_t)p, align));
            add_live(p, size, (uint64_t)i, false);
        } else if (op < 70 && nlive) {
            int k = ca_rng_below(&r, 3) ? nlive - 1 : (int)ca_rng_below(&r, (uint64_t)nlive);
            if (live[k].dtor)
                continue;
            ca_bump_free(&b, live[k].p, live[k].size);
            live[k] = live[--nlive];
        } else if (op < 80 && nlive) {
            int k = ca_rng_below(&r, 3) ? nlive - 1 : (int)ca_rng_below(&r, (uint64_t)nlive);
            blk *x = &live[k];
            if (x->dtor)
                continue;
            char *q = (char *)ca_bump_resize(&b, x->p, x->size, size, 16, 0);
            cr_assert_not_null(q);
            size_t keep = x->size < size ? x->size : size;
            cr_assert(ca_test_verify(q, keep, x->tag), "op %ld: resize lost data", i);
            if (q != x->p)
                x->seq = ++seqno;
            x->p = q;
            x->size = size;
            ca_test_fill(q, size, x->tag);
        } else if (op < 86 && nmarks < 32) {
            cr_assert_eq(ca_bump_save(&b, &marks[nmarks]), 0);
            mark_seq[nmarks] = seqno;
            mark_dtors[nmarks] = ndtors;
            nmarks++;
        } else if (op < 92 && nmarks) {
            int k = (int)ca_rng_below(&r, (uint64_t)nmarks);
            int before = dtors_run;
            cr_assert_eq(ca_bump_rewind(&b, &marks[k]), 0);
            cr_assert_eq(dtors_run - before, ndtors - mark_dtors[k]);
            ndtors = mark_dtors[k];
            for (int j = 0; j < nlive;)
                if (live[j].seq > mark_seq[k])
                    live[j] = live[--nlive];
                else
                    j++;
            nmarks = k;
        } else if (op < 98) {
            char *p = (char *)ca_bump_alloc_dtor(&b, size, 16, dtor_fn, NULL);
            cr_assert_not_null(p);
            add_live(p, size, (uint64_t)i, true);
            ndtors++;
        } else if (op == 99 || nmarks == 0) {
            int before = dtors_run;
            if (ca_rng_below(&r, 4))
                ca_bump_reset(&b);
            else
                ca_bump_reset_final(&b);
            cr_assert_eq(dtors_run - before, ndtors);
            nlive = nmarks = ndtors = 0;
            cr_assert_leq(ts.live, 1);
        }
        if (i % 256 == 0) {
            check_no_overlap((int)i);
            verify_all("content", (int)i);
            cr_assert_null(ca_bump_check(&b));
        }
    }
    check_no_overlap((int)nops);
    verify_all("content end", (int)nops);
    ca_bump_destroy(&b);
    cr_assert_eq(ts.live, 0);
    cr_assert_eq(ts.obtains, ts.releases);
}
