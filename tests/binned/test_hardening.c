/* SPDX-License-Identifier: MIT */
/*
 * libbinned misuse of the small tier, in every build (checks off, on, full):
 *
 *   - double free (at once, after 5,000 other frees, of a slot that sits in
 *     a recycler bundle), free of an interior pointer: abort with one line
 *     naming the class and the address;
 *   - writes into freed blocks (word 0, bytes 8..15, a 4-byte write on a
 *     block's free list), overflows of 1..64 bytes and an off-by-one NUL into
 *     a free neighbour: either abort with "corrupt free-list link" or stay
 *     harmless (no address chosen by the writer, no block handed out twice,
 *     nothing outside the class range, no crash inside the allocator);
 *   - checks=on and above: an overflow into a live neighbour is reported when
 *     the overflowing block is freed.
 *
 * Each case runs in a forked child; the child reports a finding on stderr
 * with "FINDING:" and exits 3, or ends by the allocator's abort. Requests of
 * 40 bytes land in the 48-byte class in every build (checks=on keeps 8 bytes
 * of guard after the request).
 */
#include <criterion/criterion.h>

#include "binned_test.h"

#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define REQ    40 /* class 48 B in every build */
#define CLS_SZ 48

typedef struct child_result {
    int status;     /* waitpid status */
    char out[4096]; /* the child's stderr */
} child_result;

static child_result run_child(void (*fn)(void *), void *arg)
{
    child_result r;
    int fds[2];
    memset(&r, 0, sizeof r);
    cr_assert_eq(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 2);
        signal(SIGABRT, SIG_DFL);
        signal(SIGSEGV, SIG_DFL);
        /* The cases are about the blocks' free lists and neighbours: the
         * class leaves its starter share first (test_death.c and
         * test_starter.c cover the misuse of starter slots). */
        binned_test_past_starter(REQ);
        fn(arg);
        _exit(0);
    }
    close(fds[1]);
    size_t n = 0;
    ssize_t k;
    while (n + 1 < sizeof r.out && (k = read(fds[0], r.out + n, sizeof r.out - 1 - n)) > 0)
        n += (size_t)k;
    r.out[n] = '\0';
    close(fds[0]);
    waitpid(pid, &r.status, 0);
    return r;
}

static bool has_line(const child_result *r, const char *prefix)
{
    size_t n = strlen(prefix);
    for (const char *p = r->out; p && *p;) {
        if (strncmp(p, prefix, n) == 0)
            return true;
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return false;
}

static bool aborted(const child_result *r) { return WIFSIGNALED(r->status) && WTERMSIG(r->status) == SIGABRT; }
static bool clean_exit(const child_result *r) { return WIFEXITED(r->status) && WEXITSTATUS(r->status) == 0; }

static void describe(const child_result *r, char *buf, size_t cap)
{
    if (WIFSIGNALED(r->status))
        snprintf(buf, cap, "killed by signal %d; stderr: %s", WTERMSIG(r->status), r->out);
    else
        snprintf(buf, cap, "exit %d; stderr: %s", WEXITSTATUS(r->status), r->out);
}

/* The child ran to its end without a finding, or the allocator stopped it
 * with the named message. */
static void expect_detected_or_harmless(const child_result *r, const char *message)
{
    char d[4300];
    describe(r, d, sizeof d);
    if (aborted(r))
        cr_assert(has_line(r, message), "abort without \"%s\": %s", message, d);
    else
        cr_assert(clean_exit(r), "%s", d);
}

static void expect_abort(const child_result *r, const char *message)
{
    char d[4300];
    describe(r, d, sizeof d);
    cr_assert(aborted(r), "no abort: %s", d);
    cr_assert(has_line(r, message), "expected \"%s\": %s", message, d);
}

ca_attr_printf(1, 2) static void finding(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n > 0) {
        if ((size_t)n > sizeof buf - 2)
            n = (int)sizeof buf - 2;
        buf[n++] = '\n';
        (void)!write(2, "FINDING: ", 9);
        (void)!write(2, buf, (size_t)n);
    }
    _exit(3);
}

/* --- a set of live blocks of the 48-byte class, for overlap checks --- */

enum { LIVE_MAX = 4096 };
static char *g_live[LIVE_MAX];
static size_t g_nlive;

static void live_add(char *p, const char *what)
{
    if (!p)
        finding("%s: malloc returned NULL", what);
    ca_binned *d = ca_binned_default();
    uintptr_t base = (uintptr_t)d->classes[2].base;
    uintptr_t off = (uintptr_t)p - base;
    if (off >= ((size_t)1 << d->class_shift))
        finding("%s: %p lies outside the 48-byte class range [%p, +%zu)", what, (void *)p, (void *)base,
                (size_t)1 << d->class_shift);
    for (size_t i = 0; i < g_nlive; i++) {
        char *q = g_live[i];
        if (p < q + CLS_SZ && q < p + CLS_SZ)
            finding("%s: %p overlaps the live block %p", what, (void *)p, (void *)q);
    }
    if (g_nlive < LIVE_MAX)
        g_live[g_nlive++] = p;
}

static void live_remove(char *p)
{
    for (size_t i = 0; i < g_nlive; i++)
        if (g_live[i] == p) {
            g_live[i] = g_live[--g_nlive];
            return;
        }
}

static char *live_malloc(const char *what)
{
    char *p = ca_binned_default_malloc(REQ);
    live_add(p, what);
    return p;
}

/* Two live blocks next to each other in the 48-byte class: *a, then *b at
 * a + 48. Everything else allocated on the way stays live. */
static void adjacent_pair(char **a, char **b)
{
    for (int tries = 0; tries < 2000; tries++) {
        char *p = live_malloc("adjacent pair");
        for (size_t i = 0; i + 1 < g_nlive; i++) {
            if (g_live[i] + CLS_SZ == p) {
                *a = g_live[i];
                *b = p;
                return;
            }
            if (p + CLS_SZ == g_live[i]) {
                *a = p;
                *b = g_live[i];
                return;
            }
        }
    }
    finding("no two adjacent blocks in 2000 allocations");
}

/* ------------------------------------------------------------------------
 * Double free and interior free: abort with the named message
 * ------------------------------------------------------------------------ */

static void double_free_at_once(void *arg)
{
    (void)arg;
    void *p = ca_binned_default_malloc(REQ);
    ca_binned_default_free(p);
    ca_binned_default_free(p);
    void *x = ca_binned_default_malloc(REQ), *y = ca_binned_default_malloc(REQ);
    if (x == y)
        finding("double free: the next two mallocs returned the same block %p", x);
}

Test(binned_hardening, double_free_at_once)
{
    child_result r = run_child(double_free_at_once, NULL);
    expect_abort(&r, "ctxalloc: binned: double free (class 48 B) (address 0x");
}

static void double_free_after_others(void *arg)
{
    (void)arg;
    enum { N = 5000 };
    static void *v[N];
    void *p = ca_binned_default_malloc(REQ);
    for (int i = 0; i < N; i++)
        v[i] = ca_binned_default_malloc(REQ);
    ca_binned_default_free(p);
    for (int i = 0; i < N; i++)
        ca_binned_default_free(v[i]);
    ca_binned_default_free(p);
    /* Not detected: count the blocks handed out twice. */
    static void *w[N + 2];
    for (int i = 0; i < N + 2; i++)
        w[i] = ca_binned_default_malloc(REQ);
    for (int i = 0; i < N + 2; i++)
        for (int j = i + 1; j < N + 2; j++)
            if (w[i] == w[j])
                finding("double free after %d frees: %p handed out twice", N, w[i]);
}

Test(binned_hardening, double_free_after_5000_frees)
{
    child_result r = run_child(double_free_after_others, NULL);
    expect_abort(&r, "ctxalloc: binned: double free (class 48 B) (address 0x");
}

/* Another thread frees 200 blocks: its cache (128 slots in this class)
 * overflows and hands a bundle to the recycler. The block whose free made
 * it overflow is the first slot of that bundle; the main thread frees it
 * again. */
enum { REMOTE_N = 200 };
static void *g_remote[REMOTE_N];

static void *remote_free_all(void *arg)
{
    (void)arg;
    for (int i = 0; i < REMOTE_N; i++)
        ca_binned_default_free(g_remote[i]);
    return NULL;
}

static void double_free_bundle_head(void *arg)
{
    (void)arg;
    for (int i = 0; i < REMOTE_N; i++)
        g_remote[i] = ca_binned_default_malloc(REQ);
    ca_stats s0, s1;
    ca_binned_class_stats(ca_binned_default(), 2, &s0);
    pthread_t t;
    pthread_create(&t, NULL, remote_free_all, NULL);
    pthread_join(t, NULL);
    ca_binned_class_stats(ca_binned_default(), 2, &s1);
    uint64_t r0 = 0, r1 = 0;
    ca_stats_get_counter(&s0, "recycled_bundles", &r0);
    ca_stats_get_counter(&s1, "recycled_bundles", &r1);
    if (r1 <= r0)
        finding("no bundle reached the recycler (%llu -> %llu)", (unsigned long long)r0, (unsigned long long)r1);
    unsigned cache_max = ca_binned__classes[2].cache_max;
    ca_binned_default_free(g_remote[cache_max]);
    void *x = ca_binned_default_malloc(REQ), *y = ca_binned_default_malloc(REQ);
    (void)x;
    (void)y;
}

Test(binned_hardening, double_free_recycler_bundle_head)
{
    child_result r = run_child(double_free_bundle_head, NULL);
    expect_abort(&r, "ctxalloc: binned: double free (class 48 B) (address 0x");
}

static void interior_free(void *arg)
{
    (void)arg;
    char *p = ca_binned_default_malloc(REQ);
    ca_binned_default_free(p + 16);
    char *q = ca_binned_default_malloc(REQ);
    if (q == p + 16)
        finding("interior free: malloc returned p + 16 = %p, inside the live block %p", (void *)q, (void *)p);
}

Test(binned_hardening, interior_free)
{
    child_result r = run_child(interior_free, NULL);
    expect_abort(&r, "ctxalloc: binned: free of an interior pointer (class 48 B) (address 0x");
}

/* A pointer into the class range that was never handed out. */
static void never_allocated_free(void *arg)
{
    (void)arg;
    char *p = ca_binned_default_malloc(REQ);
    ca_binned *d = ca_binned_default();
    /* The last block of the class's mapped part, never started: the first
     * mapping of a class is the block it needs, so the class is grown into
     * its second block, whose mapping runs ahead by at least 256 KiB. A
     * pointer into the unmapped rest of the range faults as one into any
     * unmapped memory does. */
    ca_binned__class *c = &d->classes[2];
    for (int i = 0; i < 4000 && c->frontier < 2; i++)
        (void)ca_binned_default_malloc(REQ); /* kept: the child ends here */
    if (c->mapped <= c->frontier)
        abort(); /* no block mapped and never started: the test cannot run */
    char *far = c->base + (c->mapped - 1) * ((size_t)1 << 16);
    (void)p;
    ca_binned_default_free(far);
}

Test(binned_hardening, free_of_a_slot_never_handed_out)
{
    child_result r = run_child(never_allocated_free, NULL);
    expect_abort(&r, "ctxalloc: binned: free of a pointer not from the allocator (class 48 B) (address 0x");
}

/* ------------------------------------------------------------------------
 * Writes into free blocks: detected or harmless
 * ------------------------------------------------------------------------ */

static char g_target[4096] __attribute__((aligned(64)));

static bool in_target(const void *p)
{
    return (const char *)p >= g_target && (const char *)p < g_target + sizeof g_target;
}

/* Word 0 of a freed block in the thread cache. */
static void uaf_word0(void *arg)
{
    (void)arg;
    char *keep = live_malloc("keep");
    char *p = ca_binned_default_malloc(REQ);
    ca_binned_default_free(p);
    *(void **)(void *)p = g_target + 64;
    for (int i = 0; i < 300; i++) {
        char *q = ca_binned_default_malloc(REQ);
        if (in_target(q))
            finding("use-after-free write of word 0: malloc %d returned the chosen address %p", i, (void *)q);
        live_add(q, "after a write of word 0");
    }
    (void)keep;
}

Test(binned_hardening, uaf_write_word0)
{
    child_result r = run_child(uaf_word0, NULL);
    expect_detected_or_harmless(&r, "ctxalloc: binned: corrupt free-list link (class 48 B) (address 0x");
}

/* Bytes 8..15 of every freed block, with bundles in the recycler. */
static void uaf_bytes_8_15(void *arg)
{
    (void)arg;
    enum { N = 600 };
    static char *v[N];
    for (int i = 0; i < N; i++)
        v[i] = ca_binned_default_malloc(REQ);
    for (int i = 0; i < N; i++)
        ca_binned_default_free(v[i]);
    /* A fake bundle chain in g_target: each word points into g_target. */
    for (size_t k = 0; k < sizeof g_target / sizeof(void *); k++)
        ((void **)(void *)g_target)[k] = g_target + 64 * (k % 32);
    for (int i = 0; i < N; i++)
        ((void **)(void *)v[i])[1] = g_target + 128;
    for (int i = 0; i < 2 * N; i++) {
        char *q = ca_binned_default_malloc(REQ);
        if (in_target(q))
            finding("use-after-free write of bytes 8..15: malloc %d returned %p inside the writer's buffer", i,
                    (void *)q);
        live_add(q, "after writes of bytes 8..15");
    }
}

Test(binned_hardening, uaf_write_bytes_8_15)
{
    child_result r = run_child(uaf_bytes_8_15, NULL);
    expect_detected_or_harmless(&r, "ctxalloc: binned: corrupt free-list link (class 48 B) (address 0x");
}

/* A 4-byte write on a slot that sits on its block's free list (trim sends
 * the thread cache back to the blocks). */
static void central_link_write(void *arg)
{
    uint32_t value = (uint32_t)(uintptr_t)arg;
    char *a = NULL, *b = NULL;
    adjacent_pair(&a, &b);
    live_remove(b);
    ca_binned_default_free(b);
    ca_binned_trim(NULL);
    *(uint32_t *)(void *)b = value;
    for (int i = 0; i < 300; i++)
        live_malloc("after a 4-byte write on a block list");
}

Test(binned_hardening, central_list_link_write)
{
    const uint32_t values[] = {0x12345678u, 0xffffffffu, 1u, 2u, 0x00010000u, 0x80000000u};
    for (size_t i = 0; i < sizeof values / sizeof *values; i++) {
        child_result r = run_child(central_link_write, (void *)(uintptr_t)values[i]);
        expect_detected_or_harmless(&r, "ctxalloc: binned: corrupt free-list link (class 48 B) (address 0x");
    }
}

/* An overflow of k bytes past the end of a live block into its free
 * neighbour; the neighbour is in the thread cache (where = 0) or on its
 * block's free list (where = 1). */
typedef struct overflow_case {
    size_t k;
    int where;
    char byte;
} overflow_case;

static void overflow_into_free(void *arg)
{
    const overflow_case *oc = (const overflow_case *)arg;
    char *a = NULL, *b = NULL;
    adjacent_pair(&a, &b);
    live_remove(b);
    ca_binned_default_free(b);
    if (oc->where)
        ca_binned_trim(NULL);
    memset(a + CLS_SZ, oc->byte, oc->k);
    live_remove(a); /* its guard (checks=on) is gone: never freed here */
    for (int i = 0; i < 300; i++)
        live_malloc("after an overflow into a free neighbour");
}

Test(binned_hardening, overflow_1_to_64_into_free_neighbour)
{
    for (int where = 0; where < 2; where++)
        for (size_t k = 1; k <= 64; k++) {
            overflow_case oc = {k, where, (char)0x41};
            child_result r = run_child(overflow_into_free, &oc);
            char d[4300];
            describe(&r, d, sizeof d);
            cr_assert(!WIFSIGNALED(r.status) || WTERMSIG(r.status) == SIGABRT, "k %zu where %d: %s", k, where, d);
            expect_detected_or_harmless(&r, "ctxalloc: binned: corrupt free-list link (class 48 B) (address 0x");
        }
}

/* strcpy of exactly the usable size: the NUL lands in the next block. */
static void off_by_one_nul(void *arg)
{
    int where = (int)(uintptr_t)arg;
    char *a = NULL, *b = NULL;
    adjacent_pair(&a, &b);
    live_remove(b);
    ca_binned_default_free(b);
    if (where)
        ca_binned_trim(NULL);
    size_t u = ca_binned_default_usable_size(a);
    char s[CLS_SZ + 1];
    memset(s, 'x', u);
    s[u] = '\0';
    strcpy(a, s);
    live_remove(a);
    for (int i = 0; i < 300; i++)
        live_malloc("after an off-by-one NUL");
}

Test(binned_hardening, off_by_one_nul_into_free_neighbour)
{
    for (int where = 0; where < 2; where++) {
        child_result r = run_child(off_by_one_nul, (void *)(uintptr_t)where);
        expect_detected_or_harmless(&r, "ctxalloc: binned: corrupt free-list link (class 48 B) (address 0x");
    }
}

/* ------------------------------------------------------------------------
 * checks=on: overflow into a live neighbour
 * ------------------------------------------------------------------------ */

static void overflow_into_live(void *arg)
{
    size_t k = (size_t)(uintptr_t)arg;
    char *a = NULL, *b = NULL;
    adjacent_pair(&a, &b);
    /* Each byte past the request is changed (a write of the byte the guard
     * already holds cannot be seen: with a random key that is 1 in 256). */
    memset(a, 'y', REQ);
    for (size_t i = REQ; i < REQ + k; i++)
        a[i] = (char)~a[i];
    ca_binned_default_free(a);
}

Test(binned_hardening, overflow_into_live_neighbour)
{
    if (CA_CHECKS < CA_CHECKS_ON)
        cr_skip("checks=off: no guard bytes after a block");
    const size_t ks[] = {1, 7, 8, 9, 16, 64};
    for (size_t i = 0; i < sizeof ks / sizeof *ks; i++) {
        child_result r = run_child(overflow_into_live, (void *)(uintptr_t)ks[i]);
        expect_abort(&r, "ctxalloc: binned: heap overflow past the end of a block (class 48 B) (address 0x");
    }
}

static void overflow_then_realloc(void *arg)
{
    (void)arg;
    char *a = ca_binned_default_malloc(REQ);
    a[REQ] = (char)~a[REQ]; /* changed, whatever the keyed guard byte was */
    a = ca_binned_default_realloc(a, 4000);
    ca_binned_default_free(a);
}

Test(binned_hardening, overflow_seen_by_realloc)
{
    if (CA_CHECKS < CA_CHECKS_ON)
        cr_skip("checks=off: no guard bytes after a block");
    child_result r = run_child(overflow_then_realloc, NULL);
    expect_abort(&r, "ctxalloc: binned: heap overflow past the end of a block (class 48 B) (address 0x");
}

/* The guard follows the request: the whole usable size stays writable. */
Test(binned_hardening, usable_size_is_writable)
{
    for (size_t n = 0; n < 2000; n += 7) {
        char *p = ca_binned_default_malloc(n);
        size_t u = ca_binned_default_usable_size(p);
        cr_assert_geq(u, n);
        memset(p, 0x5a, u);
        p = ca_binned_default_realloc(p, n + 3);
        cr_assert_geq(ca_binned_default_usable_size(p), n + 3);
        ca_binned_default_free(p);
    }
}
