/* SPDX-License-Identifier: MIT */
/* Large-object tier: class boundaries, the direct-mapping threshold,
 * alignment, resize (in place, mremap, copy), zeroing, cache bounds, the
 * steal path, thread exit, ownership-map registration. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "ca_test.h"
#include "large_internal.h"

static ca_binned_large *make_opts(ca_binned_large_options *o)
{
    ca_binned_large *l = NULL;
    cr_assert_eq(ca_binned_large_create(&l, o), 0, "%s", ca_last_error());
    return l;
}

static ca_binned_large *make(unsigned flags, size_t min, size_t max)
{
    ca_binned_large_options o;
    memset(&o, 0, sizeof o);
    o.flags = flags;
    o.min_size = min;
    o.max_size = max;
    o.dirty_decay_ms = 3600000; /* no purge behind the test's back */
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

Test(binned_large_basic, class_boundaries)
{
    ca_binned_large *l = make(0, 64 << 10, 64 << 20);
    /* every class boundary: size, size + 1, and the direct threshold */
    for (size_t cs = 64 << 10; cs <= (64u << 20); cs <<= 1) {
        size_t sizes[] = {cs - 1, cs, cs + 1};
        for (int k = 0; k < 3; k++) {
            size_t want = sizes[k] <= (64u << 10) ? (64u << 10) : sizes[k] <= cs ? cs : cs * 2;
            size_t usable = 0;
            void *p = ca_binned_large_alloc(l, sizes[k], 16, &usable);
            cr_assert_not_null(p);
            if (want > (64u << 20)) {
                /* above max_size: a direct mapping rounded to 64 KiB */
                cr_assert_eq(usable, ca_align_up(sizes[k], 65536), "size %zu usable %zu", sizes[k], usable);
                cr_assert_eq(ca_binned__large_map_get(p)->cls, CA_BL_DIRECT_CLASS);
            } else {
                cr_assert_eq(usable, want, "size %zu: usable %zu, want %zu", sizes[k], usable, want);
                cr_assert_eq(ca_binned_large_class_size(l, sizes[k], 16), want);
                cr_assert(ca_is_aligned((uintptr_t)p, want < (2u << 20) ? want : (2u << 20)));
            }
            cr_assert_eq(ca_binned_large_usable_size(l, p), usable);
            ((char *)p)[0] = 1;
            ((char *)p)[sizes[k] - 1] = 2;
            ca_binned_large_free(l, p);
            cr_assert_null(ca_binned_large_check(l), "%s", ca_binned_large_check(l));
        }
    }
    /* size 0 and tiny sizes take the smallest class, unique pointers */
    void *a = ca_binned_large_alloc(l, 0, 1, NULL), *b = ca_binned_large_alloc(l, 1, 1, NULL);
    cr_assert(a && b && a != b);
    cr_assert_eq(ca_binned_large_usable_size(l, a), 65536);
    ca_binned_large_free(l, a);
    ca_binned_large_free(l, b);
    ca_binned_large_destroy(l);
}

Test(binned_large_basic, alignment)
{
    ca_binned_large *l = make(0, 64 << 10, 64 << 20);
    for (unsigned s = 0; s <= 26; s++) {
        size_t align = (size_t)1 << s;
        size_t usable = 0;
        void *p = ca_binned_large_alloc(l, 70000, align, &usable);
        cr_assert_not_null(p, "align %zu", align);
        cr_assert(ca_is_aligned((uintptr_t)p, align), "%p not aligned to %zu", p, align);
        cr_assert_geq(usable, 70000);
        ca_binned__large_rgn *r = ca_binned__large_map_get(p);
        /* alignment above a class's guarantee goes to a direct mapping */
        if (align > (2u << 20))
            cr_assert_eq(r->cls, CA_BL_DIRECT_CLASS);
        else
            cr_assert_neq(r->cls, CA_BL_DIRECT_CLASS);
        memset(p, 0x5a, 70000);
        ca_binned_large_free(l, p);
    }
    cr_assert_null(ca_binned_large_check(l));
    ca_binned_large_destroy(l);
}

Test(binned_large_basic, overflow_sweep)
{
    ca_binned_large *l = make(0, 0, 0);
    for (unsigned b = 40; b < 64; b++) {
        size_t sizes[] = {((size_t)1 << b) - 1, (size_t)1 << b, ((size_t)1 << b) + 1, SIZE_MAX - ((size_t)1 << (b - 40))};
        for (int k = 0; k < 4; k++) {
            for (unsigned as = 4; as < 64; as += 7) {
                errno = 0;
                void *p = ca_binned_large_alloc(l, sizes[k], (size_t)1 << as, NULL);
                if (p) {
                    /* only reservations that fit the address space succeed (untouched) */
                    cr_assert_lt(sizes[k], (size_t)1 << 47);
                    ca_binned_large_free(l, p);
                } else {
                    cr_assert_eq(errno, ENOMEM, "size %zu align 2^%u: errno %d", sizes[k], as, errno);
                }
            }
        }
    }
    /* no wrap to a small class: the class size of a huge request is 0 */
    cr_assert_eq(ca_binned_large_class_size(l, SIZE_MAX - 1, 16), 0);
    cr_assert_null(ca_binned_large_check(l));
    ca_binned_large_destroy(l);
}

Test(binned_large_basic, resize)
{
    ca_binned_large *l = make(0, 64 << 10, 64 << 20);
    size_t usable = 0;
    char *p = (char *)ca_binned_large_alloc(l, 100000, 16, &usable);
    ca_test_fill(p, 100000, 1);
    /* grows in place while the class fits */
    cr_assert_eq(ca_binned_large_resize(l, p, 131072, 16, 0, &usable), p);
    cr_assert_eq(usable, 131072);
    /* in place refuses to grow beyond the class and keeps the block */
    errno = 0;
    cr_assert_null(ca_binned_large_resize(l, p, 131073, 16, CA_RESIZE_IN_PLACE, NULL));
    cr_assert_eq(errno, ENOMEM);
    cr_assert(ca_test_verify(p, 100000, 1));
    /* grows by copy through the multi-area classes, by mremap for whole regions */
    size_t len = 100000;
    uint64_t mremaps0 = counter(l, "mremaps");
    for (size_t n = 200000; n <= (200u << 20); n *= 2) {
        char *q = (char *)ca_binned_large_resize(l, p, n, 16, 0, &usable);
        cr_assert_not_null(q);
        cr_assert_geq(usable, n);
        cr_assert(ca_test_verify(q, len, 1), "data lost growing to %zu", n);
        ca_test_fill(q, n, 1);
        len = n;
        p = q;
        cr_assert_null(ca_binned_large_check(l), "%s", ca_binned_large_check(l));
    }
    cr_assert_gt(counter(l, "mremaps"), mremaps0, "no growth used mremap");
    /* shrink by one class: stays; by several: moves (data kept) */
    cr_assert_eq(ca_binned_large_resize(l, p, len - len / 4, 16, 0, NULL), p);
    char *q = (char *)ca_binned_large_resize(l, p, 300000, 16, 0, &usable);
    cr_assert_not_null(q);
    cr_assert_neq(q, p);
    cr_assert_eq(usable, 524288);
    cr_assert(ca_test_verify(q, 300000, 1));
    /* resize(NULL) allocates; impossible sizes fail and keep the block */
    void *r = ca_binned_large_resize(l, NULL, 70000, 16, 0, NULL);
    cr_assert_not_null(r);
    errno = 0;
    cr_assert_null(ca_binned_large_resize(l, q, SIZE_MAX - 5, 16, 0, NULL));
    cr_assert_eq(errno, ENOMEM);
    cr_assert(ca_test_verify(q, 300000, 1));
    ca_binned_large_free(l, r);
    ca_binned_large_free(l, q);
    cr_assert_null(ca_binned_large_check(l));
    ca_binned_large_destroy(l);
}

Test(binned_large_basic, resize_no_mremap_copies)
{
    ca_binned_large *l = make(CA_BINNED_LARGE_NO_MREMAP, 64 << 10, 64 << 20);
    char *p = (char *)ca_binned_large_alloc(l, 8 << 20, 16, NULL);
    ca_test_fill(p, 8 << 20, 9);
    char *q = (char *)ca_binned_large_resize(l, p, 40 << 20, 16, 0, NULL);
    cr_assert(ca_test_verify(q, 8 << 20, 9));
    cr_assert_eq(counter(l, "mremaps"), 0);
    /* direct mappings grow too */
    char *d = (char *)ca_binned_large_resize(l, q, 100 << 20, 16, 0, NULL);
    cr_assert(ca_test_verify(d, 8 << 20, 9));
    ca_binned_large_free(l, d);
    ca_binned_large_destroy(l);
}

Test(binned_large_basic, zeroed)
{
    ca_binned_large *l = make(0, 64 << 10, 64 << 20);
    char *p = (char *)ca_binned_large_alloc(l, 1 << 20, 16, NULL);
    memset(p, 0xff, 1 << 20);
    ca_binned_large_free(l, p);
    char *q = (char *)ca_binned_large_alloc_flags(l, 1 << 20, 16, CA_BINNED_LARGE_ZERO, NULL);
    cr_assert_eq(q, p, "the cached area comes back");
    for (size_t i = 0; i < (1u << 20); i++)
        cr_assert_eq(q[i], 0);
    char *d = (char *)ca_binned_large_alloc_flags(l, 100 << 20, 16, CA_BINNED_LARGE_ZERO, NULL);
    cr_assert_eq(d[12345], 0);
    ca_binned_large_free(l, d);
    ca_binned_large_free(l, q);
    ca_binned_large_destroy(l);
}

Test(binned_large_basic, cache_bounds)
{
    ca_binned_large_options o;
    memset(&o, 0, sizeof o);
    o.cache_bytes = 3 << 20; /* 3 MiB per thread */
    o.dirty_decay_ms = o.unmap_decay_ms = 3600000;
    ca_binned_large *l = make_opts(&o);
    void *p[40];
    for (int i = 0; i < 40; i++)
        p[i] = ca_binned_large_alloc(l, 1 << 20, 16, NULL);
    for (int i = 0; i < 40; i++) {
        ca_binned_large_free(l, p[i]);
        cr_assert_leq(counter(l, "cached_bytes"), 3 << 20);
    }
    cr_assert_eq(counter(l, "cached_bytes"), 3 << 20, "the cache fills to its bound");
    cr_assert_eq(counter(l, "dirty_bytes"), 37 << 20, "the rest goes to the dirty pool");
    /* per-class slot bound */
    ca_binned_large_flush_cache(l);
    for (int i = 0; i < 40; i++)
        p[i] = ca_binned_large_alloc(l, 65536, 16, NULL);
    for (int i = 0; i < 40; i++)
        ca_binned_large_free(l, p[i]);
    ca_binned__large_cache *c = ca_binned__large_my_cache(l, false);
    cr_assert_not_null(c);
    cr_assert_eq(c->count[0], CA_BINNED_LARGE_CACHE_SLOTS);
    cr_assert_leq(c->bytes, o.cache_bytes);
    cr_assert_null(ca_binned_large_check(l), "%s", ca_binned_large_check(l));
    /* cache hits: the next allocation of a cached class pops it */
    uint64_t hits = counter(l, "cache_hits");
    void *x = ca_binned_large_alloc(l, 65536, 16, NULL);
    cr_assert_eq(counter(l, "cache_hits"), hits + 1);
    ca_binned_large_free(l, x);
    ca_binned_large_flush_cache(l);
    cr_assert_eq(counter(l, "cached_bytes"), 0);
    cr_assert_null(ca_binned_large_check(l));
    ca_binned_large_destroy(l);
}

/* Steal: thread A frees into its cache and waits; the main thread, with
 * empty pools, takes A's area instead of mapping a region. */
typedef struct steal_ctx {
    ca_binned_large *l;
    void *p;
    pthread_mutex_t m;
    pthread_cond_t cv;
    int phase; /* 1: A cached its area; 2: main is done */
} steal_ctx;

static void *steal_thread(void *arg)
{
    steal_ctx *s = (steal_ctx *)arg;
    s->p = ca_binned_large_alloc(s->l, 8 << 20, 16, NULL); /* class with one area per region */
    ca_binned_large_free(s->l, s->p);
    pthread_mutex_lock(&s->m);
    s->phase = 1;
    pthread_cond_broadcast(&s->cv);
    while (s->phase != 2)
        pthread_cond_wait(&s->cv, &s->m);
    pthread_mutex_unlock(&s->m);
    return NULL;
}

Test(binned_large_basic, steal)
{
    steal_ctx s;
    memset(&s, 0, sizeof s);
    s.l = make(0, 64 << 10, 64 << 20);
    pthread_mutex_init(&s.m, NULL);
    pthread_cond_init(&s.cv, NULL);
    pthread_t t;
    pthread_create(&t, NULL, steal_thread, &s);
    pthread_mutex_lock(&s.m);
    while (s.phase != 1)
        pthread_cond_wait(&s.cv, &s.m);
    pthread_mutex_unlock(&s.m);
    cr_assert_eq(counter(s.l, "cached_bytes"), 8 << 20);
    uint64_t regions = counter(s.l, "regions");
    void *q = ca_binned_large_alloc(s.l, 8 << 20, 16, NULL);
    cr_assert_eq(q, s.p, "the area in the other thread's cache is stolen");
    cr_assert_eq(counter(s.l, "steals"), 1);
    cr_assert_eq(counter(s.l, "regions"), regions, "no region mapped");
    cr_assert_eq(counter(s.l, "cached_bytes"), 0);
    pthread_mutex_lock(&s.m);
    s.phase = 2;
    pthread_cond_broadcast(&s.cv);
    pthread_mutex_unlock(&s.m);
    pthread_join(t, NULL);
    ca_binned_large_free(s.l, q);
    cr_assert_null(ca_binned_large_check(s.l));
    ca_binned_large_destroy(s.l);
}

static void *exit_thread(void *arg)
{
    ca_binned_large *l = (ca_binned_large *)arg;
    void *p[4];
    for (int i = 0; i < 4; i++)
        p[i] = ca_binned_large_alloc(l, 1 << 20, 16, NULL);
    for (int i = 0; i < 4; i++)
        ca_binned_large_free(l, p[i]);
    return NULL;
}

Test(binned_large_basic, thread_exit_returns_cache)
{
    ca_binned_large *l = make(0, 64 << 10, 64 << 20);
    for (int round = 0; round < 20; round++) {
        pthread_t t;
        pthread_create(&t, NULL, exit_thread, l);
        pthread_join(t, NULL);
        cr_assert_eq(counter(l, "cached_bytes"), 0, "round %d: the exited thread's cache was not returned", round);
        cr_assert_null(ca_binned_large_check(l), "%s", ca_binned_large_check(l));
    }
    /* the threads reused each other's areas: 4 MiB mapped in total */
    cr_assert_eq(counter(l, "mapped_bytes"), 4 << 20);
    ca_binned_large_destroy(l);
}

Test(binned_large_basic, owner_map)
{
    static ca_allocator fake; /* the owner value the small tier would pass */
    ca_binned_large_options o;
    memset(&o, 0, sizeof o);
    o.owner = &fake;
    ca_binned_large *l = make_opts(&o);
    void *p = ca_binned_large_alloc(l, 300000, 16, NULL);
    void *d = ca_binned_large_alloc(l, (size_t)2 << 30, 16, NULL);
    cr_assert_eq(ca_owner_lookup(p), &fake);
    cr_assert_eq(ca_owner_lookup((char *)d + ((size_t)1 << 30)), &fake);
    ca_binned_large_free(l, d);
    cr_assert_null(ca_owner_lookup(d));
    ca_binned_large_free(l, p);
    ca_binned_large_trim(l);
    cr_assert_null(ca_owner_lookup(p), "unmapped regions leave the ownership map");
    ca_binned_large_destroy(l);

    memset(&o, 0, sizeof o);
    o.flags = CA_BINNED_LARGE_OWNER_SELF;
    l = make_opts(&o);
    p = ca_binned_large_alloc(l, 300000, 16, NULL);
    cr_assert_eq(ca_owner_lookup(p), ca_binned_large_allocator(l));
    ca_binned_large_free(l, p);
    ca_binned_large_destroy(l);
    cr_assert_null(ca_owner_lookup(p));
}

/* One map: the tier finds its regions through core's ownership map, where
 * each region is a record (reporting the owner, or none) with a free entry
 * that needs no second lookup. */
Test(binned_large_basic, regions_are_records_in_the_one_map)
{
    static ca_allocator fake;
    ca_binned_large_options o;
    memset(&o, 0, sizeof o);
    o.owner = &fake;
    ca_binned_large *l = make_opts(&o);
    void *p = ca_binned_large_alloc(l, 300000, 16, NULL);
    ca_owner_record *rec = ca_owner_entry_record(ca_owner_entry(p));
    cr_assert_not_null(rec, "the map entry of a large block is its region's record");
    cr_assert_eq(rec->owner, &fake);
    cr_assert_not_null(rec->free);
    cr_assert_eq(ca_binned_large_usable_size(l, p), (size_t)512 << 10);
    rec->free(rec, p); /* as libswitch frees: one walk */
    ca_stats st;
    cr_assert_eq(ca_binned_large_stats(l, &st), 0);
    cr_assert_eq(st.bytes_in_use, 0, "the record's free freed the block");
    ca_binned_large_destroy(l);

    /* without an owner: no owner reported, the tier still finds its blocks */
    memset(&o, 0, sizeof o);
    l = make_opts(&o);
    p = ca_binned_large_alloc(l, 300000, 16, NULL);
    cr_assert_null(ca_owner_lookup(p));
    cr_assert_not_null(ca_owner_entry_record(ca_owner_entry(p)));
    cr_assert_eq(ca_binned_large_of(p), l);
    cr_assert(ca_binned_large_owns(l, p));
    ca_binned_large_free(l, p);
    ca_binned_large_trim(l);
    cr_assert_null(ca_owner_entry(p), "an unmapped region leaves the map");
    cr_assert_null(ca_binned_large_of(p));
    ca_binned_large_destroy(l);
}

Test(binned_large_basic, many_tiers_one_thread)
{
    /* more tiers than TLS entries: the later ones work (with or without a cache) */
    ca_binned_large *t[7];
    for (int i = 0; i < 7; i++) {
        t[i] = make(0, 0, 0);
        void *p = ca_binned_large_alloc(t[i], 100000, 16, NULL);
        ca_binned_large_free(t[i], p);
    }
    for (int i = 0; i < 7; i++) {
        cr_assert_null(ca_binned_large_check(t[i]));
        ca_binned_large_destroy(t[i]);
    }
    /* after destruction, stale TLS entries are reused */
    ca_binned_large *l = make(0, 0, 0);
    void *p = ca_binned_large_alloc(l, 100000, 16, NULL);
    ca_binned_large_free(l, p);
    cr_assert_not_null(ca_binned__large_my_cache(l, false));
    ca_binned_large_destroy(l);
}

Test(binned_large_basic, upsize_from_dirty)
{
    /* with its own pools empty, a class takes a resident area of the next
     * two classes before a clean one or a new region */
    ca_binned_large *l = make(CA_BINNED_LARGE_NO_CACHE, 64 << 10, 64 << 20);
    void *big = ca_binned_large_alloc(l, 4 << 20, 16, NULL);
    ca_binned_large_free(l, big);
    size_t usable = 0;
    void *p = ca_binned_large_alloc(l, 1 << 20, 16, &usable); /* two classes below */
    cr_assert_eq(p, big);
    cr_assert_eq(usable, 4 << 20);
    cr_assert_eq(ca_binned_large_usable_size(l, p), 4 << 20);
    ca_binned_large_free(l, p);
    p = ca_binned_large_alloc(l, 2 << 20, 16, &usable); /* one class below */
    cr_assert_eq(p, big);
    cr_assert_eq(usable, 4 << 20);
    ca_binned_large_free(l, p);
    void *q = ca_binned_large_alloc(l, 512 << 10, 16, &usable); /* three below: not taken */
    cr_assert_neq(q, big);
    cr_assert_eq(usable, 512 << 10);
    ca_binned_large_free(l, q);
    cr_assert_null(ca_binned_large_check(l));
    ca_stats st;
    ca_binned_large_stats(l, &st);
    cr_assert_eq(st.bytes_in_use, 0);
    ca_binned_large_destroy(l);
}
