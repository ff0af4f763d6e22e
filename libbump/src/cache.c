/* SPDX-License-Identifier: MIT */
/*
 * The cache of warm bumps (ca_bump_cache) for task-based work: a bounded
 * stack of warm chunks that bumps start from when taken and leave behind
 * when put back.
 *
 * Concurrency: take / put from any thread, serialised by one mutex held for
 * a few pointer moves (never across a source call or a destructor). Each
 * bump taken is then owned by one thread.
 * Read first: ca_bump_cache_put.
 */
#include <string.h>

#include "bump_internal.h"

int ca_bump_cache_init(ca_bump_cache *c, ca_source *src, const ca_bump_options *opt, size_t max_warm)
{
    if (!c || !src)
        return EINVAL;
    ca_bump probe;
    int e = ca_bump_init(&probe, src, opt);
    if (e)
        return e; /* the options are validated by a bump, once */
    memset(c, 0, sizeof *c);
    e = pthread_mutex_init(&c->lock, NULL);
    if (e)
        return e;
    c->source = src;
    c->max_warm = max_warm;
    if (opt)
        c->opt = *opt;
    return 0;
}

/* ca_bump_cache_init over the cache's own allocator source, set up once
 * init cleared the cache (init reads nothing of the source); every bump
 * taken gets it as its source. */
int ca_bump_cache_init_allocator(ca_bump_cache *c, ca_allocator *parent, const ca_bump_options *opt,
                                 size_t max_warm)
{
    if (!c || !parent)
        return EINVAL;
    int e = ca_bump_cache_init(c, &c->adaptor.base, opt, max_warm);
    if (!e)
        ca_allocator_source_init(&c->adaptor, parent);
    return e;
}

void ca_bump_cache_destroy(ca_bump_cache *c)
{
    if (!c)
        return;
    for (ca_bump_chunk *w = c->warm; w;) {
        ca_bump_chunk *prev = w->prev;
        ca_bump__backing_release(c->source, w);
        w = prev;
    }
    pthread_mutex_destroy(&c->lock);
    memset(c, 0, sizeof *c);
}

int ca_bump_cache_take(ca_bump_cache *c, ca_bump *b)
{
    if (!c || !b)
        return EINVAL;
    int e = ca_bump_init(b, c->source, &c->opt);
    if (e)
        return e;
    ca_bump__lock(&c->lock);
    ca_bump_chunk *w = c->warm;
    size_t hint = c->total_hint;
    b->obtain_max = c->obtain_max;
    if (w) {
        c->warm = w->prev;
        c->nwarm--;
        c->warm_hits++;
    }
    c->takes++;
    ca_bump__unlock(&c->lock);
    if (w) {
        ca_bump__chunk_format(w, w->size);
        b->chunk = w;
        b->cur = w->begin;
        b->end = w->end;
        b->chunk_bytes = w->size;
        /* Growth continues from the largest total a task reached, so a task
         * that outgrows the warm chunk gets one chunk big enough for the
         * rest, and that chunk is the one kept at put. */
        b->total = w->size > hint ? w->size : hint;
    }
    return 0;
}

void ca_bump_cache_put(ca_bump_cache *c, ca_bump *b)
{
    CA_CHECK(b->source == c->source && !b->shared && b->mode == CA_BUMP__MODE_GROW, "bump", b,
             "put of a bump that was not taken from this cache");
    if (b->source != c->source || b->shared || b->mode != CA_BUMP__MODE_GROW) {
        ca_bump_destroy(b); /* checks=off: not ours, nothing enters the cache */
        return;
    }
    size_t total = b->total;
    /* Destructors run; only the largest regular chunk is left. A listener
     * hears destroyed() and removed() for every chunk, the kept one too. */
    ca_bump__reset_for_put(b);
    ca_bump_chunk *w = b->chunk;
    b->chunk = NULL;
    b->cur = b->end = NULL;
    b->chunk_bytes = 0;
    bool keep = false;
    ca_bump__lock(&c->lock);
    c->puts++;
    if (total > c->total_hint)
        c->total_hint = total;
    if (b->obtain_max)
        c->obtain_max = b->obtain_max;
    if (w && c->nwarm < c->max_warm) {
        w->prev = c->warm;
        c->warm = w;
        c->nwarm++;
        keep = true;
    } else if (w) {
        c->released++;
    }
    ca_bump__unlock(&c->lock);
    if (w && !keep)
        ca_bump__backing_release(c->source, w);
    ca_bump_destroy(b);
}

int ca_bump_cache_stats(const ca_bump_cache *c, ca_stats *out)
{
    CA_STATS_COUNTERS(CA_BUMP_CACHE_COUNTERS);
    if (!c || !out)
        return EINVAL;
    ca_bump_cache *m = (ca_bump_cache *)c; /* the lock only */
    ca_stats_init(out, "bump-cache");
    ca_bump__lock(&m->lock);
    uint64_t bytes = 0;
    for (const ca_bump_chunk *w = c->warm; w; w = w->prev)
        bytes += w->size;
    out->bytes_reserved = out->bytes_committed = bytes;
    CA_STATS_SET(out, warm_chunks, c->nwarm);
    CA_STATS_SET(out, takes, c->takes);
    CA_STATS_SET(out, warm_hits, c->warm_hits);
    CA_STATS_SET(out, puts, c->puts);
    CA_STATS_SET(out, released, c->released);
    ca_bump__unlock(&m->lock);
    return 0;
}

const char *ca_bump_cache_check(ca_bump_cache *c)
{
    if (!c)
        return "NULL cache";
    const char *m = NULL;
    ca_bump__lock(&c->lock);
    size_t n = 0;
    for (const ca_bump_chunk *w = c->warm; w && !m; w = w->prev, n++) {
        if (n > c->max_warm)
            m = "more warm chunks than the bound (or a cycle)";
        else if (!w->size || w->begin != (const char *)w + CA_BUMP_CHUNK_HEADER || w->end < w->begin)
            m = "warm chunk header broken";
    }
    if (!m && n != c->nwarm)
        m = "warm chunk count differs from the list";
    ca_bump__unlock(&c->lock);
    return m;
}
