/* SPDX-License-Identifier: MIT */
/*
 * The slot arena, heap and buffer sources: LIFO reuse, the initialiser,
 * chunk growth and return to the parent, parent failures, exhaustion,
 * coalescing, alignment, double release detected from the free list.
 */
#include <ctxalloc/source.h>

#include <criterion/criterion.h>

#include "ca_test.h"

static size_t page;
static void setup(void) { page = ca_page_size(); }
TestSuite(source_slots, .init = setup);

typedef struct init_log {
    int calls;
    void *last;
} init_log;

static void log_init(void *ctx, void *block, size_t size)
{
    init_log *l = (init_log *)ctx;
    l->calls++;
    l->last = block;
    memset(block, 0x5c, size);
}

static ca_source_slots_options opts(size_t slot, size_t chunk, ca_source_slot_init_fn fn, void *ctx)
{
    ca_source_slots_options o;
    memset(&o, 0, sizeof o);
    o.slot_size = slot;
    o.chunk_size = chunk;
    o.init = fn;
    o.init_ctx = ctx;
    return o;
}

Test(source_slots, lifo_reuse_and_initialiser)
{
    ca_source_heap h;
    cr_assert_eq(ca_source_heap_init(&h, NULL), 0);
    init_log log = {0, NULL};
    ca_source_slots_options o = opts(128, 0, log_init, &log);
    ca_source_slots s;
    cr_assert_eq(ca_source_slots_init(&s, &h.base, &o), 0);
    cr_assert_eq(ca_source_granule(&s.base), 128);
    void *a = ca_source_slots_get(&s);
    cr_assert(ca_is_aligned((uintptr_t)a, 128));
    cr_assert_eq(log.calls, 1);
    cr_assert_eq(log.last, a);
    ca_source_slots_put(&s, a);
    void *b = ca_source_slots_get(&s);
    cr_assert_eq(b, a, "LIFO: the last released slot comes back");
    cr_assert_eq(log.calls, 2, "initialiser runs on reuse too");
    cr_assert_eq(((unsigned char *)b)[127], 0x5c);
    ca_source_slots_put(&s, b);
    cr_assert_null(ca_source_check(&s.base));
    ca_source_slots_destroy(&s);
    ca_source_heap_destroy(&h);
}

Test(source_slots, chunks_grow_and_return)
{
    ca_source_mmap m;
    cr_assert_eq(ca_source_mmap_init(&m, NULL), 0);
    ca_source_slots_options o = opts(64, page, NULL, NULL);
    ca_source_slots s;
    cr_assert_eq(ca_source_slots_init(&s, &m.base, &o), 0);
    size_t per_chunk = page / 64 - 1; /* the first slot's place holds the chunk header */
    size_t n = per_chunk * 5 + 3;
    void **v = (void **)calloc(n, sizeof *v);
    for (size_t i = 0; i < n; i++) {
        v[i] = ca_source_slots_get(&s);
        cr_assert_not_null(v[i]);
        ca_test_fill(v[i], 64, i);
    }
    for (size_t i = 0; i < n; i++)
        cr_assert(ca_test_verify(v[i], 64, i), "slot %zu overlapped", i);
    ca_stats st;
    ca_source_stats(&s.base, &st);
    uint64_t chunks = 0;
    ca_stats_get_counter(&st, "chunks", &chunks);
    cr_assert_eq(chunks, 6);
    cr_assert_eq(st.bytes_in_use, n * 64);
    cr_assert_eq(st.bytes_reserved, 6 * page);
    cr_assert_null(ca_source_check(&s.base));
    for (size_t i = 0; i < n; i += 2)
        ca_source_slots_put(&s, v[i]);
    cr_assert_null(ca_source_check(&s.base));
    cr_assert_eq(ca_source_slots_free_count(&s), 6 * per_chunk - n + (n + 1) / 2);
    ca_source_slots_destroy(&s);
    ca_source_stats(&m.base, &st);
    cr_assert_eq(st.bytes_reserved, 0, "every chunk went back to the parent");
    cr_assert_eq(st.frees, 6);
    free(v);
    ca_source_mmap_destroy(&m);
}

Test(source_slots, large_slots_and_bad_options)
{
    ca_source_mmap m;
    cr_assert_eq(ca_source_mmap_init(&m, NULL), 0);
    ca_source_slots s;
    ca_source_slots_options o = opts(64 * 1024, 0, NULL, NULL);
    cr_assert_eq(ca_source_slots_init(&s, &m.base, &o), 0);
    void *a = ca_source_slots_get(&s), *b = ca_source_slots_get(&s);
    cr_assert(ca_is_aligned((uintptr_t)a, 64 * 1024) && ca_is_aligned((uintptr_t)b, 64 * 1024));
    memset(a, 1, 64 * 1024);
    memset(b, 2, 64 * 1024);
    ca_source_slots_put(&s, a);
    ca_source_slots_put(&s, b);
    ca_source_slots_destroy(&s);
    o.slot_size = 24;
    cr_assert_eq(ca_source_slots_init(&s, &m.base, &o), EINVAL);
    o.slot_size = 8;
    cr_assert_eq(ca_source_slots_init(&s, &m.base, &o), EINVAL);
    o.slot_size = 64;
    cr_assert_eq(ca_source_slots_init(&s, NULL, &o), EINVAL);
    cr_assert_eq(ca_source_slots_init(&s, &m.base, NULL), EINVAL);
    o.slot_size = (size_t)1 << 62;
    cr_assert_eq(ca_source_slots_init(&s, &m.base, &o), EINVAL, "chunk size overflow");
    ca_source_mmap_destroy(&m);
}

Test(source_slots, parent_failure_propagates)
{
    ca_source_heap h;
    cr_assert_eq(ca_source_heap_init(&h, NULL), 0);
    ca_source_fault f;
    ca_source_fault_init(&f, CA_SOURCE_FAULT_OBTAIN, 2, 1, ENOMEM);
    ca_source_faulty w;
    cr_assert_eq(ca_source_faulty_init(&w, &h.base, &f), 0);
    ca_source_slots_options o = opts(256, page, NULL, NULL);
    ca_source_slots s;
    cr_assert_eq(ca_source_slots_init(&s, &w.base, &o), 0);
    size_t per_chunk = page / 256 - 1;
    for (size_t i = 0; i < per_chunk; i++)
        cr_assert_not_null(ca_source_slots_get(&s));
    errno = 0;
    cr_assert_null(ca_source_slots_get(&s), "second chunk refused");
    cr_assert_eq(errno, ENOMEM);
    void *p;
    cr_assert_eq(ca_source_obtain(&s.base, 256, 256, &p), 0, "third parent obtain works");
    cr_assert_null(ca_source_check(&s.base));
    ca_stats st;
    ca_source_stats(&s.base, &st);
    cr_assert_eq(st.failures, 1);
    ca_source_slots_destroy(&s);
    ca_source_heap_destroy(&h);
}

Test(source_slots, buffer_exhaustion_coalescing_alignment)
{
    static char mem[64 * 1024 + 100];
    ca_source_buffer b;
    ca_source_buffer_options o = {.granule = 256, .fault = NULL};
    cr_assert_eq(ca_source_buffer_init(&b, mem + 3, sizeof mem - 3, &o), 0);
    cr_assert(ca_is_aligned((uintptr_t)b.start, 256));
    size_t cap = b.size;
    void *a, *c, *d;
    cr_assert_eq(ca_source_obtain(&b.base, cap, 256, &a), 0, "the whole buffer");
    cr_assert_eq(ca_source_obtain(&b.base, 256, 256, &c), ENOMEM);
    cr_assert_eq(ca_source_release(&b.base, a, cap), 0);
    cr_assert_eq(ca_source_obtain(&b.base, 1024, 4096, &a), 0);
    cr_assert(ca_is_aligned((uintptr_t)a, 4096));
    cr_assert_eq(ca_source_obtain(&b.base, 256, 256, &c), 0);
    cr_assert_eq(ca_source_obtain(&b.base, 512, 256, &d), 0);
    cr_assert_null(ca_source_check(&b.base));
    cr_assert_eq(ca_source_release(&b.base, c, 256), 0);
    cr_assert_eq(ca_source_release(&b.base, a, 1024), 0);
    cr_assert_eq(ca_source_release(&b.base, d, 512), 0);
    cr_assert_null(ca_source_check(&b.base));
    cr_assert_eq(ca_source_obtain(&b.base, cap, 256, &a), 0, "everything merged back into one range");
    cr_assert_eq(ca_source_release(&b.base, a, cap), 0);
    /* double and foreign releases are refused (EINVAL with checks=off;
     * the abort with checks=on is in test_death) */
    ca_source_buffer_destroy(&b);
    cr_assert_eq(ca_source_buffer_init(&b, mem, 100, &o), EINVAL, "no whole granule");
    cr_assert_eq(ca_source_buffer_init(&b, NULL, 4096, &o), EINVAL);
    o.granule = 8;
    cr_assert_eq(ca_source_buffer_init(&b, mem, sizeof mem, &o), EINVAL);
}

Test(source_slots, heap_zero_and_options)
{
    ca_source_heap h;
    ca_source_heap_options o = {.granule = 64, .flags = CA_SOURCE_HEAP_ZERO, .fault = NULL};
    cr_assert_eq(ca_source_heap_init(&h, &o), 0);
    cr_assert(h.base.ops->caps & CA_SOURCE_ZEROED);
    void *p;
    cr_assert_eq(ca_source_obtain(&h.base, 640, 64, &p), 0);
    for (int i = 0; i < 640; i++)
        cr_assert_eq(((char *)p)[i], 0);
    cr_assert_eq(ca_source_obtain(&h.base, 100, 64, &p), EINVAL, "not a granule multiple");
    cr_assert_eq(ca_source_obtain(&h.base, 64, 3, &p), EINVAL);
    void *q;
    cr_assert_eq(ca_source_obtain(&h.base, (size_t)1 << 62, 64, &q), ENOMEM);
    cr_assert_eq(ca_source_release(&h.base, p, 640), 0);
    cr_assert_null(ca_source_check(&h.base));
    ca_source_heap_destroy(&h);
    o.granule = 48;
    cr_assert_eq(ca_source_heap_init(&h, &o), EINVAL);
    o.granule = 64;
    o.flags = 0x10;
    cr_assert_eq(ca_source_heap_init(&h, &o), EINVAL);
}
