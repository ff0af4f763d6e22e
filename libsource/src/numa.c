/* SPDX-License-Identifier: MIT */
/*
 * NUMA policies through libnuma's mbind / move_pages. Compiled with
 * CA_SOURCE_HAVE_NUMA=1 when the build found libnuma; without it every
 * non-default policy fails with ENOTSUP (never a silent success).
 * maxnode is in bits everywhere in ctxalloc; the kernel reads maxnode - 1
 * bits, so mbind is called with maxnode + 1.
 * Concurrency: stateless besides libnuma's own read-only globals.
 * Read first: ca_source_numa_validate.
 */
#include "source_internal.h"

#if CA_SOURCE_HAVE_NUMA
#include <numa.h>
#include <numaif.h>
#include <sys/mman.h>
#endif

#define BITS_PER_WORD (8 * sizeof(unsigned long))

static bool bit(const unsigned long *m, size_t i) { return (m[i / BITS_PER_WORD] >> (i % BITS_PER_WORD)) & 1ul; }

int ca_source_numa_available(void)
{
#if CA_SOURCE_HAVE_NUMA
    if (numa_available() < 0)
        return 0;
    return numa_max_node() + 1;
#else
    return 0;
#endif
}

int ca_source_numa_validate(const ca_source_numa *policy)
{
    if (!policy || policy->mode == CA_SOURCE_NUMA_DEFAULT)
        return 0;
    if (policy->mode > CA_SOURCE_NUMA_LOCAL)
        return EINVAL;
    if (policy->maxnode && !policy->nodes)
        return EINVAL;
#if CA_SOURCE_HAVE_NUMA
    if (numa_available() < 0)
        return ENOTSUP;
    /* The nodes this thread may use, without libnuma's malloc'ed bitmasks
     * (libsource must not call malloc): maxnode + 1 as the kernel expects. */
    unsigned long allowed[CA_SOURCE_NUMA_MASK_WORDS];
    memset(allowed, 0, sizeof allowed);
    if (get_mempolicy(NULL, allowed, CA_SOURCE_NUMA_MAX_NODES + 1, NULL, MPOL_F_MEMS_ALLOWED) != 0)
        return errno == ENOSYS ? ENOTSUP : EINVAL;
    size_t count = 0;
    int max = numa_max_node();
    int err = 0;
    for (size_t i = 0; i < policy->maxnode; i++) {
        if (!bit(policy->nodes, i))
            continue;
        count++;
        if (i > (size_t)max || i >= CA_SOURCE_NUMA_MAX_NODES || !bit(allowed, i))
            err = EINVAL;
    }
    if (err)
        return err;
    switch (policy->mode) {
    case CA_SOURCE_NUMA_LOCAL:
        return count == 0 ? 0 : EINVAL;
    case CA_SOURCE_NUMA_PREFERRED:
        return count == 1 ? 0 : EINVAL;
    default:
        return count >= 1 ? 0 : EINVAL;
    }
#else
    (void)bit;
    return ENOTSUP;
#endif
}

int ca_source__numa_apply_raw(void *p, size_t size, unsigned mode, const unsigned long *nodes,
                              size_t maxnode)
{
    if (mode == CA_SOURCE_NUMA_DEFAULT)
        return 0;
#if CA_SOURCE_HAVE_NUMA
    int kmode;
    switch (mode) {
    case CA_SOURCE_NUMA_PREFERRED:
        kmode = MPOL_PREFERRED;
        break;
    case CA_SOURCE_NUMA_BIND:
        kmode = MPOL_BIND;
        break;
    case CA_SOURCE_NUMA_INTERLEAVE:
        kmode = MPOL_INTERLEAVE;
        break;
    case CA_SOURCE_NUMA_LOCAL:
        kmode = 4; /* MPOL_LOCAL (Linux 3.8+); older numaif.h lacks the name */
        maxnode = 0;
        nodes = NULL;
        break;
    default:
        return EINVAL;
    }
    /* The kernel reads maxnode - 1 bits: pass the width in bits plus one. */
    if (mbind(p, size, kmode, maxnode ? nodes : NULL, maxnode ? maxnode + 1 : 0, MPOL_MF_MOVE) != 0)
        return errno ? errno : EINVAL;
    return 0;
#else
    (void)p;
    (void)size;
    (void)nodes;
    (void)maxnode;
    return ENOTSUP;
#endif
}

int ca_source_numa_apply(void *p, size_t size, const ca_source_numa *policy)
{
    if (!policy || policy->mode == CA_SOURCE_NUMA_DEFAULT)
        return 0;
    if (!p || size == 0 || !ca_is_aligned((uintptr_t)p, ca_page_size()))
        return EINVAL;
    int err = ca_source_numa_validate(policy);
    if (err)
        return err;
    /* Trim the mask to its highest set bit: the kernel refuses set bits
     * beyond its own MAX_NUMNODES but accepts zero bits there. */
    size_t width = 0;
    for (size_t i = 0; i < policy->maxnode; i++)
        if (bit(policy->nodes, i))
            width = i + 1;
    return ca_source__numa_apply_raw(p, size, policy->mode, policy->nodes, width);
}

int ca_source_numa_node_of(const void *p, int *node)
{
    if (!node)
        return EINVAL;
#if CA_SOURCE_HAVE_NUMA
    void *page = (void *)ca_align_down((uintptr_t)p, ca_page_size());
    int status = -1;
    if (move_pages(0, 1, &page, NULL, &status, 0) != 0)
        return errno ? errno : EINVAL;
    if (status == -EFAULT) {
        /* Some kernels (6.1 among them) answer EFAULT, not ENOENT, for an
         * anonymous page that was never touched (no page table yet; found
         * in the two-node guest of ./run.sh numa). The address is mapped
         * when mincore accepts it: then the page is only absent. */
        unsigned char vec;
        if (mincore(page, ca_page_size(), &vec) == 0)
            return ENOENT;
        return EFAULT;
    }
    if (status < 0)
        return -status;
    *node = status;
    return 0;
#else
    (void)p;
    return ENOTSUP;
#endif
}
