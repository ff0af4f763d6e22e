/* SPDX-License-Identifier: MIT */
/* Uses libbump through its installed header only; valid C11 and C++17. */
#include <ctxalloc/bump.h>
#include <stdio.h>
#include <string.h>

typedef struct pair {
    long key;
    double value;
} pair;

static int destroyed;
static void on_destroy(void *obj, void *arg)
{
    (void)obj;
    (void)arg;
    destroyed++;
}

int main(void)
{
    ca_bump b;
    if (ca_bump_init_allocator(&b, ca_libc_allocator(), NULL))
        return 1;
    /* tip free reclaims */
    void *p = ca_bump_alloc(&b, 40, 8);
    ca_bump_free(&b, p, 40);
    if (ca_bump_alloc(&b, 40, 8) != p)
        return 2;
    /* placing values */
    pair *kv = CA_BUMP_NEW(&b, pair);
    char *s = ca_bump_strdup(&b, "ctxalloc");
    if (!kv || kv->key != 0 || strcmp(s, "ctxalloc") != 0)
        return 3;
    /* checkpoint with a destructor */
    ca_bump_mark m;
    if (ca_bump_save(&b, &m))
        return 4;
    if (!ca_bump_alloc_dtor(&b, 16, 8, on_destroy, NULL))
        return 5;
    if (ca_bump_rewind(&b, &m) || destroyed != 1)
        return 6;
    /* array builder */
    ca_bump_array a;
    ca_bump_array_begin(&a, &b, sizeof(int), __alignof__(int));
    for (int i = 0; i < 100; i++)
        *(int *)ca_bump_array_push(&a) = i;
    size_t n;
    int *items = (int *)ca_bump_array_finish(&a, &n);
    if (n != 100 || items[99] != 99)
        return 7;
    /* through the generic interface */
    ca_allocator *al = &b.base;
    void *q = ca_alloc(al, 100, 64);
    if (!q || !ca_is_aligned((uintptr_t)q, 64))
        return 8;
    ca_stats st;
    if (ca_stats_get(al, &st) || st.bytes_in_use == 0 || ca_bump_check(&b))
        return 9;
    ca_bump_destroy(&b);

    /* shared, local from shared, cache, fixed */
    ca_bump_shared sh;
    if (ca_bump_shared_init_allocator(&sh, ca_libc_allocator(), NULL))
        return 10;
    ca_bump local;
    ca_bump_init_local(&local, &sh, NULL);
    if (!ca_bump_shared_alloc(&sh, 24, 8) || !ca_bump_alloc(&local, 24, 8))
        return 11;
    ca_bump_destroy(&local);
    ca_bump_shared_destroy(&sh);
    ca_bump_cache c;
    ca_bump_cache_init_allocator(&c, ca_libc_allocator(), NULL, 4);
    ca_bump t;
    ca_bump_cache_take(&c, &t);
    ca_bump_alloc(&t, 100, 8);
    ca_bump_cache_put(&c, &t);
    ca_bump_cache_destroy(&c);
    static char region[1024];
    ca_bump f;
    ca_bump_init_fixed(&f, region, sizeof region);
    if (ca_bump_alloc(&f, 4096, 8) != NULL)
        return 12;
    ca_bump_destroy(&f);
    puts("use-bump: ok");
    return 0;
}
