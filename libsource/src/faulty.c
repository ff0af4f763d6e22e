/* SPDX-License-Identifier: MIT */
/*
 * The fault-injecting wrapper: any ca_source behind a fault plan. Each
 * operation asks the plan at its operation point, then forwards to the inner
 * source unchanged. Concurrency: that of the inner source (the plan is
 * atomic). Read first: ca_source_faulty_init.
 */
#include "source_internal.h"

static ca_source_faulty *from(ca_source *s) { return (ca_source_faulty *)(void *)s; }

static int f_obtain(ca_source *s, size_t size, size_t align, void **out)
{
    int err = ca_source_fault_hit(from(s)->fault, CA_SOURCE_FAULT_OBTAIN, size);
    return err ? err : ca_source_obtain(from(s)->inner, size, align, out);
}

static int f_release(ca_source *s, void *p, size_t size)
{
    int err = ca_source_fault_hit(from(s)->fault, CA_SOURCE_FAULT_RELEASE, size);
    return err ? err : ca_source_release(from(s)->inner, p, size);
}

static int f_reserve(ca_source *s, size_t size, size_t align, void **out)
{
    int err = ca_source_fault_hit(from(s)->fault, CA_SOURCE_FAULT_RESERVE, size);
    return err ? err : ca_source_reserve(from(s)->inner, size, align, out);
}

static int f_commit(ca_source *s, void *p, size_t size)
{
    int err = ca_source_fault_hit(from(s)->fault, CA_SOURCE_FAULT_COMMIT, size);
    return err ? err : ca_source_commit(from(s)->inner, p, size);
}

static int f_decommit(ca_source *s, void *p, size_t size)
{
    int err = ca_source_fault_hit(from(s)->fault, CA_SOURCE_FAULT_DECOMMIT, size);
    return err ? err : ca_source_decommit(from(s)->inner, p, size);
}

static int f_stats(const ca_source *s, ca_stats *out)
{
    CA_STATS_LAYER_COUNTERS(CA_SOURCE_FAULTY_COUNTERS);
    const ca_source_faulty *w = (const ca_source_faulty *)(const void *)s;
    int err = ca_source_stats(w->inner, out);
    CA_STATS_SET(out, faults_injected, __atomic_load_n(&w->fault->injected, __ATOMIC_RELAXED));
    return err;
}

static const char *f_check(const ca_source *s)
{
    return ca_source_check(((const ca_source_faulty *)(const void *)s)->inner);
}

int ca_source_faulty_init(ca_source_faulty *w, ca_source *inner, ca_source_fault *f)
{
    if (!w || !inner || !inner->ops || !f)
        return EINVAL;
    memset(w, 0, sizeof *w);
    const ca_source_ops *in = inner->ops;
    w->ops.name = "source-faulty";
    w->ops.caps = in->caps;
    w->ops.obtain = f_obtain;
    w->ops.release = f_release;
    w->ops.reserve = in->reserve ? f_reserve : NULL;
    w->ops.commit = in->commit ? f_commit : NULL;
    w->ops.decommit = in->decommit ? f_decommit : NULL;
    w->ops.stats = f_stats;
    w->ops.check = in->check ? f_check : NULL;
    w->base.ops = &w->ops;
    w->base.granule = inner->granule;
    w->inner = inner;
    w->fault = f;
    return 0;
}
