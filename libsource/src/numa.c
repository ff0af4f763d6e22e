/* SPDX-License-Identifier: MIT */
/*
 * NUMA policies through the kernel's own calls: mbind, get_mempolicy and
 * move_pages, made with syscall(2), and the nodes the machine has, read from
 * /sys/devices/system/node as libnuma's numa_max_node reads them. libnuma is
 * not linked: a program (or the preload object) that never asks for a policy
 * loads and runs nothing for NUMA. Compiled with CA_SOURCE_HAVE_NUMA=1 unless
 * the build option numa is disabled (or the kernel headers lack the calls);
 * without it every non-default policy fails with ENOTSUP (never a silent
 * success), as on a kernel without NUMA support (ENOSYS).
 * maxnode is in bits everywhere in ctxalloc; the kernel reads maxnode - 1
 * bits, so mbind is called with maxnode + 1.
 * Concurrency: stateless besides one cached number (the highest node).
 * Read first: ca_source_numa_validate.
 */
#include "source_internal.h"

#if CA_SOURCE_HAVE_NUMA
#include <fcntl.h>
#include <linux/mempolicy.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#define BITS_PER_WORD (8 * sizeof(unsigned long))

static bool bit(const unsigned long *m, size_t i) { return (m[i / BITS_PER_WORD] >> (i % BITS_PER_WORD)) & 1ul; }

#if CA_SOURCE_HAVE_NUMA
/* The kernel's calls, as libnuma's wrappers make them: -1 and errno. */
static long sys_get_mempolicy(int *mode, unsigned long *nodes, unsigned long maxnode, void *addr,
                              unsigned long flags)
{
    return syscall(SYS_get_mempolicy, mode, nodes, maxnode, addr, flags);
}

static long sys_mbind(void *p, unsigned long len, int mode, const unsigned long *nodes, unsigned long maxnode,
                      unsigned flags)
{
    return syscall(SYS_mbind, p, len, mode, nodes, maxnode, flags);
}

/* Whether the kernel has NUMA policies (libnuma's numa_available). */
static bool kernel_numa(void)
{
    return !(sys_get_mempolicy(NULL, NULL, 0, NULL, 0) < 0 && (errno == ENOSYS || errno == EPERM));
}

/* The highest N of the /sys/devices/system/node/nodeN directories, 0 when
 * there are none (libnuma's numa_max_node); read with getdents64 into a
 * stack buffer (no malloc, no stdio) once, then cached. */
static int max_node_cached = -1; /* __atomic */

static int scan_max_node(void)
{
    int fd = open("/sys/devices/system/node", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    int max = 0;
    char buf[2048] __attribute__((aligned(8)));
    long n;
    while ((n = syscall(SYS_getdents64, fd, buf, sizeof buf)) > 0) {
        for (long off = 0; off < n;) {
            /* struct linux_dirent64: ino (8), off (8), reclen (2), type (1), name */
            unsigned short reclen;
            memcpy(&reclen, buf + off + 16, sizeof reclen);
            const char *name = buf + off + 19;
            if (name[0] == 'n' && name[1] == 'o' && name[2] == 'd' && name[3] == 'e' && name[4] >= '0' &&
                name[4] <= '9') {
                long v = 0;
                for (const char *c = name + 4; *c >= '0' && *c <= '9' && v <= INT32_MAX / 10; c++)
                    v = v * 10 + (*c - '0');
                if (v > max && v <= INT32_MAX / 10)
                    max = (int)v;
            }
            off += reclen ? reclen : n; /* a zero length would loop: stop */
        }
    }
    (void)close(fd);
    return max;
}

static int max_node(void)
{
    int m = __atomic_load_n(&max_node_cached, __ATOMIC_RELAXED);
    if (m < 0) {
        m = scan_max_node();
        __atomic_store_n(&max_node_cached, m, __ATOMIC_RELAXED);
    }
    return m;
}
#endif

int ca_source_numa_available(void)
{
#if CA_SOURCE_HAVE_NUMA
    if (!kernel_numa())
        return 0;
    return max_node() + 1;
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
    if (!kernel_numa())
        return ENOTSUP;
    /* The nodes this thread may use: maxnode + 1 as the kernel expects. */
    unsigned long allowed[CA_SOURCE_NUMA_MASK_WORDS];
    memset(allowed, 0, sizeof allowed);
    if (sys_get_mempolicy(NULL, allowed, CA_SOURCE_NUMA_MAX_NODES + 1, NULL, MPOL_F_MEMS_ALLOWED) != 0)
        return errno == ENOSYS ? ENOTSUP : EINVAL;
    size_t count = 0;
    int max = max_node();
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
    case CA_SOURCE_NUMA_LOCAL: return count == 0 ? 0 : EINVAL;
    case CA_SOURCE_NUMA_PREFERRED: return count == 1 ? 0 : EINVAL;
    default: return count >= 1 ? 0 : EINVAL;
    }
#else
    (void)bit;
    return ENOTSUP;
#endif
}

int ca_source__numa_apply_raw(void *p, size_t size, unsigned mode, const unsigned long *nodes, size_t maxnode)
{
    if (mode == CA_SOURCE_NUMA_DEFAULT)
        return 0;
#if CA_SOURCE_HAVE_NUMA
    int kmode;
    switch (mode) {
    case CA_SOURCE_NUMA_PREFERRED: kmode = MPOL_PREFERRED; break;
    case CA_SOURCE_NUMA_BIND: kmode = MPOL_BIND; break;
    case CA_SOURCE_NUMA_INTERLEAVE: kmode = MPOL_INTERLEAVE; break;
    case CA_SOURCE_NUMA_LOCAL:
        kmode = MPOL_LOCAL;
        maxnode = 0;
        nodes = NULL;
        break;
    default: return EINVAL;
    }
    /* The kernel reads maxnode - 1 bits: pass the width in bits plus one. */
    if (sys_mbind(p, size, kmode, maxnode ? nodes : NULL, maxnode ? maxnode + 1 : 0, MPOL_MF_MOVE) != 0)
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
    if (syscall(SYS_move_pages, 0, 1ul, &page, NULL, &status, 0) != 0)
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
