/* SPDX-License-Identifier: MIT */
/* The ABA problem reintroduced on purpose: this executable links a build of
 * libarena with CA_ARENA__DROP_TAG (the free-list head keeps no generation,
 * and a yield widens the pop window). Equal-size blocks make a popped head
 * come back as head while a slower thread still holds its stale successor.
 * The stress workload of arena_test_stress.h must catch the damage (two
 * owners of one byte, a changed pattern, or the arena's own free-list
 * assertion) in a child process; the test fails if the workload sees
 * nothing. */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ca_tt.h"
#include "arena_test_stress.h"

static int child(uint64_t seed)
{
    ca_arena_options o;
    ca_arena_options_init(&o);
    o.freelist = CA_ARENA_FREELIST_OPTIMISTIC;
    o.capacity = 4u << 20;
    o.min_segment = 16;
    o.local_cache = CA_ARENA_LOCAL_CACHE_OFF; /* every free and reuse through the shared list's head */
    ca_arena *a = NULL;
    if (ca_arena_create(&a, &o))
        return 2;
    stress_cfg c = {a, 4, 200000, 64, false, seed};
    uint64_t v = stress_run(&c);
    if (v)
        return 42;
    return ca_arena_check(a) ? 43 : 0;
}

CA_TT(aba_without_tag_is_caught)
{
    int caught = 0, attempts = 0;
    for (; attempts < 8 && !caught; attempts++) {
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0)
            _exit(child(ca_test_seed() + (uint64_t)attempts));
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
