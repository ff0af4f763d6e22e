/* SPDX-License-Identifier: MIT */
/*
 * The malloc family itself: the only global symbols of ctxalloc without the
 * ca_ prefix. This file is the whole of the override library
 * (libctxalloc-switch-override.a, linked with --whole-archive) and part of
 * the preload object (libctxalloc.so). Each function forwards to its
 * ca_switch_* counterpart (family.c), which documents the semantics.
 *
 * Concurrency: as ca_switch_*. C++ operator new / delete reach these through
 * libstdc++, which calls malloc and free.
 */
#include <ctxalloc/switch.h>

#include <malloc.h>
#include <stdlib.h>

#define CA_EXPORT __attribute__((visibility("default")))

CA_EXPORT void *malloc(size_t size) { return ca_switch_malloc(size); }

CA_EXPORT void free(void *p) { ca_switch_free(p); }

CA_EXPORT void *calloc(size_t n, size_t size) { return ca_switch_calloc(n, size); }

CA_EXPORT void *realloc(void *p, size_t size) { return ca_switch_realloc(p, size); }

CA_EXPORT void *reallocarray(void *p, size_t n, size_t size) { return ca_switch_reallocarray(p, n, size); }

CA_EXPORT int posix_memalign(void **out, size_t align, size_t size)
{
    return ca_switch_posix_memalign(out, align, size);
}

CA_EXPORT void *aligned_alloc(size_t align, size_t size) { return ca_switch_aligned_alloc(align, size); }

CA_EXPORT void *memalign(size_t align, size_t size) { return ca_switch_memalign(align, size); }

CA_EXPORT void *valloc(size_t size) { return ca_switch_valloc(size); }

CA_EXPORT void *pvalloc(size_t size) { return ca_switch_pvalloc(size); }

CA_EXPORT size_t malloc_usable_size(void *p) { return ca_switch_usable_size(p); }

CA_EXPORT int malloc_trim(size_t pad) { return ca_switch_trim(pad); }
