/* SPDX-License-Identifier: MIT */
/*
 * The process-wide ownership map (address -> owner); see core.h for the
 * layout and its memory cost. ca_owner_lookup is inline in core.h.
 *
 * Read first: set_range (every registration, unregistration, overlay and
 * retirement is one walk over granules), then set_pages for split granules.
 *
 * Leaf entry values: NULL (no owner), CA_OWNER_RETIRED, an owner pointer
 * (low two bits clear), a record | CA_OWNER__RECORD, or a split node |
 * CA_OWNER__SPLIT (page entries: the same but split). A split node holds
 * one owner per 4 KiB page and, per page, the owner an overlay hides.
 * Invariant: under[i] != NULL only while page[i] holds an overlaying owner.
 *
 * Concurrency model:
 *   - Readers load root -> mid -> leaf -> owner (-> page) with acquire loads;
 *     a node, once published, is never freed, moved or reused, so a reader
 *     never follows a dangling pointer.
 *   - A missing radix node is mapped and published with a CAS from NULL;
 *     the loser of a race unmaps its node and uses the winner's.
 *   - Entries (leaf or page) change only by CAS from the value the writer
 *     read, so two registrations of one page cannot both succeed, and
 *     unregistering never erases another owner's entry.
 *   - A granule is split by publishing, with a CAS from the plain value, a
 *     node whose pages all hold that value; a split granule stays split.
 *   - under[i] is written by the overlaying owner before its CAS on page[i]
 *     and cleared after its CAS back; the overlaid owner does not unregister
 *     the page meanwhile (its block holds the overlaying memory).
 *   - A reader racing with (un)registration of the same page sees either the
 *     old or the new owner; callers must not free memory while lookups for
 *     it may still be in flight (the usual rule for any allocator).
 */
#include <ctxalloc/core.h>

#include <sys/mman.h>

#define LEVEL_SHIFT_MID  (CA_OWNER_GRANULE_SHIFT + CA_OWNER__LEAF_BITS)
#define LEVEL_SHIFT_ROOT (LEVEL_SHIFT_MID + CA_OWNER__MID_BITS)
CA_STATIC_ASSERT(LEVEL_SHIFT_ROOT + CA_OWNER__ROOT_BITS == 48, "levels must cover 48 bits");

void ***ca_core__owner_root[(size_t)1 << CA_OWNER__ROOT_BITS];
uint64_t ca_core__owner_overlaid; /* pages whose under[] is set; __atomic */

/* Windows (see core.h). A slot is published by its owner word (release,
 * after lo and hi); readers load the owner first (acquire). Claims and
 * releases are serialised by win_lock; a released slot keeps lo and hi
 * until a claim reuses it, so a reader that saw the owner sees its bounds. */
static struct {
    uintptr_t lo, hi; /* __atomic (relaxed; published by owner) */
    void *owner;      /* NULL: free slot; __atomic */
} windows[CA_OWNER_WINDOWS];
static unsigned nwindows; /* slots ever used; __atomic */
static int win_lock;

void *ca_owner__window_of(uintptr_t a)
{
    unsigned n = __atomic_load_n(&nwindows, __ATOMIC_ACQUIRE);
    for (unsigned i = 0; i < n; i++) {
        void *o = __atomic_load_n(&windows[i].owner, __ATOMIC_ACQUIRE);
        if (o && a >= __atomic_load_n(&windows[i].lo, __ATOMIC_RELAXED) &&
            a < __atomic_load_n(&windows[i].hi, __ATOMIC_RELAXED))
            return o;
    }
    return NULL;
}

static void *map_node(size_t bytes)
{
    void *p;
    return ca_os_map(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0, &p) ? NULL : p;
}

/* Returns the node at *slot, installing a zeroed one of `bytes` if absent. */
static void *get_or_install(void **slot, size_t bytes)
{
    void *n = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
    if (n)
        return n;
    void *fresh = map_node(bytes);
    if (!fresh)
        return NULL;
    void *expected = NULL;
    if (__atomic_compare_exchange_n(slot, &expected, fresh, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        return fresh;
    (void)ca_os_unmap(fresh, bytes);
    return expected;
}

/* The leaf entry for granule address a; NULL when a node cannot be mapped
 * (create) or does not exist (!create). */
static void **entry(uintptr_t a, bool create)
{
    void ****slot_root = &ca_core__owner_root[a >> LEVEL_SHIFT_ROOT];
    void ***mid = create ? (void ***)get_or_install((void **)slot_root, sizeof(void **) << CA_OWNER__MID_BITS)
                         : __atomic_load_n(slot_root, __ATOMIC_ACQUIRE);
    if (!mid)
        return NULL;
    void ***slot_mid = &mid[(a >> LEVEL_SHIFT_MID) & (((size_t)1 << CA_OWNER__MID_BITS) - 1)];
    void **leaf = create ? (void **)get_or_install((void **)slot_mid, sizeof(void *) << CA_OWNER__LEAF_BITS)
                         : __atomic_load_n(slot_mid, __ATOMIC_ACQUIRE);
    if (!leaf)
        return NULL;
    return &leaf[(a >> CA_OWNER_GRANULE_SHIFT) & (((size_t)1 << CA_OWNER__LEAF_BITS) - 1)];
}

/* ------------------------------------------------------------------------
 * Split nodes: handed out from 64 KiB slabs by an atomic counter in the
 * slab; a slab that is used up is replaced with a CAS. Lock-free, so a fork
 * never inherits a held lock.
 * ------------------------------------------------------------------------ */

#define SLAB_BYTES ((size_t)64 << 10)
typedef struct slab {
    uint64_t used; /* nodes handed out (may pass the capacity); __atomic */
    uint64_t pad;
    ca_owner__split nodes[];
} slab;
#define SLAB_NODES ((SLAB_BYTES - sizeof(slab)) / sizeof(ca_owner__split))

static slab *cur_slab; /* __atomic */

static ca_owner__split *new_split(void)
{
    for (;;) {
        slab *s = __atomic_load_n(&cur_slab, __ATOMIC_ACQUIRE);
        if (s) {
            uint64_t i = __atomic_fetch_add(&s->used, 1, __ATOMIC_RELAXED);
            if (i < SLAB_NODES)
                return &s->nodes[i];
        }
        slab *fresh = (slab *)map_node(SLAB_BYTES);
        if (!fresh)
            return NULL;
        if (!__atomic_compare_exchange_n(&cur_slab, &s, fresh, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
            (void)ca_os_unmap(fresh, SLAB_BYTES);
    }
}

/* The split node of the granule at *e, splitting it now if it is plain. */
static ca_owner__split *split_of(void **e)
{
    void *v = __atomic_load_n(e, __ATOMIC_ACQUIRE);
    for (;;) {
        if ((uintptr_t)v & CA_OWNER__SPLIT)
            return (ca_owner__split *)((uintptr_t)v - CA_OWNER__SPLIT);
        /* A node that loses the publishing race below is dropped (256 bytes,
         * never visible to readers): rare, and no thread-local is needed. */
        ca_owner__split *n = new_split();
        if (!n)
            return NULL;
        for (size_t i = 0; i < CA_OWNER__PAGES; i++) {
            n->page[i] = v;
            n->under[i] = NULL;
        }
        if (__atomic_compare_exchange_n(e, &v, (void *)((uintptr_t)n | CA_OWNER__SPLIT), false, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE))
            return n;
    }
}

/* ------------------------------------------------------------------------
 * One walk for every operation
 * ------------------------------------------------------------------------ */

typedef enum op { OP_REGISTER, OP_OVERLAY, OP_UNREGISTER, OP_RETIRE } op;

static bool is_free(const void *v) { return v == NULL || v == CA_OWNER_RETIRED; }

/* Claim one page entry (the page at address pa) for owner. A free page
 * inside a window is the window owner's: only an overlay takes it. */
static int claim_page(ca_owner__split *n, size_t i, uintptr_t pa, void *owner, op o)
{
    void *v = __atomic_load_n(&n->page[i], __ATOMIC_ACQUIRE);
    void *win = ca_owner__window_of(pa);
    for (;;) {
        if (is_free(v) && !win) {
            if (__atomic_compare_exchange_n(&n->page[i], &v, owner, false, __ATOMIC_RELEASE, __ATOMIC_ACQUIRE))
                return 0;
            continue;
        }
        void *hidden = is_free(v) ? win : v;
        if (o != OP_OVERLAY || hidden == owner || __atomic_load_n(&n->under[i], __ATOMIC_RELAXED))
            return EEXIST;
        /* Counted before the overlay can be seen (routers stop trusting
         * their own ranges first). */
        __atomic_fetch_add(&ca_core__owner_overlaid, 1, __ATOMIC_SEQ_CST);
        __atomic_store_n(&n->under[i], hidden, __ATOMIC_RELAXED);
        if (__atomic_compare_exchange_n(&n->page[i], &v, owner, false, __ATOMIC_RELEASE, __ATOMIC_ACQUIRE))
            return 0;
        __atomic_store_n(&n->under[i], NULL, __ATOMIC_RELAXED);
        __atomic_fetch_sub(&ca_core__owner_overlaid, 1, __ATOMIC_RELAXED);
    }
}

/* Give one page entry (the page at pa) up: back to the overlaid owner
 * (NULL when that is the window's owner: the window answers for it), else
 * NULL / retired. */
static void release_page(ca_owner__split *n, size_t i, uintptr_t pa, void *owner, op o)
{
    void *expected = owner;
    void *under = __atomic_load_n(&n->under[i], __ATOMIC_RELAXED);
    void *to = under ? under : (o == OP_RETIRE ? CA_OWNER_RETIRED : NULL);
    if (under && under == ca_owner__window_of(pa))
        to = NULL;
    if (__atomic_compare_exchange_n(&n->page[i], &expected, to, false, __ATOMIC_RELEASE, __ATOMIC_RELAXED) &&
        under) {
        __atomic_store_n(&n->under[i], NULL, __ATOMIC_RELAXED);
        __atomic_fetch_sub(&ca_core__owner_overlaid, 1, __ATOMIC_RELEASE);
    }
}

/* Apply o to the pages [lo, hi) (indices within the granule g at *e). */
static int set_pages(void **e, uintptr_t g, size_t lo, size_t hi, void *owner, op o)
{
    ca_owner__split *n = split_of(e);
    if (!n)
        return ENOMEM;
    for (size_t i = lo; i < hi; i++) {
        uintptr_t pa = g + (i << CA_OWNER_PAGE_SHIFT);
        if (o == OP_REGISTER || o == OP_OVERLAY) {
            int err = claim_page(n, i, pa, owner, o);
            if (err) {
                while (i-- > lo)
                    release_page(n, i, g + (i << CA_OWNER_PAGE_SHIFT), owner, OP_UNREGISTER);
                return err;
            }
        } else {
            release_page(n, i, pa, owner, o);
        }
    }
    return 0;
}

/* Apply o to the whole granule g at *e. Plain entries change in one CAS; a
 * split granule (or an overlay over another owner or a window) goes page by
 * page. */
static int set_granule(void **e, uintptr_t g, void *owner, op o)
{
    void *v = __atomic_load_n(e, __ATOMIC_ACQUIRE);
    for (;;) {
        if ((uintptr_t)v & CA_OWNER__SPLIT)
            return set_pages(e, g, 0, CA_OWNER__PAGES, owner, o);
        void *to;
        if (o == OP_REGISTER || o == OP_OVERLAY) {
            if (is_free(v) && ca_owner__window_of(g))
                return o == OP_OVERLAY ? set_pages(e, g, 0, CA_OWNER__PAGES, owner, o) : EEXIST;
            if (!is_free(v))
                return o == OP_OVERLAY && v != owner ? set_pages(e, g, 0, CA_OWNER__PAGES, owner, o) : EEXIST;
            to = owner;
        } else {
            if (v != owner)
                return 0;
            to = o == OP_RETIRE ? CA_OWNER_RETIRED : NULL;
        }
        if (__atomic_compare_exchange_n(e, &v, to, false, __ATOMIC_RELEASE, __ATOMIC_ACQUIRE))
            return 0;
    }
}

static int check_range(const void *base, size_t size)
{
    uintptr_t b = (uintptr_t)base;
    size_t end;
    if (size == 0 || !ca_is_aligned(b, CA_OWNER_PAGE) || !ca_is_aligned(size, CA_OWNER_PAGE) ||
        ca_add_overflows(b, size, &end) || end > ((uintptr_t)1 << 48))
        return EINVAL;
    return 0;
}

static int set_range(uintptr_t b, uintptr_t end, void *owner, op o)
{
    bool claim = o == OP_REGISTER || o == OP_OVERLAY;
    for (uintptr_t a = b; a < end;) {
        uintptr_t g = ca_align_down(a, CA_OWNER_GRANULE), gend = g + CA_OWNER_GRANULE;
        uintptr_t stop = end < gend ? end : gend;
        void **e = entry(a, claim);
        int err = 0;
        if (!e)
            err = claim ? ENOMEM : 0;
        else if (a == g && stop == gend)
            err = set_granule(e, g, owner, o);
        else
            err = set_pages(e, g, (a - g) >> CA_OWNER_PAGE_SHIFT, (stop - g) >> CA_OWNER_PAGE_SHIFT, owner, o);
        if (err) {
            if (a > b)
                (void)set_range(b, a, owner, OP_UNREGISTER);
            return err;
        }
        a = stop;
    }
    return 0;
}

static int apply(void *base, size_t size, void *owner, op o)
{
    if (!owner || ((uintptr_t)owner & 3) || check_range(base, size))
        return EINVAL;
    return set_range((uintptr_t)base, (uintptr_t)base + size, owner, o);
}

static int apply_record(void *base, size_t size, ca_owner_record *rec, op o)
{
    if (!rec || ((uintptr_t)rec & 7) || check_range(base, size))
        return EINVAL;
    return set_range((uintptr_t)base, (uintptr_t)base + size, (void *)((uintptr_t)rec | CA_OWNER__RECORD), o);
}

int ca_owner_register_record(void *base, size_t size, ca_owner_record *rec)
{
    return apply_record(base, size, rec, OP_REGISTER);
}
int ca_owner_overlay_record(void *base, size_t size, ca_owner_record *rec)
{
    return apply_record(base, size, rec, OP_OVERLAY);
}
int ca_owner_unregister_record(void *base, size_t size, ca_owner_record *rec)
{
    return apply_record(base, size, rec, OP_UNREGISTER);
}

ca_owner_record *ca_owner__record_hidden(const void *p, const void *kind)
{
    uintptr_t a = (uintptr_t)p;
    if (a >> 48)
        return NULL;
    void **e = entry(a, false);
    void *v = e ? __atomic_load_n(e, __ATOMIC_ACQUIRE) : NULL;
    if (!((uintptr_t)v & CA_OWNER__SPLIT))
        return NULL;
    ca_owner__split *n = (ca_owner__split *)((uintptr_t)v - CA_OWNER__SPLIT);
    size_t i = (a >> CA_OWNER_PAGE_SHIFT) & (CA_OWNER__PAGES - 1);
    ca_owner_record *r = ca_owner_entry_record(__atomic_load_n(&n->page[i], __ATOMIC_ACQUIRE));
    if (r && r->kind == kind)
        return r;
    r = ca_owner_entry_record(__atomic_load_n(&n->under[i], __ATOMIC_RELAXED));
    return r && r->kind == kind ? r : NULL;
}

int ca_owner_register(void *base, size_t size, void *owner) { return apply(base, size, owner, OP_REGISTER); }
int ca_owner_overlay(void *base, size_t size, void *owner) { return apply(base, size, owner, OP_OVERLAY); }
int ca_owner_unregister(void *base, size_t size, void *owner) { return apply(base, size, owner, OP_UNREGISTER); }
int ca_owner_retire(void *base, size_t size, void *owner) { return apply(base, size, owner, OP_RETIRE); }

int ca_owner_claim_window(void *base, size_t size, void *owner)
{
    if (!owner || ((uintptr_t)owner & 3) || owner == CA_OWNER_RETIRED || check_range(base, size))
        return EINVAL;
    uintptr_t lo = (uintptr_t)base, hi = lo + size;
    int err = ENOSPC;
    ca_lock_acquire_ranked(&win_lock, CA_LOCK_RANK_CORE_WINDOWS, "core");
    unsigned n = __atomic_load_n(&nwindows, __ATOMIC_RELAXED), slot = CA_OWNER_WINDOWS;
    for (unsigned i = 0; i < n; i++) {
        if (!__atomic_load_n(&windows[i].owner, __ATOMIC_RELAXED)) {
            if (slot == CA_OWNER_WINDOWS)
                slot = i;
        } else if (lo < windows[i].hi && windows[i].lo < hi) {
            err = EEXIST;
            slot = CA_OWNER_WINDOWS + 1;
            break;
        }
    }
    if (slot == CA_OWNER_WINDOWS && n < CA_OWNER_WINDOWS)
        slot = n;
    if (slot < CA_OWNER_WINDOWS) {
        __atomic_store_n(&windows[slot].lo, lo, __ATOMIC_RELAXED);
        __atomic_store_n(&windows[slot].hi, hi, __ATOMIC_RELAXED);
        __atomic_store_n(&windows[slot].owner, owner, __ATOMIC_RELEASE);
        if (slot == n)
            __atomic_store_n(&nwindows, n + 1, __ATOMIC_RELEASE);
        err = 0;
    }
    ca_lock_release_ranked(&win_lock, CA_LOCK_RANK_CORE_WINDOWS);
    return err;
}

int ca_owner_release_window(void *base, size_t size, void *owner)
{
    int err = EINVAL;
    ca_lock_acquire_ranked(&win_lock, CA_LOCK_RANK_CORE_WINDOWS, "core");
    unsigned n = __atomic_load_n(&nwindows, __ATOMIC_RELAXED);
    for (unsigned i = 0; i < n; i++)
        if (__atomic_load_n(&windows[i].owner, __ATOMIC_RELAXED) == owner && windows[i].lo == (uintptr_t)base &&
            windows[i].hi == (uintptr_t)base + size) {
            __atomic_store_n(&windows[i].owner, NULL, __ATOMIC_RELEASE);
            err = 0;
            break;
        }
    ca_lock_release_ranked(&win_lock, CA_LOCK_RANK_CORE_WINDOWS);
    return err;
}
