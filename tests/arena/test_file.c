/* SPDX-License-Identifier: MIT */
/* File-backed arenas: reopen with every allocation intact for each kind and
 * width, read-only and copy-on-write opens, expectation mismatches, the
 * corruption matrix (truncations, every header byte flipped, bad magic, bad
 * version, zero length, damaged free list, out-of-range field), torn header
 * writes (and a read-write recovery from one stopped at each of its syncs),
 * recovery of a file left DIRTY, faults injected through libsource's
 * hooks, and a file written by the previous release. A failed open never
 * modifies the file. */
#include <criterion/criterion.h>
#include <ctxalloc/arena.h>
#include <ctxalloc/source.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "arena_internal.h"
#include "ca_test.h"

static char dir[256];

static void setup(void)
{
    /* CA_TEST_DIR, else /dev/shm (msync is cheap there), else TMPDIR or /tmp */
    const char *t = getenv("CA_TEST_DIR");
    if (!t || !*t)
        t = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/ca-arena-XXXXXX", t && *t ? t : "/tmp");
    cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(arena_file, .init = setup, .fini = teardown);

static const char *path_of(const char *name)
{
    static char p[4][320];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", dir, name);
    return p[k];
}

/* Expectations matching populate(): any kind and width, user version 7. */
static const ca_arena_options *any7(void)
{
    static ca_arena_options e;
    ca_arena_options_init(&e);
    e.freelist = CA_ARENA_FREELIST_ANY;
    e.offset_bits = 0;
    e.user_version = 7;
    return &e;
}

typedef struct blk {
    uint64_t off;
    size_t size;
} blk;

/* A file with allocations (contents derived from the offset), some freed so
 * that there is a free list. Returns the live blocks in *live. */
static int populate(const char *path, int kind, unsigned bits, blk *live, ca_arena_options *out_o)
{
    ca_arena_options o;
    ca_arena_options_init(&o);
    o.freelist = (ca_arena_freelist)kind;
    o.offset_bits = bits;
    o.user_size = 256;
    o.user_version = 7;
    o.capacity = 128u << 10;
    ca_arena *a = NULL;
    ca_arena_error why;
    cr_assert_eq(ca_arena_create_file(&a, path, &o, &why), 0, "%s", ca_arena_strerror(why));
    size_t us;
    unsigned char *u = ca_arena_user_area(a, &us);
    cr_assert_eq(us, 256);
    memset(u, 0x5c, us);
    ca_rng r = {ca_test_seed() + (uint64_t)kind};
    blk all[200];
    for (int i = 0; i < 200; i++) {
        all[i].size = 1 + (size_t)ca_rng_below(&r, 300);
        cr_assert_eq(ca_arena_alloc(a, all[i].size, 16, &all[i].off), 0);
        ca_test_fill(ca_arena_ptr(a, all[i].off), all[i].size, all[i].off);
    }
    int n = 0;
    for (int i = 0; i < 200; i++) {
        if (i % 3 == 1)
            cr_assert_eq(ca_arena_free(a, all[i].off, all[i].size), 0);
        else
            live[n++] = all[i];
    }
    cr_assert_null(ca_arena_check(a));
    cr_assert_eq(ca_arena_close(a), 0);
    if (out_o)
        *out_o = o;
    return n;
}

static void verify(ca_arena *a, const blk *live, int n)
{
    for (int i = 0; i < n; i++)
        cr_assert(ca_test_verify(ca_arena_ptr(a, live[i].off), live[i].size, live[i].off), "block %d at %llu", i,
                  (unsigned long long)live[i].off);
    size_t us;
    unsigned char *u = ca_arena_user_area(a, &us);
    for (size_t i = 0; i < us; i++)
        cr_assert_eq(u[i], 0x5c);
}

static uint64_t ctr(ca_arena *a, const char *name)
{
    ca_stats st;
    uint64_t v = 0;
    ca_arena_stats(a, &st);
    ca_stats_get_counter(&st, name, &v);
    return v;
}

Test(arena_file, reopen_keeps_everything)
{
    for (int k = CA_ARENA_FREELIST_NONE; k <= CA_ARENA_FREELIST_PESSIMISTIC; k++)
        for (unsigned bits = 32; bits <= 64; bits += 32) {
            char name[32];
            snprintf(name, sizeof name, "r%d-%u", k, bits);
            const char *p = path_of(name);
            blk live[200];
            ca_arena_options o;
            int n = populate(p, k, bits, live, &o);
            ca_arena *a = NULL;
            ca_arena_error why;
            ca_arena_options e;
            ca_arena_options_init(&e);
            e.freelist = (ca_arena_freelist)k;
            e.offset_bits = bits;
            e.user_version = 7;
            cr_assert_eq(ca_arena_open_file(&a, p, CA_ARENA_READ_WRITE, &e, &why), 0, "%s", ca_arena_strerror(why));
            cr_assert_null(ca_arena_check(a), "%s", ca_arena_check(a));
            verify(a, live, n);
            cr_assert_eq(ca_arena_offset_bits(a), bits);
            if (k != CA_ARENA_FREELIST_NONE)
                cr_assert_gt(ctr(a, "free_segments"), 0, "free list recovered");
            /* reuse works after reopen */
            uint64_t x;
            cr_assert_eq(ca_arena_alloc(a, 40, 16, &x), 0);
            cr_assert_null(ca_arena_check(a));
            cr_assert_eq(ca_arena_free(a, x, 40), 0);
            uint64_t seq = ca_arena_flush_seq(a);
            cr_assert_eq(ca_arena_flush(a), 0);
            cr_assert_eq(ca_arena_flush_seq(a), seq + 1);
            cr_assert_eq(ca_arena_close(a), 0);
            cr_assert_eq(ca_arena_open_file(&a, p, CA_ARENA_READ_ONLY, any7(), &why), 0, "%s", ca_arena_strerror(why));
            verify(a, live, n);
            cr_assert_null(ca_arena_check(a));
            ca_arena_close(a);
        }
}

static uint64_t file_hash(const char *p)
{
    static uint64_t buf[8192];
    int fd = open(p, O_RDONLY);
    uint64_t h = 1469598103934665603ull;
    ssize_t k;
    cr_assert_geq(fd, 0);
    while ((k = read(fd, buf, sizeof buf)) > 0) {
        memset((char *)buf + k, 0, (size_t)(-k & 7));
        for (ssize_t i = 0; i < (k + 7) / 8; i++)
            h = (h ^ buf[i]) * 1099511628211ull;
        h += (uint64_t)k;
    }
    close(fd);
    return h;
}

Test(arena_file, read_only_refuses_writes)
{
    const char *p = path_of("ro");
    blk live[200];
    int n = populate(p, CA_ARENA_FREELIST_OPTIMISTIC, 64, live, NULL);
    uint64_t h = file_hash(p);
    ca_arena *a = NULL;
    cr_assert_eq(ca_arena_open_file(&a, p, CA_ARENA_READ_ONLY, any7(), NULL), 0);
    cr_assert(ca_arena_read_only(a));
    uint64_t x;
    cr_assert_eq(ca_arena_alloc(a, 16, 16, &x), EROFS);
    cr_assert_eq(ca_arena_free(a, live[0].off, live[0].size), EROFS);
    cr_assert_eq(ca_arena_compact(a), EROFS);
    cr_assert_eq(ca_arena_reset(a), EROFS);
    cr_assert_eq(ca_arena_flush(a), EROFS);
    errno = 0;
    cr_assert_null(ca_alloc(ca_arena_allocator(a), 16, 16));
    cr_assert_eq(errno, EROFS);
    verify(a, live, n);
    ca_stats st;
    ca_arena_stats(a, &st);
    cr_assert_gt(st.bytes_in_use, 0);
    cr_assert_eq(ca_arena_close(a), 0);
    cr_assert_eq(file_hash(p), h, "read-only open changed the file");
}

Test(arena_file, copy_on_write_leaves_file)
{
    const char *p = path_of("cow");
    blk live[200];
    int n = populate(p, CA_ARENA_FREELIST_PESSIMISTIC, 32, live, NULL);
    uint64_t h = file_hash(p);
    ca_arena *a = NULL;
    cr_assert_eq(ca_arena_open_file(&a, p, CA_ARENA_COPY_ON_WRITE, any7(), NULL), 0);
    for (int i = 0; i < 20; i++) {
        cr_assert_eq(ca_arena_free(a, live[i].off, live[i].size), 0);
        uint64_t x;
        cr_assert_eq(ca_arena_alloc(a, 64, 16, &x), 0);
        memset(ca_arena_ptr(a, x), 0xee, 64);
    }
    cr_assert_null(ca_arena_check(a));
    cr_assert_eq(ca_arena_flush(a), EROFS);
    cr_assert_eq(ca_arena_close(a), 0);
    cr_assert_eq(file_hash(p), h, "copy-on-write changed the file");
    cr_assert_eq(ca_arena_open_file(&a, p, CA_ARENA_READ_ONLY, any7(), NULL), 0);
    verify(a, live, n);
    ca_arena_close(a);
}

Test(arena_file, create_refuses_existing_and_bad_args)
{
    const char *p = path_of("ex");
    ca_arena *a = NULL;
    ca_arena_error why;
    cr_assert_eq(ca_arena_create_file(&a, p, NULL, &why), 0);
    ca_arena_close(a);
    cr_assert_eq(ca_arena_create_file(&a, p, NULL, &why), EEXIST);
    cr_assert_eq(why, CA_ARENA_E_EXISTS);
    ca_arena_options o;
    ca_arena_options_init(&o);
    o.flags = CA_ARENA_REPLACE;
    cr_assert_eq(ca_arena_create_file(&a, p, &o, &why), 0);
    ca_arena_close(a);
    o.offset_bits = 7;
    cr_assert_eq(ca_arena_create_file(&a, p, &o, &why), EINVAL);
    cr_assert_eq(why, CA_ARENA_E_OPTIONS);
    cr_assert_eq(ca_arena_open_file(&a, path_of("missing"), CA_ARENA_READ_ONLY, NULL, &why), ENOENT);
    cr_assert_eq(why, CA_ARENA_E_SYSTEM);
    cr_assert_eq(ca_arena_open_file(&a, p, (ca_arena_mode)9, NULL, &why), EINVAL);
}

static ca_arena_error open_err(const char *p, const ca_arena_options *e)
{
    ca_arena *a = NULL;
    ca_arena_error why = CA_ARENA_OK;
    uint64_t h = file_hash(p);
    int err = ca_arena_open_file(&a, p, CA_ARENA_READ_WRITE, e, &why);
    if (!err) {
        ca_arena_close(a);
        return CA_ARENA_OK;
    }
    cr_assert_eq(err, why == CA_ARENA_E_SYSTEM ? err : EBADMSG);
    cr_assert_eq(file_hash(p), h, "a failed open changed the file");
    return why;
}

Test(arena_file, expectation_mismatches)
{
    const char *p = path_of("exp");
    blk live[200];
    populate(p, CA_ARENA_FREELIST_OPTIMISTIC, 64, live, NULL);
    ca_arena_options e;
    ca_arena_options_init(&e);
    e.freelist = CA_ARENA_FREELIST_ANY;
    e.offset_bits = 0;
    e.user_version = 8;
    cr_assert_eq(open_err(p, &e), CA_ARENA_E_USER_VERSION);
    e.user_version = 7;
    e.freelist = CA_ARENA_FREELIST_PESSIMISTIC;
    cr_assert_eq(open_err(p, &e), CA_ARENA_E_FREELIST_KIND);
    e.freelist = CA_ARENA_FREELIST_OPTIMISTIC;
    e.offset_bits = 32;
    cr_assert_eq(open_err(p, &e), CA_ARENA_E_OFFSET_WIDTH);
    e.offset_bits = 64;
    cr_assert_eq(open_err(p, &e), CA_ARENA_OK);
}

static void copy_file(const char *from, const char *to)
{
    char cmd[700];
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", from, to);
    cr_assert_eq(system(cmd), 0);
}

static void poke(const char *p, off_t at, const void *bytes, size_t n)
{
    int fd = open(p, O_RDWR);
    cr_assert_geq(fd, 0);
    cr_assert_eq(pwrite(fd, bytes, n, at), (ssize_t)n);
    close(fd);
}

static void peek(const char *p, off_t at, void *bytes, size_t n)
{
    int fd = open(p, O_RDONLY);
    cr_assert_eq(pread(fd, bytes, n, at), (ssize_t)n);
    close(fd);
}

static void set_truncate(const char *p, off_t len) { cr_assert_eq(truncate(p, len), 0); }

Test(arena_file, corruption_matrix)
{
    const char *good = path_of("good");
    const char *bad = path_of("bad");
    blk live[200];
    ca_arena_options o;
    populate(good, CA_ARENA_FREELIST_PESSIMISTIC, 64, live, &o);
    ca_arena_options e;
    ca_arena_options_init(&e);
    e.freelist = CA_ARENA_FREELIST_ANY;
    e.offset_bits = 0;
    e.user_version = 7;

    /* truncations */
    copy_file(good, bad);
    set_truncate(bad, 0);
    cr_assert_eq(open_err(bad, &e), CA_ARENA_E_EMPTY);
    copy_file(good, bad);
    set_truncate(bad, 100);
    cr_assert_eq(open_err(bad, &e), CA_ARENA_E_SHORT_HEADER);
    copy_file(good, bad);
    set_truncate(bad, 4000);
    cr_assert_eq(open_err(bad, &e), CA_ARENA_E_SHORT_HEADER);
    copy_file(good, bad);
    set_truncate(bad, (off_t)o.capacity - 4096);
    cr_assert_eq(open_err(bad, &e), CA_ARENA_E_TRUNCATED);
    copy_file(good, bad);
    set_truncate(bad, 8192);
    cr_assert_eq(open_err(bad, &e), CA_ARENA_E_TRUNCATED);

    /* every byte of the header page flipped */
    unsigned char page[4096];
    peek(good, 0, page, sizeof page);
    copy_file(good, bad);
    for (size_t i = 0; i < sizeof page; i++) {
        unsigned char b = (unsigned char)(page[i] ^ 0xff);
        poke(bad, (off_t)i, &b, 1);
        ca_arena_error want = CA_ARENA_E_RESERVED;
        if (i < 128 || (i >= 512 && i < 640))
            want = CA_ARENA_E_CHECKSUM;
        else if (i >= 1024 && i < 1032)
            want = CA_ARENA_E_STATE;
        ca_arena_error got = open_err(bad, &e);
        cr_assert_eq(got, want, "byte %zu: %s, want %s", i, ca_arena_strerror(got), ca_arena_strerror(want));
        poke(bad, (off_t)i, &page[i], 1);
    }
    cr_assert_eq(open_err(bad, &e), CA_ARENA_OK);

    /* bad magic in both copies */
    copy_file(good, bad);
    poke(bad, 0, "NOTARENA", 8);
    poke(bad, 512, "NOTARENA", 8);
    cr_assert_eq(open_err(bad, &e), CA_ARENA_E_MAGIC);
    /* a future layout version in both copies */
    copy_file(good, bad);
    uint32_t v2 = 2;
    poke(bad, 8, &v2, 4);
    poke(bad, 512 + 8, &v2, 4);
    cr_assert_eq(open_err(bad, &e), CA_ARENA_E_LAYOUT_VERSION);
    /* a zero-filled file of the right size */
    copy_file(good, bad);
    unsigned char zero[4096] = {0};
    poke(bad, 0, zero, sizeof zero);
    cr_assert_eq(open_err(bad, &e), CA_ARENA_E_MAGIC);

    /* a field out of range with valid checksums */
    copy_file(good, bad);
    uint64_t sw;
    memcpy(&sw, page + CA_ARENA__STATE, 8);
    uint64_t seq;
    unsigned phase;
    cr_assert(ca_arena__state_decode(sw, &seq, &phase));
    unsigned slot = (unsigned)(seq & 1);
    ca_arena__disk d;
    memcpy(&d, page + (slot ? CA_ARENA__COPY1 : CA_ARENA__COPY0), sizeof d);
    ca_arena__disk dd = d;
    dd.cursor = dd.capacity + 16;
    dd.checksum = ca_arena__checksum(&dd);
    poke(bad, slot ? CA_ARENA__COPY1 : CA_ARENA__COPY0, &dd, sizeof dd);
    cr_assert_eq(open_err(bad, &e), CA_ARENA_E_FIELD);

    /* a damaged free list: the first node's size made to overlap */
    copy_file(good, bad);
    cr_assert_neq(d.free_head, 0);
    uint64_t node[2];
    peek(bad, (off_t)d.free_head, node, sizeof node);
    node[0] = d.cursor; /* beyond the cursor */
    poke(bad, (off_t)d.free_head, node, sizeof node);
    cr_assert_eq(open_err(bad, &e), CA_ARENA_E_FREELIST);
    copy_file(good, bad);
    node[0] = 16;
    node[1] = d.free_head; /* a cycle */
    peek(bad, (off_t)d.free_head, node, 8);
    node[1] = d.free_head;
    poke(bad, (off_t)d.free_head, node, sizeof node);
    cr_assert_eq(open_err(bad, &e), CA_ARENA_E_FREELIST);
}

Test(arena_file, torn_header_write_recovers_previous_copy)
{
    const char *good = path_of("tgood");
    const char *bad = path_of("tbad");
    blk live[200];
    int n = populate(good, CA_ARENA_FREELIST_OPTIMISTIC, 64, live, NULL);
    unsigned char page[4096];
    peek(good, 0, page, sizeof page);
    uint64_t sw, seq;
    unsigned phase;
    memcpy(&sw, page + CA_ARENA__STATE, 8);
    cr_assert(ca_arena__state_decode(sw, &seq, &phase));
    cr_assert_eq(phase, CA_ARENA__CLEAN);
    unsigned next_slot = (unsigned)((seq + 1) & 1);
    off_t at = next_slot ? CA_ARENA__COPY1 : CA_ARENA__COPY0;

    /* WRITING with half of the new copy garbage: the previous copy is used,
     * its free list is not trusted (counted as discarded). */
    copy_file(good, bad);
    uint64_t w = ca_arena__state_word(seq + 1, CA_ARENA__WRITING);
    poke(bad, CA_ARENA__STATE, &w, 8);
    unsigned char junk[64];
    memset(junk, 0xa5, sizeof junk);
    poke(bad, at + 64, junk, sizeof junk);
    uint64_t h = file_hash(bad);
    ca_arena *a = NULL;
    ca_arena_error why;
    cr_assert_eq(ca_arena_open_file(&a, bad, CA_ARENA_READ_ONLY, any7(), &why), 0, "%s", ca_arena_strerror(why));
    cr_assert_eq(ca_arena_flush_seq(a), seq);
    cr_assert_eq(ctr(a, "free_segments"), 0);
    cr_assert_gt(ctr(a, "discarded"), 0);
    cr_assert_null(ca_arena_check(a));
    verify(a, live, n);
    ca_arena_close(a);
    cr_assert_eq(file_hash(bad), h);
    /* read-write: recovered and rewritten clean at once */
    cr_assert_eq(ca_arena_open_file(&a, bad, CA_ARENA_READ_WRITE, any7(), &why), 0);
    ca_arena_close(a);
    cr_assert_eq(open_err(bad, any7()), CA_ARENA_OK);

    /* WRITING with the new copy complete: it is used with its free list. */
    copy_file(good, bad);
    ca_arena__disk d;
    memcpy(&d, page + (next_slot ? CA_ARENA__COPY0 : CA_ARENA__COPY1), sizeof d);
    d.seq = seq + 1;
    d.checksum = ca_arena__checksum(&d);
    poke(bad, at, &d, sizeof d);
    poke(bad, CA_ARENA__STATE, &w, 8);
    cr_assert_eq(ca_arena_open_file(&a, bad, CA_ARENA_READ_ONLY, any7(), &why), 0, "%s", ca_arena_strerror(why));
    cr_assert_eq(ca_arena_flush_seq(a), seq + 1);
    cr_assert_gt(ctr(a, "free_segments"), 0);
    verify(a, live, n);
    ca_arena_close(a);

    /* WRITING and both copies bad: an error. */
    poke(bad, at + 64, junk, sizeof junk);
    poke(bad, (next_slot ? CA_ARENA__COPY0 : CA_ARENA__COPY1) + 8, junk, 4);
    cr_assert_eq(open_err(bad, any7()), CA_ARENA_E_CHECKSUM);
}

/* A read-write open recovering from a torn header write stops at each of
 * its syncs in turn (an injected msync failure stands for a crash there:
 * everything written before it is in the file). Whatever the step, the
 * file still opens and holds the flushed blocks. The torn copy's slot
 * stays out of every state word but WRITING until the recovery rewrites it:
 * a DIRTY or CLEAN word there would claim it intact. */
Test(arena_file, recovery_from_a_torn_write_stopped_at_each_step)
{
    const char *good = path_of("rgood");
    const char *bad = path_of("rbad");
    blk live[200];
    int n = populate(good, CA_ARENA_FREELIST_OPTIMISTIC, 64, live, NULL);
    unsigned char page[4096];
    peek(good, 0, page, sizeof page);
    uint64_t sw, seq;
    unsigned phase;
    memcpy(&sw, page + CA_ARENA__STATE, 8);
    cr_assert(ca_arena__state_decode(sw, &seq, &phase));
    off_t at = ((seq + 1) & 1) ? CA_ARENA__COPY1 : CA_ARENA__COPY0;
    uint64_t w = ca_arena__state_word(seq + 1, CA_ARENA__WRITING);
    unsigned char junk[64];
    memset(junk, 0xa5, sizeof junk);
    bool completed = false;
    for (uint64_t step = 1; !completed && step < 16; step++) {
        copy_file(good, bad);
        poke(bad, CA_ARENA__STATE, &w, 8);
        poke(bad, at + 64, junk, sizeof junk);
        ca_fault f;
        ca_fault_init(&f, CA_OS_SYNC, step, 0, EIO); /* this sync and every later one fail */
        ca_fault *old = ca_os_set_fault(&f);
        ca_arena *a = NULL;
        ca_arena_error why = CA_ARENA_OK;
        int err = ca_arena_open_file(&a, bad, CA_ARENA_READ_WRITE, any7(), &why);
        ca_os_set_fault(old);
        if (err == 0) {
            completed = true; /* no sync failed: the recovery went through */
            cr_assert_eq(f.injected, 0);
            ca_arena_close(a);
        } else {
            cr_assert_eq(err, EIO, "step %llu: %s", (unsigned long long)step, ca_arena_strerror(why));
        }
        a = NULL;
        cr_assert_eq(ca_arena_open_file(&a, bad, CA_ARENA_READ_ONLY, any7(), &why), 0,
                     "stopped at sync %llu: %s", (unsigned long long)step, ca_arena_strerror(why));
        cr_assert_null(ca_arena_check(a));
        verify(a, live, n);
        ca_arena_close(a);
        cr_assert_eq(ca_arena_open_file(&a, bad, CA_ARENA_READ_WRITE, any7(), &why), 0,
                     "stopped at sync %llu, then read-write: %s", (unsigned long long)step, ca_arena_strerror(why));
        verify(a, live, n);
        ca_arena_close(a);
    }
    cr_assert(completed, "the recovery needs more than 15 syncs");
}

Test(arena_file, dirty_file_drops_free_list_keeps_flushed_data)
{
    const char *p = path_of("dirty");
    blk live[200];
    int n = populate(p, CA_ARENA_FREELIST_OPTIMISTIC, 64, live, NULL);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        ca_arena *a = NULL;
        if (ca_arena_open_file(&a, p, CA_ARENA_READ_WRITE, any7(), NULL))
            _exit(2);
        for (int i = 0; i < 50; i++) { /* pops free segments and scribbles on them */
            uint64_t x;
            if (ca_arena_alloc(a, 16, 16, &x))
                break;
            memset(ca_arena_ptr(a, x), 0xdd, 16);
        }
        _exit(0); /* no close, no flush: a crash */
    }
    int st;
    waitpid(pid, &st, 0);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    ca_arena *a = NULL;
    ca_arena_error why;
    cr_assert_eq(ca_arena_open_file(&a, p, CA_ARENA_READ_WRITE, any7(), &why), 0, "%s", ca_arena_strerror(why));
    cr_assert_eq(ctr(a, "free_segments"), 0, "a free list changed after the flush is not trusted");
    cr_assert_null(ca_arena_check(a), "%s", ca_arena_check(a));
    verify(a, live, n);
    ca_arena_close(a);
}

Test(arena_file, faults_injected_through_libsource_hooks)
{
    long fds = ca_test_count_fds();
    ca_source_fault f;
    ca_arena_options o;
    ca_arena *a = NULL;
    ca_arena_error why;
    unsigned points[] = {CA_SOURCE_FAULT_OPEN, CA_SOURCE_FAULT_FALLOCATE, CA_SOURCE_FAULT_MMAP};
    for (int i = 0; i < 3; i++) {
        ca_source_fault_init(&f, points[i], 1, 1, ENOSPC);
        ca_arena_options_init(&o);
        o.fault = &f;
        cr_assert_eq(ca_arena_create_file(&a, path_of("fault"), &o, &why), ENOSPC);
        cr_assert_eq(why, CA_ARENA_E_SYSTEM);
        cr_assert_eq(access(path_of("fault"), F_OK), -1, "failed create left the file");
        cr_assert_eq(ca_test_count_fds(), fds);
    }
    cr_assert_eq(ca_arena_create_file(&a, path_of("fault"), NULL, &why), 0);
    ca_arena_close(a);
    uint64_t h = file_hash(path_of("fault"));
    for (int i = 0; i < 3; i += 2) {
        ca_source_fault_init(&f, points[i], 1, 1, EIO);
        ca_arena_options_init(&o);
        o.freelist = CA_ARENA_FREELIST_ANY;
        o.fault = &f;
        cr_assert_eq(ca_arena_open_file(&a, path_of("fault"), CA_ARENA_READ_WRITE, &o, &why), EIO);
        cr_assert_eq(ca_test_count_fds(), fds);
        cr_assert_eq(file_hash(path_of("fault")), h);
    }
    /* memory arenas: the default source fails as the OS would */
    ca_source_fault_init(&f, CA_SOURCE_FAULT_OBTAIN, 1, 1, ENOMEM);
    ca_arena_options_init(&o);
    o.fault = &f;
    cr_assert_eq(ca_arena_create(&a, &o), ENOMEM);
    o.backing = CA_ARENA_BACKING_ANON;
    ca_source_fault_init(&f, CA_SOURCE_FAULT_MMAP, 1, 1, ENOMEM);
    cr_assert_eq(ca_arena_create(&a, &o), ENOMEM);
    cr_assert_eq(ca_arena_create(&a, &o), 0); /* the plan failed only once */
    ca_arena_close(a);
}

Test(arena_file, flush_range_and_anon_backing)
{
    ca_arena *a = NULL;
    cr_assert_eq(ca_arena_create_file(&a, path_of("fr"), NULL, NULL), 0);
    uint64_t x;
    cr_assert_eq(ca_arena_alloc(a, 100, 16, &x), 0);
    memset(ca_arena_ptr(a, x), 3, 100);
    cr_assert_eq(ca_arena_flush_range(a, x, 100), 0);
    cr_assert_eq(ca_arena_flush_range(a, x, SIZE_MAX), EINVAL);
    cr_assert_eq(ca_arena_flush_range(a, ca_arena_capacity(a), 1), EINVAL);
    cr_assert_eq(ca_arena_flush_seq(a), 2);
    ca_arena_close(a);
    cr_assert_eq(ca_arena_open_file(&a, path_of("fr"), CA_ARENA_READ_ONLY, NULL, NULL), 0);
    unsigned char *q = ca_arena_ptr(a, x);
    for (int i = 0; i < 100; i++)
        cr_assert_eq(q[i], 3);
    ca_arena_close(a);
}

/* Every refusal of create and open leaves the calling thread a message
 * naming the file and the reason (core's ca_last_error); another thread
 * does not see it. */
static void *open_missing(void *arg)
{
    ca_arena *a = NULL;
    *(int *)arg = ca_arena_open_file(&a, path_of("not-there"), CA_ARENA_READ_ONLY, NULL, NULL);
    return NULL;
}

Test(arena_file, refusals_set_the_last_error)
{
    const char *p = path_of("msg");
    ca_arena *a = NULL;
    ca_arena_error why;
    cr_assert_eq(ca_arena_create_file(&a, p, NULL, &why), 0);
    ca_arena_close(a);

    cr_assert_eq(ca_arena_create_file(&a, p, NULL, &why), EEXIST);
    cr_assert_not_null(strstr(ca_last_error(), "arena: create '"), "%s", ca_last_error());
    cr_assert_not_null(strstr(ca_last_error(), p), "%s", ca_last_error());
    cr_assert_not_null(strstr(ca_last_error(), "file exists"), "%s", ca_last_error());

    cr_assert_eq(ca_arena_open_file(&a, path_of("missing"), CA_ARENA_READ_ONLY, NULL, &why), ENOENT);
    cr_assert_not_null(strstr(ca_last_error(), "missing': open: No such file or directory"), "%s",
                       ca_last_error());

    char bad[8] = "NOTARENA";
    poke(p, 0, bad, sizeof bad);
    poke(p, 512, bad, sizeof bad);
    cr_assert_eq(ca_arena_open_file(&a, p, CA_ARENA_READ_WRITE, NULL, &why), EBADMSG);
    cr_assert_eq(why, CA_ARENA_E_MAGIC);
    cr_assert_not_null(strstr(ca_last_error(), ca_arena_strerror(CA_ARENA_E_MAGIC)), "%s", ca_last_error());
    cr_assert_not_null(strstr(ca_last_error(), "arena: open '"), "%s", ca_last_error());

    ca_arena_options e;
    ca_arena_options_init(&e);
    e.min_segment = 8;
    cr_assert_eq(ca_arena_open_file(&a, p, CA_ARENA_READ_WRITE, &e, &why), EINVAL);
    cr_assert_not_null(strstr(ca_last_error(), "invalid options: min_segment"), "%s", ca_last_error());

    /* Another thread's refusal does not show here; a success leaves the
     * message as it was. */
    ca_last_error_clear();
    int err = 0;
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, open_missing, &err), 0);
    cr_assert_eq(pthread_join(t, NULL), 0);
    cr_assert_eq(err, ENOENT);
    cr_assert_null(ca_last_error(), "%s", ca_last_error());
    cr_assert_eq(ca_arena_open_file(&a, path_of("missing"), CA_ARENA_READ_ONLY, NULL, &why), ENOENT);
    const char *m = ca_last_error();
    cr_assert_eq(ca_arena_create(&a, NULL), 0);
    cr_assert_eq(ca_last_error(), m);
    cr_assert_not_null(strstr(m, "missing"));
    ca_arena_close(a);
}

/* A file written by the release before the shared bins (data/layout1.arena,
 * layout version 1: 16 KiB, OPTIMISTIC, 64-bit offsets, user version 7, a
 * user area with the offsets of 8 live blocks, 6 recorded free segments,
 * closed cleanly). The shared bins live in the process only and a flush
 * folds them into the recorded list, so the layout did not change: the file
 * opens read-only as it is, and a copy opened read-write takes allocations
 * and frees (through the thread caches and shared bins), flushes, and
 * reopens with its old blocks intact. */
static void verify_layout1(ca_arena *a)
{
    size_t us = 0;
    const uint64_t *root = ca_arena_user_area(a, &us);
    cr_assert_eq(us, 64);
    static const int live[8] = {1, 3, 5, 7, 9, 11, 12, 13};
    for (int n = 0; n < 8; n++) {
        size_t s = 48 + 80 * (size_t)live[n];
        const unsigned char *p = ca_arena_ptr(a, root[n]);
        cr_assert_not_null(p);
        for (size_t k = 0; k < s; k++)
            cr_assert_eq(p[k], (unsigned char)(root[n] + k * 7), "block %d byte %zu", n, k);
    }
}

Test(arena_file, file_of_the_previous_release_opens)
{
    const char *src = CA_ARENA_TEST_DATA "/layout1.arena";
    ca_arena *a = NULL;
    ca_arena_error why;
    cr_assert_eq(ca_arena_open_file(&a, src, CA_ARENA_READ_ONLY, any7(), &why), 0, "%s", ca_arena_strerror(why));
    cr_assert_null(ca_arena_check(a), "%s", ca_arena_check(a));
    ca_stats st;
    ca_arena_stats(a, &st);
    uint64_t fs = 0, fb = 0;
    ca_stats_get_counter(&st, "free_segments", &fs);
    ca_stats_get_counter(&st, "free_bytes", &fb);
    cr_assert_eq(fs, 6);
    cr_assert_eq(fb, 2688);
    verify_layout1(a);
    ca_arena_close(a);

    /* a copy, read-write: the library of today writes to it */
    FILE *in = fopen(src, "rb");
    cr_assert_not_null(in);
    static unsigned char buf[16u << 10];
    cr_assert_eq(fread(buf, 1, sizeof buf, in), sizeof buf);
    fclose(in);
    const char *copy = path_of("layout1-copy");
    FILE *out = fopen(copy, "wb");
    cr_assert_not_null(out);
    cr_assert_eq(fwrite(buf, 1, sizeof buf, out), sizeof buf);
    fclose(out);
    ca_arena_options e = *any7();
    e.local_cache = 1024; /* bins that overflow: the shared bins take part */
    cr_assert_eq(ca_arena_open_file(&a, copy, CA_ARENA_READ_WRITE, &e, &why), 0, "%s", ca_arena_strerror(why));
    uint64_t o[40];
    for (int i = 0; i < 40; i++)
        cr_assert_eq(ca_arena_alloc(a, 64, 16, &o[i]), 0, "alloc %d", i);
    for (int i = 0; i < 40; i += 2)
        cr_assert_eq(ca_arena_free(a, o[i], 64), 0);
    ca_arena_stats(a, &st);
    uint64_t sb = 0;
    ca_stats_get_counter(&st, "shared_bin_bytes", &sb);
    cr_assert_gt(sb, 0, "the frees overflowed the cache into the shared bins");
    cr_assert_eq(ca_arena_flush(a), 0);
    cr_assert_null(ca_arena_check(a), "%s", ca_arena_check(a));
    verify_layout1(a);
    cr_assert_eq(ca_arena_close(a), 0);
    cr_assert_eq(ca_arena_open_file(&a, copy, CA_ARENA_READ_ONLY, any7(), &why), 0, "%s", ca_arena_strerror(why));
    cr_assert_null(ca_arena_check(a), "%s", ca_arena_check(a));
    verify_layout1(a);
    ca_arena_close(a);
}
