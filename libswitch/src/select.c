/* SPDX-License-Identifier: MIT */
/*
 * Selection state, initialisation, the bootstrap area, the registry of
 * ca_switch_local objects, fork and exit handlers, statistics, checks.
 *
 * Read first: ca_switch__current (switch_private.h), then
 * ca_switch__init_slow below.
 *
 * Concurrency model:
 *   - Context and thread selections are initial-exec thread-locals, touched
 *     by their own thread only.
 *   - The global allocator is one pointer, NULL until initialisation has
 *     created the base allocator; read with acquire, replaced with release.
 *   - Initialisation runs once (core's once word `init`); other threads
 *     wait for it (a short spin, then a futex sleep). Re-entrant calls from the initialising thread (the
 *     base allocator's own set-up calling malloc, pthread_atfork, atexit)
 *     are served by the bootstrap area: a static buffer with a CAS bump
 *     cursor. Nothing here calls dlsym, and nothing calls pthread functions
 *     that allocate before the bootstrap area can answer.
 *   - The registry of locals is a list under core's lock word, held across
 *     fork (core's fork hooks) so the child never inherits it locked.
 *   - Statistics are written with write(2) from stack buffers: never malloc.
 */
#include "switch_private.h"

#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <unistd.h>

CA_SWITCH_TLS ca_switch__sel ca_switch__tl;
CA_SWITCH_TLS char ca_switch__tl_anchor;
CA_SWITCH_TLS bool ca_switch__tl_busy;
/* Set while this thread runs the initialisation. */
static CA_SWITCH_TLS bool tl_initialising;

ca_switch__state ca_switch__g;
unsigned char ca_switch__boot_area[CA_SWITCH__BOOT_SIZE] __attribute__((aligned(4096)));

/* ------------------------------------------------------------------------
 * Bootstrap allocator
 *
 * Each block is preceded by a 16-byte header {size, magic}; blocks are never
 * reused. Invariant: boot_used <= CA_SWITCH__BOOT_SIZE, and every header in
 * [0, boot_used) is either padding or a valid {size, BOOT_MAGIC}.
 * ------------------------------------------------------------------------ */

#define BOOT_MAGIC ((size_t)0xb007b007b007b007ull)

typedef struct boot_header {
    size_t size;
    size_t magic;
} boot_header;

static void *boot_alloc(ca_allocator *a, size_t size, size_t align, size_t *usable)
{
    (void)a;
    if (!ca_is_pow2(align)) {
        errno = EINVAL;
        return NULL;
    }
    if (align < CA_ALIGN_DEFAULT)
        align = CA_ALIGN_DEFAULT;
    size_t used = __atomic_load_n(&ca_switch__g.boot_used, __ATOMIC_RELAXED);
    for (;;) {
        size_t start, end;
        uintptr_t base = (uintptr_t)ca_switch__boot_area;
        if (ca_add_overflows(base + used, sizeof(boot_header), &start) ||
            ca_align_up_overflows(start, align, &start) || ca_add_overflows(start, size, &end) ||
            ca_align_up_overflows(end, CA_ALIGN_DEFAULT, &end) || end - base > CA_SWITCH__BOOT_SIZE) {
            errno = ENOMEM;
            return NULL;
        }
        if (__atomic_compare_exchange_n(&ca_switch__g.boot_used, &used, end - base, true, __ATOMIC_RELAXED,
                                        __ATOMIC_RELAXED)) {
            boot_header *h = (boot_header *)(start - sizeof(boot_header));
            h->size = size;
            h->magic = BOOT_MAGIC;
            ca_switch__count(&ca_switch__g.counters.bootstrap_allocs, 1);
            __atomic_store_n(&ca_switch__g.counters.bootstrap_bytes, end - base, __ATOMIC_RELAXED);
            if (usable)
                *usable = size;
            return (void *)start;
        }
    }
}

static const boot_header *boot_header_of(const void *p)
{
    const boot_header *h = (const boot_header *)p - 1;
    CA_ASSERT(ca_switch__in_boot(p) && h->magic == BOOT_MAGIC, "switch", p, "not a bootstrap block");
    return h;
}

static void boot_free(ca_allocator *a, void *p, size_t size, size_t align)
{
    (void)a, (void)size, (void)align;
    if (p)
        (void)boot_header_of(p);
}

static void boot_free_unsized(ca_allocator *a, void *p) { boot_free(a, p, 0, 0); }

static size_t boot_usable_size(const ca_allocator *a, const void *p)
{
    (void)a;
    return boot_header_of(p)->size;
}

static bool boot_owns(const ca_allocator *a, const void *p)
{
    (void)a;
    return ca_switch__in_boot(p);
}

static int boot_stats(const ca_allocator *a, ca_stats *out)
{
    (void)a;
    ca_stats_init(out, "switch-bootstrap");
    out->bytes_reserved = CA_SWITCH__BOOT_SIZE;
    out->bytes_committed = CA_SWITCH__BOOT_SIZE;
    out->bytes_in_use = __atomic_load_n(&ca_switch__g.boot_used, __ATOMIC_RELAXED);
    out->peak_in_use = out->bytes_in_use;
    out->allocs = __atomic_load_n(&ca_switch__g.counters.bootstrap_allocs, __ATOMIC_RELAXED);
    return 0;
}

static const ca_allocator_ops boot_ops = {
    .name = "switch-bootstrap",
    .caps = CA_CAP_THREAD_SAFE | CA_CAP_UNSIZED | CA_CAP_FREE_NOOP,
    .alloc = boot_alloc,
    .free = boot_free,
    .free_unsized = boot_free_unsized,
    .usable_size = boot_usable_size,
    .resize = NULL, /* ca_resize_generic: moves out of the area */
    .owns = boot_owns,
    .stats = boot_stats,
};

ca_allocator ca_switch__boot_allocator = {&boot_ops};

/* ------------------------------------------------------------------------
 * Registry lock, fork, exit
 * ------------------------------------------------------------------------ */

static void lock(void) { ca_lock_acquire_ranked(&ca_switch__g.lock, CA_LOCK_RANK_SWITCH_REGISTRY, "switch"); }
static void unlock(void) { ca_lock_release_ranked(&ca_switch__g.lock, CA_LOCK_RANK_SWITCH_REGISTRY); }

void ca_switch__registry_lock(void) { lock(); }
void ca_switch__registry_unlock(void) { unlock(); }

/*
 * fork. The allocator's locks (this registry, libbinned's, whose handlers
 * run after these) are held across fork so the child inherits consistent
 * state. glibc takes its stdio list lock only after every prepare handler,
 * so holding allocator locks then could deadlock: a thread inside getline
 * holds a FILE lock and waits in realloc for an allocator lock, another
 * holds the list lock in fflush(NULL) and waits for that FILE lock, and the
 * forking thread waits for the list lock while holding the allocator's.
 * glibc's own malloc avoids it by locking its arenas after the list lock;
 * the prepare handler does the same by taking the list lock first (it is
 * recursive: glibc takes it again in fork). The parent handler releases
 * our hold; in the child glibc resets the lock, and so do we (glibc does not
 * in a single-threaded process). The symbols are glibc's stdio locking
 * entry points; without them (another libc) the order is as before.
 */
extern void _IO_list_lock(void) __attribute__((weak));
extern void _IO_list_unlock(void) __attribute__((weak));
extern void _IO_list_resetlock(void) __attribute__((weak));

static void fork_prepare(void)
{
    if (_IO_list_lock && _IO_list_unlock && _IO_list_resetlock)
        _IO_list_lock();
    lock();
}

static void fork_parent(void)
{
    unlock();
    if (_IO_list_lock && _IO_list_unlock && _IO_list_resetlock)
        _IO_list_unlock();
}

/* In the child only the forking thread exists; its selection (thread-locals)
 * is inherited unchanged. Locals owned by other threads keep their queues:
 * ca_switch_local_adopt lets a child thread take them over. */
static void fork_child(void)
{
    ca_lock_reset_ranked(&ca_switch__g.lock, CA_LOCK_RANK_SWITCH_REGISTRY);
    if (_IO_list_lock && _IO_list_unlock && _IO_list_resetlock)
        _IO_list_resetlock();
}

void ca_switch__register_local(ca_switch_local *l)
{
    lock();
    CA_SLIST_PUSH(ca_switch__g.locals, l, next);
    unlock();
}

void ca_switch__register_adopted(ca_switch_adopted *ad)
{
    lock();
    CA_SLIST_PUSH(ca_switch__g.adopted, ad, next);
    unlock();
}

bool ca_switch__adopted_registered(const ca_switch_adopted *ad)
{
    bool found = false;
    lock();
    for (const ca_switch_adopted *it = ca_switch__g.adopted; it && !found; it = it->next)
        found = it == ad;
    unlock();
    return found;
}

void ca_switch__unregister_adopted(ca_switch_adopted *ad)
{
    lock();
    CA_SLIST_REMOVE(ca_switch__g.adopted, ad, next);
    ad->next = NULL;
    unlock();
}

void ca_switch__unregister_local(ca_switch_local *l)
{
    lock();
    CA_SLIST_REMOVE(ca_switch__g.locals, l, next);
    l->next = NULL;
    unlock();
}

static void ensure_init_for_ctor(void);

/* CA_STATS: unset, "0" or "off": no report; "1" or "text": text; "json". */
static int env_stats_format(void)
{
    static const char *const words[] = {"0", "off", "1", "text", "json", NULL};
    int w;
    (void)ca_env_word("CA_STATS", words, 0, &w);
    return w <= 1 ? -1 : w == 4 ? CA_STATS_JSON : CA_STATS_TEXT;
}

/* CA_STATS_FD: the descriptor of the report (default 2). */
static int env_stats_fd(void)
{
    uint64_t fd;
    (void)ca_env_uint("CA_STATS_FD", 0, 1 << 20, 2, &fd);
    return (int)fd;
}

/* CA_STATS_INHERIT: "1" (default) every process that inherits CA_STATS
 * reports; "0" only the first: it turns CA_STATS off in its own environment
 * at start (the value's first byte becomes '0' in place: no setenv, which
 * some programs replace with their own, e.g. bash), so that exec'ed
 * children inherit CA_STATS=0, and forked ones see another pid than the
 * one recorded and stay silent. */
static bool env_stats_inherit(void)
{
    static const char *const words[] = {"0", "1", NULL};
    int w;
    (void)ca_env_word("CA_STATS_INHERIT", words, 1, &w);
    return w == 1;
}

/* Where and how CA_STATS prints, fixed by the constructor below: -1 = not
 * decided yet (then the environment is read at exit). stats_root: the pid
 * that reports when CA_STATS_INHERIT=0 (0: any). stats_file: CA_STATS_FILE,
 * a path in which %p becomes the pid of the reporting process (%% is %),
 * opened for appending at exit instead of writing to CA_STATS_FD. */
static int stats_fmt = -1, stats_fd = -1;
static bool stats_decided;
static pid_t stats_root;
static const char *stats_file;

/* CA_STATS_FILE with %p expanded, opened for appending; -1 when it does not
 * fit PATH_MAX or cannot be opened (a warning line, then no report). */
static int open_stats_file(const char *pattern)
{
    char path[4096];
    size_t n = 0;
    for (const char *c = pattern; *c && n + 22 < sizeof path; c++) {
        if (c[0] == '%' && c[1] == 'p') {
            n += ca_fmt_u64(path + n, 21, (uint64_t)getpid(), 10);
            c++;
        } else if (c[0] == '%' && c[1] == '%') {
            path[n++] = '%';
            c++;
        } else {
            path[n++] = *c;
        }
    }
    path[n] = '\0';
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        static const char msg[] = "ctxalloc: warning: CA_STATS_FILE cannot be opened: no statistics written\n";
        (void)!write(2, msg, sizeof msg - 1);
    }
    return fd;
}

/* Runs once libc is initialised (environ is set). When CA_STATS asks for a
 * report, the output fd is duplicated now (close-on-exec, fd >= 100) because
 * programs may close stderr in their own exit handlers (coreutils do), which
 * run before ours. */
__attribute__((constructor)) static void stats_setup(void)
{
    ensure_init_for_ctor();
    stats_decided = true;
    stats_fmt = env_stats_format();
    if (stats_fmt < 0)
        return;
    stats_file = getenv("CA_STATS_FILE");
    if (!env_stats_inherit()) {
        stats_root = getpid();
        for (char **e = environ; e && *e; e++)
            if (strncmp(*e, "CA_STATS=", 9) == 0 && (*e)[9]) {
                (*e)[9] = '0';
                (*e)[10] = '\0';
            }
    }
    if (stats_file && !*stats_file)
        stats_file = NULL;
    if (!stats_file) {
        int want = env_stats_fd();
        int fd = fcntl(want, F_DUPFD_CLOEXEC, 100);
        stats_fd = fd >= 0 ? fd : want;
    }
}

/* Registered with atexit during initialisation, i.e. at the first malloc of
 * the process: handlers registered later (by the program) run before it. */
static void stats_at_exit(void)
{
    int fmt = stats_fmt, fd = stats_fd;
    if (!stats_decided) {
        fmt = env_stats_format();
        fd = env_stats_fd();
    }
    if (fmt < 0 || (stats_root && getpid() != stats_root)) /* a forked child under CA_STATS_INHERIT=0 */
        return;
    if (stats_file && (fd = open_stats_file(stats_file)) < 0)
        return;
    (void)ca_switch_stats_write(fd, (ca_stats_format)fmt);
    if (stats_file)
        close(fd);
}

/* ------------------------------------------------------------------------
 * Initialisation
 * ------------------------------------------------------------------------ */

/* After global changed to a: whether malloc may go straight to libbinned. */
static void note_global(ca_allocator *a)
{
    /* the automatic NUMA mode takes the slow path, which picks the node */
    bool binned = a != NULL && a == ca_switch__g.base && ca_switch__base_is_binned() && !ca_switch__g.numa_auto;
    __atomic_store_n(&ca_switch__g.global_binned, binned, __ATOMIC_RELEASE);
}

ca_allocator *ca_switch__init_slow(void)
{
    int st = __atomic_load_n(&ca_switch__g.init, __ATOMIC_ACQUIRE);
    if (st == 2)
        return __atomic_load_n(&ca_switch__g.global, __ATOMIC_ACQUIRE);
    if (tl_initialising)
        return &ca_switch__boot_allocator;
    if (ca_once_begin(&ca_switch__g.init)) {
        tl_initialising = true;
        bool registers = false;
        ca_allocator *base = ca_switch__base_create(&registers);
        if (!base) {
            base = ca_switch__libc_base();
            registers = false;
        }
        ca_switch__g.base = base;
        ca_switch__g.base_registers = registers;
        ca_switch__g.numa_auto = ca_switch__numa_setup();
        /* Both may allocate: still served by the bootstrap area. */
        (void)ca_fork_hook_register_locks(fork_prepare, fork_parent, fork_child, CA_LOCK_RANK_SWITCH_REGISTRY);
        (void)atexit(stats_at_exit);
        ca_allocator *none = NULL;
        /* A global set by ca_switch_global_set during initialisation wins. */
        __atomic_compare_exchange_n(&ca_switch__g.global, &none, base, false, __ATOMIC_RELEASE, __ATOMIC_RELAXED);
        note_global(__atomic_load_n(&ca_switch__g.global, __ATOMIC_ACQUIRE));
        ca_once_finish(&ca_switch__g.init);
        tl_initialising = false;
        return __atomic_load_n(&ca_switch__g.global, __ATOMIC_ACQUIRE);
    }
    return __atomic_load_n(&ca_switch__g.global, __ATOMIC_ACQUIRE);
}

static void ensure_init(void)
{
    if (ca_unlikely(__atomic_load_n(&ca_switch__g.init, __ATOMIC_ACQUIRE) != 2))
        (void)ca_switch__init_slow();
}

/* The atexit handler must be registered before the program's own. */
static void ensure_init_for_ctor(void) { ensure_init(); }

/* ------------------------------------------------------------------------
 * Selection API
 * ------------------------------------------------------------------------ */

ca_allocator *ca_switch_base(void)
{
    ensure_init();
    /* During the initialisation itself the base is not there yet. */
    return ca_switch__g.base ? ca_switch__g.base : &ca_switch__boot_allocator;
}

ca_allocator *ca_switch_global(void)
{
    ca_allocator *a = __atomic_load_n(&ca_switch__g.global, __ATOMIC_ACQUIRE);
    return a ? a : ca_switch__init_slow();
}

/* ------------------------------------------------------------------------
 * Routability and selection counting
 *
 * A selection is accepted only when free() can route its blocks: see
 * switch.h. Adoptions count the thread and context slots holding them
 * (ca_switch_adopted.selected), so that undoing or destroying one that is
 * still selected is caught; a thread that exits with an adoption selected
 * gives its slots back through a key destructor.
 * ------------------------------------------------------------------------ */

/* NULL when a is routable, else why not. */
static const char *unroutable(const ca_allocator *a)
{
    if (!a || a == ca_switch__g.base || a == &ca_switch__boot_allocator ||
        a == __atomic_load_n(&ca_switch__g.global, __ATOMIC_ACQUIRE))
        return NULL;
    if (!a->ops)
        return "selected allocator has no ops (not initialised, or destroyed)";
    if (ca_switch__is_adopted(a))
        return ca_switch__adopt_active(a) ? NULL : "selected adoption was undone or its allocator destroyed";
    unsigned caps = ca_allocator_caps(a);
    if ((caps & (CA_CAP_OWNER_MAP | CA_CAP_UNSIZED)) == (CA_CAP_OWNER_MAP | CA_CAP_UNSIZED))
        return NULL;
    return "selected allocator is not routable by free(): adopt it first (ca_switch_adopt)";
}

static pthread_key_t exit_key;
static pthread_once_t exit_once = PTHREAD_ONCE_INIT;
static int exit_key_ok;
static CA_SWITCH_TLS bool tl_exit_armed;

static void sel_change(ca_allocator *from, ca_allocator *to);

/* Thread exit: give back the slots this thread's selections hold. */
static void on_thread_exit(void *arg)
{
    (void)arg;
    ca_allocator *c = ca_switch__tl.context, *t = ca_switch__tl.thread;
    ca_switch__tl.context = NULL;
    ca_switch__tl.thread = NULL;
    sel_change(c, NULL);
    sel_change(t, NULL);
}

static void make_exit_key(void) { exit_key_ok = pthread_key_create(&exit_key, on_thread_exit) == 0; }

ca_attr_cold ca_attr_noinline static void arm_thread_exit(void)
{
    (void)pthread_once(&exit_once, make_exit_key);
    if (exit_key_ok && pthread_setspecific(exit_key, (void *)1) == 0)
        tl_exit_armed = true;
}

/* Move one selection slot from `from` to `to`. */
static void sel_change(ca_allocator *from, ca_allocator *to)
{
    if (from == to)
        return;
    if (ca_switch__is_adopted(to)) {
        __atomic_fetch_add(&((ca_switch_adopted *)to)->selected, 1, __ATOMIC_RELAXED);
        if (ca_unlikely(!tl_exit_armed))
            arm_thread_exit();
    }
    if (ca_switch__is_adopted(from))
        __atomic_fetch_sub(&((ca_switch_adopted *)from)->selected, 1, __ATOMIC_RELAXED);
}

/* A refused plain setter: checks=on aborts naming the cause; checks=off
 * counts it and leaves the selection alone. */
ca_attr_cold ca_attr_noinline static void refused(const ca_allocator *a, const char *why)
{
    ca_switch__count(&ca_switch__g.counters.refused_selections, 1);
    CA_CHECK(false, "switch", a, why);
    errno = EINVAL;
}

/* Install a in *slot (a thread-local selection); returns 0 or EINVAL. */
static int select_into(ca_allocator **slot, ca_allocator *a, ca_allocator **prev, bool plain)
{
    ca_allocator *old = *slot;
    if (prev)
        *prev = old;
    const char *why = unroutable(a);
    if (ca_unlikely(why != NULL)) {
        if (plain)
            refused(a, why);
        return EINVAL;
    }
    *slot = a;
    sel_change(old, a);
    return 0;
}

ca_allocator *ca_switch_global_set(ca_allocator *a)
{
    ensure_init();
    if (!a)
        a = ca_switch__g.base;
    unsigned need = CA_CAP_THREAD_SAFE | CA_CAP_UNSIZED;
    if ((ca_allocator_caps(a) & need) != need || unroutable(a)) {
        errno = EINVAL;
        return NULL;
    }
    ca_allocator *prev = __atomic_exchange_n(&ca_switch__g.global, a, __ATOMIC_ACQ_REL);
    note_global(a);
    return prev;
}

ca_allocator *ca_switch_thread(void) { return ca_switch__tl.thread; }

ca_allocator *ca_switch_thread_set(ca_allocator *a)
{
    ca_allocator *prev;
    (void)select_into(&ca_switch__tl.thread, a, &prev, true);
    return prev;
}

int ca_switch_thread_try_set(ca_allocator *a, ca_allocator **prev)
{
    return select_into(&ca_switch__tl.thread, a, prev, false);
}

ca_allocator *ca_switch_context(void) { return ca_switch__tl.context; }

ca_allocator *ca_switch_context_set(ca_allocator *a)
{
    ca_allocator *prev;
    (void)select_into(&ca_switch__tl.context, a, &prev, true);
    return prev;
}

int ca_switch_context_try_set(ca_allocator *a, ca_allocator **prev)
{
    return select_into(&ca_switch__tl.context, a, prev, false);
}

void ca_switch_context_swap(ca_allocator **slot)
{
    ca_allocator *cur = ca_switch__tl.context, *next = *slot;
    const char *why = unroutable(next);
    if (ca_unlikely(why != NULL)) {
        refused(next, why);
        return;
    }
    ca_switch__tl.context = next;
    *slot = cur;
    sel_change(cur, next);
}

ca_allocator *ca_switch_current(void) { return ca_switch__node_unwrap(ca_switch__current()); }

void *ca_switch_with(ca_allocator *a, void *(*fn)(void *), void *arg)
{
    ca_allocator *prev = ca_switch__tl.context;
    if (select_into(&ca_switch__tl.context, a, NULL, true) != 0)
        return fn(arg); /* refused at checks=off: runs in the current selection */
    void *r = fn(arg);
    ca_allocator *now = ca_switch__tl.context;
    ca_switch__tl.context = prev;
    sel_change(now, prev);
    return r;
}

/* ------------------------------------------------------------------------
 * Introspection
 * ------------------------------------------------------------------------ */

void ca_switch_counters_get(ca_switch_counters *out)
{
    const ca_switch_counters *c = &ca_switch__g.counters;
    out->bootstrap_allocs = __atomic_load_n(&c->bootstrap_allocs, __ATOMIC_RELAXED);
    out->bootstrap_bytes = __atomic_load_n(&c->bootstrap_bytes, __ATOMIC_RELAXED);
    out->remote_frees = __atomic_load_n(&c->remote_frees, __ATOMIC_RELAXED);
    out->unowned_frees = __atomic_load_n(&c->unowned_frees, __ATOMIC_RELAXED);
    out->moved_reallocs = __atomic_load_n(&c->moved_reallocs, __ATOMIC_RELAXED);
    out->refused_selections = __atomic_load_n(&c->refused_selections, __ATOMIC_RELAXED);
    out->lifetime_errors = __atomic_load_n(&c->lifetime_errors, __ATOMIC_RELAXED);
    out->retired_frees = __atomic_load_n(&c->retired_frees, __ATOMIC_RELAXED);
}

static int write_str(int fd, const char *s) { return ca_write_all(fd, s, strlen(s)); }

/* One entry of the report: a "== title" line and the text lines, or a JSON
 * member `"title": {...}` (comma-separated after the first). */
static int write_entry(int fd, ca_stats_format fmt, const char *title, const ca_stats *s, bool *first)
{
    char buf[4096];
    size_t n = ca_stats_format_buf(s, fmt, buf, sizeof buf);
    if (n >= sizeof buf)
        return EOVERFLOW;
    int e;
    if (fmt == CA_STATS_JSON) {
        if ((e = write_str(fd, *first ? "" : ", ")) || (e = write_str(fd, "\"")) || (e = write_str(fd, title)) ||
            (e = write_str(fd, "\": ")) || (e = write_str(fd, buf)))
            return e;
    } else {
        if ((e = write_str(fd, "== ")) || (e = write_str(fd, title)) || (e = write_str(fd, "\n")) ||
            (e = write_str(fd, buf)))
            return e;
    }
    *first = false;
    return 0;
}

static void switch_counter_stats(ca_stats *s)
{
    CA_STATS_COUNTERS(CA_SWITCH_COUNTERS);
    ca_switch_counters c;
    ca_switch_counters_get(&c);
    ca_stats_init(s, "switch");
    CA_STATS_SET(s, bootstrap_allocs, c.bootstrap_allocs);
    CA_STATS_SET(s, bootstrap_bytes, c.bootstrap_bytes);
    CA_STATS_SET(s, remote_frees, c.remote_frees);
    CA_STATS_SET(s, unowned_frees, c.unowned_frees);
    CA_STATS_SET(s, moved_reallocs, c.moved_reallocs);
    CA_STATS_SET(s, refused_selections, c.refused_selections);
    CA_STATS_SET(s, lifetime_errors, c.lifetime_errors);
    CA_STATS_SET(s, retired_frees, c.retired_frees);
    CA_STATS_SET(s, pid, (uint64_t)getpid());
}

/* Titles of the form "<prefix><n>" (prefix of 8 characters at most)
 * without snprintf (which may allocate). */
static void local_title(char *buf, const char *prefix, unsigned n)
{
    size_t plen = strlen(prefix);
    memcpy(buf, prefix, plen);
    (void)ca_fmt_u64(buf + plen, 16, n, 10); /* titles are 24 bytes */
}

/* Pass 0 sums into *total, pass 1 writes (fd >= 0); the caller holds the
 * registry lock so that the lists cannot change in between. The global
 * allocator always has its section; it counts in the total only when it is
 * not the base. Stats callbacks must not allocate. The counters of
 * the rows are merged by name; those that find no room in the total are
 * counted in total->counters_dropped (ca_stats_merge), which the total row
 * prints, so the count ca_stats_merge returns is not needed here. */
static int stats_pass(int pass, int fd, ca_stats_format fmt, ca_stats *total, bool *first)
{
    ca_stats s;
    int e = 0;
    ca_allocator *base = ca_switch__g.base;
    ca_allocator *global = __atomic_load_n(&ca_switch__g.global, __ATOMIC_ACQUIRE);
    {
        ca_allocator *list[3] = {base, global, &ca_switch__boot_allocator};
        const char *titles[3] = {"base", "global", "bootstrap"};
        for (int i = 0; i < 3 && !e; i++) {
            if (!list[i])
                continue;
            (void)ca_stats_get(list[i], &s);
            if (pass == 0) {
                if (i != 1 || global != base)
                    (void)ca_stats_merge(total, &s);
            } else {
                e = write_entry(fd, fmt, titles[i], &s, first);
            }
        }
        unsigned n = 0;
        for (ca_switch_local *l = ca_switch__g.locals; l && !e; l = l->next, n++) {
            (void)ca_stats_get(&l->base, &s);
            if (pass == 0) {
                (void)ca_stats_merge(total, &s);
            } else {
                char title[24];
                local_title(title, "local.", n);
                e = write_entry(fd, fmt, title, &s, first);
            }
        }
        n = 0;
        for (ca_switch_adopted *ad = ca_switch__g.adopted; ad && !e; ad = ad->next, n++) {
            (void)ca_stats_get(&ad->base, &s);
            if (pass == 0) {
                (void)ca_stats_merge(total, &s);
            } else {
                char title[24];
                local_title(title, "adopted.", n);
                e = write_entry(fd, fmt, title, &s, first);
            }
        }
    }
    return e;
}

int ca_switch_stats_total(ca_stats *out)
{
    ensure_init();
    bool first = true;
    ca_stats_init(out, "total");
    lock();
    (void)stats_pass(0, -1, CA_STATS_TEXT, out, &first);
    unlock();
    return 0;
}

int ca_switch_stats_write(int fd, ca_stats_format fmt)
{
    ensure_init();
    ca_stats total, s;
    ca_stats_init(&total, "total");
    bool first = true;
    int e = 0;
    lock();
    (void)stats_pass(0, fd, fmt, &total, &first);
    if (fmt == CA_STATS_JSON)
        e = write_str(fd, "{");
    if (!e)
        e = write_entry(fd, fmt, "total", &total, &first);
    if (!e)
        e = stats_pass(1, fd, fmt, &total, &first);
    unlock();
    if (!e) {
        switch_counter_stats(&s);
        e = write_entry(fd, fmt, "switch", &s, &first);
    }
    if (!e && fmt == CA_STATS_JSON)
        e = write_str(fd, "}\n");
    return e;
}

/* The part of the walk that reads only this thread's and fixed state. */
static const char *check_selection(const ca_switch__state *g)
{
    CA_CHECK_EXPECT(g->base != NULL, "initialised without a base allocator");
    ca_allocator *global = __atomic_load_n(&g->global, __ATOMIC_ACQUIRE);
    unsigned need = CA_CAP_THREAD_SAFE | CA_CAP_UNSIZED;
    CA_CHECK_EXPECT(global && (ca_allocator_caps(global) & need) == need,
                    "global allocator is not thread-safe with unsized free");
    CA_CHECK_EXPECT((ca_allocator_caps(g->base) & need) == need,
                    "base allocator is not thread-safe with unsized free");
    size_t used = __atomic_load_n(&g->boot_used, __ATOMIC_RELAXED);
    CA_CHECK_EXPECT(used <= CA_SWITCH__BOOT_SIZE, "bootstrap cursor beyond the area");
    ca_allocator *ctx = ca_switch__tl.context, *thr = ca_switch__tl.thread;
    CA_CHECK_EXPECT(!ctx || ctx->ops, "context allocator without ops");
    CA_CHECK_EXPECT(!thr || thr->ops, "thread allocator without ops");
    CA_CHECK_EXPECT(!ca_switch__is_adopted(ctx) || ((const ca_switch_adopted *)ctx)->selected > 0,
                    "selected adoption does not count its selection");
    CA_CHECK_EXPECT(!ca_switch__is_adopted(thr) || ((const ca_switch_adopted *)thr)->selected > 0,
                    "selected adoption does not count its selection");
    return NULL;
}

/* The registries (Floyd's cycle check, then each entry's own invariants);
 * the registry lock is held. */
static const char *check_registries(const ca_switch__state *g)
{
    const ca_switch_local *slow = g->locals, *fast = g->locals;
    while (fast && fast->next) {
        slow = slow->next;
        fast = fast->next->next;
        CA_CHECK_EXPECT(slow != fast, "registry of locals has a cycle");
    }
    for (const ca_switch_local *l = g->locals; l; l = l->next) {
        const char *m = ca_switch__local_check(l);
        if (m)
            return m;
    }
    const ca_switch_adopted *as = g->adopted, *af = g->adopted;
    while (af && af->next) {
        as = as->next;
        af = af->next->next;
        CA_CHECK_EXPECT(as != af, "registry of adoptions has a cycle");
    }
    for (const ca_switch_adopted *ad = g->adopted; ad; ad = ad->next) {
        const char *m = ca_switch__adopt_check(ad);
        if (m)
            return m;
    }
    return NULL;
}

const char *ca_switch_check(void)
{
    ensure_init();
    ca_switch__state *g = &ca_switch__g;
    const char *m = check_selection(g);
    if (m)
        return m;
    lock();
    m = check_registries(g);
    unlock();
    return m;
}
