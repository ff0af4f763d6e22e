/* SPDX-License-Identifier: MIT */
/*
 * librbtree private header: block layout, boundary tags and the intrusive
 * red-black tree shared by tree.c and rbtree.c (and by the invariant tests).
 *
 * Block layout (every address and size a multiple of 16):
 *
 *   allocated:  [ word | tag ][ user data ................................ ]
 *   free:       [ word | tag ][ rbt_node (40 B) | ...unused... | footer  ]
 *
 *   word   = block size (header included) | RBT_FREE | RBT_PREV_FREE | RBT_FIRST
 *   tag    = address ^ RBT_TAG_ALLOC or address ^ RBT_TAG_FREE
 *   footer = the block size (last 8 bytes of a free block only)
 *
 * The boundary tag at the far end of a block is the footer of a free block;
 * for an allocated block the next block's RBT_PREV_FREE bit (0) says the same
 * thing, so allocated blocks carry no footer and use all size - 16 bytes.
 * Freeing block B reads the next header (is it free?) and B's own
 * RBT_PREV_FREE bit plus the footer before B (where does the free previous
 * block start?): both merges are O(1).
 *
 * Invariants (checked by ca_rbtree_check):
 *   - size >= RBT_MIN_BLOCK, size % 16 == 0, blocks tile their region exactly
 *     from the first block (RBT_FIRST) to the end sentinel (size field 0);
 *   - next->RBT_PREV_FREE == this->RBT_FREE; no two adjacent blocks are free;
 *   - a free block's footer equals its size and its node is in the tree of
 *     class rbt_class_of(size), and nowhere else.
 */
#ifndef CA_RBTREE_INTERNAL_H
#define CA_RBTREE_INTERNAL_H

#include <ctxalloc/rbtree.h>

#define RBT_FREE      ((size_t)1)
#define RBT_PREV_FREE ((size_t)2)
#define RBT_FIRST     ((size_t)4)
#define RBT_FLAGS     ((size_t)15)

#define RBT_HDR       ((size_t)16)
#define RBT_MIN_BLOCK ((size_t)CA_RBTREE_MIN_BLOCK)
/* Largest block size: keeps every sum of two sizes far from overflow and
 * fits the class table (classes end at 2^48). */
#define RBT_MAX_BLOCK ((size_t)1 << 47)

#define RBT_TAG_ALLOC ((uintptr_t)0xa110c8ed5afe7ab1ull)
#define RBT_TAG_FREE  ((uintptr_t)0xf4eeb10c4f4eeb1dull)

/* Classes: sizes 64..1008 exact (one size per class, 60 classes); from
 * 1024 up, RBT_SUBCLASSES classes per power of two, up to 2^48. */
#define RBT_EXACT_CLASSES 60u
#define RBT_SUBCLASS_BITS 4u
#define RBT_SUBCLASSES    (1u << RBT_SUBCLASS_BITS)
_Static_assert(RBT_EXACT_CLASSES + 38u * RBT_SUBCLASSES == CA_RBTREE_NCLASSES, "class table size");

/* A node of the intrusive red-black tree, stored 16 bytes into a free block.
 *
 * Rules (classic red-black, NULL children are black leaves):
 *   1. every node is red or black; the root is black;
 *   2. a red node has no red child;
 *   3. every path from a node to a NULL leaf has the same number of black
 *      nodes (the black height);
 *   4. in-order traversal gives strictly increasing node addresses (the key);
 *   5. min / max are the smallest / largest block size in the node's subtree
 *      (the augmentation that best fit uses).
 * All fields are touched only by tree.c, under the owner's exclusive access.
 */
typedef struct ca_rbtree_node {
    struct ca_rbtree_node *left, *right;
    uintptr_t parent_color; /* parent pointer | 1 when black */
    size_t min, max;        /* subtree block sizes (rule 5) */
} rbt_node;

/* A region obtained from the source or parent allocator.
 * [region | 32 B][first block ... last block][sentinel | 16 B] */
typedef struct ca_rbtree_region {
    struct ca_rbtree_region *prev, *next; /* owner's list of regions */
    size_t size;                          /* bytes obtained (what release gets) */
    size_t pad;
} rbt_region;

#define RBT_REGION_HDR      ((size_t)sizeof(rbt_region))
#define RBT_REGION_OVERHEAD (RBT_REGION_HDR + RBT_HDR)

_Static_assert(sizeof(rbt_region) == 32, "region header keeps blocks 16-aligned");
_Static_assert(RBT_HDR + sizeof(rbt_node) + sizeof(size_t) <= RBT_MIN_BLOCK,
               "a free block holds header, node and footer");

static inline size_t *rbt_word(void *b) { return (size_t *)b; }
static inline uintptr_t *rbt_tagp(void *b) { return (uintptr_t *)b + 1; }
static inline size_t rbt_size(const void *b) { return *(const size_t *)b & ~RBT_FLAGS; }
static inline bool rbt_is_free(const void *b) { return (*(const size_t *)b & RBT_FREE) != 0; }
static inline rbt_node *rbt_node_of(void *b) { return (rbt_node *)(void *)((char *)b + RBT_HDR); }
static inline void *rbt_block_of(const rbt_node *n) { return (char *)(uintptr_t)n - RBT_HDR; }
static inline size_t rbt_node_size(const rbt_node *n) { return rbt_size(rbt_block_of(n)); }
static inline void *rbt_next(void *b) { return (char *)b + rbt_size(b); }
static inline size_t *rbt_footer(void *b) { return (size_t *)(void *)((char *)b + rbt_size(b) - sizeof(size_t)); }

/* Class of a block size (size >= RBT_MIN_BLOCK, < 2^48). */
static inline unsigned rbt_class_of(size_t size)
{
    if (size < 1024)
        return (unsigned)(size >> 4) - 4u;
    unsigned e = ca_log2(size);
    return RBT_EXACT_CLASSES + (e - 10u) * RBT_SUBCLASSES +
           (unsigned)((size >> (e - RBT_SUBCLASS_BITS)) & (RBT_SUBCLASSES - 1));
}

/* Smallest block size of class c. */
static inline size_t rbt_class_lo(unsigned c)
{
    if (c < RBT_EXACT_CLASSES)
        return ((size_t)c + 4) << 4;
    unsigned e = 10u + (c - RBT_EXACT_CLASSES) / RBT_SUBCLASSES, sub = (c - RBT_EXACT_CLASSES) % RBT_SUBCLASSES;
    return ((size_t)RBT_SUBCLASSES + sub) << (e - RBT_SUBCLASS_BITS);
}

/* ---- the tree (tree.c); root pointers live in the caller ---------------- */
void ca_rbtree__tree_insert(rbt_node **root, rbt_node *n);
void ca_rbtree__tree_remove(rbt_node **root, rbt_node *n);
/* The size of n's block changed (n stays in place): refresh min / max from n
 * up, stopping where nothing changes. O(log n), no rotations. */
void ca_rbtree__tree_update(rbt_node *n);
/* nu takes old's place (same colour and links): valid when no other node's
 * address lies between the two. Then refreshes min / max like tree_update. */
void ca_rbtree__tree_replace(rbt_node **root, rbt_node *old, rbt_node *nu);
/* Node at address key, or NULL. O(log n). */
rbt_node *ca_rbtree__tree_find(rbt_node *root, const void *key);
/* Smallest block size >= size, lowest address among equals; NULL if none. */
rbt_node *ca_rbtree__tree_best(rbt_node *root, size_t size);
/* Smallest block size, lowest address among equals; NULL for an empty tree. O(log n). */
rbt_node *ca_rbtree__tree_min_size(rbt_node *root);
rbt_node *ca_rbtree__tree_first(rbt_node *root);
rbt_node *ca_rbtree__tree_next(rbt_node *n);
/* Checks rules 1-5; returns NULL or what is wrong; *count gets the number of nodes. */
const char *ca_rbtree__tree_check(const rbt_node *root, size_t *count);

#endif
