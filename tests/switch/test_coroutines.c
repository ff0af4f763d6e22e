/* SPDX-License-Identifier: MIT */
/*
 * Coroutine switches with ucontext: each coroutine has its own context
 * allocator, installed on resume and saved on yield with
 * ca_switch_context_swap; the scheduler has its own context allocator that
 * must be back after every switch. Blocks allocated in one coroutine and
 * freed in another go to their owner.
 */
#include <criterion/criterion.h>
#include <ucontext.h>

#include "switch_test.h"

#define NCORO 3
#define STEPS 50

typedef struct coro {
    ucontext_t uc;
    ca_allocator *slot;
    sw_ctx ctx;
    void *handoff; /* a block for the next coroutine to free */
    int id, steps, errors;
    unsigned char stack[128 * 1024];
} coro;

static ucontext_t sched;
static coro *running;
static coro coros[NCORO];

static void resume(coro *co)
{
    running = co;
    ca_switch_context_swap(&co->slot);
    swapcontext(&sched, &co->uc);
    ca_switch_context_swap(&co->slot);
}

static void body(void)
{
    coro *self = running;
    for (int i = 0; i < STEPS; i++) {
        if (ca_switch_context() != sw_ctx_alloc(&self->ctx))
            self->errors++;
        void *p = ca_switch_malloc((size_t)(16 + i * 8));
        if (ca_switch_owner(p) != sw_ctx_alloc(&self->ctx))
            self->errors++;
        coro *prev = &coros[(self->id + NCORO - 1) % NCORO];
        if (prev->handoff) {
            if (ca_switch_owner(prev->handoff) != sw_ctx_alloc(&prev->ctx))
                self->errors++;
            ca_switch_free(prev->handoff); /* to prev's allocator */
            prev->handoff = NULL;
        }
        self->handoff = p;
        self->steps++;
        swapcontext(&self->uc, &sched);
    }
}

Test(coroutines, context_follows_the_running_coroutine)
{
    sw_ctx main_ctx;
    cr_assert_eq(sw_ctx_init(&main_ctx), 0);
    ca_switch_context_set(sw_ctx_alloc(&main_ctx));
    for (int i = 0; i < NCORO; i++) {
        coro *co = &coros[i];
        co->id = i;
        cr_assert_eq(sw_ctx_init(&co->ctx), 0);
        co->slot = sw_ctx_alloc(&co->ctx);
        getcontext(&co->uc);
        co->uc.uc_stack.ss_sp = co->stack;
        co->uc.uc_stack.ss_size = sizeof co->stack;
        co->uc.uc_link = &sched;
        makecontext(&co->uc, body, 0);
    }
    for (int round = 0; round < STEPS; round++) {
        for (int i = 0; i < NCORO; i++) {
            resume(&coros[i]);
            cr_assert_eq(ca_switch_context(), sw_ctx_alloc(&main_ctx), "scheduler's context restored");
            cr_assert_eq(coros[i].slot, sw_ctx_alloc(&coros[i].ctx), "coroutine's context saved");
        }
    }
    void *m = ca_switch_malloc(10);
    cr_assert_eq(ca_switch_owner(m), sw_ctx_alloc(&main_ctx));
    ca_switch_free(m);
    for (int i = 0; i < NCORO; i++) {
        cr_assert_eq(coros[i].errors, 0, "coroutine %d saw a wrong selection or owner", i);
        cr_assert_eq(coros[i].steps, STEPS);
        ca_switch_free(coros[i].handoff);
        cr_assert_eq(coros[i].ctx.pool.live, 0, "coroutine %d leaked", i);
    }
    cr_assert_eq(main_ctx.pool.live, 0);
    ca_switch_context_set(NULL);
}
