/* SPDX-License-Identifier: MIT */
/* Environment variables: strict parsing, one warning line, the default. */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <ctxalloc/core.h>
#include <stdlib.h>

Test(env, uint_valid_unset_and_empty)
{
    uint64_t v = 0;
    unsetenv("CA_TEST_ENV");
    cr_assert_eq(ca_env_uint("CA_TEST_ENV", 24, 38, 34, &v), 0);
    cr_assert_eq(v, 34);
    setenv("CA_TEST_ENV", "", 1);
    cr_assert_eq(ca_env_uint("CA_TEST_ENV", 24, 38, 34, &v), 0);
    cr_assert_eq(v, 34);
    setenv("CA_TEST_ENV", "24", 1);
    cr_assert_eq(ca_env_uint("CA_TEST_ENV", 24, 38, 34, &v), 0);
    cr_assert_eq(v, 24);
    setenv("CA_TEST_ENV", "38", 1);
    cr_assert_eq(ca_env_uint("CA_TEST_ENV", 24, 38, 34, &v), 0);
    cr_assert_eq(v, 38);
}

Test(env, uint_invalid_values_warn_and_use_the_default, .init = cr_redirect_stderr)
{
    static const char *const bad[] = {"-1", "4294967295", "18446744073709551616", "abc", "2x", " 30", "+30",
                                      "23", "39", "0x20", NULL};
    for (int i = 0; bad[i]; i++) {
        uint64_t v = 0;
        setenv("CA_TEST_ENV", bad[i], 1);
        cr_assert_eq(ca_env_uint("CA_TEST_ENV", 24, 38, 34, &v), EINVAL, "%s", bad[i]);
        cr_assert_eq(v, 34, "%s gives the default", bad[i]);
    }
    fflush(stderr);
    cr_assert_stderr_neq_str("");
}

Test(env, uint_warning_text, .init = cr_redirect_stderr)
{
    uint64_t v;
    setenv("CA_TEST_ENV", "abc", 1);
    ca_env_uint("CA_TEST_ENV", 24, 38, 34, &v);
    cr_assert_stderr_eq_str("ctxalloc: warning: CA_TEST_ENV=abc is invalid (expected a whole number from 24 to 38): "
                            "using 34\n");
}

Test(env, word, .init = cr_redirect_stderr)
{
    static const char *const words[] = {"off", "text", "json", NULL};
    int w = -5;
    unsetenv("CA_TEST_WORD");
    cr_assert_eq(ca_env_word("CA_TEST_WORD", words, 0, &w), 0);
    cr_assert_eq(w, 0);
    setenv("CA_TEST_WORD", "json", 1);
    cr_assert_eq(ca_env_word("CA_TEST_WORD", words, 0, &w), 0);
    cr_assert_eq(w, 2);
    setenv("CA_TEST_WORD", "JSON ", 1);
    cr_assert_eq(ca_env_word("CA_TEST_WORD", words, 0, &w), EINVAL);
    cr_assert_eq(w, 0);
    cr_assert_stderr_eq_str("ctxalloc: warning: CA_TEST_WORD=JSON  is invalid (expected one of off, text, json): "
                            "using off\n");
}
