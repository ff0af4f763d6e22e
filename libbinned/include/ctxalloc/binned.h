/* SPDX-License-Identifier: MIT */
/*
 * libbinned: thread-caching general-purpose allocator (work in progress:
 * the full interface lands with the allocator).
 */
#ifndef CTXALLOC_BINNED_H
#define CTXALLOC_BINNED_H

#include <ctxalloc/core.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Largest request served by the size classes; larger ones go to the
 * large-object tier (<ctxalloc/binned/large.h>). */
#define CA_BINNED_SMALL_MAX ((size_t)256 << 10)

#ifdef __cplusplus
}
#endif

#endif /* CTXALLOC_BINNED_H */
