/* SPDX-License-Identifier: MIT */
/*
 * The base allocators: what malloc uses when nothing else is selected, and
 * where pointers without an owner in the ownership map are freed.
 *
 *   libc      glibc's allocator through its __libc_* entry points, which the
 *             override does not replace (so there is no recursion and no
 *             dlsym). Usable sizes are read from glibc's chunk header (the
 *             layout malloc_usable_size itself reads), because glibc exports
 *             no alternative name for malloc_usable_size.
 *   jemalloc  the Debian libjemalloc through its non-standard API (mallocx,
 *             dallocx, sdallocx, rallocx, xallocx, sallocx), whose names do
 *             not clash with the override's malloc.
 *   binned    libbinned's process-wide allocator; it registers its memory
 *             in the ownership map.
 *
 * Read first: ca_switch__base_create at the end. Concurrency: each base is
 * thread-safe because the allocator underneath is; this file keeps no state
 * besides constant ops tables.
 */
#include "switch_private.h"

#include <malloc.h>
#include <stdint.h>

#if !defined(CA_SWITCH_GLOBAL_LIBC) && !defined(CA_SWITCH_GLOBAL_JEMALLOC) && !defined(CA_SWITCH_GLOBAL_BINNED)
#error "build libswitch with one of CA_SWITCH_GLOBAL_{LIBC,JEMALLOC,BINNED} (meson option global)"
#endif

/* ------------------------------------------------------------------------
 * glibc
 * ------------------------------------------------------------------------ */

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define CA_SWITCH_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define CA_SWITCH_SANITIZED 1
#endif
#endif

#ifdef CA_SWITCH_SANITIZED
/* Sanitizer runtimes own malloc (they intercept the __libc_* names too) and
 * such builds never link the override: the standard names reach the
 * sanitizer's allocator, and its malloc_usable_size matches it. */
#include <stdlib.h>
#define libc_malloc(n)      malloc(n)
#define libc_memalign(a, n) memalign(a, n)
#define libc_realloc(p, n)  realloc(p, n)
#define libc_free_fn(p)     free(p)
#define libc_usable(p)      malloc_usable_size((void *)(p))
#else
/* glibc's own entry points, exported by libc.so.6 under these names. */
extern void *__libc_malloc(size_t size);
extern void *__libc_realloc(void *p, size_t size);
extern void *__libc_memalign(size_t align, size_t size);
extern void __libc_free(void *p);
#define libc_malloc(n)      __libc_malloc(n)
#define libc_memalign(a, n) __libc_memalign(a, n)
#define libc_realloc(p, n)  __libc_realloc(p, n)
#define libc_free_fn(p)     __libc_free(p)
#define libc_usable(p)      glibc_usable(p)

/* glibc's chunk header: the word before the block holds the chunk size with
 * flag bits; bit 1 (IS_MMAPPED) chunks carry a 16-byte header, others an
 * 8-byte one (the next chunk's prev_size field is usable). */
static size_t glibc_usable(const void *p)
{
    size_t word = ((const size_t *)p)[-1];
    size_t chunk = word & ~(size_t)7;
    return (word & 2) ? chunk - 2 * sizeof(size_t) : chunk - sizeof(size_t);
}
#endif

static void *libc_alloc(ca_allocator *a, size_t size, size_t align, size_t *usable)
{
    (void)a;
    if (ca_unlikely(!ca_is_pow2(align))) {
        errno = EINVAL;
        return NULL;
    }
    if (ca_unlikely(size > PTRDIFF_MAX)) {
        errno = ENOMEM;
        return NULL;
    }
    void *p = align <= CA_ALIGN_DEFAULT ? libc_malloc(size) : libc_memalign(align, size);
    if (ca_unlikely(!p)) {
        errno = ENOMEM;
        return NULL;
    }
    if (usable)
        *usable = libc_usable(p);
    return p;
}

static void libc_free(ca_allocator *a, void *p, size_t size, size_t align)
{
    (void)a, (void)size, (void)align;
    libc_free_fn(p);
}

static void libc_free_unsized(ca_allocator *a, void *p)
{
    (void)a;
    libc_free_fn(p);
}

static size_t libc_usable_size(const ca_allocator *a, const void *p)
{
    (void)a;
    return p ? libc_usable(p) : 0;
}

static void *libc_resize(ca_allocator *a, void *p, size_t old_size, size_t new_size, size_t align, unsigned flags,
                         size_t *usable)
{
    if (!ca_is_pow2(align)) {
        errno = EINVAL;
        return NULL;
    }
    if (!p || (flags & CA_RESIZE_IN_PLACE) || align > CA_ALIGN_DEFAULT)
        return ca_resize_generic(a, p, old_size, new_size, align, flags, usable);
    if (new_size > PTRDIFF_MAX) {
        errno = ENOMEM;
        return NULL;
    }
    /* realloc(p, 0) would free: keep a 1-byte block instead. */
    void *q = libc_realloc(p, new_size ? new_size : 1);
    if (!q) {
        errno = ENOMEM;
        return NULL;
    }
    if (usable)
        *usable = libc_usable(q);
    return q;
}

/* glibc's own mallinfo under its internal name: the override exports
 * mallinfo and mallinfo2 itself (answering with ca_switch_stats_total), so
 * calling them here would come back into the switch. The fields are int,
 * read as unsigned (exact below 4 GiB). */
extern struct mallinfo __libc_mallinfo(void);

static int libc_stats(const ca_allocator *a, ca_stats *out)
{
    CA_STATS_COUNTERS(CA_SWITCH_LIBC_COUNTERS);
    (void)a;
    ca_stats_init(out, "glibc");
    struct mallinfo mi = __libc_mallinfo();
    size_t uord = (unsigned)mi.uordblks, hblkhd = (unsigned)mi.hblkhd, arena = (unsigned)mi.arena;
    out->bytes_in_use = uord + hblkhd;
    out->bytes_reserved = arena + hblkhd;
    out->bytes_committed = out->bytes_reserved;
    out->peak_in_use = out->bytes_in_use;
    CA_STATS_SET(out, free_bytes_cached, (unsigned)mi.fordblks);
    CA_STATS_SET(out, mmapped_blocks, (unsigned)mi.hblks);
    return 0;
}

static const ca_allocator_ops libc_ops = {
    .name = "glibc",
    .caps = CA_CAP_THREAD_SAFE | CA_CAP_UNSIZED,
    .alloc = libc_alloc,
    .free = libc_free,
    .free_unsized = libc_free_unsized,
    .usable_size = libc_usable_size,
    .resize = libc_resize,
    .stats = libc_stats,
};

static ca_allocator libc_base = {&libc_ops};

ca_allocator *ca_switch__libc_base(void) { return &libc_base; }

/* ------------------------------------------------------------------------
 * jemalloc
 * ------------------------------------------------------------------------ */
#ifdef CA_SWITCH_GLOBAL_JEMALLOC

/* jemalloc's non-standard API (declared here: Debian's jemalloc.h would
 * also declare its malloc, which the override replaces). */
extern void *mallocx(size_t size, int flags);
extern void *rallocx(void *p, size_t size, int flags);
extern size_t xallocx(void *p, size_t size, size_t extra, int flags);
extern size_t sallocx(const void *p, int flags);
extern void dallocx(void *p, int flags);
extern void sdallocx(void *p, size_t size, int flags);
extern int mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen);

/* MALLOCX_ALIGN(a): log2 of the alignment in the low bits. At least 16, as
 * malloc promises (jemalloc's 8-byte class would otherwise serve size 8). */
static int je_flags(size_t align) { return (int)ca_log2(align > CA_ALIGN_DEFAULT ? align : CA_ALIGN_DEFAULT); }

static void *je_alloc(ca_allocator *a, size_t size, size_t align, size_t *usable)
{
    (void)a;
    if (ca_unlikely(!ca_is_pow2(align))) {
        errno = EINVAL;
        return NULL;
    }
    if (ca_unlikely(size > PTRDIFF_MAX)) {
        errno = ENOMEM;
        return NULL;
    }
    /* mallocx(0) is undefined. */
    void *p = mallocx(size ? size : 1, je_flags(align));
    if (ca_unlikely(!p)) {
        errno = ENOMEM;
        return NULL;
    }
    if (usable)
        *usable = sallocx(p, 0);
    return p;
}

static void je_free(ca_allocator *a, void *p, size_t size, size_t align)
{
    (void)a;
    if (p)
        sdallocx(p, size ? size : 1, je_flags(align));
}

static void je_free_unsized(ca_allocator *a, void *p)
{
    (void)a;
    if (p)
        dallocx(p, 0);
}

static size_t je_usable_size(const ca_allocator *a, const void *p)
{
    (void)a;
    return p ? sallocx(p, 0) : 0;
}

static void *je_resize(ca_allocator *a, void *p, size_t old_size, size_t new_size, size_t align, unsigned flags,
                       size_t *usable)
{
    if (!ca_is_pow2(align)) {
        errno = EINVAL;
        return NULL;
    }
    if (!p)
        return je_alloc(a, new_size, align, usable);
    if (new_size > PTRDIFF_MAX) {
        errno = ENOMEM;
        return NULL;
    }
    size_t n = new_size ? new_size : 1;
    (void)old_size;
    if (flags & CA_RESIZE_IN_PLACE) {
        size_t got = xallocx(p, n, 0, je_flags(align));
        if (got < n) {
            errno = ENOMEM;
            return NULL;
        }
        if (usable)
            *usable = got;
        return p;
    }
    void *q = rallocx(p, n, je_flags(align));
    if (!q) {
        errno = ENOMEM;
        return NULL;
    }
    if (usable)
        *usable = sallocx(q, 0);
    return q;
}

static uint64_t je_stat(const char *name)
{
    size_t v = 0, len = sizeof v;
    return mallctl(name, &v, &len, NULL, 0) == 0 ? v : 0;
}

static int je_stats(const ca_allocator *a, ca_stats *out)
{
    CA_STATS_COUNTERS(CA_SWITCH_JEMALLOC_COUNTERS);
    (void)a;
    ca_stats_init(out, "jemalloc");
    uint64_t epoch = 1;
    size_t len = sizeof epoch;
    (void)mallctl("epoch", &epoch, &len, &epoch, len);
    out->bytes_in_use = je_stat("stats.allocated");
    out->bytes_reserved = je_stat("stats.mapped");
    out->bytes_committed = je_stat("stats.resident");
    out->peak_in_use = out->bytes_in_use;
    CA_STATS_SET(out, active, je_stat("stats.active"));
    CA_STATS_SET(out, retained, je_stat("stats.retained"));
    return 0;
}

static const ca_allocator_ops je_ops = {
    .name = "jemalloc",
    .caps = CA_CAP_THREAD_SAFE | CA_CAP_UNSIZED,
    .alloc = je_alloc,
    .free = je_free,
    .free_unsized = je_free_unsized,
    .usable_size = je_usable_size,
    .resize = je_resize,
    .stats = je_stats,
};

static ca_allocator je_base = {&je_ops};

ca_allocator *ca_switch__base_create(bool *registers)
{
    *registers = false;
    return &je_base;
}

#elif defined(CA_SWITCH_GLOBAL_LIBC)

ca_allocator *ca_switch__base_create(bool *registers)
{
    *registers = false;
    return &libc_base;
}

#endif
