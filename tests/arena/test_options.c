/* SPDX-License-Identifier: MIT */
/* libarena options: all-zero options (and NULL) are the documented defaults,
 * in memory and in a file's header; the explicit spellings of what a zero
 * field used to mean; invalid values create nothing. */
#include <criterion/criterion.h>
#include <ctxalloc/arena.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "arena_internal.h"
#include "ca_test.h"

static char dir[64];

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/ca_arena_opt_XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
    char cmd[96];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

static const char *path_of(const char *name)
{
    static char p[128];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return p;
}

/* The header copy the file's state word points at (copy 1 after create). */
static ca_arena__disk disk_of(const char *path)
{
    ca_arena__disk d;
    int fd = open(path, O_RDONLY);
    cr_assert_geq(fd, 0);
    cr_assert_eq(pread(fd, &d, sizeof d, CA_ARENA__COPY1), (ssize_t)sizeof d);
    close(fd);
    return d;
}

/* What an arena made from options resolved to. */
static void assert_defaults(const ca_arena *a)
{
    cr_assert_eq(ca_arena_capacity(a), (uint64_t)1 << 20);
    cr_assert_eq(ca_arena_freelist_kind(a), CA_ARENA_FREELIST_OPTIMISTIC);
    cr_assert_eq(ca_arena_offset_bits(a), 64);
    cr_assert_eq(ca_arena_user_version(a), 0);
    cr_assert_eq(a->min_segment, 32);
    cr_assert_eq(a->max_retries, 256);
    cr_assert_eq(a->auto_compact, 1024);
    cr_assert_eq(a->local_cache, (uint64_t)256 << 10);
    cr_assert_eq(a->order, CA_ARENA_REUSE_FIRST);
    cr_assert_eq(a->user_size, 0);
}

Test(arena_options, init_is_all_zero)
{
    ca_arena_options o, z;
    memset(&o, 0xa5, sizeof o);
    memset(&z, 0, sizeof z);
    ca_arena_options_init(&o);
    cr_assert_eq(memcmp(&o, &z, sizeof o), 0, "ca_arena_options_init fills zeros: the defaults");
}

Test(arena_options, zero_null_and_init_are_the_defaults)
{
    ca_arena_options z, i;
    memset(&z, 0, sizeof z);
    ca_arena_options_init(&i);
    const ca_arena_options *each[] = {&z, NULL, &i};
    for (int k = 0; k < 3; k++) {
        ca_arena *a = NULL;
        cr_assert_eq(ca_arena_create(&a, each[k]), 0, "options %d", k);
        assert_defaults(a);
        uint64_t off = 0;
        cr_assert_eq(ca_arena_alloc(a, 100, 16, &off), 0);
        cr_assert_eq(ca_arena_free(a, off, 100), 0);
        cr_assert_null(ca_arena_check(a));
        cr_assert_eq(ca_arena_close(a), 0);
    }
}

Test(arena_options, zero_options_in_a_file_header, .init = setup, .fini = teardown)
{
    ca_arena_options z;
    memset(&z, 0, sizeof z);
    ca_arena *a = NULL;
    ca_arena_error why = CA_ARENA_E_COUNT;
    cr_assert_eq(ca_arena_create_file(&a, path_of("zero"), &z, &why), 0, "%s", ca_arena_strerror(why));
    assert_defaults(a);
    cr_assert_eq(ca_arena_close(a), 0);
    /* The header records the resolved values, never a zero "default". */
    ca_arena__disk d = disk_of(path_of("zero"));
    cr_assert_eq(d.capacity, (uint64_t)1 << 20);
    cr_assert_eq(d.freelist, 1, "OPTIMISTIC is 1 on disk");
    cr_assert_eq(d.offset_bits, 64);
    cr_assert_eq(d.min_segment, 32);
    /* Reopened with zero expectations: the file's own values. */
    cr_assert_eq(ca_arena_open_file(&a, path_of("zero"), CA_ARENA_READ_WRITE, &z, &why), 0, "%s",
                 ca_arena_strerror(why));
    assert_defaults(a);
    cr_assert_eq(ca_arena_close(a), 0);
}

Test(arena_options, zero_expectations_take_the_files_kind_and_width, .init = setup, .fini = teardown)
{
    ca_arena_options o;
    ca_arena_options_init(&o);
    o.freelist = CA_ARENA_FREELIST_PESSIMISTIC;
    o.offset_bits = 32;
    o.capacity = 256u << 10;
    ca_arena *a = NULL;
    ca_arena_error why;
    cr_assert_eq(ca_arena_create_file(&a, path_of("p32"), &o, &why), 0);
    cr_assert_eq(ca_arena_close(a), 0);
    /* NULL, zeroed and initialised expectations are one thing: the file's
     * kind and width, user version 0. */
    ca_arena_options z, i;
    memset(&z, 0, sizeof z);
    ca_arena_options_init(&i);
    const ca_arena_options *each[] = {&z, NULL, &i};
    for (int k = 0; k < 3; k++) {
        cr_assert_eq(ca_arena_open_file(&a, path_of("p32"), CA_ARENA_READ_ONLY, each[k], &why), 0, "%d: %s", k,
                     ca_arena_strerror(why));
        cr_assert_eq(ca_arena_freelist_kind(a), CA_ARENA_FREELIST_PESSIMISTIC);
        cr_assert_eq(ca_arena_offset_bits(a), 32);
        cr_assert_eq(a->min_segment, 32);
        cr_assert_eq(a->local_cache, (uint64_t)256 << 10);
        cr_assert_eq(ca_arena_close(a), 0);
    }
}

/* ------------------------------------------------------------------------
 * What a zero used to mean, spelled out
 * ------------------------------------------------------------------------ */

static uint64_t counter(const ca_arena *a, const char *name)
{
    ca_stats st;
    uint64_t v = 0;
    cr_assert_eq(ca_arena_stats(a, &st), 0);
    cr_assert(ca_stats_get_counter(&st, name, &v), "%s", name);
    return v;
}

Test(arena_options, freelist_none_is_an_explicit_kind)
{
    cr_assert_neq(CA_ARENA_FREELIST_NONE, 0, "0 is the default kind, not NONE");
    ca_arena_options o;
    ca_arena_options_init(&o);
    o.freelist = CA_ARENA_FREELIST_NONE;
    o.local_cache = CA_ARENA_LOCAL_CACHE_OFF;
    ca_arena *a = NULL;
    cr_assert_eq(ca_arena_create(&a, &o), 0);
    cr_assert_eq(ca_arena_freelist_kind(a), CA_ARENA_FREELIST_NONE);
    uint64_t x, y;
    cr_assert_eq(ca_arena_alloc(a, 64, 16, &x), 0);
    cr_assert_eq(ca_arena_alloc(a, 64, 16, &y), 0);
    cr_assert_eq(ca_arena_free(a, x, 64), 0); /* not at the tail: discarded */
    cr_assert_eq(counter(a, "discarded"), 64);
    cr_assert_eq(counter(a, "free_segments"), 0);
    cr_assert_eq(ca_arena_close(a), 0);
}

Test(arena_options, auto_compact_off)
{
    ca_arena_options o;
    ca_arena_options_init(&o);
    o.auto_compact = CA_ARENA_AUTO_COMPACT_OFF;
    ca_arena *a = NULL;
    cr_assert_eq(ca_arena_create(&a, &o), 0);
    cr_assert_eq(a->auto_compact, 0, "no compaction inside a free");
    cr_assert_eq(ca_arena_close(a), 0);
    o.auto_compact = 5;
    cr_assert_eq(ca_arena_create(&a, &o), 0);
    cr_assert_eq(a->auto_compact, 5);
    cr_assert_eq(ca_arena_close(a), 0);
}

Test(arena_options, local_cache_off)
{
    ca_arena_options o;
    ca_arena_options_init(&o);
    o.local_cache = CA_ARENA_LOCAL_CACHE_OFF;
    ca_arena *a = NULL;
    cr_assert_eq(ca_arena_create(&a, &o), 0);
    cr_assert_eq(a->local_cache, 0);
    uint64_t x, y;
    cr_assert_eq(ca_arena_alloc(a, 64, 16, &x), 0);
    cr_assert_eq(ca_arena_alloc(a, 64, 16, &y), 0);
    cr_assert_eq(ca_arena_free(a, x, 64), 0);
    cr_assert_eq(counter(a, "caches"), 0, "no thread cache was made");
    cr_assert_eq(counter(a, "free_segments"), 1, "the free went to the shared list");
    cr_assert_eq(ca_arena_close(a), 0);
}

/* A file of layout version 1 written byte by byte as the layout describes
 * it (every file made before the kinds were renumbered looks like this):
 * `kind` is the header's own encoding, 0 none, 1 optimistic, 2 pessimistic. */
static void write_v1_file(const char *path, uint32_t kind)
{
    const uint64_t cap = 64u << 10;
    static unsigned char page[CA_ARENA_HEADER_SIZE];
    memset(page, 0, sizeof page);
    for (uint64_t seq = 0; seq < 2; seq++) {
        ca_arena__disk d;
        memset(&d, 0, sizeof d);
        memcpy(d.magic, "CTXARENA", 8);
        d.layout_version = 1;
        d.user_version = 0;
        d.freelist = kind;
        d.offset_bits = 64;
        d.capacity = cap;
        d.data_off = CA_ARENA_HEADER_SIZE;
        d.min_segment = 32;
        d.cursor = CA_ARENA_HEADER_SIZE;
        d.seq = seq;
        d.checksum = ca_arena__checksum(&d);
        memcpy(page + (seq ? 512 : 0), &d, sizeof d);
    }
    uint64_t sw = ca_arena__state_word(1, 0 /* CLEAN */);
    memcpy(page + 1024, &sw, sizeof sw);
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
    cr_assert_geq(fd, 0);
    cr_assert_eq(pwrite(fd, page, sizeof page, 0), (ssize_t)sizeof page);
    cr_assert_eq(ftruncate(fd, (off_t)cap), 0);
    close(fd);
}

Test(arena_options, files_keep_their_kind_encoding, .init = setup, .fini = teardown)
{
    const ca_arena_freelist kinds[3] = {CA_ARENA_FREELIST_NONE, CA_ARENA_FREELIST_OPTIMISTIC,
                                        CA_ARENA_FREELIST_PESSIMISTIC};
    for (uint32_t k = 0; k < 3; k++) {
        /* An existing file opens with the kind it was made with. */
        const char *p = path_of("v1");
        write_v1_file(p, k);
        ca_arena *a = NULL;
        ca_arena_error why = CA_ARENA_E_COUNT;
        cr_assert_eq(ca_arena_open_file(&a, p, CA_ARENA_READ_WRITE, NULL, &why), 0, "kind %u: %s", k,
                     ca_arena_strerror(why));
        cr_assert_eq(ca_arena_freelist_kind(a), kinds[k]);
        uint64_t x, y;
        cr_assert_eq(ca_arena_alloc(a, 64, 16, &x), 0);
        cr_assert_eq(ca_arena_alloc(a, 64, 16, &y), 0);
        cr_assert_eq(ca_arena_free(a, x, 64), 0);
        cr_assert_null(ca_arena_check(a));
        cr_assert_eq(ca_arena_close(a), 0);
        cr_assert_eq(disk_of(p).freelist, k, "a flush keeps the encoding");
        ca_arena_options e;
        ca_arena_options_init(&e);
        e.freelist = kinds[k];
        cr_assert_eq(ca_arena_open_file(&a, p, CA_ARENA_READ_ONLY, &e, &why), 0, "expecting the kind");
        cr_assert_eq(ca_arena_close(a), 0);
        e.freelist = kinds[(k + 1) % 3];
        cr_assert_eq(ca_arena_open_file(&a, p, CA_ARENA_READ_ONLY, &e, &why), EBADMSG);
        cr_assert_eq(why, CA_ARENA_E_FREELIST_KIND);

        /* A new file writes the same encoding. */
        ca_arena_options o;
        ca_arena_options_init(&o);
        o.freelist = kinds[k];
        o.flags = CA_ARENA_REPLACE;
        cr_assert_eq(ca_arena_create_file(&a, path_of("new"), &o, &why), 0);
        cr_assert_eq(ca_arena_close(a), 0);
        cr_assert_eq(disk_of(path_of("new")).freelist, k);
    }
}

Test(arena_options, invalid_values_create_nothing, .init = setup, .fini = teardown)
{
    ca_arena_options o;
    ca_arena *a = NULL;
    ca_arena_error why = CA_ARENA_OK;
    ca_arena_options_init(&o);
    o.freelist = (ca_arena_freelist)9;
    cr_assert_eq(ca_arena_create(&a, &o), EINVAL);
    cr_assert_not_null(strstr(ca_last_error(), "free-list kind"), "%s", ca_last_error());
    cr_assert_eq(ca_arena_create_file(&a, path_of("bad"), &o, &why), EINVAL);
    cr_assert_eq(why, CA_ARENA_E_OPTIONS);
    cr_assert_eq(access(path_of("bad"), F_OK), -1, "no file created");
    o.freelist = CA_ARENA_FREELIST_ANY; /* only when opening */
    cr_assert_eq(ca_arena_create(&a, &o), EINVAL);
    ca_arena_options_init(&o);
    o.min_segment = 24;
    cr_assert_eq(ca_arena_create(&a, &o), EINVAL);
    cr_assert_not_null(strstr(ca_last_error(), "min_segment"), "%s", ca_last_error());
    ca_arena_options_init(&o);
    o.offset_bits = 48;
    cr_assert_eq(ca_arena_create(&a, &o), EINVAL);
    cr_assert_eq(ca_arena_open_file(&a, path_of("bad"), CA_ARENA_READ_ONLY, &o, &why), EINVAL);
    cr_assert_eq(why, CA_ARENA_E_OPTIONS);
    ca_arena_options_init(&o);
    o.backing = (ca_arena_backing)5;
    cr_assert_eq(ca_arena_create(&a, &o), EINVAL);
    cr_assert_null(a);
}
