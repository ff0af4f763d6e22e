/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness: the input is an arena file image. It is written to a
 * temporary file and opened in every mode; an image that opens must pass
 * ca_arena_check and survive allocation and frees (read-write and
 * copy-on-write modes); any other image must be refused with a named error.
 * It must never crash. The seed corpus holds valid images made by
 * ca_arena_create_file, so mutations start from real headers.
 */
#include <ctxalloc/arena.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char path[64];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!path[0])
        snprintf(path, sizeof path, "/tmp/ca-fuzz-arena-%d", (int)getpid());
    FILE *f = fopen(path, "wb");
    if (!f)
        abort();
    if (size && fwrite(data, 1, size, f) != size)
        abort();
    fclose(f);
    for (int mode = 0; mode < 3; mode++) {
        ca_arena *a = NULL;
        ca_arena_error why;
        int e = ca_arena_open_file(&a, path, (ca_arena_mode)mode, NULL, &why);
        if (e) {
            if (!ca_arena_strerror(why) || !*ca_arena_strerror(why))
                abort(); /* every refusal names its reason */
            continue;
        }
        const char *bad = ca_arena_check(a);
        if (bad) {
            fprintf(stderr, "opened image fails its check: %s\n", bad);
            abort();
        }
        if (mode != CA_ARENA_READ_ONLY) {
            ca_allocator *al = ca_arena_allocator(a);
            void *p[8];
            for (int i = 0; i < 8; i++) {
                p[i] = ca_alloc(al, 16u << i, 16);
                if (p[i])
                    memset(p[i], i, 16u << i);
            }
            for (int i = 0; i < 8; i += 2)
                ca_free(al, p[i], 16u << i, 16);
            bad = ca_arena_check(a);
            if (bad) {
                fprintf(stderr, "after use: %s\n", bad);
                abort();
            }
        }
        ca_arena_close(a);
    }
    unlink(path);
    return 0;
}
