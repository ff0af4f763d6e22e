/* SPDX-License-Identifier: MIT */
/*
 * The malloc family over the switch: allocation from the current selection,
 * free / realloc / usable size routed to the owner of the pointer.
 *
 * Read first: ca_switch_malloc and ca_switch_free, then ca_switch_realloc.
 *
 * Routing: owner = ca_owner_lookup(p) (three dependent loads). An owner is a
 * ca_allocator (the ownership-map convention); a large block of libbinned's
 * default instance maps to its region's record, whose free takes the region
 * from that one walk; a ca_switch_local owner
 * decides itself whether the free is local or goes to its remote queue.
 * Without an owner the pointer belongs to the bootstrap area or to the base
 * allocator; when the base registers all its memory (libbinned) such a
 * pointer is foreign: checks=on aborts, checks=off ignores it (counted).
 *
 * Concurrency: no state of its own; each call touches the caller's
 * thread-locals and the owner allocator, whose ops are thread-safe or are a
 * ca_switch_local (which handles other threads).
 */
#include "switch_private.h"

#include <stdint.h>
#include <unistd.h>

#ifdef CA_SWITCH_GLOBAL_BINNED
#include <ctxalloc/binned.h>
/* With libbinned as base, the base's malloc-style entry points are called by
 * name when the base is selected / owns the block: a direct call instead of
 * the ops table (and libbinned keeps errno itself), which is what keeps the
 * switch within a few percent of calling libbinned directly. */
#define BASE_IS_BINNED 1
#else
#define BASE_IS_BINNED 0
#endif

/* ------------------------------------------------------------------------
 * The owner of pages whose allocator was destroyed (CA_OWNER_RETIRED in the
 * map): every operation reports exactly that. free / usable size: checks=on
 * aborts, checks=off counts and ignores; realloc aborts in every build (the
 * block's size is unknown).
 * ------------------------------------------------------------------------ */

#define RETIRED_WHAT "free of a block whose allocator was destroyed"

static void *retired_alloc(ca_allocator *a, size_t size, size_t align, size_t *usable)
{
    (void)a, (void)size, (void)align, (void)usable;
    errno = ENOMEM;
    return NULL;
}

static void retired_free_unsized(ca_allocator *a, void *p)
{
    (void)a;
    ca_switch__count(&ca_switch__g.counters.retired_frees, 1);
    CA_CHECK(false, "switch", p, RETIRED_WHAT);
}

static void retired_free(ca_allocator *a, void *p, size_t size, size_t align)
{
    (void)size, (void)align;
    retired_free_unsized(a, p);
}

static size_t retired_usable(const ca_allocator *a, const void *p)
{
    (void)a;
    CA_CHECK(false, "switch", p, "malloc_usable_size of a block whose allocator was destroyed");
    return 0;
}

static void *retired_resize(ca_allocator *a, void *p, size_t old_size, size_t new_size, size_t align,
                            unsigned flags, size_t *usable)
{
    (void)a, (void)old_size, (void)new_size, (void)align, (void)flags, (void)usable;
    ca_check_fail("switch", p, "realloc of a block whose allocator was destroyed", __FILE__, __LINE__);
}

static const ca_allocator_ops retired_ops = {
    .name = "switch-retired",
    .caps = CA_CAP_THREAD_SAFE | CA_CAP_UNSIZED,
    .alloc = retired_alloc,
    .free = retired_free,
    .free_unsized = retired_free_unsized,
    .usable_size = retired_usable,
    .resize = retired_resize,
};

ca_allocator ca_switch__retired_allocator = {&retired_ops};

ca_allocator *ca_switch__unowned(const void *p)
{
    if (ca_switch__in_boot(p))
        return &ca_switch__boot_allocator;
    ca_allocator *base = ca_switch__g.base;
    if (ca_unlikely(!base))
        base = ca_switch_base();
    /* A base that registers its memory may still own blocks outside the
     * map (a large tier with its own bookkeeping): ask it before calling
     * the pointer foreign. */
    if (ca_switch__g.base_registers && !ca_owns(base, p))
        return NULL;
    return base;
}

/* The allocator that handles p (p != NULL), or NULL for a foreign pointer.
 * Retired pages (a destroyed allocator's) go to the retired allocator when
 * the base registers all its memory; otherwise the base may have mapped
 * memory there since, so they count as unowned. */
ca_force_inline ca_allocator *route_from(const void *p, ca_allocator *o)
{
    if (ca_likely(o != NULL && (void *)o != CA_OWNER_RETIRED))
        return o;
    if (o && ca_switch__g.base_registers)
        return &ca_switch__retired_allocator;
    return ca_switch__unowned(p);
}

ca_force_inline ca_allocator *route(const void *p) { return route_from(p, (ca_allocator *)ca_owner_lookup(p)); }

ca_attr_cold ca_attr_noinline static void foreign(const void *p, const char *what)
{
    ca_switch__count(&ca_switch__g.counters.unowned_frees, 1);
    CA_CHECK(false, "switch", p, what);
}

ca_allocator *ca_switch_owner(const void *p)
{
    if (!p)
        return NULL;
    ca_allocator *o = route(p);
    return o ? o : ca_switch__g.base;
}

/* Allocate from the selected allocator a. A non-base allocator that calls
 * malloc itself while allocating gets the base allocator for that nested
 * call instead of itself (no recursion). */
static void *alloc_from(ca_allocator *a, size_t size, size_t align)
{
    ca_allocator *base = ca_switch__g.base;
    if (a == base || a == &ca_switch__boot_allocator)
        return a->ops->alloc(a, size, align, NULL);
    if (ca_switch__tl_busy)
        return base ? base->ops->alloc(base, size, align, NULL) : NULL;
    ca_switch__tl_busy = true;
    void *p = a->ops->alloc(a, size, align, NULL);
    ca_switch__tl_busy = false;
    return p;
}

/* Everything but the base fast path: initialisation, other selections. */
ca_attr_noinline static void *malloc_slow(ca_allocator *a, size_t size)
{
    if (!a)
        a = ca_switch__current();
    return alloc_from(a, size, CA_ALIGN_DEFAULT);
}

bool ca_switch__base_is_binned(void)
{
#if BASE_IS_BINNED
    return ca_switch__g.base != NULL && ca_switch__g.base == ca_binned_allocator(ca_binned_default());
#else
    return false;
#endif
}

void *ca_switch_malloc(size_t size)
{
#if BASE_IS_BINNED
    /* Neither a context nor a thread selection (both words tested at once),
     * and the global one is libbinned's default instance: straight there. */
    if (ca_likely(((uintptr_t)ca_switch__tl.context | (uintptr_t)ca_switch__tl.thread) == 0 &&
                  __atomic_load_n(&ca_switch__g.global_binned, __ATOMIC_RELAXED)))
        return ca_binned_default_malloc(size);
#endif
    return malloc_slow(NULL, size);
}

/* p's owner-map entry is `entry` (looked up by the caller). */
ca_attr_noinline static void free_slow(void *p, ca_allocator *entry)
{
    if (!p)
        return;
    int saved = errno;
    ca_allocator *o = route_from(p, entry);
    if (ca_likely(o != NULL)) {
        CA_ASSERT(o->ops->free_unsized, "switch", p, "owner allocator cannot free without a size");
        o->ops->free_unsized(o, p);
    } else {
        foreign(p, "free of a pointer no allocator owns");
    }
    errno = saved;
}

/* Every free that is not a small block of libbinned's default instance:
 * the ownership map names the owner. */
static void free_routed(void *p)
{
#if BASE_IS_BINNED
    void *e = ca_owner_entry(p);
    ca_owner_record *r = ca_owner_entry_record(e);
    if (r) {
        /* A record (a region of libbinned's large tier): the same walk gave
         * the region, which the record's free takes directly. */
        if (ca_likely(r->owner == ca_switch__g.base && r->owner && r->free)) {
            int saved = errno;
            r->free(r, p);
            errno = saved;
            return;
        }
        e = r->owner;
    }
    ca_allocator *o = (ca_allocator *)e;
    if (ca_likely(o == ca_switch__g.base && o)) {
        ca_binned_default_free(p);
        return;
    }
#else
    ca_allocator *o = p ? (ca_allocator *)ca_owner_lookup(p) : NULL;
#endif
    free_slow(p, o);
}

void ca_switch_free(void *p)
{
#if BASE_IS_BINNED
    /* Routing in one step: a pointer in the mapped part of the default
     * instance's size classes is libbinned's (a range compare inside
     * ca_binned_default_free_else, no map walk), unless some adoption overlays
     * memory of another owner (then the map is the authority). */
    if (ca_likely(!ca_owner_overlaid())) {
        ca_binned_default_free_else(p, free_routed);
        return;
    }
#endif
    free_routed(p);
}

void *ca_switch_calloc(size_t n, size_t size)
{
    size_t total;
    if (ca_unlikely(ca_mul_overflows(n, size, &total) || total > PTRDIFF_MAX)) {
        errno = ENOMEM;
        return NULL;
    }
    ca_allocator *a = ca_switch__current();
#if BASE_IS_BINNED
    if (a == ca_switch__g.base) /* it knows which memory reads as zero */
        return ca_binned_default_calloc(n, size);
#endif
    void *p = alloc_from(a, total, CA_ALIGN_DEFAULT);
    if (p)
        memset(p, 0, total);
    return p;
}

size_t ca_switch_usable_size(const void *p)
{
    if (!p)
        return 0;
    ca_allocator *o = route(p);
    if (ca_unlikely(!o)) {
        CA_CHECK(false, "switch", p, "malloc_usable_size of a pointer no allocator owns");
        return 0;
    }
    return o->ops->usable_size ? o->ops->usable_size(o, p) : 0;
}

/* Move p (usable bytes `old`) into a block from the current selection. */
static void *realloc_move(ca_allocator *o, void *p, size_t old, size_t size)
{
    void *q = alloc_from(ca_switch__current(), size, CA_ALIGN_DEFAULT);
    if (!q)
        return NULL;
    memcpy(q, p, old < size ? old : size);
    o->ops->free_unsized(o, p);
    ca_switch__count(&ca_switch__g.counters.moved_reallocs, 1);
    return q;
}

static void *realloc_routed(void *p, size_t size);

void *ca_switch_realloc(void *p, size_t size)
{
    if (!p)
        return ca_switch_malloc(size);
    if (size == 0) {
        ca_switch_free(p);
        return NULL;
    }
    if (ca_unlikely(size > PTRDIFF_MAX)) {
        errno = ENOMEM;
        return NULL;
    }
#if BASE_IS_BINNED
    /* As free: a small block of libbinned's default instance is resized there
     * (a range compare, no map walk) unless adoptions overlay memory. */
    if (ca_likely(!ca_owner_overlaid()))
        return ca_binned_default_realloc_else(p, size, realloc_routed);
#endif
    return realloc_routed(p, size);
}

/* Every realloc that is not of a small block of libbinned's default
 * instance (p not NULL, size in 1..PTRDIFF_MAX): the map names the owner. */
static void *realloc_routed(void *p, size_t size)
{
    ca_allocator *o = route(p);
    /* A foreign pointer's size is unknown: nothing safe can be done. */
    CA_ASSERT(o != NULL, "switch", p, "realloc of a pointer no allocator owns");
    if (ca_unlikely(o == &ca_switch__retired_allocator))
        return retired_resize(o, p, 0, size, CA_ALIGN_DEFAULT, 0, NULL);
    CA_ASSERT(o->ops->usable_size, "switch", p, "owner allocator cannot tell a block's size");
    size_t old = o->ops->usable_size(o, p);
    if (o->ops == &ca_switch__local_ops) {
        const ca_switch_local *l = (const ca_switch_local *)o;
        if (__atomic_load_n(&l->owner, __ATOMIC_RELAXED) != ca_switch__self())
            return realloc_move(o, p, old, size);
    } else if (ca_switch__is_adopted(o)) {
        if (ca_switch__adopt_foreign_local(o))
            return realloc_move(o, p, old, size);
    } else if (o == &ca_switch__boot_allocator) {
        return realloc_move(o, p, old, size);
    }
    /* The owner resizes (libbinned: in place while the new size fills more
     * than half the class, else moved; growth may move within the owner).
     * On failure p is intact and errno is set by the owner. A
     * malloc the owner makes meanwhile is served by the base. */
    if (o == ca_switch__g.base || ca_switch__tl_busy)
        return ca_resize(o, p, old, size, CA_ALIGN_DEFAULT, 0);
    ca_switch__tl_busy = true;
    void *q = ca_resize(o, p, old, size, CA_ALIGN_DEFAULT, 0);
    ca_switch__tl_busy = false;
    return q;
}

void *ca_switch_reallocarray(void *p, size_t n, size_t size)
{
    size_t total;
    if (ca_mul_overflows(n, size, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    return ca_switch_realloc(p, total);
}

static void *aligned(size_t align, size_t size)
{
    if (ca_unlikely(size > PTRDIFF_MAX)) {
        errno = ENOMEM;
        return NULL;
    }
    if (align < CA_ALIGN_DEFAULT)
        align = CA_ALIGN_DEFAULT;
    return alloc_from(ca_switch__current(), size, align);
}

int ca_switch_posix_memalign(void **out, size_t align, size_t size)
{
    if (!ca_is_pow2(align) || align % sizeof(void *) != 0)
        return EINVAL;
    int saved = errno;
    void *p = aligned(align, size);
    if (!p) {
        int e = errno ? errno : ENOMEM;
        errno = saved;
        return e;
    }
    *out = p;
    errno = saved;
    return 0;
}

void *ca_switch_aligned_alloc(size_t align, size_t size)
{
    if (!ca_is_pow2(align)) {
        errno = EINVAL;
        return NULL;
    }
    return aligned(align, size);
}

void *ca_switch_memalign(size_t align, size_t size)
{
    if (align <= CA_ALIGN_DEFAULT)
        return aligned(CA_ALIGN_DEFAULT, size);
    size_t a;
    if (ca_next_pow2_overflows(align, &a)) {
        errno = EINVAL;
        return NULL;
    }
    return aligned(a, size);
}

void *ca_switch_valloc(size_t size) { return aligned(ca_page_size(), size); }

void *ca_switch_pvalloc(size_t size)
{
    size_t page = ca_page_size(), n;
    if (ca_align_up_overflows(size, page, &n)) {
        errno = ENOMEM;
        return NULL;
    }
    return aligned(page, n ? n : page);
}

int ca_switch_trim(size_t pad)
{
    (void)pad;
#if BASE_IS_BINNED
    ca_allocator *base = ca_switch_base();
    ca_stats before, after;
    (void)ca_stats_get(base, &before);
    ca_binned_trim(NULL);
    (void)ca_stats_get(base, &after);
    return after.bytes_committed < before.bytes_committed;
#else
    return 0;
#endif
}
