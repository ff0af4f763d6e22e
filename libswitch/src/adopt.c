/* SPDX-License-Identifier: MIT */
/*
 * Adoption: any allocator made routable behind malloc in one call.
 *
 * Read first: ca_switch_adopt (how the chain inner -> header -> local is
 * built), then the listener callbacks (on_added ... on_destroyed), which keep
 * the ownership map in step with the inner allocator's memory, and the
 * lifetime checks.
 *
 * Calls through an adoption: &ad->base (ops adopt_ops[]) forwards to
 * ad->target, which is the inner allocator, a ca_header_allocator over it
 * (inners without unsized free) or a ca_switch_local over either (inners that
 * are not thread-safe). &ad->base is the owner registered for every page of
 * the inner's memory, so free() reaches the adoption, which counts the block
 * and forwards it. Inners with CA_CAP_OWNER_MAP register themselves: their
 * blocks route to them directly and the adoption only forwards allocations.
 *
 * Concurrency model:
 *   - allocs / frees / selected / ranges / bytes / lifetime_errors are
 *     relaxed atomics: frees come from any thread (remote frees of a
 *     single-thread inner are counted when they are queued).
 *   - state is written by adopt / unadopt (the owner) and by the destroyed()
 *     event, read with acquire by allocation and the setters.
 *   - Listener events run on whichever thread makes the inner allocator grow
 *     or shrink (any thread for thread-safe inners); they only touch the
 *     ownership map (lock-free) and atomics.
 *   - The registry of adoptions (for statistics and checks) is a list under
 *     the switch's registry lock (select.c).
 */
#include "switch_private.h"

#include <stddef.h>

enum { STATE_NONE = 0, STATE_ACTIVE = 1, STATE_DEAD = 2 };

/* ------------------------------------------------------------------------
 * Messages: the calling thread's last error (core.h), built without malloc
 * or stdio (callers may be inside malloc)
 * ------------------------------------------------------------------------ */

/* Set by fail(): this thread's adopt can tell a refusal its listener
 * explained (on_added runs in the attaching thread) from one it did not. */
static CA_SWITCH_TLS bool g_noted;

static const char *inner_name(const ca_switch_adopted *ad)
{
    return ad->inner && ad->inner->ops && ad->inner->ops->name ? ad->inner->ops->name : "allocator";
}

/* Start the thread's message "switch: <inner name>: <what>"; the rest may
 * be appended to the line returned. */
static ca_line *fail_line(const ca_switch_adopted *ad, const char *what)
{
    ca_line *m = ca_core__last_error_begin("switch");
    ca_line_str(m, inner_name(ad));
    ca_line_str(m, ": ");
    ca_line_str(m, what);
    g_noted = true;
    return m;
}

/* The thread's message "switch: <inner name>: <what>"; returns e. */
static int fail(const ca_switch_adopted *ad, int e, const char *what)
{
    (void)fail_line(ad, what);
    return e;
}

/* A lifetime error: checks=on aborts with one line naming the allocator and
 * the count; checks=off counts it. */
static void lifetime_error(ca_switch_adopted *ad, const char *what, uint64_t n, const char *unit)
{
    __atomic_fetch_add(&ad->lifetime_errors, 1, __ATOMIC_RELAXED);
    ca_switch__count(&ca_switch__g.counters.lifetime_errors, 1);
    char buf[160];
    ca_line m;
    ca_line_init(&m, buf, sizeof buf);
    ca_line_str(&m, inner_name(ad));
    ca_line_str(&m, " ");
    ca_line_str(&m, what);
    ca_line_str(&m, " ");
    ca_line_u64(&m, n, 10);
    ca_line_str(&m, " ");
    ca_line_str(&m, unit);
    CA_CHECK(false, "switch", ad->inner, buf);
}

/* ------------------------------------------------------------------------
 * The adoption as an allocator
 * ------------------------------------------------------------------------ */

static ca_switch_adopted *AD(ca_allocator *a) { return (ca_switch_adopted *)a; }
static const ca_switch_adopted *CAD(const ca_allocator *a) { return (const ca_switch_adopted *)a; }

/* Blocks handed out and not freed. An inner that registers itself gets its
 * frees directly, so its adoption does not track blocks (always 0). */
static uint64_t live_of(const ca_switch_adopted *ad)
{
    if (ad->flags & CA_SWITCH__ADOPT_SELF)
        return 0;
    uint64_t f = __atomic_load_n(&ad->frees, __ATOMIC_RELAXED);
    uint64_t a = __atomic_load_n(&ad->allocs, __ATOMIC_RELAXED);
    return a > f ? a - f : 0;
}

ca_attr_cold ca_attr_noinline static void *alloc_refused(ca_switch_adopted *ad)
{
    CA_CHECK(false, "switch", ad->inner,
             __atomic_load_n(&ad->state, __ATOMIC_ACQUIRE) == STATE_DEAD
                 ? "allocation through an adoption whose allocator was destroyed"
                 : "allocation through an adoption that was undone");
    errno = ENOMEM;
    return NULL;
}

static void *adopt_alloc(ca_allocator *a, size_t size, size_t align, size_t *usable)
{
    ca_switch_adopted *ad = AD(a);
    if (ca_unlikely(__atomic_load_n(&ad->state, __ATOMIC_ACQUIRE) != STATE_ACTIVE))
        return alloc_refused(ad);
    void *p = ad->target->ops->alloc(ad->target, size, align, usable);
    if (ca_likely(p != NULL) && !(ad->flags & CA_SWITCH__ADOPT_SELF))
        __atomic_fetch_add(&ad->allocs, 1, __ATOMIC_RELAXED);
    return p;
}

static void adopt_free(ca_allocator *a, void *p, size_t size, size_t align)
{
    ca_switch_adopted *ad = AD(a);
    if (!p)
        return;
    __atomic_fetch_add(&ad->frees, 1, __ATOMIC_RELAXED);
    ad->target->ops->free(ad->target, p, size, align);
}

static void adopt_free_unsized(ca_allocator *a, void *p)
{
    ca_switch_adopted *ad = AD(a);
    if (!p)
        return;
    __atomic_fetch_add(&ad->frees, 1, __ATOMIC_RELAXED);
    ad->target->ops->free_unsized(ad->target, p);
}

static size_t adopt_usable(const ca_allocator *a, const void *p) { return ca_usable_size(CAD(a)->target, p); }

static void *adopt_resize(ca_allocator *a, void *p, size_t old_size, size_t new_size, size_t align, unsigned flags,
                          size_t *usable)
{
    ca_switch_adopted *ad = AD(a);
    if (!p)
        return adopt_alloc(a, new_size, align, usable);
    ca_allocator *t = ad->target;
    if (t->ops->resize)
        return t->ops->resize(t, p, old_size, new_size, align, flags, usable);
    return ca_resize_generic(t, p, old_size, new_size, align, flags, usable);
}

static bool adopt_owns(const ca_allocator *a, const void *p) { return ca_owns(CAD(a)->target, p); }

/* The inner's reset() event does the lifetime accounting. */
static void adopt_reset(ca_allocator *a) { (void)ca_reset(AD(a)->target); }

/* Over a single-thread inner the target is a ca_switch_local, whose counters
 * come first: both layers together must fit beside the inner's. */
#define ADOPT_STACK_COUNTERS(X) CA_SWITCH_LOCAL_COUNTERS(X) CA_SWITCH_ADOPTED_COUNTERS(X)

static int adopt_stats(const ca_allocator *a, ca_stats *out)
{
    CA_STATS_LAYER_COUNTERS(ADOPT_STACK_COUNTERS);
    const ca_switch_adopted *ad = CAD(a);
    int e = ca_stats_get(ad->target, out);
    CA_STATS_SET(out, adopt_live, live_of(ad));
    CA_STATS_SET(out, adopt_ranges, __atomic_load_n(&ad->ranges, __ATOMIC_RELAXED));
    CA_STATS_SET(out, adopt_bytes, __atomic_load_n(&ad->bytes, __ATOMIC_RELAXED));
    CA_STATS_SET(out, adopt_selected, __atomic_load_n(&ad->selected, __ATOMIC_RELAXED));
    CA_STATS_SET(out, adopt_lifetime_errors, __atomic_load_n(&ad->lifetime_errors, __ATOMIC_RELAXED));
    return e;
}

/* The adoption's own invariants, then the allocator it wraps (target: the
 * local queue when there is one, else the inner allocator). */
static const char *adopt_walk(ca_allocator *a)
{
    ca_switch_adopted *ad = AD(a);
    const char *m = ca_switch__adopt_check(ad);
    return m ? m : ca_check(ad->target);
}

/* One table per combination of the inner's THREAD_SAFE and FREE_NOOP bits,
 * which the adoption keeps; every adoption is UNSIZED and registered in the
 * map under itself. */
#define ADOPT_OPS(caps_)                                                                                        \
    {                                                                                                           \
        .name = "switch-adopted", .caps = (caps_) | CA_CAP_UNSIZED | CA_CAP_OWNER_MAP, .alloc = adopt_alloc,    \
        .free = adopt_free, .free_unsized = adopt_free_unsized, .usable_size = adopt_usable,                    \
        .resize = adopt_resize, .owns = adopt_owns, .reset = adopt_reset, .stats = adopt_stats, .listen = NULL, \
        .check = adopt_walk,                                                                                    \
    }
const ca_allocator_ops ca_switch__adopt_ops[4] = {
    ADOPT_OPS(0),
    ADOPT_OPS(CA_CAP_THREAD_SAFE),
    ADOPT_OPS(CA_CAP_FREE_NOOP),
    ADOPT_OPS(CA_CAP_THREAD_SAFE | CA_CAP_FREE_NOOP),
};
CA_STATIC_ASSERT(CA_CAP_THREAD_SAFE == 1 && CA_CAP_FREE_NOOP == 4, "adopt_ops is indexed by these bits");

static const ca_allocator_ops *ops_for(unsigned caps)
{
    return &ca_switch__adopt_ops[(caps & CA_CAP_THREAD_SAFE) | ((caps & CA_CAP_FREE_NOOP) ? 2 : 0)];
}

/* ------------------------------------------------------------------------
 * Listener: the inner allocator's memory events
 * ------------------------------------------------------------------------ */

static ca_switch_adopted *of_listener(ca_listener *l)
{
    return (ca_switch_adopted *)(void *)((char *)l - offsetof(ca_switch_adopted, listener));
}

static bool free_noop(const ca_switch_adopted *ad)
{
    return (ca_allocator_caps(ad->inner) & CA_CAP_FREE_NOOP) != 0;
}

static int on_added(ca_listener *l, void *base, size_t size)
{
    ca_switch_adopted *ad = of_listener(l);
    if (!ca_is_aligned((uintptr_t)base, CA_OWNER_PAGE) || !ca_is_aligned(size, CA_OWNER_PAGE)) {
        ca_line *m = fail_line(ad, "range ");
        ca_line_addr(m, base);
        ca_line_str(m, " + ");
        ca_line_u64(m, size, 10);
        ca_line_str(m, " is not whole 4 KiB pages: give the allocator page-aligned memory");
        return EINVAL;
    }
    /* Memory of a block of another registered allocator (a parent) is
     * overlaid; the parent gets it back on unregistration. */
    int e = ca_owner_register(base, size, &ad->base);
    if (e == EEXIST)
        e = ca_owner_overlay(base, size, &ad->base);
    if (e)
        return fail(ad, e,
                    e == ENOMEM ? "no memory for the ownership map"
                                : "part of its memory is already registered to another adoption");
    __atomic_fetch_add(&ad->ranges, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&ad->bytes, size, __ATOMIC_RELAXED);
    return 0;
}

static void on_removed(ca_listener *l, void *base, size_t size)
{
    ca_switch_adopted *ad = of_listener(l);
    if (__atomic_load_n(&ad->state, __ATOMIC_ACQUIRE) == STATE_DEAD)
        (void)ca_owner_retire(base, size, &ad->base);
    else
        (void)ca_owner_unregister(base, size, &ad->base);
    __atomic_fetch_sub(&ad->ranges, 1, __ATOMIC_RELAXED);
    __atomic_fetch_sub(&ad->bytes, size, __ATOMIC_RELAXED);
}

/* Every block died at once: a bump's reset by design; for others an error
 * when blocks were live. The live count restarts at 0 either way. */
static void on_reset(ca_listener *l)
{
    ca_switch_adopted *ad = of_listener(l);
    uint64_t live = live_of(ad);
    if (live && !free_noop(ad))
        lifetime_error(ad, "reset with", live, "live blocks");
    __atomic_fetch_add(&ad->frees, live, __ATOMIC_RELAXED);
}

static void on_destroyed(ca_listener *l)
{
    ca_switch_adopted *ad = of_listener(l);
    uint64_t live = live_of(ad), sel = __atomic_load_n(&ad->selected, __ATOMIC_RELAXED);
    if (live && !free_noop(ad))
        lifetime_error(ad, "destroyed with", live, "live blocks");
    if (sel)
        lifetime_error(ad, "destroyed while selected by", sel, "threads or contexts");
    /* From here on its pages are retired (on_removed) and allocation through
     * the adoption fails; queued remote frees die with the allocator. */
    __atomic_store_n(&ad->state, STATE_DEAD, __ATOMIC_RELEASE);
    __atomic_store_n(&ad->local.remote, NULL, __ATOMIC_RELAXED);
    ca_switch__unregister_adopted(ad);
}

/* ------------------------------------------------------------------------
 * Adopt / unadopt
 * ------------------------------------------------------------------------ */

int ca_switch_adopt(ca_switch_adopted *ad, ca_allocator *a)
{
    if (!ad)
        return ca_core__last_error_set("switch", "adopt: NULL ca_switch_adopted", EINVAL);
    if (ca_switch__adopted_registered(ad))
        return fail(ad, EBUSY, "this ca_switch_adopted is in use: undo it first");
    memset(ad, 0, sizeof *ad);
    ad->inner = a;
    if (!a || !a->ops)
        return fail(ad, EINVAL, "NULL allocator");
    if (ca_switch__is_adopted(a))
        return fail(ad, EINVAL, "is already an adoption: select it as it is");
    unsigned caps = ca_allocator_caps(a);
    bool is_local = a->ops == &ca_switch__local_ops;
    if (is_local && __atomic_load_n(&((ca_switch_local *)a)->owner, __ATOMIC_RELAXED) != ca_switch__self())
        return fail(ad, EPERM, "is a ca_switch_local owned by another thread: adopt it from its owner");
    ad->target = a;
    ad->listener.added = on_added;
    ad->listener.removed = on_removed;
    ad->listener.reset = on_reset;
    ad->listener.destroyed = on_destroyed;
    ad->base.ops = ops_for(caps);
    if ((caps & (CA_CAP_OWNER_MAP | CA_CAP_UNSIZED)) == (CA_CAP_OWNER_MAP | CA_CAP_UNSIZED)) {
        ad->flags = CA_SWITCH__ADOPT_SELF;
    } else {
        if (!a->ops->listen)
            return fail(ad, ENOTSUP, "cannot report its memory (no listen op), so free() could not route it");
        if (!(caps & CA_CAP_UNSIZED)) {
            (void)ca_header_init(&ad->header, ad->target);
            ad->target = &ad->header.base;
            ad->flags |= CA_SWITCH__ADOPT_HEADER;
        }
        if (!(caps & CA_CAP_THREAD_SAFE) && !is_local) {
            ca_switch__local_setup(&ad->local, ad->target);
            ad->target = &ad->local.base;
            ad->flags |= CA_SWITCH__ADOPT_LOCAL;
        }
        __atomic_store_n(&ad->state, STATE_ACTIVE, __ATOMIC_RELEASE);
        g_noted = false;
        int e = ca_listen(a, &ad->listener);
        if (e) {
            __atomic_store_n(&ad->state, STATE_NONE, __ATOMIC_RELEASE);
            if (e == EBUSY)
                return fail(ad, EBUSY, "is already adopted (or has another listener)");
            if (!g_noted)
                return fail(ad, e, "refused to report its memory");
            return e; /* on_added said why */
        }
    }
    __atomic_store_n(&ad->state, STATE_ACTIVE, __ATOMIC_RELEASE);
    ca_switch__register_adopted(ad);
    return 0;
}

int ca_switch_unadopt(ca_switch_adopted *ad)
{
    if (!ad || !ca_switch__is_adopted(&ad->base))
        return ca_core__last_error_set("switch", "unadopt: not an adoption", EINVAL);
    int st = __atomic_load_n(&ad->state, __ATOMIC_ACQUIRE);
    if (st == STATE_DEAD) {
        /* the allocator was destroyed first (reported then): nothing left */
        __atomic_store_n(&ad->state, STATE_NONE, __ATOMIC_RELEASE);
        return 0;
    }
    if (st != STATE_ACTIVE)
        return fail(ad, EINVAL, "adoption is not active");
    uint64_t sel = __atomic_load_n(&ad->selected, __ATOMIC_RELAXED);
    if (sel) {
        ca_line *m = fail_line(ad, "still selected by ");
        ca_line_u64(m, sel, 10);
        ca_line_str(m, " threads or contexts: restore their previous selection first");
        return EBUSY;
    }
    if (ad->flags & CA_SWITCH__ADOPT_LOCAL) {
        if (__atomic_load_n(&ad->local.owner, __ATOMIC_RELAXED) != ca_switch__self())
            return fail(ad, EPERM, "undone by a thread that does not own it");
        (void)ca_switch_local_drain(&ad->local);
    }
    uint64_t live = live_of(ad);
    if (live && !free_noop(ad)) {
        ca_line *m = fail_line(ad, "still has ");
        ca_line_u64(m, live, 10);
        ca_line_str(m, " live blocks: free them first (free() could not route them afterwards)");
        return EBUSY;
    }
    if (!(ad->flags & CA_SWITCH__ADOPT_SELF))
        (void)ca_listen(ad->inner, NULL);
    ca_switch__unregister_adopted(ad);
    __atomic_store_n(&ad->state, STATE_NONE, __ATOMIC_RELEASE);
    return 0;
}

void ca_switch_adopt_claim(ca_switch_adopted *ad)
{
    if (ad && (ad->flags & CA_SWITCH__ADOPT_LOCAL))
        ca_switch_local_adopt(&ad->local);
}

uint64_t ca_switch_adopt_live(const ca_switch_adopted *ad) { return live_of(ad); }

bool ca_switch__adopt_active(const ca_allocator *a)
{
    return __atomic_load_n(&CAD(a)->state, __ATOMIC_ACQUIRE) == STATE_ACTIVE;
}

bool ca_switch__adopt_foreign_local(const ca_allocator *a)
{
    const ca_switch_adopted *ad = CAD(a);
    return (ad->flags & CA_SWITCH__ADOPT_LOCAL) &&
           __atomic_load_n(&ad->local.owner, __ATOMIC_RELAXED) != ca_switch__self();
}

const char *ca_switch__adopt_check(const ca_switch_adopted *ad)
{
    CA_CHECK_EXPECT(ca_switch__is_adopted(&ad->base), "registered adoption with foreign ops");
    CA_CHECK_EXPECT(__atomic_load_n(&ad->state, __ATOMIC_ACQUIRE) == STATE_ACTIVE,
                    "registered adoption is not active");
    CA_CHECK_EXPECT(ad->inner && ad->target, "adoption without an allocator");
    CA_CHECK_EXPECT(__atomic_load_n(&ad->frees, __ATOMIC_RELAXED) <=
                        __atomic_load_n(&ad->allocs, __ATOMIC_RELAXED),
                    "adoption freed more blocks than it handed out");
    return (ad->flags & CA_SWITCH__ADOPT_LOCAL) ? ca_switch__local_check(&ad->local) : NULL;
}
