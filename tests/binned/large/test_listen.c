/* SPDX-License-Identifier: MIT */
/* Listener events of the large tier (ca_listen on its allocator view):
 * attach after allocations reports every range once and every live block
 * lies in one; growth (regions, direct mappings) is reported before the
 * block is handed out; unmapping (trim, direct free, mremap moves, the
 * background thread) reports removed; a refusal fails the allocation with
 * its errno and changes nothing, at attach it leaves nothing attached;
 * EBUSY; detach; destroy reports destroyed then removed; CA_CAP_OWNER_MAP
 * exactly for a tier registered under itself. */
#include <criterion/criterion.h>
#include <sys/mman.h>
#include <time.h>

#include "ca_test.h"
#include "binned_large_test_listen.h"

#define MIB ((size_t)1 << 20)
#define KIB ((size_t)1 << 10)

static ca_binned_large *make_opts(ca_binned_large_options *o)
{
    ca_binned_large *l = NULL;
    cr_assert_eq(ca_binned_large_create(&l, o), 0, "%s", ca_last_error());
    return l;
}

/* Classes 64 KiB .. 4 MiB, regions of 1 MiB, direct mappings above 4 MiB;
 * no purge or unmap behind the test's back. */
static ca_binned_large *make(unsigned flags)
{
    ca_binned_large_options o;
    memset(&o, 0, sizeof o);
    o.flags = flags;
    o.min_size = 64 * KIB;
    o.max_size = 4 * MIB;
    o.region_size = MIB;
    o.dirty_decay_ms = 3600000;
    o.unmap_decay_ms = 3600000;
    return make_opts(&o);
}

static uint64_t counter(ca_binned_large *l, const char *name)
{
    ca_stats st;
    uint64_t v = 0;
    ca_binned_large_stats(l, &st);
    ca_stats_get_counter(&st, name, &v);
    return v;
}

static void assert_clean(rec *r)
{
    cr_assert_eq(r->errors, 0, "listener protocol error: %s", r->first_error);
}

/* Sizes covering small and big classes, one-area regions and direct mappings. */
static const size_t sizes[] = {1,       64 * KIB, 100 * KIB, 200 * KIB, 512 * KIB, MIB,
                               3 * MIB, 4 * MIB,  5 * MIB,   9 * MIB,   70 * KIB,  300 * KIB};
#define NSIZES (sizeof sizes / sizeof sizes[0])

/* ------------------------------------------------------------------------
 * Capability
 * ------------------------------------------------------------------------ */

Test(binned_large_listen, owner_map_cap_exactly_when_registered_under_itself)
{
    ca_binned_large *plain = make(0);
    ca_allocator *pa = ca_binned_large_allocator(plain);
    cr_assert_eq(ca_allocator_caps(pa) & CA_CAP_OWNER_MAP, 0u, "not registered: no cap");
    cr_assert(ca_allocator_caps(pa) & CA_CAP_THREAD_SAFE);
    cr_assert(ca_allocator_caps(pa) & CA_CAP_UNSIZED);

    ca_binned_large *self = make(CA_BINNED_LARGE_OWNER_SELF);
    ca_allocator *sa = ca_binned_large_allocator(self);
    cr_assert(ca_allocator_caps(sa) & CA_CAP_OWNER_MAP, "OWNER_SELF: the cap");
    cr_assert(ca_allocator_caps(sa) & CA_CAP_THREAD_SAFE);
    cr_assert_str_eq(ca_allocator_name(sa), ca_allocator_name(pa));
    void *p = ca_binned_large_alloc(self, 100 * KIB, 16, NULL);
    void *d = ca_binned_large_alloc(self, 6 * MIB, 16, NULL);
    cr_assert(p && d);
    cr_assert_eq(ca_owner_lookup(p), (void *)sa, "registered under itself");
    cr_assert_eq(ca_owner_lookup(d), (void *)sa);

    /* registered under another allocator (as the small tier does): no cap */
    ca_binned_large_options o;
    memset(&o, 0, sizeof o);
    o.owner = pa;
    ca_binned_large *other = make_opts(&o);
    ca_allocator *oa = ca_binned_large_allocator(other);
    cr_assert_eq(ca_allocator_caps(oa) & CA_CAP_OWNER_MAP, 0u, "registered under another owner: no cap");
    void *q = ca_binned_large_alloc(other, 100 * KIB, 16, NULL);
    cr_assert_eq(ca_owner_lookup(q), (void *)pa);
    /* OWNER_SELF together with another owner: the owner wins, so no cap */
    o.flags = CA_BINNED_LARGE_OWNER_SELF;
    ca_binned_large *both = make_opts(&o);
    cr_assert_eq(ca_allocator_caps(ca_binned_large_allocator(both)) & CA_CAP_OWNER_MAP, 0u);

    ca_binned_large_free(self, p);
    ca_binned_large_free(self, d);
    ca_binned_large_free(other, q);
    ca_binned_large_destroy(both);
    ca_binned_large_destroy(other);
    ca_binned_large_destroy(self);
    ca_binned_large_destroy(plain);
}

Test(binned_large_listen, owner_self_tier_listens_the_same)
{
    ca_binned_large *l = make(CA_BINNED_LARGE_OWNER_SELF);
    void *p = ca_binned_large_alloc(l, 200 * KIB, 16, NULL);
    rec r;
    rec_init(&r);
    cr_assert_eq(ca_listen(ca_binned_large_allocator(l), &r.l), 0);
    cr_assert_eq(r.added, 1);
    cr_assert(rec_holds(&r, p, 200 * KIB));
    void *d = ca_binned_large_alloc(l, 8 * MIB, 16, NULL);
    cr_assert(rec_holds(&r, d, 8 * MIB));
    ca_binned_large_free(l, d);
    ca_binned_large_free(l, p);
    ca_binned_large_destroy(l);
    cr_assert_eq(r.nlive, 0);
    assert_clean(&r);
    rec_fini(&r);
}

/* ------------------------------------------------------------------------
 * Attach after allocations; growth; unmapping
 * ------------------------------------------------------------------------ */

Test(binned_large_listen, attach_reports_every_range_once)
{
    ca_binned_large *l = make(0);
    void *blk[NSIZES * 3];
    size_t use[NSIZES * 3];
    for (unsigned i = 0; i < NSIZES * 3; i++) {
        size_t align = i % 7 == 6 ? 4 * MIB : 16; /* some big alignments: direct mappings */
        blk[i] = ca_binned_large_alloc(l, sizes[i % NSIZES], align, &use[i]);
        cr_assert_not_null(blk[i]);
    }
    /* free a few so that some areas sit in caches and pools */
    for (unsigned i = 0; i < NSIZES * 3; i += 4) {
        ca_binned_large_free(l, blk[i]);
        blk[i] = NULL;
    }
    rec r;
    rec_init(&r);
    cr_assert_eq(ca_listen(ca_binned_large_allocator(l), &r.l), 0);
    assert_clean(&r);
    cr_assert_gt(r.added, 3);
    cr_assert_eq(r.added, (unsigned)counter(l, "regions"), "one added() per region and direct mapping");
    cr_assert_null(rec_matches_tier(&r, l));
    for (unsigned i = 0; i < NSIZES * 3; i++)
        if (blk[i])
            cr_assert(rec_holds(&r, blk[i], use[i]), "block %u (%p, %zu) outside every range", i, blk[i], use[i]);
    /* areas reused from caches and pools: no event */
    unsigned a0 = r.added;
    void *again = ca_binned_large_alloc(l, sizes[0], 16, NULL);
    cr_assert(rec_holds(&r, again, 64 * KIB));
    ca_binned_large_free(l, again);
    again = ca_binned_large_alloc(l, sizes[0], 16, NULL);
    ca_binned_large_free(l, again);
    cr_assert_eq(r.added, a0);
    cr_assert_eq(r.removed, 0);
    for (unsigned i = 0; i < NSIZES * 3; i++)
        ca_binned_large_free(l, blk[i]);
    /* direct mappings went back at free: each reported removed */
    cr_assert_gt(r.removed, 0);
    cr_assert_null(rec_matches_tier(&r, l));
    ca_binned_large_destroy(l);
    assert_clean(&r);
    rec_fini(&r);
}

Test(binned_large_listen, growth_is_reported_before_the_block_is_handed_out)
{
    ca_binned_large *l = make(CA_BINNED_LARGE_NO_CACHE);
    rec r;
    rec_init(&r);
    cr_assert_eq(ca_listen(ca_binned_large_allocator(l), &r.l), 0);
    cr_assert_eq(r.added, 0, "an empty tier has no ranges");
    void *blk[64];
    unsigned n = 0;
    for (unsigned i = 0; i < 64; i++) {
        size_t u = 0;
        unsigned before = r.added;
        blk[n] = ca_binned_large_alloc(l, sizes[i % NSIZES], 16, &u);
        cr_assert_not_null(blk[n]);
        cr_assert(rec_holds(&r, blk[n], u), "block %p not in a reported range", blk[n]);
        cr_assert_leq(r.added, before + 1, "at most one range per allocation");
        n++;
    }
    cr_assert_eq(r.added, (unsigned)counter(l, "regions"));
    cr_assert_null(rec_matches_tier(&r, l));
    /* direct mapping: added at alloc, removed at free, the same range */
    unsigned a = r.added, rm = r.removed;
    void *d = ca_binned_large_alloc(l, 20 * MIB, 16, NULL);
    cr_assert_eq(r.added, a + 1);
    cr_assert_eq(r.order[r.norder - 1], 'A');
    ca_binned_large_free(l, d);
    cr_assert_eq(r.removed, rm + 1);
    cr_assert_null(rec_matches_tier(&r, l));
    /* trim unmaps every wholly free region: each reported removed */
    for (unsigned i = 0; i < n; i++)
        ca_binned_large_free(l, blk[i]);
    ca_binned_large_trim(l);
    cr_assert_eq(r.nlive, 0, "%u ranges still live after trim", r.nlive);
    cr_assert_eq(counter(l, "regions"), 0);
    cr_assert_eq(r.added, r.removed);
    cr_assert_null(rec_matches_tier(&r, l));
    ca_binned_large_destroy(l);
    assert_clean(&r);
    rec_fini(&r);
}

Test(binned_large_listen, unmap_idle_reports_removed)
{
    ca_binned_large *l = make(0);
    rec r;
    rec_init(&r);
    cr_assert_eq(ca_listen(ca_binned_large_allocator(l), &r.l), 0);
    void *p = ca_binned_large_alloc(l, 128 * KIB, 16, NULL);
    void *q = ca_binned_large_alloc(l, 2 * MIB, 16, NULL);
    cr_assert_eq(r.added, 2);
    ca_binned_large_free(l, p);
    ca_binned_large_flush_cache(l);
    cr_assert_eq(ca_binned_large_unmap_idle(l, 0), MIB);
    cr_assert_eq(r.removed, 1, "the region of p");
    cr_assert(rec_holds(&r, q, 2 * MIB), "q's region stays");
    ca_binned_large_purge(l, 0);
    cr_assert_eq(r.removed, 1, "a purge reports nothing");
    ca_binned_large_free(l, q);
    ca_binned_large_destroy(l);
    assert_clean(&r);
    rec_fini(&r);
}

Test(binned_large_listen, background_thread_unmaps_with_events)
{
    ca_binned_large_options o;
    memset(&o, 0, sizeof o);
    o.min_size = 64 * KIB;
    o.max_size = 4 * MIB;
    o.flags = CA_BINNED_LARGE_BACKGROUND | CA_BINNED_LARGE_NO_CACHE;
    o.dirty_decay_ms = 1;
    o.unmap_decay_ms = 2;
    ca_binned_large *l = make_opts(&o);
    rec r;
    rec_init(&r);
    cr_assert_eq(ca_listen(ca_binned_large_allocator(l), &r.l), 0);
    void *b[8];
    for (int i = 0; i < 8; i++)
        b[i] = ca_binned_large_alloc(l, (size_t)(i + 1) * 200 * KIB, 16, NULL);
    unsigned added = r.added;
    cr_assert_gt(added, 0);
    for (int i = 0; i < 8; i++)
        ca_binned_large_free(l, b[i]);
    cr_assert(ca_binned_large_background_running(l));
    for (int i = 0; i < 5000 && counter(l, "regions"); i++) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    cr_assert_eq(counter(l, "regions"), 0, "the background thread unmapped nothing");
    ca_binned_large_background_stop(l);
    cr_assert_eq(r.removed, added);
    cr_assert_eq(r.nlive, 0);
    ca_binned_large_destroy(l);
    assert_clean(&r);
    rec_fini(&r);
}

/* Whether this kernel moves pages with MREMAP_DONTUNMAP (valgrind refuses
 * it: the tier copies instead while a listener is attached). */
static bool dontunmap_works(void)
{
    size_t n = 64 * KIB;
    char *a = (char *)mmap(NULL, 2 * n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(a, MAP_FAILED);
    a[0] = 1;
    bool ok = mremap(a, n, n, MREMAP_MAYMOVE | MREMAP_FIXED | 4 /* MREMAP_DONTUNMAP */, a + n) != MAP_FAILED;
    ok = ok && a[n] == 1;
    munmap(a, 2 * n);
    return ok;
}

Test(binned_large_listen, mremap_move_reports_old_and_new_ranges)
{
    ca_binned_large *l = make(0);
    rec r;
    rec_init(&r);
    cr_assert_eq(ca_listen(ca_binned_large_allocator(l), &r.l), 0);
    size_t n = 6 * MIB;
    unsigned char *p = (unsigned char *)ca_binned_large_alloc(l, n, 16, NULL);
    cr_assert_not_null(p);
    ca_test_fill(p, n, 42);
    uint64_t m0 = counter(l, "mremaps");
    unsigned char *q = (unsigned char *)ca_binned_large_resize(l, p, 3 * n, 16, 0, NULL);
    cr_assert_not_null(q);
    cr_assert_neq(q, p);
    cr_assert(ca_test_verify(q, n, 42), "contents moved");
    if (dontunmap_works())
        cr_assert_gt(counter(l, "mremaps"), m0, "the move used mremap");
    else
        cr_assert_eq(counter(l, "mremaps"), m0, "no plain mremap while a listener is attached");
    cr_assert_eq(r.added, 2);
    cr_assert_eq(r.removed, 1, "the old mapping was reported removed");
    cr_assert(rec_holds(&r, q, 3 * n));
    cr_assert(!rec_holds(&r, p, 1));
    cr_assert_null(rec_matches_tier(&r, l));
    ca_binned_large_free(l, q);
    cr_assert_eq(r.nlive, 0);
    ca_binned_large_destroy(l);
    assert_clean(&r);
    rec_fini(&r);
}

/* ------------------------------------------------------------------------
 * Refusals
 * ------------------------------------------------------------------------ */

Test(binned_large_listen, refusal_fails_the_allocation_and_changes_nothing)
{
    ca_binned_large *l = make(0);
    rec r;
    rec_init(&r);
    cr_assert_eq(ca_listen(ca_binned_large_allocator(l), &r.l), 0);
    void *keep = ca_binned_large_alloc(l, 64 * KIB, 16, NULL);
    cr_assert_not_null(keep);
    ca_stats before;
    ca_binned_large_stats(l, &before);
    uint64_t regions = counter(l, "regions"), mapped = counter(l, "mapped_bytes");
    r.refuse = EACCES;
    /* a new region of another class */
    errno = 0;
    cr_assert_null(ca_binned_large_alloc(l, MIB, 16, NULL));
    cr_assert_eq(errno, EACCES, "errno %d", errno);
    /* a direct mapping */
    errno = 0;
    cr_assert_null(ca_binned_large_alloc(l, 10 * MIB, 16, NULL));
    cr_assert_eq(errno, EACCES);
    /* through the allocator view and resize (the block stays intact) */
    errno = 0;
    cr_assert_null(ca_alloc(ca_binned_large_allocator(l), 2 * MIB, 16));
    cr_assert_eq(errno, EACCES);
    memset(keep, 0x77, 64 * KIB);
    errno = 0;
    cr_assert_null(ca_binned_large_resize(l, keep, 3 * MIB, 16, 0, NULL));
    cr_assert_eq(errno, EACCES);
    cr_assert_eq(((unsigned char *)keep)[64 * KIB - 1], 0x77);
    cr_assert_eq(r.refused, 4);
    cr_assert_eq(r.nlive, 1, "refused ranges never became live");
    ca_stats after;
    ca_binned_large_stats(l, &after);
    cr_assert_eq(counter(l, "regions"), regions);
    cr_assert_eq(counter(l, "mapped_bytes"), mapped);
    cr_assert_eq(after.bytes_reserved, before.bytes_reserved);
    cr_assert_eq(after.bytes_in_use, before.bytes_in_use);
    cr_assert_eq(after.allocs, before.allocs);
    cr_assert_eq(after.failures, before.failures + 4);
    cr_assert_null(ca_binned_large_check(l));
    cr_assert_null(rec_matches_tier(&r, l));
    /* the class's own region still serves: no new range needed */
    void *same = ca_binned_large_alloc(l, 64 * KIB, 16, NULL);
    cr_assert_not_null(same, "an area of an existing region needs no event");
    /* accepted again */
    r.refuse = 0;
    void *big = ca_binned_large_alloc(l, MIB, 16, NULL);
    cr_assert_not_null(big);
    cr_assert(rec_holds(&r, big, MIB));
    ca_binned_large_free(l, big);
    ca_binned_large_free(l, same);
    ca_binned_large_free(l, keep);
    ca_binned_large_destroy(l);
    assert_clean(&r);
    rec_fini(&r);
}

Test(binned_large_listen, refusal_at_attach_leaves_nothing_attached)
{
    ca_binned_large *l = make(0);
    void *b[4];
    for (int i = 0; i < 4; i++)
        b[i] = ca_binned_large_alloc(l, (size_t)MIB << i, 16, NULL); /* 4 ranges */
    cr_assert_eq(counter(l, "regions"), 4);
    rec no;
    rec_init(&no);
    no.refuse = ENOSPC;
    no.refuse_nth = 3;
    cr_assert_eq(ca_listen(ca_binned_large_allocator(l), &no.l), ENOSPC);
    cr_assert_eq(no.added, 3);
    cr_assert_eq(no.removed, 2, "the two accepted ranges are taken back");
    cr_assert_eq(no.nlive, 0);
    assert_clean(&no);
    /* nothing attached: growth is not reported, and another attach works */
    void *d = ca_binned_large_alloc(l, 12 * MIB, 16, NULL);
    cr_assert_eq(no.added, 3);
    rec yes;
    rec_init(&yes);
    cr_assert_eq(ca_listen(ca_binned_large_allocator(l), &yes.l), 0);
    cr_assert_eq(yes.added, 5);
    cr_assert_null(rec_matches_tier(&yes, l));
    ca_binned_large_free(l, d);
    for (int i = 0; i < 4; i++)
        ca_binned_large_free(l, b[i]);
    ca_binned_large_destroy(l);
    cr_assert_eq(no.removed, 2);
    assert_clean(&yes);
    rec_fini(&no);
    rec_fini(&yes);
}

/* ------------------------------------------------------------------------
 * Attach rules and destroy
 * ------------------------------------------------------------------------ */

Test(binned_large_listen, ebusy_and_detach)
{
    ca_binned_large *l = make(0);
    ca_allocator *a = ca_binned_large_allocator(l);
    void *p = ca_binned_large_alloc(l, 256 * KIB, 16, NULL);
    rec r1, r2;
    rec_init(&r1);
    rec_init(&r2);
    cr_assert_eq(ca_listen(a, NULL), 0, "detach with nothing attached");
    cr_assert_eq(ca_listen(a, &r1.l), 0);
    cr_assert_eq(ca_listen(a, &r2.l), EBUSY);
    cr_assert_eq(ca_listen(a, &r1.l), EBUSY);
    cr_assert_eq(r2.added, 0);
    cr_assert_eq(r1.added, 1);
    cr_assert_eq(ca_listen(a, NULL), 0);
    cr_assert_eq(r1.removed, 1);
    cr_assert_eq(r1.nlive, 0);
    /* detached: no events */
    void *d = ca_binned_large_alloc(l, 16 * MIB, 16, NULL);
    ca_binned_large_free(l, d);
    cr_assert_eq(r1.added, 1);
    cr_assert_eq(r1.removed, 1);
    cr_assert_eq(ca_listen(a, &r2.l), 0);
    cr_assert_eq(r2.added, 1);
    cr_assert(rec_holds(&r2, p, 256 * KIB));
    ca_binned_large_free(l, p);
    ca_binned_large_destroy(l);
    assert_clean(&r1);
    assert_clean(&r2);
    rec_fini(&r1);
    rec_fini(&r2);
}

Test(binned_large_listen, destroy_reports_destroyed_then_removed)
{
    ca_binned_large *l = make(CA_BINNED_LARGE_BACKGROUND);
    for (unsigned i = 0; i < NSIZES; i++)
        cr_assert_not_null(ca_binned_large_alloc(l, sizes[i], 16, NULL)); /* left live on purpose */
    rec r;
    rec_init(&r);
    cr_assert_eq(ca_listen(ca_binned_large_allocator(l), &r.l), 0);
    unsigned n = r.added;
    cr_assert_gt(n, 4);
    ca_binned_large_destroy(l);
    cr_assert_eq(r.destroyed, 1);
    cr_assert_eq(r.removed, n);
    cr_assert_eq(r.removed_after_destroyed, n, "every removed() came after destroyed()");
    cr_assert_eq(r.order[n], 'D', "order %s", r.order);
    cr_assert_eq(r.nlive, 0);
    assert_clean(&r);
    rec_fini(&r);
}

Test(binned_large_listen, destroy_without_listener_or_after_detach)
{
    ca_binned_large *l = make(0);
    cr_assert_not_null(ca_binned_large_alloc(l, MIB, 16, NULL));
    rec r;
    rec_init(&r);
    cr_assert_eq(ca_listen(ca_binned_large_allocator(l), &r.l), 0);
    cr_assert_eq(ca_listen(ca_binned_large_allocator(l), NULL), 0);
    ca_binned_large_destroy(l);
    cr_assert_eq(r.destroyed, 0);
    cr_assert_eq(r.added, 1);
    cr_assert_eq(r.removed, 1);
    assert_clean(&r);
    rec_fini(&r);
}

Test(binned_large_listen, null_callbacks)
{
    ca_binned_large *l = make(0);
    void *p = ca_binned_large_alloc(l, MIB, 16, NULL);
    ca_listener quiet;
    memset(&quiet, 0, sizeof quiet);
    cr_assert_eq(ca_listen(ca_binned_large_allocator(l), &quiet), 0);
    void *d = ca_binned_large_alloc(l, 8 * MIB, 16, NULL);
    cr_assert_not_null(d);
    ca_binned_large_free(l, d);
    ca_binned_large_free(l, p);
    ca_binned_large_trim(l);
    ca_binned_large_destroy(l);
}
