/* SPDX-License-Identifier: MIT */
/*
 * Thread tests (plain ca_tt executable, run under TSan):
 *  - a shared bump used by 2..8 threads at once: each thread fills every
 *    block it gets with its own id pattern, frees some tips (CAS), grows some
 *    tips in place, and verifies all its blocks at the end; the main thread
 *    then sorts every live block of every thread and checks that no two
 *    overlap and that they lie in the shared bump.
 *  - local bumps from one shared bump, one per thread, with reset cycles.
 *  - the warm cache used by tasks on several threads.
 *  - a listener attached, detached and attached again while 4 threads grow
 *    the shared bump (and one grows a local bump from it with its own
 *    listener): no chunk is missed or reported twice, and at the end the
 *    reported ranges are exactly the chunk list.
 */
#include <ctxalloc/bump.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "bump_test.h"
#include "ca_test.h"
#include "ca_tt.h"
#include "bump_test_listen.h"

typedef struct rec {
    char *p;
    size_t size;
} rec;

typedef struct worker {
    pthread_t th;
    int id;
    long n;
    ca_bump_shared *s;
    rec *blocks;
    long nblocks;
    long tip_ok;
    int bad;
} worker;

static void fill_id(char *p, size_t n, int id)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (char)(id * 31 + (int)(i & 15));
}
static int check_id(const char *p, size_t n, int id)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != (char)(id * 31 + (int)(i & 15)))
            return 0;
    return 1;
}

static void *shared_worker(void *arg)
{
    worker *w = (worker *)arg;
    ca_rng r = {ca_test_seed() + (uint64_t)w->id * 7919};
    for (long i = 0; i < w->n; i++) {
        size_t size = 1 + (size_t)ca_rng_below(&r, ca_rng_below(&r, 64) == 0 ? 70000 : 100);
        size_t align = (size_t)1 << ca_rng_below(&r, ca_rng_below(&r, 8) == 0 ? 8 : 4);
        char *p = (char *)ca_bump_shared_alloc(w->s, size, align);
        if (!p || !ca_is_aligned((uintptr_t)p, align)) {
            w->bad = 1;
            return NULL;
        }
        fill_id(p, size, w->id);
        unsigned act = (unsigned)ca_rng_below(&r, 10);
        if (act == 0) {
            /* Tip free: reclaimed only if no other thread allocated after it. */
            ca_bump_shared_free(w->s, p, size);
            continue;
        }
        if (act == 1) {
            char *q = (char *)ca_bump_shared_resize(w->s, p, size, size + 64, align, CA_RESIZE_IN_PLACE);
            if (q) {
                if (q != p) {
                    w->bad = 2;
                    return NULL;
                }
                w->tip_ok++;
                size += 64;
                fill_id(p, size, w->id);
            }
        }
        w->blocks[w->nblocks++] = (rec){p, size};
    }
    for (long i = 0; i < w->nblocks; i++)
        if (!check_id(w->blocks[i].p, w->blocks[i].size, w->id)) {
            w->bad = 3;
            return NULL;
        }
    return NULL;
}

static int cmp_rec(const void *a, const void *b)
{
    const rec *x = (const rec *)a, *y = (const rec *)b;
    return x->p < y->p ? -1 : x->p > y->p;
}

CA_TT(shared_2_to_8_threads_own_their_bytes)
{
    long per = 4000 * (long)ca_test_scale();
    for (int nth = 2; nth <= 8; nth++) {
        test_source ts;
        test_source_init(&ts);
        ca_bump_shared s;
        CA_TT_ASSERT(ca_bump_shared_init(&s, &ts.base, NULL) == 0, "init");
        worker w[8];
        for (int t = 0; t < nth; t++) {
            w[t] = (worker){0};
            w[t].id = t + 1;
            w[t].n = per;
            w[t].s = &s;
            w[t].blocks = (rec *)malloc(sizeof(rec) * (size_t)per);
            pthread_create(&w[t].th, NULL, shared_worker, &w[t]);
        }
        long total = 0;
        for (int t = 0; t < nth; t++) {
            pthread_join(w[t].th, NULL);
            CA_TT_ASSERT(w[t].bad == 0, "thread %d of %d failed (%d)", t, nth, w[t].bad);
            total += w[t].nblocks;
        }
        rec *all = (rec *)malloc(sizeof(rec) * (size_t)total);
        long k = 0;
        for (int t = 0; t < nth; t++)
            for (long i = 0; i < w[t].nblocks; i++)
                all[k++] = w[t].blocks[i];
        qsort(all, (size_t)total, sizeof(rec), cmp_rec);
        for (long i = 0; i < total; i++) {
            CA_TT_ASSERT(ca_bump_shared_owns(&s, all[i].p), "block %p not in the bump", (void *)all[i].p);
            if (i)
                CA_TT_ASSERT(all[i - 1].p + all[i - 1].size <= all[i].p, "%d threads: blocks %p+%zu and %p overlap",
                             nth, (void *)all[i - 1].p, all[i - 1].size, (void *)all[i].p);
        }
        ca_stats st;
        ca_bump_shared_stats(&s, &st);
        uint64_t bytes = 0;
        for (long i = 0; i < total; i++)
            bytes += all[i].size;
        CA_TT_ASSERT(st.bytes_in_use >= bytes, "in use %llu < live %llu", (unsigned long long)st.bytes_in_use,
                     (unsigned long long)bytes);
        CA_TT_ASSERT(ca_bump_shared_check(&s) == NULL, "check");
        free(all);
        for (int t = 0; t < nth; t++)
            free(w[t].blocks);
        ca_bump_shared_destroy(&s);
        CA_TT_ASSERT(ts.live == 0, "chunks leaked: %ld", ts.live);
    }
}

/* Threads race to replace a full chunk: exactly one new chunk per fill. */
typedef struct racer {
    pthread_t th;
    ca_bump_shared *s;
    long n;
    int bad;
} racer;

static void *race_worker(void *arg)
{
    racer *x = (racer *)arg;
    for (long i = 0; i < x->n; i++) {
        char *p = (char *)ca_bump_shared_alloc(x->s, 1000, 16);
        if (!p) {
            x->bad = 1;
            return NULL;
        }
        p[0] = p[999] = 1;
    }
    return NULL;
}

CA_TT(shared_chunk_installation_race)
{
    test_source ts;
    test_source_init(&ts);
    ca_bump_shared s;
    ca_bump_options o = {4096, 16384};
    ca_bump_shared_init(&s, &ts.base, &o);
    racer r[4];
    for (int t = 0; t < 4; t++) {
        r[t] = (racer){0};
        r[t].s = &s;
        r[t].n = 5000;
        pthread_create(&r[t].th, NULL, race_worker, &r[t]);
    }
    for (int t = 0; t < 4; t++) {
        pthread_join(r[t].th, NULL);
        CA_TT_ASSERT(r[t].bad == 0, "alloc failed");
    }
    /* 20,000 x 1,000 B in chunks of <= 16 KiB (15 allocations each, plus a
     * wasted tail per chunk): a racing double install would show up as many
     * more chunks than the bytes need. */
    ca_stats st;
    ca_bump_shared_stats(&s, &st);
    uint64_t obtained = 0;
    ca_stats_get_counter(&st, "chunks_obtained", &obtained);
    CA_TT_ASSERT(obtained <= 20000 / 15 + 20, "chunks obtained: %llu", (unsigned long long)obtained);
    CA_TT_ASSERT(ca_bump_shared_check(&s) == NULL, "check");
    ca_bump_shared_destroy(&s);
    CA_TT_ASSERT(ts.live == 0, "leak");
}

typedef struct local_worker {
    pthread_t th;
    ca_bump_shared *s;
    int id;
    int bad;
} local_worker;

static void *local_fn(void *arg)
{
    local_worker *w = (local_worker *)arg;
    ca_bump b;
    if (ca_bump_init_local(&b, w->s, NULL)) {
        w->bad = 1;
        return NULL;
    }
    static __thread char *ptrs[3000];
    for (int cycle = 0; cycle < 8; cycle++) {
        for (int i = 0; i < 3000; i++) {
            ptrs[i] = (char *)ca_bump_alloc(&b, 48, 8);
            if (!ptrs[i]) {
                w->bad = 2;
                return NULL;
            }
            fill_id(ptrs[i], 48, w->id);
        }
        for (int i = 0; i < 3000; i++)
            if (!check_id(ptrs[i], 48, w->id)) {
                w->bad = 3;
                return NULL;
            }
        if (ca_bump_check(&b)) {
            w->bad = 4;
            return NULL;
        }
        ca_bump_reset(&b);
    }
    ca_bump_destroy(&b);
    return NULL;
}

CA_TT(local_bumps_from_shared_threads)
{
    test_source ts;
    test_source_init(&ts);
    ca_bump_shared s;
    ca_bump_shared_init(&s, &ts.base, NULL);
    for (int round = 0; round < 3; round++) {
        local_worker w[4];
        for (int t = 0; t < 4; t++) {
            w[t] = (local_worker){0};
            w[t].s = &s;
            w[t].id = t + 1;
            pthread_create(&w[t].th, NULL, local_fn, &w[t]);
        }
        for (int t = 0; t < 4; t++) {
            pthread_join(w[t].th, NULL);
            CA_TT_ASSERT(w[t].bad == 0, "local thread %d failed (%d)", t, w[t].bad);
        }
    }
    ca_stats st;
    ca_bump_shared_stats(&s, &st);
    uint64_t taken = 0;
    ca_stats_get_counter(&st, "spare_taken", &taken);
    CA_TT_ASSERT(taken > 0, "later rounds should reuse returned chunks");
    CA_TT_ASSERT(ca_bump_shared_check(&s) == NULL, "check");
    ca_bump_shared_destroy(&s);
    CA_TT_ASSERT(ts.live == 0, "leak");
}

typedef struct task_worker {
    pthread_t th;
    ca_bump_cache *c;
    int id;
    int bad;
} task_worker;

static void *task_fn(void *arg)
{
    task_worker *w = (task_worker *)arg;
    for (int task = 0; task < 50; task++) {
        ca_bump b;
        if (ca_bump_cache_take(w->c, &b)) {
            w->bad = 1;
            return NULL;
        }
        char *first = NULL;
        for (int i = 0; i < 500; i++) {
            char *p = (char *)ca_bump_alloc(&b, 32, 8);
            fill_id(p, 32, w->id);
            if (!first)
                first = p;
        }
        if (!check_id(first, 32, w->id)) {
            w->bad = 2;
            return NULL;
        }
        ca_bump_cache_put(w->c, &b);
    }
    return NULL;
}

CA_TT(warm_cache_tasks_threads)
{
    test_source ts;
    test_source_init(&ts);
    ca_bump_cache c;
    ca_bump_cache_init(&c, &ts.base, NULL, 2);
    task_worker w[4];
    for (int t = 0; t < 4; t++) {
        w[t] = (task_worker){0};
        w[t].c = &c;
        w[t].id = t + 1;
        pthread_create(&w[t].th, NULL, task_fn, &w[t]);
    }
    for (int t = 0; t < 4; t++) {
        pthread_join(w[t].th, NULL);
        CA_TT_ASSERT(w[t].bad == 0, "task thread %d failed", t);
    }
    CA_TT_ASSERT(ts.live <= 2, "more than max_warm chunks kept: %ld", ts.live);
    CA_TT_ASSERT(ca_bump_cache_check(&c) == NULL, "check");
    ca_bump_cache_destroy(&c);
    CA_TT_ASSERT(ts.live == 0, "leak");
}

typedef struct listen_worker {
    pthread_t th;
    ca_bump_shared *s;
    recorder *local_rec; /* NULL: allocate from the shared bump */
    int id;
    int bad;
} listen_worker;

static void *listen_fn(void *arg)
{
    listen_worker *w = (listen_worker *)arg;
    ca_rng r = {ca_test_seed() + (uint64_t)w->id * 104729};
    ca_bump local;
    if (w->local_rec) {
        if (ca_bump_init_local(&local, w->s, NULL) || ca_bump_listen(&local, &w->local_rec->l)) {
            w->bad = 1;
            return NULL;
        }
    }
    for (int i = 0; i < 6000; i++) {
        size_t size = 1 + (size_t)ca_rng_below(&r, ca_rng_below(&r, 200) == 0 ? (1 << 20) : 200);
        char *p;
        if (w->local_rec) {
            p = (char *)ca_bump_alloc(&local, size, 16);
            if (p && !rec_covers(w->local_rec, p, size)) {
                w->bad = 2;
                return NULL;
            }
        } else {
            p = (char *)ca_bump_shared_alloc(w->s, size, 16);
        }
        if (!p) {
            w->bad = 3;
            return NULL;
        }
        fill_id(p, size, w->id);
        if (!w->local_rec && size > 4096 && ca_rng_below(&r, 2) == 0)
            ca_bump_shared_free(w->s, p, size); /* the newest oversized chunk goes back */
        if (w->local_rec && i % 2000 == 1999)
            ca_bump_reset(&local);
    }
    if (w->local_rec) {
        if (ca_bump_check(&local)) {
            w->bad = 4;
            return NULL;
        }
        ca_bump_destroy(&local);
        if (w->local_rec->nlive != 0)
            w->bad = 5;
    }
    return NULL;
}

static recorder listen_rec, listen_rec_local;

CA_TT(shared_listener_while_threads_grow)
{
    for (int round = 0; round < 3; round++) {
        test_source ts;
        test_source_init(&ts);
        ca_bump_shared s;
        CA_TT_ASSERT(ca_bump_shared_init(&s, &ts.base, NULL) == 0, "init");
        rec_init(&listen_rec);
        rec_init(&listen_rec_local);
        listen_worker w[5];
        for (int t = 0; t < 5; t++) {
            w[t] = (listen_worker){0};
            w[t].s = &s;
            w[t].id = t + 1;
            w[t].local_rec = t == 4 ? &listen_rec_local : NULL;
            pthread_create(&w[t].th, NULL, listen_fn, &w[t]);
        }
        /* Attach while the threads run (round 0 at once, later rounds after a
         * while), then detach and attach again a few times. */
        if (round)
            usleep(1000u * (unsigned)round);
        CA_TT_ASSERT(ca_bump_shared_listen(&s, &listen_rec.l) == 0, "attach");
        for (int k = 0; k < 4; k++) {
            usleep(500);
            CA_TT_ASSERT(ca_bump_shared_listen(&s, &listen_rec.l) == EBUSY, "second attach");
            CA_TT_ASSERT(ca_bump_shared_listen(&s, NULL) == 0, "detach");
            pthread_mutex_lock(&listen_rec.mu);
            size_t left = listen_rec.nlive;
            pthread_mutex_unlock(&listen_rec.mu);
            CA_TT_ASSERT(left == 0, "%zu ranges left after detach", left);
            CA_TT_ASSERT(ca_bump_shared_listen(&s, &listen_rec.l) == 0, "attach again");
        }
        for (int t = 0; t < 5; t++) {
            pthread_join(w[t].th, NULL);
            CA_TT_ASSERT(w[t].bad == 0, "round %d: thread %d failed (%d)", round, t, w[t].bad);
        }
        CA_TT_ASSERT(listen_rec.errors == 0, "round %d: %d ranges reported twice or removed unknown", round,
                     listen_rec.errors);
        CA_TT_ASSERT(listen_rec_local.errors == 0, "local listener: %d bad events", listen_rec_local.errors);
        size_t n = 0;
        const ca_bump_chunk *lists[2] = {s.current, s.big};
        for (int i = 0; i < 2; i++)
            for (const ca_bump_chunk *c = lists[i]; c; c = c->prev, n++)
                CA_TT_ASSERT(rec_has(&listen_rec, c, c->size), "round %d: chunk %p not reported", round,
                             (const void *)c);
        CA_TT_ASSERT(listen_rec.nlive == n, "round %d: %zu ranges reported for %zu chunks", round,
                     listen_rec.nlive, n);
        CA_TT_ASSERT(ca_bump_shared_check(&s) == NULL, "check");
        ca_bump_shared_destroy(&s);
        CA_TT_ASSERT(listen_rec.nlive == 0, "destroy removes every range");
        CA_TT_ASSERT(ts.live == 0, "leak");
        CA_TT_OPS(5 * 6000);
    }
}
