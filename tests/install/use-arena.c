/* SPDX-License-Identifier: MIT */
/* Uses libarena through its installed header only; valid C11 and C++17:
 * a file-backed arena created, written, flushed, closed and reopened
 * read-only at another address with its contents and user area intact. */
#include <ctxalloc/arena.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(void)
{
    char path[] = "/tmp/use-arena-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return 1;
    close(fd);

    ca_arena_options o;
    ca_arena_options_init(&o);
    o.freelist = CA_ARENA_FREELIST_PESSIMISTIC;
    o.user_size = 64;
    o.user_version = 3;
    o.flags = CA_ARENA_REPLACE;
    ca_arena *a = NULL;
    ca_arena_error why = CA_ARENA_OK;
    if (ca_arena_create_file(&a, path, &o, &why)) {
        fprintf(stderr, "create: %s\n", ca_arena_strerror(why));
        return 2;
    }
    uint64_t off = 0;
    if (ca_arena_alloc(a, 32, 16, &off))
        return 3;
    strcpy((char *)ca_arena_ptr(a, off), "hello, arena");
    memcpy(ca_arena_user_area(a, NULL), &off, sizeof off); /* a root pointer, as an offset */
    if (ca_arena_flush_tag(a, 77) || ca_arena_close(a))
        return 4;

    ca_arena_options e;
    ca_arena_options_init(&e);
    e.freelist = CA_ARENA_FREELIST_ANY;
    e.offset_bits = 0;
    e.user_version = 3;
    if (ca_arena_open_file(&a, path, CA_ARENA_READ_ONLY, &e, &why)) {
        fprintf(stderr, "open: %s\n", ca_arena_strerror(why));
        return 5;
    }
    uint64_t root;
    memcpy(&root, ca_arena_user_area(a, NULL), sizeof root);
    int bad = strcmp((const char *)ca_arena_ptr(a, root), "hello, arena") != 0 || ca_arena_commit_tag(a) != 77 ||
              ca_arena_alloc(a, 16, 16, &off) != EROFS || ca_arena_check(a) != NULL;
    ca_arena_close(a);
    unlink(path);
    if (bad)
        return 6;

    /* in memory, through the ca_allocator view */
    if (ca_arena_create(&a, NULL))
        return 7;
    ca_allocator *al = ca_arena_allocator(a);
    char *p = (char *)ca_alloc(al, 100, 64);
    if (!p || !ca_is_aligned((uintptr_t)p, 64))
        return 8;
    ca_free(al, p, 100, 64);
    ca_stats st;
    ca_arena_stats(a, &st);
    ca_arena_close(a);
    return st.allocs == 1 && st.bytes_in_use == 0 ? 0 : 9;
}
