/* SPDX-License-Identifier: MIT */
/*
 * Conformance of the malloc family (C17, POSIX, glibc where they are
 * silent), one assertion per line of the contract in switch.h. Built three
 * ways from this one file:
 *   CONF_CRITERION  Criterion test linked with the override library: the
 *                   program's own malloc is libswitch's;
 *   CONF_PLAIN      plain ca_tt program linked with nothing of ctxalloc, run
 *                   by the tests with LD_PRELOAD=libctxalloc.so
 *                   (CONF_EXPECT_SWITCH=1 makes it check the preload is live);
 *   CONF_API        Criterion test calling ca_switch_* by name (no override),
 *                   so that sanitizer builds check the same semantics.
 * Compiled with -fno-builtin so the compiler does not fold allocator calls.
 */
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(CONF_PLAIN)
#include "ca_tt.h"
#define CONF_TEST(name) CA_TT(name)
#define CHECK(cond, ...) CA_TT_ASSERT(cond, __VA_ARGS__)
#else
#include <criterion/criterion.h>
#define CONF_TEST(name) Test(conformance, name)
#define CHECK(cond, ...) cr_assert(cond, __VA_ARGS__)
#endif

#if defined(CONF_API)
#include <ctxalloc/switch.h>
#define malloc ca_switch_malloc
#define calloc ca_switch_calloc
#define realloc ca_switch_realloc
#define reallocarray ca_switch_reallocarray
#define free ca_switch_free
#define posix_memalign ca_switch_posix_memalign
#define aligned_alloc ca_switch_aligned_alloc
#define memalign ca_switch_memalign
#define valloc ca_switch_valloc
#define pvalloc ca_switch_pvalloc
#define malloc_usable_size ca_switch_usable_size
#define malloc_trim ca_switch_trim
#endif

/* Sizes the compiler must not see (alloc_size warnings, folding). */
static volatile size_t v_max = SIZE_MAX, v_half = SIZE_MAX / 2 + 1, v_two = 2;

static int aligned_to(const void *p, size_t a) { return ((uintptr_t)p & (a - 1)) == 0; }

CONF_TEST(preload_is_live)
{
    const char *want = getenv("CONF_EXPECT_SWITCH");
    if (want && *want == '1')
        CHECK(dlsym(RTLD_DEFAULT, "ca_switch_current") != NULL, "libctxalloc.so is not loaded");
}

CONF_TEST(malloc_basics)
{
    void *a = malloc(0), *b = malloc(0);
    CHECK(a && b && a != b, "malloc(0) must give unique pointers");
    free(a);
    free(b);
    for (size_t n = 1; n <= ((size_t)1 << 22); n = n * 3 + 1) {
        char *p = (char *)malloc(n);
        CHECK(p != NULL, "malloc(%zu)", n);
        CHECK(aligned_to(p, 16), "malloc(%zu) alignment", n);
        CHECK(malloc_usable_size(p) >= n, "usable size of %zu", n);
        memset(p, 0xa5, n);
        free(p);
    }
}

CONF_TEST(malloc_impossible_sizes)
{
    errno = 0;
    CHECK(malloc(v_max) == NULL && errno == ENOMEM, "malloc(SIZE_MAX): errno %d", errno);
    errno = 0;
    CHECK(malloc(v_half) == NULL && errno == ENOMEM, "malloc(SIZE_MAX/2+1): errno %d", errno);
    errno = 0;
    CHECK(malloc(v_max - 4096) == NULL && errno == ENOMEM, "malloc(SIZE_MAX-4096): errno %d", errno);
}

CONF_TEST(free_null_and_errno)
{
    errno = 1234;
    free(NULL);
    CHECK(errno == 1234, "free(NULL) changed errno");
    for (size_t n = 16; n <= ((size_t)1 << 24); n *= 8) {
        void *p = malloc(n);
        CHECK(p != NULL, "malloc");
        errno = 4321;
        free(p);
        CHECK(errno == 4321, "free of %zu bytes changed errno to %d", n, errno);
    }
}

CONF_TEST(calloc_zero_and_overflow)
{
    for (size_t n = 1; n <= ((size_t)1 << 21); n *= 4) {
        unsigned char *p = (unsigned char *)calloc(n, 3);
        CHECK(p != NULL, "calloc");
        for (size_t i = 0; i < n * 3; i++)
            CHECK(p[i] == 0, "calloc byte %zu not zero", i);
        memset(p, 0xff, n * 3);
        free(p);
    }
    void *z = calloc(0, 0);
    CHECK(z != NULL, "calloc(0, 0) gives a unique pointer");
    free(z);
    errno = 0;
    CHECK(calloc(v_max, v_two) == NULL && errno == ENOMEM, "calloc overflow: errno %d", errno);
    errno = 0;
    CHECK(calloc(v_half, v_two) == NULL && errno == ENOMEM, "calloc 2^64 overflow: errno %d", errno);
    errno = 0;
    CHECK(calloc(v_half, 1) == NULL && errno == ENOMEM, "calloc SIZE_MAX/2+1: errno %d", errno);
}

CONF_TEST(realloc_semantics)
{
    char *p = (char *)realloc(NULL, 100);
    CHECK(p != NULL, "realloc(NULL, n) acts as malloc");
    memset(p, 'a', 100);
    p = (char *)realloc(p, 10000);
    CHECK(p != NULL, "grow");
    for (int i = 0; i < 100; i++)
        CHECK(p[i] == 'a', "grow lost byte %d", i);
    memset(p, 'b', 10000);
    char *q = (char *)realloc(p, 10);
    CHECK(q != NULL, "shrink");
    for (int i = 0; i < 10; i++)
        CHECK(q[i] == 'b', "shrink lost byte %d", i);
    errno = 0;
    CHECK(realloc(q, v_max) == NULL && errno == ENOMEM, "realloc(p, SIZE_MAX): errno %d", errno);
    errno = 0;
    CHECK(realloc(q, v_half) == NULL && errno == ENOMEM, "realloc(p, SIZE_MAX/2+1): errno %d", errno);
    for (int i = 0; i < 10; i++)
        CHECK(q[i] == 'b', "failed realloc damaged byte %d", i);
    /* realloc(p, 0) frees p and returns NULL (glibc's choice, documented). */
    errno = 777;
    CHECK(realloc(q, 0) == NULL, "realloc(p, 0) returns NULL");
    CHECK(errno == 777, "realloc(p, 0) leaves errno alone");
    void *r = realloc(NULL, 0);
    CHECK(r != NULL, "realloc(NULL, 0) acts as malloc(0)");
    free(r);
}

CONF_TEST(reallocarray_semantics)
{
    int *p = (int *)reallocarray(NULL, 10, sizeof(int));
    CHECK(p != NULL, "reallocarray(NULL)");
    for (int i = 0; i < 10; i++)
        p[i] = i;
    p = (int *)reallocarray(p, 1000, sizeof(int));
    CHECK(p != NULL && p[9] == 9, "reallocarray grow");
    errno = 0;
    int *volatile keep = p; /* the compiler would take p as dead after the call */
    CHECK(reallocarray(p, v_max, v_two) == NULL && errno == ENOMEM, "reallocarray overflow: errno %d", errno);
    CHECK(keep[9] == 9, "failed reallocarray damaged the block");
    free(keep);
}

CONF_TEST(posix_memalign_semantics)
{
    size_t bad[] = {0, 3, sizeof(void *) / 2, 24, sizeof(void *) + 1, (size_t)1 << 63 | 8};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        void *p = (void *)&bad;
        errno = 55;
        int e = posix_memalign(&p, bad[i], 16);
        CHECK(e == EINVAL, "posix_memalign(align %zu) returned %d", bad[i], e);
        CHECK(p == (void *)&bad, "posix_memalign changed *p on failure");
        CHECK(errno == 55, "posix_memalign set errno");
    }
    for (size_t a = sizeof(void *); a <= ((size_t)1 << 21); a *= 2) {
        void *p = NULL;
        CHECK(posix_memalign(&p, a, 100) == 0 && p && aligned_to(p, a), "posix_memalign(%zu)", a);
        memset(p, 1, 100);
        CHECK(malloc_usable_size(p) >= 100, "usable");
        free(p);
    }
    void *p = (void *)&bad;
    errno = 55;
    CHECK(posix_memalign(&p, 64, v_max) == ENOMEM, "posix_memalign SIZE_MAX gives ENOMEM");
    CHECK(p == (void *)&bad && errno == 55, "failure left *p and errno alone");
    static volatile size_t v_big = (size_t)1 << 40;
    int e = posix_memalign(&p, v_big, 16);
    CHECK(e == 0 || e == ENOMEM, "posix_memalign 2^40: %d", e);
    if (e == 0) {
        CHECK(aligned_to(p, (size_t)1 << 40), "2^40 alignment");
        free(p);
    }
    void *z = NULL;
    CHECK(posix_memalign(&z, 16, 0) == 0 && z, "posix_memalign size 0");
    free(z);
}

CONF_TEST(aligned_alloc_semantics)
{
    /* volatile: constant invalid alignments make clang 14 -O3 crash (alloc_align) */
    static volatile size_t bad[] = {0, 3, 24, 48, (size_t)1 << 63 | 1};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        errno = 0;
        CHECK(aligned_alloc(bad[i], 8) == NULL, "aligned_alloc(%zu, 8) accepted", bad[i]);
        CHECK(errno == EINVAL, "aligned_alloc(%zu): errno %d", bad[i], errno);
    }
    for (size_t a = 1; a <= ((size_t)1 << 20); a *= 2) {
        void *p = aligned_alloc(a, 100); /* size need not be a multiple (C17) */
        CHECK(p && aligned_to(p, a), "aligned_alloc(%zu, 100)", a);
        free(p);
    }
    void *p = aligned_alloc(sizeof(void *) / 2, 8);
    CHECK(p && aligned_to(p, 16), "aligned_alloc(4, 8)");
    free(p);
    errno = 0;
    CHECK(aligned_alloc(64, v_max) == NULL && errno == ENOMEM, "aligned_alloc SIZE_MAX: errno %d", errno);
    errno = 0;
    static volatile size_t v_2p40 = (size_t)1 << 40;
    p = aligned_alloc(v_2p40, 16);
    CHECK(p ? aligned_to(p, (size_t)1 << 40) : errno == ENOMEM, "aligned_alloc(2^40): errno %d", errno);
    free(p);
}

CONF_TEST(memalign_valloc_pvalloc)
{
    static volatile size_t v_three = 3, v_zero = 0;
    void *p = memalign(v_three, 10); /* glibc: rounded up to a power of two */
    CHECK(p && aligned_to(p, 4), "memalign(3)");
    free(p);
    p = memalign(v_zero, 10);
    CHECK(p != NULL, "memalign(0)");
    free(p);
    p = memalign(4096, 10);
    CHECK(p && aligned_to(p, 4096), "memalign(4096)");
    free(p);
    errno = 0;
    CHECK(memalign(v_half + 1, 8) == NULL && errno == EINVAL, "memalign beyond SIZE_MAX/2: errno %d", errno);
    errno = 0;
    CHECK(memalign(64, v_max) == NULL && errno == ENOMEM, "memalign SIZE_MAX: errno %d", errno);
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    p = valloc(10);
    CHECK(p && aligned_to(p, page), "valloc");
    free(p);
    p = pvalloc(0);
    CHECK(p && aligned_to(p, page) && malloc_usable_size(p) >= page, "pvalloc(0) gives a page");
    free(p);
    p = pvalloc(page + 1);
    CHECK(p && malloc_usable_size(p) >= 2 * page, "pvalloc rounds up to pages");
    free(p);
    errno = 0;
    CHECK(pvalloc(v_max) == NULL && errno == ENOMEM, "pvalloc SIZE_MAX: errno %d", errno);
    errno = 0;
    CHECK(valloc(v_max) == NULL && errno == ENOMEM, "valloc SIZE_MAX: errno %d", errno);
}

CONF_TEST(usable_size)
{
    CHECK(malloc_usable_size(NULL) == 0, "malloc_usable_size(NULL)");
    for (size_t n = 0; n < 5000; n += 37) {
        char *p = (char *)malloc(n);
        size_t u = malloc_usable_size(p);
        CHECK(u >= n, "usable %zu < %zu", u, n);
        memset(p, 3, u); /* the whole usable size is writable */
        free(p);
    }
}

CONF_TEST(many_blocks_survive)
{
    enum { N = 3000 };
    static unsigned char *v[N];
    for (int i = 0; i < N; i++) {
        size_t n = (size_t)(i * 7919 % 2000) + 1;
        v[i] = (unsigned char *)malloc(n);
        CHECK(v[i] != NULL, "malloc");
        memset(v[i], i & 0xff, n);
    }
    for (int i = 0; i < N; i += 2) {
        size_t n = (size_t)(i * 7919 % 2000) + 1;
        v[i] = (unsigned char *)realloc(v[i], n * 2);
        CHECK(v[i] != NULL, "realloc");
        for (size_t k = 0; k < n; k++)
            CHECK(v[i][k] == (i & 0xff), "block %d byte %zu", i, k);
    }
    for (int i = 0; i < N; i++)
        free(v[i]);
}

/* malloc_trim gives freed memory back: after freeing 32 MiB of small blocks
 * it reports that memory was released. */
CONF_TEST(malloc_trim_releases_freed_memory)
{
    enum { N = 8192 };
    static void *v[N];
    for (int i = 0; i < N; i++) {
        v[i] = malloc(4000);
        CHECK(v[i] != NULL, "malloc");
        memset(v[i], 1, 4000);
    }
    for (int i = 0; i < N; i++)
        free(v[i]);
#if defined(SW_BASE_BINNED) && !SW_BASE_BINNED
    /* The glibc and jemalloc bases: ca_switch_trim does nothing, returns 0
     * (glibc's own malloc_trim is the name the override replaces). */
    CHECK(malloc_trim(0) == 0, "malloc_trim claims memory went back over a base it cannot trim");
#else
    CHECK(malloc_trim(0) == 1, "malloc_trim released nothing");
#endif
}

#if defined(CONF_CRITERION)
#include <ctxalloc/switch.h>

/* A context allocator that itself calls malloc: each block is a page of its
 * own taken with posix_memalign (a page of the base allocator), reported to
 * the adoption's listener, which overlays it. Its nested malloc is served by
 * the base allocator, not by itself (which would recurse without end), and
 * free(p) reaches it, not the base that owns the page underneath. */
typedef struct page_alloc {
    ca_allocator base;
    ca_listener *l;
    int live;
} page_alloc;

static void *pa_alloc(ca_allocator *a, size_t size, size_t align, size_t *usable)
{
    page_alloc *pa = (page_alloc *)a;
    void *page = NULL;
    if (size > 4096 - 64 || align > 64 || posix_memalign(&page, 4096, 4096) != 0) {
        errno = ENOMEM;
        return NULL;
    }
    int e = pa->l ? pa->l->added(pa->l, page, 4096) : 0;
    if (e) {
        free(page);
        errno = e;
        return NULL;
    }
    pa->live++;
    if (usable)
        *usable = 4096 - 64;
    return (char *)page + 64;
}

static void pa_free_unsized(ca_allocator *a, void *p)
{
    page_alloc *pa = (page_alloc *)a;
    void *page = (char *)p - 64;
    if (pa->l)
        pa->l->removed(pa->l, page, 4096);
    pa->live--;
    free(page); /* the page goes back to the base */
}

static void pa_free(ca_allocator *a, void *p, size_t size, size_t align)
{
    (void)size, (void)align;
    pa_free_unsized(a, p);
}

static size_t pa_usable(const ca_allocator *a, const void *p)
{
    (void)a, (void)p;
    return 4096 - 64;
}

static int pa_listen(ca_allocator *a, ca_listener *l)
{
    page_alloc *pa = (page_alloc *)a;
    if (l && pa->l)
        return EBUSY;
    pa->l = l; /* attach and detach with no block live */
    return 0;
}

static const ca_allocator_ops pa_ops = {
    .name = "page-alloc", .caps = CA_CAP_UNSIZED | CA_CAP_THREAD_SAFE, .alloc = pa_alloc, .free = pa_free,
    .free_unsized = pa_free_unsized, .usable_size = pa_usable, .listen = pa_listen,
};

CONF_TEST(allocator_that_calls_malloc)
{
    static page_alloc pa = {{&pa_ops}, NULL, 0};
    ca_switch_adopted ad;
    CHECK(ca_switch_adopt(&ad, &pa.base) == 0, "adopt: %s", ca_last_error());
    ca_allocator *prev = ca_switch_context_set(&ad.base);
    char *p = (char *)malloc(64);
    char *q = (char *)realloc(NULL, 100);
    ca_switch_context_set(prev);
    CHECK(p && q, "allocation through an allocator that calls malloc");
    CHECK(pa.live == 2, "both blocks from the selected allocator");
    CHECK(ca_switch_owner(p) == &ad.base && ca_switch_owner(q) == &ad.base, "overlaid pages route to it");
    memset(p, 1, 64);
    memset(q, 2, 100);
    free(p);
    free(q);
    CHECK(pa.live == 0, "free reached the allocator");
    CHECK(ca_switch_unadopt(&ad) == 0, "unadopt: %s", ca_last_error());
}
#endif
