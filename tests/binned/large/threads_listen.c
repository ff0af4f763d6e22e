/* SPDX-License-Identifier: MIT */
/* Listener events of the large tier under threads (plain runner, also under
 * TSan): four threads allocate, resize and free large blocks (regions,
 * one-area regions moved by mremap, direct mappings), handing blocks to each
 * other, while the background thread unmaps idle regions and the main
 * thread attaches and detaches a recording listener again and again. While
 * attached, every block a thread gets must lie in a range the listener was
 * told about; after each detach the listener's live set must be empty; at
 * the end the live set must equal the tier's ranges, and destroy must
 * report destroyed() then removed() for each. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ca_test.h"
#include "ca_tt.h"
#include "binned_large_test_listen.h"

#define EXCHANGE 64
#define MIB ((size_t)1 << 20)

typedef struct shared {
    ca_binned_large *l;
    rec r;
    void *slot[EXCHANGE]; /* atomic exchange of blocks between threads */
    uint64_t seed;
    unsigned ops;
    unsigned gen;     /* atomic; odd while the listener is attached */
    unsigned done;    /* atomic; workers finished */
    unsigned checked; /* atomic; blocks checked against the live set */
    int failed;       /* atomic: 1 cookie, 2 allocation failure, 3 block outside the reported ranges */
} shared;

typedef struct hdr {
    uint64_t cookie;
    size_t size;
} hdr;

#define COOKIE 0x115e4e4c0ffeeULL

static void stamp(void *p, size_t size)
{
    hdr *h = (hdr *)p;
    h->cookie = COOKIE ^ (uintptr_t)p;
    h->size = size;
    ((unsigned char *)p)[size - 1] = (unsigned char)(uintptr_t)p;
}

/* The block at p carries the stamp it got at address `was` (p after a move). */
static bool intact_from(const void *p, const void *was)
{
    const hdr *h = (const hdr *)p;
    return h->cookie == (COOKIE ^ (uintptr_t)was) &&
           ((const unsigned char *)p)[h->size - 1] == (unsigned char)(uintptr_t)was;
}

static bool intact(const void *p) { return intact_from(p, p); }

/* A block just obtained: when the listener was attached for the whole
 * allocation (same odd generation before and after the check), it must lie
 * in a live range. */
static void check_block(shared *s, unsigned g1, const void *p, size_t size)
{
    if (!(g1 & 1))
        return;
    bool ok = rec_holds(&s->r, p, size);
    unsigned g2 = __atomic_load_n(&s->gen, __ATOMIC_ACQUIRE);
    if (g1 != g2)
        return;
    __atomic_fetch_add(&s->checked, 1, __ATOMIC_RELAXED);
    if (!ok)
        __atomic_store_n(&s->failed, 3, __ATOMIC_RELAXED);
}

static size_t pick_size(ca_rng *r)
{
    uint64_t c = ca_rng_below(r, 100);
    if (c < 75)
        return 64 + (size_t)ca_rng_below(r, MIB);
    if (c < 97)
        return 64 + (size_t)ca_rng_below(r, 6 * MIB); /* up to the direct mappings above 4 MiB */
    return 12 * MIB;
}

static void *worker(void *arg)
{
    shared *s = (shared *)arg;
    ca_rng r = {__atomic_fetch_add(&s->seed, 0x9e3779b9, __ATOMIC_RELAXED)};
    void *mine[8] = {0};
    for (unsigned op = 0; op < s->ops && !__atomic_load_n(&s->failed, __ATOMIC_RELAXED); op++) {
        unsigned k = (unsigned)ca_rng_below(&r, 8);
        if (mine[k] && ca_rng_below(&r, 10) == 0) {
            /* grow: whole mappings move by mremap, others by copy */
            hdr *h = (hdr *)mine[k];
            size_t ns = h->size + MIB + (size_t)ca_rng_below(&r, 4 * MIB);
            unsigned g1 = __atomic_load_n(&s->gen, __ATOMIC_ACQUIRE);
            void *q = ca_binned_large_resize(s->l, mine[k], ns, 16, 0, NULL);
            if (!q) {
                __atomic_store_n(&s->failed, 2, __ATOMIC_RELAXED);
                break;
            }
            check_block(s, g1, q, ns);
            if (!intact_from(q, mine[k]))
                __atomic_store_n(&s->failed, 1, __ATOMIC_RELAXED);
            stamp(q, ns);
            mine[k] = q;
        } else if (mine[k]) {
            void *old = __atomic_exchange_n(&s->slot[ca_rng_below(&r, EXCHANGE)], mine[k], __ATOMIC_ACQ_REL);
            mine[k] = NULL;
            if (old) {
                if (!intact(old))
                    __atomic_store_n(&s->failed, 1, __ATOMIC_RELAXED);
                ca_binned_large_free(s->l, old);
            }
        } else {
            size_t size = pick_size(&r);
            unsigned g1 = __atomic_load_n(&s->gen, __ATOMIC_ACQUIRE);
            void *p = ca_binned_large_alloc(s->l, size, 16, NULL);
            if (!p) {
                __atomic_store_n(&s->failed, 2, __ATOMIC_RELAXED);
                break;
            }
            check_block(s, g1, p, size);
            stamp(p, size);
            mine[k] = p;
        }
    }
    for (int k = 0; k < 8; k++)
        ca_binned_large_free(s->l, mine[k]);
    __atomic_fetch_add(&s->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

static void pause_us(long us)
{
    struct timespec ts = {0, us * 1000};
    nanosleep(&ts, NULL);
}

static void run(int *ca_tt_failed, unsigned flags)
{
    static shared s;
    memset(&s, 0, sizeof s);
    rec_init(&s.r);
    ca_binned_large_options o;
    memset(&o, 0, sizeof o);
    o.flags = flags;
    o.min_size = 64 << 10;
    o.max_size = 4 * MIB;
    o.region_size = 2 * MIB;
    o.cache_bytes = 4 * MIB;
    o.dirty_max = 32 * MIB;
    o.dirty_decay_ms = 1;
    o.unmap_decay_ms = 3;
    CA_TT_ASSERT(ca_binned_large_create(&s.l, &o) == 0, "create");
    ca_allocator *al = ca_binned_large_allocator(s.l);
    s.seed = ca_test_seed();
    s.ops = (unsigned)(3000 * ca_test_scale());
    unsigned n = ca_test_threads(4);
    pthread_t t[64];
    if (n > 64)
        n = 64;
    for (unsigned i = 0; i < n; i++)
        pthread_create(&t[i], NULL, worker, &s);

    /* attach and detach while the threads grow and shrink the tier */
    unsigned cycles = 0;
    bool attached = false;
    while (__atomic_load_n(&s.done, __ATOMIC_ACQUIRE) < n || !attached) {
        if (attached) {
            __atomic_fetch_add(&s.gen, 1, __ATOMIC_ACQ_REL); /* even: detaching */
            CA_TT_ASSERT(ca_listen(al, NULL) == 0, "detach");
            pthread_mutex_lock(&s.r.m);
            unsigned live = s.r.nlive;
            pthread_mutex_unlock(&s.r.m);
            CA_TT_ASSERT(live == 0, "%u ranges left live after a detach (cycle %u)", live, cycles);
            attached = false;
            pause_us(300);
        } else {
            int rc = ca_listen(al, &s.r.l);
            CA_TT_ASSERT(rc == 0, "attach: %d", rc);
            CA_TT_ASSERT(ca_listen(al, &s.r.l) == EBUSY, "second attach");
            __atomic_fetch_add(&s.gen, 1, __ATOMIC_ACQ_REL); /* odd: attached */
            attached = true;
            cycles++;
            pause_us(2000);
        }
    }
    for (unsigned i = 0; i < n; i++)
        pthread_join(t[i], NULL);
    CA_TT_ASSERT(s.failed == 0, "worker failure %d (1 cookie, 2 allocation, 3 block outside the ranges)", s.failed);
    CA_TT_ASSERT(s.r.errors == 0, "listener protocol: %s", s.r.first_error);
    CA_TT_ASSERT(s.checked > 0, "no block was checked");
    CA_TT_OPS((unsigned long long)s.ops * n);

    /* every block still out lies in a live range; the live set is the tier's */
    for (int i = 0; i < EXCHANGE; i++)
        if (s.slot[i])
            CA_TT_ASSERT(rec_holds(&s.r, s.slot[i], ((hdr *)s.slot[i])->size), "exchanged block outside");
    ca_binned_large_background_stop(s.l);
    const char *m = rec_matches_tier(&s.r, s.l);
    CA_TT_ASSERT(m == NULL, "%s (after %u attach cycles)", m, cycles);
    m = ca_binned_large_check(s.l);
    CA_TT_ASSERT(m == NULL, "%s", m);
    CA_TT_ASSERT(s.r.removed > 0 && s.r.added > s.r.removed, "added %u removed %u", s.r.added, s.r.removed);

    printf("  %u attach cycles, %u blocks checked, %u ranges added, %u removed\n", cycles, s.checked, s.r.added,
           s.r.removed);

    /* destroy with blocks still out: destroyed(), then removed() for each range */
    unsigned live = s.r.nlive, removed = s.r.removed;
    CA_TT_ASSERT(live > 0, "no live range at the end");
    ca_binned_large_destroy(s.l);
    CA_TT_ASSERT(s.r.destroyed == 1, "destroyed %u", s.r.destroyed);
    CA_TT_ASSERT(s.r.removed_after_destroyed == live, "%u removed after destroyed, %u live",
                 s.r.removed_after_destroyed, live);
    CA_TT_ASSERT(s.r.removed == removed + live, "removed");
    CA_TT_ASSERT(s.r.nlive == 0, "live after destroy");
    CA_TT_ASSERT(s.r.errors == 0, "listener protocol: %s", s.r.first_error);
    rec_fini(&s.r);
}

CA_TT(listen_background) { run(ca_tt_failed, CA_BINNED_LARGE_BACKGROUND); }
CA_TT(listen_slow_path_maintenance) { run(ca_tt_failed, 0); }
CA_TT(listen_no_cache) { run(ca_tt_failed, CA_BINNED_LARGE_NO_CACHE | CA_BINNED_LARGE_BACKGROUND); }
