/* SPDX-License-Identifier: MIT */
/*
 * NUMA policies on this machine: bind to node 0 works and the pages land
 * there; node 1 fails cleanly with EINVAL on a one-node machine (skipped
 * where node 1 exists); masks wider than 64 bits (maxnode in bits) work;
 * wrong mask shapes are refused; node_of tells an untouched page (ENOENT)
 * from an unmapped address (EFAULT); the node count is the one the kernel
 * lists. Built without NUMA (-Dnuma=disabled) every non-default policy must
 * fail with ENOTSUP. ./run.sh numa also runs this program in its two-node
 * guest; the two-node placement tests are in tests/numa/.
 */
#include <ctxalloc/source.h>

#include <criterion/criterion.h>
#include <dirent.h>
#include <stdlib.h>

#include "ca_test.h"

#define WORDS (4096 / (8 * sizeof(unsigned long)))

static unsigned long mask[WORDS];

static void set_bit(size_t n) { mask[n / (8 * sizeof(unsigned long))] |= 1ul << (n % (8 * sizeof(unsigned long))); }

static int init_with(ca_source_mmap *m, unsigned mode, size_t maxnode)
{
    ca_source_mmap_options o;
    memset(&o, 0, sizeof o);
    o.numa.mode = mode;
    o.numa.nodes = mask;
    o.numa.maxnode = maxnode;
    return ca_source_mmap_init(m, &o);
}

TestSuite(source_numa);

Test(source_numa, bind_node0_lands_on_node0)
{
    ca_source_mmap m;
    set_bit(0);
    int rc = init_with(&m, CA_SOURCE_NUMA_BIND, 64);
    if (!ca_source_numa_available()) {
        cr_assert_eq(rc, ENOTSUP);
        return;
    }
    cr_assert_eq(rc, 0);
    void *p;
    size_t n = 16 * ca_page_size();
    cr_assert_eq(ca_source_obtain(&m.base, n, ca_page_size(), &p), 0);
    memset(p, 1, n);
    int node = -1;
    cr_assert_eq(ca_source_numa_node_of((char *)p + n - 1, &node), 0);
    cr_assert_eq(node, 0);
    cr_assert_eq(ca_source_release(&m.base, p, n), 0);
    ca_source_mmap_destroy(&m);
}

Test(source_numa, node1_fails_cleanly)
{
    ca_source_mmap m;
    set_bit(1);
    long maps = ca_test_count_maps();
    int rc = init_with(&m, CA_SOURCE_NUMA_BIND, 64);
    if (ca_source_numa_available() > 1)
        cr_skip_test("machine has a node 1");
    cr_assert_eq(rc, ca_source_numa_available() ? EINVAL : ENOTSUP);
    cr_assert_eq(ca_test_count_maps(), maps);
    /* Applying the same policy to an existing range fails the same way. */
    ca_source_numa pol = {CA_SOURCE_NUMA_BIND, mask, 64};
    void *p;
    ca_source_mmap d;
    cr_assert_eq(ca_source_mmap_init(&d, NULL), 0);
    cr_assert_eq(ca_source_obtain(&d.base, ca_page_size(), ca_page_size(), &p), 0);
    cr_assert_eq(ca_source_numa_apply(p, ca_page_size(), &pol), ca_source_numa_available() ? EINVAL : ENOTSUP);
    cr_assert_eq(ca_source_release(&d.base, p, ca_page_size()), 0);
    ca_source_mmap_destroy(&d);
}

Test(source_numa, wide_masks_in_bits)
{
    if (!ca_source_numa_available())
        cr_skip_test("no NUMA support");
    ca_source_mmap m;
    set_bit(0);
    /* 4096-bit mask, node 0 only: wider than the kernel's limit, zeros above. */
    cr_assert_eq(init_with(&m, CA_SOURCE_NUMA_INTERLEAVE, 4096), 0);
    void *p;
    cr_assert_eq(ca_source_obtain(&m.base, 8 * ca_page_size(), ca_page_size(), &p), 0);
    memset(p, 2, 8 * ca_page_size());
    int node = -1;
    cr_assert_eq(ca_source_numa_node_of(p, &node), 0);
    cr_assert_eq(node, 0);
    cr_assert_eq(ca_source_release(&m.base, p, 8 * ca_page_size()), 0);
    ca_source_mmap_destroy(&m);
    /* A node number above 64 that does not exist. */
    set_bit(100);
    cr_assert_eq(init_with(&m, CA_SOURCE_NUMA_BIND, 4096), EINVAL);
    /* maxnode is in bits: with maxnode 64 bit 100 is outside the mask. */
    cr_assert_eq(init_with(&m, CA_SOURCE_NUMA_BIND, 64), 0);
    ca_source_mmap_destroy(&m);
}

Test(source_numa, mask_shapes)
{
    if (!ca_source_numa_available())
        cr_skip_test("no NUMA support");
    ca_source_mmap m;
    cr_assert_eq(init_with(&m, CA_SOURCE_NUMA_BIND, 64), EINVAL, "empty mask");
    cr_assert_eq(init_with(&m, CA_SOURCE_NUMA_LOCAL, 0), 0);
    void *p;
    cr_assert_eq(ca_source_obtain(&m.base, ca_page_size(), ca_page_size(), &p), 0);
    *(volatile char *)p = 1;
    cr_assert_eq(ca_source_release(&m.base, p, ca_page_size()), 0);
    ca_source_mmap_destroy(&m);
    set_bit(0);
    cr_assert_eq(init_with(&m, CA_SOURCE_NUMA_PREFERRED, 64), 0);
    ca_source_mmap_destroy(&m);
    cr_assert_eq(init_with(&m, CA_SOURCE_NUMA_LOCAL, 64), EINVAL, "LOCAL takes no nodes");
    set_bit(1);
    cr_assert_eq(init_with(&m, CA_SOURCE_NUMA_PREFERRED, 64), EINVAL, "PREFERRED takes one node");
    cr_assert_eq(init_with(&m, 42, 64), EINVAL);
}

Test(source_numa, node_of_untouched_page)
{
    if (!ca_source_numa_available())
        cr_skip_test("no NUMA support");
    ca_source_mmap m;
    cr_assert_eq(ca_source_mmap_init(&m, NULL), 0);
    void *p;
    cr_assert_eq(ca_source_obtain(&m.base, ca_page_size(), ca_page_size(), &p), 0);
    int node = -1;
    cr_assert_eq(ca_source_numa_node_of(p, &node), ENOENT);
    cr_assert_eq(ca_source_release(&m.base, p, ca_page_size()), 0);
    ca_source_mmap_destroy(&m);
}

Test(source_numa, node_of_unmapped_address)
{
    if (!ca_source_numa_available())
        cr_skip_test("no NUMA support");
    ca_source_mmap m;
    cr_assert_eq(ca_source_mmap_init(&m, NULL), 0);
    void *p;
    cr_assert_eq(ca_source_obtain(&m.base, ca_page_size(), ca_page_size(), &p), 0);
    cr_assert_eq(ca_source_release(&m.base, p, ca_page_size()), 0);
    /* unmapped now: EFAULT, not the ENOENT of an untouched mapped page */
    int node = -1;
    cr_assert_eq(ca_source_numa_node_of(p, &node), EFAULT);
    cr_assert_eq(node, -1);
    ca_source_mmap_destroy(&m);
}

/* libsource reads the nodes itself (no libnuma): the count is the highest
 * /sys/devices/system/node/nodeN + 1, as libnuma's numa_max_node counts. */
Test(source_numa, available_counts_the_kernels_nodes)
{
    int n = ca_source_numa_available();
    if (!n)
        cr_skip_test("no NUMA support");
    int max = 0;
    DIR *d = opendir("/sys/devices/system/node");
    for (struct dirent *e; d && (e = readdir(d));)
        if (strncmp(e->d_name, "node", 4) == 0 && e->d_name[4] >= '0' && e->d_name[4] <= '9' &&
            atoi(e->d_name + 4) > max)
            max = atoi(e->d_name + 4);
    if (d)
        closedir(d);
    cr_assert_eq(n, max + 1);
    cr_assert_eq(ca_source_numa_available(), n, "the same answer again (cached)");
}
