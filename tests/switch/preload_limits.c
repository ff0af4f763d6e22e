/* SPDX-License-Identifier: MIT */
/*
 * Malloc up to a resource limit, run by preload_programs.sh under
 * `ulimit -v` / `ulimit -d` with the preload object. Usage:
 *   preload_limits [-n] SIZE [SIZE...]
 * For each SIZE: malloc blocks of SIZE (writing one byte per page, so that
 * they are real; with -n only the first word of each block: address space
 * without memory) until malloc returns NULL; that NULL must come with
 * errno == ENOMEM. Prints "SIZE: N MiB", frees everything and checks that
 * malloc works again. Exit 0 when every size behaved; 1 otherwise.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int touch_pages = 1;

static int fill(size_t size)
{
    void *list = NULL; /* each block holds the previous one in its first word */
    size_t n = 0;
    for (;;) {
        errno = 0;
        char *p = malloc(size);
        if (!p)
            break;
        for (size_t off = 0; touch_pages && off < size; off += 4096)
            p[off] = 1;
        *(void **)(void *)p = list;
        list = p;
        n++;
    }
    int err = errno;
    printf("%zu: %zu MiB\n", size, (n * size) >> 20);
    while (list) {
        void *next = *(void **)list;
        free(list);
        list = next;
    }
    if (err != ENOMEM) {
        printf("%zu: malloc returned NULL with errno %d (%s), not ENOMEM\n", size, err, strerror(err));
        return 1;
    }
    void *again = malloc(size);
    if (!again) {
        printf("%zu: malloc fails after everything was freed\n", size);
        return 1;
    }
    free(again);
    return 0;
}

int main(int argc, char **argv)
{
    int bad = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-n") == 0)
            touch_pages = 0;
        else
            bad |= fill(strtoull(argv[i], NULL, 0));
    }
    return bad;
}
