/* SPDX-License-Identifier: MIT */
/*
 * A minimal test runner for thread tests: plain executables that work under
 * TSan (which Criterion's runner does not). Tests register themselves with
 * CA_TT(name) and run in order in one process; the last line printed is
 *
 *   N passed, N failed
 *
 * and the exit status is non-zero when any test failed. A test fails through
 * CA_TT_ASSERT (which returns from the test function). Tests count their
 * operations with CA_TT_OPS(n) (printed as "operations: N" for the long
 * stress mode). Include this in exactly one .c file per executable.
 */
#ifndef CA_TT_H
#define CA_TT_H

#include <stdio.h>
#include <stdlib.h>

typedef struct ca_tt_case {
    const char *name;
    void (*fn)(int *failed);
} ca_tt_case;

/* Operations done by the tests (CA_TT_OPS), printed for ./run.sh stress. */
static unsigned long long ca_tt_ops;
#define CA_TT_OPS(n) __atomic_fetch_add(&ca_tt_ops, (unsigned long long)(n), __ATOMIC_RELAXED)

#define CA_TT_MAX 64
static ca_tt_case ca_tt_cases[CA_TT_MAX];
static int ca_tt_ncases;

#define CA_TT(name_)                                                                               \
    static void ca_tt_fn_##name_(int *ca_tt_failed);                                               \
    __attribute__((constructor)) static void ca_tt_reg_##name_(void)                               \
    {                                                                                              \
        if (ca_tt_ncases < CA_TT_MAX)                                                              \
            ca_tt_cases[ca_tt_ncases++] = (ca_tt_case){#name_, ca_tt_fn_##name_};                  \
    }                                                                                              \
    static void ca_tt_fn_##name_(int *ca_tt_failed)

#define CA_TT_ASSERT(cond, ...)                                                                    \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "  %s:%d: assertion failed: %s: ", __FILE__, __LINE__, #cond);         \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
            *ca_tt_failed = 1;                                                                     \
            return;                                                                                \
        }                                                                                          \
    } while (0)

int main(void)
{
    int passed = 0, failed = 0;
    for (int i = 0; i < ca_tt_ncases; i++) {
        int f = 0;
        ca_tt_cases[i].fn(&f);
        printf("[%s] %s\n", f ? "FAIL" : " ok ", ca_tt_cases[i].name);
        fflush(stdout);
        if (f)
            failed++;
        else
            passed++;
    }
    if (ca_tt_ops)
        printf("operations: %llu\n", ca_tt_ops);
    printf("%d passed, %d failed\n", passed, failed);
    fflush(stdout);
    return failed ? 1 : 0;
}

#endif
