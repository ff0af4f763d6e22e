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
