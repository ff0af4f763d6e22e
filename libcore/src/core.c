/* SPDX-License-Identifier: MIT */
/*
 * Out-of-line parts of the core interface: the page size, the check failure
 * report, and the generic helpers behind the inline wrappers of core.h
 * (zeroed allocation, unsized free, move-based resize, stats dispatch, the
 * source request validator). Read core.h first: it holds the contracts.
 *
 * Concurrency: everything here is thread-safe. The page size is computed
 * once per process; racing first calls compute the same value.
 */
#include <ctxalloc/core.h>

#include <stdlib.h>
#include <sys/auxv.h>
#include <unistd.h>

size_t ca_page_size(void)
{
    static size_t cached;
    size_t v = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (ca_likely(v))
        return v;
    /* The kernel's AT_PAGESZ: sysconf would run (and page in) more of libc's
     * code at start-up for the same number. */
    long r = (long)getauxval(AT_PAGESZ);
    if (r <= 0)
        r = sysconf(_SC_PAGESIZE);
    v = (r > 0 && ca_is_pow2((size_t)r) && (size_t)r >= CA_PAGE_SIZE_MIN) ? (size_t)r : CA_PAGE_SIZE_MIN;
    __atomic_store_n(&cached, v, __ATOMIC_RELAXED);
    return v;
}

void ca_check_report(const char *component, const void *addr, const char *what, const char *file, int line)
{
    char buf[512];
    ca_line l;
    ca_line_init(&l, buf, sizeof buf);
    ca_line_str(&l, "ctxalloc: ");
    ca_line_str(&l, component ? component : "?");
    ca_line_str(&l, ": ");
    ca_line_str(&l, what ? what : "check failed");
    ca_line_str(&l, " (address ");
    ca_line_addr(&l, addr);
    ca_line_str(&l, ") at ");
    ca_line_str(&l, file ? file : "?");
    ca_line_char(&l, ':');
    ca_line_u64(&l, line > 0 ? (uint64_t)line : 0, 10);
    (void)ca_line_write(&l, 2);
}

/* ------------------------------------------------------------------------
 * Environment variables: strict parsing, one warning line, the default
 * ------------------------------------------------------------------------ */

static void env_warning(const char *name, const char *value, const char *expected, const char *def)
{
    char buf[384];
    ca_line l;
    ca_line_init(&l, buf, sizeof buf);
    ca_line_str(&l, "ctxalloc: warning: ");
    ca_line_str(&l, name);
    ca_line_char(&l, '=');
    ca_line_str(&l, value);
    ca_line_str(&l, " is invalid (expected ");
    ca_line_str(&l, expected);
    ca_line_str(&l, "): using ");
    ca_line_str(&l, def);
    (void)ca_line_write(&l, 2);
}

int ca_env_uint(const char *name, uint64_t lo, uint64_t hi, uint64_t def, uint64_t *out)
{
    const char *v = getenv(name);
    *out = def;
    if (!v || !*v)
        return 0;
    uint64_t x = 0;
    const char *c = v;
    bool ok = true;
    for (; *c; c++) {
        if (*c < '0' || *c > '9' || x > (UINT64_MAX - 9) / 10) {
            ok = false;
            break;
        }
        x = x * 10 + (uint64_t)(*c - '0');
    }
    if (ok && x >= lo && x <= hi) {
        *out = x;
        return 0;
    }
    char expected[64], dflt[24];
    ca_line e;
    ca_line_init(&e, expected, sizeof expected);
    ca_line_str(&e, "a whole number from ");
    ca_line_u64(&e, lo, 10);
    ca_line_str(&e, " to ");
    ca_line_u64(&e, hi, 10);
    (void)ca_fmt_u64(dflt, sizeof dflt, def, 10);
    env_warning(name, v, expected, dflt);
    return EINVAL;
}

int ca_env_word(const char *name, const char *const *words, int def, int *out)
{
    const char *v = getenv(name);
    *out = def;
    if (!v || !*v)
        return 0;
    char expected[160];
    ca_line e;
    ca_line_init(&e, expected, sizeof expected);
    for (int i = 0; words[i]; i++) {
        if (strcmp(v, words[i]) == 0) {
            *out = i;
            return 0;
        }
        ca_line_str(&e, i ? ", " : "one of ");
        ca_line_str(&e, words[i]);
    }
    env_warning(name, v, expected, def >= 0 ? words[def] : "unset");
    return EINVAL;
}

void ca_check_fail(const char *component, const void *addr, const char *what, const char *file, int line)
{
    ca_check_report(component, addr, what, file, line);
    abort();
}

void *ca_alloc_zeroed(ca_allocator *a, size_t n, size_t size, size_t align)
{
    size_t total;
    if (ca_mul_overflows(n, size, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    void *p = a->ops->alloc(a, total, align, NULL);
    if (p)
        memset(p, 0, total);
    return p;
}

void ca_free_unsized(ca_allocator *a, void *p)
{
    if (!p)
        return;
    CA_ASSERT(a->ops->free_unsized, "core", p, "unsized free on an allocator without CA_CAP_UNSIZED");
    a->ops->free_unsized(a, p);
}

void *ca_resize_generic(ca_allocator *a, void *p, size_t old_size, size_t new_size, size_t align, unsigned flags,
                        size_t *usable)
{
    if (!ca_is_pow2(align)) {
        errno = EINVAL;
        return NULL;
    }
    if (!p) {
        if (flags & CA_RESIZE_IN_PLACE) {
            errno = ENOMEM;
            return NULL;
        }
        return a->ops->alloc(a, new_size, align, usable);
    }
    size_t have = a->ops->usable_size ? a->ops->usable_size(a, p) : old_size;
    if (new_size <= have) {
        /* The block already holds new_size bytes; it keeps its real extent,
         * so a later free with new_size is within [size, usable]. */
        if (usable)
            *usable = have;
        return p;
    }
    if (flags & CA_RESIZE_IN_PLACE) {
        errno = ENOMEM;
        return NULL;
    }
    void *q = a->ops->alloc(a, new_size, align, usable);
    if (!q)
        return NULL; /* errno set by alloc; p untouched */
    memcpy(q, p, old_size < new_size ? old_size : new_size);
    a->ops->free(a, p, old_size, align);
    return q;
}

int ca_stats_get(const ca_allocator *a, ca_stats *out)
{
    if (!a->ops->stats) {
        ca_stats_init(out, a->ops->name);
        return ENOTSUP;
    }
    return a->ops->stats(a, out);
}

int ca_source_stats(const ca_source *s, ca_stats *out)
{
    if (!s->ops->stats) {
        ca_stats_init(out, s->ops->name);
        return ENOTSUP;
    }
    return s->ops->stats(s, out);
}

int ca_source_check_request(const ca_source *s, size_t size, size_t align)
{
    size_t g = s->granule;
    if (size == 0 || !ca_is_pow2(align) || (size & (g - 1)) != 0)
        return EINVAL;
    return 0;
}

const char *ca_version(void) { return CA_VERSION_STRING; }
