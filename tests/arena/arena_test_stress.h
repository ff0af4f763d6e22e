/* SPDX-License-Identifier: MIT */
/*
 * Shared multi-threaded workload of threads_stress.c and test_aba.c: threads
 * allocate, write, verify and free concurrently; a shadow map with one
 * atomic owner byte per 16-byte grain proves that every byte is owned by
 * exactly one thread at a time (an allocation claims its grains with CAS and
 * a claim that finds another owner is a violation), and each block keeps
 * its pattern until freed. Returns the number of violations seen.
 */
#ifndef ARENA_TEST_STRESS_H
#define ARENA_TEST_STRESS_H

#include <ctxalloc/arena.h>
#include <pthread.h>
#include <stdlib.h>

#include "ca_test.h"

typedef struct stress_cfg {
    ca_arena *a;
    unsigned threads;
    uint64_t ops;        /* per thread */
    size_t fixed_size;   /* 0: sizes 16 B - 4 KiB (mostly small) */
    bool compact;        /* thread 0 compacts now and then */
    uint64_t seed;
} stress_cfg;

typedef struct stress_shared {
    stress_cfg cfg;
    uint8_t *owner;       /* one byte per grain: 0 free, else thread + 1 (atomic) */
    uint64_t violations;  /* atomic */
    int stop;             /* atomic: set once a violation is seen */
} stress_shared;

typedef struct stress_arg {
    stress_shared *sh;
    unsigned id;
} stress_arg;

typedef struct stress_blk {
    uint64_t off;
    size_t size;
} stress_blk;

static void stress_violation(stress_shared *sh)
{
    __atomic_fetch_add(&sh->violations, 1, __ATOMIC_RELAXED);
    __atomic_store_n(&sh->stop, 1, __ATOMIC_RELAXED);
}

static void *stress_thread(void *p)
{
    stress_arg *arg = (stress_arg *)p;
    stress_shared *sh = arg->sh;
    ca_arena *a = sh->cfg.a;
    uint8_t me = (uint8_t)(arg->id + 1);
    enum { MAXB = 256 };
    stress_blk *b = (stress_blk *)calloc(MAXB, sizeof *b);
    int n = 0;
    ca_rng r = {sh->cfg.seed * 1000003u + arg->id};
    for (uint64_t op = 0; op < sh->cfg.ops && !__atomic_load_n(&sh->stop, __ATOMIC_RELAXED); op++) {
        if (sh->cfg.compact && arg->id == 0 && op % 997 == 0)
            ca_arena_compact(a);
        if (n < MAXB && (n == 0 || ca_rng_below(&r, 100) < 55)) {
            size_t size = sh->cfg.fixed_size;
            if (!size)
                size = ca_rng_below(&r, 8) ? 16 + (size_t)ca_rng_below(&r, 241) : 16 + (size_t)ca_rng_below(&r, 4081);
            uint64_t off;
            if (ca_arena_alloc(a, size, 16, &off))
                continue; /* exhausted for now: others will free */
            uint64_t g0 = off / 16, g1 = (off + ca_align_up(size, 16)) / 16;
            for (uint64_t g = g0; g < g1; g++) {
                uint8_t z = 0;
                if (!__atomic_compare_exchange_n(&sh->owner[g], &z, me, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
                    stress_violation(sh);
                    free(b);
                    return NULL; /* the memory is shared now: stop touching it */
                }
            }
            ca_test_fill(ca_arena_ptr(a, off), size, off ^ me);
            b[n].off = off;
            b[n].size = size;
            n++;
        } else {
            int i = (int)ca_rng_below(&r, (uint64_t)n);
            if (!ca_test_verify(ca_arena_ptr(a, b[i].off), b[i].size, b[i].off ^ me)) {
                stress_violation(sh);
                break;
            }
            uint64_t g0 = b[i].off / 16, g1 = (b[i].off + ca_align_up(b[i].size, 16)) / 16;
            for (uint64_t g = g0; g < g1; g++)
                __atomic_store_n(&sh->owner[g], 0, __ATOMIC_RELEASE);
            if (ca_arena_free(a, b[i].off, b[i].size))
                stress_violation(sh);
            b[i] = b[--n];
        }
    }
    for (int i = 0; i < n && !__atomic_load_n(&sh->stop, __ATOMIC_RELAXED); i++) {
        if (!ca_test_verify(ca_arena_ptr(a, b[i].off), b[i].size, b[i].off ^ me))
            stress_violation(sh);
        uint64_t g0 = b[i].off / 16, g1 = (b[i].off + ca_align_up(b[i].size, 16)) / 16;
        for (uint64_t g = g0; g < g1; g++)
            __atomic_store_n(&sh->owner[g], 0, __ATOMIC_RELEASE);
        ca_arena_free(a, b[i].off, b[i].size);
    }
    free(b);
    return NULL;
}

static uint64_t stress_run(const stress_cfg *cfg)
{
    stress_shared sh;
    memset(&sh, 0, sizeof sh);
    sh.cfg = *cfg;
    sh.owner = (uint8_t *)calloc(ca_arena_capacity(cfg->a) / 16, 1);
    pthread_t t[16];
    stress_arg args[16];
    for (unsigned i = 0; i < cfg->threads && i < 16; i++) {
        args[i].sh = &sh;
        args[i].id = i;
        pthread_create(&t[i], NULL, stress_thread, &args[i]);
    }
    for (unsigned i = 0; i < cfg->threads && i < 16; i++)
        pthread_join(t[i], NULL);
    free(sh.owner);
    return sh.violations;
}

#endif
