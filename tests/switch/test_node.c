/* SPDX-License-Identifier: MIT */
/*
 * ca_switch_bind_node on the build machine (one node expected): binding the
 * thread or the context to node 0 gives node-0 pages from malloc, frees from
 * another thread route back, the previous selection is returned and restores;
 * bad input (unknown scope, node < -1, a node the machine does not have) is
 * EINVAL with the selection unchanged and no mapping left behind. Built
 * without NUMA (-Dnuma=disabled), on a kernel without it, or with a base
 * other than libbinned, every call is ENOTSUP.
 * The two-node checks run in the NUMA guest (tests/numa, ./run.sh numa).
 */
#include <criterion/criterion.h>
#include <ctxalloc/source.h>
#include <ctxalloc/switch.h>
#include <pthread.h>

#include "ca_test.h"

/* 1 when bind_node can work in this build and on this machine. */
static int bind_supported(void) { return SW_BASE_BINNED && ca_source_numa_available() > 0; }

Test(node, unsupported_is_enotsup)
{
    if (bind_supported())
        cr_skip_test("NUMA binding available here (tested below)");
    ca_allocator *prev = (ca_allocator *)1;
    cr_assert_eq(ca_switch_bind_node(CA_SWITCH_BIND_THREAD, 0, &prev), ENOTSUP);
    cr_assert_eq(prev, (ca_allocator *)1, "prev untouched on error");
    cr_assert_null(ca_switch_thread());
}

Test(node, bad_input_changes_nothing)
{
    ca_allocator *mine = ca_switch_base();
    cr_assert_null(ca_switch_thread_set(mine));
    long maps = ca_test_count_maps();
    ca_allocator *prev = (ca_allocator *)1;
    cr_assert_eq(ca_switch_bind_node(0, 0, &prev), EINVAL, "unknown scope");
    cr_assert_eq(ca_switch_bind_node(3, 0, &prev), EINVAL, "unknown scope");
    cr_assert_eq(ca_switch_bind_node(CA_SWITCH_BIND_THREAD, -2, &prev), EINVAL, "node < -1");
    int want = bind_supported() ? EINVAL : ENOTSUP;
    int absent = ca_source_numa_available() > 0 ? ca_source_numa_available() : 1;
    cr_assert_eq(ca_switch_bind_node(CA_SWITCH_BIND_THREAD, absent, &prev), want, "node %d absent", absent);
    cr_assert_eq(ca_switch_bind_node(CA_SWITCH_BIND_CONTEXT, absent, &prev), want);
    cr_assert_eq(ca_switch_bind_node(CA_SWITCH_BIND_THREAD, 1023, &prev), want);
    cr_assert_eq(ca_switch_bind_node(CA_SWITCH_BIND_THREAD, 1024, &prev), want, "beyond any mask");
    cr_assert_eq(ca_switch_bind_node(CA_SWITCH_BIND_THREAD, 1 << 30, &prev), want);
    cr_assert_eq(prev, (ca_allocator *)1, "prev untouched on error");
    cr_assert_eq(ca_switch_thread(), mine, "thread selection unchanged");
    cr_assert_null(ca_switch_context(), "context selection unchanged");
    cr_assert_eq(ca_test_count_maps(), maps, "no mapping left behind");
    ca_switch_thread_set(NULL);
}

static void *free_it(void *p)
{
    ca_switch_free(p);
    return NULL;
}

Test(node, thread_bound_to_node0)
{
    if (!bind_supported())
        cr_skip_test("no NUMA binding in this build or on this machine");
    ca_allocator *prev = (ca_allocator *)1;
    cr_assert_eq(ca_switch_bind_node(CA_SWITCH_BIND_THREAD, 0, &prev), 0);
    cr_assert_null(prev, "no thread allocator before");
    ca_allocator *a = ca_switch_thread();
    cr_assert_not_null(a);
    cr_assert_neq(a, ca_switch_base(), "a node instance, not the base");
    cr_assert_eq(ca_switch_current(), a);

    enum { N = 64, SZ = 4000 };
    char *p[N];
    for (int i = 0; i < N; i++) {
        p[i] = (char *)ca_switch_malloc(SZ);
        cr_assert_not_null(p[i]);
        memset(p[i], i, SZ);
        cr_assert_eq(ca_switch_owner(p[i]), a, "block %d routes to the node instance", i);
        int node = -1;
        cr_assert_eq(ca_source_numa_node_of(p[i], &node), 0);
        cr_assert_eq(node, 0);
    }
    /* free from another (unbound) thread routes to the owner */
    for (int i = 0; i < N; i += 2) {
        pthread_t t;
        cr_assert_eq(pthread_create(&t, NULL, free_it, p[i]), 0);
        cr_assert_eq(pthread_join(t, NULL), 0);
    }
    for (int i = 1; i < N; i += 2)
        ca_switch_free(p[i]);

    /* binding again gives the same instance; -1 clears and returns it */
    cr_assert_eq(ca_switch_bind_node(CA_SWITCH_BIND_THREAD, 0, &prev), 0);
    cr_assert_eq(prev, a);
    cr_assert_eq(ca_switch_thread(), a);
    cr_assert_eq(ca_switch_bind_node(CA_SWITCH_BIND_THREAD, -1, &prev), 0);
    cr_assert_eq(prev, a);
    cr_assert_null(ca_switch_thread());
    cr_assert_null(ca_switch_check());
}

static void *bind_in_thread(void *arg)
{
    (void)arg;
    if (ca_switch_bind_node(CA_SWITCH_BIND_THREAD, 0, NULL) != 0)
        return NULL;
    return ca_switch_thread();
}

Test(node, one_instance_per_node_across_threads)
{
    if (!bind_supported())
        cr_skip_test("no NUMA binding in this build or on this machine");
    pthread_t t[4];
    void *got[4];
    for (int i = 0; i < 4; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, bind_in_thread, NULL), 0);
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(pthread_join(t[i], &got[i]), 0);
        cr_assert_not_null(got[i]);
        cr_assert_eq(got[i], got[0], "threads binding to node 0 share its instance");
    }
    cr_assert_null(ca_switch_thread(), "other threads' binds do not touch this thread");
}

Test(node, context_bound_to_node0_restores)
{
    if (!bind_supported())
        cr_skip_test("no NUMA binding in this build or on this machine");
    ca_allocator *base = ca_switch_base();
    cr_assert_null(ca_switch_context_set(base));
    ca_allocator *prev = NULL;
    cr_assert_eq(ca_switch_bind_node(CA_SWITCH_BIND_CONTEXT, 0, &prev), 0);
    cr_assert_eq(prev, base, "the previous context is returned");
    ca_allocator *a = ca_switch_context();
    cr_assert_neq(a, base);
    cr_assert_null(ca_switch_thread(), "the thread selection is left alone");
    void *p = ca_switch_malloc(100);
    cr_assert_eq(ca_switch_owner(p), a);
    ca_switch_context_set(prev);
    cr_assert_eq(ca_switch_context(), base);
    p = ca_switch_realloc(p, 200);
    cr_assert_eq(ca_switch_owner(p), a, "realloc stays with the node instance");
    ca_switch_free(p);
    ca_switch_context_set(NULL);
    cr_assert_null(ca_switch_check());
}
