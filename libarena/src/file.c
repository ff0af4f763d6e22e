/* SPDX-License-Identifier: MIT */
/*
 * libarena files: the on-disk header (two checksummed copies and a state
 * word, layout in arena_internal.h), create, open with full validation and
 * recovery, flush, and the DIRTY mark that protects the recorded free list.
 *
 * Why this is safe after a crash at any point:
 *   - flush syncs the data first, then writes WRITING(seq+1), the copy of
 *     seq+1 into the slot of seq-1, and CLEAN(seq+1), syncing each step. A
 *     torn copy is only ever the one the state word says is being written.
 *   - a block allocated and written before a flush is never touched again
 *     unless the program frees it: the cursor of the last flush covers it.
 *   - free-list nodes change only after the state word says DIRTY (marked
 *     once per flush period, under file_lock, before the first change), so
 *     a recorded free list is used only when the state word is CLEAN (or
 *     WRITING with the new copy complete). Otherwise its bytes are counted
 *     as discarded: never reused, never trusted.
 *   - a CLEAN(seq) or DIRTY(seq) word is stored only while the copies of
 *     seq and seq - 1 are both intact (what validation asks of them). An
 *     open that finds the list untrusted (DIRTY, or WRITING over a torn copy,
 *     whose slot is then the only one not intact) starts with the arena
 *     marked dirty, so the next state word it stores is write_header's
 *     WRITING, which rewrites that slot.
 * Concurrency: mark_dirty and write_header serialise on file_lock; flush
 * holds the free-list token, so no node changes while a copy is written.
 * Read first: ca_arena_open_file, then ca_arena__validate_page.
 */
#include <ctxalloc/source.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "arena_internal.h"

#define MASK29 ((1ull << 29) - 1)

uint64_t ca_arena__checksum(const ca_arena__disk *d)
{
    const unsigned char *p = (const unsigned char *)d;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < offsetof(ca_arena__disk, checksum); i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

uint64_t ca_arena__state_word(uint64_t seq, unsigned phase)
{
    uint32_t x = (uint32_t)(((seq & MASK29) << 3) | phase);
    return (uint64_t)x | (uint64_t)(uint32_t)~x << 32;
}

bool ca_arena__state_decode(uint64_t w, uint64_t *seq_low, unsigned *phase)
{
    uint32_t x = (uint32_t)w, y = (uint32_t)(w >> 32);
    if (y != (uint32_t)~x || (x & 7) > CA_ARENA__WRITING)
        return false;
    *seq_low = x >> 3;
    *phase = x & 7;
    return true;
}

void ca_arena__disk_fill(const ca_arena *a, ca_arena__disk *d, uint64_t cursor, uint64_t head, uint64_t seq)
{
    memset(d, 0, sizeof *d);
    memcpy(d->magic, CA_ARENA__MAGIC, 8);
    d->layout_version = CA_ARENA_LAYOUT_VERSION;
    d->user_version = a->user_version;
    d->freelist = ca_arena__kind_to_disk(a->kind);
    d->offset_bits = a->wide ? 64 : 32;
    d->capacity = a->capacity;
    d->user_size = a->user_size;
    d->data_off = a->data_off;
    d->min_segment = a->min_segment;
    d->cursor = cursor;
    d->free_head = head;
    d->seq = seq;
}

static void state_store(ca_arena *a, uint64_t w)
{
    uint64_t *p = (void *)(a->mem + CA_ARENA__STATE);
    __atomic_store_n(p, w, __ATOMIC_RELEASE);
}

static int sync_header(ca_arena *a) { return ca_os_sync(a->mem, CA_ARENA_HEADER_SIZE, MS_SYNC); }

void ca_arena__mark_dirty(ca_arena *a)
{
    if (a->backing != CA_ARENA__BACK_FILE || a->mode != CA_ARENA_READ_WRITE)
        return;
    if (__atomic_load_n(&a->dirty, __ATOMIC_ACQUIRE))
        return;
    ca_arena__lock(&a->file_lock, CA_LOCK_RANK_ARENA_FILE);
    if (!a->dirty) {
        state_store(a, ca_arena__state_word(a->seq, CA_ARENA__DIRTY));
        sync_header(a); /* a failure leaves the mark in the page cache: still seen after a crash */
        __atomic_store_n(&a->dirty, 1, __ATOMIC_RELEASE);
    }
    ca_arena__unlock(&a->file_lock, CA_LOCK_RANK_ARENA_FILE);
}

int ca_arena__write_header(ca_arena *a, uint64_t head, uint64_t sync_off, uint64_t sync_size, const uint64_t *tag)
{
    int err = 0;
    ca_arena__lock(&a->file_lock, CA_LOCK_RANK_ARENA_FILE);
    if (sync_size) {
        size_t pg = ca_page_size();
        uint64_t s = ca_align_down((size_t)sync_off, pg);
        uint64_t e = ca_align_up((size_t)(sync_off + sync_size), pg);
        if (e > a->capacity)
            e = a->capacity;
        err = ca_os_sync(a->mem + s, (size_t)(e - s), MS_SYNC);
    }
    if (!err) {
        /* The list is quiet (token held): count it rather than trusting
         * counters that a pop finishing its bookkeeping may still change. */
        uint64_t fb = 0, fc = 0;
        for (uint64_t x = head; x; fc++) {
            uint64_t sz, next;
            ca_arena__node_get(a, x, &sz, &next);
            fb += sz;
            x = next;
        }
        uint64_t disc = __atomic_load_n(&a->discarded, __ATOMIC_ACQUIRE);
        uint64_t cur = __atomic_load_n(&a->cursor, __ATOMIC_ACQUIRE);
        uint64_t seq = a->seq + 1;
        ca_arena__disk d;
        ca_arena__disk_fill(a, &d, cur, head, seq);
        d.free_bytes = fb;
        d.free_count = fc;
        d.discarded = disc;
        d.commit_tag = tag ? *tag : a->commit_tag;
        d.checksum = ca_arena__checksum(&d);
        state_store(a, ca_arena__state_word(seq, CA_ARENA__WRITING));
        err = sync_header(a);
        if (!err) {
            memcpy(a->mem + ((seq & 1) ? CA_ARENA__COPY1 : CA_ARENA__COPY0), &d, sizeof d);
            err = sync_header(a);
        }
        if (!err) {
            state_store(a, ca_arena__state_word(seq, CA_ARENA__CLEAN));
            err = sync_header(a);
        }
        if (!err) {
            a->seq = seq;
            a->commit_tag = d.commit_tag;
            __atomic_store_n(&a->dirty, 0, __ATOMIC_RELEASE);
            __atomic_fetch_add(&a->flushes, 1, __ATOMIC_RELAXED);
        }
    }
    ca_arena__unlock(&a->file_lock, CA_LOCK_RANK_ARENA_FILE);
    return err;
}

static int flush_impl(ca_arena *a, uint64_t off, uint64_t size, bool all, const uint64_t *tag)
{
    if (a->backing != CA_ARENA__BACK_FILE)
        return 0;
    if (a->mode != CA_ARENA_READ_WRITE)
        return EROFS;
    ca_arena__tw held;
    ca_arena__token_take(a, 0, &held);
    /* the shared bins live in the process only: the header records them in
     * the list */
    uint64_t head = ca_arena__fold_bins(a, ca_arena__drain_pending(a, held.off));
    if (all) {
        off = 0;
        size = __atomic_load_n(&a->cursor, __ATOMIC_ACQUIRE);
    }
    int err = ca_arena__write_header(a, head, off, size, tag);
    ca_arena__token_release(a, held, head);
    return err;
}

int ca_arena_flush(ca_arena *a) { return flush_impl(a, 0, 0, true, NULL); }

int ca_arena_flush_tag(ca_arena *a, uint64_t tag) { return flush_impl(a, 0, 0, true, &tag); }

/* A field of a's that write_header changes, read under file_lock (a lock
 * is not part of the value const protects). */
static uint64_t file_field(const ca_arena *a, const uint64_t *field)
{
    ca_arena *m = (ca_arena *)(uintptr_t)a;
    ca_arena__lock(&m->file_lock, CA_LOCK_RANK_ARENA_FILE);
    uint64_t v = *field;
    ca_arena__unlock(&m->file_lock, CA_LOCK_RANK_ARENA_FILE);
    return v;
}

uint64_t ca_arena_flush_seq(const ca_arena *a) { return file_field(a, &a->seq); }

uint64_t ca_arena_commit_tag(const ca_arena *a) { return file_field(a, &a->commit_tag); }

int ca_arena_flush_range(ca_arena *a, uint64_t off, size_t size)
{
    size_t end;
    if (ca_add_overflows((size_t)off, size, &end) || end > a->capacity)
        return EINVAL;
    return flush_impl(a, off, size, false, NULL);
}

/* ------------------------------------------------------------------------
 * Validation
 * ------------------------------------------------------------------------ */

static bool copy_ok(const ca_arena__disk *c, unsigned slot)
{
    return memcmp(c->magic, CA_ARENA__MAGIC, 8) == 0 && ca_arena__checksum(c) == c->checksum &&
           (c->seq & 1) == slot;
}

static ca_arena_error check_fields(const ca_arena__disk *d, uint64_t file_size)
{
    size_t doff;
    if (d->freelist > CA_ARENA__DISK_PESSIMISTIC || (d->offset_bits != 32 && d->offset_bits != 64))
        return CA_ARENA_E_FIELD;
    if (d->reserved)
        return CA_ARENA_E_FIELD;
    if (d->user_size > d->capacity || ca_add_overflows(CA_ARENA_HEADER_SIZE, (size_t)d->user_size, &doff) ||
        ca_align_up_overflows(doff, CA_ARENA__DATA_ALIGN, &doff) || d->data_off != doff)
        return CA_ARENA_E_FIELD;
    if (d->capacity % CA_PAGE_SIZE_MIN || d->capacity <= d->data_off || d->capacity > (UINT64_MAX >> 2) ||
        (d->offset_bits == 32 && d->capacity > CA_ARENA_MAX_CAPACITY_32))
        return CA_ARENA_E_FIELD;
    if (d->cursor < d->data_off || d->cursor > d->capacity || d->cursor % CA_ARENA_GRAIN)
        return CA_ARENA_E_FIELD;
    if (d->min_segment < CA_ARENA_GRAIN || d->min_segment % CA_ARENA_GRAIN)
        return CA_ARENA_E_FIELD;
    if (d->free_bytes > d->cursor - d->data_off || d->discarded > d->cursor - d->data_off - d->free_bytes)
        return CA_ARENA_E_FIELD;
    if ((d->free_head == 0) != (d->free_count == 0) || (d->freelist == CA_ARENA__DISK_NONE && d->free_head))
        return CA_ARENA_E_FIELD;
    if (file_size < d->capacity)
        return CA_ARENA_E_TRUNCATED;
    return CA_ARENA_OK;
}

ca_arena_error ca_arena__validate_page(const unsigned char *page, uint64_t file_size, ca_arena__disk *d,
                                       bool *trust_list, bool *clean)
{
    ca_arena__disk c[2];
    memcpy(&c[0], page + CA_ARENA__COPY0, sizeof c[0]);
    memcpy(&c[1], page + CA_ARENA__COPY1, sizeof c[1]);
    bool magic[2], any_v1 = false;
    for (int i = 0; i < 2; i++) {
        magic[i] = memcmp(c[i].magic, CA_ARENA__MAGIC, 8) == 0;
        if (magic[i] && c[i].layout_version == CA_ARENA_LAYOUT_VERSION)
            any_v1 = true;
    }
    if (!magic[0] && !magic[1])
        return CA_ARENA_E_MAGIC;
    if (!any_v1)
        return CA_ARENA_E_LAYOUT_VERSION;
    uint64_t sw, sseq;
    unsigned phase;
    memcpy(&sw, page + CA_ARENA__STATE, sizeof sw);
    if (!ca_arena__state_decode(sw, &sseq, &phase))
        return CA_ARENA_E_STATE;
    for (size_t i = 0; i < CA_ARENA_HEADER_SIZE; i++) {
        if (i < CA_ARENA__COPY0 + sizeof(ca_arena__disk) ||
            (i >= CA_ARENA__COPY1 && i < CA_ARENA__COPY1 + sizeof(ca_arena__disk)) ||
            (i >= CA_ARENA__STATE && i < CA_ARENA__STATE + 8))
            continue;
        if (page[i])
            return CA_ARENA_E_RESERVED;
    }
    unsigned cur = (unsigned)(sseq & 1), oth = cur ^ 1;
    bool ok_cur = copy_ok(&c[cur], cur) && (c[cur].seq & MASK29) == sseq;
    bool ok_oth = copy_ok(&c[oth], oth) && ((c[oth].seq + 1) & MASK29) == sseq;
    const ca_arena__disk *use;
    if (phase == CA_ARENA__WRITING) {
        if (ok_cur) {
            use = &c[cur]; /* the write completed; only CLEAN was missing */
            *trust_list = true;
        } else if (ok_oth) {
            use = &c[oth]; /* torn write of the new copy: the previous one holds */
            *trust_list = false;
        } else {
            return CA_ARENA_E_CHECKSUM;
        }
        *clean = false;
    } else {
        if (!ok_cur || !ok_oth)
            return CA_ARENA_E_CHECKSUM;
        use = &c[cur];
        *trust_list = phase == CA_ARENA__CLEAN;
        *clean = phase == CA_ARENA__CLEAN;
    }
    if (use->layout_version != CA_ARENA_LAYOUT_VERSION)
        return CA_ARENA_E_LAYOUT_VERSION;
    ca_arena_error e = check_fields(use, file_size);
    if (e != CA_ARENA_OK)
        return e;
    *d = *use;
    return CA_ARENA_OK;
}

typedef struct span {
    uint64_t off, size;
} span;

static int span_cmp(const void *x, const void *y)
{
    const span *p = x, *q = y;
    return p->off < q->off ? -1 : p->off > q->off;
}

/* The recorded free list, walked in the mapping: every node checked before
 * it is read. */
static ca_arena_error validate_list(const ca_arena *a, const ca_arena__disk *d)
{
    if (!d->free_count)
        return CA_ARENA_OK;
    span *v = (span *)malloc((size_t)d->free_count * sizeof *v);
    if (!v)
        return CA_ARENA_E_SYSTEM;
    ca_arena_error e = CA_ARENA_OK;
    uint64_t n = 0, bytes = 0, ps = 0, x = d->free_head;
    for (; x && e == CA_ARENA_OK; n++) {
        uint64_t sz, next;
        if (n >= d->free_count || x < a->data_off || x % CA_ARENA_GRAIN || x >= d->cursor) {
            e = CA_ARENA_E_FREELIST;
            break;
        }
        ca_arena__node_get(a, x, &sz, &next);
        if (sz < CA_ARENA_GRAIN || sz % CA_ARENA_GRAIN || sz > d->cursor - x)
            e = CA_ARENA_E_FREELIST;
        else if (n && sz != ps && !(a->kind == CA_ARENA_FREELIST_OPTIMISTIC ? ps > sz : ps < sz))
            e = CA_ARENA_E_FREELIST;
        v[n].off = x;
        v[n].size = sz;
        bytes += sz;
        ps = sz;
        x = next;
    }
    if (e == CA_ARENA_OK && (x || n != d->free_count || bytes != d->free_bytes))
        e = CA_ARENA_E_FREELIST;
    if (e == CA_ARENA_OK) {
        qsort(v, (size_t)n, sizeof *v, span_cmp);
        for (uint64_t i = 1; i < n; i++)
            if (v[i - 1].off + v[i - 1].size > v[i].off)
                e = CA_ARENA_E_FREELIST;
    }
    free(v);
    return e;
}

/* ------------------------------------------------------------------------
 * Create / open
 * ------------------------------------------------------------------------ */

/* A refused create or open: *why = e, and the calling thread's message
 * "arena: <op> '<path>': <reason>" (core's ca_last_error). The reason is
 * the text of e, then `detail` when given: the bad option for
 * CA_ARENA_E_OPTIONS; for CA_ARENA_E_SYSTEM it is the failed step and the
 * text of err instead. Returns err. */
static int fail(ca_arena_error *why, ca_arena_error e, int err, const char *op, const char *path,
                const char *detail)
{
    if (why)
        *why = e;
    ca_line *m = ca_core__last_error_path("arena", op, path);
    if (e == CA_ARENA_E_SYSTEM) {
        ca_line_str(m, detail ? detail : "system call");
        ca_line_str(m, ": ");
        ca_line_errno(m, err);
    } else {
        ca_line_str(m, ca_arena_strerror(e));
        if (detail) {
            ca_line_str(m, ": ");
            ca_line_str(m, detail);
        }
    }
    return err;
}

int ca_arena_create_file(ca_arena **out, const char *path, const ca_arena_options *opt, ca_arena_error *why)
{
    if (why)
        *why = CA_ARENA_OK;
    /* Zeros resolved first: the header records the values used. */
    ca_arena_options ro;
    const ca_arena_options *o = &ro;
    uint64_t cap = 0, doff = 0;
    const char *bad = ca_arena__create_layout(opt, &ro, &cap, &doff);
    if (!out || !path)
        bad = !out ? "out is NULL" : "path is NULL";
    if (bad)
        return fail(why, CA_ARENA_E_OPTIONS, EINVAL, "create", path, bad);
    /* The arena is built in a temporary file next to path and linked into
     * place only when complete: a crash inside create never leaves a
     * partial arena at path. */
    if (!(o->flags & CA_ARENA_REPLACE) && access(path, F_OK) == 0)
        return fail(why, CA_ARENA_E_EXISTS, EEXIST, "create", path, "give CA_ARENA_REPLACE to replace it");
    size_t plen = strlen(path);
    char *tmp = (char *)malloc(plen + 8);
    if (!tmp)
        return fail(why, CA_ARENA_E_SYSTEM, ENOMEM, "create", path, "malloc of the temporary name");
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".XXXXXX", 8);
    int err = ca_source_fault_hit(o->fault, CA_SOURCE_FAULT_OPEN, (size_t)cap);
    int fd = -1;
    if (!err && (fd = mkostemp(tmp, O_CLOEXEC)) < 0)
        err = errno;
    if (err) {
        free(tmp);
        return fail(why, CA_ARENA_E_SYSTEM, err, "create", path, "mkostemp of a file beside it");
    }
    void *mem = NULL;
    ca_arena *a = NULL;
    ca_arena_error e = CA_ARENA_E_SYSTEM;
    const char *step = "fallocate";
    err = ca_source_fault_hit(o->fault, CA_SOURCE_FAULT_FALLOCATE, (size_t)cap);
    if (!err)
        err = ca_os_fallocate(fd, CA_OS_FALLOCATE_POSIX, 0, (int64_t)cap);
    if (!err) {
        step = "mmap";
        err = ca_source_fault_hit(o->fault, CA_SOURCE_FAULT_MMAP, (size_t)cap);
    }
    if (!err)
        err = ca_os_map(NULL, (size_t)cap, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0, &mem);
    if (!err && !(a = ca_arena__new(o))) {
        step = "malloc of the arena";
        err = ENOMEM;
    }
    if (!err) {
        step = "msync of the header";
        a->backing = CA_ARENA__BACK_FILE;
        a->fd = fd;
        a->mem = (unsigned char *)mem;
        a->capacity = cap;
        a->data_off = doff;
        a->user_size = o->user_size;
        memset(a->mem, 0, (size_t)doff);
        ca_arena__init_live(a, doff, 0, 0, 0, 0);
        ca_arena__disk d;
        for (uint64_t seq = 0; seq < 2; seq++) {
            ca_arena__disk_fill(a, &d, doff, 0, seq);
            d.checksum = ca_arena__checksum(&d);
            memcpy(a->mem + (seq ? CA_ARENA__COPY1 : CA_ARENA__COPY0), &d, sizeof d);
        }
        a->seq = 1;
        state_store(a, ca_arena__state_word(1, CA_ARENA__CLEAN));
        err = ca_os_sync(a->mem, (size_t)doff, MS_SYNC);
    }
    if (!err) {
        step = o->flags & CA_ARENA_REPLACE ? "rename into place" : "link into place";
        if (o->flags & CA_ARENA_REPLACE) {
            if (rename(tmp, path))
                err = errno;
        } else if (link(tmp, path)) {
            err = errno;
            if (err == EEXIST) {
                e = CA_ARENA_E_EXISTS;
                step = "created by another process meanwhile";
            }
        } else {
            unlink(tmp);
        }
    }
    if (err) {
        if (mem)
            (void)ca_os_unmap(mem, (size_t)cap);
        close(fd);
        unlink(tmp);
        free(tmp);
        if (a)
            ca_arena__delete(a);
        return fail(why, e, err, "create", path, step);
    }
    free(tmp);
    *out = a;
    return 0;
}

int ca_arena_open_file(ca_arena **out, const char *path, ca_arena_mode mode, const ca_arena_options *expect_in,
                       ca_arena_error *why)
{
    if (why)
        *why = CA_ARENA_OK;
    /* Expectations with zeros resolved: NULL and all-zero expect the
     * file's kind and width, user version 0. */
    ca_arena_options ex;
    const ca_arena_options *expect = &ex;
    const char *bad = ca_arena__resolve_options(expect_in, true, &ex);
    if ((unsigned)mode > CA_ARENA_COPY_ON_WRITE)
        bad = "unknown mode";
    if (!out || !path)
        bad = !out ? "out is NULL" : "path is NULL";
    if (bad)
        return fail(why, CA_ARENA_E_OPTIONS, EINVAL, "open", path, bad);
    int err = ca_source_fault_hit(expect->fault, CA_SOURCE_FAULT_OPEN, 0);
    if (err)
        return fail(why, CA_ARENA_E_SYSTEM, err, "open", path, "open");
    int fd = open(path, (mode == CA_ARENA_READ_WRITE ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    if (fd < 0)
        return fail(why, CA_ARENA_E_SYSTEM, errno, "open", path, "open");
    struct stat st;
    ca_arena_error e = CA_ARENA_OK;
    unsigned char *page = NULL;
    ca_arena__disk d;
    bool trust = false, clean = false;
    const char *step = "fstat";
    if (fstat(fd, &st)) {
        err = errno;
        e = CA_ARENA_E_SYSTEM;
    } else if (st.st_size == 0) {
        e = CA_ARENA_E_EMPTY;
    } else if ((uint64_t)st.st_size < CA_ARENA_HEADER_SIZE) {
        e = CA_ARENA_E_SHORT_HEADER;
    } else if (!(page = (unsigned char *)malloc(CA_ARENA_HEADER_SIZE))) {
        err = ENOMEM;
        e = CA_ARENA_E_SYSTEM;
        step = "malloc of the header page";
    } else {
        size_t got = 0;
        step = "pread of the header page";
        while (got < CA_ARENA_HEADER_SIZE) {
            ssize_t k = pread(fd, page + got, CA_ARENA_HEADER_SIZE - got, (off_t)got);
            if (k < 0 && errno == EINTR)
                continue;
            if (k <= 0) {
                err = k < 0 ? errno : EIO;
                e = CA_ARENA_E_SYSTEM;
                break;
            }
            got += (size_t)k;
        }
        if (e == CA_ARENA_OK)
            e = ca_arena__validate_page(page, (uint64_t)st.st_size, &d, &trust, &clean);
        free(page);
    }
    if (e == CA_ARENA_OK) {
        if (d.user_version != expect->user_version)
            e = CA_ARENA_E_USER_VERSION;
        else if (expect->freelist != CA_ARENA_FREELIST_ANY &&
                 ca_arena__kind_from_disk(d.freelist) != expect->freelist)
            e = CA_ARENA_E_FREELIST_KIND;
        else if (expect->offset_bits && d.offset_bits != expect->offset_bits)
            e = CA_ARENA_E_OFFSET_WIDTH;
    }
    if (e != CA_ARENA_OK) {
        close(fd);
        return fail(why, e, e == CA_ARENA_E_SYSTEM ? err : EBADMSG, "open", path,
                    e == CA_ARENA_E_SYSTEM ? step : NULL);
    }
    err = ca_source_fault_hit(expect->fault, CA_SOURCE_FAULT_MMAP, (size_t)d.capacity);
    void *mem = NULL;
    if (!err) {
        int prot = mode == CA_ARENA_READ_ONLY ? PROT_READ : PROT_READ | PROT_WRITE;
        int flags = mode == CA_ARENA_COPY_ON_WRITE ? MAP_PRIVATE : MAP_SHARED;
        err = ca_os_map(NULL, (size_t)d.capacity, prot, flags, fd, 0, &mem);
    }
    ca_arena_options ro = *expect;
    ro.freelist = ca_arena__kind_from_disk(d.freelist);
    ro.offset_bits = d.offset_bits;
    ro.user_version = d.user_version;
    ca_arena *a = NULL;
    step = "mmap";
    if (!err && !(a = ca_arena__new(&ro))) {
        err = ENOMEM;
        step = "malloc of the arena";
    }
    if (err) {
        if (mem)
            (void)ca_os_unmap(mem, (size_t)d.capacity);
        close(fd);
        return fail(why, CA_ARENA_E_SYSTEM, err, "open", path, step);
    }
    a->backing = CA_ARENA__BACK_FILE;
    a->mode = mode;
    a->fd = fd;
    a->mem = (unsigned char *)mem;
    a->capacity = d.capacity;
    a->data_off = d.data_off;
    a->user_size = d.user_size;
    a->seq = d.seq;
    a->commit_tag = d.commit_tag;
    /* An untrusted list (state DIRTY, or WRITING over a torn copy of
     * seq + 1) is already marked on disk, and after a torn write the slot of
     * seq + 1 is not intact: a DIRTY(seq) word now would claim it is, and a
     * crash before write_header rewrites that slot would leave a file that
     * fails its checksum. So the arena starts marked, and the state word
     * stays as it is until the next header write. */
    a->dirty = !trust;
    if (trust && (e = validate_list(a, &d)) != CA_ARENA_OK) {
        (void)ca_os_unmap(mem, (size_t)d.capacity);
        close(fd);
        ca_arena__delete(a);
        return fail(why, e, e == CA_ARENA_E_SYSTEM ? ENOMEM : EBADMSG, "open", path,
                    e == CA_ARENA_E_SYSTEM ? "malloc while checking the free list" : NULL);
    }
    if (trust)
        ca_arena__init_live(a, d.cursor, d.free_head, d.free_bytes, d.free_count, d.discarded);
    else
        ca_arena__init_live(a, d.cursor, 0, 0, 0, d.discarded + d.free_bytes);
    if (mode == CA_ARENA_READ_WRITE && !clean && (err = ca_arena_flush(a)) != 0) {
        (void)ca_os_unmap(mem, (size_t)d.capacity);
        close(fd);
        ca_arena__delete(a);
        return fail(why, CA_ARENA_E_SYSTEM, err, "open", path, "writing a fresh header after an unclean close");
    }
    *out = a;
    return 0;
}
