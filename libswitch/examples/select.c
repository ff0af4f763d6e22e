/* SPDX-License-Identifier: MIT */
/*
 * Example: the three ways to select an adopted allocator (thread, context,
 * scoped) and undoing the adoption.
 *
 * Build: cc select.c $(pkg-config --cflags --libs --static \
 *            ctxalloc-switch ctxalloc-rbtree ctxalloc-source)
 */
#include <ctxalloc/rbtree.h>
#include <ctxalloc/source.h>
#include <ctxalloc/switch.h>
#include <stdio.h>

static void *task(void *arg) { return ca_switch_malloc(*(size_t *)arg); } /* malloc() with the override */

int main(void)
{
    ca_rbtree tree;
    ca_rbtree_options o;
    ca_rbtree_options_init(&o);
    o.source = ca_source_mmap_global();
    if (ca_rbtree_init(&tree, &o) != 0)
        return 1;

    ca_switch_adopted ad;
    if (ca_switch_adopt(&ad, &tree.base) != 0) {
        fprintf(stderr, "%s\n", ca_last_error());
        return 1;
    }
    ca_switch_thread_set(&ad.base);                        /* this thread's mallocs */
    ca_allocator *saved = ca_switch_context_set(&ad.base); /* this task / coroutine */
    void *p = ca_switch_malloc(100);                       /* from the rbtree */
    ca_switch_context_set(saved);                          /* restore */
    size_t n = 200;
    void *q = ca_switch_with(&ad.base, task, &n); /* scoped: restored when task returns */
    int ok = ca_switch_owner(p) == &ad.base && ca_switch_owner(q) == &ad.base;
    ca_switch_free(p); /* routed to the rbtree */
    ca_switch_free(q);
    ca_switch_thread_set(NULL);
    if (ca_switch_unadopt(&ad) != 0) { /* EBUSY while selected or with live blocks */
        fprintf(stderr, "%s\n", ca_last_error());
        return 1;
    }
    ca_rbtree_destroy(&tree);
    return ok ? 0 : 1;
}
