/* SPDX-License-Identifier: MIT */
/*
 * The automatic NUMA mode of malloc (CA_NUMA, ca_switch_numa_auto) on the
 * build machine, which has one node: the mode is decided at the first
 * malloc from the environment, so each case runs this program again
 * (/proc/self/exe child) with CA_NUMA set, reads the child's report line on
 * a pipe and its standard error on another.
 *
 *   - unset, "auto", "0": the mode is off, malloc's small and large blocks
 *     are the default instance's (the base), nothing is written on stderr;
 *   - an invalid value ("2", "on", "AUTO", "1 ", ""-free junk): exactly one
 *     warning line naming the variable, the value and what is expected,
 *     and the default (auto: off here);
 *   - "1" (on even with one node, when the kernel has NUMA policies): small
 *     and large blocks, calloc, aligned_alloc and realloc come from the
 *     node's instance (not the base), ca_switch_current() names it, their
 *     pages are on node 0, frees from another thread go back to it, and
 *     ca_switch_check passes; without NUMA support (or with another base)
 *     "1" leaves the mode off.
 *
 * Linked with the override: malloc here is libswitch's. The two-node
 * behaviour (node of the thread, migration, frees across nodes) is checked
 * in the NUMA guest (tests/numa/numa_auto.c).
 */
#include <ctxalloc/source.h>
#include <ctxalloc/switch.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* ------------------------------------------------------------------------
 * The child: one line "auto=A small_base=S large_base=L current=C node=N
 * ok=K" on stdout.
 * ------------------------------------------------------------------------ */

static void *free_both(void *arg)
{
    void **v = (void **)arg;
    free(v[0]);
    free(v[1]);
    v[2] = malloc(200); /* this thread's own allocation, freed by main */
    return NULL;
}

static int child(void)
{
    char *p = (char *)malloc(100);
    char *q = (char *)malloc((size_t)1 << 20);
    char *z = (char *)calloc(1000, 10);
    char *al = (char *)aligned_alloc(4096, 5000);
    if (!p || !q || !z || !al)
        return 2;
    memset(p, 1, 100);
    memset(q, 1, (size_t)1 << 20);
    memset(al, 1, 5000);
    ca_allocator *base = ca_switch_base(), *cur = ca_switch_current();
    ca_allocator *op = ca_switch_owner(p), *oq = ca_switch_owner(q);
    int small_base = op == base, large_base = oq == base;
    int current = op == cur && oq == cur && ca_switch_owner(z) == cur && ca_switch_owner(al) == cur;
    int ok = 1;
    for (size_t i = 0; i < 10000; i++)
        ok &= z[i] == 0;
    char *z2 = (char *)realloc(z, 100000); /* moves within its owner */
    ok &= z2 != NULL && ca_switch_owner(z2) == cur;
    int node = -1;
    if (ca_source_numa_available() > 0) {
        int n0 = -1, n1 = -1;
        if (ca_source_numa_node_of(p, &n0) == 0 && ca_source_numa_node_of(q + 4096, &n1) == 0 && n0 == n1)
            node = n0;
    }
    void *v[3] = {p, q, NULL};
    pthread_t t;
    ok &= pthread_create(&t, NULL, free_both, v) == 0 && pthread_join(t, NULL) == 0;
    free(v[2]);
    free(z2);
    free(al);
    ok &= ca_switch_check() == NULL;
    printf("auto=%d small_base=%d large_base=%d current=%d node=%d ok=%d\n", (int)ca_switch_numa_auto(),
           small_base, large_base, current, node, ok);
    fflush(stdout);
    return 0;
}

/* ------------------------------------------------------------------------
 * The parent
 * ------------------------------------------------------------------------ */

typedef struct report {
    int automatic, small_base, large_base, current, node, ok;
    char err[1024]; /* the child's stderr */
    int status;
} report;

static int read_all(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    ssize_t r;
    while (n + 1 < cap && (r = read(fd, buf + n, cap - 1 - n)) > 0)
        n += (size_t)r;
    buf[n] = '\0';
    return (int)n;
}

/* Run the child with CA_NUMA=value (NULL: unset). */
static int run_child(const char *value, report *out)
{
    memset(out, 0, sizeof *out);
    int po[2], pe[2];
    if (pipe(po) != 0 || pipe(pe) != 0)
        return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        dup2(po[1], 1);
        dup2(pe[1], 2);
        close(po[0]), close(pe[0]), close(po[1]), close(pe[1]);
        if (value)
            setenv("CA_NUMA", value, 1);
        else
            unsetenv("CA_NUMA");
        execl("/proc/self/exe", "numa_auto", "child", (char *)NULL);
        _exit(127);
    }
    close(po[1]), close(pe[1]);
    char line[256];
    read_all(po[0], line, sizeof line);
    read_all(pe[0], out->err, sizeof out->err);
    close(po[0]), close(pe[0]);
    waitpid(pid, &out->status, 0);
    if (sscanf(line, "auto=%d small_base=%d large_base=%d current=%d node=%d ok=%d", &out->automatic,
               &out->small_base, &out->large_base, &out->current, &out->node, &out->ok) != 6)
        return -1;
    return 0;
}

static int failed, passed;

#define EXPECT(cond, ...)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "  line %d: %s: ", __LINE__, #cond);                                   \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

/* The mode is off: the default instance serves both tiers, no output. */
static int expect_off(const char *value, const char *warning)
{
    report r;
    EXPECT(run_child(value, &r) == 0, "CA_NUMA=%s: no report (status %#x, stderr %s)", value ? value : "(unset)",
           r.status, r.err);
    EXPECT(r.automatic == 0, "CA_NUMA=%s: the mode is on", value ? value : "(unset)");
    EXPECT(r.small_base && r.large_base, "CA_NUMA=%s: a block is not the default instance's (small %d, large %d)",
           value ? value : "(unset)", r.small_base, r.large_base);
    EXPECT(r.current && r.ok, "current %d, ok %d", r.current, r.ok);
    if (warning)
        EXPECT(strcmp(r.err, warning) == 0, "CA_NUMA=%s: stderr \"%s\", expected \"%s\"", value, r.err, warning);
    else
        EXPECT(r.err[0] == '\0', "CA_NUMA=%s: stderr \"%s\"", value ? value : "(unset)", r.err);
    return 0;
}

static int multi_node(void) { return ca_source_numa_available() >= 2; }

static int t_unset_is_off(void) { return multi_node() ? 77 : expect_off(NULL, NULL); }
static int t_auto_is_off(void) { return multi_node() ? 77 : expect_off("auto", NULL); }
static int t_zero_is_off(void) { return expect_off("0", NULL); }

static int t_bad_values_warn_once(void)
{
    static const char *const bad[] = {"2", "on", "AUTO", "1 ", " 0", "yes", "-1"};
    if (multi_node())
        return 77;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char want[200];
        snprintf(want, sizeof want,
                 "ctxalloc: warning: CA_NUMA=%s is invalid (expected one of 0, 1, auto): using auto\n", bad[i]);
        if (expect_off(bad[i], want))
            return 1;
    }
    return 0;
}

static int t_one_is_on_with_numa(void)
{
    report r;
    EXPECT(run_child("1", &r) == 0, "no report (status %#x, stderr %s)", r.status, r.err);
    EXPECT(r.err[0] == '\0', "stderr \"%s\"", r.err);
    EXPECT(r.ok && r.current, "ok %d, current %d", r.ok, r.current);
    if (!SW_BASE_BINNED || ca_source_numa_available() == 0) {
        EXPECT(!r.automatic && r.small_base && r.large_base, "no NUMA here: the mode must stay off");
        return 0;
    }
    EXPECT(r.automatic == 1, "CA_NUMA=1 with NUMA policies: the mode is off");
    EXPECT(!r.small_base, "a small block came from the default instance");
    EXPECT(!r.large_base, "a large block came from the default instance");
    EXPECT(r.node == 0, "pages on node %d, not 0", r.node);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "child") == 0)
        return child();
    static const struct {
        const char *name;
        int (*fn)(void);
    } cases[] = {
        {"unset_is_off", t_unset_is_off},
        {"auto_is_off_on_one_node", t_auto_is_off},
        {"zero_is_off", t_zero_is_off},
        {"bad_values_warn_once", t_bad_values_warn_once},
        {"one_is_on_with_numa", t_one_is_on_with_numa},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = cases[i].fn();
        printf("[%s] %s\n", rc == 0 ? " ok " : rc == 77 ? "skip" : "FAIL", cases[i].name);
        fflush(stdout);
        if (rc == 0 || rc == 77)
            passed += rc == 0;
        else
            failed++;
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
