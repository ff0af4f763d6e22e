/* SPDX-License-Identifier: MIT */
/*
 * Releases of ranges a source never gave out, and double releases: with
 * checks=on they abort with one line naming the source; with checks=off the
 * mmap, file and buffer sources refuse them with EINVAL and touch nothing.
 */
#include <ctxalloc/source.h>

#include <criterion/criterion.h>
#include <sys/mman.h>

#include "ca_death.h"
#include "ca_test.h"

#define PREFIX "ctxalloc: source: "

static void expect(void (*fn)(void *), const char *what)
{
    ca_death_result r = ca_death_run(fn, NULL);
    if (CA_CHECKS >= CA_CHECKS_ON) {
        cr_assert(r.aborted, "%s: no abort; output: %s", what, r.out);
        char line[256];
        snprintf(line, sizeof line, PREFIX "%s", what);
        cr_assert(ca_death_has_line(&r, line), "output: %s", r.out);
    } else {
        cr_assert_not(r.aborted, "%s: checks=off must not abort; output: %s", what, r.out);
    }
}

static void mmap_foreign(void *arg)
{
    (void)arg;
    ca_source_mmap m;
    ca_source_mmap_init(&m, NULL);
    void *q = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    int rc = ca_source_release(&m.base, q, 4096);
    /* checks=off: refused, and q still mapped */
    if (rc != EINVAL || *(volatile char *)q != 0)
        abort();
}

static void mmap_double(void *arg)
{
    (void)arg;
    ca_source_mmap m;
    ca_source_mmap_init(&m, NULL);
    void *p;
    ca_source_obtain(&m.base, 8192, 4096, &p);
    ca_source_release(&m.base, p, 8192);
    if (ca_source_release(&m.base, p, 8192) != EINVAL)
        abort();
}

static void mmap_commit_foreign(void *arg)
{
    (void)arg;
    ca_source_mmap m;
    ca_source_mmap_init(&m, NULL);
    void *q = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (ca_source_commit(&m.base, q, 4096) != EINVAL)
        abort();
}

static void file_foreign(void *arg)
{
    (void)arg;
    ca_source_file f;
    ca_source_file_init(&f, NULL);
    void *p;
    ca_source_obtain(&f.base, 8192, 4096, &p);
    if (ca_source_release(&f.base, (char *)p + 4096, 4096) != EINVAL)
        abort();
}

static void heap_foreign(void *arg)
{
    (void)arg;
    ca_source_heap h;
    ca_source_heap_init(&h, NULL);
    void *p;
    ca_source_obtain(&h.base, 4096, 4096, &p);
    ca_source_release(&h.base, (char *)p + 4096, 4096);
}

static char buf[1 << 16];

static void buffer_double(void *arg)
{
    (void)arg;
    ca_source_buffer b;
    ca_source_buffer_init(&b, buf, sizeof buf, NULL);
    void *p, *q;
    ca_source_obtain(&b.base, 4096, 4096, &p);
    ca_source_obtain(&b.base, 4096, 4096, &q);
    ca_source_release(&b.base, p, 4096);
    if (ca_source_release(&b.base, p, 4096) != EINVAL)
        abort();
}

static void buffer_outside(void *arg)
{
    (void)arg;
    ca_source_buffer b;
    ca_source_buffer_init(&b, buf, sizeof buf, NULL);
    if (ca_source_release(&b.base, buf + sizeof buf, 4096) != EINVAL)
        abort();
}

static void slots_double(void *arg)
{
    (void)arg;
    ca_source_slots s;
    ca_source_slots_options o;
    memset(&o, 0, sizeof o);
    o.slot_size = 64;
    ca_source_slots_init(&s, ca_source_mmap_global(), &o);
    void *a = ca_source_slots_get(&s);
    void *b = ca_source_slots_get(&s);
    ca_source_slots_put(&s, a);
    ca_source_slots_put(&s, b);
    ca_source_slots_put(&s, a);
}

static void slots_foreign(void *arg)
{
    (void)arg;
    ca_source_slots s;
    ca_source_slots_options o;
    memset(&o, 0, sizeof o);
    o.slot_size = 64;
    ca_source_slots_init(&s, ca_source_mmap_global(), &o);
    void *a = ca_source_slots_get(&s);
    ca_source_slots_put(&s, (char *)a + 8);
}

Test(source_death, mmap) 
{
    expect(mmap_foreign, "release of a range this mmap source did not give out");
    expect(mmap_double, "release of a range this mmap source did not give out");
    expect(mmap_commit_foreign, "commit outside the ranges of this mmap source");
}

Test(source_death, file) { expect(file_foreign, "release of a range this file source did not give out"); }

Test(source_death, buffer)
{
    expect(buffer_double, "release of free memory (double release) in a buffer source");
    expect(buffer_outside, "release of a range outside this buffer source");
}

Test(source_death, heap_and_slots_checks_on_only)
{
    if (CA_CHECKS < CA_CHECKS_ON)
        cr_skip_test("heap and slot arena check only with checks=on");
    expect(heap_foreign, "release of a range this heap source did not give out");
    expect(slots_double, "double release in a slot arena");
    expect(slots_foreign, "release of a block this slot arena did not give out");
}

static void slots_corrupt_then_op(void *arg)
{
    (void)arg;
    ca_source_slots s;
    ca_source_slots_options o;
    memset(&o, 0, sizeof o);
    o.slot_size = 64;
    ca_source_slots_init(&s, ca_source_mmap_global(), &o);
    void *a = ca_source_slots_get(&s);
    ca_source_slots_put(&s, a);
    s.nfree += 5; /* corruption the walk must notice at the next operation */
    ca_source_slots_put(&s, ca_source_slots_get(&s));
}

Test(source_death, checks_full_walks_after_each_operation)
{
    if (CA_CHECKS < CA_CHECKS_FULL)
        cr_skip_test("checks=full only");
    expect(slots_corrupt_then_op, "slot arena: free count differs from the list");
}
