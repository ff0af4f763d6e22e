/* SPDX-License-Identifier: MIT */
/*
 * The intrusive red-black tree of librbtree: nodes live inside free blocks,
 * keyed by address, augmented with the smallest and largest block size of
 * each subtree so that best fit is a guided descent instead of a scan.
 *
 * Concurrency: none; a tree belongs to one ca_rbtree and is used under its
 * owner's exclusive access (the locked adaptor supplies the lock).
 *
 * Read first: the rules next to rbt_node in rbtree_internal.h, then
 * ca_rbtree__tree_insert and ca_rbtree__tree_remove. Rotations keep the
 * augmentation exact locally; insert and remove refresh it from the changed
 * position up to the root (O(log n)).
 */
#include "rbtree_internal.h"

#define BLACK ((uintptr_t)1)

static inline rbt_node *parent_of(const rbt_node *n) { return (rbt_node *)(n->parent_color & ~BLACK); }
static inline bool is_red(const rbt_node *n) { return n && !(n->parent_color & BLACK); }
static inline bool is_black(const rbt_node *n) { return !is_red(n); }
static inline void set_parent(rbt_node *n, rbt_node *p)
{
    n->parent_color = (uintptr_t)p | (n->parent_color & BLACK);
}
static inline void set_black(rbt_node *n) { n->parent_color |= BLACK; }
static inline void set_red(rbt_node *n) { n->parent_color &= ~BLACK; }
static inline void copy_color(rbt_node *n, const rbt_node *from)
{
    n->parent_color = (n->parent_color & ~BLACK) | (from->parent_color & BLACK);
}

/* Recompute n's augmentation from its own size and its children. */
static inline void update(rbt_node *n)
{
    size_t s = rbt_node_size(n), lo = s, hi = s;
    if (n->left) {
        lo = n->left->min < lo ? n->left->min : lo;
        hi = n->left->max > hi ? n->left->max : hi;
    }
    if (n->right) {
        lo = n->right->min < lo ? n->right->min : lo;
        hi = n->right->max > hi ? n->right->max : hi;
    }
    n->min = lo;
    n->max = hi;
}

/* Refresh min / max from n up to the root. Above `upto` (a node whose
 * children changed, or NULL) the walk stops at the first node whose values
 * did not change: its ancestors see the same subtree sizes. */
static void propagate(rbt_node *n, const rbt_node *upto)
{
    bool exact = upto != NULL;
    for (; n; n = parent_of(n)) {
        size_t lo = n->min, hi = n->max;
        update(n);
        if (n == upto)
            exact = false;
        else if (!exact && n->min == lo && n->max == hi)
            break;
    }
}

static inline void replace_child(rbt_node **root, rbt_node *p, rbt_node *old, rbt_node *nu)
{
    if (!p)
        *root = nu;
    else if (p->left == old)
        p->left = nu;
    else
        p->right = nu;
}

static void rotate_left(rbt_node **root, rbt_node *x)
{
    rbt_node *y = x->right, *p = parent_of(x);
    x->right = y->left;
    if (y->left)
        set_parent(y->left, x);
    set_parent(y, p);
    replace_child(root, p, x, y);
    y->left = x;
    set_parent(x, y);
    update(x);
    update(y);
}

static void rotate_right(rbt_node **root, rbt_node *x)
{
    rbt_node *y = x->left, *p = parent_of(x);
    x->left = y->right;
    if (y->right)
        set_parent(y->right, x);
    set_parent(y, p);
    replace_child(root, p, x, y);
    y->right = x;
    set_parent(x, y);
    update(x);
    update(y);
}

void ca_rbtree__tree_insert(rbt_node **root, rbt_node *n)
{
    rbt_node *p = NULL, **link = root;
    while (*link) {
        p = *link;
        link = (uintptr_t)n < (uintptr_t)p ? &p->left : &p->right;
    }
    n->left = n->right = NULL;
    n->parent_color = (uintptr_t)p; /* red */
    *link = n;
    n->min = n->max = rbt_node_size(n);
    propagate(p, NULL);

    while ((p = parent_of(n)) && is_red(p)) {
        rbt_node *g = parent_of(p); /* exists: a red node is never the root */
        if (p == g->left) {
            rbt_node *u = g->right;
            if (is_red(u)) {
                set_black(p);
                set_black(u);
                set_red(g);
                n = g;
                continue;
            }
            if (n == p->right) {
                rotate_left(root, p);
                n = p;
                p = parent_of(n);
            }
            set_black(p);
            set_red(g);
            rotate_right(root, g);
        } else {
            rbt_node *u = g->left;
            if (is_red(u)) {
                set_black(p);
                set_black(u);
                set_red(g);
                n = g;
                continue;
            }
            if (n == p->left) {
                rotate_right(root, p);
                n = p;
                p = parent_of(n);
            }
            set_black(p);
            set_red(g);
            rotate_left(root, g);
        }
    }
    set_black(*root);
}

static void transplant(rbt_node **root, rbt_node *u, rbt_node *v)
{
    rbt_node *p = parent_of(u);
    replace_child(root, p, u, v);
    if (v)
        set_parent(v, p);
}

static void remove_fixup(rbt_node **root, rbt_node *x, rbt_node *xp)
{
    while (x != *root && is_black(x)) {
        if (x == xp->left) {
            rbt_node *w = xp->right; /* non-NULL: x's side is one black short */
            if (is_red(w)) {
                set_black(w);
                set_red(xp);
                rotate_left(root, xp);
                w = xp->right;
            }
            CA_ASSERT(w != NULL, "rbtree", xp, "red-black tree corrupted (no sibling)");
            if (is_black(w->left) && is_black(w->right)) {
                set_red(w);
                x = xp;
                xp = parent_of(x);
            } else {
                if (is_black(w->right)) {
                    set_black(w->left);
                    set_red(w);
                    rotate_right(root, w);
                    w = xp->right;
                }
                copy_color(w, xp);
                set_black(xp);
                set_black(w->right);
                rotate_left(root, xp);
                x = *root;
            }
        } else {
            rbt_node *w = xp->left;
            if (is_red(w)) {
                set_black(w);
                set_red(xp);
                rotate_right(root, xp);
                w = xp->left;
            }
            CA_ASSERT(w != NULL, "rbtree", xp, "red-black tree corrupted (no sibling)");
            if (is_black(w->left) && is_black(w->right)) {
                set_red(w);
                x = xp;
                xp = parent_of(x);
            } else {
                if (is_black(w->left)) {
                    set_black(w->right);
                    set_red(w);
                    rotate_left(root, w);
                    w = xp->left;
                }
                copy_color(w, xp);
                set_black(xp);
                set_black(w->left);
                rotate_right(root, xp);
                x = *root;
            }
        }
    }
    if (x)
        set_black(x);
}

void ca_rbtree__tree_remove(rbt_node **root, rbt_node *z)
{
    rbt_node *x, *xp, *moved = NULL;
    bool removed_black = is_black(z);
    if (!z->left) {
        x = z->right;
        xp = parent_of(z);
        transplant(root, z, z->right);
    } else if (!z->right) {
        x = z->left;
        xp = parent_of(z);
        transplant(root, z, z->left);
    } else {
        rbt_node *y = z->right;
        while (y->left)
            y = y->left;
        removed_black = is_black(y);
        x = y->right;
        if (parent_of(y) == z) {
            xp = y;
        } else {
            xp = parent_of(y);
            transplant(root, y, y->right);
            y->right = z->right;
            set_parent(y->right, y);
        }
        transplant(root, z, y);
        y->left = z->left;
        set_parent(y->left, y);
        copy_color(y, z);
        moved = y; /* took z's place: recompute exactly up to it */
    }
    propagate(xp, moved);
    if (removed_black)
        remove_fixup(root, x, xp);
}

void ca_rbtree__tree_update(rbt_node *n) { propagate(n, NULL); }

void ca_rbtree__tree_replace(rbt_node **root, rbt_node *old, rbt_node *nu)
{
    rbt_node *p = parent_of(old);
    *nu = *old;
    replace_child(root, p, old, nu);
    if (nu->left)
        set_parent(nu->left, nu);
    if (nu->right)
        set_parent(nu->right, nu);
    propagate(nu, nu);
}

rbt_node *ca_rbtree__tree_find(rbt_node *root, const void *key)
{
    uintptr_t k = (uintptr_t)key;
    while (root && (uintptr_t)root != k)
        root = k < (uintptr_t)root ? root->left : root->right;
    return root;
}

/* Leftmost node of x's subtree whose size is the subtree minimum. */
static rbt_node *leftmost_min(rbt_node *x)
{
    size_t target = x->min;
    for (;;) {
        if (x->left && x->left->min == target)
            x = x->left;
        else if (rbt_node_size(x) == target)
            return x;
        else
            x = x->right;
    }
}

rbt_node *ca_rbtree__tree_min_size(rbt_node *root) { return root ? leftmost_min(root) : NULL; }

/* In-order search pruned by the augmentation: subtrees whose largest block is
 * too small, or whose smallest is no better than the best so far (visited
 * later, so higher addresses) are skipped; a subtree whose smallest block
 * fits answers with leftmost_min. */
static void best_rec(rbt_node *x, size_t size, rbt_node **best, size_t *bsize)
{
    while (x) {
        if (x->max < size || (*best && x->min >= *bsize))
            return;
        if (x->min >= size) {
            rbt_node *m = leftmost_min(x);
            if (!*best || x->min < *bsize) {
                *best = m;
                *bsize = x->min;
            }
            return;
        }
        best_rec(x->left, size, best, bsize);
        size_t s = rbt_node_size(x);
        if (s >= size && (!*best || s < *bsize)) {
            *best = x;
            *bsize = s;
            if (s == size)
                return;
        }
        x = x->right;
    }
}

rbt_node *ca_rbtree__tree_best(rbt_node *root, size_t size)
{
    rbt_node *best = NULL;
    size_t bsize = 0;
    best_rec(root, size, &best, &bsize);
    return best;
}

rbt_node *ca_rbtree__tree_first(rbt_node *root)
{
    if (!root)
        return NULL;
    while (root->left)
        root = root->left;
    return root;
}

rbt_node *ca_rbtree__tree_next(rbt_node *n)
{
    if (n->right) {
        n = n->right;
        while (n->left)
            n = n->left;
        return n;
    }
    rbt_node *p = parent_of(n);
    while (p && n == p->right) {
        n = p;
        p = parent_of(p);
    }
    return p;
}

/* Returns the black height of x's subtree, or -1 with *what set. */
static int check_rec(const rbt_node *x, const rbt_node *parent, uintptr_t lo, uintptr_t hi, size_t *count,
                     const char **what, unsigned depth)
{
    if (!x)
        return 1;
    if (depth > 128) {
        *what = "tree deeper than 128 levels (cycle?)";
        return -1;
    }
    if (parent_of(x) != parent) {
        *what = "parent pointer inconsistent";
        return -1;
    }
    if ((uintptr_t)x <= lo || (uintptr_t)x >= hi) {
        *what = "nodes out of address order";
        return -1;
    }
    if (is_red(x) && (is_red(x->left) || is_red(x->right))) {
        *what = "red node with a red child";
        return -1;
    }
    size_t s = rbt_node_size(x), mn = s, mx = s;
    if (x->left) {
        mn = x->left->min < mn ? x->left->min : mn;
        mx = x->left->max > mx ? x->left->max : mx;
    }
    if (x->right) {
        mn = x->right->min < mn ? x->right->min : mn;
        mx = x->right->max > mx ? x->right->max : mx;
    }
    if (x->min != mn || x->max != mx) {
        *what = "subtree min/max augmentation stale";
        return -1;
    }
    (*count)++;
    int l = check_rec(x->left, x, lo, (uintptr_t)x, count, what, depth + 1);
    if (l < 0)
        return -1;
    int r = check_rec(x->right, x, (uintptr_t)x, hi, count, what, depth + 1);
    if (r < 0)
        return -1;
    if (l != r) {
        *what = "black heights differ";
        return -1;
    }
    return l + (is_black(x) ? 1 : 0);
}

const char *ca_rbtree__tree_check(const rbt_node *root, size_t *count)
{
    const char *what = NULL;
    *count = 0;
    if (!root)
        return NULL;
    if (is_red(root))
        return "root is red";
    if (check_rec(root, NULL, 0, UINTPTR_MAX, count, &what, 0) < 0)
        return what;
    return NULL;
}
