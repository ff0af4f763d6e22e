/* SPDX-License-Identifier: MIT */
/* Compile-fail cases of the counter declarations (core.h, Statistics): each
 * CASE_* below must not compile (tests/core/meson.build runs the compiler
 * with -fsyntax-only and expects it to fail); CASE_ok must compile, which
 * shows that the failures come from the case and not from the file. */
#include <ctxalloc/core.h>

#if defined(CASE_too_many) /* one more than CA_STATS_COMPONENT_COUNTERS (16) */
#define LIST(X)                                                                                    \
    X(k0) X(k1) X(k2) X(k3) X(k4) X(k5) X(k6) X(k7) X(k8) X(k9) X(k10) X(k11) X(k12) X(k13) X(k14) \
    X(k15) X(k16)
#elif defined(CASE_duplicate) /* a name listed twice would be set once */
#define LIST(X) X(k0) X(k1) X(k0)
#else
#define LIST(X) X(k0) X(k1)
#endif

#if defined(CASE_layer_too_many) /* a layer beside a full component: 8 fit, 9 do not */
#define LAYER(X) X(l0) X(l1) X(l2) X(l3) X(l4) X(l5) X(l6) X(l7) X(l8)
#else
#define LAYER(X) X(l0)
#endif

void fill(ca_stats *s);
void fill_layer(ca_stats *s);

void fill(ca_stats *s)
{
    CA_STATS_COUNTERS(LIST);
    CA_STATS_SET(s, k0, 1);
#if defined(CASE_unlisted) /* a counter not in the list */
    CA_STATS_SET(s, k9, 1);
#endif
}

void fill_layer(ca_stats *s)
{
    CA_STATS_LAYER_COUNTERS(LAYER);
    CA_STATS_SET(s, l0, 1);
}
