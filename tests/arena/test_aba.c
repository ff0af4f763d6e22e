/* SPDX-License-Identifier: MIT */
/* The ABA problem reintroduced on purpose: this executable links a build of
 * libarena with CA_ARENA__DROP_TAG (the free-list head and the shared bins'
 * tops keep no generation, and a pause widens the pop window). Equal-size
 * blocks make a popped head (or chain) come back on top while a slower
 * thread still holds its stale successor. The stress workload of
 * arena_test_stress.h must catch the damage (two owners of one byte, a
 * changed pattern, or the arena's own assertions) in a child process; each
 * test fails if the workload sees nothing. Two cases: the shared list
 * (thread caches off) and the shared bins (tiny thread caches, so that every
 * free pushes a chain and every allocation pops one). */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ca_tt.h"
#include "arena_test_stress.h"

static int child(uint64_t seed, size_t local_cache)
{
    ca_arena_options o;
    ca_arena_options_init(&o);
    o.freelist = CA_ARENA_FREELIST_OPTIMISTIC;
    o.capacity = 4u << 20;
    o.min_segment = 16;
    o.local_cache = local_cache; /* CA_ARENA_LOCAL_CACHE_OFF: every free and reuse through the shared list's head */
    ca_arena *a = NULL;
    if (ca_arena_create(&a, &o))
        return 2;
    stress_cfg c = {a, 4, 200000, 64, false, seed};
    uint64_t v = stress_run(&c);
    if (v)
        return 42;
    return ca_arena_check(a) ? 43 : 0;
}

static void run(int *ca_tt_failed, size_t local_cache)
{
    int caught = 0, attempts = 0;
    for (; attempts < 8 && !caught; attempts++) {
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0)
            _exit(child(ca_test_seed() + (uint64_t)attempts, local_cache));
        int st = 0;
        waitpid(pid, &st, 0);
        if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
            continue;
        caught = 1;
        printf("  caught on attempt %d: %s %d\n", attempts + 1, WIFEXITED(st) ? "exit" : "signal",
               WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
    }
    CA_TT_ASSERT(caught, "ABA went unnoticed in %d attempts", attempts);
}

CA_TT(aba_without_tag_is_caught) { run(ca_tt_failed, CA_ARENA_LOCAL_CACHE_OFF); }

/* 16-byte caches: no chunk, and every free overflows the cache, so each
 * free pushes a chain of one block onto the shared bin of its size and each
 * allocation pops one. */
CA_TT(aba_in_the_shared_bins_without_tag_is_caught) { run(ca_tt_failed, 16); }
