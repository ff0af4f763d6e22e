/* SPDX-License-Identifier: MIT */
/*
 * Example: a bump allocator behind malloc for one task, in one call.
 *
 * ca_switch_adopt registers the bump's chunks in the ownership map (as they
 * come), puts unsized free and a remote-free queue in front of it, and
 * checks its lifetime; selecting the adoption as the context allocator
 * sends every allocation of the task to the bump, and free() finds the bump
 * whoever calls it.
 *
 * Build: cc adopt.c $(pkg-config --cflags --libs --static \
 *            ctxalloc-switch ctxalloc-bump ctxalloc-source)
 * With the override library linked (see libswitch/README.md) plain malloc
 * and free do the same as ca_switch_malloc and ca_switch_free below.
 */
#include <ctxalloc/bump.h>
#include <ctxalloc/source.h>
#include <ctxalloc/switch.h>
#include <stdio.h>
#include <string.h>

int main(void)
{
    ca_bump bump;                  /* any allocator of the suite */
    ca_switch_adopted req;         /* makes it routable behind malloc */
    printf("one bump per task\n"); /* stdout's buffer: from the global allocator */
    if (ca_bump_init(&bump, ca_source_mmap_global(), NULL) != 0)
        return 1;
    if (ca_switch_adopt(&req, &bump.base) != 0) {
        fprintf(stderr, "%s\n", ca_last_error()); /* which allocator, and why */
        return 1;
    }

    ca_allocator *saved = ca_switch_context_set(&req.base); /* this task */
    char *s = ca_switch_malloc(64);
    if (!s)
        return 1;
    strcpy(s, "from the bump");
    int routed = ca_switch_owner(s) == &req.base; /* free() will find the bump */
    ca_switch_free(s);
    ca_switch_context_set(saved);

    if (ca_switch_unadopt(&req) != 0) {           /* then destroy the allocator */
        fprintf(stderr, "%s\n", ca_last_error()); /* e.g. blocks still live */
        return 1;
    }
    ca_bump_destroy(&bump);
    printf(routed ? "done\n" : "FAILED\n");
    return routed ? 0 : 1;
}
