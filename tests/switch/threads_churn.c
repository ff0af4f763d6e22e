/* SPDX-License-Identifier: MIT */
/*
 * Thread churn and thread exit (plain ca_tt program; built twice: calling
 * ca_switch_* by name, which runs under TSan, and with SW_OVERRIDE through
 * the program's own malloc / free from the override library).
 *   - 1,000 short threads over the run (in waves of 4), each allocating,
 *     freeing blocks left by the previous wave (allocated on threads that
 *     have exited), freeing blocks of main's local (remote pushes), and
 *     allocating and freeing from a pthread key destructor, i.e. during
 *     thread exit;
 *   - main's local ends with zero live blocks after a drain.
 */
#include <pthread.h>

#include "ca_test.h"
#include "ca_tt.h"
#include "switch_test.h"

#ifdef SW_OVERRIDE
#define M(n) malloc(n)
#define F(p) free(p)
#else
#define M(n) ca_switch_malloc(n)
#define F(p) ca_switch_free(p)
#endif

#define WAVE 4
#define PER 16

static sw_ctx main_ctx;
static void *left[WAVE][PER]; /* blocks the previous wave left behind */
static void *mains[WAVE][PER]; /* blocks of main's local, freed remotely */
static pthread_key_t key;
static int errors;

static void at_exit_of_thread(void *v)
{
    /* Thread exit: allocate and free while the thread is going away. */
    void *p = M(100);
    if (!p)
        __atomic_fetch_add(&errors, 1, __ATOMIC_RELAXED);
    F(p);
    F(v);
}

static void *churner(void *arg)
{
    int w = (int)(intptr_t)arg;
    for (int i = 0; i < PER; i++) {
        F(left[w][i]);
        F(mains[w][i]);
        left[w][i] = M((size_t)(i * 24 + 1));
        if (!left[w][i])
            __atomic_fetch_add(&errors, 1, __ATOMIC_RELAXED);
        memset(left[w][i], w, (size_t)(i * 24 + 1));
    }
    pthread_setspecific(key, M(64));
    return NULL;
}

CA_TT(thousand_threads)
{
    CA_TT_ASSERT(sw_ctx_init(&main_ctx) == 0, "init");
    CA_TT_ASSERT(pthread_key_create(&key, at_exit_of_thread) == 0, "key");
    long waves = 250 * (long)ca_test_scale();
    for (long n = 0; n < waves; n++) {
        ca_switch_context_set(sw_ctx_alloc(&main_ctx));
        for (int w = 0; w < WAVE; w++)
            for (int i = 0; i < PER; i++)
                mains[w][i] = ca_switch_malloc(32);
        ca_switch_context_set(NULL);
        pthread_t th[WAVE];
        for (int w = 0; w < WAVE; w++)
            CA_TT_ASSERT(pthread_create(&th[w], NULL, churner, (void *)(intptr_t)w) == 0, "create");
        for (int w = 0; w < WAVE; w++)
            pthread_join(th[w], NULL);
        for (int w = 0; w < WAVE; w++)
            for (int i = 0; i < PER; i++)
                mains[w][i] = NULL;
        ca_switch_local_drain(&main_ctx.ad.local); /* keeps the queue short */
    }
    for (int w = 0; w < WAVE; w++)
        for (int i = 0; i < PER; i++)
            F(left[w][i]);
    ca_switch_local_drain(&main_ctx.ad.local);
    CA_TT_ASSERT(errors == 0, "%d allocation errors", errors);
    CA_TT_ASSERT(main_ctx.pool.live == 0, "main's local has %ld live blocks", main_ctx.pool.live);
    CA_TT_ASSERT(main_ctx.ad.local.remote_frees == (uint64_t)(waves * WAVE * PER), "remote frees %lu",
                 (unsigned long)main_ctx.ad.local.remote_frees);
    sw_ctx_destroy(&main_ctx);
    const char *broken = ca_switch_check();
    CA_TT_ASSERT(broken == NULL, "ca_switch_check: %s", broken);
}
