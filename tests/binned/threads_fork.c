/* SPDX-License-Identifier: MIT */
/* fork while another thread allocates: with the fork hooks registered
 * (core's fork hooks, as libswitch does) the child allocates and frees, finds
 * every invariant intact and the other thread's cache returned; the parent
 * carries on. */
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

#include "binned_internal.h"
#include "ca_test.h"
#include "ca_tt.h"

static int g_stop;

static void *busy(void *arg)
{
    (void)arg;
    ca_rng r = {ca_test_seed()};
    void *p[256] = {0};
    while (!__atomic_load_n(&g_stop, __ATOMIC_RELAXED)) {
        unsigned k = (unsigned)ca_rng_below(&r, 256);
        ca_binned_default_free(p[k]);
        p[k] = ca_binned_default_malloc((size_t)ca_rng_below(&r, 5000));
    }
    for (int k = 0; k < 256; k++)
        ca_binned_default_free(p[k]);
    return NULL;
}

static int child_work(void)
{
    ca_binned *d = ca_binned_default();
    /* Only this thread's cache may remain registered. */
    for (ca_binned__tcache *tc = d->threads; tc; tc = tc->next)
        if (tc != &ca_binned__tls)
            return 2;
    void *p[1000];
    for (int i = 0; i < 1000; i++) {
        p[i] = ca_binned_default_malloc((size_t)i * 7);
        memset(p[i], 3, (size_t)i * 7);
    }
    for (int i = 0; i < 1000; i++)
        ca_binned_default_free(p[i]);
    return ca_binned_check(d) == NULL ? 0 : 3;
}

CA_TT(fork_while_allocating)
{
    ca_fork_hook_register(ca_binned_fork_prepare, ca_binned_fork_parent, ca_binned_fork_child,
                          CA_LOCK_RANK_BINNED_INSTANCES);
    ca_binned_default_free(ca_binned_default_malloc(1));
    /* ThreadSanitizer does not follow a fork taken while other threads run
     * (its shadow state of the other threads is inherited and reported as
     * races in the child): under TSan the busy thread stays off. */
#if defined(__SANITIZE_THREAD__)
    const bool with_thread = false;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
    const bool with_thread = false;
#else
    const bool with_thread = true;
#endif
#else
    const bool with_thread = true;
#endif
    pthread_t t;
    if (with_thread)
        pthread_create(&t, NULL, busy, NULL);
    int forks = 20 * (int)ca_test_scale();
    int bad = 0;
    for (int i = 0; i < forks; i++) {
        void *x = ca_binned_default_malloc(100);
        pid_t pid = fork();
        if (pid == 0)
            _exit(child_work());
        int st = 0;
        waitpid(pid, &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            fprintf(stderr, "  child %d: status %d\n", i, st);
            bad++;
        }
        ca_binned_default_free(x);
    }
    __atomic_store_n(&g_stop, 1, __ATOMIC_RELAXED);
    if (with_thread)
        pthread_join(t, NULL);
    CA_TT_ASSERT(bad == 0, "%d children failed", bad);
}
