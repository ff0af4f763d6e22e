/* SPDX-License-Identifier: MIT */
/*
 * The ownership map under concurrency (runs under TSan): writer threads
 * register and unregister their own ranges, some sharing leaf and middle
 * nodes so that node installation races; reader threads look up every range
 * the whole time. A reader must only ever see NULL or the range's true owner,
 * and a writer must always see its own registration right after making it.
 */
#include <ctxalloc/core.h>
#include <pthread.h>

#include "ca_test.h"
#include "ca_tt.h"

#define NWRITERS 4
#define RANGES_PER_WRITER 8

/* Base of the test's address space: untouched memory far from the heap, in a
 * fresh 64 GiB root slot so that node installs really race. */
static uintptr_t space_base;
static int owners[NWRITERS];
static int stop;
static unsigned long rounds;

static uintptr_t range_addr(int w, int r)
{
    /* Ranges interleave writers inside one leaf: granule = r*NWRITERS + w. */
    return space_base + ((uintptr_t)(r * NWRITERS + w) << CA_OWNER_GRANULE_SHIFT) * 3;
}

static int writer_errors[NWRITERS];

static void *writer(void *arg)
{
    int w = (int)(intptr_t)arg;
    for (unsigned long i = 0; i < rounds; i++) {
        for (int r = 0; r < RANGES_PER_WRITER; r++) {
            void *a = (void *)range_addr(w, r);
            CA_TT_OPS(2);
            if (ca_owner_register(a, CA_OWNER_GRANULE, &owners[w]) != 0)
                writer_errors[w]++;
            if (ca_owner_lookup(a) != &owners[w])
                writer_errors[w]++;
        }
        for (int r = 0; r < RANGES_PER_WRITER; r++)
            ca_owner_unregister((void *)range_addr(w, r), CA_OWNER_GRANULE, &owners[w]);
    }
    return NULL;
}

static unsigned long reader_errors[2], reader_hits[2];

static void *reader(void *arg)
{
    int id = (int)(intptr_t)arg;
    while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
        for (int w = 0; w < NWRITERS; w++)
            for (int r = 0; r < RANGES_PER_WRITER; r++) {
                void *o = ca_owner_lookup((void *)(range_addr(w, r) + 12345));
                if (o && o != &owners[w])
                    reader_errors[id]++;
                reader_hits[id] += o != NULL;
            }
    }
    return NULL;
}

CA_TT(register_while_reading)
{
    ca_rng rng = {ca_test_seed()};
    /* A random 64 GiB-aligned slot in the upper half of the 47-bit space. */
    space_base = ((uintptr_t)(1024 + ca_rng_below(&rng, 512))) << 36;
    rounds = 2000 * ca_test_scale();
    pthread_t wt[NWRITERS], rt[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&rt[i], NULL, reader, (void *)(intptr_t)i);
    for (int i = 0; i < NWRITERS; i++)
        pthread_create(&wt[i], NULL, writer, (void *)(intptr_t)i);
    for (int i = 0; i < NWRITERS; i++)
        pthread_join(wt[i], NULL);
    __atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
    for (int i = 0; i < 2; i++)
        pthread_join(rt[i], NULL);
    for (int i = 0; i < NWRITERS; i++)
        CA_TT_ASSERT(writer_errors[i] == 0, "writer %d: %d errors", i, writer_errors[i]);
    CA_TT_ASSERT(reader_errors[0] + reader_errors[1] == 0, "readers saw a wrong owner %lu times",
                 reader_errors[0] + reader_errors[1]);
    for (int w = 0; w < NWRITERS; w++)
        for (int r = 0; r < RANGES_PER_WRITER; r++)
            CA_TT_ASSERT(ca_owner_lookup((void *)range_addr(w, r)) == NULL, "left registered");
}

/* Several threads race to register the same granules, one at a time:
 * exactly one claim of each granule may win, and the winner's owner sticks. */
#define CLAIMERS 4
#define CLAIM_GRANULES 256
static int claim_owner[CLAIMERS];
static int claim_wins[CLAIMERS];
static uintptr_t claim_base;

static void *claimer(void *arg)
{
    int id = (int)(intptr_t)arg;
    for (int g = 0; g < CLAIM_GRANULES; g++) {
        void *a = (void *)(claim_base + ((uintptr_t)g << CA_OWNER_GRANULE_SHIFT));
        if (ca_owner_register(a, CA_OWNER_GRANULE, &claim_owner[id]) == 0)
            claim_wins[id]++;
    }
    return NULL;
}

CA_TT(concurrent_claims_one_winner)
{
    claim_base = ((uintptr_t)1700) << 36;
    pthread_t t[CLAIMERS];
    for (int i = 0; i < CLAIMERS; i++)
        pthread_create(&t[i], NULL, claimer, (void *)(intptr_t)i);
    for (int i = 0; i < CLAIMERS; i++)
        pthread_join(t[i], NULL);
    int total = 0;
    for (int i = 0; i < CLAIMERS; i++)
        total += claim_wins[i];
    CA_TT_ASSERT(total == CLAIM_GRANULES, "%d wins for %d granules", total, CLAIM_GRANULES);
    for (int g = 0; g < CLAIM_GRANULES; g++) {
        void *a = (void *)(claim_base + ((uintptr_t)g << CA_OWNER_GRANULE_SHIFT));
        void *o = ca_owner_lookup(a);
        CA_TT_ASSERT(o != NULL, "granule %d unowned", g);
        ca_owner_unregister(a, CA_OWNER_GRANULE, o);
    }
}

/* Writers own interleaved 4-page slices of the same granules, so every
 * granule is split while the others register, overlay and unregister their
 * slices; readers must only ever see NULL, the slice's writer, or (while
 * the writer overlays a parent range) the parent. */
#define SPLIT_GRANULES 16
static uintptr_t split_base;
static int split_parent;

static uintptr_t slice_addr(int w, int g)
{
    return split_base + ((uintptr_t)g << CA_OWNER_GRANULE_SHIFT) + (uintptr_t)w * 4 * CA_OWNER_PAGE;
}

static void *split_writer(void *arg)
{
    int w = (int)(intptr_t)arg;
    for (unsigned long i = 0; i < rounds; i++) {
        for (int g = 0; g < SPLIT_GRANULES; g++) {
            void *a = (void *)slice_addr(w, g);
            CA_TT_OPS(2);
            int e = (i & 1) ? ca_owner_register(a, 4 * CA_OWNER_PAGE, &owners[w])
                            : ca_owner_overlay(a, 4 * CA_OWNER_PAGE, &owners[w]);
            if (e != 0 || ca_owner_lookup((char *)a + 3 * CA_OWNER_PAGE) != &owners[w])
                writer_errors[w]++;
        }
        for (int g = 0; g < SPLIT_GRANULES; g++) {
            void *a = (void *)slice_addr(w, g);
            if (i & 1) {
                ca_owner_unregister(a, 4 * CA_OWNER_PAGE, &owners[w]);
                if (ca_owner_lookup(a) != NULL)
                    writer_errors[w]++;
            } else {
                /* the overlay gives the parent back (rounds >= 2), else retires */
                ca_owner_retire(a, 4 * CA_OWNER_PAGE, &owners[w]);
                if (ca_owner_lookup(a) != (i ? (void *)&split_parent : CA_OWNER_RETIRED))
                    writer_errors[w]++;
                ca_owner_unregister(a, 4 * CA_OWNER_PAGE, &split_parent);
            }
        }
        /* odd rounds register over the retired pages, even rounds overlay a parent */
        if (!(i & 1))
            continue;
        for (int g = 0; g < SPLIT_GRANULES; g++)
            if (ca_owner_register((void *)slice_addr(w, g), 4 * CA_OWNER_PAGE, &split_parent) != 0)
                writer_errors[w]++;
    }
    for (int g = 0; g < SPLIT_GRANULES; g++)
        ca_owner_unregister((void *)slice_addr(w, g), 4 * CA_OWNER_PAGE, &split_parent);
    return NULL;
}

static void *split_reader(void *arg)
{
    int id = (int)(intptr_t)arg;
    while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
        for (int w = 0; w < NWRITERS; w++)
            for (int g = 0; g < SPLIT_GRANULES; g++) {
                void *o = ca_owner_lookup((void *)(slice_addr(w, g) + 2 * CA_OWNER_PAGE + 77));
                if (o && o != &owners[w] && o != &split_parent && o != CA_OWNER_RETIRED)
                    reader_errors[id]++;
                reader_hits[id] += o == &owners[w];
            }
    }
    return NULL;
}

CA_TT(split_granules_while_reading)
{
    split_base = ((uintptr_t)1800) << 36;
    rounds = 500 * ca_test_scale();
    __atomic_store_n(&stop, 0, __ATOMIC_RELAXED);
    memset(writer_errors, 0, sizeof writer_errors);
    reader_errors[0] = reader_errors[1] = 0;
    pthread_t wt[NWRITERS], rt[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&rt[i], NULL, split_reader, (void *)(intptr_t)i);
    for (int i = 0; i < NWRITERS; i++)
        pthread_create(&wt[i], NULL, split_writer, (void *)(intptr_t)i);
    for (int i = 0; i < NWRITERS; i++)
        pthread_join(wt[i], NULL);
    __atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
    for (int i = 0; i < 2; i++)
        pthread_join(rt[i], NULL);
    for (int i = 0; i < NWRITERS; i++)
        CA_TT_ASSERT(writer_errors[i] == 0, "writer %d: %d errors", i, writer_errors[i]);
    CA_TT_ASSERT(reader_errors[0] + reader_errors[1] == 0, "readers saw a wrong owner %lu times",
                 reader_errors[0] + reader_errors[1]);
    for (int w = 0; w < NWRITERS; w++)
        for (int g = 0; g < SPLIT_GRANULES; g++) {
            void *o = ca_owner_lookup((void *)slice_addr(w, g));
            CA_TT_ASSERT(o == NULL || o == CA_OWNER_RETIRED, "slice left registered");
        }
}
