/* SPDX-License-Identifier: MIT */
/*
 * libbinned bridge to the large-object tier: every request above
 * CA_BINNED_SMALL_MAX, and every alignment no size class serves, goes
 * through the functions of this file, and so does free / usable size /
 * resize of any pointer outside the class ranges.
 *
 * Each instance owns one ca_binned_large (src/large/, always built into
 * the library): the default instance the process-wide tier, other
 * instances their own (from the instance's source with
 * CA_BINNED_LARGE_FROM_SOURCE, else its own mmap source). The tier registers its ranges in the ownership map
 * with the instance's ca_allocator as owner, so libswitch routes their
 * frees to us too.
 *
 * Concurrency model: the tier is thread-safe; this file keeps no state.
 */
#include "binned_internal.h"

#ifndef CA_BINNED_HAVE_LARGE
#error "libbinned is built with its large tier: src/large/meson.build sets CA_BINNED_HAVE_LARGE"
#endif
#include <ctxalloc/binned/large.h>

static ca_binned_large *tier(const ca_binned *b) { return (ca_binned_large *)b->large; }

/* Every maintenance pass of the tier also runs the size classes' decay pass
 * when it is due: with the background thread, idle memory of both tiers
 * goes back without the program calling the allocator. */
static void maintain_classes(void *arg) { ca_binned__purge_pass((ca_binned *)arg); }

int ca_binned__large_init(ca_binned *b)
{
    ca_binned_large_options o;
    memset(&o, 0, sizeof o);
    o.min_size = CA_BINNED_SMALL_MAX;
    o.owner = b->use_owner_map ? &b->base : NULL;
    o.maintain = maintain_classes;
    o.maintain_arg = b;
    if (b->background)
        o.flags |= CA_BINNED_LARGE_BACKGROUND;
    /* CA_BINNED_LARGE_FROM_SOURCE: regions from the instance's source (a
     * NUMA-bound one places large blocks on its node like the classes). */
    if (b->flags & CA_BINNED_LARGE_FROM_SOURCE)
        o.source = b->src;
    ca_binned_large *l = NULL;
    int err = 0;
    if (b->is_default) {
        err = ca_binned_large_default_init(&o);
        if (err == 0) {
            l = ca_binned_large_default();
            err = l ? 0 : (errno ? errno : ENOMEM);
        }
    }
    if (!l) {
        err = ca_binned_large_create(&l, &o);
        if (err)
            return err;
    }
    b->large = l;
    return 0;
}

void ca_binned__large_destroy(ca_binned *b)
{
    if (b->large && !b->is_default)
        ca_binned_large_destroy(tier(b));
    b->large = NULL;
}

void *ca_binned__large_alloc(ca_binned *b, size_t size, size_t align, bool zero, size_t *usable)
{
    return ca_binned_large_alloc_flags(tier(b), size, align, zero ? CA_BINNED_LARGE_ZERO : 0, usable);
}

/* large.c: frees p when it is l's block (one lookup). */
bool ca_binned__large_free_owned(ca_binned_large *l, void *p);

bool ca_binned__large_free(ca_binned *b, void *p) { return ca_binned__large_free_owned(tier(b), p); }

size_t ca_binned__large_usable(const ca_binned *b, const void *p)
{
    if (!b->large || !ca_binned_large_owns(tier(b), p))
        return 0;
    return ca_binned_large_usable_size(tier(b), p);
}

void *ca_binned__large_resize(ca_binned *b, void *p, size_t new_size, size_t align, unsigned flags, size_t *usable)
{
    return ca_binned_large_resize(tier(b), p, new_size, align, flags, usable);
}

void ca_binned__large_trim(ca_binned *b) { ca_binned_large_trim(tier(b)); }

void ca_binned__large_background(ca_binned *b)
{
    if (b->background && b->large && !ca_binned_large_background_running(tier(b)))
        (void)ca_binned_large_background_start(tier(b));
}

bool ca_binned__large_background_running(const ca_binned *b)
{
    return b->large && ca_binned_large_background_running(tier(b));
}

void ca_binned__large_flush(ca_binned *b) { ca_binned_large_flush_cache(tier(b)); }

void ca_binned__large_stats(const ca_binned *b, ca_stats *out) { ca_binned_large_stats(tier(b), out); }
