/* SPDX-License-Identifier: MIT */
/*
 * The listen op of libbitset: a recording listener and a logging source
 * write one event log, so the tests see which range is reported (the data
 * region, never the metadata), that it is whole pages, that every run lies
 * inside it, refusals, EBUSY, detach, and the order of reset / destroyed /
 * removed / release.
 */
#include <criterion/criterion.h>
#include <ctxalloc/bitset.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "bitset_internal.h"
#include "ca_listen_log.h"
#include "ca_test.h"

/* ---- the event log (tests/common/ca_listen_log.h) ------------------------------ */

/* A bitset reports one range, its data region: at most one is live. */
static void rec_init_one(rec *x)
{
    rec_init(x);
    x->max_live = 1;
}

static ca_bitset *new_over(log_source *src, size_t region_size, size_t bs)
{
    ca_bitset_options o;
    ca_bitset_options_init(&o);
    o.block_size = bs;
    o.region_size = region_size;
    o.source = &src->base;
    ca_bitset *b = NULL;
    cr_assert_eq(ca_bitset_create(&b, &o), 0);
    return b;
}

static void assert_clean(const ca_bitset *b)
{
    const char *what = ca_bitset_check(b);
    cr_assert_null(what, "ca_bitset_check: %s", what);
}

/* ---- tests --------------------------------------------------------------- */

Test(bitset_listen, ops_table_has_listen)
{
    log_source src;
    ls_init(&src, 4096);
    ca_bitset *b = new_over(&src, 1 << 16, 64);
    cr_assert_not_null(ca_bitset_allocator(b)->ops->listen);
    cr_assert_eq(ca_listen(ca_bitset_allocator(b), NULL), 0, "detach without a listener");
    ca_bitset_destroy(b);
    cr_assert_eq(src.live, 0);
}

Test(bitset_listen, attach_reports_the_data_region_only)
{
    log_source src;
    ls_init(&src, 4096);
    rec x;
    rec_init_one(&x);
    ca_bitset *b = new_over(&src, 1 << 20, 64);
    cr_assert_eq(x.n, 2, "two obtains: metadata and region");
    void *meta = x.log[0].base, *region = x.log[1].base;
    size_t meta_size = x.log[0].size, region_size = x.log[1].size;
    cr_assert_eq(region, ca_bitset_base(b));
    cr_assert_eq((void *)b, meta);
    void *p[4];
    size_t sizes[] = {100, 5000, 64, 70000};
    for (int i = 0; i < 4; i++)
        cr_assert_not_null(p[i] = ca_bitset_alloc(b, sizes[i], 16, NULL));

    size_t n0 = x.n;
    cr_assert_eq(ca_listen(ca_bitset_allocator(b), &x.l), 0);
    cr_assert_eq(x.n, n0 + 1);
    cr_assert_eq(x.log[n0].kind, EV_ADDED);
    cr_assert_eq(x.log[n0].base, region);
    cr_assert_eq(x.log[n0].size, region_size);
    cr_assert_eq(region_size, (size_t)1 << 20);
    uintptr_t m = (uintptr_t)meta;
    cr_assert(m + meta_size <= (uintptr_t)region || (uintptr_t)region + region_size <= m,
              "the metadata is outside the reported range");
    cr_assert_not(live_contains(&x, b, 1), "the allocator object is not reported");
    for (int i = 0; i < 4; i++)
        cr_assert(live_contains(&x, p[i], ca_bitset_usable_size(b, p[i])), "run %d outside the range", i);
    ca_bitset_destroy(b);
}

Test(bitset_listen, every_run_inside_the_reported_range)
{
    log_source src;
    ls_init(&src, 4096);
    rec x;
    rec_init_one(&x);
    ca_bitset *b = new_over(&src, 1 << 20, 256);
    cr_assert_eq(ca_bitset_listen(b, &x.l), 0);
    enum { N = 200 };
    void *live[N] = {0};
    size_t sz[N] = {0};
    ca_rng rng = {ca_test_seed()};
    uint64_t ops = 5000 * ca_test_scale();
    for (uint64_t op = 0; op < ops; op++) {
        size_t i = ca_rng_below(&rng, N);
        if (live[i]) {
            if (ca_rng_below(&rng, 4) == 0) {
                size_t ns = ca_rng_below(&rng, 20000);
                void *q = ca_bitset_resize(b, live[i], sz[i], ns, 16, 0, NULL);
                if (q) {
                    live[i] = q;
                    sz[i] = ns;
                    cr_assert(live_contains(&x, q, ca_bitset_usable_size(b, q)));
                }
            } else {
                ca_bitset_free(b, live[i], sz[i]);
                live[i] = NULL;
            }
        } else {
            size_t s = ca_rng_below(&rng, 1u << (4 + ca_rng_below(&rng, 12)));
            size_t align = ca_rng_below(&rng, 4) ? 16 : (size_t)1 << (4 + ca_rng_below(&rng, 13));
            size_t u = 0;
            void *q = ca_bitset_alloc(b, s, align, &u);
            if (q) {
                cr_assert(live_contains(&x, q, u), "run %p + %zu outside the range", q, u);
                live[i] = q;
                sz[i] = s;
            }
        }
    }
    assert_clean(b);
    cr_assert_eq(count_kind(&x, EV_ADDED), 1, "a fixed region: one added()");
    cr_assert_eq(count_kind(&x, EV_REMOVED), 0);
    ca_bitset_destroy(b);
    cr_assert_eq(x.nlive, 0);
}

Test(bitset_listen, region_from_a_source_is_whole_pages)
{
    /* A source granule below the page and a region size that is not whole
     * pages: the region is still obtained page-aligned, in whole pages. */
    size_t granules[] = {1024, 4096, 16384};
    size_t blocks[] = {16, 64, 65536};
    for (int gi = 0; gi < 3; gi++) {
        for (int bi = 0; bi < 3; bi++) {
            log_source src;
            ls_init(&src, granules[gi]);
            rec x;
            rec_init_one(&x);
            size_t bs = blocks[bi], region = bs * 5 * (bs < 4096 ? 1001 : 1);
            ca_bitset *b = new_over(&src, region, bs);
            cr_assert_geq(src.last_align, CA_OWNER_PAGE, "granule %zu, block %zu: region align %zu",
                          granules[gi], bs, src.last_align);
            cr_assert_geq(src.last_align, bs);
            cr_assert_eq(ca_listen(ca_bitset_allocator(b), &x.l), 0);
            cr_assert(ca_is_aligned((uintptr_t)x.live[0].base, CA_OWNER_PAGE), "base %p", x.live[0].base);
            cr_assert(ca_is_aligned((uintptr_t)x.live[0].base, bs));
            cr_assert_eq(x.live[0].size % CA_OWNER_PAGE, 0, "size %zu not whole pages", x.live[0].size);
            cr_assert_eq(x.live[0].size % granules[gi], 0);
            cr_assert_geq(x.live[0].size, region);
            cr_assert_lt(x.live[0].size - region, granules[gi] > CA_OWNER_PAGE ? granules[gi] : CA_OWNER_PAGE);
            /* Every block can be handed out and lies inside. */
            void *p = ca_bitset_alloc(b, region, 16, NULL);
            cr_assert_not_null(p);
            cr_assert(live_contains(&x, p, region));
            ca_bitset_free(b, p, region);
            ca_bitset_destroy(b);
            cr_assert_eq(src.live, 0);
        }
    }
}

Test(bitset_listen, refusal_on_attach)
{
    log_source src;
    ls_init(&src, 4096);
    ca_bitset *b = new_over(&src, 1 << 18, 64);
    void *p = ca_bitset_alloc(b, 1000, 16, NULL);
    ca_test_fill(p, 1000, 3);
    rec x;
    rec_init_one(&x);
    x.refuse = EPERM;
    cr_assert_eq(ca_listen(ca_bitset_allocator(b), &x.l), EPERM);
    cr_assert_null(b->listener, "nothing attached after a refusal");
    cr_assert_eq(count_kind(&x, EV_REFUSED), 1);
    cr_assert_eq(count_kind(&x, EV_REMOVED), 0, "nothing was reported, nothing removed");
    /* The allocator is untouched and works. */
    assert_clean(b);
    cr_assert(ca_test_verify(p, 1000, 3));
    void *q = ca_bitset_alloc(b, 5000, 16, NULL);
    cr_assert_not_null(q);
    ca_bitset_free(b, q, 5000);
    /* Not attached: destroy reports nothing to it. */
    ca_bitset_reset(b);
    cr_assert_eq(count_kind(&x, EV_RESET), 0);
    /* Accepting now: attaches. */
    x.refuse = 0;
    cr_assert_eq(ca_listen(ca_bitset_allocator(b), &x.l), 0);
    cr_assert(x.nlive == 1 && x.live[0].base == ca_bitset_base(b));
    ca_bitset_destroy(b);
    cr_assert_eq(x.nlive, 0);
}

Test(bitset_listen, ebusy_on_second_attach)
{
    log_source src;
    ls_init(&src, 4096);
    ca_bitset *b = new_over(&src, 1 << 16, 64);
    rec x, y;
    rec_init_one(&y);
    rec_init_one(&x);
    cr_assert_eq(ca_listen(ca_bitset_allocator(b), &x.l), 0);
    cr_assert_eq(ca_listen(ca_bitset_allocator(b), &y.l), EBUSY);
    cr_assert_eq(ca_bitset_listen(b, &x.l), EBUSY);
    cr_assert_eq(y.n, 0, "the refused listener saw nothing");
    cr_assert_eq(count_kind(&x, EV_ADDED), 1);
    cr_assert_eq(b->listener, &x.l);
    ca_bitset_destroy(b);
}

Test(bitset_listen, detach_reports_removed)
{
    log_source src;
    ls_init(&src, 4096);
    rec x;
    rec_init_one(&x);
    ca_bitset *b = new_over(&src, 1 << 16, 64);
    void *p = ca_bitset_alloc(b, 100, 16, NULL);
    cr_assert_eq(ca_listen(ca_bitset_allocator(b), &x.l), 0);
    size_t n0 = x.n;
    cr_assert_eq(ca_listen(ca_bitset_allocator(b), NULL), 0);
    cr_assert_eq(x.n, n0 + 1);
    cr_assert_eq(x.log[n0].kind, EV_REMOVED);
    cr_assert_eq(x.log[n0].base, ca_bitset_base(b));
    cr_assert_eq(x.nlive, 0);
    cr_assert_null(b->listener);
    /* Detached: no events; the allocator still works. */
    n0 = x.n;
    ca_bitset_free(b, p, 100);
    ca_bitset_reset(b);
    cr_assert_eq(x.n, n0);
    /* Reattach works. */
    cr_assert_eq(ca_listen(ca_bitset_allocator(b), &x.l), 0);
    cr_assert(x.nlive == 1 && x.live[0].base == ca_bitset_base(b));
    ca_bitset_destroy(b);
}

Test(bitset_listen, reset_keeps_the_region)
{
    log_source src;
    ls_init(&src, 4096);
    rec x;
    rec_init_one(&x);
    ca_bitset *b = new_over(&src, 1 << 16, 64);
    cr_assert_eq(ca_listen(ca_bitset_allocator(b), &x.l), 0);
    for (int i = 0; i < 10; i++)
        cr_assert_not_null(ca_bitset_alloc(b, 300, 16, NULL));
    size_t n0 = x.n;
    cr_assert_eq(ca_reset(ca_bitset_allocator(b)), 0);
    cr_assert_eq(x.n, n0 + 1, "reset() only: the region stays");
    cr_assert_eq(x.log[n0].kind, EV_RESET);
    cr_assert(x.nlive == 1 && x.live[0].base == ca_bitset_base(b));
    cr_assert_eq(b->listener, &x.l, "still attached after reset");
    assert_clean(b);
    void *p = ca_bitset_alloc(b, 300, 16, NULL);
    cr_assert_eq(p, ca_bitset_base(b), "everything free again");
    ca_bitset_destroy(b);
}

Test(bitset_listen, destroy_order)
{
    log_source src;
    ls_init(&src, 4096);
    rec x;
    rec_init_one(&x);
    ca_bitset *b = new_over(&src, 1 << 16, 64);
    void *region = ca_bitset_base(b);
    cr_assert_eq(ca_listen(ca_bitset_allocator(b), &x.l), 0);
    cr_assert_not_null(ca_bitset_alloc(b, 300, 16, NULL));
    size_t n0 = x.n;
    ca_bitset_destroy(b);
    cr_assert_eq(x.n, n0 + 4, "destroyed, removed, two releases");
    cr_assert_eq(x.log[n0].kind, EV_DESTROYED, "destroyed() comes first");
    cr_assert_eq(x.log[n0 + 1].kind, EV_REMOVED);
    cr_assert_eq(x.log[n0 + 1].base, region);
    cr_assert_eq(x.log[n0 + 2].kind, EV_RELEASE, "removed() before the region goes back");
    cr_assert_eq(x.log[n0 + 2].base, region);
    cr_assert_eq(x.log[n0 + 3].kind, EV_RELEASE);
    cr_assert_eq(x.nlive, 0);
    cr_assert_eq(count_kind(&x, EV_RESET), 0);
    cr_assert_eq(src.live, 0);
}

Test(bitset_listen, caller_buffer_reported_as_given)
{
    size_t size = 16 * 4096;
    void *buf = NULL;
    cr_assert_eq(posix_memalign(&buf, CA_OWNER_PAGE, size), 0);
    _Alignas(64) static unsigned char meta[8192];
    cr_assert_geq(sizeof meta, ca_bitset_meta_size(size, 128));
    /* caller meta and mapped meta */
    for (int mode = 0; mode < 2; mode++) {
        ca_bitset_options o;
        ca_bitset_options_init(&o);
        o.block_size = 128;
        o.region_size = size;
        o.buffer = buf;
        if (mode == 0) {
            o.meta = meta;
            o.meta_size = sizeof meta;
        }
        ca_bitset *b = NULL;
        cr_assert_eq(ca_bitset_create(&b, &o), 0);
        rec x;
        rec_init_one(&x);
        cr_assert_eq(ca_listen(ca_bitset_allocator(b), &x.l), 0);
        cr_assert_eq(x.n, 1);
        cr_assert_eq(x.log[0].base, buf);
        cr_assert_eq(x.log[0].size, size);
        void *p = ca_bitset_alloc(b, 1000, 16, NULL);
        cr_assert(live_contains(&x, p, 1000));
        ca_bitset_destroy(b);
        cr_assert_eq(x.n, 3);
        cr_assert_eq(x.log[1].kind, EV_DESTROYED);
        cr_assert_eq(x.log[2].kind, EV_REMOVED);
        cr_assert_eq(x.log[2].base, buf);
        cr_assert_eq(x.log[2].size, size);
    }
    free(buf);
}

Test(bitset_listen, unaligned_caller_buffer_is_reported_as_held)
{
    /* A buffer that is not whole pages is reported exactly as given: the
     * listener decides (the ownership map refuses it). */
    _Alignas(4096) static unsigned char buf[4096 * 4];
    size_t size = 3000 * 4;
    ca_bitset_options o;
    ca_bitset_options_init(&o);
    o.block_size = 16;
    o.region_size = size;
    o.buffer = buf + 64;
    ca_bitset *b = NULL;
    cr_assert_eq(ca_bitset_create(&b, &o), 0);
    rec x;
    rec_init_one(&x);
    x.refuse = EINVAL;
    cr_assert_eq(ca_listen(ca_bitset_allocator(b), &x.l), EINVAL);
    cr_assert_eq(x.log[0].kind, EV_REFUSED);
    cr_assert_eq(x.log[0].base, buf + 64);
    cr_assert_eq(x.log[0].size, size);
    cr_assert_not_null(ca_bitset_alloc(b, 100, 16, NULL));
    assert_clean(b);
    ca_bitset_destroy(b);
    cr_assert_eq(x.n, 1, "never attached: destroy reports nothing");
}

Test(bitset_listen, through_the_locked_adaptor)
{
    log_source src;
    ls_init(&src, 4096);
    ca_bitset *b = new_over(&src, 1 << 16, 64);
    ca_locked_allocator l;
    cr_assert_eq(ca_locked_init(&l, ca_bitset_allocator(b), CA_LOCK_SPIN), 0);
    rec x;
    rec_init_one(&x);
    cr_assert_eq(ca_listen(&l.base, &x.l), 0);
    void *p = ca_alloc(&l.base, 100, 16);
    cr_assert(live_contains(&x, p, 100));
    cr_assert_eq(ca_listen(&l.base, &x.l), EBUSY);
    ca_free_unsized(&l.base, p);
    cr_assert_eq(ca_listen(&l.base, NULL), 0);
    cr_assert_eq(x.nlive, 0);
    ca_locked_destroy(&l);
    ca_bitset_destroy(b);
}

Test(bitset_listen, null_callbacks_are_skipped)
{
    log_source src;
    ls_init(&src, 4096);
    ca_bitset *b = new_over(&src, 1 << 16, 64);
    ca_listener none = {NULL, NULL, NULL, NULL};
    cr_assert_eq(ca_listen(ca_bitset_allocator(b), &none), 0);
    void *p = ca_bitset_alloc(b, 100, 16, NULL);
    ca_bitset_free(b, p, 100);
    ca_bitset_reset(b);
    cr_assert_eq(ca_listen(ca_bitset_allocator(b), NULL), 0);
    cr_assert_eq(ca_listen(ca_bitset_allocator(b), &none), 0);
    ca_bitset_destroy(b);
    cr_assert_eq(src.live, 0);
}
