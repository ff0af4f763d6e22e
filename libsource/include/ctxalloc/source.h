/* SPDX-License-Identifier: MIT */
/*
 * libsource: memory sources, built on core's OS layer (ca_os_* in core.h:
 * every mmap, munmap, mremap, madvise, mprotect, fallocate and msync of a
 * source goes through it, and so meets its process-wide fault plan).
 * Every source here is a ca_source (core.h) and follows the source contract
 * written there once: sizes > 0 and multiples of the granule, power-of-two
 * alignments, 0 or a positive errno from every operation, nothing left
 * behind on failure, release of exactly the (p, size) obtained or reserved.
 *
 *   ca_source_mmap    anonymous mmap: populate, lock, no-reserve, no-dump,
 *                     a mapping name, NUMA policy, the huge-page ladder
 *                     1 GiB -> 2 MiB -> transparent huge pages -> base,
 *                     reserve / commit / decommit (MADV_DONTNEED or MADV_FREE);
 *   ca_source_file    file-backed shared mappings: a named file or an unlinked
 *                     temporary file; blocks allocated before mapping (ENOSPC
 *                     at obtain time, never SIGBUS later), decommit punches holes;
 *   ca_source_slots   slot arena: fixed-size blocks carved from a parent source,
 *                     intrusive free list, optional per-block initialiser;
 *   ca_source_heap    malloc / posix_memalign;
 *   ca_source_buffer  the caller's fixed buffer; never grows (ENOMEM when full);
 *   ca_source_faulty  wraps any ca_source and injects failures.
 *
 * Fault injection: every options struct has a `fault` pointer. A
 * ca_source_fault makes the n-th counted call (or every call) of chosen
 * operations and system-call steps fail with a chosen errno; the source then
 * fails exactly as if the OS had refused, cleaning up what it did before.
 *
 * Memory for the objects: all sources are initialised in caller storage
 * (no malloc anywhere in libsource except in the heap source's obtain), so a
 * malloc replacement can sit on top of it. Fields of the structs below are
 * private: read them through the Introspection functions.
 *
 * Ranges and checks: the mmap and file sources always keep a record of the
 * ranges they gave out (exact statistics; O(log n) lookups and amortised
 * releases, appends for the usual insertion, in the number of live ranges).
 * A release, commit or decommit of a range a
 * source never gave out (or a double release) aborts with a one-line message
 * with checks=on (the `checks` build option), and fails with EINVAL, touching
 * nothing, with checks=off. The buffer source detects it from its free list
 * the same way; the heap source and the slot arena check only with
 * checks=on (undefined with checks=off).
 */
#ifndef CTXALLOC_SOURCE_H
#define CTXALLOC_SOURCE_H

#include <ctxalloc/core.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ========================================================================
 * Fault injection
 * ======================================================================== */

/* Points where a ca_source_fault may inject a failure. The operation points
 * fail an operation at its entry, before anything is done; the step points
 * fail one system call inside an operation (or inside init), after earlier
 * steps succeeded, so that the cleanup paths run. */
#define CA_SOURCE_FAULT_OBTAIN    0x0001u /* operation: obtain */
#define CA_SOURCE_FAULT_RELEASE   0x0002u /* operation: release (range kept) */
#define CA_SOURCE_FAULT_RESERVE   0x0004u /* operation: reserve */
#define CA_SOURCE_FAULT_COMMIT    0x0008u /* operation: commit */
#define CA_SOURCE_FAULT_DECOMMIT  0x0010u /* operation: decommit */
#define CA_SOURCE_FAULT_INIT      0x0020u /* ca_source_*_init */
#define CA_SOURCE_FAULT_OPS       0x003fu /* all operation points */
#define CA_SOURCE_FAULT_MMAP      0x0100u /* step: mmap / mremap / mprotect */
#define CA_SOURCE_FAULT_MBIND     0x0200u /* step: NUMA policy (mbind) */
#define CA_SOURCE_FAULT_MLOCK     0x0400u /* step: mlock */
#define CA_SOURCE_FAULT_MADVISE   0x0800u /* step: madvise (decommit, populate) */
#define CA_SOURCE_FAULT_OPEN      0x1000u /* step: open of a file or directory */
#define CA_SOURCE_FAULT_FALLOCATE 0x2000u /* step: fallocate / ftruncate (block allocation) */
#define CA_SOURCE_FAULT_PARENT    0x4000u /* step: obtain from the parent source / malloc */
#define CA_SOURCE_FAULT_STEPS     0x7f00u /* all step points */
#define CA_SOURCE_FAULT_ALL       0x7f3fu

/*
 * A fault plan, owned by the caller and shared by any number of sources: the
 * core's ca_fault (core.h, "Fault plans"), counting the CA_SOURCE_FAULT_*
 * points above. The step points ask the source's plan just before the
 * source calls core's OS layer, which then asks the process-wide plan
 * (ca_os_set_fault) with its CA_OS_* kind: a per-source plan picks one
 * source's calls, the process-wide plan every OS call of the process.
 */
typedef ca_fault ca_source_fault;

/**
 * ca_source_fault_init() - set up a fault plan.
 * @f:      plan to fill (caller storage); the counters start at 0
 * @points: CA_SOURCE_FAULT_* bits to count
 * @nth:    first failing counted call (1-based), 0 for none
 * @times:  failing calls from nth on, 0 for all later calls
 * @error:  errno to inject (0 means EIO)
 *
 * Example: fail the 3rd mmap with ENOMEM once:
 *   ca_source_fault_init(&f, CA_SOURCE_FAULT_MMAP, 3, 1, ENOMEM);
 * Fail every commit with EAGAIN:
 *   ca_source_fault_init(&f, CA_SOURCE_FAULT_COMMIT, 1, 0, EAGAIN);
 */
void ca_source_fault_init(ca_source_fault *f, unsigned points, uint64_t nth, uint64_t times, int error);

/**
 * ca_source_fault_hit() - count one call at a point and decide its fate.
 * @f:     plan, or NULL (then always 0)
 * @point: one CA_SOURCE_FAULT_* bit
 * @size:  size of the request (passed to the hook)
 *
 * Used by every source of libsource at each point; other components may call
 * it to give their own sources the same hooks. O(1), lock-free.
 * Return: 0 to proceed, or the errno to fail with.
 */
int ca_source_fault_hit(ca_source_fault *f, unsigned point, size_t size);

/* ========================================================================
 * Shared private parts of the source objects (read through Introspection)
 * ======================================================================== */

/* Counters of one source; updated with __atomic builtins when the source is
 * thread-safe, plainly otherwise. */
typedef struct ca_source_counters {
    uint64_t in_use;    /* bytes obtained and not released */
    uint64_t reserved;  /* bytes of address space held (obtained + reserved) */
    uint64_t committed; /* bytes usable (obtained + committed - decommitted) */
    uint64_t peak;      /* maximum of in_use */
    uint64_t obtains, releases, reserves, commits, decommits, failures;
    uint64_t huge_1g, huge_2m, thp, base; /* mappings by page kind obtained */
    uint64_t lock_failures;               /* mlock failures (CA_SOURCE_MMAP_LOCK_TRY) */
    uint64_t last_page_size;              /* page size of the latest mapping */
} ca_source_counters;

/* Record of the ranges handed out (sorted array in its own mapping, guarded
 * by a spin lock); see "Ranges and checks" above. */
typedef struct ca_source_track {
    void *ranges; /* sorted by decreasing address; private */
    size_t len, cap;
    size_t dead; /* released entries not yet compacted away */
    int lock;    /* core lock word (0 free), rank CA_LOCK_RANK_SOURCE_TRACK */
} ca_source_track;

/* ========================================================================
 * NUMA policy
 * ======================================================================== */

/* Policy modes (numbers of the kernel's MPOL_* are not assumed). */
#define CA_SOURCE_NUMA_DEFAULT    0 /* the thread's policy; no mbind */
#define CA_SOURCE_NUMA_PREFERRED  1 /* prefer the one node in the mask */
#define CA_SOURCE_NUMA_BIND       2 /* only the nodes in the mask */
#define CA_SOURCE_NUMA_INTERLEAVE 3 /* round-robin over the nodes in the mask */
#define CA_SOURCE_NUMA_LOCAL      4 /* the node of the CPU that faults the page */

/* Widest node mask kept by a source (the x86-64 kernel's MAX_NUMNODES limit).
 * Masks given to the API may be wider, but bits from here on must be 0. */
#define CA_SOURCE_NUMA_MAX_NODES  1024
#define CA_SOURCE_NUMA_MASK_WORDS (CA_SOURCE_NUMA_MAX_NODES / (8 * sizeof(unsigned long)))

/*
 * A policy: a mode and a node mask of any width. `nodes` is a bitmap in
 * unsigned longs (bit n of word n / BITS_PER_LONG is node n); `maxnode` is its
 * width in BITS (not bytes). DEFAULT and LOCAL take no mask (nodes may be
 * NULL); PREFERRED takes exactly one node; BIND and INTERLEAVE at least one.
 * Built without NUMA (build option numa disabled) or on a kernel without it,
 * any mode other than DEFAULT fails with ENOTSUP.
 */
typedef struct ca_source_numa {
    unsigned mode;              /* CA_SOURCE_NUMA_* */
    const unsigned long *nodes; /* mask, not owned (copied by init) */
    size_t maxnode;             /* width of the mask in bits */
} ca_source_numa;

/**
 * ca_source_numa_available() - NUMA support of this build and machine.
 *
 * Return: the highest node number of /sys/devices/system/node + 1 (as
 * libnuma's numa_max_node counts) when NUMA is built in and the kernel
 * supports NUMA policies, else 0. The policies are the kernel's system
 * calls, made directly: libnuma is neither linked nor loaded.
 */
int ca_source_numa_available(void);

/**
 * ca_source_numa_validate() - check a policy against this machine.
 * @policy: policy; NULL is the default policy (valid)
 *
 * Return: 0; EINVAL (unknown mode, empty mask for BIND/INTERLEAVE, more than
 * one node for PREFERRED, a node that does not exist or is not allowed);
 * ENOTSUP (non-default mode without NUMA support).
 */
int ca_source_numa_validate(const ca_source_numa *policy);

/**
 * ca_source_numa_apply() - apply a policy to a range (mbind).
 * @p, @size: page-aligned range of mapped memory
 * @policy:   policy (validated as by ca_source_numa_validate); NULL: nothing
 *
 * Pages faulted later follow the policy; pages already present are moved
 * when the kernel can (MPOL_MF_MOVE). One system call.
 * Return: 0, EINVAL, ENOTSUP, or the errno of mbind.
 */
int ca_source_numa_apply(void *p, size_t size, const ca_source_numa *policy);

/**
 * ca_source_numa_node_of() - the node a page landed on (move_pages query).
 * @p:    an address in a page that has been touched
 * @node: receives the node number
 *
 * Return: 0; ENOENT when the page is not present; ENOTSUP without NUMA support;
 * EFAULT for an unmapped address; or the errno of move_pages.
 */
int ca_source_numa_node_of(const void *p, int *node);

/* ========================================================================
 * Anonymous mmap source
 * ======================================================================== */

/* Flags of ca_source_mmap_options.flags. */
#define CA_SOURCE_MMAP_POPULATE  0x01u /* prefault at obtain and commit */
#define CA_SOURCE_MMAP_LOCK      0x02u /* mlock; failing to lock fails the call */
#define CA_SOURCE_MMAP_LOCK_TRY  0x04u /* mlock; a failure is counted (lock_failures), not fatal */
#define CA_SOURCE_MMAP_NORESERVE 0x08u /* MAP_NORESERVE: no swap accounting */
#define CA_SOURCE_MMAP_NODUMP    0x10u /* MADV_DONTDUMP: left out of core dumps */

/* Huge-page ladder: the highest rung tried (each falls to the next). */
#define CA_SOURCE_HUGE_OFF 0 /* base pages, no hint */
#define CA_SOURCE_HUGE_THP 1 /* 2 MiB-aligned base mapping + MADV_HUGEPAGE when size >= 2 MiB */
#define CA_SOURCE_HUGE_2M  2 /* MAP_HUGETLB 2 MiB when size is a multiple, then THP, then base */
#define CA_SOURCE_HUGE_1G  3 /* MAP_HUGETLB 1 GiB when size is a multiple, then 2M ... */
/* A hugetlb rung the kernel refused (no reserved pages) is skipped for the
 * next CA_SOURCE_HUGE_RETRY mappings of the source, so a machine without
 * hugetlb pages does not pay a failing mmap on every call; every refusal
 * is counted ("huge_refused"). hugetlb rungs never use MAP_NORESERVE (a
 * mapping without reserved pages would fault with SIGBUS later). */
#define CA_SOURCE_HUGE_RETRY 64

/* What a mapping actually got. */
#define CA_SOURCE_PAGE_BASE 0 /* base pages */
#define CA_SOURCE_PAGE_THP  1 /* base mapping, 2 MiB aligned, MADV_HUGEPAGE accepted */
#define CA_SOURCE_PAGE_2M   2 /* hugetlb 2 MiB pages */
#define CA_SOURCE_PAGE_1G   3 /* hugetlb 1 GiB pages */

/* Decommit modes. */
#define CA_SOURCE_DECOMMIT_DONTNEED 0 /* MADV_DONTNEED: memory returns at once, reads zero */
/* MADV_FREE (falls back to DONTNEED where refused): reclaimed lazily,
 * contents undefined. */
#define CA_SOURCE_DECOMMIT_FREE 1

/* Longest mapping name, including the NUL (the kernel's limit). */
#define CA_SOURCE_NAME_MAX 80

/* Options; all-zero (or a NULL pointer) means base pages, no flags, DONTNEED,
 * default NUMA policy, no name, no faults. */
typedef struct ca_source_mmap_options {
    unsigned flags;         /* CA_SOURCE_MMAP_* */
    unsigned huge;          /* CA_SOURCE_HUGE_* */
    unsigned decommit;      /* CA_SOURCE_DECOMMIT_* */
    const char *name;       /* mapping name (PR_SET_VMA_ANON_NAME) or NULL; copied */
    ca_source_numa numa;    /* policy applied to every mapping; mask copied */
    ca_source_fault *fault; /* optional fault plan, not owned */
} ca_source_mmap_options;

/* The defaults: all-zero (the same as passing NULL options). */
ca_inline void ca_source_mmap_options_init(ca_source_mmap_options *o) { memset(o, 0, sizeof *o); }

/*
 * The anonymous mmap source. granule = the page size. Thread-safe
 * (CA_SOURCE_THREAD_SAFE), memory zero-filled (CA_SOURCE_ZEROED).
 * Invariant: c.in_use <= c.reserved; c.committed <= c.reserved.
 * Fields are set by init and read-only afterwards, except c and track
 * (atomic / under track.lock) and last_kind (atomic).
 */
typedef struct ca_source_mmap {
    ca_source base;
    unsigned flags, huge, decommit;
    unsigned numa_mode;
    size_t numa_maxnode; /* bits used in numa_nodes */
    unsigned long numa_nodes[CA_SOURCE_NUMA_MASK_WORDS];
    char name[CA_SOURCE_NAME_MAX]; /* empty: no name */
    ca_source_fault *fault;
    unsigned last_kind; /* CA_SOURCE_PAGE_* of the latest mapping (atomic) */
    ca_source_counters c;
    ca_source_track track;
    unsigned huge_skip[2]; /* 1 GiB, 2 MiB: mappings left before a refused hugetlb
                              rung is tried again (atomic) */
    uint64_t huge_refused; /* hugetlb rungs refused by the kernel (atomic) */
} ca_source_mmap;

/* --- Create/destroy --------------------------------------------------- */

/**
 * ca_source_mmap_init() - initialise an anonymous mmap source.
 * @s: storage for the source (any alignment of the struct; no allocation)
 * @o: options, or NULL for the defaults
 *
 * The name must be at most CA_SOURCE_NAME_MAX - 1 printable characters
 * without [ ] \ ` $; it is applied where the kernel supports naming (5.17+)
 * and ignored quietly elsewhere. The NUMA policy is validated here.
 * Return: 0; EINVAL (unknown flag/huge/decommit value, LOCK with LOCK_TRY,
 * bad name, bad NUMA policy or node); ENOTSUP (NUMA policy without NUMA support).
 */
int ca_source_mmap_init(ca_source_mmap *s, const ca_source_mmap_options *o);

/**
 * ca_source_mmap_destroy() - finish a source.
 * @s: source; NULL is a no-op
 *
 * Ranges still obtained stay mapped (the source does not own them once
 * handed out); release them first. Frees the record of ranges.
 */
void ca_source_mmap_destroy(ca_source_mmap *s);

/**
 * ca_source_mmap_global() - a process-wide mmap source with default options.
 *
 * Initialised on first use (thread-safe), never destroyed.
 * Return: its ca_source (never NULL).
 */
ca_source *ca_source_mmap_global(void);

/* --- Allocation ------------------------------------------------------- */
/* obtain / release / reserve / commit / decommit go through the core
 * wrappers: ca_source_obtain(&s->base, ...), etc. Behaviour:
 *   obtain:   mmap (huge-page ladder), alignment above the page (or huge
 *             page) size by over-mapping and trimming, then name, no-dump,
 *             NUMA policy, populate (MADV_POPULATE_WRITE), lock. Any failing
 *             step unmaps what was mapped and returns its errno.
 *   reserve:  the same mapping with PROT_NONE (no populate, no lock).
 *   commit:   mprotect read/write, then populate and lock as configured.
 *   decommit: munlock if locked, then MADV_DONTNEED or MADV_FREE; the
 *             range stays mapped. On hugetlb mappings ranges must be
 *             multiples of the huge page (else EINVAL from the kernel).
 *   release:  munmap.
 * Each costs one to five system calls, O(1) besides the kernel's work. */

/**
 * ca_source_mmap_obtain_ex() - obtain and learn which pages backed it.
 * @s, @size, @align, @out: as ca_source_obtain
 * @kind: receives CA_SOURCE_PAGE_* of the mapping (may be NULL)
 *
 * Return: as ca_source_obtain (0 or errno; *out untouched on failure).
 */
int ca_source_mmap_obtain_ex(ca_source_mmap *s, size_t size, size_t align, void **out, unsigned *kind);

/**
 * ca_source_mmap_probe() - whether a range of address space is free now.
 * @addr: page-aligned start; @size: bytes, a multiple of the page
 *
 * Maps the range PROT_NONE where it is and unmaps it at once; nothing is
 * left and nothing is counted. Another thread may map into the range
 * afterwards: callers that need it map it with ca_source_mmap_obtain_at,
 * which never replaces a mapping.
 * Return: 0 (free); EEXIST (some page is mapped); ENOMEM (a limit refused
 * the probe: unknown); EINVAL (unaligned or empty).
 */
int ca_source_mmap_probe(void *addr, size_t size);

/**
 * ca_source_mmap_obtain_at() - obtain a range at a chosen address.
 * @s:    source
 * @addr: page-aligned start
 * @size: bytes, a multiple of the page
 *
 * Maps [addr, addr + size) read/write with base pages (the huge option is
 * not applied), never over an existing mapping, then sets it up as obtain
 * does (name, no-dump, NUMA policy, populate, lock). The range is released
 * like any other (ca_source_release with its current size). For callers
 * that lay out address space themselves and map it as it is used.
 * Return: 0; EINVAL (unaligned or empty); EEXIST (some page of the range is
 * mapped already); ENOMEM (address-space or memory limit: RLIMIT_AS,
 * RLIMIT_DATA, strict overcommit); or the errno of a setup step.
 */
int ca_source_mmap_obtain_at(ca_source_mmap *s, void *addr, size_t size);

/**
 * ca_source_mmap_extend() - grow an obtained range in place.
 * @s:        source
 * @p, @size: a range obtained from @s, exactly as it is now
 * @new_size: its new size, larger, a multiple of the page
 *
 * Maps [p + size, p + new_size) as ca_source_mmap_obtain_at does; afterwards
 * the range is (p, new_size) for commit, decommit and release. Nothing
 * changes on failure.
 * Return: 0; EINVAL (not a range of @s, or new_size not larger); EEXIST (the
 * pages after the range are mapped); ENOMEM (address-space or memory limit).
 */
int ca_source_mmap_extend(ca_source_mmap *s, void *p, size_t size, size_t new_size);

/**
 * ca_source_mmap_shrink() - give back the tail of an obtained range.
 * @s:        source
 * @p, @size: a range obtained from @s, exactly as it is now
 * @new_size: its new size, smaller, a multiple of the page; 0 releases it
 *
 * Unmaps [p + new_size, p + size): its memory and address space go back to
 * the system. Afterwards the range is (p, new_size).
 * Return: 0; EINVAL (not a range of @s, or new_size not smaller).
 */
int ca_source_mmap_shrink(ca_source_mmap *s, void *p, size_t size, size_t new_size);

/* --- Introspection ---------------------------------------------------- */

/* CA_SOURCE_PAGE_* of the latest obtain or reserve of s (BASE before any). */
unsigned ca_source_mmap_last_kind(const ca_source_mmap *s);

/* Bytes per page of a CA_SOURCE_PAGE_* kind (BASE and THP: the base page). */
size_t ca_source_page_kind_size(unsigned kind);

/* Short static name of a CA_SOURCE_PAGE_* kind ("base", "thp", "2m", "1g"). */
const char *ca_source_page_kind_name(unsigned kind);

/* ========================================================================
 * File-backed source
 * ======================================================================== */

#define CA_SOURCE_FILE_TRUNCATE 0x01u /* named file: start empty (O_TRUNC) */
#define CA_SOURCE_FILE_POPULATE 0x02u /* prefault mappings (MAP_POPULATE) */

/* Default capacity: address space reserved at init for the file's mappings. */
#define CA_SOURCE_FILE_CAPACITY_DEFAULT ((size_t)64 << 30)
/* Free extents remembered for reuse (a range released beyond that is still
 * punched out of the file, but its offsets are not reused). */
#define CA_SOURCE_FILE_EXTENTS 64

typedef struct ca_source_file_options {
    const char *path;       /* named file: opened or created (0600); NULL: temporary */
    const char *dir;        /* directory of the temporary file; NULL: $TMPDIR or /tmp */
    unsigned flags;         /* CA_SOURCE_FILE_* */
    size_t capacity;        /* bytes of file offsets usable; 0: the default */
    ca_source_fault *fault; /* optional fault plan, not owned */
} ca_source_file_options;

/* The defaults: all-zero (the same as passing NULL options). */
ca_inline void ca_source_file_options_init(ca_source_file_options *o) { memset(o, 0, sizeof *o); }

typedef struct ca_source_file_extent {
    size_t off, size;
} ca_source_file_extent;

/*
 * The file-backed source. One address-space reservation [map, map +
 * capacity) mirrors the file: the range at address map + x is file offset x,
 * mapped MAP_SHARED while obtained or committed, PROT_NONE otherwise.
 * granule = the page size; thread-safe (one mutex); CA_SOURCE_ZEROED for a
 * temporary or truncated file.
 * Invariants: top <= capacity; free extents sorted, disjoint, below top,
 * none touching top; recorded bytes + free extent bytes + lost == top.
 */
typedef struct ca_source_file {
    ca_source base;
    int fd;
    unsigned flags;
    char *map;       /* base of the reservation */
    size_t capacity; /* bytes reserved at map */
    size_t top;      /* offsets below are in use or in the free extents */
    size_t lost;     /* bytes released while the extent table was full */
    unsigned nfree;
    ca_source_file_extent free[CA_SOURCE_FILE_EXTENTS];
    pthread_mutex_t mutex; /* guards top, lost, nfree, free */
    /* &mutex (set by init): the statistics, which get a const source, lock
     * through it (core.h, Statistics: a lock is not part of the value const
     * protects). */
    pthread_mutex_t *mutex_lk;
    ca_source_fault *fault;
    ca_source_counters c;
    ca_source_track track;
} ca_source_file;

/* --- Create/destroy --------------------------------------------------- */

/**
 * ca_source_file_init() - open the file and reserve the address space.
 * @s: storage for the source
 * @o: options (NULL: a temporary file in $TMPDIR or /tmp)
 *
 * Named file: opened O_RDWR (created 0600 when missing; O_TRUNC with
 * CA_SOURCE_FILE_TRUNCATE); existing contents are seen by ranges obtained at
 * their offsets (the first obtain of a fresh source gets offset 0). The file
 * stays after destroy. Temporary: O_TMPFILE in dir, falling back to
 * mkostemp + unlink where the filesystem refuses O_TMPFILE.
 * On failure nothing is left open or mapped and the calling thread's
 * ca_last_error() (core.h) says what failed: "source-file: <step>
 * ['<path or directory>']: <errno text>".
 * Return: 0; EINVAL (bad flags, capacity not representable); ENOENT (missing
 * directory); EACCES (read-only file or directory); ENOTDIR; ENOMEM (no
 * address space); or the errno of open / mmap.
 */
int ca_source_file_init(ca_source_file *s, const ca_source_file_options *o);

/**
 * ca_source_file_destroy() - unmap everything, close the file.
 * @s: source; NULL is a no-op
 *
 * Ranges not released keep their data in a named file.
 */
void ca_source_file_destroy(ca_source_file *s);

/* --- Allocation ------------------------------------------------------- */
/* Through the core wrappers. Behaviour:
 *   obtain:   take offsets, allocate the file blocks (fallocate; where the
 *             filesystem lacks it, ftruncate + zero writes), check the file
 *             size, then map shared read/write. A full disk: ENOSPC here.
 *   reserve:  take offsets only (the address range stays PROT_NONE).
 *   commit:   allocate blocks as in obtain, map shared read/write.
 *   decommit: punch holes (FALLOC_FL_PUNCH_HOLE): the disk blocks return
 *             and the range reads as zero; commit before writing again.
 *   release:  punch holes, put the PROT_NONE reservation back, and return
 *             the offsets for reuse.
 * A failed system call (and capacity exhausted) also sets the calling
 * thread's ca_last_error(), naming the step: "source-file: fallocate: No
 * space left on device". */

/**
 * ca_source_file_sync() - write a range back to the file (msync MS_SYNC).
 * @s: source; @p, @size: page-aligned range inside an obtained range
 *
 * Return: 0, EINVAL (outside the source), or the errno of msync.
 */
int ca_source_file_sync(ca_source_file *s, void *p, size_t size);

/* --- Introspection ---------------------------------------------------- */

/* The file descriptor (owned by the source; do not close). */
int ca_source_file_fd(const ca_source_file *s);

/* File offset of address p, or (uint64_t)-1 when p is outside the source. */
uint64_t ca_source_file_offset(const ca_source_file *s, const void *p);

/* ========================================================================
 * Slot arena
 * ======================================================================== */

/* Called on every block before obtain hands it out (also on reuse). */
typedef void (*ca_source_slot_init_fn)(void *ctx, void *block, size_t size);

/* Default bytes taken from the parent per chunk (at least 16 slots). */
#define CA_SOURCE_SLOTS_CHUNK_DEFAULT ((size_t)64 << 10)

typedef struct ca_source_slots_options {
    size_t slot_size;            /* power of two, >= 16 (required) */
    size_t chunk_size;           /* bytes per parent obtain; 0: the default */
    ca_source_slot_init_fn init; /* optional per-block initialiser */
    void *init_ctx;              /* passed to init */
    ca_source_fault *fault;      /* optional fault plan, not owned */
} ca_source_slots_options;

/* The defaults: all-zero (the same as passing NULL options). */
ca_inline void ca_source_slots_options_init(ca_source_slots_options *o) { memset(o, 0, sizeof *o); }

/*
 * The slot arena. granule = slot_size; every slot is aligned to slot_size.
 * Chunks come from the parent aligned to max(slot_size, parent granule);
 * each chunk starts with a small header (next chunk, size) and the slots
 * after it. A free slot holds the next free slot in its first word (and a
 * tag in its second under checks=on). Not thread-safe (one owner, or an
 * external lock); obtain and release are O(1) (a list pop / push).
 * Invariants: free-list length + in-use slots + uncarved slots ==
 * slots of all chunks; c.obtains - c.releases == in-use slots.
 */
typedef struct ca_source_slots {
    ca_source base;
    ca_source *parent; /* not owned */
    size_t slot_size;
    size_t chunk_size;
    void *free;     /* head of the free list */
    char *bump;     /* next uncarved slot of the newest chunk */
    char *bump_end; /* end of the newest chunk */
    void *chunks;   /* newest chunk header; list through the headers */
    size_t nchunks;
    size_t nfree; /* free-list length */
    ca_source_slot_init_fn init;
    void *init_ctx;
    ca_source_fault *fault;
    ca_source_counters c; /* plain (single owner); in_use and peak derived by stats */
} ca_source_slots;

/**
 * ca_source_slots_init() - set up a slot arena over a parent source.
 * @s:      storage
 * @parent: source of chunks (not owned; must outlive s)
 * @o:      options (required: slot_size)
 *
 * chunk_size is rounded up to the parent's granule and must hold the
 * header and at least one slot. Nothing is obtained until the first obtain.
 * Return: 0 or EINVAL (NULL parent/options, slot size not a power of two or
 * < 16, chunk size overflow).
 */
int ca_source_slots_init(ca_source_slots *s, ca_source *parent, const ca_source_slots_options *o);

/**
 * ca_source_slots_destroy() - release every chunk to the parent.
 * @s: arena; NULL is a no-op. Blocks still out become invalid.
 */
void ca_source_slots_destroy(ca_source_slots *s);

/* --- Allocation ------------------------------------------------------- */
/* Through the core wrappers, or the direct calls below (no indirect call).
 * obtain: size must be exactly slot_size and align <= slot_size (EINVAL
 * otherwise); ENOMEM or the parent's errno when a new chunk cannot be had.
 * release: with checks=on a block that is not a slot of this arena or is
 * already free aborts. commit/reserve/decommit are not supported. */

/**
 * ca_source_slots_get() - take one slot.
 * @s: arena
 *
 * O(1): a free-list pop, else carve from the newest chunk, else one parent
 * obtain. Runs the initialiser when set.
 * Return: the block, or NULL with errno (ENOMEM or the parent's errno).
 */
void *ca_source_slots_get(ca_source_slots *s);

/**
 * ca_source_slots_put() - give a slot back (a free-list push, O(1)).
 * @s: arena; @p: a block from this arena, or NULL (no-op)
 */
void ca_source_slots_put(ca_source_slots *s, void *p);

/* --- Introspection ---------------------------------------------------- */

/* Slots currently free (on the list or not yet carved). */
size_t ca_source_slots_free_count(const ca_source_slots *s);

/* ========================================================================
 * Heap source
 * ======================================================================== */

#define CA_SOURCE_HEAP_ZERO 0x01u /* zero-fill on obtain (CA_SOURCE_ZEROED) */

typedef struct ca_source_heap_options {
    size_t granule;         /* power of two >= 16; 0: the page size */
    unsigned flags;         /* CA_SOURCE_HEAP_* */
    ca_source_fault *fault; /* optional fault plan, not owned */
} ca_source_heap_options;

/* The defaults: all-zero (the same as passing NULL options). */
ca_inline void ca_source_heap_options_init(ca_source_heap_options *o) { memset(o, 0, sizeof *o); }

/* malloc-backed source: obtain = posix_memalign(max(align, granule), size).
 * Thread-safe. Memory is always committed (commit: 0; decommit: ENOTSUP;
 * reserve: ENOTSUP). */
typedef struct ca_source_heap {
    ca_source base;
    unsigned flags;
    ca_source_fault *fault;
    ca_source_counters c;
    ca_source_track track;
} ca_source_heap;

/**
 * ca_source_heap_init() - set up a heap source.
 * @s: storage; @o: options or NULL
 * Return: 0 or EINVAL (granule not a power of two or < 16, unknown flag).
 */
int ca_source_heap_init(ca_source_heap *s, const ca_source_heap_options *o);

/* Finish; ranges not released stay allocated. NULL is a no-op. */
void ca_source_heap_destroy(ca_source_heap *s);

/* ========================================================================
 * Fixed buffer source
 * ======================================================================== */

/* The caller's memory; never grows, exhaustion gives ENOMEM. Free ranges
 * form an address-ordered list kept inside the free memory itself; release
 * coalesces with both neighbours. obtain is first fit, O(free ranges).
 * Thread-safe (spin lock). Memory is always committed; not zeroed.
 * With checks=on a release that overlaps free memory or lies outside the
 * buffer aborts. */
typedef struct ca_source_buffer_options {
    size_t granule;         /* power of two >= 16; 0: the page size */
    ca_source_fault *fault; /* optional fault plan, not owned */
} ca_source_buffer_options;

/* The defaults: all-zero (the same as passing NULL options). */
ca_inline void ca_source_buffer_options_init(ca_source_buffer_options *o) { memset(o, 0, sizeof *o); }

typedef struct ca_source_buffer {
    ca_source base;
    char *start; /* first granule-aligned byte of the caller's buffer */
    size_t size; /* usable bytes from start, a multiple of the granule */
    void *free;  /* first free range (address order) */
    int lock;    /* core lock word (0 free), rank CA_LOCK_RANK_SOURCE_BUFFER */
    ca_source_fault *fault;
    ca_source_counters c;
} ca_source_buffer;

/**
 * ca_source_buffer_init() - use [mem, mem + size) as a source.
 * @s: storage; @mem: the caller's buffer (not owned; must outlive s)
 * @size: its bytes; @o: options or NULL
 *
 * The usable part starts at mem rounded up to the granule and ends at a
 * granule multiple; less than one granule is an error.
 * Return: 0 or EINVAL (NULL mem, bad granule, no whole granule inside).
 */
int ca_source_buffer_init(ca_source_buffer *s, void *mem, size_t size, const ca_source_buffer_options *o);

/* Finish; the buffer is the caller's again. NULL is a no-op. */
void ca_source_buffer_destroy(ca_source_buffer *s);

/* ========================================================================
 * Fault-injecting wrapper for any source
 * ======================================================================== */

/* Forwards every operation to `inner` after asking the fault plan at the
 * operation points (OBTAIN, RELEASE, RESERVE, COMMIT, DECOMMIT). Same
 * granule and capabilities as inner; optional operations mirror inner's. */
typedef struct ca_source_faulty {
    ca_source base;    /* base.ops points to ops below */
    ca_source_ops ops; /* inner's table with entries replaced */
    ca_source *inner;  /* not owned */
    ca_source_fault *fault;
} ca_source_faulty;

/**
 * ca_source_faulty_init() - wrap a source.
 * @w: storage; @inner: source to wrap; @f: plan (not owned)
 * Return: 0 or EINVAL (NULL inner or f).
 */
int ca_source_faulty_init(ca_source_faulty *w, ca_source *inner, ca_source_fault *f);

/* ========================================================================
 * Introspection (every source of libsource)
 * ======================================================================== */

/*
 * Statistics go through core's ca_source_stats(&s->base, &st). Fields:
 * bytes_in_use (obtained), bytes_reserved (obtained + reserved address
 * space), bytes_committed, peak_in_use, allocs (obtains), frees (releases),
 * failures; counters "reserves", "commits", "decommits", "huge_1g",
 * "huge_2m", "thp", "base" (mappings by page kind), "page_size" (of the
 * latest mapping), "lock_failures", "faults_injected" (by the source's plan).
 * The lists below name them (X-macro lists: X(name) per counter; core.h,
 * Statistics): every source's, then those some kinds add after them. The
 * fault-injecting wrapper sets faults_injected over its inner source's.
 */
/* clang-format off */
#define CA_SOURCE_COUNTERS(X) \
    X(reserves) X(commits) X(decommits) X(huge_1g) X(huge_2m) X(thp) X(base) X(page_size) \
    X(lock_failures) X(faults_injected)
#define CA_SOURCE_MMAP_COUNTERS(X) \
    CA_SOURCE_COUNTERS(X) X(huge_refused)
#define CA_SOURCE_FILE_COUNTERS(X) \
    CA_SOURCE_COUNTERS(X) X(lost_bytes) X(file_top)
#define CA_SOURCE_SLOTS_COUNTERS(X) \
    CA_SOURCE_COUNTERS(X) X(chunks) X(slot_size)
#define CA_SOURCE_FAULTY_COUNTERS(X) X(faults_injected)
/* clang-format on */

/*
 * Invariant walks: every source of this library has the ops table's check
 * entry, so core's ca_source_check(s) walks it: counters consistent, free
 * lists / extents sorted, disjoint and inside the source, the checks=on
 * record consistent; O(size of the lists); no other thread inside the
 * source meanwhile. NULL when consistent, else a static message naming the
 * violation. A fault wrapper checks its inner source.
 */

#ifdef __cplusplus
}
#endif

#endif /* CTXALLOC_SOURCE_H */
