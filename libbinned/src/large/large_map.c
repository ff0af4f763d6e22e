/* SPDX-License-Identifier: MIT */
/*
 * The large tier's address -> region lookup: core's ownership map, shared
 * with every other registrant (libswitch routes frees with the same walk).
 * Each region descriptor embeds a ca_owner_record (its first member) whose
 * owner is the tier's owner (l->owner: what ca_owner_lookup reports, NULL
 * for a tier without one) and whose kind is ca_binned__large_kind; the map's
 * entries point to that record, so one walk yields the region.
 *
 * Memory the tier got from a source that already registered it (an adopted
 * instance's source, a block of another allocator) is overlaid: the record
 * takes the pages over and reports the previous owner when the tier has
 * none; unregistration gives the pages back (ca_owner_unregister_record).
 *
 * Concurrency: lookups are lock-free (core); a region is registered by the
 * thread that maps it, before any of its areas is handed out, and
 * unregistered by the thread that unmaps it, after the last area came back.
 */
#include "large_internal.h"

const char ca_binned__large_kind = 'L';

ca_binned__large_rgn *ca_binned__large_map_get(const void *p)
{
    ca_owner_record *rec = ca_owner_record_of(p, &ca_binned__large_kind);
    return rec ? ca_binned__large_rgn_of_rec(rec) : NULL;
}

int ca_binned__large_map_set(void *base, size_t size, ca_binned__large_rgn *r)
{
    r->rec.kind = &ca_binned__large_kind;
    int rc = ca_owner_register_record(base, size, &r->rec);
    if (rc == EEXIST) {
        if (!r->rec.owner) {
            void *prev = ca_owner_lookup(base);
            r->rec.owner = prev == CA_OWNER_RETIRED ? NULL : prev;
        }
        rc = ca_owner_overlay_record(base, size, &r->rec);
    }
    return rc;
}

void ca_binned__large_map_clear(void *base, size_t size, ca_binned__large_rgn *r)
{
    (void)ca_owner_unregister_record(base, size, &r->rec);
}
