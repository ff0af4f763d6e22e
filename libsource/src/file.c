/* SPDX-License-Identifier: MIT */
/*
 * The file-backed source. init opens the file (named, or an unlinked
 * temporary one) and reserves `capacity` bytes of address space PROT_NONE;
 * address map + x stands for file offset x, so a range's offset is pointer
 * arithmetic. Offsets are handed out by a small first-fit allocator (a top
 * cursor and a sorted table of free extents, merged on release). A range is
 * backed by mapping the file MAP_SHARED|MAP_FIXED over its part of the
 * reservation, after the file blocks were allocated with fallocate: a full
 * disk fails the obtain with ENOSPC instead of a SIGBUS on a later write.
 * Decommit and release punch holes so the blocks return to the filesystem.
 * Concurrency: thread-safe. The offset allocator is under s->mutex; counters
 * are __atomic; the record of ranges has its own lock; system calls on
 * disjoint ranges run outside the mutex.
 * Read first: file_obtain, then ext_alloc / ext_free.
 */
#include "source_internal.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef FALLOC_FL_KEEP_SIZE
#define FALLOC_FL_KEEP_SIZE 0x01
#endif
#ifndef FALLOC_FL_PUNCH_HOLE
#define FALLOC_FL_PUNCH_HOLE 0x02
#endif

CA_SOURCE__DECLARE_COMMIT(file)

static const ca_source_ops file_ops = CA_SOURCE__OPS_COMMIT(file, CA_SOURCE_THREAD_SAFE);
static const ca_source_ops file_zero_ops = CA_SOURCE__OPS_COMMIT(file, CA_SOURCE_THREAD_SAFE | CA_SOURCE_ZEROED);


static ca_source_file *from(ca_source *s) { return (ca_source_file *)(void *)s; }

/* A failure with more to say than err: the calling thread's last error
 * (core.h), "source-file: <what>[ '<path>']: <text of err>". No allocation,
 * no lock (the message is the thread's). Returns err. */
static int note_path(const char *what, const char *path, int err)
{
    ca_line_errno(ca_core__last_error_path("source-file", what, path), err);
    return err;
}

static int note(const char *what, int err) { return note_path(what, NULL, err); }

/* ---- offset allocator (under s->mutex) ---------------------------------- */

static void ext_insert_at(ca_source_file *s, unsigned i, size_t off, size_t size)
{
    memmove(&s->free[i + 1], &s->free[i], (s->nfree - i) * sizeof s->free[0]);
    s->free[i].off = off;
    s->free[i].size = size;
    s->nfree++;
}

static void ext_remove_at(ca_source_file *s, unsigned i)
{
    memmove(&s->free[i], &s->free[i + 1], (s->nfree - i - 1) * sizeof s->free[0]);
    s->nfree--;
}

/* Return [off, off + size) to the free offsets: merge with the neighbours,
 * lower top when it ends there, count as lost when the table is full. */
static void ext_free(ca_source_file *s, size_t off, size_t size)
{
    if (size == 0)
        return;
    unsigned i = 0;
    while (i < s->nfree && s->free[i].off < off)
        i++;
    if (i > 0 && s->free[i - 1].off + s->free[i - 1].size == off) {
        i--;
        off = s->free[i].off;
        size += s->free[i].size;
        ext_remove_at(s, i);
    }
    if (i < s->nfree && off + size == s->free[i].off) {
        size += s->free[i].size;
        ext_remove_at(s, i);
    }
    if (off + size == s->top) {
        s->top = off;
        return;
    }
    if (s->nfree == CA_SOURCE_FILE_EXTENTS) {
        s->lost += size;
        return;
    }
    ext_insert_at(s, i, off, size);
}

/* First fit at address alignment `align`; ENOMEM when capacity is used up. */
static int ext_alloc(ca_source_file *s, size_t size, size_t align, size_t *out)
{
    uintptr_t base = (uintptr_t)s->map;
    for (unsigned i = 0; i < s->nfree; i++) {
        ca_source_file_extent e = s->free[i];
        size_t st = ca_align_up(base + e.off, align) - base;
        if (st - e.off > e.size || size > e.size - (st - e.off))
            continue;
        ext_remove_at(s, i);
        ext_free(s, e.off, st - e.off);
        ext_free(s, st + size, e.off + e.size - (st + size));
        *out = st;
        return 0;
    }
    uintptr_t a;
    if (ca_align_up_overflows(base + s->top, align, &a))
        return ENOMEM;
    size_t st = a - base;
    if (st > s->capacity || size > s->capacity - st)
        return ENOMEM;
    size_t old_top = s->top;
    s->top = st + size;
    ext_free(s, old_top, st - old_top);
    *out = st;
    return 0;
}

static void ext_put(ca_source_file *s, size_t off, size_t size)
{
    (void)ca_mutex_lock_ranked(&s->mutex, CA_LOCK_RANK_SOURCE_FILE, "source");
    ext_free(s, off, size);
    (void)ca_mutex_unlock_ranked(&s->mutex, CA_LOCK_RANK_SOURCE_FILE);
}

/* ---- file blocks and mappings -------------------------------------------- */

/* Allocate the blocks of [off, off + size) and check the file covers them. */
static int ensure_blocks(ca_source_file *s, size_t off, size_t size)
{
    int err = ca_source_fault_hit(s->fault, CA_SOURCE_FAULT_FALLOCATE, size);
    if (err)
        return note("fallocate (injected)", err);
    if ((err = ca_os_fallocate(s->fd, 0, (int64_t)off, (int64_t)size))) {
        if (err != EOPNOTSUPP && err != ENOSYS)
            return note("fallocate", err);
        /* No fallocate here: extend, then write zeros beyond the old end so
         * the blocks exist (ranges inside the old size are already backed). */
        struct stat st;
        if (fstat(s->fd, &st) != 0)
            return note("fstat", errno);
        static const char zeros[4096];
        for (size_t pos = (size_t)st.st_size > off ? (size_t)st.st_size : off; pos < off + size;) {
            size_t n = off + size - pos < sizeof zeros ? off + size - pos : sizeof zeros;
            ssize_t w = pwrite(s->fd, zeros, n, (off_t)pos);
            if (w <= 0)
                return note("pwrite of zeros", w < 0 ? errno : ENOSPC);
            pos += (size_t)w;
        }
    }
    struct stat st;
    if (fstat(s->fd, &st) != 0)
        return note("fstat", errno);
    if ((uint64_t)st.st_size < (uint64_t)off + size)
        return note("file shorter than the range after allocation", EIO);
    return 0;
}

static void punch(ca_source_file *s, size_t off, size_t size)
{
    (void)ca_os_fallocate(s->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (int64_t)off, (int64_t)size);
}

/* Put the PROT_NONE reservation back over [p, p + size). */
static int unmap_to_reserved(void *p, size_t size)
{
    void *q;
    return ca_os_map(p, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0, &q);
}

/* Blocks, then the shared mapping of [off, off + size). On failure the
 * range is PROT_NONE again; blocks allocated here are punched out when the
 * file holds no data of the caller's (temporary or truncated file). */
static int back_range(ca_source_file *s, size_t off, size_t size)
{
    int err = ensure_blocks(s, off, size);
    if (!err && (err = ca_source_fault_hit(s->fault, CA_SOURCE_FAULT_MMAP, size)))
        note("mmap (injected)", err);
    if (!err) {
        int flags = MAP_SHARED | MAP_FIXED | ((s->flags & CA_SOURCE_FILE_POPULATE) ? MAP_POPULATE : 0);
        void *q;
        if ((err = ca_os_map(s->map + off, size, PROT_READ | PROT_WRITE, flags, s->fd, (int64_t)off, &q))) {
            err = note("mmap of the file", err);
            (void)unmap_to_reserved(s->map + off, size);
        }
    }
    if (err && s->base.ops == &file_zero_ops)
        punch(s, off, size);
    return err;
}

/* ---- operations ----------------------------------------------------------- */

static int take_offsets(ca_source_file *s, size_t size, size_t align, size_t *off)
{
    (void)ca_mutex_lock_ranked(&s->mutex, CA_LOCK_RANK_SOURCE_FILE, "source");
    int err = ext_alloc(s, size, align < s->base.granule ? s->base.granule : align, off);
    (void)ca_mutex_unlock_ranked(&s->mutex, CA_LOCK_RANK_SOURCE_FILE);
    return err ? note("file source capacity exhausted", err) : 0;
}

static int file_new(ca_source_file *s, size_t size, size_t align, bool usable, void **out)
{
    int err = ca_source_check_request(&s->base, size, align);
    if (!err)
        err = ca_source_fault_hit(s->fault, usable ? CA_SOURCE_FAULT_OBTAIN : CA_SOURCE_FAULT_RESERVE, size);
    size_t off = 0;
    if (!err)
        err = take_offsets(s, size, align, &off);
    if (err)
        return ca_source__fail(&s->c, err, true);
    if (usable && (err = back_range(s, off, size))) {
        ext_put(s, off, size);
        return ca_source__fail(&s->c, err, true);
    }
    if ((err = ca_source__track_add(&s->track, s->map + off, size, usable ? size : 0,
                                    usable ? 0 : CA_SOURCE__R_RESERVED))) {
        if (usable) {
            (void)unmap_to_reserved(s->map + off, size);
            punch(s, off, size);
        }
        ext_put(s, off, size);
        return ca_source__fail(&s->c, note("record of ranges", err), true);
    }
    ca_source__count_new(&s->c, size, usable);
    if (usable) {
        ca_source__add(&s->c.base, 1, true);
        __atomic_store_n(&s->c.last_page_size, (uint64_t)ca_page_size(), __ATOMIC_RELAXED);
    }
    *out = s->map + off;
    CA_SOURCE__FULL(&s->base, file);
    return 0;
}

static int file_obtain(ca_source *src, size_t size, size_t align, void **out)
{
    return file_new(from(src), size, align, true, out);
}

static int file_reserve(ca_source *src, size_t size, size_t align, void **out)
{
    return file_new(from(src), size, align, false, out);
}

static int range_arg(const ca_source_file *s, const void *p, size_t size)
{
    uintptr_t a = (uintptr_t)p, lo = (uintptr_t)s->map;
    return p && size && ca_is_aligned(a, s->base.granule) && size % s->base.granule == 0 && a >= lo &&
                   a - lo <= s->capacity && size <= s->capacity - (a - lo)
               ? 0
               : EINVAL;
}

static int file_release(ca_source *src, void *p, size_t size)
{
    ca_source_file *s = from(src);
    int err = range_arg(s, p, size);
    if (!err)
        err = ca_source_fault_hit(s->fault, CA_SOURCE_FAULT_RELEASE, size);
    if (!err && (err = ca_source_fault_hit(s->fault, CA_SOURCE_FAULT_MMAP, size)))
        note("mmap (injected)", err);
    ca_source__range r;
    if (!err)
        err = ca_source__track_release(&s->track, p, size, "release of a range this file source did not give out",
                                       &r);
    if (err)
        return ca_source__fail(&s->c, err, true);
    if ((err = unmap_to_reserved(p, size))) {
        ca_source__track_put_back(&s->track, p, size, &r);
        return ca_source__fail(&s->c, note("mmap of the reservation", err), true);
    }
    size_t off = (size_t)((char *)p - s->map);
    punch(s, off, size);
    ext_put(s, off, size);
    ca_source__count_release(&s->c, size, r.committed, (r.flags & CA_SOURCE__R_RESERVED) != 0);
    CA_SOURCE__FULL(src, file);
    return 0;
}

static int file_commit(ca_source *src, void *p, size_t size)
{
    ca_source_file *s = from(src);
    int err = range_arg(s, p, size);
    if (!err)
        err = ca_source__track_change(&s->track, s->fault, CA_SOURCE_FAULT_COMMIT, p, size, NULL,
                                      "commit outside the ranges of this file source");
    if (!err)
        err = back_range(s, (size_t)((char *)p - s->map), size);
    if (err)
        return ca_source__fail(&s->c, err, true);
    ca_source__track_committed(&s->track, &s->c, p, size, true);
    CA_SOURCE__FULL(src, file);
    return 0;
}

static int file_decommit(ca_source *src, void *p, size_t size)
{
    ca_source_file *s = from(src);
    int err = range_arg(s, p, size);
    if (!err)
        err = ca_source__track_change(&s->track, s->fault, CA_SOURCE_FAULT_DECOMMIT, p, size, NULL,
                                      "decommit outside the ranges of this file source");
    if (!err && (err = ca_source_fault_hit(s->fault, CA_SOURCE_FAULT_FALLOCATE, size)))
        note("fallocate (injected)", err);
    if (!err && (err = ca_os_fallocate(s->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                                       (int64_t)((char *)p - s->map), (int64_t)size)))
        err = note("fallocate punch hole", err);
    if (err)
        return ca_source__fail(&s->c, err, true);
    ca_source__track_committed(&s->track, &s->c, p, size, false);
    CA_SOURCE__FULL(src, file);
    return 0;
}

static int file_stats(const ca_source *src, ca_stats *out)
{
    CA_STATS_COUNTERS(CA_SOURCE_FILE_COUNTERS);
    const ca_source_file *s = (const ca_source_file *)(const void *)src;
    ca_source__fill_stats(out, file_ops.name, &s->c, s->fault);
    (void)ca_mutex_lock_ranked(s->mutex_lk, CA_LOCK_RANK_SOURCE_FILE, "source");
    uint64_t lost = s->lost, top = s->top;
    (void)ca_mutex_unlock_ranked(s->mutex_lk, CA_LOCK_RANK_SOURCE_FILE);
    CA_STATS_SET(out, lost_bytes, lost);
    CA_STATS_SET(out, file_top, top);
    return 0;
}

int ca_source_file_sync(ca_source_file *s, void *p, size_t size)
{
    if (!s || range_arg(s, p, size) || ca_source__track_within(&s->track, p, size, NULL))
        return EINVAL;
    int err = ca_os_sync(p, size, MS_SYNC);
    return err ? note("msync", err) : 0;
}

/* ---- create / destroy ------------------------------------------------------ */

static int open_file(ca_source_file *s, const ca_source_file_options *o)
{
    /* An injected OPEN failure stands for the open below: for O_TMPFILE it
     * goes through the same fallback decision (EOPNOTSUPP falls back). */
    int err = ca_source_fault_hit(o->fault, CA_SOURCE_FAULT_OPEN, 0);
    if (o->path) {
        if (err)
            return note_path("open of the named file (injected)", o->path, err);
        int fl = O_RDWR | O_CREAT | O_CLOEXEC | ((o->flags & CA_SOURCE_FILE_TRUNCATE) ? O_TRUNC : 0);
        s->fd = open(o->path, fl, 0600);
        return s->fd < 0 ? note_path("open of the named file", o->path, errno) : 0;
    }
    const char *dir = o->dir ? o->dir : getenv("TMPDIR");
    if (!dir || !*dir)
        dir = "/tmp";
    if (!err) {
        s->fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC | O_EXCL, 0600);
        if (s->fd >= 0)
            return 0;
        err = errno;
    }
    if (err != EOPNOTSUPP && err != EISDIR && err != EINVAL)
        return note_path("open O_TMPFILE in the directory", dir, err);
    /* The filesystem lacks O_TMPFILE: a named file, unlinked at once. */
    char tmpl[4096];
    if ((size_t)snprintf(tmpl, sizeof tmpl, "%s/ctxalloc-source-XXXXXX", dir) >= sizeof tmpl)
        return note_path("temporary file path too long in", dir, ENAMETOOLONG);
    s->fd = mkostemp(tmpl, O_CLOEXEC);
    if (s->fd < 0)
        return note_path("mkostemp in the directory", dir, errno);
    unlink(tmpl);
    return 0;
}

int ca_source_file_init(ca_source_file *s, const ca_source_file_options *o)
{
    static const ca_source_file_options dflt;
    if (!s)
        return EINVAL;
    if (!o)
        o = &dflt;
    memset(s, 0, sizeof *s);
    s->fd = -1;
    int err = ca_source_fault_hit(o->fault, CA_SOURCE_FAULT_INIT, 0);
    if (err)
        return note("init (injected)", err);
    size_t page = ca_page_size(), cap = o->capacity ? o->capacity : CA_SOURCE_FILE_CAPACITY_DEFAULT, total;
    if ((o->flags & ~(CA_SOURCE_FILE_TRUNCATE | CA_SOURCE_FILE_POPULATE)) ||
        ca_align_up_overflows(cap, page, &cap) || cap > (size_t)INT64_MAX ||
        ca_add_overflows(cap, CA_SOURCE__2M, &total))
        return note("bad options", EINVAL);
    s->fault = o->fault;
    if ((err = open_file(s, o)))
        return err;
    /* The reservation, 2 MiB-aligned so that offsets and addresses share
     * alignments up to 2 MiB. */
    void *a = NULL;
    if ((err = ca_source_fault_hit(o->fault, CA_SOURCE_FAULT_MMAP, total)) == 0)
        err = ca_os_map_aligned(cap, CA_SOURCE__2M, page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                                &a);
    if (err) {
        close(s->fd);
        s->fd = -1;
        return note("mmap of the address-space reservation", err);
    }
    s->map = (char *)a;
    s->capacity = cap;
    s->flags = o->flags;
    bool zeroed = !o->path || (o->flags & CA_SOURCE_FILE_TRUNCATE);
    s->base.ops = zeroed ? &file_zero_ops : &file_ops;
    s->base.granule = page;
    pthread_mutex_init(&s->mutex, NULL);
    s->mutex_lk = &s->mutex;
    ca_source__track_init(&s->track);
    return 0;
}

void ca_source_file_destroy(ca_source_file *s)
{
    if (!s || !s->base.ops)
        return;
    (void)ca_os_unmap(s->map, s->capacity);
    close(s->fd);
    pthread_mutex_destroy(&s->mutex);
    ca_source__track_destroy(&s->track);
    s->fd = -1;
    s->base.ops = NULL;
}

int ca_source_file_fd(const ca_source_file *s) { return s->fd; }

uint64_t ca_source_file_offset(const ca_source_file *s, const void *p)
{
    uintptr_t a = (uintptr_t)p, lo = (uintptr_t)s->map;
    return a >= lo && a - lo < s->capacity ? (uint64_t)(a - lo) : (uint64_t)-1;
}

const char *ca_source__file_check(const ca_source *src, bool totals)
{
    ca_source_file *s = (ca_source_file *)(void *)(uintptr_t)src;
    uint64_t bytes, committed;
    const char *msg = ca_source__track_check(&s->track, &bytes, &committed);
    if (msg)
        return msg;
    if (totals && bytes != __atomic_load_n(&s->c.reserved, __ATOMIC_RELAXED))
        return "file source: reserved bytes differ from the record";
    if (totals && committed != __atomic_load_n(&s->c.committed, __ATOMIC_RELAXED))
        return "file source: committed bytes differ from the record";
    (void)ca_mutex_lock_ranked(&s->mutex, CA_LOCK_RANK_SOURCE_FILE, "source");
    size_t free_bytes = 0, end = 0;
    for (unsigned i = 0; i < s->nfree && !msg; i++) {
        const ca_source_file_extent *e = &s->free[i];
        if (e->size == 0 || e->off % s->base.granule || e->size % s->base.granule)
            msg = "file source: free extent empty or unaligned";
        else if (i > 0 && e->off <= end)
            msg = "file source: free extents unsorted, overlapping or not merged";
        else if (e->off + e->size >= s->top)
            msg = "file source: free extent reaches the top";
        end = e->off + e->size;
        free_bytes += e->size;
    }
    if (!msg && s->top > s->capacity)
        msg = "file source: top beyond the capacity";
    if (!msg && totals && free_bytes + s->lost + bytes != s->top)
        msg = "file source: free + lost + recorded bytes differ from the top";
    (void)ca_mutex_unlock_ranked(&s->mutex, CA_LOCK_RANK_SOURCE_FILE);
    return msg;
}
