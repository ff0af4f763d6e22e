/* SPDX-License-Identifier: MIT */
/*
 * libbinned entry points: instances (create, the process-wide default),
 * the malloc-style fast paths, the ca_allocator ops table, trim, fork hooks
 * and statistics.
 *
 * Concurrency model: the fast paths touch only the calling thread's cache
 * (a TLS load, an index, a list pop or push: no atomic, no lock). Slow paths
 * (tcache.c) use the lock-free recycler and the per-class locks (central.c).
 * The list of instances (for the fork hooks) is under one spin lock taken
 * only by create, destroy and fork.
 *
 * Read ca_binned_default_malloc and ca_binned_default_free first, then instance_init.
 */
#include "binned_internal.h"

#include <sched.h>
#include <stdlib.h>
#include <sys/auxv.h>
#include <sys/random.h>
#include <time.h>

struct ca_binned ca_binned__default_instance;
static int g_default_state; /* core's once word: CA_ONCE_DONE (2) when ready */
static int g_instances_lock;
static ca_binned *g_instances;

static const ca_allocator_ops binned_ops, binned_ops_unmapped;

/* ThreadSanitizer's application ranges are too small for 1.6 TiB of class
 * ranges next to its shadow: TSan builds start the default instance at
 * 256 MiB per class. */
#if defined(__SANITIZE_THREAD__)
#define DEFAULT_RANGE_LOG2 28u
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define DEFAULT_RANGE_LOG2 28u
#endif
#endif
#ifndef DEFAULT_RANGE_LOG2
#define DEFAULT_RANGE_LOG2 34u
#endif

/* ------------------------------------------------------------------------
 * The per-process secret
 * ------------------------------------------------------------------------ */

uint64_t ca_binned__secret[2];
static int g_secret_state; /* core's once word */

void ca_binned__secret_init(void)
{
    if (ca_once_done(&g_secret_state) || !ca_once_begin(&g_secret_state))
        return;
    /* AT_RANDOM: 16 bytes the kernel gave the process at exec (no system
     * call); getrandom adds fresh bytes when it can without blocking. */
    uint64_t k[2] = {0x6a09e667f3bcc908ull, 0xbb67ae8584caa73bull};
    const unsigned char *at = (const unsigned char *)(uintptr_t)getauxval(AT_RANDOM);
    if (at) {
        uint64_t a[2];
        memcpy(a, at, sizeof a);
        k[0] ^= a[0];
        k[1] ^= a[1];
    }
    uint64_t g[2] = {0, 0};
    if (getrandom(g, sizeof g, GRND_NONBLOCK) == (ssize_t)sizeof g) {
        k[0] ^= g[0];
        k[1] ^= g[1];
    }
    struct timespec ts;
    ca_binned__clock(CLOCK_MONOTONIC, &ts);
    k[0] = ca_binned__mix64(k[0] ^ (uint64_t)ts.tv_nsec ^ (uint64_t)(uintptr_t)&ts);
    k[1] = ca_binned__mix64(k[1] ^ k[0]);
    ca_binned__secret[0] = k[0];
    ca_binned__secret[1] = k[1];
    ca_once_finish(&g_secret_state);
}

/* ------------------------------------------------------------------------
 * Instances
 * ------------------------------------------------------------------------ */

/* The one place zeros become defaults (binned.h): *out = *in with each 0
 * field replaced by its default, then the named values by the quantities
 * they stand for. instance_init reads only the result, where empty_keep and
 * recycler_bytes are plain bytes (0: none, the recycler's least) and
 * decay_ms is never 0 (CA_BINNED_DECAY_NEVER stays). */
static void options_resolve(const ca_binned_options *in, ca_binned_options *out)
{
    *out = *in;
    if (!out->class_range_log2)
        out->class_range_log2 = CA_BINNED_CLASS_RANGE_LOG2_DEFAULT;
    if (!out->decay_ms)
        out->decay_ms = CA_BINNED_DECAY_MS_DEFAULT;
    if (!out->empty_keep)
        out->empty_keep = CA_BINNED_EMPTY_KEEP_DEFAULT;
    else if (out->empty_keep == CA_BINNED_EMPTY_KEEP_NONE)
        out->empty_keep = 0;
    if (!out->recycler_bytes)
        out->recycler_bytes = CA_BINNED_RECYCLER_BYTES_DEFAULT;
    else if (out->recycler_bytes == CA_BINNED_RECYCLER_MIN)
        out->recycler_bytes = 0;
}

static void instances_add(ca_binned *b)
{
    ca_binned__spin_lock(&g_instances_lock, CA_LOCK_RANK_BINNED_INSTANCES);
    CA_SLIST_PUSH(g_instances, b, next_instance);
    ca_binned__spin_unlock(&g_instances_lock, CA_LOCK_RANK_BINNED_INSTANCES);
}

static void instances_remove(ca_binned *b)
{
    ca_binned__spin_lock(&g_instances_lock, CA_LOCK_RANK_BINNED_INSTANCES);
    CA_SLIST_REMOVE(g_instances, b, next_instance);
    ca_binned__spin_unlock(&g_instances_lock, CA_LOCK_RANK_BINNED_INSTANCES);
}

/* Bytes of one class's metadata: the free and empty chains' trees, then one
 * block word per block, page-aligned so that each class maps its own. */
/* A class's metadata: a pad, the empty chain's trees, the free chain's
 * (each from the top down, so that the free chain's tree 0 is the last),
 * then the block words. The pad makes the block words begin sizeof(tree)
 * bytes into a page: the free chain's tree 0 fills the start of that page
 * and the first block words (251 of them) the rest, so that a class's first
 * blocks touch one page of metadata (two before: 4 KiB of RSS per class
 * touched). Returns the bytes before the block words. */
static size_t class_trees_bytes(size_t nblocks, size_t page)
{
    size_t ntrees = (nblocks + CA_BINNED__TREE_BITS - 1) / CA_BINNED__TREE_BITS;
    size_t trees = 2 * ntrees * sizeof(ca_binned__tree);
    return (sizeof(ca_binned__tree) + page - trees % page) % page + trees;
}

static size_t class_meta_bytes(size_t nblocks, size_t page)
{
    return ca_align_up(class_trees_bytes(nblocks, page) + nblocks * sizeof(uint64_t), page);
}

/* ------------------------------------------------------------------------
 * Windows of address space for on-demand instances
 *
 * An instance with its own source does not reserve its class ranges: it
 * picks a window of address space (span + shadow + metadata, 1.7 TiB at the
 * default 16 GiB per class) and maps pieces of it with MAP_FIXED_NOREPLACE
 * as each class grows (central.c), so that the process's address space,
 * commit charge and core file hold what is used plus bounded headroom, and
 * RLIMIT_AS / RLIMIT_DATA / strict overcommit are met with ENOMEM at the
 * limit, never at start.
 *
 * Windows lie between 32 and 78 TiB: far below where Linux places mappings
 * (top-down from below the stack, near 128 TiB) and where PIE executables
 * and their brk heaps go (85 to 87 TiB), and above AddressSanitizer's
 * shadow (below 16 TiB). The start is random (1 GiB steps, from the
 * per-process secret). A window is probed once (a PROT_NONE mapping that
 * must land exactly there, undone at once); when a limit refuses the probe,
 * the window is taken as is, and a class that later finds its next pages
 * taken by someone else's fixed mapping fails with ENOMEM. Windows of the
 * instances of a process never overlap (this table). ThreadSanitizer's
 * application ranges exclude the area: those builds reserve as before.
 * ------------------------------------------------------------------------ */

#if defined(__SANITIZE_THREAD__)
#define ON_DEMAND_OK 0
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define ON_DEMAND_OK 0
#endif
#endif
#ifndef ON_DEMAND_OK
#define ON_DEMAND_OK 1
#endif

#define WINDOW_LO    ((uintptr_t)32 << 40)
#define WINDOW_HI    ((uintptr_t)78 << 40)
#define WINDOW_STEP  ((uintptr_t)1 << 30)
#define WINDOWS_MAX  64
#define WINDOW_TRIES 16

static struct {
    uintptr_t lo, hi; /* [lo, hi); lo == 0: free entry */
} g_windows[WINDOWS_MAX];
static uint64_t g_window_draws;

/* A window of `size` bytes for a new instance, or 0 (none found: the
 * instance reserves its span instead). Under g_instances_lock. */
static uintptr_t window_claim(size_t size)
{
    size_t total = ca_align_up(size, WINDOW_STEP);
    if (total > WINDOW_HI - WINDOW_LO)
        return 0;
    uint64_t slots = (WINDOW_HI - WINDOW_LO - total) / WINDOW_STEP + 1;
    uintptr_t got = 0;
    ca_binned__spin_lock(&g_instances_lock, CA_LOCK_RANK_BINNED_INSTANCES);
    int free_i = -1;
    for (int i = 0; i < WINDOWS_MAX; i++)
        if (!g_windows[i].lo) {
            free_i = i;
            break;
        }
    for (int t = 0; free_i >= 0 && t < WINDOW_TRIES && !got; t++) {
        uint64_t r = ca_binned__mix64(ca_binned__secret[0] ^ ++g_window_draws * 0x9e3779b97f4a7c15ull);
        uintptr_t lo = WINDOW_LO + (uintptr_t)(r % slots) * WINDOW_STEP, hi = lo + total;
        bool clash = false;
        for (int i = 0; i < WINDOWS_MAX && !clash; i++)
            clash = g_windows[i].lo && lo < g_windows[i].hi && g_windows[i].lo < hi;
        if (clash || ca_source_mmap_probe((void *)lo, total) == EEXIST)
            continue;
        g_windows[free_i].lo = lo;
        g_windows[free_i].hi = hi;
        got = lo;
    }
    ca_binned__spin_unlock(&g_instances_lock, CA_LOCK_RANK_BINNED_INSTANCES);
    return got;
}

static void window_release(uintptr_t lo)
{
    ca_binned__spin_lock(&g_instances_lock, CA_LOCK_RANK_BINNED_INSTANCES);
    for (int i = 0; i < WINDOWS_MAX; i++)
        if (g_windows[i].lo == lo)
            g_windows[i].lo = g_windows[i].hi = 0;
    ca_binned__spin_unlock(&g_instances_lock, CA_LOCK_RANK_BINNED_INSTANCES);
}

/* A class's state, on its first use (ca_binned__class_ready): a program
 * touches the state of the classes it uses only (100 classes of 320 bytes:
 * 9 pages of the default instance's static state when all were set up at
 * create). Metadata: per class a pad, two chains of trees, then the block
 * words (class_trees_bytes), the classes one after the other in meta_map.
 * Under the class lock, which serialises it with the decay pass, fork and
 * the statistics; lock_lk, stored last, marks the class set up. */
void ca_binned__class_setup(ca_binned *b, unsigned cls)
{
    ca_binned__class *c = &b->classes[cls];
    ca_binned__class_lock(c);
    if (!c->lock_lk) {
        size_t range = (size_t)1 << b->class_shift, page = ca_page_size();
        char *cur = (char *)b->meta_map;
        for (unsigned i = 0; i < cls; i++)
            cur += class_meta_bytes(range >> ca_binned__classes[i].block_shift, page);
        const ca_binned__class_info *ci = &ca_binned__classes[cls];
        size_t nblocks = range >> ci->block_shift;
        size_t ntrees = (nblocks + CA_BINNED__TREE_BITS - 1) / CA_BINNED__TREE_BITS;
        /* The recycler is left as the zeroed instance has it (empty):
         * threads pop from it without this set-up (an empty pop), so it is
         * never written here. */
        c->base = (char *)b->span_base + range * cls;
        c->max_blocks = nblocks;
        c->mapped = b->on_demand ? 0 : nblocks;
        c->meta_start = cur;
        c->trees_bytes = class_trees_bytes(nblocks, page);
        c->free_tree.tree0 = (ca_binned__tree *)(void *)(cur + c->trees_bytes) - 1;
        c->free_tree.ntrees = (uint32_t)ntrees;
        c->empty_tree.tree0 = c->free_tree.tree0 - ntrees;
        c->empty_tree.ntrees = (uint32_t)ntrees;
        c->meta = (uint64_t *)(void *)(cur + c->trees_bytes);
        size_t bundle = (size_t)ci->batch * ci->size;
        c->rec_floor = b->recycler_bytes / bundle;
        if (c->rec_floor < 2)
            c->rec_floor = 2;
        /* recycler_bytes 0 here: the option asked for the least, fixed. */
        c->rec_cap = b->recycler_bytes ? c->rec_floor * CA_BINNED__REC_GROWTH : c->rec_floor;
        c->rec_max = c->rec_floor;
        c->keep = b->empty_keep >> ci->block_shift;
        __atomic_store_n(&c->lock_lk, &c->lock, __ATOMIC_RELEASE);
    }
    ca_binned__class_unlock(c);
}

/* The span and the starter area after it (when the instance has one). */
static size_t owned_span(const ca_binned *b) { return b->span + (b->starter_base ? CA_BINNED__STARTER_BYTES : 0); }

/* Everything but the ca_binned storage itself; on failure nothing is left. */
static int instance_init(ca_binned *b, const ca_binned_options *opt, bool is_default)
{
    ca_binned_options ro;
    options_resolve(opt, &ro);
    const ca_binned_options *o = &ro;
    if (o->class_range_log2 < 24 || o->class_range_log2 > 36 || o->huge > CA_SOURCE_HUGE_1G ||
        (o->flags & ~(CA_BINNED_NO_OWNER_MAP | CA_BINNED_NO_TCACHE | CA_BINNED_BACKGROUND |
                      CA_BINNED_LARGE_FROM_SOURCE | CA_BINNED_STARTER)) ||
        ((o->flags & CA_BINNED_LARGE_FROM_SOURCE) && !o->source))
        return EINVAL;
    b->base.ops = (o->flags & CA_BINNED_NO_OWNER_MAP) ? &binned_ops_unmapped : &binned_ops;
    b->class_shift = o->class_range_log2;
    b->reg_lk = &b->reg_lock;
    b->peak_sampled_mut = &b->peak_sampled;
    b->is_default = is_default;
    b->background = (o->flags & CA_BINNED_BACKGROUND) != 0;
    b->flags = o->flags;
    b->use_owner_map = !(o->flags & CA_BINNED_NO_OWNER_MAP);
    b->decay_ns = o->decay_ms == CA_BINNED_DECAY_NEVER ? 0 : (uint64_t)o->decay_ms * 1000000u;
    b->empty_keep = o->empty_keep;
    b->pressure_bytes = o->pressure_bytes;
    ca_binned__secret_init();

    int err;
    if (o->source) {
        b->src = o->source;
    } else {
        ca_source_mmap_options mo;
        memset(&mo, 0, sizeof mo);
        mo.flags = CA_SOURCE_MMAP_NORESERVE;
        mo.huge = o->huge;
        mo.decommit = CA_SOURCE_DECOMMIT_DONTNEED;
        mo.name = "ctxalloc-binned";
        err = ca_source_mmap_init(&b->own_src, &mo);
        if (err)
            return err;
        b->own_src_used = true;
        b->src = &b->own_src.base;
    }

    b->fresh_zero = b->own_src_used || (b->src->ops->caps & CA_SOURCE_ZEROED);
    b->decommit_zero = b->own_src_used;
    size_t range = (size_t)1 << b->class_shift;
    size_t span = range * CA_BINNED__NCLASSES;
    size_t page = ca_page_size();
    size_t meta = 0;
    for (unsigned i = 0; i < CA_BINNED__NCLASSES; i++)
        meta += class_meta_bytes(range >> ca_binned__classes[i].block_shift, page);
    b->shadow_size = span >> 4;
    b->meta_size = meta;

    /* The shadow: a private no-reserve mapping (1/16 of the span), whatever
     * the source, so that it is zero-filled, never huge pages, and keeps
     * its access when decommitted. */
    ca_source_mmap_options so;
    memset(&so, 0, sizeof so);
    so.flags = CA_SOURCE_MMAP_NORESERVE;
    so.decommit = CA_SOURCE_DECOMMIT_DONTNEED;
    so.name = "ctxalloc-binned-shadow";
    err = ca_source_mmap_init(&b->shadow_src, &so);
    if (err)
        goto fail_src;

    /* On demand (own source, base pages): one window for span, the starter
     * area (CA_BINNED_STARTER), the shadow of both and the metadata,
     * nothing mapped yet (central.c maps as classes grow). */
    uintptr_t win = 0;
    size_t starter = (o->flags & CA_BINNED_STARTER) ? CA_BINNED__STARTER_BYTES : 0;
    size_t shadow_all = (span + starter) >> 4;
    if (b->own_src_used && o->huge == CA_SOURCE_HUGE_OFF && ON_DEMAND_OK)
        win = window_claim(span + starter + shadow_all + ca_align_up(meta, (size_t)2 << 20));
    if (win) {
        b->on_demand = true;
        b->page_kind = CA_SOURCE_PAGE_BASE;
        b->span_base = win;
        b->shadow = (uint8_t *)(win + span + starter);
        b->meta_map = (void *)(win + span + starter + shadow_all);
    } else {
        void *base = NULL;
        size_t align = (size_t)2 << 20;
        if (b->own_src_used)
            err = ca_source_mmap_obtain_ex(&b->own_src, span, align, &base, &b->page_kind);
        else
            err = ca_source_obtain(b->src, span, align, &base);
        if (err)
            goto fail_shadow_src;
        b->span_base = (uintptr_t)base;
        void *sh = NULL;
        err = ca_source_obtain(&b->shadow_src.base, b->shadow_size, ca_source_granule(&b->shadow_src.base), &sh);
        if (err)
            goto fail_span;
        b->shadow = (uint8_t *)sh;
        size_t gran = ca_source_granule(b->src);
        b->meta_size = meta = ca_align_up(meta, gran > page ? gran : page);
        void *mm = NULL;
        err = ca_source_obtain(b->src, meta, gran, &mm);
        if (err)
            goto fail_shadow;
        b->meta_map = mm;
        if (!(ca_source_granule(b->src) && (b->src->ops->caps & CA_SOURCE_ZEROED)))
            memset(mm, 0, meta);
    }
    b->span = span;
    b->shadow_bias = (uintptr_t)b->shadow - (b->span_base >> 4);

    /* The classes themselves are set up on first use (class_setup): only
     * their mapped ends here, which free tests. */
    for (unsigned i = 0; i < CA_BINNED__NCLASSES; i++)
        b->class_end[i] = b->span_base + range * i + (b->on_demand ? 0 : range);
    b->recycler_bytes = o->recycler_bytes;

    if (pthread_key_create(&b->key, ca_binned__tcache_thread_exit) != 0) {
        err = EAGAIN;
        goto fail_meta;
    }
    b->key_made = true;
    b->next_purge_ns = ca_binned__now_ns() + b->decay_ns / 2;
    err = ca_binned__large_init(b);
    if (err)
        goto fail_key;
    if (b->on_demand && starter)
        ca_binned__starter_init(b);
    /* The span (and the starter area after it) as one window of the
     * ownership map: no radix nodes per class (8 KiB of RSS per class
     * touched); when no window slot is left the classes register their
     * blocks as they start them (central.c), and the starter area is
     * registered whole. */
    if (b->use_owner_map && b->on_demand)
        b->owner_window = ca_owner_claim_window((void *)b->span_base, owned_span(b), &b->base) == 0;
    if (b->use_owner_map && b->starter_base && !b->owner_window &&
        ca_owner_register((void *)b->starter_base, CA_BINNED__STARTER_BYTES, &b->base) != 0)
        ca_binned__starter_destroy(b);
    instances_add(b);
    return 0;

fail_key:
    pthread_key_delete(b->key);
fail_meta:
    if (!b->on_demand)
        ca_source_release(b->src, b->meta_map, b->meta_size);
fail_shadow:
    if (!b->on_demand)
        ca_source_release(&b->shadow_src.base, b->shadow, b->shadow_size);
fail_span:
    if (b->on_demand)
        window_release(b->span_base);
    else
        ca_source_release(b->src, (void *)b->span_base, span);
fail_shadow_src:
    ca_source_mmap_destroy(&b->shadow_src);
fail_src:
    if (b->own_src_used)
        ca_source_mmap_destroy(&b->own_src);
    return err;
}

int ca_binned_create(ca_binned **out, const ca_binned_options *o)
{
    ca_binned_options d;
    if (!out)
        return EINVAL;
    if (!o) {
        ca_binned_options_init(&d);
        o = &d;
    }
    /* The instance struct comes from the given source, or a private mapping. */
    ca_source *s = o->source ? o->source : ca_source_mmap_global();
    size_t sz = ca_align_up(sizeof(ca_binned), ca_source_granule(s));
    void *mem = NULL;
    int err = ca_source_obtain(s, sz, ca_source_granule(s), &mem);
    if (err)
        return err;
    ca_binned *b = (ca_binned *)mem;
    if (!(s->ops->caps & CA_SOURCE_ZEROED)) /* else untouched: classes never used stay so */
        memset(b, 0, sizeof *b);
    err = instance_init(b, o, false);
    if (err) {
        ca_source_release(s, mem, sz);
        return err;
    }
    *out = b;
    return 0;
}

void ca_binned_destroy(ca_binned *b)
{
    if (!b || b->is_default)
        return;
    instances_remove(b);
    pthread_key_delete(b->key);
    ca_binned__large_destroy(b);
    /* Caches of other threads: their memory goes with the source. */
    size_t gran = ca_source_granule(b->src);
    size_t arrays = ca_align_up(ca_binned__arrays_bytes(), gran);
    for (int pass = 0; pass < 2; pass++)
        for (ca_binned__tcache *tc = pass ? b->spare_caches : b->threads, *next; tc; tc = next) {
            next = tc->next;
            if (tc->arrays)
                ca_source_release(b->src, tc->arrays, arrays);
            ca_source_release(b->src, tc, ca_align_up(sizeof(ca_binned__tcache), gran));
        }
    for (void *r = b->spare_arrays, *next; r; r = next) {
        next = *(void **)r;
        ca_source_release(b->src, r, arrays);
    }
    for (void *ch = b->pool_chunks, *next; ch; ch = next) {
        next = *(void **)ch;
        ca_source_release(b->src, ch, ca_align_up((size_t)64 << 10, gran));
    }
    if (b->owner_window)
        (void)ca_owner_release_window((void *)b->span_base, owned_span(b), &b->base);
    else if (b->use_owner_map && b->starter_base)
        ca_owner_unregister((void *)b->starter_base, CA_BINNED__STARTER_BYTES, &b->base);
    ca_binned__starter_destroy(b);
    if (b->use_owner_map)
        for (unsigned i = 0; i < CA_BINNED__NCLASSES; i++)
            if (b->classes[i].registered)
                ca_owner_unregister(b->classes[i].base,
                                    b->classes[i].registered << ca_binned__classes[i].block_shift, &b->base);
    ca_source *s = b->own_src_used ? NULL : b->src;
    if (b->on_demand) {
        for (unsigned i = 0; i < CA_BINNED__NCLASSES; i++) {
            ca_binned__class *c = &b->classes[i];
            if (c->span_mapped)
                ca_source_release(b->src, c->base, c->span_mapped);
            if (c->shadow_mapped)
                ca_source_release(&b->shadow_src.base, ca_binned__shadow(b, c->base), c->shadow_mapped);
            if (c->meta_mapped)
                ca_source_release(b->src, c->meta_start, c->meta_mapped);
        }
        window_release(b->span_base);
    } else {
        ca_source_release(b->src, b->meta_map, b->meta_size);
        ca_source_release(&b->shadow_src.base, b->shadow, b->shadow_size);
        ca_source_release(b->src, (void *)b->span_base, b->span);
    }
    ca_source_mmap_destroy(&b->shadow_src);
    if (b->own_src_used)
        ca_source_mmap_destroy(&b->own_src);
    ca_source *hs = s ? s : ca_source_mmap_global();
    ca_source_release(hs, b, ca_align_up(sizeof(ca_binned), ca_source_granule(hs)));
}

ca_attr_noinline ca_attr_cold static ca_binned *default_init_slow(void)
{
    if (ca_once_begin(&g_default_state)) {
        ca_binned_options o;
        ca_binned_options_init(&o);
        /* CA_BINNED_CLASS_RANGE_LOG2 chooses the address space per class;
         * without it, smaller ranges are tried when the default does not
         * fit (ulimit -v, sanitizers, emulators). An invalid value warns
         * and gives the default (ca_env_uint; getenv does not allocate). */
        uint64_t want, bg, st;
        (void)ca_env_uint("CA_BINNED_CLASS_RANGE_LOG2", 24, 36, DEFAULT_RANGE_LOG2, &want);
        (void)ca_env_uint("CA_BINNED_BACKGROUND", 0, 1, 1, &bg);
        (void)ca_env_uint("CA_BINNED_STARTER", 0, 1, 1, &st);
        if (bg)
            o.flags |= CA_BINNED_BACKGROUND;
        if (st)
            o.flags |= CA_BINNED_STARTER;
        int err = EINVAL;
        for (unsigned log2 = (unsigned)want; log2 >= 24 && err; log2 -= 2) {
            o.class_range_log2 = log2;
            /* Static storage is zero: cleared again only for a retry (so
             * that start-up touches only the state it uses). */
            if (log2 != (unsigned)want)
                memset(&ca_binned__default_instance, 0, sizeof ca_binned__default_instance);
            err = instance_init(&ca_binned__default_instance, &o, true);
        }
        if (err)
            ca_check_fail(CA_BINNED__COMP, NULL, "cannot set up the default instance (address space?)", __FILE__,
                          __LINE__);
        ca_once_finish(&g_default_state);
    }
    return &ca_binned__default_instance;
}

ca_binned *ca_binned_default(void)
{
    if (ca_likely(__atomic_load_n(&g_default_state, __ATOMIC_ACQUIRE) == 2))
        return &ca_binned__default_instance;
    return default_init_slow();
}

ca_allocator *ca_binned_allocator(ca_binned *b) { return &b->base; }

unsigned ca_binned_flags(const ca_binned *b) { return b->flags; }

/* ------------------------------------------------------------------------
 * Class choice
 * ------------------------------------------------------------------------ */

/* Class for (size, align), or CA_BINNED__NCLASSES for the large tier. align
 * is a power of two. */
static inline unsigned pick_class(size_t size, size_t align)
{
    if (align <= 8) {
        if (size <= CA_BINNED__LUT_MAX)
            return ca_binned__lut8[(size + 7) >> 3];
        return size <= CA_BINNED_SMALL_MAX ? ca_binned__class_of(size) : CA_BINNED__NCLASSES;
    }
    if (align <= 16) {
        if (size <= CA_BINNED__LUT_MAX)
            return ca_binned__lut16[(size + 15) >> 4];
        return size <= CA_BINNED_SMALL_MAX ? ca_binned__class_of(ca_align_up(size, 16)) : CA_BINNED__NCLASSES;
    }
    if (size > CA_BINNED_SMALL_MAX || align > CA_BINNED_SMALL_MAX)
        return CA_BINNED__NCLASSES;
    size_t n = ca_align_up(size ? size : 1, align);
    if (n > CA_BINNED_SMALL_MAX)
        return CA_BINNED__NCLASSES;
    unsigned c = ca_binned__class_of(n);
    while (c < CA_BINNED__NCLASSES && (ca_binned__classes[c].size & (align - 1)))
        c++;
    return c;
}

/* Class of a request with its guard bytes (checks=on), or the large tier. */
static inline unsigned pick_class_guarded(size_t size, size_t align)
{
    if (CA_BINNED__GUARD && size > CA_BINNED_SMALL_MAX)
        return CA_BINNED__NCLASSES;
    return pick_class(size + CA_BINNED__GUARD, align);
}

unsigned ca_binned_size_class(size_t size) { return pick_class_guarded(size, 16); }

size_t ca_binned_class_size(unsigned i) { return i < CA_BINNED__NCLASSES ? ca_binned__classes[i].size : 0; }

/* ------------------------------------------------------------------------
 * Guard (checks=on): the request size and a pattern after the request
 * ------------------------------------------------------------------------ */

ca_attr_noreturn ca_attr_cold ca_attr_noinline static void overflow_fail(const void *p, unsigned cls)
{
    ca_binned__fail_class("heap overflow past the end of a block", cls, p, __FILE__, __LINE__);
}

/* Write the guard of a slot handed out for n bytes. */
static inline void guard_set(void *p, unsigned cls, size_t n)
{
    if (CA_CHECKS >= CA_CHECKS_ON) {
        size_t cs = ca_binned__classes[cls].size;
        uint64_t k = ca_binned__guard_key(p);
        unsigned char *s = (unsigned char *)p;
        size_t end = cs - 4;
        if (end - n > CA_BINNED__GUARD_PATTERN_MAX)
            end = n + CA_BINNED__GUARD_PATTERN_MAX;
        for (size_t i = n; i < end; i++)
            s[i] = (unsigned char)(k >> ((i & 7) * 8));
        uint32_t f = (uint32_t)n ^ (uint32_t)(k >> 32);
        memcpy(s + cs - 4, &f, sizeof f);
    }
}

/* The request size of a live slot, after checking its guard (checks=on);
 * the class size otherwise. */
static inline size_t guard_check(const void *p, unsigned cls)
{
    size_t cs = ca_binned__classes[cls].size;
    if (CA_CHECKS >= CA_CHECKS_ON) {
        uint64_t k = ca_binned__guard_key(p);
        const unsigned char *s = (const unsigned char *)p;
        uint32_t f;
        memcpy(&f, s + cs - 4, sizeof f);
        size_t n = f ^ (uint32_t)(k >> 32);
        if (ca_unlikely(n > cs - CA_BINNED__GUARD))
            overflow_fail(p, cls);
        size_t end = cs - 4;
        if (end - n > CA_BINNED__GUARD_PATTERN_MAX)
            end = n + CA_BINNED__GUARD_PATTERN_MAX;
        for (size_t i = n; i < end; i++)
            if (ca_unlikely(s[i] != (unsigned char)(k >> ((i & 7) * 8))))
                overflow_fail(p, cls);
        return n;
    }
    return cs;
}

/* A block handed out: shadow, and guard for a request of n bytes. */
ca_force_inline void handed_out(const ca_binned *b, void *p, unsigned cls, size_t n)
{
    ca_binned__mark_live(b, p);
    guard_set(p, cls, n);
}

/* p must be a live slot start of class cls (resize, usable size): the same
 * verdict as a free, without freeing; op (CA_BINNED__OP_*) names the
 * operation in the message. */
static inline void require_live(const ca_binned *b, const void *p, unsigned cls, unsigned op)
{
    uint8_t *sh = ca_binned__shadow(b, p);
    if (ca_unlikely(*sh != ca_binned__live_mark(p))) {
        *sh ^= ca_binned__live_mark(p);
        ca_binned__bad_use(b, p, cls, op);
    }
}

/* The class of p, a starter slot handed out (ca_binned__in_starter was true); the
 * verdict of a free for anything else, with op naming the operation. */
static unsigned starter_live(const ca_binned *b, const void *p, unsigned op)
{
    unsigned cls = ca_binned__starter_class(b, p);
    if (cls >= CA_BINNED__NCLASSES || ca_binned__starter_index(b, cls, p) < 0 ||
        *ca_binned__shadow(b, p) != ca_binned__live_mark(p))
        ca_binned__starter_bad_use(b, p, op);
    return cls;
}

/* Free of a starter slot: the checks of any free, then back to its share. */
ca_attr_noinline static void starter_free(ca_binned *b, void *p)
{
    unsigned cls = starter_live(b, p, CA_BINNED__OP_FREE);
    guard_check(p, cls);
    (void)ca_binned__release(b, p); /* live: checked above */
    ca_binned__starter_put(b, cls, p);
}

/* ------------------------------------------------------------------------
 * Fast paths
 *
 * malloc: class from the size, pop the thread's bin, store the slot's
 * shadow byte. free: class from the address, the shadow's xor-and-branch
 * (double, interior or foreign free aborts here), push on the thread's bin.
 * Neither reads nor writes the block itself (checks=off).
 * ------------------------------------------------------------------------ */

/* Pop from the calling thread's bin of cls, or take the slow path; the
 * slot is not marked handed out yet. */
ca_force_inline void *alloc_cls(ca_binned *b, ca_binned__tcache *tc, unsigned cls)
{
    if (ca_likely(tc != NULL)) {
        ca_binned__bin *bin = &tc->bins[cls];
        void **t = bin->top;
        if (ca_likely(t != bin->base)) {
            bin->top = t - 1;
            bin->allocs++;
            return t[-1];
        }
    }
    return ca_binned__alloc_slow(b, tc, cls);
}

ca_force_inline void free_cls(ca_binned *b, ca_binned__tcache *tc, void *p, unsigned cls)
{
    if (ca_unlikely(!ca_binned__release(b, p)))
        ca_binned__bad_free(b, p, cls);
    guard_check(p, cls);
    if (ca_likely(tc != NULL)) {
        ca_binned__bin *bin = &tc->bins[cls];
        void **t = bin->top;
        if (ca_likely(t != bin->limit)) {
            *t = p;
            bin->top = t + 1;
            return;
        }
    }
    ca_binned__free_slow(b, tc, cls, p);
}

ca_attr_noinline static void *default_alloc_slow(size_t size)
{
    ca_binned *b = ca_binned_default();
    unsigned cls = ca_binned__lut_malloc[size + CA_BINNED__GUARD];
    void *p = ca_binned__alloc_slow(b, &ca_binned__tls, cls);
    if (p)
        handed_out(b, p, cls, size);
    return p;
}

/* The large tier; when it finds memory or address space short, what the
 * instance holds goes back (ca_binned__reclaim) and it is asked once more. */
static void *large_alloc(ca_binned *b, size_t size, size_t align, bool zero, size_t *usable)
{
    void *p = ca_binned__large_alloc(b, size, align, zero, usable);
    if (ca_unlikely(!p) && errno == ENOMEM && size < ((size_t)1 << 46)) {
        ca_binned__reclaim(b);
        errno = 0;
        p = ca_binned__large_alloc(b, size, align, zero, usable);
        if (!p)
            errno = ENOMEM;
    }
    return p;
}

ca_attr_noinline static void *default_alloc_big(size_t size)
{
    ca_binned *b = ca_binned_default();
    if (size <= CA_BINNED_SMALL_MAX - CA_BINNED__GUARD) {
        unsigned cls = ca_binned__class_of(ca_align_up(size + CA_BINNED__GUARD, 16));
        void *p = alloc_cls(b, &ca_binned__tls, cls);
        if (p)
            handed_out(b, p, cls, size);
        return p;
    }
    return large_alloc(b, size, 16, false, NULL);
}

void *ca_binned_default_malloc(size_t size)
{
    if (ca_likely(size <= CA_BINNED__LUT_MAX - CA_BINNED__GUARD)) {
        size_t cls = ca_binned__lut_malloc[size + CA_BINNED__GUARD];
        ca_binned__bin *bin = &ca_binned__tls.bins[cls];
        void **t = bin->top;
        if (ca_likely(t != bin->base)) {
            bin->top = t - 1;
            bin->allocs++;
            void *p = t[-1];
            handed_out(&ca_binned__default_instance, p, (unsigned)cls, size);
            return p;
        }
        return default_alloc_slow(size);
    }
    return default_alloc_big(size);
}

ca_attr_noinline static void default_free_other(void *p)
{
    int saved = errno;
    ca_binned *b = &ca_binned__default_instance;
    if (ca_binned__in_starter(b, p))
        starter_free(b, p);
    else if (__atomic_load_n(&g_default_state, __ATOMIC_ACQUIRE) != 2 || !ca_binned__large_free(b, p))
        ca_check_fail(CA_BINNED__COMP, p, "free of a pointer not from the allocator", __FILE__, __LINE__);
    errno = saved;
}

ca_attr_noinline static void default_free_slow(void *p)
{
    int saved = errno;
    ca_binned *b = &ca_binned__default_instance;
    unsigned cls = (unsigned)(((uintptr_t)p - b->span_base) >> b->class_shift);
    ca_binned__free_slow(b, &ca_binned__tls, cls, p);
    errno = saved;
}

/* Not declared noreturn, so that the fast path reaches it by a tail jump
 * (no stack frame set up for a call). */
ca_attr_noinline ca_attr_cold static void default_bad_free(void *p)
{
    ca_binned *b = &ca_binned__default_instance;
    ca_binned__bad_free(b, p, (unsigned)(((uintptr_t)p - b->span_base) >> b->class_shift));
}

/* clang calls a function it knows never returns; musttail makes it jump. */
#if defined(__clang__) && defined(__has_attribute)
#if __has_attribute(musttail)
#define BAD_FREE_TAIL(p) __attribute__((musttail)) return default_bad_free(p)
#endif
#endif
#ifndef BAD_FREE_TAIL
#define BAD_FREE_TAIL(p)     \
    do {                     \
        default_bad_free(p); \
        return;              \
    } while (0)
#endif

/* p is in the mapped part of b's class ranges (then its shadow byte is
 * mapped and *cls is its class); false for anything else, NULL included. */
ca_force_inline bool in_classes(const ca_binned *b, const void *p, size_t *cls)
{
    uintptr_t off = (uintptr_t)p - b->span_base;
    if (!(off < b->span))
        return false;
    *cls = off >> b->class_shift;
    return (uintptr_t)p < __atomic_load_n(&b->class_end[*cls], __ATOMIC_RELAXED);
}

/* The default instance's free of a small block (in_classes was true) after
 * its shadow check passed (the caller aborts through default_bad_free when
 * ca_binned__release refused p). */
ca_force_inline void free_default_small(void *p, size_t cls)
{
    guard_check(p, (unsigned)cls);
    ca_binned__bin *bin = &ca_binned__tls.bins[cls];
    void **t = bin->top;
    if (ca_likely(t != bin->limit)) {
        *t = p;
        bin->top = t + 1;
        return;
    }
    default_free_slow(p);
}

void ca_binned_default_free(void *p)
{
    size_t cls;
    if (ca_likely(in_classes(&ca_binned__default_instance, p, &cls))) {
        if (ca_unlikely(!ca_binned__release(&ca_binned__default_instance, p))) {
            BAD_FREE_TAIL(p);
        }
        free_default_small(p, cls);
        return;
    }
    if (p)
        default_free_other(p);
}

/* ca_binned_default_free_else's path for what is not in the classes: a
 * starter slot is freed here, anything else goes to other (out of line, so
 * that the fast path saves no register). */
ca_attr_noinline static void free_else_other(void *p, void (*other)(void *p))
{
    if (ca_binned__in_starter(&ca_binned__default_instance, p)) {
        int saved = errno;
        starter_free(&ca_binned__default_instance, p);
        errno = saved;
        return;
    }
    other(p);
}

void ca_binned_default_free_else(void *p, void (*other)(void *p))
{
    size_t cls;
    if (ca_likely(in_classes(&ca_binned__default_instance, p, &cls))) {
        if (ca_unlikely(!ca_binned__release(&ca_binned__default_instance, p))) {
            default_bad_free(p); /* does not return; no musttail: other signature */
            return;
        }
        free_default_small(p, cls);
        return;
    }
    free_else_other(p, other);
}

static void *alloc_usable(ca_binned *b, size_t size, size_t align, size_t *usable)
{
    if (ca_unlikely(!ca_is_pow2(align))) {
        errno = EINVAL;
        return NULL;
    }
    unsigned cls = pick_class_guarded(size, align);
    if (cls >= CA_BINNED__NCLASSES)
        return large_alloc(b, size, align, false, usable);
    ca_binned__tcache *tc = b->is_default ? &ca_binned__tls : ca_binned__tcache_get(b);
    void *p = alloc_cls(b, tc, cls);
    if (p) {
        handed_out(b, p, cls, size);
        if (usable)
            *usable = CA_BINNED__GUARD ? size : ca_binned__classes[cls].size;
    }
    return p;
}

void *ca_binned_alloc(ca_binned *b, size_t size, size_t align) { return alloc_usable(b, size, align, NULL); }

void ca_binned_free(ca_binned *b, void *p)
{
    size_t cls;
    if (ca_likely(in_classes(b, p, &cls))) {
        ca_binned__tcache *tc = b->is_default ? &ca_binned__tls : ca_binned__tcache_get(b);
        int saved = errno;
        free_cls(b, tc, p, (unsigned)cls);
        errno = saved;
        return;
    }
    if (!p)
        return;
    int saved = errno;
    if (ca_binned__in_starter(b, p))
        starter_free(b, p);
    else if (!ca_binned__large_free(b, p))
        ca_check_fail(CA_BINNED__COMP, p, "free of a pointer not from the allocator", __FILE__, __LINE__);
    errno = saved;
}

size_t ca_binned_usable_size(const ca_binned *b, const void *p)
{
    if (!p)
        return 0;
    size_t cls;
    if (in_classes(b, p, &cls)) {
        if (CA_CHECKS >= CA_CHECKS_ON) {
            require_live(b, p, (unsigned)cls, CA_BINNED__OP_USABLE);
            return guard_check(p, (unsigned)cls);
        }
        return ca_binned__classes[cls].size;
    }
    if (ca_binned__in_starter(b, p)) {
        unsigned sc = starter_live(b, p, CA_BINNED__OP_USABLE);
        return CA_CHECKS >= CA_CHECKS_ON ? guard_check(p, sc) : ca_binned__classes[sc].size;
    }
    return ca_binned__large_usable(b, p);
}

static bool owns(const ca_binned *b, const void *p)
{
    uintptr_t off = (uintptr_t)p - b->span_base;
    if (off < b->span) {
        unsigned cls = (unsigned)(off >> b->class_shift);
        const ca_binned__class_info *ci = &ca_binned__classes[cls];
        size_t in = off & (((size_t)1 << b->class_shift) - 1);
        size_t bi = in >> ci->block_shift;
        return bi < __atomic_load_n(&b->classes[cls].frontier, __ATOMIC_RELAXED);
    }
    return p && (ca_binned__in_starter(b, p) || ca_binned__large_usable(b, p) != 0);
}

size_t ca_binned_default_usable_size(const void *p)
{
    if (!p)
        return 0;
    return ca_binned_usable_size(ca_binned_default(), p);
}

bool ca_binned_owns(const ca_binned *b, const void *p) { return owns(b, p); }

bool ca_binned_default_owns(const void *p)
{
    if (__atomic_load_n(&g_default_state, __ATOMIC_ACQUIRE) != 2)
        return false;
    return owns(&ca_binned__default_instance, p);
}

void *ca_binned_default_calloc(size_t n, size_t size)
{
    size_t total;
    if (ca_mul_overflows(n, size, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    /* The large tier knows which of its memory reads as zero (fresh or
     * purged) and clears only the rest. */
    if (total > CA_BINNED_SMALL_MAX - CA_BINNED__GUARD)
        return large_alloc(ca_binned_default(), total, 16, true, NULL);
    void *p = ca_binned_default_malloc(total);
    if (p)
        memset(p, 0, total);
    return p;
}

void *ca_binned_default_aligned_alloc(size_t align, size_t size)
{
    return ca_binned_alloc(ca_binned_default(), size, align);
}

/* Resize of a block of b; old_size is what the caller knows (0: unknown,
 * the usable size is copied). */
static void *resize(ca_binned *b, void *p, size_t old_size, size_t new_size, size_t align, unsigned flags,
                    size_t *usable)
{
    if (!ca_is_pow2(align)) {
        errno = EINVAL;
        return NULL;
    }
    if (!p) {
        void *q = ca_binned_alloc(b, new_size, align);
        if (q && usable)
            *usable = ca_binned_usable_size(b, q);
        return q;
    }
    uintptr_t off = (uintptr_t)p - b->span_base;
    unsigned cls;
    if (ca_binned__in_starter(b, p)) {
        cls = starter_live(b, p, CA_BINNED__OP_REALLOC);
    } else if (off >= b->span) {
        /* A shrink into the size classes moves the block there when that
         * saves at least a page and half the block (a large block keeps
         * whole pages resident); without small memory it shrinks in place. */
        size_t cur = (flags & CA_RESIZE_IN_PLACE) ? 0 : ca_binned__large_usable(b, p);
        if (cur && new_size <= CA_BINNED_SMALL_MAX - CA_BINNED__GUARD && new_size <= cur / 2 &&
            cur - new_size >= ca_page_size()) {
            void *q = ca_binned_alloc(b, new_size, align);
            if (q) {
                memcpy(q, p, new_size);
                ca_binned__large_free(b, p);
                if (usable)
                    *usable = ca_binned_usable_size(b, q);
                return q;
            }
        }
        return ca_binned__large_resize(b, p, new_size, align, flags, usable);
    } else {
        cls = (unsigned)(off >> b->class_shift);
        /* Every build: a realloc of a freed, interior or foreign pointer
         * would copy from (or keep) memory the caller does not own. */
        require_live(b, p, cls, CA_BINNED__OP_REALLOC);
    }
    size_t have = ca_binned__classes[cls].size;
    if (CA_CHECKS >= CA_CHECKS_ON) {
        size_t cur = guard_check(p, cls);
        if (!old_size || old_size > cur)
            old_size = cur;
    }
    if (new_size <= have - CA_BINNED__GUARD &&
        (new_size + CA_BINNED__GUARD > have / 2 || (flags & CA_RESIZE_IN_PLACE) || have <= 16)) {
        guard_set(p, cls, new_size);
        if (usable)
            *usable = CA_BINNED__GUARD ? new_size : have;
        return p;
    }
    if (flags & CA_RESIZE_IN_PLACE) {
        errno = ENOMEM;
        return NULL;
    }
    void *q = ca_binned_alloc(b, new_size, align);
    if (!q)
        return NULL;
    size_t keep = old_size && old_size < have ? old_size : have;
    memcpy(q, p, keep < new_size ? keep : new_size);
    ca_binned_free(b, p);
    if (usable)
        *usable = ca_binned_usable_size(b, q);
    return q;
}

/* realloc of p, a block in the default instance's size classes (class
 * cls): in place while the class fits and the new size fills more than half
 * of it, else moved through the malloc and free fast paths. */
static void *default_realloc_small(void *p, unsigned cls, size_t size)
{
    ca_binned *b = &ca_binned__default_instance;
    require_live(b, p, cls, CA_BINNED__OP_REALLOC);
    size_t have = ca_binned__classes[cls].size;
    size_t old = guard_check(p, cls); /* the request (checks=on) or the class size */
    if (ca_likely(size <= have - CA_BINNED__GUARD) && (size + CA_BINNED__GUARD > have / 2 || have <= 16)) {
        if (size == 0) {
            ca_binned_default_free(p);
            return NULL;
        }
        guard_set(p, cls, size);
        return p;
    }
    if (size == 0) {
        ca_binned_default_free(p);
        return NULL;
    }
    void *q = ca_binned_default_malloc(size);
    if (ca_unlikely(!q))
        return NULL;
    memcpy(q, p, old < size ? old : size);
    int saved = errno;
    (void)ca_binned__release(b, p); /* live: checked above */
    free_default_small(p, cls);
    errno = saved;
    return q;
}

void *ca_binned_default_realloc(void *p, size_t size)
{
    size_t cls;
    if (ca_likely(in_classes(&ca_binned__default_instance, p, &cls)))
        return default_realloc_small(p, (unsigned)cls, size);
    if (!p)
        return ca_binned_default_malloc(size);
    if (size == 0) {
        ca_binned_default_free(p);
        return NULL;
    }
    return resize(ca_binned_default(), p, 0, size, 16, 0, NULL);
}

void *ca_binned_default_realloc_else(void *p, size_t size, void *(*other)(void *p, size_t size))
{
    size_t cls;
    if (ca_likely(in_classes(&ca_binned__default_instance, p, &cls)))
        return default_realloc_small(p, (unsigned)cls, size);
    if (ca_binned__in_starter(&ca_binned__default_instance, p))
        return ca_binned_default_realloc(p, size);
    return other(p, size);
}

/* ------------------------------------------------------------------------
 * ca_allocator ops
 * ------------------------------------------------------------------------ */

static void *op_alloc(ca_allocator *a, size_t size, size_t align, size_t *usable)
{
    return alloc_usable((ca_binned *)(void *)a, size, align, usable);
}

static void op_free(ca_allocator *a, void *p, size_t size, size_t align)
{
    (void)size;
    (void)align;
    ca_binned_free((ca_binned *)(void *)a, p);
}

static void op_free_unsized(ca_allocator *a, void *p) { ca_binned_free((ca_binned *)(void *)a, p); }

static size_t op_usable(const ca_allocator *a, const void *p)
{
    return ca_binned_usable_size((const ca_binned *)(const void *)a, p);
}

static void *op_resize(ca_allocator *a, void *p, size_t old_size, size_t new_size, size_t align, unsigned flags,
                       size_t *usable)
{
    return resize((ca_binned *)(void *)a, p, old_size, new_size, align, flags, usable);
}

static bool op_owns(const ca_allocator *a, const void *p) { return owns((const ca_binned *)(const void *)a, p); }

static int op_stats(const ca_allocator *a, ca_stats *out)
{
    return ca_binned_stats((const ca_binned *)(const void *)a, out);
}

static const char *op_check(ca_allocator *a) { return ca_binned_check((const ca_binned *)(const void *)a); }

/* Two tables: instances that register their ranges in core's ownership map
 * carry CA_CAP_OWNER_MAP (libswitch can select them as they are), those made
 * with CA_BINNED_NO_OWNER_MAP do not. */
#define BINNED_OPS(caps_)                                                                                       \
    {                                                                                                           \
        .name = "binned", .caps = (caps_), .alloc = op_alloc, .free = op_free, .free_unsized = op_free_unsized, \
        .usable_size = op_usable, .resize = op_resize, .owns = op_owns, .reset = NULL, .stats = op_stats,       \
        .listen = NULL, .check = op_check,                                                                      \
    }
static const ca_allocator_ops binned_ops = BINNED_OPS(CA_CAP_THREAD_SAFE | CA_CAP_UNSIZED | CA_CAP_OWNER_MAP);
static const ca_allocator_ops binned_ops_unmapped = BINNED_OPS(CA_CAP_THREAD_SAFE | CA_CAP_UNSIZED);

/* ------------------------------------------------------------------------
 * Trim, threads, fork
 * ------------------------------------------------------------------------ */

void ca_binned_trim(ca_binned *b)
{
    if (!b)
        b = ca_binned_default();
    __atomic_fetch_add(&b->epoch, 1, __ATOMIC_ACQ_REL);
    ca_binned__tcache *tc = b->is_default ? &ca_binned__tls : ca_binned__tcache_get(b);
    if (tc && tc->state == CA_BINNED__TC_LIVE) {
        tc->epoch = __atomic_load_n(&b->epoch, __ATOMIC_ACQUIRE);
        ca_binned__tcache_flush_all(b, tc, true);
    }
    /* Waits for a purge pass in progress (the background thread's): blocks
     * it holds in flight would keep their class's tail mapped, and a trim
     * run to recover from ENOMEM (ca_binned__reclaim) must unmap them all. */
    ca_binned__spin_lock(&b->purge_lock, CA_LOCK_RANK_BINNED_REGISTRY);
    for (unsigned i = 0; i < CA_BINNED__NCLASSES; i++) {
        ca_binned__central_drain_recycler(b, i);
        ca_binned__central_purge(b, i, CA_BINNED__PURGE_FORCE, NULL);
    }
    ca_binned__spin_unlock(&b->purge_lock, CA_LOCK_RANK_BINNED_REGISTRY);
    ca_binned__large_trim(b);
    CA_CHECK_WALK(CA_BINNED__COMP, b, ca_binned_check);
}

void ca_binned__reclaim(ca_binned *b) { ca_binned_trim(b); }

void ca_binned_thread_flush(ca_binned *b)
{
    if (!b)
        b = ca_binned_default();
    ca_binned__tcache *tc = b->is_default ? &ca_binned__tls : ca_binned__tcache_get(b);
    if (tc && tc->state == CA_BINNED__TC_LIVE)
        ca_binned__tcache_flush_all(b, tc, false);
    ca_binned__large_flush(b);
    ca_binned__maybe_purge(b);
}

/* Every registry lock, then every class lock (core.h, "Lock order": one
 * rank at a time across the instances). */
void ca_binned_fork_prepare(void)
{
    ca_binned__spin_lock(&g_instances_lock, CA_LOCK_RANK_BINNED_INSTANCES);
    for (ca_binned *b = g_instances; b; b = b->next_instance)
        ca_binned__spin_lock(&b->reg_lock, CA_LOCK_RANK_BINNED_REGISTRY);
    for (ca_binned *b = g_instances; b; b = b->next_instance)
        for (unsigned i = 0; i < CA_BINNED__NCLASSES; i++)
            ca_binned__class_lock(&b->classes[i]);
}

void ca_binned_fork_parent(void)
{
    for (ca_binned *b = g_instances; b; b = b->next_instance) {
        for (unsigned i = CA_BINNED__NCLASSES; i-- > 0;)
            ca_binned__class_unlock(&b->classes[i]);
        ca_binned__spin_unlock(&b->reg_lock, CA_LOCK_RANK_BINNED_REGISTRY);
    }
    ca_binned__spin_unlock(&g_instances_lock, CA_LOCK_RANK_BINNED_INSTANCES);
}

void ca_binned_fork_child(void)
{
    /* Every lock the prepare handler took is free before any is taken
     * again (the repairs below take class and registry locks). */
    for (ca_binned *b = g_instances; b; b = b->next_instance) {
        for (unsigned i = 0; i < CA_BINNED__NCLASSES; i++)
            ca_lock_reset_ranked(&b->classes[i].lock, CA_LOCK_RANK_BINNED_CLASS);
        ca_lock_reset_ranked(&b->reg_lock, CA_LOCK_RANK_BINNED_REGISTRY);
        b->pool_lock = 0; /* not taken by the prepare handler: no other thread exists */
    }
    for (ca_binned *b = g_instances; b; b = b->next_instance) {
        for (unsigned i = 0; i < CA_BINNED__NCLASSES; i++) {
            ca_binned__class *c = &b->classes[i];
            /* A thread may have been between a recycler pop or push and the
             * count update: recount (a bundle it held is lost to the child). */
            uint64_t n = 0, slots = 0;
            for (void *bd = c->rec.top; bd; bd = *ca_binned__bundle_link(bd)) {
                n++;
                slots += ((ca_binned__bundle *)bd)->n;
            }
            c->rec_bundles = n;
            c->rec_slots = slots;
        }
        b->purge_lock = 0; /* its holder, if any, was another thread */
        /* Threads other than this one do not exist here: their caches go
         * back to the blocks. */
        ca_binned__tcache *self = b->is_default ? &ca_binned__tls
                                                : (ca_binned__tcache *)pthread_getspecific(b->key);
        ca_binned__tcache *tc = b->threads;
        while (tc) {
            ca_binned__tcache *next = tc->next;
            if (tc != self) {
                for (unsigned i = 0; i < CA_BINNED__NCLASSES; i++) {
                    ca_binned__bin *bin = &tc->bins[i];
                    /* A push or pop interrupted between its two stores
                     * loses at most that one slot. */
                    uint32_t cnt = bin->base && bin->top > bin->base ? ca_binned__bin_count(bin) : 0;
                    if (cnt > ca_binned__classes[i].cache_max)
                        cnt = 0;
                    if (cnt)
                        ca_binned__central_put(b, i, bin->base, cnt);
                    __atomic_fetch_add(&b->classes[i].exited_allocs, bin->allocs, __ATOMIC_RELAXED);
                    __atomic_fetch_add(&b->classes[i].exited_frees,
                                       (uint64_t)((int64_t)bin->allocs + (int64_t)cnt + tc->moved[i]),
                                       __ATOMIC_RELAXED);
                    bin->top = bin->base;
                    bin->allocs = 0;
                    tc->moved[i] = 0;
                }
                ca_binned__tcache_registry_remove(b, tc);
                ca_binned__arrays_release(b, tc);
                tc->state = CA_BINNED__TC_DEAD;
            }
            tc = next;
        }
    }
    ca_lock_reset_ranked(&g_instances_lock, CA_LOCK_RANK_BINNED_INSTANCES);
}

/* ------------------------------------------------------------------------
 * Statistics
 * ------------------------------------------------------------------------ */

static void class_counts(const ca_binned *b, unsigned i, uint64_t *allocs, uint64_t *frees, uint64_t *cached)
{
    const ca_binned__class *c = &b->classes[i];
    uint64_t a = __atomic_load_n(&c->exited_allocs, __ATOMIC_RELAXED);
    uint64_t f = __atomic_load_n(&c->exited_frees, __ATOMIC_RELAXED);
    uint64_t n = 0;
    ca_binned__spin_lock(b->reg_lk, CA_LOCK_RANK_BINNED_REGISTRY);
    for (const ca_binned__tcache *tc = b->threads; tc; tc = tc->next) {
        /* Racy reads of another thread's bin: a count out of range is read
         * mid-update and taken as 0. */
        uint64_t al = __atomic_load_n(&tc->bins[i].allocs, __ATOMIC_RELAXED);
        void **top = __atomic_load_n(&tc->bins[i].top, __ATOMIC_RELAXED);
        void **base = __atomic_load_n(&tc->bins[i].base, __ATOMIC_RELAXED);
        int64_t mv = __atomic_load_n(&tc->moved[i], __ATOMIC_RELAXED);
        uint64_t cnt = base && top >= base ? (uint64_t)(top - base) : 0;
        if (cnt > ca_binned__classes[i].cache_max)
            cnt = 0;
        a += al;
        f += (uint64_t)((int64_t)al + (int64_t)cnt + mv);
        n += cnt;
    }
    ca_binned__spin_unlock(b->reg_lk, CA_LOCK_RANK_BINNED_REGISTRY);
    *allocs = a;
    *frees = f;
    *cached = n;
}

int ca_binned_class_stats(const ca_binned *b, unsigned i, ca_stats *out)
{
    CA_STATS_COUNTERS(CA_BINNED_CLASS_COUNTERS);
    if (i >= CA_BINNED__NCLASSES)
        return EINVAL;
    const ca_binned__class *c = &b->classes[i];
    const ca_binned__class_info *ci = &ca_binned__classes[i];
    uint64_t allocs, frees, cached;
    class_counts(b, i, &allocs, &frees, &cached);
    uint64_t out_slots = 0, committed = 0, frontier = 0, nempty = 0, decommits = 0, fails = 0, recommits = 0,
             keep = 0, starter = 0;
    int *lk = __atomic_load_n(&c->lock_lk, __ATOMIC_ACQUIRE); /* NULL: a class never used */
    if (lk) {
        ca_binned__spin_lock(lk, CA_LOCK_RANK_BINNED_CLASS); /* ca_binned__class_lock, through the const path */
        out_slots = c->slots_out;
        committed = c->committed, frontier = c->frontier, nempty = c->nempty, decommits = c->decommits,
        fails = c->commit_fail, recommits = c->recommits, keep = c->keep;
        ca_binned__spin_unlock(lk, CA_LOCK_RANK_BINNED_CLASS);
    }
    /* Starter slots out (their class may not be set up: read racily). */
    starter = (uint64_t)__builtin_popcount(__atomic_load_n(&c->st_live, __ATOMIC_RELAXED));
    uint64_t rec = __atomic_load_n(&c->rec_bundles, __ATOMIC_RELAXED);
    uint64_t held = cached + __atomic_load_n(&c->rec_slots, __ATOMIC_RELAXED);
    ca_stats_init(out, "binned-class");
    out->bytes_in_use = ((out_slots > held ? out_slots - held : 0) + starter) * ci->size;
    out->bytes_reserved = (uint64_t)1 << b->class_shift;
    out->bytes_committed = committed << ci->block_shift;
    out->peak_in_use = 0;
    out->allocs = allocs;
    out->frees = frees;
    out->failures = fails;
    CA_STATS_SET(out, class_size, ci->size);
    CA_STATS_SET(out, blocks, frontier);
    CA_STATS_SET(out, empty_blocks, nempty);
    CA_STATS_SET(out, decommits, decommits);
    CA_STATS_SET(out, recommits, recommits);
    CA_STATS_SET(out, keep_blocks, keep);
    CA_STATS_SET(out, cached_slots, cached);
    CA_STATS_SET(out, recycled_bundles, rec);
    CA_STATS_SET(out, recycled_slots, __atomic_load_n(&c->rec_slots, __ATOMIC_RELAXED));
    return 0;
}

int ca_binned_stats(const ca_binned *b, ca_stats *out)
{
    CA_STATS_COUNTERS(CA_BINNED_COUNTERS);
    ca_stats_init(out, "binned");
    uint64_t cached = 0, rec = 0, blocks = 0, decommits = 0, recommits = 0, empty = 0;
    for (unsigned i = 0; i < CA_BINNED__NCLASSES; i++) {
        ca_stats s;
        ca_binned_class_stats(b, i, &s);
        out->bytes_in_use += s.bytes_in_use;
        out->bytes_committed += s.bytes_committed;
        out->allocs += s.allocs;
        out->frees += s.frees;
        out->failures += s.failures;
        uint64_t v;
        if (ca_stats_get_counter(&s, "cached_slots", &v))
            cached += v * ca_binned__classes[i].size;
        if (ca_stats_get_counter(&s, "recycled_slots", &v))
            rec += v * ca_binned__classes[i].size;
        if (ca_stats_get_counter(&s, "blocks", &v))
            blocks += v;
        if (ca_stats_get_counter(&s, "decommits", &v))
            decommits += v;
        if (ca_stats_get_counter(&s, "recommits", &v))
            recommits += v;
        if (ca_stats_get_counter(&s, "empty_blocks", &v))
            empty += v;
    }
    size_t reserved = b->span;
    if (b->on_demand) {
        reserved = 0;
        for (unsigned i = 0; i < CA_BINNED__NCLASSES; i++)
            reserved += __atomic_load_n(&b->classes[i].span_mapped, __ATOMIC_RELAXED);
    }
    out->bytes_reserved = reserved;
    ca_stats l;
    ca_binned__large_stats(b, &l);
    out->bytes_in_use += l.bytes_in_use;
    out->bytes_reserved += l.bytes_reserved;
    out->bytes_committed += l.bytes_committed;
    out->allocs += l.allocs;
    out->frees += l.frees;
    out->failures += l.failures;
    /* The peak: sampled here, or the large tier's exact one when higher. */
    uint64_t peak = __atomic_load_n(&b->peak_sampled, __ATOMIC_RELAXED);
    while (out->bytes_in_use > peak && !__atomic_compare_exchange_n(b->peak_sampled_mut, &peak, out->bytes_in_use,
                                                                    false, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
        ;
    if (out->bytes_in_use > peak)
        peak = out->bytes_in_use;
    out->peak_in_use = peak > l.peak_in_use ? peak : l.peak_in_use;
    CA_STATS_SET(out, cached_bytes, cached);
    CA_STATS_SET(out, recycled_bytes, rec);
    CA_STATS_SET(out, blocks, blocks);
    CA_STATS_SET(out, empty_blocks, empty);
    CA_STATS_SET(out, decommits, decommits);
    CA_STATS_SET(out, recommits, recommits);
    CA_STATS_SET(out, large_in_use, l.bytes_in_use);
    CA_STATS_SET(out, threads_seen, __atomic_load_n(&b->nthreads_seen, __ATOMIC_RELAXED));
    CA_STATS_SET(out, page_kind, b->page_kind);
    CA_STATS_SET(out, pressure_trims, __atomic_load_n(&b->pressure_trims, __ATOMIC_RELAXED));
    return 0;
}
