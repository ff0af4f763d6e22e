/* SPDX-License-Identifier: MIT */
/* Uses libsource through its installed header only; valid C11 and C++17. */
#include <ctxalloc/source.h>
#include <stdio.h>
#include <string.h>

int main(void)
{
    ca_source_mmap m;
    ca_source_mmap_options o;
    memset(&o, 0, sizeof o);
    o.flags = CA_SOURCE_MMAP_NODUMP;
    o.name = "use-source";
    if (ca_source_mmap_init(&m, &o))
        return 1;
    void *p = NULL;
    size_t page = ca_source_granule(&m.base);
    if (ca_source_obtain(&m.base, 4 * page, 16 * page, &p) || !ca_is_aligned((uintptr_t)p, 16 * page))
        return 2;
    memset(p, 1, 4 * page);
    if (ca_source_decommit(&m.base, p, page) || ca_source_commit(&m.base, p, page))
        return 3;
    if (ca_source_release(&m.base, p, 4 * page))
        return 4;

    ca_source_slots sl;
    ca_source_slots_options so;
    memset(&so, 0, sizeof so);
    so.slot_size = 64;
    if (ca_source_slots_init(&sl, &m.base, &so))
        return 5;
    void *a = ca_source_slots_get(&sl);
    void *b = ca_source_slots_get(&sl);
    if (!a || !b || a == b)
        return 6;
    ca_source_slots_put(&sl, a);
    ca_source_slots_put(&sl, b);
    ca_source_slots_destroy(&sl);

    static char buf[1 << 16];
    ca_source_buffer bs;
    ca_source_buffer_options bo;
    memset(&bo, 0, sizeof bo);
    bo.granule = 256;
    if (ca_source_buffer_init(&bs, buf, sizeof buf, &bo))
        return 7;
    ca_source_fault f;
    ca_source_faulty w;
    ca_source_fault_init(&f, CA_SOURCE_FAULT_OBTAIN, 2, 1, ENOMEM);
    if (ca_source_faulty_init(&w, &bs.base, &f))
        return 8;
    void *q = NULL;
    if (ca_source_obtain(&w.base, 256, 256, &q) || ca_source_obtain(&w.base, 256, 256, &p) != ENOMEM)
        return 9;
    if (ca_source_release(&w.base, q, 256) || ca_source_check(&bs.base))
        return 10;

    ca_stats st;
    if (ca_source_stats(&m.base, &st) || st.allocs != 2 || st.frees != 2 || st.bytes_in_use != 0)
        return 11;
    ca_source_buffer_destroy(&bs);
    ca_source_mmap_destroy(&m);
    printf("use-source: ok (numa nodes %d)\n", ca_source_numa_available());
    return 0;
}
