/* SPDX-License-Identifier: MIT */
/*
 * malloc's automatic NUMA mode (CA_NUMA, default auto: on with two nodes)
 * on a machine with two NUMA nodes (./run.sh numa). Linked with the
 * override: malloc / free here are libswitch's, with no thread or context
 * selection anywhere (that is ca_switch_bind_node's test, numa_switch.c).
 *
 *   - the mode is on, and ca_switch_current() differs between a thread on
 *     node 0 and one on node 1;
 *   - a thread on node 1 gets node-1 pages from plain malloc (after the
 *     64 allocations of the refresh that follow its pinning), small sizes
 *     and large ones (above CA_BINNED_SMALL_MAX: the large tier), calloc
 *     and realloc included, after a thread on node 0 allocated and freed
 *     the same sizes (a node-blind allocator hands it those node-0 blocks);
 *   - blocks of a thread on node 1 freed by a thread on node 0 go back to
 *     node 1: a later thread on node 1 reuses some of them and every page
 *     it gets is still on node 1;
 *   - a thread that moves to the other node (sched_setaffinity) gets the
 *     new node's memory after the refresh (at most 64 allocations);
 *   - with CA_NUMA=0 (this program run again in a child) the mode is off and
 *     malloc's blocks are the default instance's, as before the mode.
 *
 * Read first: numa_test.h.
 */
#include "numa_test.h"

#include <ctxalloc/binned.h>
#include <ctxalloc/switch.h>
#include <malloc.h>

#define NBLK 1000
#define NLARGE 8

static size_t blk_size(size_t i) { return 16 + (i * 53) % 6000; }
static size_t large_size(size_t i) { return ((size_t)300 << 10) + i * ((size_t)100 << 10); }

typedef struct blocks {
    void *small[NBLK];
    void *large[NLARGE];
    ca_allocator *current; /* ca_switch_current() of the allocating thread */
} blocks;

/* The thread's node is asked again every 64 allocations (libswitch's
 * contract), and a thread pinned by nt_on_node may have allocated before
 * the pinning moved it (libnuma allocates its masks): these allocations
 * reach the refresh, so what follows comes from the node it runs on. */
static void settle(void)
{
    void *v[64];
    for (size_t i = 0; i < 64; i++)
        v[i] = malloc(32);
    for (size_t i = 0; i < 64; i++)
        free(v[i]);
}

static int alloc_all(blocks *b)
{
    settle();
    for (size_t i = 0; i < NBLK; i++) {
        b->small[i] = malloc(blk_size(i));
        CHECK(b->small[i] != NULL, "malloc(%zu)", blk_size(i));
        memset(b->small[i], (int)i, blk_size(i));
    }
    for (size_t i = 0; i < NLARGE; i++) {
        b->large[i] = malloc(large_size(i));
        CHECK(b->large[i] != NULL, "malloc(%zu)", large_size(i));
        memset(b->large[i], (int)i, large_size(i));
    }
    b->current = ca_switch_current();
    return 0;
}

static int free_all(void *arg)
{
    blocks *b = (blocks *)arg;
    for (size_t i = 0; i < NBLK; i++)
        free(b->small[i]);
    for (size_t i = 0; i < NLARGE; i++)
        free(b->large[i]);
    return 0;
}

/* Every page of every block on `node`. */
static int check_all_on(const blocks *b, int node)
{
    for (size_t i = 0; i < NBLK; i++)
        CHECK_ON(b->small[i], blk_size(i), node);
    for (size_t i = 0; i < NLARGE; i++)
        CHECK_ON(b->large[i], large_size(i), node);
    return 0;
}

typedef struct job {
    blocks *b;
    int node;
} job;

static int alloc_check_run(void *arg)
{
    job *j = (job *)arg;
    if (alloc_all(j->b))
        return 1;
    if (check_all_on(j->b, j->node))
        return 1;
    /* calloc and realloc take the same way */
    char *c = (char *)calloc(1000, 10);
    CHECK(c != NULL, "calloc");
    CHECK_ON(c, 10000, j->node);
    c = (char *)realloc(c, 400000);
    CHECK(c != NULL, "realloc");
    memset(c, 1, 400000);
    CHECK_ON(c, 400000, j->node);
    free(c);
    return 0;
}

static int alloc_run(void *arg) { return alloc_all(((job *)arg)->b); }

static int t_mode_is_on(void)
{
    CHECK(ca_switch_numa_auto(), "the automatic mode is off with two nodes");
    static blocks b0, b1;
    job j0 = {&b0, 0}, j1 = {&b1, 1};
    if (nt_on_node(0, alloc_check_run, &j0) || nt_on_node(1, alloc_check_run, &j1))
        return 1;
    CHECK(b0.current != b1.current, "one allocator for both nodes");
    CHECK(b0.current != ca_switch_base() && b1.current != ca_switch_base(), "the default instance serves a node");
    for (size_t i = 0; i < NBLK; i += 97)
        CHECK(ca_switch_owner(b1.small[i]) == b1.current, "block %zu of node 1 owned by another allocator", i);
    CHECK(ca_switch_owner(b1.large[0]) == b1.current, "large block of node 1 owned by another allocator");
    free_all(&b0);
    free_all(&b1);
    CHECK(ca_switch_check() == NULL, "switch invariants");
    return 0;
}

/* A thread on node 0 allocates and frees (its thread ends: its caches go
 * back), then a thread on node 1 allocates the same sizes. */
static int t_node1_after_node0(void)
{
    static blocks b0, b1;
    job j0 = {&b0, 0}, j1 = {&b1, 1};
    if (nt_on_node(0, alloc_run, &j0) || nt_on_node(0, free_all, &b0))
        return 1;
    if (nt_on_node(1, alloc_check_run, &j1))
        return 1;
    return nt_on_node(1, free_all, &b1);
}

static int reused(void *const *old, size_t nold, void *const *now, size_t nnow)
{
    int n = 0;
    for (size_t i = 0; i < nnow; i++)
        for (size_t k = 0; k < nold; k++)
            if (now[i] == old[k]) {
                n++;
                break;
            }
    return n;
}

/* A thread on node 1 allocates, one on node 0 frees, a new thread on node 1
 * allocates again. */
static int t_frees_on_node0_go_back_to_node1(void)
{
    static blocks first, again;
    job j1 = {&first, 1}, j2 = {&again, 1};
    if (nt_on_node(1, alloc_check_run, &j1))
        return 1;
    static void *old_small[NBLK];
    memcpy(old_small, first.small, sizeof old_small);
    if (nt_on_node(0, free_all, &first))
        return 1;
    if (nt_on_node(1, alloc_check_run, &j2))
        return 1;
    CHECK(again.current == first.current, "node 1's allocator changed");
    int n = reused(old_small, NBLK, again.small, NBLK);
    CHECK(n > 0, "none of the %d blocks freed on node 0 was reused on node 1", NBLK);
    printf("INFO numa/auto_frees_on_node0_go_back_to_node1: %d of %d small blocks reused on node 1, "
           "%d of %d large\n",
           n, NBLK, reused(first.large, NLARGE, again.large, NLARGE), NLARGE);
    return nt_on_node(1, free_all, &again);
}

/* Starts on node 0, moves itself to node 1. */
static int migrate_run(void *arg)
{
    (void)arg;
    static blocks before, after;
    if (alloc_all(&before) || check_all_on(&before, 0))
        return 1;
    CHECK(numa_run_on_node(1) == 0, "numa_run_on_node(1): %s", strerror(errno));
    sched_yield();
    int cpu = sched_getcpu();
    CHECK(cpu >= 0 && numa_node_of_cpu(cpu) == 1, "moved to node 1 but running on cpu %d", cpu);
    /* the refresh: at most 64 allocations (alloc_all starts with them) */
    if (alloc_all(&after) || check_all_on(&after, 1))
        return 1;
    CHECK(after.current != before.current, "the thread's allocator did not follow it");
    free_all(&before);
    free_all(&after);
    return 0;
}

static int t_migrating_thread_follows(void) { return nt_on_node(0, migrate_run, NULL); }

/* ---- CA_NUMA=0: this program again, in a child ---------------------------- */

static int off_run(void *arg)
{
    (void)arg;
    char *p = (char *)malloc(100), *q = (char *)malloc((size_t)1 << 20);
    CHECK(p && q, "malloc");
    CHECK(ca_switch_owner(p) == ca_switch_base(), "small block not from the default instance");
    CHECK(ca_switch_owner(q) == ca_switch_base(), "large block not from the default instance");
    CHECK(ca_switch_current() == ca_switch_base(), "current is not the default instance");
    free(p);
    free(q);
    return 0;
}

static int off_child(void)
{
    if (ca_switch_numa_auto()) {
        fprintf(stderr, "CA_NUMA=0: the mode is on\n");
        return 1;
    }
    int rc = nt_on_node(1, off_run, NULL);
    if (rc)
        fprintf(stderr, "%s\n", nt_why);
    return rc;
}

static int t_numa0_keeps_the_default_instance(void)
{
    int pe[2];
    CHECK(pipe(pe) == 0, "pipe");
    pid_t pid = fork();
    CHECK(pid >= 0, "fork");
    if (pid == 0) {
        dup2(pe[1], 2);
        setenv("CA_NUMA", "0", 1);
        execl("/proc/self/exe", "numa_auto", "off-child", (char *)NULL);
        _exit(127);
    }
    close(pe[1]);
    char err[400];
    ssize_t k, len = 0;
    while ((k = read(pe[0], err + len, sizeof err - 1 - (size_t)len)) > 0)
        len += k;
    err[len < 0 ? 0 : len] = '\0';
    close(pe[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %#x: %s", st, err);
    CHECK(err[0] == '\0', "child wrote \"%s\"", err);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "off-child") == 0)
        return off_child();
    static const nt_test tests[] = {
        {"auto_mode_is_on", t_mode_is_on},
        {"auto_thread_on_node1_after_node0", t_node1_after_node0},
        {"auto_frees_on_node0_go_back_to_node1", t_frees_on_node0_go_back_to_node1},
        {"auto_migrating_thread_follows", t_migrating_thread_follows},
        {"auto_numa0_keeps_the_default_instance", t_numa0_keeps_the_default_instance},
    };
    return nt_main(tests, sizeof tests / sizeof tests[0]);
}
