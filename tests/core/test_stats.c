/* SPDX-License-Identifier: MIT */
/* ca_stats: counters, merge, text and JSON writers; the JSON is parsed back. */
#include <criterion/criterion.h>
#include <ctxalloc/core.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* A small strict JSON reader for one flat object whose values are unsigned
 * integers, strings, or one nested object of integers ("counters"). */
typedef struct jp {
    const char *s;
    bool ok;
} jp;

static void ws(jp *p)
{
    while (*p->s == ' ' || *p->s == '\n' || *p->s == '\t' || *p->s == '\r')
        p->s++;
}

static bool expect(jp *p, char c)
{
    ws(p);
    if (*p->s != c)
        return p->ok = false;
    p->s++;
    return true;
}

/* Reads a string into out (unescaping \" \\ \u00XX). */
static void str(jp *p, char *out, size_t cap)
{
    size_t n = 0;
    if (!expect(p, '"'))
        return;
    while (*p->s && *p->s != '"') {
        char c = *p->s++;
        if (c == '\\') {
            c = *p->s++;
            if (c == 'u') {
                unsigned v = 0;
                for (int i = 0; i < 4; i++) {
                    char h = *p->s++;
                    v = v * 16 + (unsigned)(h <= '9' ? h - '0' : h - 'a' + 10);
                }
                c = (char)v;
            } else if (c != '"' && c != '\\') {
                p->ok = false;
                return;
            }
        } else if ((unsigned char)c < 0x20) {
            p->ok = false; /* raw control characters are invalid JSON */
            return;
        }
        if (n + 1 < cap)
            out[n++] = c;
    }
    out[n] = '\0';
    if (*p->s != '"')
        p->ok = false;
    else
        p->s++;
}

static uint64_t num(jp *p)
{
    ws(p);
    if (*p->s < '0' || *p->s > '9') {
        p->ok = false;
        return 0;
    }
    char *end;
    uint64_t v = strtoull(p->s, &end, 10);
    p->s = end;
    return v;
}

/* Parse {"k":v,...}; calls back for each key. */
typedef struct parsed {
    char name[64];
    uint64_t fields[7];
    char cnames[CA_STATS_MAX_COUNTERS][64];
    uint64_t cvals[CA_STATS_MAX_COUNTERS];
    unsigned nc;
} parsed;

static const char *field_names[7] = {"bytes_in_use", "bytes_reserved", "bytes_committed", "peak_in_use",
                                     "allocs", "frees", "failures"};

static parsed parse(const char *json, bool *ok)
{
    parsed r;
    memset(&r, 0, sizeof r);
    jp p = {json, true};
    expect(&p, '{');
    bool first = true;
    while (p.ok) {
        ws(&p);
        if (*p.s == '}') {
            p.s++;
            break;
        }
        if (!first)
            expect(&p, ',');
        first = false;
        char key[64];
        str(&p, key, sizeof key);
        expect(&p, ':');
        if (strcmp(key, "name") == 0) {
            str(&p, r.name, sizeof r.name);
        } else if (strcmp(key, "counters") == 0) {
            expect(&p, '{');
            ws(&p);
            while (p.ok && *p.s != '}') {
                if (r.nc)
                    expect(&p, ',');
                str(&p, r.cnames[r.nc], sizeof r.cnames[0]);
                expect(&p, ':');
                r.cvals[r.nc++] = num(&p);
                ws(&p);
            }
            expect(&p, '}');
        } else {
            int idx = -1;
            for (int i = 0; i < 7; i++)
                if (strcmp(key, field_names[i]) == 0)
                    idx = i;
            if (idx < 0)
                p.ok = false;
            else
                r.fields[idx] = num(&p);
        }
    }
    ws(&p);
    *ok = p.ok && *p.s == '\0';
    return r;
}

static ca_stats sample(void)
{
    ca_stats s;
    ca_stats_init(&s, "tes\"t\\kind\n");
    s.bytes_in_use = 1;
    s.bytes_reserved = 22;
    s.bytes_committed = 333;
    s.peak_in_use = 4444;
    s.allocs = UINT64_MAX;
    s.frees = 0;
    s.failures = 7;
    ca_stats_set_counter(&s, "chunks", 5);
    ca_stats_set_counter(&s, "huge_page_size", 2097152);
    return s;
}

Test(stats, json_round_trip)
{
    ca_stats s = sample();
    char buf[2048];
    size_t n = ca_stats_format_buf(&s, CA_STATS_JSON, buf, sizeof buf);
    cr_assert_lt(n, sizeof buf);
    cr_assert_eq(strlen(buf), n);
    bool ok;
    parsed r = parse(buf, &ok);
    cr_assert(ok, "invalid JSON: %s", buf);
    cr_assert_str_eq(r.name, "tes\"t\\kind\n");
    uint64_t expect_f[7] = {1, 22, 333, 4444, UINT64_MAX, 0, 7};
    for (int i = 0; i < 7; i++)
        cr_assert_eq(r.fields[i], expect_f[i], "%s", field_names[i]);
    cr_assert_eq(r.nc, 2);
    cr_assert_str_eq(r.cnames[0], "chunks");
    cr_assert_eq(r.cvals[0], 5);
    cr_assert_str_eq(r.cnames[1], "huge_page_size");
    cr_assert_eq(r.cvals[1], 2097152);
}

Test(stats, truncation_like_snprintf)
{
    ca_stats s = sample();
    char full[2048], small[16];
    size_t n = ca_stats_format_buf(&s, CA_STATS_TEXT, full, sizeof full);
    memset(small, 'x', sizeof small);
    size_t m = ca_stats_format_buf(&s, CA_STATS_TEXT, small, sizeof small);
    cr_assert_eq(m, n);
    cr_assert_eq(small[15], '\0');
    cr_assert_eq(strncmp(small, full, 15), 0);
    cr_assert_eq(ca_stats_format_buf(&s, CA_STATS_TEXT, NULL, 0), n);
}

Test(stats, text_lines)
{
    ca_stats s = sample();
    char buf[2048];
    ca_stats_format_buf(&s, CA_STATS_TEXT, buf, sizeof buf);
    cr_assert_not_null(strstr(buf, "bytes_reserved: 22\n"));
    cr_assert_not_null(strstr(buf, "allocs: 18446744073709551615\n"));
    cr_assert_not_null(strstr(buf, "chunks: 5\n"));
}

Test(stats, write_fd_json)
{
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    ca_stats s = sample();
    cr_assert_eq(ca_stats_write_fd(&s, CA_STATS_JSON, fds[1]), 0);
    close(fds[1]);
    char buf[2048];
    ssize_t n = read(fds[0], buf, sizeof buf - 1);
    close(fds[0]);
    cr_assert_gt(n, 0);
    buf[n] = '\0';
    cr_assert_eq(buf[n - 1], '\n');
    buf[n - 1] = '\0';
    bool ok;
    parsed r = parse(buf, &ok);
    cr_assert(ok);
    cr_assert_eq(r.fields[2], 333);
    cr_assert_eq(ca_stats_write_fd(&s, CA_STATS_JSON, -1), EBADF);
}

/* Counter names c0 .. c<n-1> in static storage (ca_stats keeps the pointers). */
static const char *cname(unsigned i)
{
    static char names[2 * CA_STATS_MAX_COUNTERS][8];
    if (!names[i][0]) {
        names[i][0] = 'c';
        if (i >= 10)
            names[i][1] = (char)('0' + i / 10);
        names[i][i >= 10 ? 2 : 1] = (char)('0' + i % 10);
    }
    return names[i];
}

Test(stats, counters_and_merge)
{
    ca_stats a, b;
    ca_stats_init(&a, "a");
    ca_stats_init(&b, "b");
    for (unsigned i = 0; i < CA_STATS_MAX_COUNTERS; i++)
        ca_stats_set_counter(&a, cname(i), i);
    cr_assert_eq(a.ncounters, CA_STATS_MAX_COUNTERS);
    cr_assert_eq(a.counters_dropped, 0);
    ca_stats_set_counter(&a, "c3", 30);
    cr_assert_eq(a.counters_dropped, 0, "overwriting takes no room");
    uint64_t v;
    cr_assert(ca_stats_get_counter(&a, "c3", &v) && v == 30);
    cr_assert_not(ca_stats_get_counter(&a, "nope", &v));
    b.allocs = 5;
    b.peak_in_use = 10;
    ca_stats_set_counter(&b, "c3", 12);
    a.allocs = 1;
    cr_assert_eq(ca_stats_merge(&a, &b), 0);
    cr_assert_eq(a.allocs, 6);
    cr_assert_eq(a.peak_in_use, 10);
    cr_assert(ca_stats_get_counter(&a, "c3", &v) && v == 42);
    cr_assert_eq(a.counters_dropped, 0);
}

/* The capacity: the room for one component and one layer over it. */
Test(stats, capacity)
{
    cr_assert_geq(CA_STATS_MAX_COUNTERS, 24);
    cr_assert_leq(CA_STATS_COMPONENT_COUNTERS, CA_STATS_MAX_COUNTERS);
    ca_stats s;
    cr_assert_eq(sizeof s.counters / sizeof s.counters[0], CA_STATS_MAX_COUNTERS);
    ca_stats_init(&s, "full");
    for (unsigned i = 0; i < CA_STATS_MAX_COUNTERS; i++)
        ca_stats_set_counter(&s, cname(i), 1);
    /* One past the capacity is dropped and counted, not lost silently. */
    ca_stats_set_counter(&s, "overflow", 1);
    ca_stats_set_counter(&s, "overflow2", 1);
    cr_assert_eq(s.ncounters, CA_STATS_MAX_COUNTERS);
    cr_assert_eq(s.counters_dropped, 2);
    uint64_t v;
    cr_assert_not(ca_stats_get_counter(&s, "overflow", &v));
}

/* A list of exactly CA_STATS_COMPONENT_COUNTERS compiles (one more does
 * not: tests/core/stats_too_many.c, a compile-fail test), and
 * CA_STATS_SET sets the listed names. */
#define SIXTEEN(X)                                                                                 \
    X(k0) X(k1) X(k2) X(k3) X(k4) X(k5) X(k6) X(k7) X(k8) X(k9) X(k10) X(k11) X(k12) X(k13) X(k14) X(k15)
#define LAYER(X) X(l0) X(l1) X(l2) X(l3) X(l4) X(l5) X(l6) X(l7)

static void fill_component(ca_stats *s)
{
    CA_STATS_COUNTERS(SIXTEEN);
    cr_assert_eq(ca_ctr__count, CA_STATS_COMPONENT_COUNTERS);
#define SET(n) CA_STATS_SET(s, n, 1);
    SIXTEEN(SET)
#undef SET
}

static void fill_layer(ca_stats *s)
{
    CA_STATS_LAYER_COUNTERS(LAYER);
#define SET(n) CA_STATS_SET(s, n, 2);
    LAYER(SET)
#undef SET
    cr_assert_str_eq(CA_STATS_NAME(l7), "l7");
}

Test(stats, declared_lists_fit)
{
    ca_stats s;
    ca_stats_init(&s, "declared");
    fill_component(&s);
    fill_layer(&s);
    cr_assert_eq(s.ncounters, CA_STATS_COMPONENT_COUNTERS + 8);
    cr_assert_eq(s.counters_dropped, 0);
    uint64_t v;
    cr_assert(ca_stats_get_counter(&s, "k15", &v) && v == 1);
    cr_assert(ca_stats_get_counter(&s, "l0", &v) && v == 2);
}

/* Merging rows whose names do not all fit: the count of those dropped is
 * returned, kept in counters_dropped (with what b had dropped itself) and
 * printed by both writers. */
Test(stats, merge_truncation_reported)
{
    ca_stats a, b;
    ca_stats_init(&a, "a");
    ca_stats_init(&b, "b");
    for (unsigned i = 0; i < CA_STATS_MAX_COUNTERS; i++) {
        ca_stats_set_counter(&a, cname(i), 1);
        ca_stats_set_counter(&b, cname(i + CA_STATS_MAX_COUNTERS / 2), 1);
    }
    b.counters_dropped = 3;
    unsigned half = CA_STATS_MAX_COUNTERS / 2;
    cr_assert_eq(ca_stats_merge(&a, &b), half);
    cr_assert_eq(a.counters_dropped, half + 3);
    uint64_t v;
    cr_assert(ca_stats_get_counter(&a, cname(half), &v) && v == 2, "shared names are summed");

    char buf[4096];
    ca_stats_format_buf(&a, CA_STATS_TEXT, buf, sizeof buf);
    cr_assert_not_null(strstr(buf, "\ncounters_dropped: 15\n"), "%s", buf);
    ca_stats_format_buf(&a, CA_STATS_JSON, buf, sizeof buf);
    cr_assert_not_null(strstr(buf, "},\"counters_dropped\":15}"), "%s", buf);

    /* Nothing dropped: the writers print no such line or key. */
    ca_stats c = sample();
    ca_stats_format_buf(&c, CA_STATS_TEXT, buf, sizeof buf);
    cr_assert_null(strstr(buf, "counters_dropped"));
    ca_stats_format_buf(&c, CA_STATS_JSON, buf, sizeof buf);
    cr_assert_null(strstr(buf, "counters_dropped"));
}
