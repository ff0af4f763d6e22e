/* SPDX-License-Identifier: MIT */
/*
 * fork in a threaded program (plain ca_tt program; built calling ca_switch_*
 * by name and, with SW_OVERRIDE, through malloc / free of the override):
 *   - a thread forks repeatedly while three others allocate and free; the
 *     child allocates, uses its inherited local and exits 0;
 *   - the same with fork called from a signal handler;
 *   - (override) 1,000 forks while one thread grows a getline buffer (holding
 *     its FILE lock inside realloc) and another flushes every stream (holding
 *     stdio's list lock, waiting for that FILE lock): the allocator's fork
 *     handler must not hold its locks while glibc waits for the list lock.
 * A deadlock in the child is caught by alarm() (the child dies of SIGALRM).
 */
#include <pthread.h>
#include <sched.h>
#include <time.h>
#include <signal.h>
#include <sys/wait.h>

#include "ca_test.h"
#include "ca_tt.h"
#include "switch_test.h"
#include "switch_private.h"

#ifdef SW_OVERRIDE
#define M(n) malloc(n)
#define F(p) free(p)
#else
#define M(n) ca_switch_malloc(n)
#define F(p) ca_switch_free(p)
#endif

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZED 1
#endif
#endif

static int stop;
static sw_ctx fork_ctx;
static sw_ctx thread_ctx[3];

/* Thread 0 allocates from its own local (mmap-backed), the others from the
 * global allocator. Under sanitizers the global allocator is the
 * sanitizer's, whose fork handling does not cover threads allocating during
 * fork (the child can deadlock inside it): there every thread uses a local. */
static void *allocator_thread(void *arg)
{
    int id = (int)(intptr_t)arg;
    ca_rng r = {(uint64_t)id};
    void *keep[32] = {0};
#ifdef SANITIZED
    bool own = true;
#else
    bool own = id == 1;
#endif
    if (own) {
        ca_switch_adopt_claim(&thread_ctx[id - 1].ad);
        ca_switch_thread_set(sw_ctx_alloc(&thread_ctx[id - 1]));
    }
    while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
        /* Thread 2 also holds the switch's registry lock most of the time,
         * which the child must find released (pthread_atfork). */
        if (id == 2) {
            struct timespec held = {0, 2000000}, free_ = {0, 1000000};
            ca_switch__registry_lock();
            nanosleep(&held, NULL);
            ca_switch__registry_unlock();
            nanosleep(&free_, NULL); /* lets a waiting fork_prepare in */
        }
        int k = (int)ca_rng_below(&r, 32);
        F(keep[k]);
        keep[k] = M((size_t)ca_rng_below(&r, 5000));
    }
    for (int k = 0; k < 32; k++)
        F(keep[k]);
    ca_switch_thread_set(NULL);
    return NULL;
}

/* What the child does: allocate through the global and through the local
 * that the forking thread owns, and exit without running atexit handlers. */
static void child_work(void)
{
    alarm(10);
    int bad = 0;
    for (int i = 0; i < 1000; i++) {
        void *p = M((size_t)i * 3);
        if (!p && i)
            bad = 1;
        F(p);
    }
    ca_switch_context_set(sw_ctx_alloc(&fork_ctx));
    void *q = ca_switch_malloc(100);
    if (ca_switch_owner(q) != sw_ctx_alloc(&fork_ctx))
        bad = 1;
    ca_switch_free(q);
    ca_switch_context_set(NULL);
    if (ca_switch_check()) /* takes the registry lock */
        bad = 1;
    _exit(bad ? 3 : 0);
}

static int wait_child(pid_t pid)
{
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, 0) != pid)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 100 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

static int fork_errors;

static void *forker(void *arg)
{
    (void)arg;
    ca_switch_adopt_claim(&fork_ctx.ad);
    for (int i = 0; i < 20; i++) {
        pid_t pid = fork();
        if (pid == 0)
            child_work();
        int st = wait_child(pid);
        if (st != 0) {
            fprintf(stderr, "  child %d ended with %d\n", i, st);
            fork_errors++;
        }
    }
    return NULL;
}

static void start(pthread_t *th, int n)
{
    __atomic_store_n(&stop, 0, __ATOMIC_RELAXED);
    for (int i = 0; i < n; i++)
        pthread_create(&th[i], NULL, allocator_thread, (void *)(intptr_t)(i + 1));
}

static void finish(pthread_t *th, int n)
{
    __atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
    for (int i = 0; i < n; i++)
        pthread_join(th[i], NULL);
}

CA_TT(fork_from_thread_while_others_allocate)
{
    CA_TT_ASSERT(sw_ctx_init(&fork_ctx) == 0, "init");
    for (int i = 0; i < 3; i++)
        CA_TT_ASSERT(sw_ctx_init(&thread_ctx[i]) == 0, "init");
    pthread_t th[3], f;
    start(th, 3);
    pthread_create(&f, NULL, forker, NULL);
    pthread_join(f, NULL);
    finish(th, 3);
    ca_switch_adopt_claim(&fork_ctx.ad);
    CA_TT_ASSERT(fork_errors == 0, "%d children failed", fork_errors);
}

static volatile sig_atomic_t handler_status = -1;

static void on_signal(int sig)
{
    (void)sig;
    pid_t pid = fork();
    if (pid == 0)
        child_work();
    handler_status = wait_child(pid);
}

CA_TT(fork_from_signal_handler)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGUSR1, &sa, NULL);
    pthread_t th[3];
    start(th, 3);
    for (int i = 0; i < 10; i++) {
        handler_status = -1;
        raise(SIGUSR1);
        CA_TT_ASSERT(handler_status == 0, "child of the handler ended with %d", (int)handler_status);
    }
    finish(th, 3);
}

#ifdef SW_OVERRIDE
/* getline reallocs its buffer while it holds the stream's lock; fflush(NULL)
 * holds the list of streams and waits for each stream's lock. */
static FILE *lines;

static void *getline_thread(void *arg)
{
    (void)arg;
    while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
        char *buf = NULL;
        size_t cap = 0;
        rewind(lines);
        while (getline(&buf, &cap, lines) > 0) {
            free(buf); /* a fresh buffer grows again through realloc */
            buf = NULL;
            cap = 0;
        }
        free(buf);
    }
    return NULL;
}

static void *flush_thread(void *arg)
{
    (void)arg;
    while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
        fflush(NULL);
        sched_yield();
    }
    return NULL;
}

CA_TT(fork_while_stdio_locks_are_contended)
{
    char path[] = "/tmp/ca-fork-stdio-XXXXXX";
    int fd = mkstemp(path);
    CA_TT_ASSERT(fd >= 0, "mkstemp");
    lines = fdopen(fd, "w+");
    CA_TT_ASSERT(lines != NULL, "fdopen");
    unlink(path);
    for (int l = 0; l < 4; l++) {
        for (int k = 0; k < (32 << 10) << l; k++)
            fputc('a' + l, lines);
        fputc('\n', lines);
    }
    fflush(lines);
    __atomic_store_n(&stop, 0, __ATOMIC_RELAXED);
    pthread_t g, f;
    pthread_create(&g, NULL, getline_thread, NULL);
    pthread_create(&f, NULL, flush_thread, NULL);
    alarm(240); /* a deadlock inside fork() ends the test by SIGALRM */
    /* 400 forks: each copies the page tables of a process whose two other
     * threads keep both cores busy; 1,000 took 160 to 255 s on a loaded
     * 2-core machine, against the 240 s that tell a deadlock. */
    int failed = 0, n = 400;
    for (int i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            void *p = malloc(100); /* the child's allocator works */
            _exit(p ? 0 : 1);
        }
        if (wait_child(pid) != 0)
            failed++;
        CA_TT_OPS(1);
    }
    alarm(0);
    __atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
    pthread_join(g, NULL);
    pthread_join(f, NULL);
    fclose(lines);
    CA_TT_ASSERT(failed == 0, "%d of %d children failed", failed, n);
}
#endif
