/* SPDX-License-Identifier: MIT */
/*
 * Death tests: run a function in a forked child with stderr captured, and
 * report whether it died of SIGABRT having written the expected line.
 * Works in any test binary (Criterion or plain), under ASan too.
 */
#ifndef CA_DEATH_H
#define CA_DEATH_H

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct ca_death_result {
    bool aborted;    /* child ended by SIGABRT */
    bool exited0;    /* child returned from fn (exit status 0) */
    char out[1024];  /* what the child wrote to stderr (NUL-terminated) */
} ca_death_result;

/* Runs fn(arg) in a child; the child exits 0 if fn returns. */
static inline ca_death_result ca_death_run(void (*fn)(void *), void *arg)
{
    ca_death_result r;
    int fds[2];
    memset(&r, 0, sizeof r);
    if (pipe(fds) != 0)
        return r;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 2);
        signal(SIGABRT, SIG_DFL);
        fn(arg);
        _exit(0);
    }
    close(fds[1]);
    size_t n = 0;
    ssize_t k;
    while (n + 1 < sizeof r.out && (k = read(fds[0], r.out + n, sizeof r.out - 1 - n)) > 0)
        n += (size_t)k;
    r.out[n] = '\0';
    close(fds[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    r.aborted = WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT;
    r.exited0 = WIFEXITED(st) && WEXITSTATUS(st) == 0;
    return r;
}

/* True when the child's output has a line starting with `prefix`. */
static inline bool ca_death_has_line(const ca_death_result *r, const char *prefix)
{
    const char *p = r->out;
    size_t n = strlen(prefix);
    while (p && *p) {
        if (strncmp(p, prefix, n) == 0)
            return true;
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return false;
}

#endif
