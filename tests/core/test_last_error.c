/* SPDX-License-Identifier: MIT */
/* The per-thread last error message (core.h, "Last error"): none at the
 * start, set by a failure, overwritten by the next, cut at its size, kept
 * per thread; and the errno text of the line builder. */
#include <criterion/criterion.h>
#include <ctxalloc/core.h>
#include <pthread.h>

Test(last_error, none_until_a_failure_sets_one)
{
    cr_assert_null(ca_last_error());
    cr_assert_eq(ca_core__last_error_set("comp", "went wrong", EINVAL), EINVAL);
    cr_assert_str_eq(ca_last_error(), "comp: went wrong");
    cr_assert_eq(ca_core__last_error_set("comp", "again", ENOMEM), ENOMEM, "the next failure overwrites it");
    cr_assert_str_eq(ca_last_error(), "comp: again");
    ca_last_error_clear();
    cr_assert_null(ca_last_error());
}

Test(last_error, built_as_a_line)
{
    ca_line *l = ca_core__last_error_begin("source-file");
    ca_line_str(l, "open '/x': ");
    ca_line_errno(l, ENOENT);
    ca_line_str(l, " (");
    ca_line_u64(l, 42, 10);
    ca_line_char(l, ')');
    cr_assert_str_eq(ca_last_error(), "source-file: open '/x': No such file or directory (42)");
    ca_line_str(ca_core__last_error_begin(NULL), "no component");
    cr_assert_str_eq(ca_last_error(), "no component", "begin starts a new message");
}

Test(last_error, cut_at_its_size)
{
    char big[CA_LAST_ERROR_MAX * 2];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    (void)ca_core__last_error_set("c", big, EINVAL);
    const char *m = ca_last_error();
    cr_assert_eq(strlen(m), CA_LAST_ERROR_MAX - 1);
    cr_assert_eq(strncmp(m, "c: xxx", 6), 0);
}

Test(last_error, errno_text)
{
    char b[64];
    ca_line l;
    ca_line_init(&l, b, sizeof b);
    ca_line_errno(&l, ENOSPC);
    cr_assert_str_eq(b, "No space left on device");
    ca_line_init(&l, b, sizeof b);
    ca_line_errno(&l, 99999);
    cr_assert_str_eq(b, "errno 99999");
    ca_line_init(&l, b, sizeof b);
    ca_line_errno(&l, -3);
    cr_assert_str_eq(b, "errno -3");
}

static void *other_thread(void *arg)
{
    const char **seen = (const char **)arg;
    seen[0] = ca_last_error(); /* the main thread's message is not ours */
    (void)ca_core__last_error_set("thread", "its own failure", EIO);
    seen[1] = ca_last_error();
    return NULL;
}

Test(last_error, per_thread)
{
    (void)ca_core__last_error_set("main", "mine", EINVAL);
    const char *seen[2] = {"unset", "unset"};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, other_thread, seen), 0);
    cr_assert_eq(pthread_join(t, NULL), 0);
    cr_assert_null(seen[0], "another thread does not see this thread's message");
    cr_assert_not_null(seen[1], "its own failure set its message");
    cr_assert_str_eq(ca_last_error(), "main: mine", "the other thread's failure does not show here");
}
