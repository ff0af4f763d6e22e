/* SPDX-License-Identifier: MIT */
/* Large-object tier: fork while other threads allocate and free and the
 * background thread purges; the child allocates, frees and checks the
 * tier, and exits cleanly; the parent carries on. */
#include <pthread.h>
#include <stdio.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ca_test.h"
#include "ca_tt.h"
#include "large_internal.h"

typedef struct ctx {
    ca_binned_large *l;
    int stop; /* atomic */
    uint64_t seed;
} ctx;

static void *churn(void *arg)
{
    ctx *c = (ctx *)arg;
    ca_rng r = {__atomic_fetch_add(&c->seed, 77, __ATOMIC_RELAXED)};
    while (!__atomic_load_n(&c->stop, __ATOMIC_RELAXED)) {
        size_t size = 1 + (size_t)ca_rng_below(&r, 4 << 20);
        char *p = (char *)ca_binned_large_alloc(c->l, size, 16, NULL);
        if (p) {
            p[0] = 1;
            p[size - 1] = 2;
            ca_binned_large_free(c->l, p);
        }
    }
    return NULL;
}

CA_TT(fork_while_allocating)
{
    ctx c;
    memset(&c, 0, sizeof c);
    ca_binned_large_options o;
    memset(&o, 0, sizeof o);
    o.flags = CA_BINNED_LARGE_BACKGROUND;
    o.dirty_decay_ms = 1;
    o.unmap_decay_ms = 2;
    CA_TT_ASSERT(ca_binned_large_create(&c.l, &o) == 0, "create");
    c.seed = ca_test_seed();
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, churn, &c);
    unsigned rounds = (unsigned)(20 * ca_test_scale());
    int bad_round = -1, bad_status = 0;
    for (unsigned round = 0; round < rounds; round++) {
        void *keep = ca_binned_large_alloc(c.l, 3 << 20, 16, NULL);
        memset(keep, 0x5c, 3 << 20);
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0) {
            int ok = ((unsigned char *)keep)[(3 << 20) - 1] == 0x5c;
            if (!ok)
                fprintf(stderr, "  child: kept block changed\n");
            for (int i = 0; i < 50; i++) {
                char *p = (char *)ca_binned_large_alloc(c.l, (size_t)(i + 1) << 16, 16, NULL);
                ok &= p != NULL;
                if (!p)
                    fprintf(stderr, "  child: alloc %d failed: %s\n", i, strerror(errno));
                if (p) {
                    memset(p, i, (size_t)(i + 1) << 16);
                    ca_binned_large_free(c.l, p);
                }
            }
            ca_binned_large_free(c.l, keep);
            const char *m = ca_binned_large_check(c.l);
            if (m)
                fprintf(stderr, "  child: %s\n", m);
            _exit(ok && !m ? 0 : 1);
        }
        int st = -1;
        if (pid > 0)
            waitpid(pid, &st, 0);
        ca_binned_large_free(c.l, keep);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            bad_round = (int)round;
            bad_status = st;
            break;
        }
    }
    __atomic_store_n(&c.stop, 1, __ATOMIC_RELAXED);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    CA_TT_ASSERT(bad_round < 0, "round %d: child status %d", bad_round, bad_status);
    const char *m = ca_binned_large_check(c.l);
    CA_TT_ASSERT(m == NULL, "%s", m);
    ca_binned_large_destroy(c.l);
}
