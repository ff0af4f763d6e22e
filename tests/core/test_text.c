/* SPDX-License-Identifier: MIT */
/* The formatter and line builder every library's messages use (core.h,
 * "Text without allocating"): edge values, bases, truncation, the line. */
#include <criterion/criterion.h>
#include <ctxalloc/core.h>
#include <stdio.h>
#include <unistd.h>

Test(text, zero_in_every_base)
{
    for (unsigned base = 2; base <= 16; base++) {
        char b[4] = "xxx";
        cr_assert_eq(ca_fmt_u64(b, sizeof b, 0, base), 1, "base %u", base);
        cr_assert_str_eq(b, "0", "base %u", base);
    }
}

Test(text, uint64_max)
{
    char b[72];
    cr_assert_eq(ca_fmt_u64(b, sizeof b, UINT64_MAX, 10), 20);
    cr_assert_str_eq(b, "18446744073709551615");
    cr_assert_eq(ca_fmt_u64(b, sizeof b, UINT64_MAX, 16), 16);
    cr_assert_str_eq(b, "ffffffffffffffff");
    cr_assert_eq(ca_fmt_u64(b, sizeof b, UINT64_MAX, 2), 64);
    cr_assert_eq(strspn(b, "1"), 64);
    cr_assert_eq(b[64], '\0');
}

Test(text, agrees_with_printf)
{
    static const uint64_t v[] = {1, 9, 10, 99, 100, 4095, 4096, 65535, (uint64_t)1 << 32, 1000000000000000000ull,
                                 10000000000000000000ull, UINT64_MAX - 1};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        char a[32], want[32];
        snprintf(want, sizeof want, "%llu", (unsigned long long)v[i]);
        cr_assert_eq(ca_fmt_u64(a, sizeof a, v[i], 10), strlen(want));
        cr_assert_str_eq(a, want);
        snprintf(want, sizeof want, "%llx", (unsigned long long)v[i]);
        cr_assert_eq(ca_fmt_u64(a, sizeof a, v[i], 16), strlen(want));
        cr_assert_str_eq(a, want);
        snprintf(want, sizeof want, "%llo", (unsigned long long)v[i]);
        cr_assert_eq(ca_fmt_u64(a, sizeof a, v[i], 8), strlen(want));
        cr_assert_str_eq(a, want);
    }
}

Test(text, truncation_keeps_the_leading_digits_and_the_nul)
{
    char b[8];
    memset(b, 'x', sizeof b);
    /* Like snprintf: the full length comes back, cap - 1 digits are stored. */
    cr_assert_eq(ca_fmt_u64(b, 5, 1234567, 10), 7);
    cr_assert_str_eq(b, "1234");
    cr_assert_eq(b[5], 'x', "nothing written past cap");
    cr_assert_eq(ca_fmt_u64(b, 1, 42, 10), 2);
    cr_assert_eq(b[0], '\0');
    b[0] = 'y';
    cr_assert_eq(ca_fmt_u64(b, 0, 42, 10), 2);
    cr_assert_eq(b[0], 'y', "cap 0 writes nothing");
    cr_assert_eq(ca_fmt_u64(b, 3, 99, 10), 2);
    cr_assert_str_eq(b, "99", "exactly fitting is not truncated");
}

Test(text, unsupported_base_is_decimal)
{
    char b[24];
    cr_assert_eq(ca_fmt_u64(b, sizeof b, 255, 0), 3);
    cr_assert_str_eq(b, "255");
    cr_assert_eq(ca_fmt_u64(b, sizeof b, 255, 17), 3);
    cr_assert_str_eq(b, "255");
}

Test(text, line_builds_and_counts_past_its_buffer)
{
    char b[16];
    ca_line l;
    ca_line_init(&l, b, sizeof b);
    cr_assert_str_eq(b, "");
    ca_line_str(&l, "size ");
    ca_line_u64(&l, 4096, 10);
    ca_line_char(&l, ' ');
    ca_line_str(&l, NULL);
    cr_assert_str_eq(b, "size 4096 ");
    cr_assert_eq(l.len, 10);
    ca_line_addr(&l, (const void *)(uintptr_t)0xdeadbeef);
    cr_assert_str_eq(b, "size 4096 0xdea", "cut at cap - 1");
    cr_assert_eq(l.len, 20, "len counts what did not fit");
}

Test(text, line_write_ends_with_a_newline_even_when_cut)
{
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    char b[8], got[32];
    ca_line l;
    ca_line_init(&l, b, sizeof b);
    ca_line_str(&l, "abc");
    cr_assert_eq(ca_line_write(&l, fds[1]), 0);
    cr_assert_str_eq(b, "abc", "the buffer is restored");
    ca_line_str(&l, "defghijkl");
    cr_assert_eq(ca_line_write(&l, fds[1]), 0);
    close(fds[1]);
    ssize_t n = read(fds[0], got, sizeof got);
    close(fds[0]);
    cr_assert_eq(n, 4 + 8);
    cr_assert_eq(memcmp(got, "abc\nabcdefg\n", 12), 0);
}

Test(text, write_all_reports_the_error)
{
    errno = 1234;
    cr_assert_eq(ca_write_all(-1, "x", 1), EBADF);
    cr_assert_eq(errno, 1234, "errno is kept");
    cr_assert_eq(ca_write_all(-1, "", 0), 0, "nothing to write");
}
