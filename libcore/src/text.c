/* SPDX-License-Identifier: MIT */
/*
 * The suite's one number formatter and line builder (contracts in core.h,
 * section "Text without allocating"), and the write loop every message and
 * report goes through.
 *
 * Concurrency: no shared state; every function works on the caller's
 * buffer. Nothing here allocates, takes a lock or touches stdio, so all of
 * it may run in a signal handler or inside malloc.
 */
#include <ctxalloc/core.h>

#include <unistd.h>

size_t ca_fmt_u64(char *buf, size_t cap, uint64_t v, unsigned base)
{
    if (base < 2 || base > 16)
        base = 10;
    char tmp[64]; /* base 2: at most 64 digits */
    size_t n = 0;
    do {
        tmp[n++] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v);
    /* The most significant digits first, as many as fit before the NUL. */
    size_t keep = cap ? (n < cap - 1 ? n : cap - 1) : 0;
    for (size_t i = 0; i < keep; i++)
        buf[i] = tmp[n - 1 - i];
    if (cap)
        buf[keep] = '\0';
    return n;
}

/* Stores c when there is room before the NUL; counts it either way. */
static void line_put(ca_line *l, char c)
{
    if (l->len + 1 < l->cap) {
        l->buf[l->len] = c;
        l->buf[l->len + 1] = '\0';
    }
    l->len++;
}

void ca_line_str(ca_line *l, const char *s)
{
    for (; s && *s; s++)
        line_put(l, *s);
}

void ca_line_char(ca_line *l, char c) { line_put(l, c); }

void ca_line_u64(ca_line *l, uint64_t v, unsigned base)
{
    char d[65];
    size_t n = ca_fmt_u64(d, sizeof d, v, base);
    for (size_t i = 0; i < n; i++)
        line_put(l, d[i]);
}

void ca_line_addr(ca_line *l, const void *p)
{
    ca_line_str(l, "0x");
    ca_line_u64(l, (uintptr_t)p, 16);
}

int ca_line_write(ca_line *l, int fd)
{
    if (l->cap == 0)
        return ca_write_all(fd, "\n", 1);
    /* The newline takes the NUL's place: a full line still ends with it. */
    size_t n = l->len < l->cap - 1 ? l->len : l->cap - 1;
    l->buf[n] = '\n';
    int e = ca_write_all(fd, l->buf, n + 1);
    l->buf[n] = '\0';
    return e;
}

int ca_write_all(int fd, const void *p, size_t n)
{
    const char *c = (const char *)p;
    int saved = errno, e = 0;
    while (n) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            e = w < 0 ? errno : EIO;
            break;
        }
        c += w;
        n -= (size_t)w;
    }
    errno = saved;
    return e;
}
