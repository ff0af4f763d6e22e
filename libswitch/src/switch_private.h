/* SPDX-License-Identifier: MIT */
/*
 * Internals of libswitch shared by its source files and by its tests
 * (tests/switch/test_invariants.c). Not installed.
 *
 * Pieces:
 *   select.c   selection state (TLS + global), lazy initialisation, the
 *              bootstrap area, registry of locals, fork and exit handlers,
 *              statistics and ca_switch_check;
 *   base.c     the base allocators: glibc (through __libc_*), jemalloc
 *              (mallocx & co.), libbinned;
 *   family.c   the malloc family (ca_switch_malloc ...), owner routing;
 *   local.c    ca_switch_local, the remote-free queue;
 *   source.c   ca_switch_source, the owner-registering source;
 *   node.c     NUMA: per-node instances, ca_switch_bind_node, the
 *              automatic mode (CA_NUMA);
 *   override.c the malloc symbols (only in the override library / preload).
 */
#ifndef CA_SWITCH_PRIVATE_H
#define CA_SWITCH_PRIVATE_H

#include <ctxalloc/switch.h>

/* Thread-locals use the initial-exec model: in the preload object they live
 * in the static TLS block, so reading them never calls __tls_get_addr (which
 * may allocate) and works from the first malloc of the process. */
#define CA_SWITCH_TLS __thread __attribute__((tls_model("initial-exec")))

/* Selection of the calling thread. Written and read by that thread only.
 * One object, so that malloc's fast path tests both with one address. */
typedef struct ca_switch__sel {
    ca_allocator *context;
    ca_allocator *thread;
} ca_switch__sel;
extern CA_SWITCH_TLS ca_switch__sel ca_switch__tl;
/* Set while a selected allocator other than the base runs an allocation on
 * this thread: a malloc it makes itself (an allocator built on the libc
 * adaptor, say) is served by the base instead of recursing. */
extern CA_SWITCH_TLS bool ca_switch__tl_busy;
/* Address of this thread-local is the thread's id (unique among live
 * threads, valid from the first instruction of the thread). */
extern CA_SWITCH_TLS char ca_switch__tl_anchor;

ca_force_inline uintptr_t ca_switch__self(void) { return (uintptr_t)&ca_switch__tl_anchor; }

/* Bootstrap area: serves allocations made while the base allocator is being
 * created (by the thread creating it). Bump only; free is a no-op. */
#define CA_SWITCH__BOOT_SIZE ((size_t)256 << 10)

/*
 * Process-wide state.
 *   init:    0 never started, 1 being initialised, 2 ready; __atomic.
 *            global != NULL implies init == 2 was reached (the store of
 *            global happens before init = 2 is published... see select.c).
 *   global:  the global allocator; NULL until initialised; __atomic, any thread.
 *   base:    the base allocator; written once during initialisation, before
 *            global is published (readers that saw global see base).
 *   base_registers: the base allocator registers all its memory in the
 *            ownership map, so an unowned pointer is certainly foreign.
 *   global_binned: global == base and the base is libbinned's default
 *            instance (malloc's fast path); __atomic, written after global
 *            (a malloc racing with ca_switch_global_set may still see the
 *            old value: either selection is a valid answer for it).
 *   numa_auto: the automatic NUMA mode is on (node.c): malloc without a
 *            selection takes the thread's node's instance; written once
 *            during initialisation, before global is published.
 *   lock:    core lock word over `locals` (rank CA_LOCK_RANK_SWITCH_REGISTRY); taken across fork.
 *   locals:  live ca_switch_local objects, linked through ->next; lock.
 *   adopted: active adoptions, linked through ->next; lock.
 *   boot_used: bytes of the bootstrap area handed out; __atomic, CAS.
 *   counters: relaxed atomics, any thread.
 */
typedef struct ca_switch__state {
    int init;
    ca_allocator *global;
    ca_allocator *base;
    bool base_registers;
    bool global_binned;
    bool numa_auto;
    int lock;
    ca_switch_local *locals;
    ca_switch_adopted *adopted;
    size_t boot_used;
    ca_switch_counters counters;
} ca_switch__state;

extern ca_switch__state ca_switch__g;
extern ca_allocator ca_switch__boot_allocator;
extern unsigned char ca_switch__boot_area[CA_SWITCH__BOOT_SIZE];
extern const ca_allocator_ops ca_switch__local_ops;

/* Initialise (or wait for another thread to finish); returns the allocator
 * the caller must use now: the global one, or the bootstrap allocator when
 * called re-entrantly from inside the initialisation. */
ca_attr_cold ca_allocator *ca_switch__init_slow(void);

/* The base allocator of this build, created once by ca_switch__init_slow.
 * *registers is set to whether it registers its ranges as owner. Returns
 * NULL when it cannot be created (then glibc's is used). */
ca_allocator *ca_switch__base_create(bool *registers);
/* Whether the base allocator is libbinned's default instance (family.c). */
bool ca_switch__base_is_binned(void);
/* glibc's allocator as a ca_allocator (used as fallback base). */
ca_allocator *ca_switch__libc_base(void);

/* Automatic NUMA mode (node.c). numa_setup: decide it (CA_NUMA, the nodes
 * allowed) during initialisation, once the base exists; true: on.
 * node_current: the allocator of the calling thread's node (the base when
 * the node's instance cannot be had), its node asked again every few
 * calls. node_unwrap: the libbinned instance behind such an allocator (a
 * itself for any other). */
bool ca_switch__numa_setup(void);
ca_allocator *ca_switch__node_current(void);
ca_allocator *ca_switch__node_unwrap(ca_allocator *a);

/* The selection: context, else thread, else global; the global base is the
 * thread's node's instance in the automatic NUMA mode. Not on malloc's fast
 * path (family.c), which the mode leaves through global_binned. */
ca_force_inline ca_allocator *ca_switch__current(void)
{
    ca_allocator *a = ca_switch__tl.context;
    if (a)
        return a;
    a = ca_switch__tl.thread;
    if (a)
        return a;
    a = __atomic_load_n(&ca_switch__g.global, __ATOMIC_ACQUIRE);
    if (ca_unlikely(!a))
        a = ca_switch__init_slow();
    if (ca_unlikely(ca_switch__g.numa_auto) && a == ca_switch__g.base)
        a = ca_switch__node_current();
    return a;
}

ca_force_inline bool ca_switch__in_boot(const void *p)
{
    return (uintptr_t)p - (uintptr_t)ca_switch__boot_area < CA_SWITCH__BOOT_SIZE;
}

/* The allocator a pointer belongs to when the ownership map has no owner:
 * the bootstrap allocator for bootstrap blocks, else the base allocator, or
 * NULL when the base registers all its memory (the pointer is foreign). */
ca_allocator *ca_switch__unowned(const void *p);

ca_force_inline void ca_switch__count(uint64_t *c, uint64_t n) { __atomic_fetch_add(c, n, __ATOMIC_RELAXED); }

/* The registry lock itself (tests hold it across a fork). */
void ca_switch__registry_lock(void);
void ca_switch__registry_unlock(void);

/* Registry of locals (select.c). */
void ca_switch__register_local(ca_switch_local *l);
void ca_switch__unregister_local(ca_switch_local *l);

/* Check one local's invariants (local.c); called by ca_switch_check. */
const char *ca_switch__local_check(const ca_switch_local *l);

/* Set up a local owned by the calling thread without entering it in the
 * registry of locals (an adoption reports it through its own entry). */
void ca_switch__local_setup(ca_switch_local *l, ca_allocator *inner);

/* Adoptions (adopt.c). flags: what the adoption put in front of the inner. */
#define CA_SWITCH__ADOPT_HEADER 0x1u /* ca_header_allocator (inner without unsized free) */
#define CA_SWITCH__ADOPT_LOCAL  0x2u /* ca_switch_local (inner not thread-safe) */
#define CA_SWITCH__ADOPT_SELF   0x4u /* inner registers itself (CA_CAP_OWNER_MAP) */
extern const ca_allocator_ops ca_switch__adopt_ops[4];

ca_force_inline bool ca_switch__is_adopted(const ca_allocator *a)
{
    return a && (uintptr_t)a->ops - (uintptr_t)ca_switch__adopt_ops < sizeof ca_switch__adopt_ops;
}
/* a is an adoption: whether it is active (neither undone nor destroyed). */
bool ca_switch__adopt_active(const ca_allocator *a);
/* a is an adoption: whether its blocks belong to another thread's local. */
bool ca_switch__adopt_foreign_local(const ca_allocator *a);
const char *ca_switch__adopt_check(const ca_switch_adopted *ad);

/* Registry of adoptions (select.c), under the registry lock. */
void ca_switch__register_adopted(ca_switch_adopted *ad);
void ca_switch__unregister_adopted(ca_switch_adopted *ad);
/* Whether ad is in the registry, i.e. adopted and neither undone nor destroyed.
 * Walks the list instead of reading ad, which may be uninitialised memory. */
bool ca_switch__adopted_registered(const ca_switch_adopted *ad);

/* The owner free() finds for pages of a destroyed allocator (family.c). */
extern ca_allocator ca_switch__retired_allocator;

#endif /* CA_SWITCH_PRIVATE_H */
