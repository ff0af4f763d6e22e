/* SPDX-License-Identifier: MIT */
/*
 * libswitch through its public header only: the three selection levels,
 * save / restore / swap, ca_switch_with, locals and the owner source, owner
 * routing through ca_switch_owner, statistics output.
 * The program's malloc is glibc's here (no override linked).
 */
#include <criterion/criterion.h>
#include <ctxalloc/switch.h>
#include <stdio.h>
#include <unistd.h>

#include "switch_test.h"

Test(api, selection_levels)
{
    sw_ctx t, c;
    cr_assert_eq(sw_ctx_init(&t), 0);
    cr_assert_eq(sw_ctx_init(&c), 0);
    ca_allocator *g = ca_switch_global();
    cr_assert_not_null(g);
    cr_assert_eq(g, ca_switch_base());
    cr_assert_eq(ca_switch_current(), g);

    cr_assert_null(ca_switch_thread_set(sw_ctx_alloc(&t)));
    cr_assert_eq(ca_switch_current(), sw_ctx_alloc(&t));
    cr_assert_null(ca_switch_context_set(sw_ctx_alloc(&c)));
    cr_assert_eq(ca_switch_current(), sw_ctx_alloc(&c), "context beats thread");

    void *pc = ca_switch_malloc(40);
    cr_assert_eq(ca_switch_owner(pc), sw_ctx_alloc(&c));
    cr_assert_eq(c.pool.live, 1);

    cr_assert_eq(ca_switch_context_set(NULL), sw_ctx_alloc(&c));
    void *pt = ca_switch_malloc(40);
    cr_assert_eq(ca_switch_owner(pt), sw_ctx_alloc(&t));
    cr_assert_eq(ca_switch_thread_set(NULL), sw_ctx_alloc(&t));
    void *pg = ca_switch_malloc(40);
    cr_assert_eq(ca_switch_owner(pg), g);

    /* Frees go to the owners whatever is selected now. */
    ca_switch_context_set(sw_ctx_alloc(&t));
    ca_switch_free(pc);
    ca_switch_free(pg);
    ca_switch_context_set(sw_ctx_alloc(&c));
    ca_switch_free(pt);
    ca_switch_context_set(NULL);
    cr_assert_eq(c.pool.live, 0);
    cr_assert_eq(t.pool.live, 0);
    sw_ctx_destroy(&t);
    sw_ctx_destroy(&c);
}

static void *nested_inner(void *arg)
{
    sw_ctx *c = (sw_ctx *)arg;
    cr_assert_eq(ca_switch_context(), sw_ctx_alloc(c));
    return ca_switch_malloc(8);
}

static void *nested_outer(void *arg)
{
    sw_ctx *c = (sw_ctx *)arg;
    cr_assert_eq(ca_switch_context(), sw_ctx_alloc(&c[0]));
    void *p = ca_switch_with(sw_ctx_alloc(&c[1]), nested_inner, &c[1]);
    cr_assert_eq(ca_switch_context(), sw_ctx_alloc(&c[0]), "inner context restored");
    cr_assert_eq(ca_switch_owner(p), sw_ctx_alloc(&c[1]));
    return p;
}

static void *current_cb(void *arg)
{
    (void)arg;
    return ca_switch_current();
}

static void *malloc_cb(void *arg) { return ca_switch_malloc((size_t)(uintptr_t)arg); }

Test(api, with_nested_restores)
{
    sw_ctx c[2];
    cr_assert_eq(sw_ctx_init(&c[0]), 0);
    cr_assert_eq(sw_ctx_init(&c[1]), 0);
    cr_assert_null(ca_switch_context());
    void *p = ca_switch_with(sw_ctx_alloc(&c[0]), nested_outer, c);
    cr_assert_null(ca_switch_context());
    cr_assert_eq(c[1].pool.live, 1);
    ca_switch_free(p);
    cr_assert_eq(c[1].pool.live, 0);
    /* NULL context: the thread / global allocator inside. */
    cr_assert_eq(ca_switch_with(NULL, current_cb, NULL), ca_switch_global());
    sw_ctx_destroy(&c[0]);
    sw_ctx_destroy(&c[1]);
}

Test(api, save_restore_swap)
{
    sw_ctx a, b;
    cr_assert_eq(sw_ctx_init(&a), 0);
    cr_assert_eq(sw_ctx_init(&b), 0);
    ca_allocator *saved = ca_switch_context_set(sw_ctx_alloc(&a));
    cr_assert_null(saved);
    ca_allocator *slot = sw_ctx_alloc(&b);
    ca_switch_context_swap(&slot);
    cr_assert_eq(ca_switch_context(), sw_ctx_alloc(&b));
    cr_assert_eq(slot, sw_ctx_alloc(&a));
    ca_switch_context_swap(&slot);
    cr_assert_eq(ca_switch_context(), sw_ctx_alloc(&a));
    cr_assert_eq(slot, sw_ctx_alloc(&b));
    ca_switch_context_set(saved);
    cr_assert_null(ca_switch_context());
    sw_ctx_destroy(&a);
    sw_ctx_destroy(&b);
}

Test(api, global_set_checks_caps)
{
    sw_ctx c;
    cr_assert_eq(sw_ctx_init(&c), 0);
    errno = 0;
    cr_assert_null(ca_switch_global_set(sw_ctx_alloc(&c)), "a single-thread adoption is not thread-safe");
    cr_assert_eq(errno, EINVAL);
    cr_assert_eq(ca_switch_global(), ca_switch_base());
    /* a locked allocator is thread-safe, but free() cannot route it until adopted */
    sw_mmap_source mm;
    sw_pool pool;
    sw_mmap_source_init(&mm);
    sw_pool_init(&pool, &mm.base);
    ca_locked_allocator lk;
    cr_assert_eq(ca_locked_init(&lk, &pool.base, CA_LOCK_SPIN), 0);
    errno = 0;
    cr_assert_null(ca_switch_global_set(&lk.base));
    cr_assert_eq(errno, EINVAL);
    ca_switch_adopted ad;
    cr_assert_eq(ca_switch_adopt(&ad, &lk.base), 0, "%s", ca_last_error());
    cr_assert_eq(ca_switch_global_set(&ad.base), ca_switch_base());
    cr_assert_eq(ca_switch_current(), &ad.base);
    void *p = ca_switch_malloc(100);
    cr_assert_eq(ca_switch_owner(p), &ad.base, "owner is the adoption");
    cr_assert_eq(ca_switch_global_set(NULL), &ad.base);
    cr_assert_eq(ca_switch_global(), ca_switch_base());
    ca_switch_free(p);
    cr_assert_eq(pool.live, 0);
    cr_assert_eq(ca_switch_unadopt(&ad), 0);
    ca_locked_destroy(&lk);
    sw_ctx_destroy(&c);
}

Test(api, local_and_source_arguments)
{
    ca_switch_local l;
    cr_assert_eq(ca_switch_local_init(NULL, ca_switch_base()), EINVAL);
    cr_assert_eq(ca_switch_local_init(&l, NULL), EINVAL);
    /* Without unsized free a local cannot serve malloc. */
    static ca_allocator_ops sized_only;
    sized_only = *ca_libc_allocator()->ops;
    sized_only.caps &= ~CA_CAP_UNSIZED;
    ca_allocator s = {&sized_only};
    cr_assert_eq(ca_switch_local_init(&l, &s), EINVAL);
    ca_switch_source src;
    cr_assert_eq(ca_switch_source_init(&src, NULL, &l), EINVAL);
    sw_mmap_source mm;
    sw_mmap_source_init(&mm);
    cr_assert_eq(ca_switch_source_init(&src, &mm.base, NULL), 0);
    cr_assert_geq(ca_source_granule(&src.base), CA_OWNER_GRANULE);
    void *p;
    cr_assert_eq(ca_source_obtain(&src.base, CA_OWNER_GRANULE, CA_OWNER_GRANULE, &p), EINVAL, "no owner yet");
    ca_switch_source_set_owner(&src, &s);
    cr_assert_eq(ca_source_obtain(&src.base, 4096, 4096, &p), EINVAL, "below the granule");
    cr_assert_eq(ca_source_obtain(&src.base, CA_OWNER_GRANULE * 2, CA_OWNER_GRANULE, &p), 0);
    cr_assert_eq(ca_owner_lookup((char *)p + 70000), &s);
    cr_assert_eq(ca_source_release(&src.base, p, CA_OWNER_GRANULE * 2), 0);
    cr_assert_null(ca_owner_lookup(p));
    cr_assert_eq(mm.obtains, 1);
    cr_assert_eq(mm.releases, 1);
}

Test(api, stats_text_and_json)
{
    sw_ctx c;
    cr_assert_eq(sw_ctx_init(&c), 0);
    void *p = ca_switch_with(sw_ctx_alloc(&c), malloc_cb, (void *)(uintptr_t)100);
    char path[] = "/tmp/ca-switch-statsXXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    unlink(path);
    cr_assert_eq(ca_switch_stats_write(fd, CA_STATS_JSON), 0);
    cr_assert_eq(ca_switch_stats_write(fd, CA_STATS_TEXT), 0);
    char buf[16384];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    close(fd);
    cr_assert_gt(n, 0);
    buf[n] = '\0';
    cr_assert(strncmp(buf, "{\"total\": {", 11) == 0, "%.40s", buf);
    cr_assert_not_null(strstr(buf, "\"adopted."), "adoptions are listed");
    cr_assert_not_null(strstr(buf, "\"switch\": {"));
    cr_assert_not_null(strstr(buf, "}}\n== total\n"), "JSON closes before the text part");
    cr_assert_not_null(strstr(buf, "switch_remote_frees"));
    cr_assert_not_null(strstr(buf, "name: test-pool"));
    ca_switch_free(p);
    sw_ctx_destroy(&c);
}

Test(api, counters_and_pending)
{
    ca_switch_counters c0;
    ca_switch_counters_get(&c0);
    sw_ctx c;
    cr_assert_eq(sw_ctx_init(&c), 0);
    cr_assert_eq(ca_switch_local_pending(&c.ad.local), 0);
    cr_assert_eq(ca_switch_local_drain(&c.ad.local), 0);
    ca_switch_local_adopt(&c.ad.local);
    sw_ctx_destroy(&c);
    ca_switch_counters c1;
    ca_switch_counters_get(&c1);
    cr_assert_eq(c1.remote_frees, c0.remote_frees);
    cr_assert_null(ca_switch_check());
}
