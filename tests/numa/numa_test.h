/* SPDX-License-Identifier: MIT */
/*
 * The small runner of the NUMA placement tests (tests/numa/numa_*.c). These
 * programs need a machine with at least two NUMA nodes: ./run.sh numa boots
 * one (a two-node qemu guest) and runs them there. On a machine with fewer
 * nodes every test prints "SKIP" with the reason and the program exits 77
 * (meson's skip code): a skip is never a pass.
 *
 * Each test runs in a forked child, so a crash or a failed check cannot
 * leave state for the next one. Output, one line per test:
 *   PASS numa/<name>
 *   FAIL numa/<name>: <what was wrong>
 *   SKIP numa/<name>: <why it could not run>
 * and "N passed, N failed" at the end. Exit: 0 all passed, 1 any failed,
 * 77 nothing could run.
 *
 * Work that must happen on one node runs in a thread pinned to that node's
 * CPUs (numa_run_on_node), which checks with sched_getcpu that it really is
 * there. Where a page landed is asked with move_pages
 * (ca_source_numa_node_of); the policy of a range with get_mempolicy.
 */
#ifndef NUMA_TEST_H
#define NUMA_TEST_H

#include <ctxalloc/source.h>

#include <errno.h>
#include <numa.h>
#include <numaif.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ca_test.h" /* ca_test_count_maps */

#define NT_SKIP 77

/* The failure message of the running test (child process). */
static char nt_why[512];

__attribute__((format(printf, 1, 2))) static int nt_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(nt_why, sizeof nt_why, fmt, ap);
    va_end(ap);
    return 1;
}

/* CHECK(cond, fmt, ...): on failure record where and what, return 1. */
#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            char nt_m_[400];                                                                       \
            snprintf(nt_m_, sizeof nt_m_, __VA_ARGS__);                                            \
            return nt_fail("%s (line %d: %s)", nt_m_, __LINE__, #cond);                            \
        }                                                                                          \
    } while (0)

/* ------------------------------------------------------------------------
 * Masks and policies
 * ------------------------------------------------------------------------ */

#define NT_BITS (8 * sizeof(unsigned long))
#define NT_WORDS (4096 / NT_BITS)

typedef struct nt_mask {
    unsigned long w[NT_WORDS]; /* 4096 bits */
} nt_mask;

__attribute__((unused)) static nt_mask nt_nodes(int a, int b) /* a node mask of a and b (-1: none) */
{
    nt_mask m;
    memset(&m, 0, sizeof m);
    if (a >= 0)
        m.w[a / NT_BITS] |= 1ul << (a % NT_BITS);
    if (b >= 0)
        m.w[b / NT_BITS] |= 1ul << (b % NT_BITS);
    return m;
}

__attribute__((unused)) static int nt_mmap_init(ca_source_mmap *s, unsigned mode, const nt_mask *m, size_t maxnode)
{
    ca_source_mmap_options o;
    memset(&o, 0, sizeof o);
    o.flags = CA_SOURCE_MMAP_NORESERVE; /* libbinned's class ranges exceed the guest's memory */
    o.decommit = CA_SOURCE_DECOMMIT_DONTNEED;
    o.numa.mode = mode;
    o.numa.nodes = m ? m->w : NULL;
    o.numa.maxnode = m ? maxnode : 0;
    return ca_source_mmap_init(s, &o);
}

/* The kernel's policy of the page at p: mode and the first word of nodes. */
__attribute__((unused)) static int nt_policy_of(const void *p, int *mode, unsigned long *nodes)
{
    unsigned long m[NT_WORDS];
    memset(m, 0, sizeof m);
    if (get_mempolicy(mode, m, 4096, (void *)p, MPOL_F_ADDR) != 0)
        return errno;
    *nodes = m[0];
    return 0;
}

/* ------------------------------------------------------------------------
 * Page placement
 * ------------------------------------------------------------------------ */

/* Count pages of [p, p+size) per node (touching nothing); pages not present
 * or unreadable count in *other. Return: 0 or the errno of move_pages. */
static int nt_count(const void *p, size_t size, long *n0, long *n1, long *other)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    uintptr_t a = (uintptr_t)p & ~(page - 1), end = (uintptr_t)p + size;
    *n0 = *n1 = *other = 0;
    for (; a < end; a += page) {
        int node = -1;
        int e = ca_source_numa_node_of((const void *)a, &node);
        if (e == 0 && node == 0)
            (*n0)++;
        else if (e == 0 && node == 1)
            (*n1)++;
        else if (e == EFAULT)
            return e;
        else
            (*other)++;
    }
    return 0;
}

/* CHECK_ON(p, size, node): every page of the range is on node. */
#define CHECK_ON(p, size, node)                                                                    \
    do {                                                                                           \
        long c0_, c1_, cx_;                                                                        \
        CHECK(nt_count((p), (size), &c0_, &c1_, &cx_) == 0, "move_pages failed");                 \
        long want_ = (node) == 0 ? c0_ : c1_;                                                      \
        CHECK(want_ > 0 && cx_ == 0 && c0_ + c1_ == want_,                                         \
              "expected every page on node %d: node0 %ld, node1 %ld, elsewhere/absent %ld",      \
              (int)(node), c0_, c1_, cx_);                                                         \
    } while (0)

/* ------------------------------------------------------------------------
 * Running on a node
 * ------------------------------------------------------------------------ */

typedef struct nt_job {
    int node;
    int (*fn)(void *);
    void *arg;
    int rc;
} nt_job;

static void *nt_job_main(void *p)
{
    nt_job *j = (nt_job *)p;
    if (numa_run_on_node(j->node) != 0) {
        j->rc = nt_fail("numa_run_on_node(%d): %s", j->node, strerror(errno));
        return NULL;
    }
    sched_yield();
    int cpu = sched_getcpu();
    if (cpu < 0 || numa_node_of_cpu(cpu) != j->node) {
        j->rc = nt_fail("pinned to node %d but running on cpu %d (node %d)", j->node, cpu,
                        cpu < 0 ? -1 : numa_node_of_cpu(cpu));
        return NULL;
    }
    j->rc = j->fn(j->arg);
    return NULL;
}

/* Run fn(arg) in a new thread pinned to node; its result (0 or 1). */
static int nt_on_node(int node, int (*fn)(void *), void *arg)
{
    nt_job j = {node, fn, arg, 1};
    pthread_t t;
    if (pthread_create(&t, NULL, nt_job_main, &j) != 0)
        return nt_fail("pthread_create failed");
    pthread_join(t, NULL);
    return j.rc;
}

/* ------------------------------------------------------------------------
 * The runner
 * ------------------------------------------------------------------------ */

typedef struct nt_test {
    const char *name;
    int (*fn)(void);
} nt_test;


/* Move the calling process into a new cpuset cgroup (v2) whose memory
 * nodes are @mems ("0"): nodes outside it exist but are not allowed. For
 * the forked child of one test (it stays there until it exits). Return: 0,
 * or 1 with the reason in nt_why. */
__attribute__((unused)) static int nt_restrict_mems(const char *mems)
{
    static const char *root = "/sys/fs/cgroup";
    char path[256], buf[64];
    snprintf(path, sizeof path, "%s/cgroup.controllers", root);
    if (access(path, F_OK) != 0 && system("mount -t cgroup2 none /sys/fs/cgroup") != 0)
        return nt_fail("cannot mount cgroup2 on %s", root);
    struct {
        const char *file, *value;
    } steps[] = {{"cgroup.subtree_control", "+cpuset"}, {NULL, NULL}, {"cpuset.mems", mems}, {"cgroup.procs", buf}};
    char dir[128];
    snprintf(dir, sizeof dir, "%s/ca_numa_%d", root, (int)getpid());
    snprintf(buf, sizeof buf, "%d", (int)getpid());
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        if (!steps[i].file) {
            if (mkdir(dir, 0755) != 0 && errno != EEXIST)
                return nt_fail("mkdir %s: %s", dir, strerror(errno));
            continue;
        }
        snprintf(path, sizeof path, "%s/%s", i == 0 ? root : dir, steps[i].file);
        FILE *f = fopen(path, "w");
        if (!f || fputs(steps[i].value, f) < 0 || fclose(f) != 0)
            return nt_fail("write %s to %s: %s", steps[i].value, path, strerror(errno));
    }
    return 0;
}

/* Why this machine cannot run the tests, or NULL. */
static const char *nt_unfit(void)
{
    static char why[160];
    if (numa_available() < 0)
        return "the kernel has no NUMA support";
    if (ca_source_numa_available() == 0)
        return "ctxalloc built without NUMA (-Dnuma=disabled)";
    if (numa_max_node() < 1) {
        snprintf(why, sizeof why, "needs two NUMA nodes, this machine has %d (./run.sh numa boots a two-node guest)",
                 numa_max_node() + 1);
        return why;
    }
    if (numa_node_of_cpu(0) == numa_node_of_cpu(numa_num_configured_cpus() - 1)) {
        snprintf(why, sizeof why, "needs a CPU on each of nodes 0 and 1");
        return why;
    }
    return NULL;
}

static int nt_main(const nt_test *tests, size_t n)
{
    const char *unfit = nt_unfit();
    int passed = 0, failed = 0;
    for (size_t i = 0; i < n; i++) {
        if (unfit) {
            printf("SKIP numa/%s: %s\n", tests[i].name, unfit);
            continue;
        }
        fflush(stdout);
        int pfd[2];
        if (pipe(pfd) != 0)
            return 1;
        pid_t pid = fork();
        if (pid == 0) {
            close(pfd[0]);
            int rc = tests[i].fn();
            if (rc)
                (void)!write(pfd[1], nt_why, strlen(nt_why));
            _exit(rc);
        }
        close(pfd[1]);
        char msg[sizeof nt_why + 1];
        ssize_t k, len = 0;
        while ((k = read(pfd[0], msg + len, sizeof msg - 1 - (size_t)len)) > 0)
            len += k;
        msg[len < 0 ? 0 : len] = '\0';
        close(pfd[0]);
        int st = 0;
        waitpid(pid, &st, 0);
        if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
            printf("PASS numa/%s\n", tests[i].name);
            passed++;
        } else if (WIFEXITED(st) && WEXITSTATUS(st) == NT_SKIP) {
            printf("SKIP numa/%s: %s\n", tests[i].name, msg);
        } else {
            if (WIFSIGNALED(st))
                printf("FAIL numa/%s: killed by signal %d %s\n", tests[i].name, WTERMSIG(st), msg);
            else
                printf("FAIL numa/%s: %s\n", tests[i].name, msg);
            failed++;
        }
    }
    printf("%d passed, %d failed\n", passed, failed);
    fflush(stdout);
    if (unfit)
        return NT_SKIP;
    return failed ? 1 : 0;
}

#endif /* NUMA_TEST_H */
