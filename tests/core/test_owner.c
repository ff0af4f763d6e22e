/* SPDX-License-Identifier: MIT */
/* The ownership map: registration rules, lookups, errors. */
#include <criterion/criterion.h>
#include <ctxalloc/core.h>
#include <sys/mman.h>

/* A granule-aligned address range nobody else uses (reserved, no access). */
static char *reserve(size_t size)
{
    size_t span = size + CA_OWNER_GRANULE;
    char *p = (char *)mmap(NULL, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    cr_assert_neq(p, MAP_FAILED);
    return (char *)ca_ptr_align_up(p, CA_OWNER_GRANULE);
}

Test(owner, register_lookup_unregister)
{
    int owner_a, owner_b;
    size_t g = CA_OWNER_GRANULE;
    char *r = reserve(16 * g);
    cr_assert_null(ca_owner_lookup(r));
    cr_assert_eq(ca_owner_register(r, 4 * g, &owner_a), 0);
    cr_assert_eq(ca_owner_register(r + 4 * g, 4 * g, &owner_b), 0);
    cr_assert_eq(ca_owner_lookup(r), &owner_a);
    cr_assert_eq(ca_owner_lookup(r + 4 * g - 1), &owner_a);
    cr_assert_eq(ca_owner_lookup(r + 4 * g), &owner_b);
    cr_assert_eq(ca_owner_lookup(r + 8 * g - 1), &owner_b);
    cr_assert_null(ca_owner_lookup(r + 8 * g));
    /* overlapping registration is refused and changes nothing */
    cr_assert_eq(ca_owner_register(r + 2 * g, 4 * g, &owner_b), EEXIST);
    cr_assert_eq(ca_owner_lookup(r + 2 * g), &owner_a);
    cr_assert_eq(ca_owner_lookup(r + 5 * g), &owner_b);
    /* partial overlap at the end rolls back the part it had claimed */
    cr_assert_eq(ca_owner_register(r + 8 * g, 0, &owner_a), EINVAL);
    char *tail = r + 8 * g;
    cr_assert_eq(ca_owner_register(tail - g, 2 * g, &owner_a), EEXIST);
    cr_assert_null(ca_owner_lookup(tail));
    cr_assert_eq(ca_owner_register(tail + 2 * g, g, &owner_b), 0);
    cr_assert_eq(ca_owner_register(tail, 3 * g, &owner_a), EEXIST); /* claims 2 granules, then conflicts */
    cr_assert_null(ca_owner_lookup(tail));
    cr_assert_null(ca_owner_lookup(tail + g));
    cr_assert_eq(ca_owner_lookup(tail + 2 * g), &owner_b);
    cr_assert_eq(ca_owner_unregister(tail + 2 * g, g, &owner_b), 0);
    /* unregistering someone else's range leaves it alone */
    cr_assert_eq(ca_owner_unregister(r + 4 * g, 4 * g, &owner_a), 0);
    cr_assert_eq(ca_owner_lookup(r + 4 * g), &owner_b);
    cr_assert_eq(ca_owner_unregister(r, 8 * g, &owner_b), 0);
    cr_assert_eq(ca_owner_lookup(r), &owner_a);
    cr_assert_null(ca_owner_lookup(r + 4 * g));
    cr_assert_eq(ca_owner_unregister(r, 4 * g, &owner_a), 0);
    cr_assert_null(ca_owner_lookup(r));
}

Test(owner, bad_ranges)
{
    int o;
    size_t g = CA_OWNER_GRANULE;
    char *r = reserve(2 * g);
    cr_assert_eq(ca_owner_register(r + 1, g, &o), EINVAL);
    cr_assert_eq(ca_owner_register(r, g + 1, &o), EINVAL);
    cr_assert_eq(ca_owner_register(r + CA_OWNER_PAGE / 2, CA_OWNER_PAGE, &o), EINVAL);
    cr_assert_eq(ca_owner_register(r, g, (char *)&o + 1), EINVAL); /* owners are 4-aligned */
    cr_assert_eq(ca_owner_register(r, g, CA_OWNER_RETIRED), EINVAL);
    cr_assert_eq(ca_owner_register(r, 0, &o), EINVAL);
    cr_assert_eq(ca_owner_register(r, g, NULL), EINVAL);
    cr_assert_eq(ca_owner_register((void *)((uintptr_t)1 << 48), g, &o), EINVAL);
    cr_assert_eq(ca_owner_register((void *)(((uintptr_t)1 << 48) - g), 2 * g, &o), EINVAL);
    cr_assert_eq(ca_owner_register((void *)(uintptr_t)(SIZE_MAX & ~(g - 1)), 2 * g, &o), EINVAL);
    cr_assert_eq(ca_owner_unregister(r + 3, g, &o), EINVAL);
    cr_assert_null(ca_owner_lookup((void *)((uintptr_t)1 << 50)));
    cr_assert_null(ca_owner_lookup((void *)UINTPTR_MAX));
    cr_assert_null(ca_owner_lookup(NULL));
}

Test(owner, highest_and_lowest_granules)
{
    int o;
    size_t g = CA_OWNER_GRANULE;
    /* The map covers the whole 48-bit space, mapped or not. */
    void *top = (void *)(((uintptr_t)1 << 48) - g);
    cr_assert_eq(ca_owner_register(top, g, &o), 0);
    cr_assert_eq(ca_owner_lookup((char *)top + g - 1), &o);
    cr_assert_eq(ca_owner_unregister(top, g, &o), 0);
    cr_assert_null(ca_owner_lookup(top));
    cr_assert_eq(ca_owner_register((void *)g, g, &o), 0);
    cr_assert_eq(ca_owner_lookup((void *)(g + 5)), &o);
    cr_assert_eq(ca_owner_unregister((void *)g, g, &o), 0);
}

Test(owner, spans_leaf_and_mid_boundaries)
{
    int o;
    /* 2 GiB across a 64 MiB leaf boundary and a 64 GiB mid boundary. */
    uintptr_t base = ((uintptr_t)64 << 30) - ((uintptr_t)1 << 30);
    size_t size = (size_t)2 << 30;
    cr_assert_eq(ca_owner_register((void *)base, size, &o), 0);
    for (uintptr_t a = base; a < base + size; a += CA_OWNER_GRANULE * 97)
        cr_assert_eq(ca_owner_lookup((void *)a), &o);
    cr_assert_null(ca_owner_lookup((void *)(base - 1)));
    cr_assert_null(ca_owner_lookup((void *)(base + size)));
    cr_assert_eq(ca_owner_unregister((void *)base, size, &o), 0);
    cr_assert_null(ca_owner_lookup((void *)(base + size / 2)));
}

Test(owner, pages_inside_granules)
{
    int a, b;
    size_t g = CA_OWNER_GRANULE, pg = CA_OWNER_PAGE;
    char *r = reserve(4 * g);
    /* Two owners sharing one granule, page by page. */
    cr_assert_eq(ca_owner_register(r, 3 * pg, &a), 0);
    cr_assert_eq(ca_owner_register(r + 3 * pg, 2 * pg, &b), 0);
    cr_assert_eq(ca_owner_lookup(r), &a);
    cr_assert_eq(ca_owner_lookup(r + 3 * pg - 1), &a);
    cr_assert_eq(ca_owner_lookup(r + 3 * pg), &b);
    cr_assert_eq(ca_owner_lookup(r + 5 * pg - 1), &b);
    cr_assert_null(ca_owner_lookup(r + 5 * pg));
    cr_assert_eq(ca_owner_register(r + 2 * pg, 2 * pg, &a), EEXIST);
    cr_assert_null(ca_owner_lookup(r + 5 * pg)); /* nothing left behind */
    /* A range crossing granules: partial, whole, partial. */
    cr_assert_eq(ca_owner_register(r + g - pg, g + 2 * pg, &b), 0);
    cr_assert_eq(ca_owner_lookup(r + g - pg), &b);
    cr_assert_eq(ca_owner_lookup(r + g + g / 2), &b);
    cr_assert_eq(ca_owner_lookup(r + 2 * g + pg - 1), &b);
    cr_assert_null(ca_owner_lookup(r + 2 * g + pg));
    /* Unregistering one page of a whole granule splits it. */
    cr_assert_eq(ca_owner_unregister(r + g + 4 * pg, pg, &b), 0);
    cr_assert_null(ca_owner_lookup(r + g + 4 * pg));
    cr_assert_eq(ca_owner_lookup(r + g + 5 * pg), &b);
    cr_assert_eq(ca_owner_register(r + g + 4 * pg, pg, &a), 0);
    cr_assert_eq(ca_owner_lookup(r + g + 4 * pg), &a);
    cr_assert_eq(ca_owner_unregister(r, 4 * g, &a), 0);
    cr_assert_eq(ca_owner_unregister(r, 4 * g, &b), 0);
    for (size_t off = 0; off < 4 * g; off += pg)
        cr_assert_null(ca_owner_lookup(r + off));
}

Test(owner, overlay_restores_the_owner_below)
{
    int parent, child, other;
    size_t g = CA_OWNER_GRANULE, pg = CA_OWNER_PAGE;
    char *r = reserve(4 * g);
    cr_assert_eq(ca_owner_register(r, 4 * g, &parent), 0);
    /* A child's chunk inside the parent's memory: refused by register, taken by overlay. */
    uint64_t overlaid0 = ca_owner_overlaid();
    cr_assert_eq(ca_owner_register(r + g - 2 * pg, g, &child), EEXIST);
    cr_assert_eq(ca_owner_overlaid(), overlaid0, "a refused registration overlays nothing");
    cr_assert_eq(ca_owner_overlay(r + g - 2 * pg, g, &child), 0);
    cr_assert_eq(ca_owner_overlaid(), overlaid0 + g / pg, "every page hiding the parent is counted");
    cr_assert_eq(ca_owner_lookup(r + g - 3 * pg), &parent);
    cr_assert_eq(ca_owner_lookup(r + g - 2 * pg), &child);
    cr_assert_eq(ca_owner_lookup(r + 2 * g - 2 * pg - 1), &child);
    cr_assert_eq(ca_owner_lookup(r + 2 * g - 2 * pg), &parent);
    /* one level only */
    cr_assert_eq(ca_owner_overlay(r + g, pg, &other), EEXIST);
    cr_assert_eq(ca_owner_lookup(r + g), &child);
    /* a whole granule overlaid */
    cr_assert_eq(ca_owner_overlay(r + 3 * g, g, &other), 0);
    cr_assert_eq(ca_owner_lookup(r + 3 * g + 7 * pg), &other);
    cr_assert_eq(ca_owner_unregister(r + 3 * g, g, &other), 0);
    cr_assert_eq(ca_owner_lookup(r + 3 * g + 7 * pg), &parent);
    /* unregistering (or retiring) an overlay gives the pages back to the parent */
    cr_assert_eq(ca_owner_retire(r + g - 2 * pg, g, &child), 0);
    cr_assert_eq(ca_owner_overlaid(), overlaid0, "routers trust their ranges again once the overlays are gone");
    for (size_t off = 0; off < 4 * g; off += pg)
        cr_assert_eq(ca_owner_lookup(r + off), &parent);
    /* and the same range can be overlaid again */
    cr_assert_eq(ca_owner_overlay(r + g - 2 * pg, g, &child), 0);
    cr_assert_eq(ca_owner_unregister(r + g - 2 * pg, g, &child), 0);
    cr_assert_eq(ca_owner_unregister(r, 4 * g, &parent), 0);
    cr_assert_null(ca_owner_lookup(r + g));
}

Test(owner, retired_pages_are_reported_and_reusable)
{
    int dead, next;
    size_t g = CA_OWNER_GRANULE, pg = CA_OWNER_PAGE;
    char *r = reserve(2 * g);
    cr_assert_eq(ca_owner_register(r, g + 3 * pg, &dead), 0);
    cr_assert_eq(ca_owner_retire(r, g + 3 * pg, &dead), 0);
    cr_assert_eq(ca_owner_lookup(r), CA_OWNER_RETIRED);
    cr_assert_eq(ca_owner_lookup(r + g + 2 * pg), CA_OWNER_RETIRED);
    cr_assert_null(ca_owner_lookup(r + g + 3 * pg));
    /* retired pages count as free for the next owner */
    cr_assert_eq(ca_owner_register(r, 2 * g, &next), 0);
    cr_assert_eq(ca_owner_lookup(r + g + pg), &next);
    cr_assert_eq(ca_owner_unregister(r, 2 * g, &next), 0);
    cr_assert_null(ca_owner_lookup(r));
}

/* Records: the entry points to the record, lookup reports its owner, the
 * record is found by kind, also under an overlay, and unregistering gives
 * the pages back (to the owner an overlay hid). */
static const char kind_a = 'a', kind_b = 'b';
static void rec_free(ca_owner_record *rec, void *p) { (void)rec, (void)p; }

Test(owner, records_report_their_owner_and_are_found_by_kind)
{
    int owner, other;
    size_t g = CA_OWNER_GRANULE;
    char *r = reserve(8 * g);
    ca_owner_record rec = {.owner = &owner, .kind = &kind_a, .free = rec_free};
    cr_assert_eq(ca_owner_register_record(r, 2 * g + CA_OWNER_PAGE, &rec), 0);
    cr_assert_eq(ca_owner_lookup(r), &owner);
    cr_assert_eq(ca_owner_lookup(r + 2 * g), &owner); /* a split granule's page */
    cr_assert_null(ca_owner_lookup(r + 2 * g + CA_OWNER_PAGE));
    cr_assert_eq(ca_owner_entry_record(ca_owner_entry(r + g)), &rec);
    cr_assert_eq(ca_owner_record_of(r + g + 5, &kind_a), &rec);
    cr_assert_null(ca_owner_record_of(r + g, &kind_b), "another kind is not this record");
    cr_assert_null(ca_owner_record_of(r + 3 * g, &kind_a));
    /* a plain owner is not a record; neither is a retired page */
    cr_assert_eq(ca_owner_register(r + 4 * g, g, &other), 0);
    cr_assert_null(ca_owner_entry_record(ca_owner_entry(r + 4 * g)));
    cr_assert_null(ca_owner_entry_record(CA_OWNER_RETIRED));
    /* overlapping registration is refused; bad records are EINVAL */
    cr_assert_eq(ca_owner_register_record(r + g, g, &rec), EEXIST);
    cr_assert_eq(ca_owner_register_record(r + 6 * g, g, NULL), EINVAL);
    cr_assert_eq(ca_owner_register_record(r + 6 * g, g, (ca_owner_record *)(void *)((char *)&rec + 4)), EINVAL);
    /* an overlay hides the record; record_of still finds it underneath */
    cr_assert_eq(ca_owner_overlay(r + g, CA_OWNER_PAGE, &other), 0);
    cr_assert_eq(ca_owner_lookup(r + g), &other);
    cr_assert_eq(ca_owner_record_of(r + g, &kind_a), &rec);
    cr_assert_eq(ca_owner_unregister(r + g, CA_OWNER_PAGE, &other), 0);
    cr_assert_eq(ca_owner_lookup(r + g), &owner);
    /* a record over another owner's pages (overlay), then back */
    ca_owner_record top = {.owner = &owner, .kind = &kind_b, .free = NULL};
    cr_assert_eq(ca_owner_register_record(r + 4 * g, g, &top), EEXIST);
    cr_assert_eq(ca_owner_overlay_record(r + 4 * g, g, &top), 0);
    cr_assert_eq(ca_owner_record_of(r + 4 * g, &kind_b), &top);
    cr_assert_eq(ca_owner_unregister_record(r + 4 * g, g, &top), 0);
    cr_assert_eq(ca_owner_lookup(r + 4 * g), &other);
    cr_assert_eq(ca_owner_unregister(r + 4 * g, g, &other), 0);
    /* unregistering with another record changes nothing; with this one, all */
    cr_assert_eq(ca_owner_unregister_record(r, 2 * g + CA_OWNER_PAGE, &top), 0);
    cr_assert_eq(ca_owner_lookup(r), &owner);
    cr_assert_eq(ca_owner_unregister_record(r, 2 * g + CA_OWNER_PAGE, &rec), 0);
    cr_assert_null(ca_owner_lookup(r));
    cr_assert_null(ca_owner_lookup(r + 2 * g));
    cr_assert_null(ca_owner_record_of(r + g, &kind_a));
}

/* Windows: a lookup that finds nothing in the tree answers with the window's
 * owner; others' pages inside a window need an overlay (counted), and give
 * the window back when unregistered; windows do not overlap; released
 * windows answer nothing. */
Test(owner, windows_answer_for_unregistered_pages)
{
    int owner, other, third;
    size_t g = CA_OWNER_GRANULE;
    char *r = reserve(64 * g);
    cr_assert_eq(ca_owner_claim_window(r, 32 * g, &owner), 0);
    cr_assert_eq(ca_owner_lookup(r), &owner);
    cr_assert_eq(ca_owner_lookup(r + 32 * g - 1), &owner);
    cr_assert_null(ca_owner_lookup(r + 32 * g));
    cr_assert_eq(ca_owner_claim_window(r + 16 * g, 32 * g, &other), EEXIST, "windows do not overlap");
    cr_assert_eq(ca_owner_claim_window(r + 3, g, &other), EINVAL);
    /* registration inside: EEXIST; an overlay takes pages over and counts */
    uint64_t before = ca_owner_overlaid();
    cr_assert_eq(ca_owner_register(r + 4 * g, g, &other), EEXIST);
    cr_assert_eq(ca_owner_overlay(r + 4 * g, g + CA_OWNER_PAGE, &other), 0);
    cr_assert_eq(ca_owner_overlaid(), before + CA_OWNER__PAGES + 1, "pages over a window hide its owner");
    cr_assert_eq(ca_owner_lookup(r + 4 * g), &other);
    cr_assert_eq(ca_owner_lookup(r + 5 * g), &other);
    cr_assert_eq(ca_owner_lookup(r + 5 * g + CA_OWNER_PAGE), &owner);
    cr_assert_eq(ca_owner_overlay(r + 4 * g, CA_OWNER_PAGE, &third), EEXIST, "one level of overlay");
    cr_assert_eq(ca_owner_unregister(r + 4 * g, g + CA_OWNER_PAGE, &other), 0);
    cr_assert_eq(ca_owner_overlaid(), before);
    cr_assert_eq(ca_owner_lookup(r + 4 * g), &owner);
    cr_assert_null(ca_owner__walk((uintptr_t)(r + 4 * g)), "given back to the window, not to the tree");
    /* outside the window registration is as usual */
    cr_assert_eq(ca_owner_register(r + 40 * g, g, &other), 0);
    cr_assert_eq(ca_owner_lookup(r + 40 * g), &other);
    cr_assert_eq(ca_owner_unregister(r + 40 * g, g, &other), 0);
    /* release: only by its owner with its bounds */
    cr_assert_eq(ca_owner_release_window(r, 32 * g, &other), EINVAL);
    cr_assert_eq(ca_owner_release_window(r, 16 * g, &owner), EINVAL);
    cr_assert_eq(ca_owner_release_window(r, 32 * g, &owner), 0);
    cr_assert_null(ca_owner_lookup(r));
    cr_assert_eq(ca_owner_register(r, g, &other), 0, "a released window's pages are free");
    cr_assert_eq(ca_owner_unregister(r, g, &other), 0);
    /* slots are reused and run out with ENOSPC */
    int e = 0, k;
    for (k = 0; k < CA_OWNER_WINDOWS + 1 && !e; k++)
        e = ca_owner_claim_window(r + (size_t)k * g, g, &third);
    cr_assert_eq(e, ENOSPC);
    for (int j = 0; j < k - 1; j++)
        cr_assert_eq(ca_owner_release_window(r + (size_t)j * g, g, &third), 0);
}
