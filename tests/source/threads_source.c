/* SPDX-License-Identifier: MIT */
/*
 * The thread-safe sources (mmap, file, heap, buffer) under concurrent
 * obtain / commit / decommit / release from several threads, and a fault
 * plan shared by all of them: contents never overlap, counters add up,
 * ca_source_check passes at the end. Plain executable (runs under TSan).
 */
#include <ctxalloc/source.h>
#include <pthread.h>
#include <string.h>

#include "ca_test.h"
#include "ca_tt.h"

#define MAXT 8

typedef struct job {
    ca_source *src;
    unsigned id;
    uint64_t ops;
    int bad;
    uint64_t failed;
    const char *expect; /* every failure leaves this thread a message naming it (NULL: none) */
    int bad_msg;        /* failures whose message did not */
} job;

/* A failed call of this thread: counted, and its message checked. */
static void note_failure(job *j)
{
    j->failed++;
    const char *m = ca_last_error();
    if (j->expect && (!m || !strstr(m, j->expect)))
        j->bad_msg++;
    ca_last_error_clear();
}

static void *worker(void *arg)
{
    job *j = (job *)arg;
    ca_rng r = {ca_test_seed() + j->id};
    size_t g = ca_source_granule(j->src);
    void *live[16] = {0};
    size_t sizes[16] = {0};
    for (uint64_t i = 0; i < j->ops; i++) {
        unsigned k = (unsigned)ca_rng_below(&r, 16);
        if (live[k]) {
            unsigned char *b = (unsigned char *)live[k];
            if (b[0] != (unsigned char)(j->id * 16 + k) || b[sizes[k] - 1] != (unsigned char)j->id)
                j->bad++;
            if (j->src->ops->decommit && ca_rng_below(&r, 3) == 0) {
                /* A failed decommit changes nothing; after a successful one the
                 * first granule's contents are gone until a commit succeeds
                 * (retried: the fault plan injects a bounded number of failures).
                 * Either way the marks are written again. */
                if (ca_source_decommit(j->src, live[k], g) != 0)
                    note_failure(j);
                else
                    while (ca_source_commit(j->src, live[k], g) != 0)
                        note_failure(j);
                b[0] = (unsigned char)(j->id * 16 + k);
                if (sizes[k] == g)
                    b[g - 1] = (unsigned char)j->id;
                continue;
            }
            while (ca_source_release(j->src, live[k], sizes[k]) != 0)
                note_failure(j);
            live[k] = NULL;
        } else {
            size_t n = g * (1 + ca_rng_below(&r, 4));
            if (ca_source_obtain(j->src, n, g, &live[k]) != 0) {
                live[k] = NULL;
                note_failure(j);
                continue;
            }
            sizes[k] = n;
            unsigned char *b = (unsigned char *)live[k];
            b[0] = (unsigned char)(j->id * 16 + k);
            b[n - 1] = (unsigned char)j->id;
        }
    }
    for (unsigned k = 0; k < 16; k++)
        if (live[k])
            while (ca_source_release(j->src, live[k], sizes[k]) != 0)
                note_failure(j);
    return NULL;
}

static int bad_messages;

static int hammer_expect(ca_source *src, uint64_t *failed, const char *expect)
{
    unsigned n = ca_test_threads(4);
    if (n > MAXT)
        n = MAXT;
    pthread_t t[MAXT];
    job jobs[MAXT];
    for (unsigned i = 0; i < n; i++) {
        jobs[i] = (job){src, i, 2000 * ca_test_scale(), 0, 0, expect, 0};
        pthread_create(&t[i], NULL, worker, &jobs[i]);
    }
    int bad = 0;
    *failed = 0;
    bad_messages = 0;
    for (unsigned i = 0; i < n; i++) {
        pthread_join(t[i], NULL);
        bad += jobs[i].bad;
        *failed += jobs[i].failed;
        bad_messages += jobs[i].bad_msg;
    }
    return bad;
}

static int hammer(ca_source *src, uint64_t *failed) { return hammer_expect(src, failed, NULL); }

static ca_source_fault plan;

CA_TT(mmap_concurrent_with_faults)
{
    ca_source_fault_init(&plan, CA_SOURCE_FAULT_OBTAIN | CA_SOURCE_FAULT_RELEASE, 50, 30, ENOMEM);
    ca_source_mmap_options o;
    memset(&o, 0, sizeof o);
    o.fault = &plan;
    ca_source_mmap m;
    CA_TT_ASSERT(ca_source_mmap_init(&m, &o) == 0, "init");
    uint64_t failed;
    int bad = hammer(&m.base, &failed);
    CA_TT_ASSERT(bad == 0, "%d corrupted ranges", bad);
    CA_TT_ASSERT(failed == __atomic_load_n(&plan.injected, __ATOMIC_RELAXED), "failed %lu injected %lu",
                 (unsigned long)failed, (unsigned long)plan.injected);
    CA_TT_ASSERT(plan.injected == 30, "injected %lu", (unsigned long)plan.injected);
    ca_stats st;
    ca_source_stats(&m.base, &st);
    CA_TT_ASSERT(st.bytes_in_use == 0 && st.bytes_reserved == 0 && st.allocs == st.frees, "stats");
    CA_TT_ASSERT(ca_source_check(&m.base) == NULL, "%s", ca_source_check(&m.base));
    ca_source_mmap_destroy(&m);
}

static ca_source_fault file_plan;

CA_TT(file_concurrent_with_enospc)
{
    /* a full disk now and then, on several threads at once */
    ca_source_fault_init(&file_plan, CA_SOURCE_FAULT_FALLOCATE, 20, 10, ENOSPC);
    ca_source_file_options o;
    memset(&o, 0, sizeof o);
    o.fault = &file_plan;
    ca_source_file f;
    CA_TT_ASSERT(ca_source_file_init(&f, &o) == 0, "init: %s", ca_last_error());
    uint64_t failed;
    ca_last_error_clear();
    int bad = hammer_expect(&f.base, &failed, "source-file: fallocate");
    CA_TT_ASSERT(bad == 0, "%d corrupted", bad);
    CA_TT_ASSERT(failed == file_plan.injected && failed == 10, "failed %lu injected %lu", (unsigned long)failed,
                 (unsigned long)file_plan.injected);
    CA_TT_ASSERT(bad_messages == 0, "%d failures without their message in their thread", bad_messages);
    CA_TT_ASSERT(ca_last_error() == NULL, "the workers' messages stay in their threads: %s", ca_last_error());
    CA_TT_ASSERT(ca_source_check(&f.base) == NULL, "%s", ca_source_check(&f.base));
    ca_stats st;
    ca_source_stats(&f.base, &st);
    CA_TT_ASSERT(st.bytes_in_use == 0 && st.bytes_reserved == 0, "stats");
    ca_source_file_destroy(&f);
}

CA_TT(heap_concurrent)
{
    ca_source_heap h;
    CA_TT_ASSERT(ca_source_heap_init(&h, NULL) == 0, "init");
    uint64_t failed;
    int bad = hammer(&h.base, &failed);
    CA_TT_ASSERT(bad == 0 && failed == 0, "%d corrupted, %lu failed", bad, (unsigned long)failed);
    CA_TT_ASSERT(ca_source_check(&h.base) == NULL, "%s", ca_source_check(&h.base));
    ca_source_heap_destroy(&h);
}

static char mem[8 << 20];

CA_TT(buffer_concurrent)
{
    ca_source_buffer b;
    CA_TT_ASSERT(ca_source_buffer_init(&b, mem, sizeof mem, NULL) == 0, "init");
    uint64_t failed;
    int bad = hammer(&b.base, &failed);
    CA_TT_ASSERT(bad == 0 && failed == 0, "%d corrupted, %lu failed", bad, (unsigned long)failed);
    CA_TT_ASSERT(ca_source_check(&b.base) == NULL, "%s", ca_source_check(&b.base));
    ca_stats st;
    ca_source_stats(&b.base, &st);
    CA_TT_ASSERT(st.bytes_in_use == 0, "in use %lu", (unsigned long)st.bytes_in_use);
    ca_source_buffer_destroy(&b);
}
