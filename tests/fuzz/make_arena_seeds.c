/* SPDX-License-Identifier: MIT */
/* Writes valid arena images (every free-list kind and offset width, with and
 * without a user area and live blocks) into DIR: the seed corpus of
 * fuzz_arena_image. Usage: make_arena_seeds DIR */
#include <ctxalloc/arena.h>
#include <stdio.h>

int main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    int n = 0;
    for (int kind = CA_ARENA_FREELIST_NONE; kind <= CA_ARENA_FREELIST_PESSIMISTIC; kind++)
        for (int bits = 32; bits <= 64; bits += 32)
            for (int user = 0; user <= 1; user++) {
                char path[512];
                snprintf(path, sizeof path, "%s/image-%d-%d-%d", argv[1], kind, bits, user);
                ca_arena_options o;
                ca_arena_options_init(&o);
                o.capacity = 16u << 10;
                o.freelist = (ca_arena_freelist)kind;
                o.offset_bits = (unsigned)bits;
                o.user_size = user ? 256 : 0;
                o.flags |= CA_ARENA_REPLACE;
                ca_arena *a;
                if (ca_arena_create_file(&a, path, &o, NULL) != 0)
                    return 1;
                ca_allocator *al = ca_arena_allocator(a);
                void *p[6];
                for (int i = 0; i < 6; i++)
                    p[i] = ca_alloc(al, 48u * (unsigned)(i + 1), 16);
                ca_free(al, p[1], 96, 16);
                ca_free(al, p[3], 192, 16);
                if (ca_arena_flush(a) != 0 || ca_arena_close(a) != 0)
                    return 1;
                n++;
            }
    printf("%d images\n", n);
    return 0;
}
