/* SPDX-License-Identifier: MIT */
/*
 * The suite's one number formatter and line builder (contracts in core.h,
 * section "Text without allocating"), the write loop every message and
 * report goes through, and each thread's last error message (section
 * "Last error").
 *
 * Concurrency: no shared state; every function works on the caller's
 * buffer or the calling thread's own. Nothing here allocates, takes a lock
 * or touches stdio, so all of it may run in a signal handler or inside
 * malloc.
 */
#include <ctxalloc/core.h>

#include <string.h>
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

void ca_line_errno(ca_line *l, int e)
{
    const char *d = strerrordesc_np(e);
    if (d) {
        ca_line_str(l, d);
        return;
    }
    ca_line_str(l, "errno ");
    if (e < 0) {
        ca_line_char(l, '-');
        ca_line_u64(l, 0 - (uint64_t)(int64_t)e, 10); /* the magnitude, INT_MIN included */
    } else {
        ca_line_u64(l, (uint64_t)e, 10);
    }
}

/* ------------------------------------------------------------------------
 * Last error: one message per thread (core.h, "Last error")
 *
 * The thread's buffer and the line over it, in static TLS (initial-exec:
 * no allocation on first use, also inside malloc). `set` tells a message
 * from none; the line is re-pointed at the buffer on every begin, so a
 * thread's first message needs no set-up.
 * ------------------------------------------------------------------------ */

static __thread char last_error_buf[CA_LAST_ERROR_MAX] __attribute__((tls_model("initial-exec")));
static __thread ca_line last_error_line __attribute__((tls_model("initial-exec")));
static __thread bool last_error_set __attribute__((tls_model("initial-exec")));

const char *ca_last_error(void) { return last_error_set ? last_error_buf : NULL; }

void ca_last_error_clear(void)
{
    last_error_set = false;
    last_error_buf[0] = '\0';
}

ca_line *ca_core__last_error_begin(const char *component)
{
    ca_line *l = &last_error_line;
    ca_line_init(l, last_error_buf, sizeof last_error_buf);
    if (component) {
        ca_line_str(l, component);
        ca_line_str(l, ": ");
    }
    last_error_set = true;
    return l;
}

ca_line *ca_core__last_error_path(const char *component, const char *what, const char *path)
{
    ca_line *l = ca_core__last_error_begin(component);
    ca_line_str(l, what);
    if (path) {
        ca_line_str(l, " '");
        ca_line_str(l, path);
        ca_line_char(l, '\'');
    }
    ca_line_str(l, ": ");
    return l;
}

int ca_core__last_error_set(const char *component, const char *what, int err)
{
    ca_line_str(ca_core__last_error_begin(component), what);
    return err;
}
