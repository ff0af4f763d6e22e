/* SPDX-License-Identifier: MIT */
/*
 * libbinned private header: the data structures shared by the files of the
 * small/medium tier, and the internal functions between them. Tests include
 * it to check invariants (ca_binned_check walks them too).
 *
 * Read in this order: the size classes (ca_binned__class_info), the layout
 * of an instance (ca_binned, ca_binned__class), the block word, the bit tree,
 * the recycler, the thread cache. binned.c has the entry points.
 *
 * Memory layout of an instance:
 *
 *   span_base                                                span_base + span
 *   | class 0 range | class 1 range | ... | class N-1 range |
 *     each 2^class_shift bytes, cut into blocks of 2^block_shift[c] bytes,
 *     each block holding nslots[c] slots of size[c] bytes from its start.
 *
 * so for a pointer p inside the span:
 *   class = (p - span_base) >> class_shift
 *   block = ((p - span_base) & (2^class_shift - 1)) >> block_shift[class]
 * and free needs neither a size nor a header.
 *
 * Out of band of the blocks: the block words and bit trees (meta mapping),
 * the shadow (one byte per 16 bytes of the span: the state of the slot that
 * starts in those 16 bytes), the thread caches (arrays of slot pointers) and
 * the recycler's bundles (descriptors holding arrays of slot pointers). The
 * only free-list links stored inside blocks are those of the blocks' own free
 * lists, and each one carries a tag keyed by a per-process secret.
 */
#ifndef CA_BINNED_INTERNAL_H
#define CA_BINNED_INTERNAL_H

#include <ctxalloc/binned.h>
#include <ctxalloc/source.h>

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define CA_BINNED__COMP "binned"

/* ------------------------------------------------------------------------
 * Hardening (every build): per-process secret, slot shadow, tagged links
 *
 * Secret: two 64-bit words from AT_RANDOM and getrandom, drawn once per
 * process before the first instance exists (a forked child keeps them).
 *
 * Shadow: one byte per 16 bytes of the class span. The byte of the granule
 * holding a slot start p is (uint8_t)(p + 1) while the slot is handed out
 * and 0 otherwise (free in a thread cache, a bundle, a block list, or never
 * handed out). (p + 1) is odd, so it is never 0, and it carries p's low
 * bits: free(q) accepts q only when the byte of q's granule equals
 * (uint8_t)(q + 1), i.e. when q is exactly the start of a slot handed out
 * and not yet freed. That one load-xor-branch on the free path rejects
 * double frees, interior pointers and pointers into the span that were never
 * handed out, in every build. malloc stores the byte. Granules that hold no
 * slot start stay 0. A block's shadow is 1/16 of its size (4 KiB for 64 KiB),
 * decommitted with the block.
 *
 * Block free lists: the link in word 0 of a listed slot is the next index + 1
 * (bits 0..15) and a 48-bit tag of (slot address, that value, secret) in
 * bits 16..63; a link whose tag does not match aborts with "corrupt
 * free-list link" and is never followed; a valid index is below the block's
 * bump, so it always names a slot of the same block.
 *
 * Guard (checks=on and full): CA_BINNED__GUARD bytes after every small
 * request are reserved (the class is chosen for size + guard); the slot
 * holds the request size (xor a key) in its last 4 bytes and a keyed pattern
 * between the request and those 4 bytes (at most 64 bytes of it). Free,
 * realloc and resize verify it: "heap overflow past the end of a block".
 * The usable size is then the request.
 * ------------------------------------------------------------------------ */

#define CA_BINNED__GUARD             ((CA_CHECKS >= CA_CHECKS_ON) ? (size_t)8 : (size_t)0)
#define CA_BINNED__GUARD_PATTERN_MAX 64u

extern uint64_t ca_binned__secret[2];
/* Draw the secret once (any thread, idempotent, no malloc). */
void ca_binned__secret_init(void);

/* clock_gettime through the vDSO's own entry, not libc's wrapper (clock.c);
 * a failed read gives 0. */
void ca_binned__clock(clockid_t id, struct timespec *ts);
/* Whether ca_binned__clock calls the vDSO (else libc's clock_gettime). */
bool ca_binned__clock_is_vdso(void);

/* A 64-bit bijective mix (murmur3's finalizer). */
ca_force_inline uint64_t ca_binned__mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

/* The link word of a slot on its block's free list pointing at next1
 * (next index + 1; 0 ends the list): next1 in the low 16 bits, a keyed tag
 * of (slot, next1) above. The tag is one multiply by an odd constant, a
 * bijection of 64-bit words, so any change to a stored word (its next1, or
 * its tag bits) gives a word that is not the link word of that slot: a
 * corruption is caught for certain, not with some probability (the lowest
 * bit an input change touches flips in the product; next1 enters at bit 48,
 * a slot's address below it). The secret keys keep the words unguessable
 * from outside. Written by every put and checked by every take, one slot at
 * a time: a mix of several rounds cost 20 instructions more each way. */
ca_force_inline uint64_t ca_binned__link_word(const void *slot, unsigned next1)
{
    uint64_t x = ((uint64_t)(uintptr_t)slot | (uint64_t)next1 << 48) ^ ca_binned__secret[0];
    x = x * 0x9e3779b97f4a7c15ull ^ ca_binned__secret[1];
    return (x & ~(uint64_t)0xffff) | (uint64_t)next1;
}

/* Per-slot key of the checks=on guard. */
ca_force_inline uint64_t ca_binned__guard_key(const void *slot)
{
    return ca_binned__mix64((uint64_t)(uintptr_t)slot ^ ca_binned__secret[1]) ^ ca_binned__secret[0];
}

/* Abort with "<what> (class <size> B)" naming p. */
ca_attr_noreturn ca_attr_cold void ca_binned__fail_class(const char *what, unsigned cls, const void *p,
                                                         const char *file, int line);

/* ------------------------------------------------------------------------
 * Size classes (classes.c)
 *
 *   classes 0..3:    16, 32, 48, 64
 *   from 64 B up:    8 classes per doubling: (q + 1) << (e - 3) for a size in
 *                    (2^e, 2^(e+1)], q = 8..15, so the worst internal waste is
 *                    below 1/9 (11.1%) of the class size;
 *   last class:      CA_BINNED_SMALL_MAX (256 KiB) = class 99.
 * A class size is a multiple of 8; multiples of 16 from 128 B up. malloc
 * rounds requests up to 16 first, so 72/88/104/120 serve only requests that
 * asked for 8-byte alignment (ca_binned_alloc with align <= 8).
 * ------------------------------------------------------------------------ */

#define CA_BINNED__NCLASSES        100
#define CA_BINNED__LUT_MAX         1024 /* sizes <= this use the lookup tables */
#define CA_BINNED__BLOCK_MIN_SHIFT 16   /* 64 KiB: smallest block */
#define CA_BINNED__RECIP_SHIFT     40   /* slot index = (offset * recip) >> 40 */

typedef struct ca_binned__class_info {
    uint32_t size;       /* bytes per slot */
    uint32_t nslots;     /* slots per block, <= 4096 */
    uint32_t batch;      /* slots per bundle (refill / flush unit) */
    uint32_t cache_max;  /* thread-cache bound of this class (2 * batch) */
    uint8_t block_shift; /* log2 of the block size, >= 16 */
    uint64_t recip;      /* ceil(2^40 / size): exact division of block offsets */
} ca_binned__class_info;

/* Constant tables (classes.c). */
extern const ca_binned__class_info ca_binned__classes[CA_BINNED__NCLASSES];
/* lut16[(n + 15) >> 4]: class of a 16-byte-aligned request of n <= 1024;
 * lut8[(n + 7) >> 3]: class of a request with align <= 8. */
extern const uint8_t ca_binned__lut16[CA_BINNED__LUT_MAX / 16 + 1];
extern const uint8_t ca_binned__lut8[CA_BINNED__LUT_MAX / 8 + 1];
/* lut_malloc[n] == lut16[(n + 15) >> 4] for every n <= 1024 (the malloc
 * fast path: one load, no rounding). */
extern const uint8_t ca_binned__lut_malloc[CA_BINNED__LUT_MAX + 1];

/* Class of a request of n bytes with alignment <= 8 (computed, any n up to
 * CA_BINNED_SMALL_MAX; n = 0 is class 0). */
ca_force_inline unsigned ca_binned__class_of(size_t n)
{
    if (n <= 64)
        return n ? (unsigned)((n - 1) >> 4) : 0;
    size_t m = n - 1;
    unsigned e = ca_log2(m);
    unsigned q = (unsigned)(m >> (e - 3));
    return 4 + (e - 6) * 8 + (q - 8);
}

/* ------------------------------------------------------------------------
 * Block word (one u64 per block, out of band, in the class's meta array)
 *
 *   bits  0..15  nfree: free slots of the block (its list + never handed out)
 *   bits 16..31  head: first slot of the block's free list, index + 1 (0: empty)
 *   bits 32..47  bump: slots [bump, nslots) were never handed out since the
 *                block was (re)started; they are free without being listed
 *   bits 48..49  state: FRESH (started, never used: memory as obtained),
 *                ACTIVE (in use: some slots out, or partly free), EMPTY
 *                (every slot free, memory kept, in the empty tree),
 *                DECOMMITTED (every slot free, memory given back: committed
 *                again before use)
 *   bit  50      seen: EMPTY block already seen by one decay pass
 *   bit  51      dirty: slots [bump, nslots) may hold old data (the block was
 *                restarted from EMPTY, or its memory is not known to be zero):
 *                their first word is cleared as they are carved. Clean blocks
 *                are carved without a write, so that memory is touched only
 *                by the program.
 *
 * Invariants (under the class lock):
 *   nfree == |free list| + (nslots - bump)
 *   free-tree bit set  <=>  nfree > 0   (for blocks below the frontier)
 *   empty-tree bit set <=>  state == EMPTY  <=>  (nfree == nslots, committed)
 *   FRESH, EMPTY and DECOMMITTED blocks have nfree == nslots, head == 0 and
 *   bump == 0; a block word of 0 is a block never started.
 *   Blocks >= frontier are in no tree.
 * A free slot on a block list holds the link word (ca_binned__link_word) of
 * the next index + 1 in its first 8 bytes.
 * ------------------------------------------------------------------------ */

#define CA_BINNED__ST_FRESH       0u
#define CA_BINNED__ST_ACTIVE      1u
#define CA_BINNED__ST_EMPTY       2u
#define CA_BINNED__ST_DECOMMITTED 3u

ca_force_inline unsigned ca_binned__bw_nfree(uint64_t w) { return (unsigned)(w & 0xffff); }
ca_force_inline unsigned ca_binned__bw_head(uint64_t w) { return (unsigned)((w >> 16) & 0xffff); }
ca_force_inline unsigned ca_binned__bw_bump(uint64_t w) { return (unsigned)((w >> 32) & 0xffff); }
ca_force_inline unsigned ca_binned__bw_state(uint64_t w) { return (unsigned)((w >> 48) & 3); }
ca_force_inline bool ca_binned__bw_seen(uint64_t w) { return (w >> 50) & 1; }
#define CA_BINNED__BW_DIRTY ((uint64_t)1 << 51)
ca_force_inline uint64_t ca_binned__bw_make(unsigned nfree, unsigned head, unsigned bump, unsigned state,
                                            bool seen)
{
    return (uint64_t)nfree | (uint64_t)head << 16 | (uint64_t)bump << 32 | (uint64_t)state << 48 |
           (uint64_t)seen << 50;
}

/* ------------------------------------------------------------------------
 * Bit tree (bittree.c): three levels over up to 16,384 blocks.
 *
 *   l2: 256 words = 16,384 bits, one per block (the "2 KiB tree");
 *   l1: 4 words, bit i set <=> l2[i] != 0;
 *   l0: 1 word, bit i set <=> l1[i] != 0.
 * Finding the first set bit is three tzcnt. Classes with more blocks chain
 * trees: a chain is an array of up to 64 trees with a summary word whose bit
 * t is set <=> tree t is not empty. All under the class lock.
 * A chain's trees lie from the top down: tree t is at tree0 - t. The free
 * chain's tree 0 then ends where the class's block words begin, and the
 * layout (binned.c) puts the two in one page: the first blocks of a class
 * touch one page of metadata, not two.
 * ------------------------------------------------------------------------ */

#define CA_BINNED__TREE_BITS 16384u
#define CA_BINNED__CHAIN_MAX 64u

typedef struct ca_binned__tree {
    uint64_t l0;
    uint64_t l1[4];
    uint64_t l2[256];
} ca_binned__tree;
CA_STATIC_ASSERT(sizeof(ca_binned__tree) == 8 + 32 + 2048, "2 KiB tree plus summaries");

typedef struct ca_binned__chain {
    uint64_t summary;       /* bit t: tree t has a set bit */
    uint32_t ntrees;        /* trees covering the class's blocks */
    ca_binned__tree *tree0; /* tree 0, the highest: tree t is tree0 - t (in
                               the instance's meta mapping) */
} ca_binned__chain;

ca_force_inline ca_binned__tree *ca_binned__chain_tree(const ca_binned__chain *c, size_t t)
{
    return c->tree0 - t;
}

void ca_binned__tree_set(ca_binned__tree *t, unsigned i);
void ca_binned__tree_clear(ca_binned__tree *t, unsigned i);
bool ca_binned__tree_test(const ca_binned__tree *t, unsigned i);
/* First set bit, or -1 when the tree is empty. O(1). */
long ca_binned__tree_first(const ca_binned__tree *t);
/* First set bit >= from, or -1. O(words skipped). */
long ca_binned__tree_next(const ca_binned__tree *t, unsigned from);
/* Last set bit <= from, or -1. O(words skipped). */
long ca_binned__tree_prev(const ca_binned__tree *t, unsigned from);

void ca_binned__chain_set(ca_binned__chain *c, size_t i);
void ca_binned__chain_clear(ca_binned__chain *c, size_t i);
bool ca_binned__chain_test(const ca_binned__chain *c, size_t i);
long ca_binned__chain_first(const ca_binned__chain *c);
long ca_binned__chain_next(const ca_binned__chain *c, size_t from);
/* Highest set bit, or -1; highest set bit <= from, or -1 (the purge walks
 * the empty tree from the top: take() carves from the bottom). */
long ca_binned__chain_last(const ca_binned__chain *c);
long ca_binned__chain_prev(const ca_binned__chain *c, size_t from);

/* ------------------------------------------------------------------------
 * Recycler (recycler.c): a Treiber stack of bundles with a 128-bit CAS on
 * (top pointer, generation). A bundle is a descriptor outside the blocks
 * (ca_binned__bundle): a count and an array of free slots; the stack links
 * descriptors through their second word. Lock-free, any thread. The same
 * stack keeps the instance's spare descriptors (bundle_pool).
 *
 * Built with -DCA_BINNED_RECYCLER_NO_GEN the generation is never changed,
 * which brings back the ABA problem (the test_aba executable shows it).
 * ------------------------------------------------------------------------ */

typedef struct ca_binned__recycler {
    void *top;    /* first bundle or NULL; written only by the 16-byte CAS */
    uint64_t gen; /* bumped by every successful push and pop */
} __attribute__((aligned(16))) ca_binned__recycler;

void ca_binned__recycler_init(ca_binned__recycler *r);
void ca_binned__recycler_push(ca_binned__recycler *r, void *bundle);
/* The top bundle, or NULL when the stack is empty. */
void *ca_binned__recycler_pop(ca_binned__recycler *r);
/* Take the whole stack at once (one CAS). */
void *ca_binned__recycler_take_all(ca_binned__recycler *r);

/* Next bundle link of a bundle (its second word). */
ca_force_inline void **ca_binned__bundle_link(void *bundle) { return (void **)bundle + 1; }

#define CA_BINNED__BATCH_MAX 64u
/* How far a class's recycler bound may grow above the recycler_bytes option
 * (tcache.c, "Recycler bound"). */
#define CA_BINNED__REC_GROWTH 16u

/* Recycler bound (tcache.c): flushes sent n slots to the blocks for lack of
 * room; a refill from the blocks while such slots wait grows the bound; a
 * decay pass without growth since the last one halves it. */
typedef struct ca_binned__class ca_binned__class;
void ca_binned__rec_spill(ca_binned__class *c, uint64_t n);
void ca_binned__rec_refill_miss(ca_binned__class *c, unsigned cls);
void ca_binned__rec_decay(ca_binned__class *c);

typedef struct ca_binned__bundle {
    uint32_t n;                     /* slots in slots[] */
    uint32_t cls;                   /* class of the slots */
    struct ca_binned__bundle *next; /* recycler link: the second word */
    void *slots[CA_BINNED__BATCH_MAX];
} ca_binned__bundle;
CA_STATIC_ASSERT(offsetof(ca_binned__bundle, next) == sizeof(void *), "the link is the second word");

/* ------------------------------------------------------------------------
 * Per-class central state (central.c)
 * ------------------------------------------------------------------------ */

struct ca_binned__class {
    /* --- lock-free part, any thread --- */
    ca_binned__recycler rec; /* bundles of 1..batch slots (a full batch but for a bin given back whole) */
    uint64_t rec_bundles;    /* bundles on rec (atomic, approximate while racing) */
    uint64_t rec_slots;      /* slots in rec's bundles (atomic, the same) */
    uint64_t rec_max;        /* bound on rec_bundles; more goes to the blocks
                                (atomic; moves between rec_floor and rec_cap,
                                see "Recycler bound" in tcache.c) */
    uint64_t rec_floor;      /* rec_max's least: the recycler_bytes option (read-only) */
    uint64_t rec_cap;        /* rec_max's most (read-only) */
    uint64_t rec_spilled;    /* slots flushes sent to the blocks for lack of room
                                since a refill last came from the blocks (atomic) */
    int rec_grew;            /* rec_max grew since the last decay pass (atomic) */
    int rec_used;            /* set by every pop; the decay pass clears it and
                                drains a recycler nobody popped from since the
                                pass before (its slots would pin their blocks) */
    uint64_t exited_allocs;  /* counters folded in from exited threads (atomic) */
    uint64_t exited_frees;
    /* --- under lock --- */
    int lock;                    /* core lock word, rank CA_LOCK_RANK_BINNED_CLASS */
    int *lock_lk;                /* &lock, for ca_binned_class_stats, which gets a
                                 const instance (core.h, Statistics); set last
                                 by the class's set-up on first use (NULL: the
                                 class was never used, every field below 0) */
    char *base;                  /* start of the class range (read-only) */
    uint64_t *meta;              /* block words [max_blocks] (in the meta mapping) */
    ca_binned__chain free_tree;  /* blocks with nfree > 0 */
    ca_binned__chain empty_tree; /* EMPTY blocks (committed, all free) */
    size_t max_blocks;           /* blocks that fit the class range (read-only) */
    size_t frontier;             /* blocks [0, frontier) have been started */
    size_t registered;           /* blocks [0, registered) are in the owner map */
    size_t mapped;               /* blocks [0, mapped) have their memory, shadow and
                                 block words mapped (every block when the
                                 instance is not on demand); frontier <= mapped */
    size_t span_mapped;          /* on demand: bytes mapped from base, */
    size_t shadow_mapped;        /* from base's shadow byte, */
    size_t meta_mapped;          /* and from meta_start (trees, then block words) */
    char *meta_start;            /* this class's metadata: a pad, two chains, then
                                 the block words */
    size_t trees_bytes;          /* bytes before the block words (the pad and the
                                 two chains' trees) */
    size_t committed;            /* blocks ACTIVE or EMPTY */
    size_t nempty;               /* EMPTY blocks */
    uint64_t slots_out;          /* slots taken from blocks, not yet returned */
    uint64_t decommits;          /* blocks decommitted (counter) */
    uint64_t commit_fail;        /* commit or register failures (counter) */
    /* Purge policy (see central.c): EMPTY blocks beyond `keep` go back at the
     * next purge (off the free path); the blocks that stay EMPTY from one
     * decay pass to the next go back then. keep adapts: it doubles when a
     * block decommitted less than a decay interval ago is needed again
     * (the class would thrash), halves at each pass that saw no such block,
     * and never drops below the option's empty_keep. */
    size_t keep;          /* EMPTY blocks kept before the excess goes back */
    size_t inflight;      /* blocks being decommitted with the lock dropped:
                                 state DECOMMITTED with nfree 0, in no tree */
    uint64_t decommit_ns; /* when blocks of the class last went back */
    bool recommitted;     /* a recently decommitted block was taken again
                                 since the last decay pass */
    uint64_t recommits;   /* such blocks (counter) */
    /* Starter slots of the class (starter.c), under the lock: bit i of
     * st_live is set while slot i is handed out; st_given counts hand-outs,
     * which stop at CA_BINNED__STARTER_GIVEN_MAX. */
    uint32_t st_live;
    uint32_t st_given;
} __attribute__((aligned(64)));

/* Set class cls up (its range, metadata layout, budgets) on its first use;
 * the classes an instance never uses keep their state untouched (zero).
 * Callers of the central operations below make their class ready first. */
void ca_binned__class_setup(ca_binned *b, unsigned cls);
/* ca_binned__class_ready(b, cls), after struct ca_binned below. */

/* Central operations; `cls` is the class index. */
/* Carve up to n slots into out[0 .. n); returns the count taken (0: out of
 * memory or address space). */
unsigned ca_binned__central_take(ca_binned *b, unsigned cls, unsigned n, void **out);
/* Return n slots of class cls (not handed out: shadow 0) to their blocks. */
void ca_binned__central_put(ca_binned *b, unsigned cls, void *const *slots, size_t n);
/* What a purge decommits: every EMPTY block (FORCE: trim), the EMPTY blocks
 * beyond the class's keep budget (EXCESS), or those and the ones an earlier
 * decay pass saw EMPTY already (DUE: the decay pass). */
enum { CA_BINNED__PURGE_EXCESS, CA_BINNED__PURGE_DUE, CA_BINNED__PURGE_FORCE };
/* Decommit EMPTY blocks as `mode` says, the system calls made with the class
 * lock dropped; then trim the frontier over trailing unused blocks. Returns
 * the class's committed bytes afterwards; *nempty (may be NULL) receives the
 * EMPTY blocks left for a later pass. No lock may be held. */
size_t ca_binned__central_purge(ca_binned *b, unsigned cls, int mode, size_t *nempty);
/* Memory or address space ran short (a mapping or commit failed): return
 * the calling thread's cache, every recycler and every EMPTY block, unmap
 * what the classes do not use and trim the large tier (ca_binned_trim), so
 * that the caller can try once more. No lock may be held. */
void ca_binned__reclaim(ca_binned *b);
/* Move every bundle of the recycler back to the blocks. */
void ca_binned__central_drain_recycler(ca_binned *b, unsigned cls);
/* The decay pass's part for a recycler: its bound decays (tcache.c,
 * "Recycler bound"), and it is drained when nobody popped from it since the
 * previous pass (the decay pass only). */
void ca_binned__central_drain_idle(ca_binned *b, unsigned cls);
void ca_binned__class_lock(ca_binned__class *c);
void ca_binned__class_unlock(ca_binned__class *c);

/* ------------------------------------------------------------------------
 * Starter area (starter.c)
 *
 * A class's first block costs three pages the first time a slot of it is
 * written: the block's page, its shadow page and a page of block words and
 * trees (the classes are 2^class_shift apart, so no two share one). A
 * program that allocates a few KB over 25 classes paid 300 KiB for that.
 * Instances created with CA_BINNED_STARTER (the default instance) on their
 * own source take the first slots of every class up to 4 KiB from one
 * shared area instead, laid out at create: class c owns
 * ca_binned__starter_slots(c) slots at starter_base + starter_off[c], the
 * classes one after the other, each slot aligned as the class's blocks
 * align it (the lowest set bit of its size), about 100 KiB in all. The area lies
 * right after the class span, inside the instance's window, and the shadow
 * covers it: malloc marks a starter slot live and free checks it with the
 * same shadow byte as any slot, so double, interior and foreign frees are
 * refused the same way.
 *
 * A malloc that finds its bin empty takes a starter slot while the class
 * has started no block, a slot of its share is free, and the class has
 * handed out fewer than CA_BINNED__STARTER_GIVEN_MAX starter slots; then
 * the class's blocks serve it as before. Starter slots never enter a thread
 * cache or a recycler: their address is outside the class ranges, so a free
 * takes the path of the pointers that are not a class slot (no map walk for
 * the suite's own free: the range compare comes before the large tier's),
 * clears the slot's bit under the class lock, and the slot serves a later
 * first-use of the class. A loop of malloc and free of one size takes at most
 * GIVEN_MAX slow turns before it runs on its block's fast path. The area is
 * never decommitted (a program touches the pages of the classes it
 * uses, about 2 KiB each).
 * ------------------------------------------------------------------------ */

#define CA_BINNED__STARTER_BYTES     ((size_t)128 << 10)
#define CA_BINNED__STARTER_CLASSES   52u /* classes 0..51: sizes up to 4096 */
#define CA_BINNED__STARTER_GIVEN_MAX 32u

/* Starter slots of class cls: 2 KiB of them, 1 to 16 (about 100 KiB for
 * the 52 classes, with the alignment padding). */
ca_force_inline unsigned ca_binned__starter_slots(unsigned cls)
{
    unsigned n = 2048u / ca_binned__classes[cls].size;
    return n < 1 ? 1 : n > 16 ? 16 : n;
}

/* Lay the area out and map it with its shadow (instance create, on demand
 * instances with CA_BINNED_STARTER); on failure the instance has none
 * (starter_base 0), which is not an error. */
void ca_binned__starter_init(ca_binned *b);
/* Unmap the area and its shadow (destroy). */
void ca_binned__starter_destroy(ca_binned *b);
/* A starter slot of cls for a malloc, not yet marked live; NULL when the
 * class takes its slots from its blocks. */
void *ca_binned__starter_take(ca_binned *b, unsigned cls);
/* The class whose share holds p (p in the area), or CA_BINNED__NCLASSES
 * for an address in no share (padding, or beyond the last share). */
unsigned ca_binned__starter_class(const ca_binned *b, const void *p);
/* Slot index of p in cls's share; -1 when p is not a slot start. */
long ca_binned__starter_index(const ca_binned *b, unsigned cls, const void *p);
/* Give a released starter slot (shadow already cleared) back to its share. */
void ca_binned__starter_put(ca_binned *b, unsigned cls, const void *p);
/* The misuse verdict for p in the area (its shadow xor-ed by a release):
 * abort with the message of op (CA_BINNED__OP_*). */
ca_attr_noreturn ca_attr_cold void ca_binned__starter_bad_use(const ca_binned *b, const void *p, unsigned op);
/* The starter's part of ca_binned_check. */
const char *ca_binned__starter_check(const ca_binned *b);

/* ------------------------------------------------------------------------
 * Thread cache (tcache.c)
 *
 * Per thread and instance; touched only by its thread (the registry list
 * links are under the instance's registry lock; check and fork read the
 * others only while the process is quiescent). Each bin is a stack of slot
 * pointers in an array outside the blocks (the cache's `arrays` region):
 *   [base, top) are the cached slots; limit = base + cache_max;
 *   a malloc pops when top != base, a free pushes when top != limit;
 *   a cache that is not set up (or whose thread is exiting) has
 *   top == base == limit, so that every operation takes the slow path.
 * Counters: allocs counts pops; frees are allocs + count + moved, where
 * moved[cls] is the slots the bin sent out (flushes) minus those it took
 * in (refills), kept by the slow paths.
 * ------------------------------------------------------------------------ */

typedef struct ca_binned__bin {
    void **top;      /* one past the last cached slot */
    void **base;     /* the bin's array (NULL: not set up) */
    void **limit;    /* base + capacity */
    uint64_t allocs; /* served from this bin (owner thread; read racily by stats) */
} ca_binned__bin;
CA_STATIC_ASSERT(sizeof(ca_binned__bin) == 32, "two bins per cache line");

ca_force_inline uint32_t ca_binned__bin_count(const ca_binned__bin *bin)
{
    return (uint32_t)(bin->top - bin->base);
}

#define CA_BINNED__TC_NONE 0 /* never set up */
#define CA_BINNED__TC_LIVE 1
#define CA_BINNED__TC_DEAD 2 /* thread exiting: no caching any more */

typedef struct ca_binned__tcache {
    ca_binned__bin bins[CA_BINNED__NCLASSES];
    int64_t moved[CA_BINNED__NCLASSES];      /* slots flushed out - slots refilled in */
    void **arrays;                           /* every bin's array (NULL: none) */
    ca_binned *owner;                        /* instance */
    struct ca_binned__tcache *next, *prev;   /* registry (under registry lock) */
    uint64_t epoch;                          /* instance trim epoch last seen */
    uint32_t gc_allocs[CA_BINNED__NCLASSES]; /* bins[i].allocs (low 32 bits) at the last GC */
    uint32_t gc_tick;                        /* slow paths since the last GC */
    unsigned state;                          /* CA_BINNED__TC_* */
    bool in_tls;                             /* the default instance's static TLS cache */
} ca_binned__tcache;

/* A bin starts on a small array of its own (the starters, side by side at
 * the start of the cache's arrays region, so that a program touching many
 * classes a little writes one or two pages of arrays, not a page per four
 * classes) and moves to its full array of cache_max pointers on its second
 * refill, or when a free finds the small one full. Its capacity is
 * ca_binned__bin_starter(cls) before, cache_max after. */
#define CA_BINNED__BIN_STARTER 16u
ca_force_inline uint32_t ca_binned__bin_starter(unsigned cls)
{
    uint32_t m = ca_binned__classes[cls].cache_max;
    return m < CA_BINNED__BIN_STARTER ? m : CA_BINNED__BIN_STARTER;
}

/* Bytes of a cache's arrays region (every class's starter array, then the
 * full arrays of cache_max pointers of the classes whose starter is smaller). */
size_t ca_binned__arrays_bytes(void);

/* The cache of the calling thread for b (created on demand; NULL when the
 * thread is exiting and its cache is gone). */
ca_binned__tcache *ca_binned__tcache_get(ca_binned *b);
/* The slot for a malloc that found its bin empty (not yet marked live). */
void *ca_binned__alloc_slow(ca_binned *b, ca_binned__tcache *tc, unsigned cls);
/* Cache p (already released in the shadow) when its bin is full or not set
 * up; tc may be NULL (no caching). */
void ca_binned__free_slow(ca_binned *b, ca_binned__tcache *tc, unsigned cls, void *p);
/* Return every slot of tc to the recycler (to_blocks false) or the blocks. */
void ca_binned__tcache_flush_all(ca_binned *b, ca_binned__tcache *tc, bool to_blocks);
/* Return n free slots of cls: bundles to the recycler while it has room
 * (unless to_blocks), a remainder of two or more slots as a partial bundle
 * too, the rest to the blocks. */
void ca_binned__give_back(ca_binned *b, unsigned cls, void *const *slots, uint32_t n, bool to_blocks);
/* A spare bundle descriptor (NULL: no memory), and its return. */
ca_binned__bundle *ca_binned__bundle_get(ca_binned *b);
void ca_binned__bundle_put(ca_binned *b, ca_binned__bundle *d);
/* A cache's arrays region back to the instance's spares. */
void ca_binned__arrays_release(ca_binned *b, ca_binned__tcache *tc);
void ca_binned__tcache_registry_add(ca_binned *b, ca_binned__tcache *tc);
void ca_binned__tcache_registry_remove(ca_binned *b, ca_binned__tcache *tc);
/* Key destructor of non-default instances and of the default one. */
void ca_binned__tcache_thread_exit(void *tc);

/* The default instance's cache of this thread (static TLS, initial-exec). */
extern __thread ca_binned__tcache ca_binned__tls __attribute__((tls_model("initial-exec")));

/* ------------------------------------------------------------------------
 * Large tier bridge (large_bridge.c): every size above CA_BINNED_SMALL_MAX
 * and every alignment no class serves.
 * ------------------------------------------------------------------------ */

int ca_binned__large_init(ca_binned *b);
void ca_binned__large_destroy(ca_binned *b);
/* zero: the block must read as zero (memory known to be zero, fresh or
 * purged, is not written again). */
void *ca_binned__large_alloc(ca_binned *b, size_t size, size_t align, bool zero, size_t *usable);
/* True when p belongs to the large tier of b (then it is freed). */
bool ca_binned__large_free(ca_binned *b, void *p);
/* Usable size, 0 when p is not a large-tier pointer of b. */
size_t ca_binned__large_usable(const ca_binned *b, const void *p);
void *ca_binned__large_resize(ca_binned *b, void *p, size_t new_size, size_t align, unsigned flags,
                              size_t *usable);
void ca_binned__large_trim(ca_binned *b);
/* Start the tier's background thread (it also runs the size classes' decay
 * pass) when the instance wants one and it is not running. */
void ca_binned__large_background(ca_binned *b);
/* True while the instance's background thread runs (it then does every
 * purge of the size classes; slow paths only note what is due). */
bool ca_binned__large_background_running(const ca_binned *b);
/* Return the calling thread's large-tier cache. */
void ca_binned__large_flush(ca_binned *b);
void ca_binned__large_stats(const ca_binned *b, ca_stats *out);

/* ------------------------------------------------------------------------
 * The instance
 * ------------------------------------------------------------------------ */

struct ca_binned {
    ca_allocator base; /* first: &b->base is the ca_allocator view */
    /* --- read-only after create --- */
    uintptr_t span_base;  /* first class range */
    size_t span;          /* bytes of all class ranges */
    unsigned class_shift; /* log2 bytes per class range */
    /* --- any thread (atomic): written under the class lock --- */
    uintptr_t class_end[CA_BINNED__NCLASSES]; /* end of the mapped part of each
                                 class range: an address below it has its memory
                                 and shadow byte mapped (a free tests it before
                                 reading the shadow: a wild pointer into the
                                 unmapped rest is refused, not a fault). Raised
                                 after a mapping grows, lowered before it shrinks */
    bool is_default;                          /* the process-wide instance */
    bool use_owner_map;                       /* ranges registered in core's ownership map */
    unsigned flags;                           /* CA_BINNED_* option flags */
    uint64_t decay_ns;                        /* EMPTY blocks live at least this long */
    size_t empty_keep;                        /* per class, EMPTY bytes kept without decay */
    size_t pressure_bytes;      /* committed bytes above which a decay pass bumps the epoch (0: off) */
    size_t recycler_bytes;      /* per class, slots kept in the recycler (options.recycler_bytes) */
    uint64_t pressure_trims;    /* epochs bumped by the pressure policy (atomic) */
    uint64_t peak_sampled;      /* highest bytes in use (both tiers) seen by a stats
                                 call (atomic): the small tier keeps no in-use
                                 count on its fast paths */
    uint64_t *peak_sampled_mut; /* &peak_sampled (set at init): stats, given a
                                 const instance, raise it through this pointer
                                 (state of the statistics themselves, like a
                                 lock; core.h, Statistics) */
    ca_source *src;             /* memory for ranges and metadata */
    ca_source_mmap own_src;     /* the source when none was given */
    bool own_src_used;
    void *meta_map; /* every class's metadata (meta_start), page-aligned each */
    size_t meta_size;
    uint8_t *shadow; /* one byte per 16 bytes of the span */
    size_t shadow_size;
    ca_source_mmap shadow_src; /* private no-reserve mapping of the shadow */
    uintptr_t shadow_bias;     /* shadow - span_base / 16: the byte of p is at shadow_bias + p / 16 */
    unsigned page_kind;        /* CA_SOURCE_PAGE_* of the class span */
    bool background;           /* a background thread returns idle memory of both
                                 tiers (default instance; CA_BINNED_BACKGROUND) */
    bool fresh_zero;           /* memory never used reads as zero (own source, or a
                                 CA_SOURCE_ZEROED one) */
    bool decommit_zero;        /* decommitted memory reads as zero (own source:
                                 MADV_DONTNEED) */
    bool owner_window;         /* the span is claimed as one window of core's
                                 ownership map (no pages registered; classes
                                 skip `registered`); on demand instances only */
    bool on_demand;            /* span, shadow and metadata are a window of address
                                 space mapped class by class as the classes grow
                                 (instances with their own source); else all three
                                 are obtained at create */
    pthread_key_t key;         /* thread caches of non-default instances; exit hook */
    bool key_made;
    uintptr_t starter_base;                               /* the starter area (0: none) */
    uint32_t starter_off[CA_BINNED__STARTER_CLASSES + 1]; /* share of class c at starter_base +
                                 starter_off[c]; [STARTER_CLASSES]: end of the last */
    /* --- any thread (atomic) --- */
    uint64_t epoch;         /* trim epoch: threads flush when it moved */
    uint64_t next_purge_ns; /* next decay pass (CLOCK_MONOTONIC_COARSE) */
    int purge_lock;         /* lock word held by the thread running a purge
                                 pass (slow paths and the background thread
                                 only try it) or a trim (which waits for it,
                                 so no block of another pass is in flight and
                                 every tail can be unmapped); rank 6 */
    uint64_t over_keep[2];  /* bit per class that went over its keep budget:
                                 the next purge pass returns the excess (the
                                 background thread's, or without one the
                                 next slow path's) */
    /* --- registry lock --- */
    int reg_lock;
    int *reg_lk;                     /* &reg_lock (set at init), for the statistics */
    ca_binned__tcache *threads;      /* live thread caches */
    ca_binned__tcache *spare_caches; /* caches of exited threads (non-default), linked by next */
    void *spare_arrays;              /* arrays regions of exited threads, linked through word 0 */
    /* --- bundle descriptors --- */
    ca_binned__recycler bundle_pool; /* spare descriptors (lock-free) */
    int pool_lock;                   /* taken to carve a new chunk of descriptors */
    void *pool_chunks;               /* chunks of descriptors, linked through word 0 */
    uint64_t nthreads_seen;          /* caches ever registered */
    struct ca_binned *next_instance; /* all instances (fork hooks), under the global lock */
    /* --- large tier --- */
    void *large; /* large tier state (large_bridge.c) */
    /* --- classes --- */
    ca_binned__class classes[CA_BINNED__NCLASSES];
};

/* The process-wide instance (binned.c); its fields are valid once
 * ca_binned_default() returned. */
extern struct ca_binned ca_binned__default_instance;

/* p lies in b's starter area (false when b has none). */
ca_force_inline bool ca_binned__in_starter(const ca_binned *b, const void *p)
{
    return b->starter_base && (uintptr_t)p - b->starter_base < CA_BINNED__STARTER_BYTES;
}

/* Class cls set up (ca_binned__class_setup) before its first central
 * operation: one acquire load when it is. */
ca_force_inline void ca_binned__class_ready(ca_binned *b, unsigned cls)
{
    if (ca_unlikely(!__atomic_load_n(&b->classes[cls].lock_lk, __ATOMIC_ACQUIRE)))
        ca_binned__class_setup(b, cls);
}

ca_force_inline ca_binned__class_info const *ca_binned__info(unsigned cls) { return &ca_binned__classes[cls]; }

/* Slot index of an offset within a block (exact for offsets that are slot
 * starts; for others, the slot containing the offset). */
ca_force_inline uint32_t ca_binned__slot_index(unsigned cls, size_t off)
{
    return (uint32_t)(((uint64_t)off * ca_binned__classes[cls].recip) >> CA_BINNED__RECIP_SHIFT);
}

/* The shadow byte of the granule holding p (p inside the span). */
ca_force_inline uint8_t *ca_binned__shadow(const ca_binned *b, const void *p)
{
    return (uint8_t *)(b->shadow_bias + ((uintptr_t)p >> 4));
}

/* The shadow value of a handed-out slot starting at p: never 0. */
ca_force_inline uint8_t ca_binned__live_mark(const void *p) { return (uint8_t)((uintptr_t)p + 1); }

/* Mark the slot at p handed out. */
ca_force_inline void ca_binned__mark_live(const ca_binned *b, const void *p)
{
    *ca_binned__shadow(b, p) = ca_binned__live_mark(p);
}

/* Mark the slot at p free when it is a slot start handed out; returns false
 * (the byte is then garbage: the caller aborts) for anything else. The xor
 * leaves 0 exactly when the byte was p's live mark. */
ca_force_inline bool ca_binned__release(const ca_binned *b, const void *p)
{
    uint8_t *sh = ca_binned__shadow(b, p);
    uint8_t m = ca_binned__live_mark(p);
#if defined(__x86_64__) && defined(__GNUC__) && !defined(CA_BINNED_PLAIN_SHADOW)
    /* One xor on memory and a branch on its flags (compilers otherwise emit
     * load, xor, store, compare). */
    __asm__ goto("xorb %1, %0\n\tjnz %l[bad]" : "+m"(*sh) : "q"(m) : "cc" : bad);
    return true;
bad:
    return false;
#else
    uint8_t v = (uint8_t)(*sh ^ m);
    *sh = v;
    return v == 0;
#endif
}

/* Why the shadow refused p (after ca_binned__release returned false, which
 * left the byte xor-ed with p's mark): abort with the exact message. */
ca_attr_noreturn ca_attr_cold void ca_binned__bad_free(const ca_binned *b, const void *p, unsigned cls);
/* The same verdict for another operation on p (its message names the
 * operation: "realloc of a freed block", ...). */
#define CA_BINNED__OP_FREE    0u
#define CA_BINNED__OP_REALLOC 1u
#define CA_BINNED__OP_USABLE  2u
ca_attr_noreturn ca_attr_cold void ca_binned__bad_use(const ca_binned *b, const void *p, unsigned cls,
                                                      unsigned op);

/* Monotonic coarse clock in ns. */
uint64_t ca_binned__now_ns(void);
/* Slow paths: run the decay pass when it is due and return the excess of
 * classes over their keep budget, unless the background thread runs (then
 * it does both, off the allocation path; the first excess starts it). */
void ca_binned__maybe_purge(ca_binned *b);
/* The pass itself: the decay pass when due, else the excess of the classes
 * over their budget; skipped when another thread holds purge_lock. Run by
 * the background thread's maintenance, or by maybe_purge without one. */
void ca_binned__purge_pass(ca_binned *b);

/* The small tier's locks: core's lock word (spins briefly, then sleeps on
 * a futex; re-entry from a signal handler aborts naming the component),
 * each with its rank of core.h's "Lock order". */
ca_force_inline void ca_binned__spin_lock(int *l, unsigned rank)
{
    ca_lock_acquire_ranked(l, rank, CA_BINNED__COMP);
}
ca_force_inline void ca_binned__spin_unlock(int *l, unsigned rank) { ca_lock_release_ranked(l, rank); }

#endif /* CA_BINNED_INTERNAL_H */
