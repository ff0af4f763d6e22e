/* SPDX-License-Identifier: MIT */
/* The large-object tier through its public header only: creation and
 * options, the allocator contract, errors, region buffers, statistics. */
#include <criterion/criterion.h>
#include <ctxalloc/binned/large.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ca_contract.h"
#include "ca_test.h"

static ca_binned_large *make(unsigned flags)
{
    ca_binned_large_options o;
    memset(&o, 0, sizeof o);
    o.flags = flags;
    ca_binned_large *l = NULL;
    cr_assert_eq(ca_binned_large_create(&l, &o), 0, "%s", ca_last_error());
    cr_assert_not_null(l);
    return l;
}

Test(binned_large_api, contract)
{
    ca_binned_large *l = make(0);
    ca_contract_check(ca_binned_large_allocator(l), 0);
    cr_assert_null(ca_binned_large_check(l), "%s", ca_binned_large_check(l));
    ca_binned_large_destroy(l);
}

Test(binned_large_api, contract_no_cache)
{
    ca_binned_large *l = make(CA_BINNED_LARGE_NO_CACHE);
    ca_contract_check(ca_binned_large_allocator(l), 0);
    cr_assert_null(ca_binned_large_check(l));
    ca_binned_large_destroy(l);
}

Test(binned_large_api, contract_default_tier)
{
    ca_binned_large *l = ca_binned_large_default();
    cr_assert_not_null(l);
    cr_assert_eq(ca_binned_large_default(), l);
    ca_contract_check(ca_binned_large_allocator(l), 0);
    ca_binned_large_options o;
    memset(&o, 0, sizeof o);
    cr_assert_eq(ca_binned_large_default_init(&o), EBUSY);
}

Test(binned_large_api, allocator_caps)
{
    ca_binned_large *l = make(0);
    ca_allocator *a = ca_binned_large_allocator(l);
    cr_assert_eq(ca_allocator_caps(a) & (CA_CAP_THREAD_SAFE | CA_CAP_UNSIZED), CA_CAP_THREAD_SAFE | CA_CAP_UNSIZED);
    cr_assert_str_eq(ca_allocator_name(a), "binned-large");
    void *p = ca_alloc(a, 100000, 16);
    cr_assert(ca_owns(a, p));
    cr_assert_eq(ca_binned_large_of(p), l);
    cr_assert_eq(ca_usable_size(a, p), 131072);
    ca_free_unsized(a, p);
    int x;
    cr_assert_not(ca_owns(a, &x));
    cr_assert_null(ca_binned_large_of(&x));
    cr_assert_null(ca_binned_large_of(NULL));
    ca_binned_large_destroy(l);
}

Test(binned_large_api, bad_options)
{
    ca_binned_large *l = NULL;
    ca_binned_large_options o;
    cr_assert_eq(ca_binned_large_create(NULL, NULL), EINVAL);
    memset(&o, 0, sizeof o);
    o.flags = 0x8000u;
    cr_assert_eq(ca_binned_large_create(&l, &o), EINVAL);
    memset(&o, 0, sizeof o);
    o.min_size = 1024; /* below 4 KiB */
    cr_assert_eq(ca_binned_large_create(&l, &o), EINVAL);
    memset(&o, 0, sizeof o);
    o.min_size = (size_t)1 << 20;
    o.max_size = (size_t)1 << 19; /* max < min */
    cr_assert_eq(ca_binned_large_create(&l, &o), EINVAL);
    memset(&o, 0, sizeof o);
    o.max_size = (size_t)1 << 41; /* above 1 TiB */
    cr_assert_eq(ca_binned_large_create(&l, &o), EINVAL);
    memset(&o, 0, sizeof o);
    o.min_size = SIZE_MAX; /* rounding overflows */
    cr_assert_eq(ca_binned_large_create(&l, &o), EINVAL);
    memset(&o, 0, sizeof o);
    o.flags = CA_BINNED_LARGE_FILE; /* no directory */
    cr_assert_eq(ca_binned_large_create(&l, &o), EINVAL);
    cr_assert_str_eq(ca_last_error(), "binned-large: CA_BINNED_LARGE_FILE needs file_dir");
    cr_assert_null(l);
}

Test(binned_large_api, file_dir_missing)
{
    ca_binned_large *l = NULL;
    ca_binned_large_options o;
    memset(&o, 0, sizeof o);
    o.flags = CA_BINNED_LARGE_FILE;
    o.file_dir = "/nonexistent-ctxalloc-dir/x";
    cr_assert_eq(ca_binned_large_create(&l, &o), ENOENT);
    cr_assert_null(l);
    cr_assert_not_null(strstr(ca_last_error(), "binned-large: file-backed memory in '/nonexistent-ctxalloc-dir/x'"),
                       "%s", ca_last_error());
    cr_assert_not_null(strstr(ca_last_error(), "No such file or directory"), "the file source's reason: %s",
                       ca_last_error());
    /* Asked for: fall back to anonymous memory (and say why). */
    o.flags |= CA_BINNED_LARGE_FILE_FALLBACK;
    ca_last_error_clear();
    cr_assert_eq(ca_binned_large_create(&l, &o), 0);
    cr_assert_not_null(strstr(ca_last_error(), "anonymous memory instead"), "%s", ca_last_error());
    void *p = ca_binned_large_alloc(l, 1 << 20, 16, NULL);
    cr_assert_not_null(p);
    memset(p, 1, 1 << 20);
    ca_binned_large_free(l, p);
    ca_binned_large_destroy(l);
}

Test(binned_large_api, file_dir_not_writable)
{
    ca_binned_large *l = NULL;
    ca_binned_large_options o;
    memset(&o, 0, sizeof o);
    o.flags = CA_BINNED_LARGE_FILE;
    o.file_dir = "/proc/self"; /* exists, refuses files even for root */
    int rc = ca_binned_large_create(&l, &o);
    cr_assert_neq(rc, 0);
    cr_assert_null(l);
    cr_assert_not_null(strstr(ca_last_error(), "binned-large: file-backed memory in '/proc/self' failed"), "%s",
                       ca_last_error());
}

Test(binned_large_api, file_backed)
{
    char dir[] = "/tmp/ca-large-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    ca_binned_large *l = NULL;
    ca_binned_large_options o;
    memset(&o, 0, sizeof o);
    o.flags = CA_BINNED_LARGE_FILE;
    o.file_dir = dir;
    o.file_capacity = (size_t)1 << 30;
    cr_assert_eq(ca_binned_large_create(&l, &o), 0, "%s", ca_last_error());
    ca_contract_check(ca_binned_large_allocator(l), 0);
    void *p[8];
    for (int i = 0; i < 8; i++) {
        p[i] = ca_binned_large_alloc(l, (size_t)(i + 1) << 18, 16, NULL);
        cr_assert_not_null(p[i]);
        ca_test_fill(p[i], (size_t)(i + 1) << 18, (uint64_t)i);
    }
    for (int i = 0; i < 8; i++) {
        cr_assert(ca_test_verify(p[i], (size_t)(i + 1) << 18, (uint64_t)i));
        ca_binned_large_free(l, p[i]);
    }
    ca_binned_large_flush_cache(l);
    cr_assert_gt(ca_binned_large_purge(l, 0), 0);
    /* Purged (hole-punched) areas read as zero and are usable again. */
    void *q = ca_binned_large_alloc_flags(l, 1 << 20, 16, CA_BINNED_LARGE_ZERO, NULL);
    cr_assert_not_null(q);
    for (size_t i = 0; i < (1u << 20); i += 4096)
        cr_assert_eq(((unsigned char *)q)[i], 0);
    memset(q, 7, 1 << 20);
    ca_binned_large_free(l, q);
    cr_assert_null(ca_binned_large_check(l));
    ca_binned_large_destroy(l);
    rmdir(dir);
}

Test(binned_large_api, errors)
{
    ca_binned_large *l = make(0);
    size_t huge[] = {SIZE_MAX, SIZE_MAX - 4095, SIZE_MAX / 2 + 1, ((size_t)1 << 47) + 1};
    for (size_t i = 0; i < sizeof huge / sizeof *huge; i++) {
        errno = 0;
        cr_assert_null(ca_binned_large_alloc(l, huge[i], 16, NULL));
        cr_assert_eq(errno, ENOMEM);
    }
    /* size + alignment overflow */
    errno = 0;
    cr_assert_null(ca_binned_large_alloc(l, SIZE_MAX - 100, (size_t)1 << 20, NULL));
    cr_assert_eq(errno, ENOMEM);
    errno = 0;
    cr_assert_null(ca_binned_large_alloc(l, 4096, (size_t)1 << 63, NULL));
    cr_assert_eq(errno, ENOMEM);
    errno = 0;
    cr_assert_null(ca_binned_large_alloc(l, 4096, 3, NULL));
    cr_assert_eq(errno, EINVAL);
    cr_assert_eq(ca_binned_large_class_size(l, SIZE_MAX, 16), 0);
    cr_assert_eq(ca_binned_large_class_size(l, 10, 48), 0);
    ca_stats st;
    cr_assert_eq(ca_binned_large_stats(l, &st), 0);
    cr_assert_geq(st.failures, 7);
    ca_binned_large_free(l, NULL);
    ca_binned_large_destroy(l);
    ca_binned_large_destroy(NULL);
}

Test(binned_large_api, regions)
{
    ca_binned_large *l = make(0);
    ca_binned_large_region r;
    cr_assert_eq(ca_binned_large_region_init(&r, l, 100000), 0);
    cr_assert_eq(r.cap, 131072);
    cr_assert_eq(r.len, 0);
    unsigned char *data = r.data;
    char chunk[1000];
    memset(chunk, 'x', sizeof chunk);
    int n = 0;
    while (ca_binned_large_region_append(&r, chunk, sizeof chunk) == 0)
        n++;
    cr_assert_eq(n, 131);
    cr_assert_eq(r.len, 131000);
    cr_assert_eq(ca_binned_large_region_append(&r, chunk, sizeof chunk), ENOSPC);
    cr_assert_eq(r.len, 131000, "a failed append changed nothing");
    cr_assert_eq(r.data, data, "never moves");
    cr_assert_eq(ca_binned_large_region_remaining(&r), 72);
    errno = 0;
    cr_assert_null(ca_binned_large_region_extend(&r, 73));
    cr_assert_eq(errno, ENOSPC);
    char *tail = (char *)ca_binned_large_region_extend(&r, 72);
    cr_assert_eq(tail, (char *)data + 131000);
    cr_assert_eq(r.len, r.cap);
    cr_assert_eq(ca_binned_large_region_append(&r, NULL, 0), 0);
    ca_binned_large_region_clear(&r);
    cr_assert_eq(r.len, 0);
    cr_assert_eq(r.cap, 131072);
    ca_binned_large_region_release(&r);
    cr_assert_null(r.data);
    ca_binned_large_region_release(&r); /* no-op */

    /* Typed helpers. */
    cr_assert_eq(CA_BINNED_LARGE_REGION_INIT(&r, l, uint64_t, 10000), 0);
    cr_assert_eq(CA_BINNED_LARGE_REGION_CAPACITY(&r, uint64_t), 16384);
    for (uint64_t i = 0; i < 16384; i++)
        cr_assert_eq(CA_BINNED_LARGE_REGION_PUSH(&r, uint64_t, i * 3), 0);
    cr_assert_eq(CA_BINNED_LARGE_REGION_PUSH(&r, uint64_t, 1), ENOSPC);
    cr_assert_eq(CA_BINNED_LARGE_REGION_COUNT(&r, uint64_t), 16384);
    cr_assert_eq(*CA_BINNED_LARGE_REGION_AT(&r, uint64_t, 777), 777 * 3);
    ca_binned_large_region_release(&r);
    cr_assert_eq(CA_BINNED_LARGE_REGION_INIT(&r, l, uint64_t, SIZE_MAX / 4), ENOMEM);
    cr_assert_null(r.data);
    /* The process-wide tier when l is NULL; a capacity above max_size. */
    cr_assert_eq(ca_binned_large_region_init(&r, NULL, 5000), 0);
    cr_assert_eq(r.tier, ca_binned_large_default());
    ca_binned_large_region_release(&r);
    cr_assert_null(ca_binned_large_check(l));
    ca_binned_large_destroy(l);
}

Test(binned_large_api, stats)
{
    ca_binned_large *l = make(0);
    void *p = ca_binned_large_alloc(l, 300000, 16, NULL);
    void *q = ca_binned_large_alloc(l, (size_t)3 << 30, 16, NULL); /* direct (reserved, untouched) */
    cr_assert_not_null(p);
    cr_assert_not_null(q);
    ca_stats st;
    cr_assert_eq(ca_binned_large_stats(l, &st), 0);
    cr_assert_str_eq(st.name, "binned-large");
    cr_assert_eq(st.allocs, 2);
    cr_assert_eq(st.bytes_in_use, 524288 + ((size_t)3 << 30));
    cr_assert_geq(st.peak_in_use, st.bytes_in_use);
    uint64_t v = 0;
    cr_assert(ca_stats_get_counter(&st, "direct_allocs", &v));
    cr_assert_eq(v, 1);
    cr_assert(ca_stats_get_counter(&st, "regions", &v));
    cr_assert_eq(v, 2);
    cr_assert(ca_stats_get_counter(&st, "mapped_bytes", &v));
    cr_assert_geq(v, ((size_t)3 << 30) + 524288);
    unsigned n = ca_binned_large_class_count(l);
    cr_assert_eq(n, 15); /* 64 KiB .. 1 GiB */
    cr_assert_eq(ca_binned_large_class_size_at(l, 0), 65536);
    cr_assert_eq(ca_binned_large_class_size_at(l, n - 1), (size_t)1 << 30);
    cr_assert_eq(ca_binned_large_class_size_at(l, n), 0);
    cr_assert_eq(ca_binned_large_class_stats(l, 3, &st), 0);
    cr_assert_eq(st.allocs, 1);
    cr_assert_eq(st.bytes_in_use, 524288);
    cr_assert_eq(ca_binned_large_class_stats(l, n, &st), 0);
    cr_assert_eq(st.allocs, 1);
    cr_assert_eq(ca_binned_large_class_stats(l, n + 1, &st), EINVAL);
    char buf[2048];
    ca_binned_large_stats(l, &st);
    cr_assert_lt(ca_stats_format_buf(&st, CA_STATS_JSON, buf, sizeof buf), sizeof buf);
    ca_binned_large_free(l, p);
    ca_binned_large_free(l, q);
    ca_binned_large_stats(l, &st);
    cr_assert_eq(st.frees, 2);
    cr_assert_eq(st.bytes_in_use, 0);
    ca_binned_large_destroy(l);
}

/* The statistics report every counter of their list, and only those:
 * CA_BINNED_LARGE_COUNTERS for the tier, CA_BINNED_LARGE_CLASS_COUNTERS
 * for a class and for the direct mappings. */
Test(binned_large_api, stats_counters_listed)
{
    static const char *const all[] = CA_STATS_NAMES(CA_BINNED_LARGE_COUNTERS);
    static const char *const cls[] = CA_STATS_NAMES(CA_BINNED_LARGE_CLASS_COUNTERS);
    ca_binned_large *l = make(0);
    void *p = ca_binned_large_alloc(l, 300000, 16, NULL);
    cr_assert_not_null(p);
    ca_stats st;
    cr_assert_eq(ca_binned_large_stats(l, &st), 0);
    const char *d = ca_test_counters_differ(&st, all, sizeof all / sizeof *all);
    cr_assert_null(d, "tier stats: %s", d);
    cr_assert_eq(ca_binned_large_class_stats(l, 0, &st), 0);
    d = ca_test_counters_differ(&st, cls, sizeof cls / sizeof *cls);
    cr_assert_null(d, "class stats: %s", d);
    cr_assert_eq(ca_binned_large_class_stats(l, ca_binned_large_class_count(l), &st), 0);
    d = ca_test_counters_differ(&st, cls, sizeof cls / sizeof *cls);
    cr_assert_null(d, "direct stats: %s", d);
    ca_binned_large_free(l, p);
    ca_binned_large_destroy(l);
}

static int other_rc;

static void *create_bad_on_another_thread(void *arg)
{
    (void)arg;
    ca_binned_large *l = NULL;
    ca_binned_large_options o;
    memset(&o, 0, sizeof o);
    o.flags = 0x8000; /* unknown */
    other_rc = ca_binned_large_create(&l, &o);
    return ca_last_error() && strstr(ca_last_error(), "unknown flag") ? (void *)1 : NULL;
}

Test(binned_large_api, last_error_is_per_thread)
{
    ca_last_error_clear();
    pthread_t t;
    void *seen = NULL;
    cr_assert_eq(pthread_create(&t, NULL, create_bad_on_another_thread, NULL), 0);
    cr_assert_eq(pthread_join(t, &seen), 0);
    cr_assert_eq(other_rc, EINVAL);
    cr_assert_not_null(seen, "the failing thread has its message");
    cr_assert_null(ca_last_error(), "not this one: %s", ca_last_error());
}
