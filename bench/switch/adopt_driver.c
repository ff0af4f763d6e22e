/* SPDX-License-Identifier: MIT */
/*
 * Instruction-count driver for adoption (bench/instr_per_op.sh):
 *   bench_adopt_driver N KIND MODE
 * KIND: rbtree | bitset | bump | binned; MODE: direct (ca_alloc + ca_free on
 * the allocator) | adopted (ca_switch_malloc + ca_switch_free with the
 * allocator adopted and selected as the context allocator) | select (N
 * context set / restore pairs). Sizes cycle 16..512.
 */
#include <ctxalloc/binned.h>
#include <ctxalloc/bitset.h>
#include <ctxalloc/bump.h>
#include <ctxalloc/rbtree.h>
#include <ctxalloc/source.h>
#include <ctxalloc/switch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static ca_rbtree tree;
static ca_bump bump;

static ca_allocator *make(const char *kind)
{
    if (strcmp(kind, "rbtree") == 0) {
        ca_rbtree_options o;
        ca_rbtree_options_init(&o);
        o.source = ca_source_mmap_global();
        return ca_rbtree_init(&tree, &o) ? NULL : &tree.base;
    }
    if (strcmp(kind, "bitset") == 0) {
        ca_bitset_options o;
        ca_bitset_options_init(&o);
        o.block_size = 16;
        o.region_size = (size_t)64 << 20;
        o.source = ca_source_mmap_global();
        ca_bitset *b;
        return ca_bitset_create(&b, &o) ? NULL : ca_bitset_allocator(b);
    }
    if (strcmp(kind, "bump") == 0)
        return ca_bump_init(&bump, ca_source_mmap_global(), NULL) ? NULL : &bump.base;
    if (strcmp(kind, "binned") == 0) {
        ca_binned_options o;
        ca_binned_options_init(&o);
        o.class_range_log2 = 26;
        ca_binned *b;
        return ca_binned_create(&b, &o) ? NULL : ca_binned_allocator(b);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 4)
        return 2;
    long n = atol(argv[1]);
    ca_allocator *a = make(argv[2]);
    if (!a)
        return 2;
    const char *mode = argv[3];
    void *volatile sink;
    size_t s = 16;
    if (strcmp(mode, "direct") == 0) {
        for (long i = 0; i < n; i++) {
            void *p = ca_alloc(a, s, 16);
            sink = p;
            ca_free(a, p, s, 16);
            s = s == 512 ? 16 : s + 16;
        }
        return 0;
    }
    static ca_switch_adopted ad;
    if (ca_switch_adopt(&ad, a) != 0) {
        fprintf(stderr, "adopt: %s\n", ca_last_error());
        return 1;
    }
    if (strcmp(mode, "select") == 0) {
        for (long i = 0; i < n; i++) {
            ca_allocator *prev = ca_switch_context_set(&ad.base);
            sink = prev;
            ca_switch_context_set(prev);
        }
        return 0;
    }
    ca_switch_context_set(&ad.base);
    for (long i = 0; i < n; i++) {
        void *p = ca_switch_malloc(s);
        sink = p;
        ca_switch_free(p);
        s = s == 512 ? 16 : s + 16;
    }
    (void)sink;
    return 0;
}
