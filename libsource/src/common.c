/* SPDX-License-Identifier: MIT */
/*
 * Shared pieces of libsource: fault-plan names, counters -> ca_stats, the page
 * kind names, the invariant-check dispatcher and a small spin lock.
 * Concurrency: fault plans and counters are updated with __atomic builtins;
 * nothing here holds a lock except ca_source__spin_lock's callers.
 * Read first: ca_source_fault_hit (every source calls it at each point).
 */
#include "source_internal.h"


/* The plan type and its counting are core's (ca_fault); these keep the
 * libsource names. */
void ca_source_fault_init(ca_source_fault *f, unsigned points, uint64_t nth, uint64_t times, int error)
{
    ca_fault_init(f, points, nth, times, error);
}

int ca_source_fault_hit(ca_source_fault *f, unsigned point, size_t size) { return ca_fault_hit(f, point, size); }

void ca_source__in_use_add(ca_source_counters *c, uint64_t v, bool atomic)
{
    if (!atomic) {
        c->in_use += v;
        if (c->in_use > c->peak)
            c->peak = c->in_use;
        return;
    }
    uint64_t now = __atomic_add_fetch(&c->in_use, v, __ATOMIC_RELAXED);
    uint64_t peak = __atomic_load_n(&c->peak, __ATOMIC_RELAXED);
    while (now > peak &&
           !__atomic_compare_exchange_n(&c->peak, &peak, now, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
        ;
}

static uint64_t ld(const uint64_t *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }

void ca_source__fill_stats(ca_stats *out, const char *name, const ca_source_counters *c, const ca_source_fault *f)
{
    CA_STATS_COUNTERS(CA_SOURCE_COUNTERS);
    ca_stats_init(out, name);
    out->bytes_in_use = ld(&c->in_use);
    out->bytes_reserved = ld(&c->reserved);
    out->bytes_committed = ld(&c->committed);
    out->peak_in_use = ld(&c->peak);
    out->allocs = ld(&c->obtains);
    out->frees = ld(&c->releases);
    out->failures = ld(&c->failures);
    CA_STATS_SET(out, reserves, ld(&c->reserves));
    CA_STATS_SET(out, commits, ld(&c->commits));
    CA_STATS_SET(out, decommits, ld(&c->decommits));
    CA_STATS_SET(out, huge_1g, ld(&c->huge_1g));
    CA_STATS_SET(out, huge_2m, ld(&c->huge_2m));
    CA_STATS_SET(out, thp, ld(&c->thp));
    CA_STATS_SET(out, base, ld(&c->base));
    CA_STATS_SET(out, page_size, ld(&c->last_page_size));
    CA_STATS_SET(out, lock_failures, ld(&c->lock_failures));
    CA_STATS_SET(out, faults_injected, f ? ld(&f->injected) : 0);
}

size_t ca_source_page_kind_size(unsigned kind)
{
    switch (kind) {
    case CA_SOURCE_PAGE_2M: return CA_SOURCE__2M;
    case CA_SOURCE_PAGE_1G: return CA_SOURCE__1G;
    default: return ca_page_size();
    }
}

const char *ca_source_page_kind_name(unsigned kind)
{
    static const char *const names[] = {"base", "thp", "2m", "1g"};
    return kind < 4 ? names[kind] : "unknown";
}
