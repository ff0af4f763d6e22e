/* SPDX-License-Identifier: MIT */
/*
 * Example: ucontext coroutines, each with its own context allocator.
 *
 * Every coroutine owns a long-lived librbtree allocator over libsource's
 * mmap source, adopted by the switch (ca_switch_adopt: its regions are
 * registered in the ownership map as they come and go, and frees from other
 * threads would be queued). The scheduler swaps the coroutine's adoption in
 * on resume and out on yield with ca_switch_context_swap, so that inside the
 * coroutine ca_switch_malloc (and malloc, when the override is linked)
 * allocates from the coroutine's allocator. Blocks are freed through their
 * owner, whichever coroutine frees them.
 *
 * libc's own allocations follow the selection too: the first printf
 * allocates stdout's buffer, and made inside a coroutine it would land in
 * that coroutine's allocator and die with it. So main writes to stdout once
 * before any coroutine runs (the remedy the README gives), and every
 * allocator is destroyed only after its blocks are freed.
 *
 * Build: cc coroutines.c $(pkg-config --cflags --libs --static \
 *            ctxalloc-switch ctxalloc-rbtree ctxalloc-source)
 * (add the override library, see the README, to make malloc itself switch).
 */
#include <ctxalloc/rbtree.h>
#include <ctxalloc/source.h>
#include <ctxalloc/switch.h>
#include <stdio.h>
#include <string.h>
#include <ucontext.h>

#define STACK_SIZE (64 * 1024)

typedef struct coro {
    ucontext_t uc;
    ca_allocator *slot;      /* the coroutine's allocator while suspended */
    ca_rbtree tree;          /* the coroutine's allocator ... */
    ca_switch_adopted alloc; /* ... as the switch routes to it */
    const char *name;
    char *last; /* a block it allocated, freed by the other */
    int steps;
    unsigned char stack[STACK_SIZE];
} coro;

static ucontext_t scheduler;
static coro *running;

static void yield(void) { swapcontext(&running->uc, &scheduler); }

/* Resume co: install its allocator, run it until it yields, restore ours. */
static void resume(coro *co)
{
    running = co;
    ca_switch_context_swap(&co->slot);
    swapcontext(&scheduler, &co->uc);
    ca_switch_context_swap(&co->slot);
    running = NULL;
}

static coro coros[2];

static void body(void)
{
    coro *self = running;
    for (int i = 0; i < 3; i++) {
        /* Allocated from this coroutine's allocator. */
        char *msg = (char *)ca_switch_malloc(64);
        snprintf(msg, 64, "%s step %d", self->name, i);
        if (ca_switch_owner(msg) != &self->alloc.base)
            printf("unexpected owner\n");
        /* Free what the other coroutine left: it goes to *its* allocator. */
        coro *other = self == &coros[0] ? &coros[1] : &coros[0];
        if (other->last) {
            printf("%s frees \"%s\"\n", self->name, other->last);
            ca_switch_free(other->last);
            other->last = NULL;
        }
        self->last = msg;
        self->steps++;
        yield();
    }
}

int main(void)
{
    const char *names[2] = {"ping", "pong"};
    /* stdout's buffer is allocated now, from the global allocator */
    printf("two coroutines, one allocator each\n");
    for (int i = 0; i < 2; i++) {
        coro *co = &coros[i];
        co->name = names[i];
        ca_rbtree_options o;
        ca_rbtree_options_init(&o);
        o.source = ca_source_mmap_global();
        o.region_size = 1 << 20;
        if (ca_rbtree_init(&co->tree, &o) != 0)
            return 1;
        if (ca_switch_adopt(&co->alloc, &co->tree.base) != 0) {
            printf("%s\n", ca_last_error());
            return 1;
        }
        co->slot = &co->alloc.base;
        getcontext(&co->uc);
        co->uc.uc_stack.ss_sp = co->stack;
        co->uc.uc_stack.ss_size = sizeof co->stack;
        co->uc.uc_link = &scheduler;
        makecontext(&co->uc, body, 0);
    }
    for (int round = 0; round < 4; round++)
        for (int i = 0; i < 2; i++)
            resume(&coros[i]);
    for (int i = 0; i < 2; i++)
        ca_switch_free(coros[i].last);
    for (int i = 0; i < 2; i++) {
        /* every block is freed and no context holds it: undo, then destroy */
        if (ca_switch_unadopt(&coros[i].alloc) != 0) {
            printf("%s\n", ca_last_error());
            return 1;
        }
        ca_rbtree_destroy(&coros[i].tree);
    }
    /* The scheduler never had a context allocator. */
    if (ca_switch_context() != NULL || coros[0].steps != 3 || coros[1].steps != 3) {
        printf("FAILED\n");
        return 1;
    }
    printf("done\n");
    return 0;
}
