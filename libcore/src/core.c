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
#include <unistd.h>

size_t ca_page_size(void)
{
    static size_t cached;
    size_t v = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (ca_likely(v))
        return v;
    long r = sysconf(_SC_PAGESIZE);
    v = (r > 0 && ca_is_pow2((size_t)r) && (size_t)r >= CA_PAGE_SIZE_MIN) ? (size_t)r : CA_PAGE_SIZE_MIN;
    __atomic_store_n(&cached, v, __ATOMIC_RELAXED);
    return v;
}

/* Appends s to buf at *len without overflowing cap - 1 bytes. */
static void put_str(char *buf, size_t cap, size_t *len, const char *s)
{
    while (*s && *len + 1 < cap)
        buf[(*len)++] = *s++;
}

static void put_hex(char *buf, size_t cap, size_t *len, uintptr_t v)
{
    char tmp[2 + 2 * sizeof v + 1];
    size_t n = sizeof tmp - 1;
    tmp[n] = '\0';
    do {
        tmp[--n] = "0123456789abcdef"[v & 15];
        v >>= 4;
    } while (v);
    tmp[--n] = 'x';
    tmp[--n] = '0';
    put_str(buf, cap, len, tmp + n);
}

static void put_dec(char *buf, size_t cap, size_t *len, unsigned long v)
{
    char tmp[24];
    size_t n = sizeof tmp - 1;
    tmp[n] = '\0';
    do {
        tmp[--n] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    put_str(buf, cap, len, tmp + n);
}

void ca_check_report(const char *component, const void *addr, const char *what, const char *file, int line)
{
    char buf[512];
    size_t len = 0;
    put_str(buf, sizeof buf, &len, "ctxalloc: ");
    put_str(buf, sizeof buf, &len, component ? component : "?");
    put_str(buf, sizeof buf, &len, ": ");
    put_str(buf, sizeof buf, &len, what ? what : "check failed");
    put_str(buf, sizeof buf, &len, " (address ");
    put_hex(buf, sizeof buf, &len, (uintptr_t)addr);
    put_str(buf, sizeof buf, &len, ") at ");
    put_str(buf, sizeof buf, &len, file ? file : "?");
    put_str(buf, sizeof buf, &len, ":");
    put_dec(buf, sizeof buf, &len, line > 0 ? (unsigned long)line : 0);
    if (len + 1 >= sizeof buf)
        len = sizeof buf - 2;
    buf[len++] = '\n';
    for (size_t off = 0; off < len;) {
        ssize_t w = write(2, buf + off, len - off);
        if (w <= 0) {
            if (w < 0 && errno == EINTR)
                continue;
            break;
        }
        off += (size_t)w;
    }
}

/* ------------------------------------------------------------------------
 * Environment variables: strict parsing, one warning line, the default
 * ------------------------------------------------------------------------ */

static void write_line(char *buf, size_t cap, size_t len)
{
    if (len + 1 >= cap)
        len = cap - 2;
    buf[len++] = '\n';
    for (size_t off = 0; off < len;) {
        ssize_t w = write(2, buf + off, len - off);
        if (w <= 0) {
            if (w < 0 && errno == EINTR)
                continue;
            break;
        }
        off += (size_t)w;
    }
}

static void env_warning(const char *name, const char *value, const char *expected, const char *def)
{
    char buf[384];
    size_t len = 0;
    put_str(buf, sizeof buf, &len, "ctxalloc: warning: ");
    put_str(buf, sizeof buf, &len, name);
    put_str(buf, sizeof buf, &len, "=");
    put_str(buf, sizeof buf, &len, value);
    put_str(buf, sizeof buf, &len, " is invalid (expected ");
    put_str(buf, sizeof buf, &len, expected);
    put_str(buf, sizeof buf, &len, "): using ");
    put_str(buf, sizeof buf, &len, def);
    write_line(buf, sizeof buf, len);
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
    size_t len = 0, dl = 0;
    put_str(expected, sizeof expected, &len, "a whole number from ");
    put_dec(expected, sizeof expected, &len, (unsigned long)lo);
    put_str(expected, sizeof expected, &len, " to ");
    put_dec(expected, sizeof expected, &len, (unsigned long)hi);
    expected[len] = '\0';
    put_dec(dflt, sizeof dflt, &dl, (unsigned long)def);
    dflt[dl] = '\0';
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
    size_t len = 0;
    for (int i = 0; words[i]; i++) {
        if (strcmp(v, words[i]) == 0) {
            *out = i;
            return 0;
        }
        put_str(expected, sizeof expected, &len, i ? ", " : "one of ");
        put_str(expected, sizeof expected, &len, words[i]);
    }
    expected[len] = '\0';
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

void *ca_resize_generic(ca_allocator *a, void *p, size_t old_size, size_t new_size, size_t align,
                        unsigned flags, size_t *usable)
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
