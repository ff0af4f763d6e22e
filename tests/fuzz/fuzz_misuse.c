/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness: misuse of libbinned's small tier through the malloc
 * entry points of the default instance (ca_binned_default_malloc / free / realloc),
 * mixed with correct use.
 *
 * Properties (any violation is a finding: the harness aborts with a line
 * starting "fuzz_misuse: FINDING"):
 *   - a block handed out never overlaps a live block (no block twice);
 *   - every block lies in the allocator's ranges (ca_binned_default_owns), small
 *     blocks in the class range of their size (or their class's share of the
 *     starter area), 16-byte aligned, with a
 *     usable size >= the request; live contents survive other operations
 *     (a byte per block and generation, checked at both ends and every
 *     1 KiB before every free and realloc);
 *   - no crash inside the allocator;
 *   - misuse that must be detected (double free, interior free, free of a
 *     pointer the allocator never handed out) ends the process with
 *     SIGABRT and the allocator's one-line report ("ctxalloc: binned: ...");
 *   - misuse of memory (writes into freed blocks, overflows of 1..64 bytes
 *     past the end of a live block, an off-by-one NUL) is either detected
 *     (SIGABRT with the report) or harmless (the properties above hold for
 *     the operations that follow).
 *
 * How the aborts stay out of the findings: correct operations run in the
 * fuzzing process itself (coverage, speed). A misuse operation runs in a
 * forked child: the child does the misuse, then a fixed follow-up (fills and
 * drains of the victim's class, a trim that sends the caches back to the
 * block lists, more fills), checking the properties; it exits 0 when
 * nothing happened, or dies. The parent reads the child's stderr and status:
 * SIGABRT with a "ctxalloc: binned: " line is a detection, exit 0 is
 * harmless (a finding for the misuse that must be detected), anything else
 * (another signal, an ASan report, a FINDING line) is a finding, reported
 * with the child's output. The parent never applies the misuse, so its
 * state stays valid. At most MAX_FORKS misuse operations run per input; the
 * others are skipped. The child resets SIGABRT to the default action so that
 * libFuzzer's handler does not treat the expected abort as a crash.
 *
 * Input: a stream of 4-byte records [op, slot, a, b]; op % 16:
 *    0-5 malloc into the slot (its old block freed first); size from a, b:
 *        up to 1 KiB, or up to 300 KiB when op & 0x80;
 *    6-7 free the slot's block;   8-9 realloc it (size as for malloc);
 *   10   usable size / owns probe;
 *   11   double free of the slot's last freed block (when it is not live);
 *   12   interior free: the slot's block + 1 + a % (usable - 1);
 *   13   free of a pointer never handed out (a global, or a mapped block
 *        of the slot's class that was never started);
 *   14   write b bytes of value a into the slot's last freed block at a % 64;
 *   15   overflow: (b % 64) + 1 bytes of value a past the end of the slot's
 *        live block (a = 0, b = 0: the off-by-one NUL); with b & 64 the
 *        block is freed after the write (checks=on: its guard is checked).
 * Every input frees what it allocated; ca_binned_check walks the instance
 * after each input.
 */
#include <ctxalloc/binned.h>

#include "binned_internal.h"

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SLOTS 64
#ifndef MAX_FORKS
#define MAX_FORKS 1
#endif
#define LIVE_MAX 1024

typedef struct slot {
    unsigned char *p;    /* live block or NULL */
    size_t size;         /* request */
    size_t usable;       /* usable size at allocation */
    unsigned gen;
    unsigned char *freed; /* last block freed from this slot (may be live again) */
    size_t freed_usable;
} slot;

static slot g_slots[SLOTS];

/* Every live block, for the overlap check (parent: the slots; child: the
 * slots plus its follow-up blocks). */
typedef struct span {
    unsigned char *p;
    size_t n;
} span;
static span g_live[LIVE_MAX];
static size_t g_nlive;

static void say(const char *s) { (void)!write(2, s, strlen(s)); }

ca_attr_noreturn static void finding(const char *what, const void *p, size_t n)
{
    char buf[256];
    snprintf(buf, sizeof buf, "fuzz_misuse: FINDING: %s (%p, %zu)\n", what, p, n);
    say(buf);
    abort();
}

/* A block's contents: one byte value per (slot, generation), written in
 * full and checked at its ends and every 1 KiB (the byte loops of a full
 * check would dominate the run time under the fuzzer's instrumentation). */
static unsigned char pattern(unsigned s, unsigned gen) { return (unsigned char)(s * 29u + gen * 11u + 1u); }

static void fill(slot *s, unsigned k, size_t from)
{
    if (s->size > from)
        memset(s->p + from, pattern(k, s->gen), s->size - from);
}

static void verify(const slot *s, unsigned k, size_t n)
{
    unsigned char v = pattern(k, s->gen);
    for (size_t i = 0; i < n; i = i < 64 || i + 64 >= n ? i + 1 : (i + 1024 < n - 64 ? i + 1024 : n - 64))
        if (s->p[i] != v)
            finding("live block contents changed", s->p, i);
}

static void live_remove(const void *p)
{
    for (size_t i = 0; i < g_nlive; i++)
        if (g_live[i].p == p) {
            g_live[i] = g_live[--g_nlive];
            return;
        }
}

/* A block just handed out for a request of n bytes (by_realloc: a realloc,
 * which may keep a block of a larger class, or a large-tier block in that
 * tier): the properties. */
static void handed_out_ex(unsigned char *p, size_t n, bool by_realloc)
{
    if (!p)
        finding("allocation failed", p, n);
    if ((uintptr_t)p & 15)
        finding("block not 16-byte aligned", p, n);
    if (!ca_binned_default_owns(p))
        finding("block outside the allocator's ranges", p, n);
    size_t u = ca_binned_default_usable_size(p);
    if (u < n)
        finding("usable size below the request", p, u);
    unsigned cls = ca_binned_size_class(n);
    if (cls < CA_BINNED_NCLASSES) {
        ca_binned *d = ca_binned_default();
        uintptr_t off = (uintptr_t)p - d->span_base;
        unsigned at = off < d->span ? (unsigned)(off >> d->class_shift) : CA_BINNED_NCLASSES;
        /* A class's first slots come from the starter area: its share there. */
        if (ca_binned__in_starter(d, p))
            at = ca_binned__starter_class(d, p);
        if (by_realloc ? at < CA_BINNED_NCLASSES && ca_binned_class_size(at) < ca_binned_class_size(cls) : at != cls)
            finding("small block outside its class range", p, n);
    }
    size_t extent = u ? u : 1;
    for (size_t i = 0; i < g_nlive; i++)
        if (p < g_live[i].p + g_live[i].n && g_live[i].p < p + extent)
            finding("block overlaps a live block", p, (size_t)(g_live[i].p - p));
    if (g_nlive == LIVE_MAX)
        finding("too many live blocks in the harness", p, n);
    g_live[g_nlive].p = p;
    g_live[g_nlive].n = extent;
    g_nlive++;
    /* A freed block handed out again is no longer "freed" for misuse. */
    for (unsigned k = 0; k < SLOTS; k++)
        if (g_slots[k].freed && g_slots[k].freed < p + extent && p < g_slots[k].freed + g_slots[k].freed_usable)
            g_slots[k].freed = NULL;
}

static void handed_out(unsigned char *p, size_t n) { handed_out_ex(p, n, false); }

static size_t size_of(unsigned op, unsigned a, unsigned b)
{
    size_t n = ((size_t)a << 8) | b;
    return (op & 0x80) ? (n * 5) % (300u << 10) : n % 1025;
}

static bool is_small(size_t n) { return ca_binned_size_class(n) < CA_BINNED_NCLASSES; }

static void slot_free(unsigned k)
{
    slot *s = &g_slots[k];
    if (!s->p)
        return;
    verify(s, k, s->size);
    live_remove(s->p);
    ca_binned_default_free(s->p);
    s->freed = s->p;
    s->freed_usable = s->usable ? s->usable : 1; /* malloc(0) with checks=on: usable 0 */
    s->p = NULL;
}

static void slot_malloc(unsigned k, size_t n)
{
    slot_free(k);
    slot *s = &g_slots[k];
    unsigned char *p = (unsigned char *)ca_binned_default_malloc(n);
    handed_out(p, n);
    s->p = p;
    s->size = n;
    s->usable = ca_binned_default_usable_size(p);
    s->gen++;
    fill(s, k, 0);
}

static void slot_realloc(unsigned k, size_t n)
{
    slot *s = &g_slots[k];
    if (!s->p) {
        slot_malloc(k, n);
        return;
    }
    verify(s, k, s->size);
    live_remove(s->p);
    unsigned char *q = (unsigned char *)ca_binned_default_realloc(s->p, n ? n : 1);
    n = n ? n : 1;
    handed_out_ex(q, n, true);
    s->p = q;
    size_t keep = s->size < n ? s->size : n;
    verify(s, k, keep);
    s->size = n;
    s->usable = ca_binned_default_usable_size(q);
    fill(s, k, keep);
}

/* ------------------------------------------------------------------------
 * Misuse in a child
 * ------------------------------------------------------------------------ */

/* After the misuse: churn of the victim's class with the checks of
 * handed_out, through the caches, the recycler and the block lists. */
static void child_follow_up(size_t n)
{
    enum { ROUNDS = 2, PER = 150 };
    static unsigned char *mine[PER];
    for (int r = 0; r < ROUNDS; r++) {
        for (int i = 0; i < PER; i++) {
            mine[i] = (unsigned char *)ca_binned_default_malloc(n);
            handed_out(mine[i], n);
            memset(mine[i], 0x3c, n);
        }
        for (int i = 0; i < PER; i += 1 + r) {
            live_remove(mine[i]);
            ca_binned_default_free(mine[i]);
            mine[i] = NULL;
        }
        ca_binned_trim(NULL);
        for (int i = 0; i < PER; i++)
            if (mine[i]) {
                live_remove(mine[i]);
                ca_binned_default_free(mine[i]);
            }
    }
}

typedef enum misuse_kind { MUST_ABORT, DETECTED_OR_HARMLESS } misuse_kind;

static unsigned g_forks;

/* Run fn(arg) in a child followed by child_follow_up(n); judge the end. */
static void run_misuse(misuse_kind kind, const char *name, void (*fn)(const void *), const void *arg, size_t n)
{
    if (g_forks >= MAX_FORKS)
        return;
    g_forks++;
    int fds[2];
    if (pipe(fds) != 0)
        return;
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return;
    }
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 2);
        signal(SIGABRT, SIG_DFL);
        fn(arg);
        child_follow_up(n);
        _exit(0);
    }
    close(fds[1]);
    char out[4096];
    size_t len = 0;
    ssize_t r;
    while (len + 1 < sizeof out && (r = read(fds[0], out + len, sizeof out - 1 - len)) > 0)
        len += (size_t)r;
    out[len] = '\0';
    char drain[256];
    while (read(fds[0], drain, sizeof drain) > 0) {
    }
    close(fds[0]);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0) {
    }
    bool detected = WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT && strstr(out, "ctxalloc: binned: ") &&
                    !strstr(out, "FINDING");
    bool harmless = WIFEXITED(st) && WEXITSTATUS(st) == 0;
    if (detected || (harmless && kind == DETECTED_OR_HARMLESS))
        return;
    say("fuzz_misuse: misuse: ");
    say(name);
    say("\nfuzz_misuse: child output:\n");
    say(out);
    char buf[128];
    snprintf(buf, sizeof buf, "fuzz_misuse: child %s %d\n", WIFSIGNALED(st) ? "signal" : "exit",
             WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
    say(buf);
    finding(harmless ? "misuse that must abort went undetected" : "misuse ended badly", NULL, 0);
}

typedef struct write_args {
    unsigned char *p;
    size_t n;
    unsigned char byte;
    unsigned char *free_after; /* the overflowing block, freed after the write (or NULL) */
} write_args;

static void do_free(const void *arg) { ca_binned_default_free((void *)(uintptr_t)arg); }

static void do_write(const void *arg)
{
    const write_args *w = (const write_args *)arg;
    memset(w->p, w->byte, w->n);
    if (w->free_after) {
        live_remove(w->free_after);
        ca_binned_default_free(w->free_after);
    }
}

static unsigned char g_foreign[256] __attribute__((aligned(16)));

static void misuse(unsigned op, unsigned k, unsigned a, unsigned b)
{
    slot *s = &g_slots[k];
    switch (op) {
    case 11: /* double free */
        if (s->freed && is_small(s->freed_usable))
            run_misuse(MUST_ABORT, "double free", do_free, s->freed, s->freed_usable ? s->freed_usable : 16);
        break;
    case 12: /* interior free */
        if (s->p && s->usable > 1 && is_small(s->size)) {
            unsigned char *q = s->p + 1 + a % (s->usable - 1);
            run_misuse(MUST_ABORT, "interior free", do_free, q, s->size);
        }
        break;
    case 13: { /* a pointer never handed out */
        void *q = g_foreign + 16 * (a % 8);
        if ((b & 1) && s->p && is_small(s->size)) {
            /* The last mapped block of the class when it was never started
             * (the mapping runs ahead of the frontier); the class range
             * beyond the mapping is unmapped memory, where a free faults
             * as it does on any unmapped pointer. */
            ca_binned *d = ca_binned_default();
            ca_binned__class *c = &d->classes[ca_binned_size_class(s->size)];
            if (c->mapped > c->frontier)
                q = c->base + ((c->mapped - 1) << ca_binned__classes[ca_binned_size_class(s->size)].block_shift);
        }
        run_misuse(MUST_ABORT, "free of a pointer never handed out", do_free, q, 64);
        break;
    }
    case 14: /* write into a freed block */
        if (s->freed && is_small(s->freed_usable)) {
            size_t at = a % 64 < s->freed_usable ? a % 64 : 0;
            size_t n = b % 17;
            if (at + n > s->freed_usable)
                n = s->freed_usable - at;
            write_args w = {s->freed + at, n, (unsigned char)a, NULL};
            run_misuse(DETECTED_OR_HARMLESS, "write into a freed block", do_write, &w, s->freed_usable);
        }
        break;
    case 15: /* overflow past the end of a live block */
        if (s->p && is_small(s->size)) {
            write_args w = {s->p + s->usable, (size_t)(b % 64) + 1, (unsigned char)a, (b & 64) ? s->p : NULL};
            run_misuse(DETECTED_OR_HARMLESS, "overflow past the end of a block", do_write, &w,
                       s->size ? s->size : 16);
        }
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    g_forks = 0;
    for (size_t at = 0; at + 4 <= size; at += 4) {
        unsigned op = data[at], k = data[at + 1] % SLOTS, a = data[at + 2], b = data[at + 3];
        unsigned kind = op % 16;
        if (kind <= 5)
            slot_malloc(k, size_of(op, a, b));
        else if (kind <= 7)
            slot_free(k);
        else if (kind <= 9)
            slot_realloc(k, size_of(op, a, b));
        else if (kind == 10) {
            slot *s = &g_slots[k];
            if (s->p && (!ca_binned_default_owns(s->p) || ca_binned_default_usable_size(s->p) < s->size))
                finding("owns / usable size of a live block", s->p, s->size);
        } else
            misuse(kind, k, a, b);
    }
    for (unsigned k = 0; k < SLOTS; k++) {
        slot_free(k);
        g_slots[k].freed = NULL;
    }
    const char *err = ca_binned_check(ca_binned_default());
    if (err)
        finding(err, NULL, 0);
    return 0;
}
