/* SPDX-License-Identifier: MIT */
/*
 * Fault plans and the OS layer: the one place where the suite calls mmap,
 * munmap, mremap, madvise, mprotect, fallocate / posix_fallocate and msync.
 * core.h holds the contract (above "OS layer"); each function here asks the
 * process-wide plan, makes its system call and turns -1 / MAP_FAILED into
 * the errno.
 *
 * Concurrency: lock-free. The process-wide plan is one pointer, exchanged
 * and read with __atomic builtins (each call reads it once, so a call sees
 * the old or the new plan); a plan's counters are __atomic (ca_fault_hit).
 * Read first: os_fault, then ca_os_map.
 */
#include <ctxalloc/core.h>

#include <fcntl.h>
#include <sys/mman.h>

void ca_fault_init(ca_fault *f, unsigned points, uint64_t nth, uint64_t times, int error)
{
    memset(f, 0, sizeof *f);
    f->points = points;
    f->nth = nth;
    f->times = times;
    f->error = error;
}

int ca_fault_hit(ca_fault *f, unsigned point, size_t size)
{
    if (!f || !(__atomic_load_n(&f->points, __ATOMIC_RELAXED) & point))
        return 0;
    uint64_t n = __atomic_add_fetch(&f->calls, 1, __ATOMIC_RELAXED);
    int err = 0;
    if (f->nth && n >= f->nth && (f->times == 0 || n - f->nth < f->times))
        err = f->error > 0 ? f->error : EIO;
    else if (f->hook)
        err = f->hook(f->ctx, point, size);
    if (err)
        __atomic_add_fetch(&f->injected, 1, __ATOMIC_RELAXED);
    return err;
}

static ca_fault *os_plan; /* __atomic */

ca_fault *ca_os_set_fault(ca_fault *plan) { return __atomic_exchange_n(&os_plan, plan, __ATOMIC_ACQ_REL); }

/* The process-wide plan's verdict on one call: 0 or the errno to fail with. */
static int os_fault(unsigned kind, size_t size)
{
    ca_fault *f = __atomic_load_n(&os_plan, __ATOMIC_ACQUIRE);
    return ca_unlikely(f != NULL) ? ca_fault_hit(f, kind, size) : 0;
}

/* The errno of a failed call (never 0: a call that failed without one is
 * reported as ENOMEM, the kernel's answer for a mapping it cannot make). */
static int os_errno(void) { return errno ? errno : ENOMEM; }

int ca_os_map(void *addr, size_t size, int prot, int flags, int fd, int64_t off, void **out)
{
    int err = os_fault(CA_OS_MAP, size);
    if (err)
        return err;
    void *p = mmap(addr, size, prot, flags, fd, (off_t)off);
    if (p == MAP_FAILED)
        return os_errno();
    *out = p;
    return 0;
}

int ca_os_map_aligned(size_t size, size_t align, size_t unit, int prot, int flags, void **out)
{
    size_t total = size;
    if (align > unit && ca_add_overflows(size, align - unit, &total))
        return ENOMEM;
    void *m;
    int err = ca_os_map(NULL, total, prot, flags, -1, 0, &m);
    if (err)
        return err;
    char *p = (char *)m;
    char *a = (char *)ca_ptr_align_up(p, align > unit ? align : unit);
    if (a > p)
        munmap(p, (size_t)(a - p));
    if (p + total > a + size)
        munmap(a + size, (size_t)(p + total - (a + size)));
    *out = a;
    return 0;
}

int ca_os_unmap(void *p, size_t size)
{
    int err = os_fault(CA_OS_UNMAP, size);
    if (err)
        return err;
    return munmap(p, size) == 0 ? 0 : os_errno();
}

int ca_os_remap(void *p, size_t size, size_t new_size, int flags, void *new_addr, void **out)
{
    int err = os_fault(CA_OS_REMAP, new_size);
    if (err)
        return err;
    void *q = mremap(p, size, new_size, flags, new_addr);
    if (q == MAP_FAILED)
        return os_errno();
    *out = q;
    return 0;
}

int ca_os_advise(void *p, size_t size, int advice)
{
    int err = os_fault(CA_OS_ADVISE, size);
    if (err)
        return err;
    return madvise(p, size, advice) == 0 ? 0 : os_errno();
}

int ca_os_protect(void *p, size_t size, int prot)
{
    int err = os_fault(CA_OS_PROTECT, size);
    if (err)
        return err;
    return mprotect(p, size, prot) == 0 ? 0 : os_errno();
}

int ca_os_fallocate(int fd, int mode, int64_t off, int64_t len)
{
    int err = os_fault(CA_OS_FALLOCATE, len > 0 ? (size_t)len : 0);
    if (err)
        return err;
    if (mode == CA_OS_FALLOCATE_POSIX)
        return posix_fallocate(fd, (off_t)off, (off_t)len); /* returns the errno itself */
    return fallocate(fd, mode, (off_t)off, (off_t)len) == 0 ? 0 : os_errno();
}

int ca_os_sync(void *p, size_t size, int flags)
{
    int err = os_fault(CA_OS_SYNC, size);
    if (err)
        return err;
    return msync(p, size, flags) == 0 ? 0 : os_errno();
}
